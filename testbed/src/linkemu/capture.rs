//! pcap capture of an emulated link: every packet entering the link, both
//! directions in one file, stamped with the moment it entered.
//!
//! - `<link>.pcap`: classic pcap, `LINKTYPE_RAW` (101: the packet starts with
//!   its IP header), nanosecond timestamps (wall clock derived from the
//!   monotonic arrival stamp), snaplen = the link's largest packet.
//! - `<link>.frames.csv`: one line per captured frame, in the same order:
//!   `frame,direction,verdict,len` where `frame` is tshark's `frame.number`
//!   (from 1), `direction` is `a_to_b` or `b_to_a`, `verdict` is `queued`,
//!   `lost` (loss generator or link down) or `queue_full` (tail drop).
//!
//! Packets entering both directions are written under one lock in the order
//! their readers took it, so timestamps of the two directions may be out of
//! order by a few microseconds. Buffered records are written out whenever a
//! reader has drained its fd and at least every [`FLUSH_EVERY`] packets: a
//! crash of the process loses at most that many.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};

use super::config::{LinkError, frames_path};
use super::delay_line::Verdict;
use crate::topology::LinkDir;

/// Most captured packets held in memory before they are written out.
pub const FLUSH_EVERY: usize = 16;

/// The pcap writer's sink: bytes collect here until [`Capture::flush`]
/// hands them to the file in one write.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<u8>>>);

impl Pending {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Write for Pending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An open capture (pcap + side file).
pub(crate) struct Capture {
    pcap: PcapWriter<Pending>,
    pending: Pending,
    frames_pending: String,
    pcap_file: File,
    frames_file: File,
    frame: u64,
    unflushed: usize,
    realtime_offset: i128,
    snaplen: u32,
    pub errors: u64,
}

impl Capture {
    /// Creates `path` (and its directory) and the side file next to it.
    pub fn create(path: &Path, snaplen: usize, realtime_offset: i128) -> Result<Self, LinkError> {
        let err = |reason: String| LinkError::Capture {
            path: path.to_owned(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(format!("creating directory: {e}")))?;
        }
        let pcap_file = File::create(path).map_err(|e| err(e.to_string()))?;
        let frames_file =
            File::create(frames_path(path)).map_err(|e| err(format!("side file: {e}")))?;
        let snaplen = u32::try_from(snaplen).unwrap_or(u32::MAX);
        let header = PcapHeader {
            snaplen,
            datalink: DataLink::RAW,
            ts_resolution: TsResolution::NanoSecond,
            endianness: pcap_file::Endianness::native(),
            ..Default::default()
        };
        let pending = Pending::default();
        let pcap =
            PcapWriter::with_header(pending.clone(), header).map_err(|e| err(e.to_string()))?;
        let mut c = Capture {
            pcap,
            pending,
            frames_pending: String::from("frame,direction,verdict,len\n"),
            pcap_file,
            frames_file,
            frame: 0,
            unflushed: 0,
            realtime_offset,
            snaplen,
            errors: 0,
        };
        c.flush();
        if c.errors > 0 {
            return Err(err("writing the header failed".into()));
        }
        Ok(c)
    }

    /// Records a packet that entered at monotonic time `arrival_ns`.
    pub fn record(&mut self, dir: LinkDir, verdict: Verdict, arrival_ns: u64, data: &[u8]) {
        let wall = i128::from(arrival_ns) + self.realtime_offset;
        let wall = u64::try_from(wall.max(0)).unwrap_or(u64::MAX);
        let incl = data.len().min(self.snaplen as usize);
        let Some(bytes) = data.get(..incl) else {
            self.errors += 1;
            return;
        };
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let pkt = PcapPacket::new(Duration::from_nanos(wall), orig_len, bytes);
        if self.pcap.write_packet(&pkt).is_err() {
            self.errors += 1;
            return;
        }
        self.frame += 1;
        let d = match dir {
            LinkDir::AToB => "a_to_b",
            LinkDir::BToA => "b_to_a",
        };
        let v = match verdict {
            Verdict::Queued { .. } => "queued",
            Verdict::Lost => "lost",
            Verdict::QueueFull => "queue_full",
        };
        self.frames_pending
            .push_str(&format!("{},{d},{v},{}\n", self.frame, data.len()));
        self.unflushed += 1;
        if self.unflushed >= FLUSH_EVERY {
            self.flush();
        }
    }

    /// Whether records are waiting to be written.
    pub fn dirty(&self) -> bool {
        self.unflushed > 0
    }

    /// Writes buffered records to both files.
    pub fn flush(&mut self) {
        let bytes = self.pending.take();
        if !bytes.is_empty() && self.pcap_file.write_all(&bytes).is_err() {
            self.errors += 1;
        }
        let lines = std::mem::take(&mut self.frames_pending);
        if !lines.is_empty() && self.frames_file.write_all(lines.as_bytes()).is_err() {
            self.errors += 1;
        }
        self.unflushed = 0;
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.flush();
    }
}
