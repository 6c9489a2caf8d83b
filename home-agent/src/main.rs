//! `home-agent`: RFC 6275 home agent for the anycast home addresses.
fn main() {
    eprintln!("home-agent: not built yet");
    std::process::exit(2);
}
