//! The daemon shell (layer 5) shared by `home-agent`, `contact-node` and
//! `mip6-cn`: everything a daemon needs around its sans-IO machines.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | TOML loading whose errors name the field, shared `[daemon]` / `[engine]` sections, field types, MN-HA key material |
//! | [`cli`] | the common command line (`--config`, `--log-level`, `--control-socket`, `ctl COMMAND`) |
//! | [`logging`] | `tracing` with an `EnvFilter` |
//! | [`control`] | the unix control socket (newline-delimited JSON) and its client |
//! | [`system`] | `CAP_NET_ADMIN` check, wall clock, namespace-aware default paths |
//! | [`persist`] | crash-safe state files (write temp + fsync + rename + fsync dir) |
//! | [`datapath`] | the daemon's engine: steering on the configured interfaces, start, stop |
//! | [`driver`] | feeding machines and dispatching their actions (`Route` -> `SendVia`) |
//! | [`shell`] | `main` and the event loop (`App`, `serve`), signals and shutdown |
//! | [`testing`] | running a daemon binary without `CAP_NET_ADMIN` in tests |
//!
//! A daemon's `main` is one call of [`shell::run_daemon`] with its name,
//! its config type and an async `run(config, context)` that starts a
//! [`datapath::DaemonEngine`], binds the control socket, builds its
//! [`shell::App`] and calls [`shell::serve`], then undoes its tables and
//! stops the engine. `run_daemon` parses the common command line
//! ([`cli::DaemonArgs`], [`cli::DaemonCommand`]) and hands over to
//! [`shell::main`].

pub mod cli;
pub mod config;
pub mod control;
pub mod datapath;
pub mod driver;
pub mod logging;
pub mod persist;
pub mod shell;
pub mod system;
pub mod testing;

pub use cli::{CtlArgs, DaemonArgs, DaemonCommand};
pub use config::{ConfigError, DaemonConfig, DaemonSection, EngineSection};
pub use control::{ControlServer, Request, Response};
pub use datapath::DaemonEngine;
pub use driver::{Drained, Machine, Outbox, drain, send_via};
pub use shell::{App, Context, ServeDatapath, serve, serve_with};
