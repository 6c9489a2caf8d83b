//! Configuration of an emulated link and its two directions.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::topology::{DirectionParams, Link, LinkDir, LinkKind, Topology};

/// Default queue limit of one direction, in packets.
pub const DEFAULT_QUEUE_PACKETS: usize = 4096;
/// Default queue limit of one direction, in bytes.
pub const DEFAULT_QUEUE_BYTES: usize = 16 << 20;
/// Default largest packet a link accepts (a TUN's largest MTU).
pub const DEFAULT_MAX_PACKET: usize = 65_535;

/// Why a link cannot be configured or started.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("link config {field}: {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("link {link:?} is not emulated (kind = \"veth\")")]
    NotEmulated { link: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("capture file {path}: {reason}")]
    Capture { path: PathBuf, reason: String },
}

impl LinkError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LinkError::Io {
            context: context.into(),
            source,
        }
    }
}

/// What happens to packets travelling in one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionConfig {
    /// One-way propagation delay, added after serialization.
    pub delay: Duration,
    /// Each packet's delay is `delay ± U(0, jitter)`, never below zero.
    pub jitter: Duration,
    /// Whether jitter may reorder packets. When `false` (default), a packet
    /// never leaves before the one that entered before it: its deadline is
    /// raised to the previous packet's if needed.
    pub reorder: bool,
    /// Probability that a packet is dropped on entry (0..=1).
    pub loss: f64,
    /// Serialization rate in bit/s; `None` = infinitely fast. With a rate, a
    /// packet leaves `len * 8 / rate` after the previous one finished
    /// serializing, so saturation builds a queue instead of breaking the
    /// delay of the packets that do get through.
    pub rate_bps: Option<u64>,
    /// Most packets held (in serialization or in flight); beyond: tail drop.
    pub queue_packets: usize,
    /// Most bytes held; beyond: tail drop.
    pub queue_bytes: usize,
}

impl Default for DirectionConfig {
    fn default() -> Self {
        DirectionConfig {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            reorder: false,
            loss: 0.0,
            rate_bps: None,
            queue_packets: DEFAULT_QUEUE_PACKETS,
            queue_bytes: DEFAULT_QUEUE_BYTES,
        }
    }
}

impl DirectionConfig {
    /// A direction with just a one-way delay.
    pub fn with_delay(delay: Duration) -> Self {
        DirectionConfig {
            delay,
            ..Default::default()
        }
    }

    /// Checks the values (loss a probability, limits non-zero, rate > 0).
    pub fn validate(&self) -> Result<(), LinkError> {
        if !(self.loss.is_finite() && (0.0..=1.0).contains(&self.loss)) {
            return Err(LinkError::InvalidConfig {
                field: "loss",
                reason: format!("{} is not a probability (0..=1)", self.loss),
            });
        }
        if self.rate_bps == Some(0) {
            return Err(LinkError::InvalidConfig {
                field: "rate_bps",
                reason: "must be positive".into(),
            });
        }
        if self.queue_packets == 0 {
            return Err(LinkError::InvalidConfig {
                field: "queue_packets",
                reason: "must be at least 1".into(),
            });
        }
        if self.queue_bytes == 0 {
            return Err(LinkError::InvalidConfig {
                field: "queue_bytes",
                reason: "must be at least 1".into(),
            });
        }
        let too_long = Duration::from_secs(3600);
        if self.delay > too_long || self.jitter > too_long {
            return Err(LinkError::InvalidConfig {
                field: "delay",
                reason: "delay and jitter must be under an hour".into(),
            });
        }
        Ok(())
    }

