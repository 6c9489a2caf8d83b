//! `mip6-inspect [--json] [--strict] FILE...`: decode the Mobile IPv6
//! packets of pcap / pcapng captures (the decoding is
//! `mip6_anycast::inspect`; this is only the command-line shell).
//!
//! Output: one line per packet, or with `--json` one JSON array with one
//! object per file, `{"file", "format", "link_type", "packets": [...],
//! "capture_error"}`, written as the packets are decoded (one packet object
//! per line). Exit status: 2 if a file cannot be read as a capture at all,
//! else 1 with `--strict` if any packet is malformed or has a false
//! checksum or authenticator verdict (or a file ends inside a record),
//! else 0.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mip6_anycast::inspect::{CaptureReport, Inspection, PacketRecord};

const ABOUT: &str = "Decode Mobile IPv6 (RFC 6275) packets in pcap / pcapng captures";

const AFTER_HELP: &str = "\
Output: one line per packet; with --json one JSON array with one object per file,
{\"file\", \"format\", \"link_type\", \"packets\": [...], \"capture_error\"}, one packet
object per line. Packet fields: index, timestamp, link_type, caplen, len, truncated,
malformed, error, not_ipv6, ipv6 (src, dst, ext, hao, rh2, mh, transport, inner, ...),
mh_type, mh_name, checksum_ok, and for BUs (and BAs with Binding Authorization Data)
authenticator_ok (true / false / null) with authenticator_note.

Exit status: 0 the files were read (malformed packets included); 1 with --strict if a
packet is malformed, a checksum or authenticator is false, or a file ends inside a
record; 2 if a file is not a readable capture.";

#[derive(Parser, Debug)]
#[command(version, about = ABOUT, after_help = AFTER_HELP)]
struct Args {
    /// Print a JSON array (one object per file, one packet object per line).
    #[arg(long)]
    json: bool,
    /// Exit 1 if any packet is malformed or has a false checksum or
    /// authenticator verdict.
    #[arg(long)]
    strict: bool,
    /// Capture files (classic pcap or pcapng); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// What one file amounted to.
enum Outcome {
    Clean,
    Problems,
}

fn inspect_one(
    path: &PathBuf,
    json: bool,
    first: bool,
    out: &mut impl Write,
) -> anyhow::Result<Outcome> {
    let src: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(BufReader::new(f))
    };
    let mut it = Inspection::new(src)
        .with_context(|| format!("{} is not a readable pcap/pcapng capture", path.display()))?;
    let mut problems = false;
    let name = path.display().to_string();
    if json {
        // The report's own fields, with the packets streamed in between.
        let head = CaptureReport {
            file: name.clone(),
            format: it.format(),
            link_type: it.link_type(),
            packets: Vec::new(),
            capture_error: None,
        };
        let head = serde_json::to_value(&head)?;
        write!(
            out,
            "{}{{\"file\":{},\"format\":{},\"link_type\":{},\"packets\":[",
            if first { "" } else { "," },
            head["file"],
            head["format"],
            head["link_type"]
        )?;
    }
    for (n, p) in it.by_ref().enumerate() {
        problems |= p.has_problem();
        write_packet(out, &p, json, n == 0)?;
    }
    let capture_error = it.capture_error().map(|e| e.to_string());
    if json {
        writeln!(
            out,
            "],\"capture_error\":{}}}",
            serde_json::to_string(&capture_error)?
        )?;
    } else if let Some(e) = &capture_error {
        writeln!(out, "{name}: capture ends badly: {e}")?;
    }
    if let Some(e) = &capture_error {
        eprintln!("mip6-inspect: {name}: {e}");
        problems = true;
    }
    Ok(if problems {
        Outcome::Problems
    } else {
        Outcome::Clean
    })
}

fn write_packet(
    out: &mut impl Write,
    p: &PacketRecord,
    json: bool,
    first: bool,
) -> anyhow::Result<()> {
    if json {
        write!(
            out,
            "{}\n{}",
            if first { "" } else { "," },
            serde_json::to_string(p)?
        )?;
    } else {
        writeln!(out, "{p}")?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut unreadable = false;
    let mut problems = false;
    let mut first = true;
    if args.json {
        let _ = writeln!(out, "[");
    }
    for path in &args.files {
        match inspect_one(path, args.json, first, &mut out) {
            Ok(o) => {
                first = false;
                problems |= matches!(o, Outcome::Problems);
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("mip6-inspect: {e:#}");
                unreadable = true;
            }
        }
    }
    if args.json {
        let _ = writeln!(out, "]");
    }
    if let Err(e) = out.flush() {
        eprintln!("mip6-inspect: writing output: {e}");
        return ExitCode::from(2);
    }
    if unreadable {
        ExitCode::from(2)
    } else if args.strict && problems {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
