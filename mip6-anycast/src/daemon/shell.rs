//! The daemon shell: [`main`] (command line, config, logs, capability
//! check, runtime) and [`serve`], the event loop that feeds an [`App`]
//! with punts from the engine, control requests, its own inputs, its
//! timers and a periodic tick, and runs the shutdown on SIGTERM/SIGINT.
//!
//! Shutdown: the first signal calls [`App::begin_shutdown`] (send the
//! deregistrations) and the loop keeps running, so acknowledgements still
//! arrive, until [`App::shutdown_complete`] or the grace period is over; a
//! second signal ends it at once. The caller then undoes its tables and
//! stops the engine ([`DaemonEngine::stop`] removes the steering).

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::cli::{DaemonArgs, DaemonCommand, run_ctl};
use super::config::{self, DaemonConfig};
use super::control::{ControlCall, ControlServer, Request, Response};
use super::datapath::{DaemonEngine, wait_stopped};
use super::{logging, system};
use crate::engine::datapath::{EngineHandle, Punt};

/// Exit status: the daemon failed while running.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit status: bad command line or configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit status: missing `CAP_NET_ADMIN`.
pub const EXIT_CAPABILITY: u8 = 3;

/// Commands the shell answers itself (the app adds its own).
pub const SHELL_COMMANDS: &[&str] = &["status", "engine", "help"];

/// What a daemon's run function gets besides its config.
#[derive(Debug, Clone)]
pub struct Context {
    /// The daemon's name (`home-agent`, ...).
    pub name: &'static str,
    /// The configuration file.
    pub config_path: PathBuf,
    /// The control socket to bind.
    pub control_socket: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// How long the shutdown waits for acknowledgements.
    pub shutdown_grace: Duration,
    /// When the daemon started.
    pub started: Instant,
}

/// A daemon's control plane, driven by [`serve`].
pub trait App {
    /// Inputs of the daemon's own sources (e.g. a service's new peers).
    type Input: Send + 'static;

    /// When [`App::handle_timeout`] is next due (its machines' earliest).
    fn poll_timeout(&self) -> Option<Instant>;
    /// Period of [`App::tick`] (usage polling, ...), if any.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
    /// Timers due at `now`.
    fn handle_timeout(&mut self, now: Instant) -> impl Future<Output = ()>;
    /// A packet from the engine.
    fn handle_punt(&mut self, punt: Punt) -> impl Future<Output = ()>;
    /// One of the daemon's own inputs.
    fn handle_input(&mut self, input: Self::Input) -> impl Future<Output = ()>;
    /// The periodic tick.
    fn tick(&mut self, _now: Instant) -> impl Future<Output = ()> {
        async {}
    }
    /// A control request (`status` and `bindings` at least): its result,
    /// or an error message.
    fn control(&mut self, req: &Request) -> impl Future<Output = Result<Value, String>>;
    /// Names of the app's own control commands (for `help`).
    fn commands(&self) -> &'static [&'static str] {
        &["bindings"]
    }
    /// A signal asked for shutdown: send deregistrations.
    fn begin_shutdown(&mut self, _now: Instant) -> impl Future<Output = ()> {
        async {}
    }
    /// True when the shutdown has nothing left to wait for.
    fn shutdown_complete(&self) -> bool {
        true
    }
}

/// The whole `main` of a daemon binary: parses the common command line
/// ([`DaemonArgs`], [`DaemonCommand`]) under the daemon's `name` and
/// `about` text, then [`main`].
pub fn run_daemon<C, F, Fut>(name: &'static str, about: &'static str, run: F) -> ExitCode
where
    C: DaemonConfig,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use clap::{Args, FromArgMatches, Subcommand};
    let cmd = clap::Command::new(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let cmd = DaemonCommand::augment_subcommands(DaemonArgs::augment_args(cmd));
    let m = cmd.get_matches();
    let args = DaemonArgs::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    let sub = m
        .subcommand()
        .map(|_| DaemonCommand::from_arg_matches(&m).unwrap_or_else(|e| e.exit()));
    main::<C, F, Fut>(name, args, sub, run)
}

