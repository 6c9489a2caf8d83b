//! The local control socket: a unix stream socket (mode 0600) speaking
//! newline-delimited JSON, one response per request.
//!
//! ```text
//! -> {"cmd":"status"}
//! <- {"ok":true,"result":{...}}
//! -> {"cmd":"nope"}
//! <- {"ok":false,"error":"unknown command \"nope\"; try: status, bindings, engine, help"}
//! ```
//!
//! Every daemon answers `status`, `bindings`, `engine` (datapath counters)
//! and `help`; later commands (`handoff`, `drain`, ...) take their
//! arguments in `args`. The server hands each request to the daemon's main
//! loop ([`ControlCall`]), so answers come from the one task that owns the
//! daemon's state. Requests are bounded ([`MAX_REQUEST`] bytes); a
//! malformed one gets an error response, never a crash.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Longest request line accepted.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Longest response line a client accepts.
pub const MAX_RESPONSE: usize = 64 << 20;
/// Most connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The command (`status`, `bindings`, ...).
    pub cmd: String,
    /// Its arguments, if any.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub args: Value,
}

impl Request {
    /// A request without arguments.
    #[must_use]
    pub fn new(cmd: &str) -> Self {
        Self {
            cmd: cmd.to_string(),
            args: Value::Null,
        }
    }
}

/// A control response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the command succeeded.
    pub ok: bool,
    /// Its result (when `ok`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub result: Value,
    /// What went wrong (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// Success with `result`.
    #[must_use]
    pub fn ok(result: Value) -> Self {
        Self {
            ok: true,
            result,
            error: None,
        }
    }

    /// Failure with a message.
    #[must_use]
    pub fn err(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            result: Value::Null,
            error: Some(message.into()),
        }
    }
}

impl From<Result<Value, String>> for Response {
    fn from(r: Result<Value, String>) -> Self {
        match r {
            Ok(v) => Response::ok(v),
            Err(e) => Response::err(e),
        }
    }
}

/// One request for the daemon's main loop, with where its answer goes.
#[derive(Debug)]
pub struct ControlCall {
    /// The request.
    pub request: Request,
    /// Send the response here.
    pub reply: oneshot::Sender<Response>,
}

/// Errors of the control socket.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Socket I/O failed.
    #[error("control socket {}: {source}", .path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Another live daemon owns the socket.
    #[error("control socket {} is in use by a running daemon", .0.display())]
    InUse(PathBuf),
    /// The peer sent something that is not a response.
    #[error("bad response from {}: {message}", .path.display())]
    BadResponse {
        /// The socket path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The listening control socket; removes its file when dropped.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl ControlServer {
    /// Binds `path` (creating its directory; replacing a stale socket file
    /// that no daemon answers on) and starts serving. Requests arrive on
    /// the returned receiver.
    pub fn bind(path: &Path) -> Result<(ControlServer, mpsc::Receiver<ControlCall>), ControlError> {
        let io = |source| ControlError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        if path.exists() {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => return Err(ControlError::InUse(path.to_owned())),
                Err(_) => std::fs::remove_file(path).map_err(io)?,
            }
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(serve(listener, tx));
        Ok((
            ControlServer {
                path: path.to_owned(),
                task,
            },
            rx,
        ))
    }

    /// The socket path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
        // The per-namespace directory, if this was its last socket.
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

async fn serve(listener: UnixListener, calls: mpsc::Sender<ControlCall>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            debug!("control socket: too many connections, closing one");
            continue;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, calls).await {
                debug!(error = %e, "control connection ended");
            }
            drop(permit);
        });
    }
}

async fn connection(stream: UnixStream, calls: mpsc::Sender<ControlCall>) -> io::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut rd = TokioBufReader::new(rd).take(MAX_REQUEST as u64 + 1);
    let mut line = Vec::new();
    loop {
        line.clear();
        rd.set_limit(MAX_REQUEST as u64 + 1);
        let n = rd.read_until(b'\n', &mut line).await?;
        if n == 0 {
            return Ok(());
        }
        let resp = if line.len() > MAX_REQUEST {
            // Answer, then close: the rest of the line cannot be framed.
            let r = Response::err(format!("request longer than {MAX_REQUEST} bytes"));
            write_line(&mut wr, &r).await?;
            return Ok(());
        } else {
            match serde_json::from_slice::<Request>(&line) {
                Err(e) => Response::err(format!("bad request: {e}")),
                Ok(request) => {
                    let (reply, rx) = oneshot::channel();
                    if calls.send(ControlCall { request, reply }).await.is_err() {
                        Response::err("the daemon is shutting down")
                    } else {
                        rx.await
                            .unwrap_or_else(|_| Response::err("the daemon is shutting down"))
                    }
                }
            }
        };
        write_line(&mut wr, &resp).await?;
    }
}

async fn write_line(wr: &mut tokio::net::unix::OwnedWriteHalf, r: &Response) -> io::Result<()> {
    let mut bytes = serde_json::to_vec(r).map_err(io::Error::other)?;
    bytes.push(b'\n');
    wr.write_all(&bytes).await
}

/// Sends one request to the daemon at `path` and waits (up to `timeout`)
/// for its response. Blocking; for the `ctl` subcommands and the testbed.
pub fn request(path: &Path, req: &Request, timeout: Duration) -> Result<Response, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let mut s = std::os::unix::net::UnixStream::connect(path).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(req).map_err(|e| io(io::Error::other(e)))?;
    line.push(b'\n');
    s.write_all(&line).map_err(io)?;
    let mut rd = BufReader::new(std::io::Read::take(s, MAX_RESPONSE as u64));
    let mut buf = Vec::new();
    rd.read_until(b'\n', &mut buf).map_err(io)?;
    if buf.is_empty() {
        return Err(ControlError::BadResponse {
            path: path.to_owned(),
            message: "connection closed without a response".into(),
        });
    }
    serde_json::from_slice(&buf).map_err(|e| ControlError::BadResponse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_reach_the_loop_and_bad_ones_are_answered() {
        let dir = std::env::temp_dir().join(format!("mip6-ctl-test-{}", std::process::id()));
        let path = dir.join("d.sock");
        let (server, mut calls) = ControlServer::bind(&path).unwrap();
        assert!(matches!(
            ControlServer::bind(&path),
            Err(ControlError::InUse(_))
        ));
        tokio::spawn(async move {
            while let Some(c) = calls.recv().await {
                let r = match c.request.cmd.as_str() {
                    "status" => Response::ok(serde_json::json!({"up": true})),
                    other => Response::err(format!("unknown command {other:?}")),
                };
                let _ = c.reply.send(r);
            }
        });
        let p = path.clone();
        let (ok, unknown, raw) = tokio::task::spawn_blocking(move || {
            let t = Duration::from_secs(5);
            let ok = request(&p, &Request::new("status"), t).unwrap();
            let unknown = request(&p, &Request::new("nope"), t).unwrap();
            let mut s = std::os::unix::net::UnixStream::connect(&p).unwrap();
            s.write_all(b"{\"cmd\": 5}\n\xff\xfe\n").unwrap();
            let mut rd = BufReader::new(s);
            let mut a = String::new();
            rd.read_line(&mut a).unwrap();
            let mut b = String::new();
            rd.read_line(&mut b).unwrap();
            (ok, unknown, (a, b))
        })
        .await
        .unwrap();
        assert_eq!(ok.result["up"], true);
        assert!(!unknown.ok);
        assert!(raw.0.contains("bad request"), "{}", raw.0);
        assert!(raw.1.contains("bad request"), "{}", raw.1);
        drop(server);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
