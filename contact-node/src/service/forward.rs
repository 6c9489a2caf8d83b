//! Connections of an unmodified server: each connection on `[X]:port` is
//! spliced to the server's local instance at `to` (a fresh connection per
//! client connection). Used on acceptors for connections migrated from a
//! donor whose server process knew nothing of the handoff (the donor took
//! the sockets with `pidfd_getfd`); suits servers without per-connection
//! state beyond the byte stream (echo, request/response protocols whose
//! requests do not span a handoff).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Connection, Served, StreamService, surrender_requested};

/// Splices to a local server.
#[derive(Debug)]
pub struct Forward {
    /// The local instance of the server.
    pub to: SocketAddr,
}

impl StreamService for Forward {
    fn name(&self) -> &'static str {
        "forward"
    }

    fn serve(
        self: Arc<Self>,
        conn: Connection,
    ) -> Pin<Box<dyn Future<Output = io::Result<Served>> + Send>> {
        Box::pin(async move {
            let Connection {
                mut stream,
                stats,
                surrender,
                ..
            } = conn;
            let mut upstream = TcpStream::connect(self.to).await?;
            let _ = upstream.set_nodelay(true);
            let surrender = surrender_requested(surrender);
            tokio::pin!(surrender);
            let (mut a, mut b) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut surrender => {
                        // What the local server answered is written
                        // before each read returns, so nothing is held
                        // here; the local connection is closed.
                        return Ok(Served::Surrendered { stream, app_state: Vec::new() });
                    }
                    r = stream.read(&mut a) => {
                        let n = r?;
                        if n == 0 {
                            upstream.shutdown().await?;
                            return Ok(Served::Closed);
                        }
                        stats.bytes_in.fetch_add(n as u64, Relaxed);
                        upstream.write_all(a.get(..n).unwrap_or_default()).await?;
                    }
                    r = upstream.read(&mut b) => {
                        let n = r?;
                        if n == 0 {
                            stream.shutdown().await?;
                            return Ok(Served::Closed);
                        }
                        stream.write_all(b.get(..n).unwrap_or_default()).await?;
                        stats.bytes_out.fetch_add(n as u64, Relaxed);
                    }
                }
            }
        })
    }
}