    /// The direction described by resolved topology parameters (already
    /// validated by the topology; checked again here).
    pub fn from_params(p: &DirectionParams) -> Result<Self, LinkError> {
        let ms = |field: &'static str, v: f64| {
            Duration::try_from_secs_f64(v / 1000.0).map_err(|e| LinkError::InvalidConfig {
                field,
                reason: format!("{v} ms: {e}"),
            })
        };
        let rate_bps = match p.rate_mbit {
            None => None,
            Some(r) if r.is_finite() && r > 0.0 => Some(((r * 1e6).round() as u64).max(1)),
            Some(r) => {
                return Err(LinkError::InvalidConfig {
                    field: "rate_mbit",
                    reason: format!("{r} is not a positive rate"),
                });
            }
        };
        let d = DirectionConfig {
            delay: ms("delay_ms", p.delay_ms)?,
            jitter: ms("jitter_ms", p.jitter_ms)?,
            reorder: p.reorder,
            loss: p.loss,
            rate_bps,
            queue_packets: p
                .queue_packets
                .map_or(DEFAULT_QUEUE_PACKETS, |q| q as usize),
            queue_bytes: p.queue_bytes.map_or(DEFAULT_QUEUE_BYTES, |b| {
                usize::try_from(b).unwrap_or(usize::MAX)
            }),
        };
        d.validate()?;
        Ok(d)
    }
}

/// The whole configuration of an emulated link between ends `a` and `b`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Link name (thread names, logs).
    pub name: String,
    /// Packets read from end `a`'s fd and written to end `b`'s fd.
    pub a_to_b: DirectionConfig,
    /// Packets read from end `b`'s fd and written to end `a`'s fd.
    pub b_to_a: DirectionConfig,
    /// Seed of the loss/jitter generators (each direction derives its own).
    pub seed: u64,
    /// Largest packet accepted; longer reads are dropped and counted.
    pub max_packet: usize,
    /// Write every packet entering the link to this pcap file (and the
    /// direction/verdict side file next to it, see [`crate::linkemu`]).
    pub capture: Option<PathBuf>,
}

impl LinkConfig {
    /// A link with the same settings both ways, no capture, seed 0.
    pub fn symmetric(name: impl Into<String>, dir: DirectionConfig) -> Self {
        LinkConfig {
            name: name.into(),
            a_to_b: dir.clone(),
            b_to_a: dir,
            seed: 0,
            max_packet: DEFAULT_MAX_PACKET,
            capture: None,
        }
    }

    /// The configuration of the emulated `link` of `topo`; with `out_dir`,
    /// a link with `capture = true` writes `out_dir/pcap/<link>.pcap`.
    pub fn from_topology(
        topo: &Topology,
        link: &Link,
        out_dir: Option<&Path>,
    ) -> Result<Self, LinkError> {
        if link.kind != LinkKind::Emulated {
            return Err(LinkError::NotEmulated { link: link.name() });
        }
        let name = link.name();
        let capture = match (link.capture, out_dir) {
            (true, Some(dir)) => Some(pcap_path(dir, &name)),
            _ => None,
        };
        Ok(LinkConfig {
            a_to_b: DirectionConfig::from_params(&link.direction(LinkDir::AToB))?,
            b_to_a: DirectionConfig::from_params(&link.direction(LinkDir::BToA))?,
            seed: topo.link_seed(link),
            max_packet: DEFAULT_MAX_PACKET,
            capture,
            name,
        })
    }

    /// Checks both directions and the packet limit.
    pub fn validate(&self) -> Result<(), LinkError> {
        self.a_to_b.validate()?;
        self.b_to_a.validate()?;
        if !(1..=(1 << 20)).contains(&self.max_packet) {
            return Err(LinkError::InvalidConfig {
                field: "max_packet",
                reason: format!("{} outside 1..=1 MiB", self.max_packet),
            });
        }
        Ok(())
    }
}

/// Where the capture of link `name` goes under an output directory:
/// `out_dir/pcap/<name>.pcap`.
pub fn pcap_path(out_dir: &Path, name: &str) -> PathBuf {
    out_dir.join("pcap").join(format!("{name}.pcap"))
}

/// The side file of a capture: `<link>.pcap` -> `<link>.frames.csv`.
pub fn frames_path(pcap: &Path) -> PathBuf {
    pcap.with_extension("frames.csv")
}
