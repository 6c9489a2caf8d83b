//! Replays every committed fuzz input through the same checks the fuzz
//! targets run (`fuzz/src/checks.rs`, included here), so crashes found by
//! `scripts/fuzz.sh` stay fixed without running the fuzzer:
//!
//! * `fuzz/regressions/TARGET/*`: inputs that once crashed a target;
//! * `fuzz/seeds/TARGET/*`: the seed corpora (built from `testdata/`).
//!
//! A sub-directory whose name is not a target fails the test, so a crash
//! input cannot be committed where nothing replays it.

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join(sub)
}

/// Runs every file under `dir/TARGET/`; returns how many ran per target.
fn replay(dir: &Path) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut targets: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    targets.sort();
    for t in targets {
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            checks::TARGETS.contains(&name.as_str()),
            "{}: not a fuzz target (known: {:?})",
            t.display(),
            checks::TARGETS
        );
        let mut files: Vec<_> = std::fs::read_dir(&t)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in &files {
            let data = std::fs::read(f).unwrap();
            // A panic names the input through this line of the output.
            eprintln!("replay {}", f.display());
            assert!(checks::run(&name, &data));
        }
        out.push((name, files.len()));
    }
    out
}

#[test]
fn committed_crash_inputs_stay_fixed() {
    let ran = replay(&fuzz_dir("regressions"));
    let total: usize = ran.iter().map(|(_, n)| n).sum();
    eprintln!("replayed {total} regression inputs: {ran:?}");
}

#[test]
fn seed_corpora_pass_every_check() {
    let ran = replay(&fuzz_dir("seeds"));
    for t in checks::TARGETS {
        let n = ran
            .iter()
            .find(|(name, _)| name == t)
            .map_or(0, |(_, n)| *n);
        assert!(n > 0, "no seeds for fuzz target {t}");
    }
}

#[test]
fn checks_reject_unknown_targets() {
    assert!(!checks::run("no_such_target", b""));
    // Empty input is valid for every target.
    for t in checks::TARGETS {
        assert!(checks::run(t, b""));
    }
}
