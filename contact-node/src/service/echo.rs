//! The built-in test service: TCP echo (RFC 862) on `[X]:port`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Connection, Served, StreamService, surrender_requested};

/// Echoes every byte back.
#[derive(Debug, Default)]
pub struct Echo;

impl StreamService for Echo {
    fn name(&self) -> &'static str {
        "echo"
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
            let surrender = surrender_requested(surrender);
            tokio::pin!(surrender);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                // Echo has no state between chunks: a surrender between
                // two reads hands over nothing but the socket.
                let n = tokio::select! {
                    biased;
                    _ = &mut surrender => {
                        return Ok(Served::Surrendered { stream, app_state: Vec::new() });
                    }
                    r = stream.read(&mut buf) => r?,
                };
                if n == 0 {
                    stream.shutdown().await?;
                    return Ok(Served::Closed);
                }
                stats.bytes_in.fetch_add(n as u64, Relaxed);
                let chunk = buf.get(..n).unwrap_or_default();
                stream.write_all(chunk).await?;
                stats.bytes_out.fetch_add(n as u64, Relaxed);
            }
        })
    }
}
