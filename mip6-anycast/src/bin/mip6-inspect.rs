//! `mip6-inspect [--json] FILE.pcap`: decode Mobile IPv6 packets in a capture.
fn main() {
    eprintln!("mip6-inspect: not built yet");
    std::process::exit(2);
}