/// [`run_daemon`] for a daemon with options of its own (`X`, flattened
/// into the common command line and handed to `run`).
pub fn run_daemon_with<C, X, F, Fut>(name: &'static str, about: &'static str, run: F) -> ExitCode
where
    C: DaemonConfig,
    X: clap::Args + clap::FromArgMatches,
    F: FnOnce(C, Context, X) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    use clap::{Args, FromArgMatches, Subcommand};
    let cmd = clap::Command::new(name)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"));
    let cmd = DaemonCommand::augment_subcommands(X::augment_args(DaemonArgs::augment_args(cmd)));
    let m = cmd.get_matches();
    let args = DaemonArgs::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    let own = X::from_arg_matches(&m).unwrap_or_else(|e| e.exit());
    let sub = m
        .subcommand()
        .map(|_| DaemonCommand::from_arg_matches(&m).unwrap_or_else(|e| e.exit()));
    main::<C, _, Fut>(name, args, sub, move |c, ctx| run(c, ctx, own))
}

/// The error of a control command the daemon does not know.
#[must_use]
pub fn unknown_command(cmd: &str) -> String {
    format!("unknown command {cmd:?}; try: help")
}

/// Parses nothing itself: `args`/`cmd` come from the daemon's clap
/// parser (see [`run_daemon`]). Runs `ctl`, or loads the config, sets up logs, checks
/// `CAP_NET_ADMIN`, and runs `run` on a tokio runtime. Exit statuses:
/// 0, [`EXIT_RUNTIME`], [`EXIT_CONFIG`], [`EXIT_CAPABILITY`].
pub fn main<C, F, Fut>(
    name: &'static str,
    args: DaemonArgs,
    cmd: Option<DaemonCommand>,
    run: F,
) -> ExitCode
where
    C: DaemonConfig,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if let Some(DaemonCommand::Ctl(ctl)) = &cmd {
        return run_ctl::<C>(name, &args, ctl);
    }
    let Some(config_path) = args.config.clone() else {
        eprintln!("{name}: missing --config FILE (see --help)");
        return ExitCode::from(EXIT_CONFIG);
    };
    let cfg: C = match config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: bad configuration: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let filter = match logging::filter(args.log_level.as_deref(), cfg.daemon().log_level.as_deref())
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(filter);
    if !system::has_net_admin() {
        eprintln!(
            "{name}: missing capability CAP_NET_ADMIN: the datapath needs it for its TUN device, tc filters, routes and raw sockets; run as root or grant it (e.g. `setcap cap_net_admin,cap_net_raw+ep {name}`)"
        );
        return ExitCode::from(EXIT_CAPABILITY);
    }
    let d = cfg.daemon();
    let ctx = Context {
        name,
        control_socket: args
            .control_socket
            .clone()
            .or_else(|| d.control_socket.clone())
            .unwrap_or_else(|| system::default_control_socket(name)),
        state_dir: d
            .state_dir
            .clone()
            .unwrap_or_else(|| system::default_state_dir(name)),
        shutdown_grace: d.shutdown_grace(),
        config_path,
        started: Instant::now(),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: starting the runtime: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    match rt.block_on(run(cfg, ctx)) {
        Ok(()) => {
            info!("{name} stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("{e:#}");
            eprintln!("{name}: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

/// Sleeps until `t` (forever if `None`).
async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

async fn next_tick(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn next_signal(
    term: &mut tokio::signal::unix::Signal,
    int: &mut tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// The shell's own answers and the app's, to one request.
async fn answer<A: App>(
    app: &mut A,
    engine: Option<&EngineHandle>,
    interfaces: &[String],
    ctx: &Context,
    req: &Request,
) -> Response {
    match req.cmd.as_str() {
        "engine" if engine.is_some() => {
            let stats = match engine {
                Some(h) => h.stats().await.map_err(|e| e.to_string()),
                None => Err(String::from("no engine")),
            };
            match stats {
                Ok(s) => Response::ok(serde_json::to_value(s).unwrap_or(Value::Null)),
                Err(e) => Response::err(e),
            }
        }
        "help" => {
            let mut cmds: Vec<&str> = SHELL_COMMANDS.to_vec();
            cmds.extend(app.commands().iter().copied());
            Response::ok(json!({ "daemon": ctx.name, "commands": cmds }))
        }
        "status" => match app.control(req).await {
            Ok(mut v) => {
                if let Value::Object(m) = &mut v {
                    m.insert("daemon".into(), json!(ctx.name));
                    m.insert("pid".into(), json!(std::process::id()));
                    m.insert(
                        "uptime_s".into(),
                        json!(ctx.started.elapsed().as_secs_f64()),
                    );
                    m.insert("interfaces".into(), json!(interfaces));
                }
                Response::ok(v)
            }
            Err(e) => Response::err(e),
        },
        _ => app.control(req).await.into(),
    }
}

/// Binds the control socket of `ctx`.
pub fn bind_control(ctx: &Context) -> anyhow::Result<(ControlServer, mpsc::Receiver<ControlCall>)> {
    ControlServer::bind(&ctx.control_socket).context("binding the control socket")
}

/// Runs `app` until a signal (and its shutdown) or an engine failure.
pub async fn serve<A: App>(
    app: &mut A,
    engine: &mut DaemonEngine,
    calls: &mut mpsc::Receiver<ControlCall>,
    inputs: &mut mpsc::Receiver<A::Input>,
    ctx: &Context,
) -> anyhow::Result<()> {
    let DaemonEngine {
        handle,
        punts,
        interfaces,
        task,
        ..
    } = engine;
    let datapath = ServeDatapath {
        engine: Some(handle),
        punts,
        interfaces,
        task,
    };
    serve_with(app, datapath, calls, inputs, ctx).await
}

/// Where [`serve_with`] gets packets from: a [`DaemonEngine`]'s parts,
/// or (a kernel datapath, no engine) only a punt channel.
pub struct ServeDatapath<'a> {
    /// The engine, if any (`ctl engine` goes to the app without one).
    pub engine: Option<&'a EngineHandle>,
    /// Packets for the control plane.
    pub punts: &'a mut mpsc::Receiver<Punt>,
    /// Interfaces reported by `ctl status`.
    pub interfaces: &'a [String],
    /// The engine task, watched for an early end (`None`: nothing to watch).
    pub task: &'a mut Option<tokio::task::JoinHandle<crate::engine::datapath::EngineExit>>,
}

/// [`serve`] on any [`ServeDatapath`].
pub async fn serve_with<A: App>(
    app: &mut A,
    datapath: ServeDatapath<'_>,
    calls: &mut mpsc::Receiver<ControlCall>,
    inputs: &mut mpsc::Receiver<A::Input>,
    ctx: &Context,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut tick = app.tick_interval().map(|d| {
        let mut i = tokio::time::interval(d.max(Duration::from_millis(10)));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut draining: Option<Instant> = None;
    let mut last_fire: Option<Instant> = None;
    let ServeDatapath {
        engine: handle,
        punts,
        interfaces,
        task,
    } = datapath;
    info!(socket = %ctx.control_socket.display(), "{} running", ctx.name);
    loop {
        if draining.is_some() && app.shutdown_complete() {
            info!("shutdown complete");
            return Ok(());
        }
        // A machine whose deadline did not move after its timers ran must
        // not make this loop spin: wait at least a millisecond.
        let deadline = app.poll_timeout().map(|t| match last_fire {
            Some(l) if t <= l => l + Duration::from_millis(1),
            _ => t,
        });
        tokio::select! {
            biased;
            sig = next_signal(&mut term, &mut int) => {
                if draining.is_some() {
                    warn!("second signal: exiting without waiting");
                    return Ok(());
                }
                info!("{sig}: shutting down");
                app.begin_shutdown(Instant::now()).await;
                draining = Some(Instant::now() + ctx.shutdown_grace);
            }
            why = wait_stopped(task) => anyhow::bail!("the engine stopped: {why}"),
            Some(p) = punts.recv() => app.handle_punt(p).await,
            Some(call) = calls.recv() => {
                let r = answer(app, handle, interfaces, ctx, &call.request).await;
                let _ = call.reply.send(r);
            }
            Some(i) = inputs.recv() => app.handle_input(i).await,
            _ = sleep_until(deadline) => {
                let now = Instant::now();
                last_fire = Some(now);
                app.handle_timeout(now).await;
            }
            _ = next_tick(&mut tick) => app.tick(Instant::now()).await,
            _ = sleep_until(draining) => {
                warn!("shutdown grace over; exiting with acknowledgements outstanding");
                return Ok(());
            }
        }
    }
}
