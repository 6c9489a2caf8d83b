//! `contact-node`: the anycast member daemon (contact, backup, acceptor roles).
fn main() {
    eprintln!("contact-node: not built yet");
    std::process::exit(2);
}
