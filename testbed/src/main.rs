//! `testbed`: namespace lab, link emulation, scenarios and measurements.
fn main() {
    eprintln!("testbed: not built yet");
    std::process::exit(2);
}
