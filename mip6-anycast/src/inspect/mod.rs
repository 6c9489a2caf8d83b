//! Capture inspection: decodes pcap / pcapng files of Mobile IPv6 traffic
//! into per-packet records ([`PacketRecord`]), the library behind
//! `mip6-inspect` (which only parses arguments and prints).
//!
//! Per packet: timestamp, outer addresses, every extension header (RH2 and
//! HAO with their home addresses, IPv6-in-IPv6 decoded recursively), the
//! Mobility Header with its fields and options, `checksum_ok` (MH checksum
//! over the RFC 6275 pseudo-header; transport checksum of data packets with
//! RH2/HAO), and for BUs (and BAs with Binding Authorization Data)
//! `authenticator_ok`, recomputed from keygen tokens seen earlier in the
//! same capture (see `auth.rs`). Malformed packets carry the wire layer's
//! error; nothing here panics on any input (fuzzed by
//! `fuzz/fuzz_targets/inspect_pcap.rs`).
//!
//! ```no_run
//! let report = mip6_anycast::inspect::inspect_path("capture.pcap".as_ref())?;
//! for p in &report.packets {
//!     println!("{p}");
//! }
//! # Ok::<(), mip6_anycast::inspect::CaptureError>(())
//! ```
//!
//! | file | what |
//! |---|---|
//! | `capture.rs` | streaming pcap / pcapng reader with bounded buffers |
//! | `link.rs` | link-layer framing -> IPv6 packet |
//! | `decode.rs` | one IPv6 packet (recursing into tunnels) -> [`Ipv6Layer`] |
//! | `mh.rs` | Mobility Header records, RFC names of types, statuses, options |
//! | `auth.rs` | HoT/CoT token tracking, BU/BA authenticator verdicts |
//! | `record.rs` | the serializable records (the JSON interface) |
//! | `text.rs` | the one-line text form |

mod auth;
mod capture;
mod decode;
mod link;
mod mh;
mod record;
mod text;

use std::io::Read;
use std::path::Path;

pub use auth::{MAX_ENTRIES, RrTracker, Verdict};
pub use capture::{CaptureError, CaptureFormat, CaptureReader, Frame, MAX_RECORD_LEN};
pub use decode::MAX_TUNNEL_DEPTH;
pub use link::{Payload, payload};
pub use mh::{ba_status_name, be_status_name, mh_name, option_name};
pub use record::{
    BaFlagsRecord, BuFlagsRecord, CaptureReport, DestOptRecord, ExtRecord, Hex, Ipv6Layer,
    MhFields, MhOptionRecord, MhOptionValue, MhRecord, PacketRecord, TransportRecord,
};

/// Decodes packets one after the other, remembering the Return
/// Routability tokens it has seen (so feed packets in capture order).
#[derive(Debug, Default)]
pub struct Inspector {
    rr: RrTracker,
    next_index: u64,
}

fn layers(l: &Ipv6Layer) -> impl Iterator<Item = &Ipv6Layer> {
    std::iter::successors(Some(l), |l| l.inner.as_deref())
}

impl Inspector {
    /// A fresh inspector (empty token tables, index 0).
    pub fn new() -> Self {
        Self::default()
    }

    fn record(
        &mut self,
        ts_sec: u64,
        ts_nsec: u32,
        link_type: u32,
        caplen: usize,
        len: u64,
    ) -> PacketRecord {
        let index = self.next_index;
        self.next_index += 1;
        PacketRecord {
            index,
            timestamp: format!("{ts_sec}.{ts_nsec:09}"),
            link_type,
            caplen,
            len,
            truncated: (caplen as u64) < len,
            malformed: false,
            error: None,
            not_ipv6: None,
            ipv6: None,
            mh_type: None,
            mh_name: None,
            checksum_ok: None,
            authenticator_ok: None,
            authenticator_note: None,
        }
    }

    /// Decodes one captured frame.
    pub fn inspect_frame(&mut self, frame: &Frame) -> PacketRecord {
        let mut r = self.record(
            frame.ts_sec,
            frame.ts_nsec,
            frame.link_type,
            frame.data.len(),
            frame.orig_len,
        );
        match link::payload(frame.link_type, &frame.data) {
            Payload::Ipv6(b) => self.fill(&mut r, b),
            Payload::Other(what, n) => {
                r.not_ipv6 = Some(match n {
                    Some(n) if what == "ethertype" => format!("{what} {n:#06x}"),
                    Some(n) => format!("{what} {n}"),
                    None => what.to_string(),
                });
            }
            Payload::Malformed(why) => {
                r.malformed = true;
                r.error = Some(why.to_string());
            }
        }
        r
    }

