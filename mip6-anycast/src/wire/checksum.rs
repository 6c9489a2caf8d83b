//! Internet checksum (RFC 1071) over the IPv6 upper-layer pseudo-header
//! (RFC 8200 8.1), as used by the Mobility Header (RFC 6275 6.1.1).

use std::net::Ipv6Addr;

/// Adds `data` to a running one's-complement sum (not yet folded).
///
/// An odd trailing byte is padded with a zero byte, as RFC 1071 says.
pub fn sum(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Four 16-bit words per 8 bytes; u64 cannot overflow for any
        // packet an IPv6 payload length can describe.
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += (w >> 48) + ((w >> 32) & 0xffff) + ((w >> 16) & 0xffff) + (w & 0xffff);
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a running sum into 16 bits (without complementing).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Sum of the RFC 8200 8.1 pseudo-header: source, destination,
/// upper-layer packet length, three zero octets and the next header.
pub fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, upper_len: u32) -> u64 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += u64::from(upper_len >> 16) + u64::from(upper_len & 0xffff);
    acc + u64::from(next_header)
}

/// The checksum to store in an upper-layer header whose checksum field is
/// zero in `data`: the one's complement of the one's complement sum of the
/// pseudo-header and `data`.
pub fn compute(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> u16 {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    !fold(sum(pseudo_header_sum(src, dst, next_header, len), data))
}

/// True if `data` (with its checksum field in place) verifies.
pub fn verify(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, data: &[u8]) -> bool {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    fold(sum(pseudo_header_sum(src, dst, next_header, len), data)) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(0, &data)), 0xddf2);
        // Same bytes through the 2-byte path.
        assert_eq!(fold(sum(sum(0, &data[..4]), &data[4..])), 0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(0, &[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn compute_then_verify() {
        let s: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut data = vec![59u8, 0, 0, 0, 0, 0, 1, 2, 3];
        let c = compute(&s, &d, 135, &data);
        data[4..6].copy_from_slice(&c.to_be_bytes());
        assert!(verify(&s, &d, 135, &data));
        data[8] ^= 1;
        assert!(!verify(&s, &d, 135, &data));
    }
}
