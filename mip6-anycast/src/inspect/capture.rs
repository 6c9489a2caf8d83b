//! Streaming reader of classic pcap and pcapng capture files.
//!
//! The file is read record by record through a bounded buffer: a record or
//! block longer than [`MAX_RECORD_LEN`] is refused, so memory use does not
//! depend on what a (possibly hostile) file claims. The global pcap header
//! and the pcapng blocks are decoded by the `pcap-file` crate; the framing
//! (lengths, endianness, end of file) is checked here, because `pcap-file`'s
//! own streaming reader allocates 8 MB up front and its pcapng timestamps
//! ignore `if_tsresol`.
//!
//! Link types are passed through as numbers (see `link.rs`).

use std::io::{ErrorKind, Read};

use pcap_file::pcap::PcapHeader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, TsResolution};

/// Largest record (classic pcap) or block (pcapng) accepted: 1 MiB, well
/// above the 256 KiB snapshot length of tcpdump and a 64 KiB GSO packet.
pub const MAX_RECORD_LEN: usize = 1 << 20;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

/// Why a capture (or one record of it) could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be read.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    BadMagic(u32),
    /// The file header (or first section header) is malformed.
    #[error("bad capture header: {0}")]
    BadHeader(String),
    /// The file ends inside a record or block.
    #[error("file ends inside {what} at offset {offset}: need {need} octets, have {have}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// File offset of the record or block.
        offset: u64,
        /// Octets it needs.
        need: u64,
        /// Octets the file still had.
        have: u64,
    },
    /// A record or block is longer than [`MAX_RECORD_LEN`].
    #[error("{what} at offset {offset} claims {len} octets (more than {MAX_RECORD_LEN})")]
    TooLong {
        /// Record or block.
        what: &'static str,
        /// File offset.
        offset: u64,
        /// The length it claims.
        len: u64,
    },
    /// A pcapng block length is not a multiple of 4 or below the minimum.
    #[error("pcapng block at offset {offset} has a bad length {len}")]
    BadBlockLength {
        /// File offset.
        offset: u64,
        /// The length found.
        len: u32,
    },
    /// A pcapng block was framed correctly but its body is malformed; the
    /// reader skips it and goes on.
    #[error("malformed pcapng block at offset {offset}: {reason}")]
    BadBlock {
        /// File offset.
        offset: u64,
        /// What `pcap-file` objected to.
        reason: String,
    },
    /// An enhanced packet block names an interface that was not described.
    #[error("pcapng packet at offset {offset} names unknown interface {interface}")]
    UnknownInterface {
        /// File offset.
        offset: u64,
        /// The interface id.
        interface: u32,
    },
}

impl CaptureError {
    /// True if reading cannot go on after this error (framing is lost);
    /// false for a single bad pcapng block, which is skipped.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            CaptureError::BadBlock { .. } | CaptureError::UnknownInterface { .. }
        )
    }
}

/// The container format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureFormat {
    /// Classic libpcap.
    Pcap,
    /// pcapng.
    Pcapng,
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Seconds since the Unix epoch.
    pub ts_sec: u64,
    /// Nanoseconds within the second.
    pub ts_nsec: u32,
    /// Link type (LINKTYPE_* number).
    pub link_type: u32,
    /// Length of the packet on the wire.
    pub orig_len: u64,
    /// The captured bytes (`caplen` = `data.len()`).
    pub data: Vec<u8>,
}

impl Frame {
    /// True if the capture holds fewer octets than the packet had.
    pub fn is_truncated(&self) -> bool {
        (self.data.len() as u64) < self.orig_len
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    /// Timestamp units per second, as a power: `base.pow(exp)`.
    base: u32,
    exp: u32,
    offset_secs: u64,
}

/// `PcapNgParser` has no `Debug`.
struct NgParser(PcapNgParser);

impl std::fmt::Debug for NgParser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PcapNgParser")
    }
}