    /// Decodes one IPv6 packet (no link layer), e.g. read from a TUN device.
    pub fn inspect_ipv6(&mut self, ts_sec: u64, ts_nsec: u32, packet: &[u8]) -> PacketRecord {
        let mut r = self.record(ts_sec, ts_nsec, 229, packet.len(), packet.len() as u64);
        self.fill(&mut r, packet);
        r
    }

    /// A record for a capture record that could not be read (a malformed
    /// pcapng block that was skipped).
    pub fn bad_record(&mut self, e: &CaptureError) -> PacketRecord {
        let mut r = self.record(0, 0, 0, 0, 0);
        r.malformed = true;
        r.error = Some(e.to_string());
        r
    }

    fn fill(&mut self, r: &mut PacketRecord, b: &[u8]) {
        let d = decode::decode(b, 0);
        r.malformed = d.error.is_some();
        r.error = d.error;
        if let Some(l) = &d.layer {
            let mut verdicts = Vec::new();
            for l in layers(l) {
                if let Some(m) = &l.mh {
                    r.mh_type = Some(m.mh_type);
                    r.mh_name = Some(m.name);
                    verdicts.push(m.checksum_ok);
                }
                verdicts.extend(l.transport.as_ref().and_then(|t| t.checksum_ok));
            }
            r.checksum_ok = (!verdicts.is_empty()).then(|| verdicts.iter().all(|v| *v));
        }
        r.ipv6 = d.layer;
        let verdict = match &d.mh {
            Some(m) => self.rr.observe(m),
            // A BU that did not parse cannot be checked.
            None => (r.mh_type == Some(5)).then(|| Verdict {
                ok: None,
                note: "message did not parse".to_string(),
            }),
        };
        if let Some(v) = verdict {
            r.authenticator_ok = Some(v.ok);
            r.authenticator_note = Some(v.note);
        }
    }
}

/// Iterator over the packet records of one capture (see
/// [`Inspection::capture_error`] for a file that ends badly).
#[derive(Debug)]
pub struct Inspection<R> {
    reader: CaptureReader<R>,
    inspector: Inspector,
    error: Option<CaptureError>,
}

impl<R: Read> Inspection<R> {
    /// Reads the capture header; an error means `src` is not a capture.
    pub fn new(src: R) -> Result<Self, CaptureError> {
        Ok(Inspection {
            reader: CaptureReader::new(src)?,
            inspector: Inspector::new(),
            error: None,
        })
    }

    /// pcap or pcapng.
    pub fn format(&self) -> CaptureFormat {
        self.reader.format()
    }

    /// The link type of a classic pcap file.
    pub fn link_type(&self) -> Option<u32> {
        self.reader.link_type()
    }

    /// After the iterator ended: why the file could not be read to its end.
    pub fn capture_error(&self) -> Option<&CaptureError> {
        self.error.as_ref()
    }
}

impl<R: Read> Iterator for Inspection<R> {
    type Item = PacketRecord;

    fn next(&mut self) -> Option<PacketRecord> {
        match self.reader.next_frame()? {
            Ok(f) => Some(self.inspector.inspect_frame(&f)),
            Err(e) if e.is_fatal() => {
                self.error = Some(e);
                None
            }
            Err(e) => Some(self.inspector.bad_record(&e)),
        }
    }
}

/// Decodes a whole capture from `src`, labelled `file` in the report.
pub fn inspect_reader<R: Read>(file: &str, src: R) -> Result<CaptureReport, CaptureError> {
    let mut it = Inspection::new(src)?;
    let packets = it.by_ref().collect();
    Ok(CaptureReport {
        file: file.to_string(),
        format: it.format(),
        link_type: it.link_type(),
        packets,
        capture_error: it.capture_error().map(|e| e.to_string()),
    })
}

/// Decodes a capture held in memory.
pub fn inspect_bytes(data: &[u8]) -> Result<CaptureReport, CaptureError> {
    inspect_reader("<memory>", data)
}

/// Decodes a capture file.
pub fn inspect_path(path: &Path) -> Result<CaptureReport, CaptureError> {
    let f = std::fs::File::open(path)?;
    inspect_reader(&path.display().to_string(), std::io::BufReader::new(f))
}
