//! Capture inspection: decode pcap files into per-packet records (used by `mip6-inspect`).