#[derive(Debug)]
enum Kind {
    Pcap {
        big_endian: bool,
        nanos: bool,
        link_type: u32,
    },
    Pcapng {
        parser: Box<NgParser>,
        big_endian: bool,
        /// Interfaces of the current section; `None` for one whose
        /// description block was malformed (keeps later ids aligned).
        interfaces: Vec<Option<Interface>>,
    },
}

/// Reads frames one by one from a classic pcap or pcapng stream.
#[derive(Debug)]
pub struct CaptureReader<R> {
    src: R,
    kind: Kind,
    offset: u64,
    done: bool,
}

fn u32_at(b: &[u8], at: usize, big_endian: bool) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        w.copy_from_slice(s);
    }
    if big_endian {
        u32::from_be_bytes(w)
    } else {
        u32::from_le_bytes(w)
    }
}

/// Reads exactly `buf.len()` octets; returns how many were read (less only
/// at end of file).
fn read_full(src: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match src.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header (pcap) or first section header block
    /// (pcapng). An error here means the input is not a readable capture.
    pub fn new(mut src: R) -> Result<Self, CaptureError> {
        let mut head = [0u8; 24];
        let n = read_full(&mut src, &mut head)?;
        let magic = u32_at(&head, 0, true);
        if n < 4 {
            return Err(CaptureError::BadHeader(format!(
                "file too short ({n} octets)"
            )));
        }
        if magic == PCAPNG_SHB {
            return Self::new_pcapng(src, &head[..n]);
        }
        const PCAP_MAGICS: [u32; 4] = [0xa1b2_c3d4, 0xa1b2_3c4d, 0xd4c3_b2a1, 0x4d3c_b2a1];
        if !PCAP_MAGICS.contains(&magic) {
            return Err(CaptureError::BadMagic(magic));
        }
        if n < head.len() {
            return Err(CaptureError::Truncated {
                what: "pcap file header",
                offset: 0,
                need: 24,
                have: n as u64,
            });
        }
        let h = match PcapHeader::from_slice(&head) {
            Ok((_, h)) => h,
            Err(_) => return Err(CaptureError::BadMagic(magic)),
        };
        Ok(CaptureReader {
            src,
            kind: Kind::Pcap {
                big_endian: h.endianness == Endianness::Big,
                nanos: h.ts_resolution == TsResolution::NanoSecond,
                link_type: u32::from(h.datalink),
            },
            offset: 24,
            done: false,
        })
    }

    fn new_pcapng(src: R, head: &[u8]) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            src,
            kind: Kind::Pcap {
                big_endian: false,
                nanos: false,
                link_type: 0,
            },
            offset: 0,
            done: false,
        };
        let block = r.read_block_from(head)?.ok_or(CaptureError::Truncated {
            what: "pcapng section header block",
            offset: 0,
            need: 28,
            have: head.len() as u64,
        })?;
        let (bytes, big_endian) = block;
        let parser = match PcapNgParser::new(&bytes) {
            Ok((_, p)) => p,
            Err(e) => return Err(CaptureError::BadHeader(e.to_string())),
        };
        r.kind = Kind::Pcapng {
            parser: Box::new(NgParser(parser)),
            big_endian,
            interfaces: Vec::new(),
        };
        Ok(r)
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        match self.kind {
            Kind::Pcap { .. } => CaptureFormat::Pcap,
            Kind::Pcapng { .. } => CaptureFormat::Pcapng,
        }
    }

    /// The link type of a classic pcap file (pcapng has one per interface).
    pub fn link_type(&self) -> Option<u32> {
        match self.kind {
            Kind::Pcap { link_type, .. } => Some(link_type),
            Kind::Pcapng { .. } => None,
        }
    }

    /// The next frame; `None` at the end of the file or after a fatal
    /// error. Non-fatal errors ([`CaptureError::is_fatal`]) can be followed
    /// by more frames.
    pub fn next_frame(&mut self) -> Option<Result<Frame, CaptureError>> {
        if self.done {
            return None;
        }
        let r = match self.kind {
            Kind::Pcap { .. } => self.next_pcap(),
            Kind::Pcapng { .. } => self.next_pcapng(),
        };
        match r {
            Ok(None) => {
                self.done = true;
                None
            }
            Ok(Some(f)) => Some(Ok(f)),
            Err(e) => {
                self.done = e.is_fatal();
                Some(Err(e))
            }
        }
    }

    /// Reads `len` octets at the current offset into a fresh buffer.
    fn read_body(
        &mut self,
        what: &'static str,
        at: u64,
        len: usize,
    ) -> Result<Vec<u8>, CaptureError> {
        if len > MAX_RECORD_LEN {
            return Err(CaptureError::TooLong {
                what,
                offset: at,
                len: len as u64,
            });
        }
        let mut v = vec![0u8; len];
        let n = read_full(&mut self.src, &mut v)?;
        self.offset += n as u64;
        if n < len {
            return Err(CaptureError::Truncated {
                what,
                offset: at,
                need: len as u64,
                have: n as u64,
            });
        }
        Ok(v)
    }

    fn next_pcap(&mut self) -> Result<Option<Frame>, CaptureError> {
        let Kind::Pcap {
            big_endian,
            nanos,
            link_type,
        } = self.kind
        else {
            return Ok(None);
        };
        let at = self.offset;
        let mut h = [0u8; 16];
        let n = read_full(&mut self.src, &mut h)?;
        self.offset += n as u64;
        if n == 0 {
            return Ok(None);
        }
        if n < h.len() {
            return Err(CaptureError::Truncated {
                what: "pcap record header",
                offset: at,
                need: 16,
                have: n as u64,
            });
        }
        let ts_sec = u32_at(&h, 0, big_endian);
        let frac = u32_at(&h, 4, big_endian);
        let incl_len = u32_at(&h, 8, big_endian);
        let orig_len = u32_at(&h, 12, big_endian);
        let data = self.read_body("pcap record", at, incl_len as usize)?;
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        Ok(Some(Frame {
            ts_sec: u64::from(ts_sec) + frac_ns / 1_000_000_000,
            ts_nsec: (frac_ns % 1_000_000_000) as u32,
            link_type,
            orig_len: u64::from(orig_len),
            data,
        }))
    }

    /// Reads one whole pcapng block, of which the first `head` octets were
    /// already read. Returns its bytes and the byte order of its section
    /// (taken from the byte-order magic of a section header block), or
    /// `None` at a clean end of file.
    fn read_block_from(&mut self, head: &[u8]) -> Result<Option<(Vec<u8>, bool)>, CaptureError> {
        let at = self.offset;
        let (head, prefix) = head.split_at(head.len().min(12));
        let mut first = [0u8; 12];
        first[..head.len()].copy_from_slice(head);
        let n = head.len() + read_full(&mut self.src, &mut first[head.len()..])?;
        self.offset = at + (n + prefix.len()) as u64;
        if n == 0 {
            return Ok(None);
        }
        if n < first.len() {
            return Err(CaptureError::Truncated {
                what: "pcapng block header",
                offset: at,
                need: 12,
                have: n as u64,
            });
        }
        let big_endian = if u32_at(&first, 0, true) == PCAPNG_SHB {
            match u32_at(&first, 8, true) {
                PCAPNG_BOM => true,
                m if m.swap_bytes() == PCAPNG_BOM => false,
                m => {
                    return Err(CaptureError::BadHeader(format!(
                        "pcapng byte-order magic {m:#010x} at offset {at}"
                    )));
                }
            }
        } else {
            match &self.kind {
                Kind::Pcapng { big_endian, .. } | Kind::Pcap { big_endian, .. } => *big_endian,
            }
        };
        let len = u32_at(&first, 4, big_endian);
        let body = (len as usize).checked_sub(first.len() + prefix.len());
        let Some(body) = body.filter(|_| len.is_multiple_of(4)) else {
            return Err(CaptureError::BadBlockLength { offset: at, len });
        };
        let rest = self.read_body("pcapng block", at, body)?;
        let mut block = Vec::with_capacity(len as usize);
        block.extend_from_slice(&first);
        block.extend_from_slice(prefix);
        block.extend_from_slice(&rest);
        Ok(Some((block, big_endian)))
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame>, CaptureError> {
        loop {
            let at = self.offset;
            let Some((bytes, big_endian)) = self.read_block_from(&[])? else {
                return Ok(None);
            };
            let Kind::Pcapng {
                parser,
                big_endian: order,
                interfaces,
            } = &mut self.kind
            else {
                return Ok(None);
            };
            let bad = |e: pcap_file::PcapError| CaptureError::BadBlock {
                offset: at,
                reason: e.to_string(),
            };
            if u32_at(&bytes, 0, true) == PCAPNG_SHB {
                match PcapNgParser::new(&bytes) {
                    Ok((_, p)) => parser.0 = p,
                    Err(e) => return Err(CaptureError::BadHeader(e.to_string())),
                }
                *order = big_endian;
                interfaces.clear();
                continue;
            }
            let block = parser.0.next_block(&bytes);
            if u32_at(&bytes, 0, big_endian) == 1 && block.is_err() {
                interfaces.push(None);
            }
            let (iface, raw_ts, orig_len, data) = match block.map_err(bad)?.1 {
                Block::InterfaceDescription(d) => {
                    interfaces.push(Some(interface(&d)));
                    continue;
                }
                Block::EnhancedPacket(p) => (
                    p.interface_id,
                    // pcap-file stores the raw 64-bit timestamp as nanoseconds.
                    u64::try_from(p.timestamp.as_nanos()).unwrap_or(u64::MAX),
                    u64::from(p.original_len),
                    p.data.into_owned(),
                ),
                Block::Packet(p) => (
                    u32::from(p.interface_id),
                    p.timestamp,
                    u64::from(p.original_len),
                    p.data.into_owned(),
                ),
                Block::SimplePacket(p) => {
                    // The block body is padded to 4 octets; the packet is
                    // min(original length, snapshot length) of it.
                    let mut d = p.data.into_owned();
                    d.truncate(usize::try_from(p.original_len).unwrap_or(usize::MAX));
                    (0, 0, u64::from(p.original_len), d)
                }
                _ => continue,
            };
            let Some(Some(i)) = interfaces.get(iface as usize).copied() else {
                return Err(CaptureError::UnknownInterface {
                    offset: at,
                    interface: iface,
                });
            };
            let (ts_sec, ts_nsec) = i.split(raw_ts);
            return Ok(Some(Frame {
                ts_sec,
                ts_nsec,
                link_type: i.link_type,
                orig_len,
                data,
            }));
        }
    }
}

