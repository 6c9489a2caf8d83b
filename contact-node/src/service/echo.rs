//! The built-in test service: TCP echo (RFC 862) on `[X]:port`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Connection, StreamService};

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
    ) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>> {
        Box::pin(async move {
            let Connection {
                mut stream, stats, ..
            } = conn;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    stream.shutdown().await?;
                    return Ok(());
                }
                stats.bytes_in.fetch_add(n as u64, Relaxed);
                let chunk = buf.get(..n).unwrap_or_default();
                stream.write_all(chunk).await?;
                stats.bytes_out.fetch_add(n as u64, Relaxed);
            }
        })
    }
}
