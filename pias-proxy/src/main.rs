//! `pias-proxy`: a PIAS anycast proxy (ingress, rendezvous and join proxy at once).
fn main() {
    eprintln!("pias-proxy: not built yet");
    std::process::exit(2);
}