fn interface(
    d: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock<'_>,
) -> Interface {
    let mut i = Interface {
        link_type: u32::from(d.linktype),
        base: 10,
        exp: 6,
        offset_secs: 0,
    };
    for o in &d.options {
        match o {
            // pcapng: high bit clear = negative power of 10, set = of 2.
            InterfaceDescriptionOption::IfTsResol(r) => {
                (i.base, i.exp) = if r & 0x80 == 0 {
                    (10, u32::from(*r))
                } else {
                    (2, u32::from(r & 0x7f))
                };
            }
            InterfaceDescriptionOption::IfTsOffset(s) => i.offset_secs = *s,
            _ => {}
        }
    }
    i
}

impl Interface {
    /// Splits a raw timestamp into seconds and nanoseconds.
    fn split(&self, raw: u64) -> (u64, u32) {
        let Some(per_sec) = u128::from(self.base).checked_pow(self.exp) else {
            return (self.offset_secs, 0);
        };
        let raw = u128::from(raw);
        let secs = raw / per_sec;
        let nanos = (raw % per_sec) * 1_000_000_000 / per_sec;
        (
            u64::try_from(secs)
                .unwrap_or(u64::MAX)
                .saturating_add(self.offset_secs),
            nanos as u32,
        )
    }
}
