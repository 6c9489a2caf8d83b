//! `testbed`: namespace lab, link emulation, scenarios and measurements.
//! See `testbed --help` and the `testbed::lab` and `testbed::scenarios`
//! modules.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use testbed::lab::signals::TerminationSignals;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Before any thread exists: every later thread inherits the mask, so
    // Ctrl-C and SIGTERM are only taken by `up`'s wait loop.
    let signals = match &cli.command {
        cli::Command::Up(_) | cli::Command::Demo(_) => match TerminationSignals::block() {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("testbed: {e}");
                return ExitCode::FAILURE;
            }
        },
        _ => None,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli::run(cli, signals) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("testbed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
