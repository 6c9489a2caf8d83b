//! `mip6-cn`: the Mobile IPv6 correspondent-node agent for client hosts.
fn main() {
    eprintln!("mip6-cn: not built yet");
    std::process::exit(2);
}
