//! Type-length-value options as used by Hop-by-Hop/Destination Options
//! (RFC 8200 4.2) and Mobility Header options (RFC 6275 6.2): type 0 is
//! Pad1 (a single octet), every other type has a length octet.

use super::error::{Error, Result};

/// Option type of Pad1 (in both option spaces).
pub const PAD1: u8 = 0;
/// Option type of PadN (in both option spaces).
pub const PADN: u8 = 1;

/// One option as found in the bytes, padding included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Offset of the option type octet from the start of the enclosing header.
    pub offset: usize,
    /// Option type.
    pub opt_type: u8,
    /// Option data (empty for Pad1).
    pub data: &'a [u8],
}

impl RawOption<'_> {
    /// True for Pad1 and PadN.
    pub fn is_padding(&self) -> bool {
        self.opt_type == PAD1 || self.opt_type == PADN
    }

    /// Octets the option occupies (1 for Pad1, else 2 + data).
    pub fn wire_len(&self) -> usize {
        if self.opt_type == PAD1 {
            1
        } else {
            2 + self.data.len()
        }
    }
}

/// Iterator over the options in `header[start..end]`; offsets are relative
/// to the start of `header`. Yields one error and then stops if an option
/// runs past `end`.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    header: &'a [u8],
    pos: usize,
    end: usize,
    what: &'static str,
}

impl<'a> OptionIter<'a> {
    /// Options of `header` between `start` and `end` (clamped to the header).
    pub fn new(header: &'a [u8], start: usize, end: usize, what: &'static str) -> Self {
        let end = end.min(header.len());
        OptionIter {
            header,
            pos: start.min(end),
            end,
            what,
        }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<RawOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let offset = self.pos;
        let opt_type = *self.header.get(offset)?;
        if opt_type == PAD1 {
            self.pos += 1;
            return Some(Ok(RawOption {
                offset,
                opt_type,
                data: &[],
            }));
        }
        let fail = |s: &mut Self, need: usize| {
            s.pos = s.end;
            Some(Err(Error::Truncated {
                what: s.what,
                need,
                have: s.end - offset,
            }))
        };
        let Some(&len) = self
            .header
            .get(offset + 1)
            .filter(|_| offset + 1 < self.end)
        else {
            return fail(self, 2);
        };
        let stop = offset + 2 + usize::from(len);
        if stop > self.end {
            return fail(self, 2 + usize::from(len));
        }
        self.pos = stop;
        Some(Ok(RawOption {
            offset,
            opt_type,
            data: &self.header[offset + 2..stop],
        }))
    }
}

/// Padding needed before an option at `pos` with alignment `x`n+`y`
/// (RFC 8200 4.2 / RFC 6275 6.2 notation; `x <= 1` means none).
pub fn align_pad(pos: usize, x: usize, y: usize) -> usize {
    if x <= 1 { 0 } else { (x + y % x - pos % x) % x }
}

/// True if `pos` satisfies the alignment `x`n+`y`.
pub fn is_aligned(pos: usize, x: usize, y: usize) -> bool {
    align_pad(pos, x, y) == 0
}

/// Writes `n` octets of padding at `buf[0..n]`: Pad1 for one octet,
/// otherwise a PadN with zero data (RFC 8200 4.2, RFC 6275 6.2.1/6.2.2).
/// `n` must be at most 257 and `buf` at least `n` long.
pub(crate) fn write_padding(buf: &mut [u8], n: usize) {
    match n {
        0 => {}
        1 => buf[0] = PAD1,
        _ => {
            buf[0] = PADN;
            buf[1] = (n - 2) as u8;
            buf[2..n].fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_math() {
        assert_eq!(align_pad(2, 8, 6), 4);
        assert_eq!(align_pad(6, 8, 6), 0);
        assert_eq!(align_pad(7, 8, 6), 7);
        assert_eq!(align_pad(12, 8, 2), 6);
        assert_eq!(align_pad(13, 2, 0), 1);
        assert_eq!(align_pad(12, 4, 1), 1);
        assert_eq!(align_pad(5, 1, 0), 0);
        assert!(is_aligned(42, 8, 2));
    }

    #[test]
    fn iterates_and_stops_on_overrun() {
        let h = [0u8, 0, PAD1, PADN, 1, 0, 9, 5, 1, 2];
        let v: Vec<_> = OptionIter::new(&h, 2, h.len(), "opt").collect();
        assert_eq!(v.len(), 3);
        assert_eq!(
            v[0],
            Ok(RawOption {
                offset: 2,
                opt_type: PAD1,
                data: &[]
            })
        );
        assert_eq!(
            v[1],
            Ok(RawOption {
                offset: 3,
                opt_type: PADN,
                data: &[0]
            })
        );
        assert_eq!(
            v[2],
            Err(Error::Truncated {
                what: "opt",
                need: 7,
                have: 4
            })
        );
        // A lone type octet at the very end has no length octet.
        let h = [0u8, 0, 7];
        let v: Vec<_> = OptionIter::new(&h, 2, 3, "opt").collect();
        assert_eq!(
            v,
            vec![Err(Error::Truncated {
                what: "opt",
                need: 2,
                have: 1
            })]
        );
    }
}
