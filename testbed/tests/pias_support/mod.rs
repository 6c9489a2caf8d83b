//! Shared helper of the PIAS namespace tests: runs `testbed pias` with the
//! phases a test needs, in a per-test output directory and lab family.
#![allow(dead_code)]

use std::path::PathBuf;

use testbed::lab::{LabOptions, find_workspace_binary};
use testbed::scenarios::pias::{self, Phases, PiasOptions, PiasReport};

/// A directory removed on drop unless the test panicked.
pub struct Out(pub PathBuf);

impl Drop for Out {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test output kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A lab family unique to this process and `tag` (letters only, at most 12).
fn family(tag: &str) -> String {
    let mut pid = std::process::id();
    let mut s = String::from("pi");
    while pid > 0 && s.len() < 8 {
        s.push(char::from(b'a' + (pid % 26) as u8));
        pid /= 26;
    }
    s.extend(
        tag.chars()
            .filter(char::is_ascii_lowercase)
            .take(12 - s.len()),
    );
    s
}

/// Runs the scenario with `phases`; panics with the report on a scenario error.
pub fn run(tag: &str, phases: Phases) -> (PiasReport, Out) {
    assert!(
        find_workspace_binary("pias-proxy").is_some(),
        "pias-proxy binary missing: cargo build -p pias-proxy"
    );
    let status = std::process::Command::new("bird").arg("--version").output();
    assert!(
        status.is_ok(),
        "bird (BIRD 2) missing: bash scripts/deps.sh"
    );
    let out = Out(std::env::temp_dir().join(format!("pias-test-{tag}-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&out.0);
    let mut opts = PiasOptions::new(&out.0);
    opts.phases = phases;
    opts.base.lab = LabOptions {
        family: family(tag),
        ..Default::default()
    };
    let r = pias::run(&opts, None).expect("the scenario runs");
    assert!(
        r.errors.is_empty(),
        "scenario errors: {:?}\n{r:#?}",
        r.errors
    );
    (r, out)
}
