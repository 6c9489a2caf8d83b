//! The node channel's cryptography (sans-IO): a Noise handshake with the
//! group's pre-shared key, then two independent directions of
//! authenticated encryption.
//!
//! # Why `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`
//! Members share one group secret and have no per-member key pairs in
//! their configuration, so the pre-shared key from
//! [`KeyHierarchy::node_channel_psk`](crate::crypto::KeyHierarchy::node_channel_psk)
//! is the only credential. `NNpsk0` authenticates exactly that (both sides
//! prove the PSK; the first message already fails without it) and adds
//! ephemeral X25519 for forward secrecy; `KK`/`XX` would need static keys we
//! would have to distribute and pin, for no gain in a group whose members
//! trust each other equally. Identity (name, care-of address, roles) is
//! therefore a claim *inside* the authenticated channel and is checked
//! against the member list.
//!
//! The responder's hello rides in handshake message 2 (encrypted under the
//! fresh `ee` key); the initiator's hello is the first transport record.
//! Message 1 alone can be replayed by an eavesdropper, but the replayer can
//! never produce that transport record, so a responder only accepts a peer
//! after it.
//!
//! Transport frames use implicit nonces counting up from 0 per direction
//! (Noise 5.1): a replayed, reordered or dropped frame fails to decrypt.

use std::sync::Arc;

use snow::{HandshakeState, StatelessTransportState};

use super::error::ChannelError;
use super::frame::{
    ChannelLimits, Completed, MAX_FRAME, Reassembly, RecordKind, TAG_LEN, put_len, split_records,
};
use crate::crypto::NodeChannelPsk;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Prologue bound into the handshake hash (protocol and version).
pub const PROLOGUE: &[u8] = b"mip6-anycast node channel v1";

fn noise_err(e: snow::Error) -> ChannelError {
    ChannelError::Noise(e)
}

/// One side of the handshake.
pub struct Handshake {
    hs: HandshakeState,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("initiator", &self.hs.is_initiator())
            .field("finished", &self.hs.is_handshake_finished())
            .finish()
    }
}

impl Handshake {
    fn build(psk: &NodeChannelPsk, initiator: bool) -> Result<Self, ChannelError> {
        let params = NOISE_PARAMS.parse().map_err(noise_err)?;
        let b = snow::Builder::new(params)
            .psk(0, psk.expose_secret())
            .and_then(|b| b.prologue(PROLOGUE))
            .map_err(noise_err)?;
        let hs = if initiator {
            b.build_initiator()
        } else {
            b.build_responder()
        }
        .map_err(noise_err)?;
        Ok(Self { hs })
    }

    /// The dialing side.
    pub fn initiator(psk: &NodeChannelPsk) -> Result<Self, ChannelError> {
        Self::build(psk, true)
    }

    /// The accepting side.
    pub fn responder(psk: &NodeChannelPsk) -> Result<Self, ChannelError> {
        Self::build(psk, false)
    }

    /// Appends the next handshake message carrying `payload` as one frame.
    pub fn write(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        let mut msg = vec![0u8; MAX_FRAME];
        let n = self
            .hs
            .write_message(payload, &mut msg)
            .map_err(noise_err)?;
        put_len(out, n);
        out.extend_from_slice(
            msg.get(..n)
                .ok_or(ChannelError::Noise(snow::Error::Input))?,
        );
        Ok(())
    }

    /// Reads one handshake frame (without its length prefix); returns its
    /// payload. A frame that does not authenticate is
    /// [`ChannelError::HandshakeAuth`].
    pub fn read(&mut self, frame: &[u8]) -> Result<Vec<u8>, ChannelError> {
        let mut payload = vec![0u8; frame.len()];
        let n = self
            .hs
            .read_message(frame, &mut payload)
            .map_err(|e| match e {
                snow::Error::Decrypt | snow::Error::Dh | snow::Error::Input => {
                    ChannelError::HandshakeAuth
                }
                e => ChannelError::Noise(e),
            })?;
        payload.truncate(n);
        Ok(payload)
    }

    /// Both directions of the established channel.
    pub fn finish(self, limits: &ChannelLimits) -> Result<(Sealer, Opener), ChannelError> {
        let ts = Arc::new(self.hs.into_stateless_transport_mode().map_err(noise_err)?);
        Ok((
            Sealer {
                ts: ts.clone(),
                nonce: 0,
                plain: Vec::with_capacity(MAX_FRAME),
                limits: *limits,
            },
            Opener {
                ts,
                nonce: 0,
                plain: vec![0u8; MAX_FRAME],
                reassembly: Reassembly::new(limits),
            },
        ))
    }
}

/// The sending direction: seals messages into frames.
pub struct Sealer {
    ts: Arc<StatelessTransportState>,
    nonce: u64,
    plain: Vec<u8>,
    limits: ChannelLimits,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Sealer {
    fn seal_record(
        &mut self,
        kind: RecordKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), ChannelError> {
        if self.nonce == u64::MAX {
            return Err(ChannelError::NonceExhausted);
        }
        self.plain.clear();
        self.plain.push(kind as u8);
        self.plain.extend_from_slice(data);
        let len = self.plain.len() + TAG_LEN;
        put_len(out, len);
        let start = out.len();
        out.resize(start + len, 0);
        let dst = out
            .get_mut(start..)
            .ok_or(ChannelError::Noise(snow::Error::Input))?;
        self.ts
            .write_message(self.nonce, &self.plain, dst)
            .map_err(noise_err)?;
        self.nonce += 1;
        Ok(())
    }

    /// Appends the frames of one application message to `out`.
    pub fn seal_message(&mut self, msg: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        if msg.len() > self.limits.max_message {
            return Err(ChannelError::SendTooLong {
                len: msg.len() as u64,
                limit: self.limits.max_message as u64,
            });
        }
        split_records(msg, |kind, data| self.seal_record(kind, data, out))
    }

    /// Appends the hello record (the initiator's first transport record;
    /// `Channel` sends it).
    pub fn seal_hello(&mut self, hello: &[u8], out: &mut Vec<u8>) -> Result<(), ChannelError> {
        self.seal_record(RecordKind::Hello, hello, out)
    }

    /// Frames sealed so far.
    #[must_use]
    pub fn frames_sealed(&self) -> u64 {
        self.nonce
    }
}

/// The receiving direction: opens frames, reassembles messages.
pub struct Opener {
    ts: Arc<StatelessTransportState>,
    nonce: u64,
    plain: Vec<u8>,
    reassembly: Reassembly,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Opener {
    /// Opens one transport frame (without its length prefix).
    pub(crate) fn open(&mut self, frame: &[u8]) -> Result<Completed, ChannelError> {
        if self.nonce == u64::MAX {
            return Err(ChannelError::NonceExhausted);
        }
        let n = self
            .ts
            .read_message(self.nonce, frame, &mut self.plain)
            .map_err(|e| match e {
                snow::Error::Decrypt | snow::Error::Input => ChannelError::Decrypt,
                e => ChannelError::Noise(e),
            })?;
        self.nonce += 1;
        let record = self
            .plain
            .get(..n)
            .ok_or(ChannelError::Noise(snow::Error::Input))?;
        self.reassembly.push(record)
    }

    /// Opens one frame that must complete an application message or be a
    /// piece of one (`Ok(None)`); a hello here is a [`ChannelError::BadRecord`].
    pub fn open_message(&mut self, frame: &[u8]) -> Result<Option<Vec<u8>>, ChannelError> {
        match self.open(frame)? {
            Completed::Nothing => Ok(None),
            Completed::Message(m) => Ok(Some(m)),
            Completed::Hello(_) => Err(ChannelError::BadRecord(Some(RecordKind::Hello as u8))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{GroupSecret, KeyHierarchy};
    use crate::group::frame::{LEN_PREFIX, frame_len};

    fn psk(fill: u8) -> NodeChannelPsk {
        KeyHierarchy::new(&GroupSecret::new(&[fill; 32]).unwrap()).node_channel_psk()
    }

    /// Splits a buffer of frames into frame bodies.
    fn frames(buf: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut rest = buf;
        while !rest.is_empty() {
            let (p, tail) = rest.split_at(LEN_PREFIX);
            let n = frame_len(p.try_into().unwrap()).unwrap();
            let (f, tail) = tail.split_at(n);
            out.push(f);
            rest = tail;
        }
        out
    }

    fn handshake(
        a: &NodeChannelPsk,
        b: &NodeChannelPsk,
    ) -> Result<[(Sealer, Opener); 2], ChannelError> {
        let (mut i, mut r) = (Handshake::initiator(a)?, Handshake::responder(b)?);
        let mut m1 = Vec::new();
        i.write(&[], &mut m1)?;
        assert!(r.read(frames(&m1)[0])?.is_empty());
        let mut m2 = Vec::new();
        r.write(b"responder hello", &mut m2)?;
        assert_eq!(i.read(frames(&m2)[0])?, b"responder hello");
        let l = ChannelLimits::default();
        Ok([i.finish(&l)?, r.finish(&l)?])
    }

    #[test]
    fn messages_round_trip_both_ways() {
        let [(mut is, mut io), (mut rs, mut ro)] = handshake(&psk(1), &psk(1)).unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for msg in [&b""[..], b"x", &big] {
            let mut wire = Vec::new();
            is.seal_message(msg, &mut wire).unwrap();
            let got: Vec<Vec<u8>> = frames(&wire)
                .into_iter()
                .filter_map(|f| ro.open_message(f).unwrap())
                .collect();
            assert_eq!(got, vec![msg.to_vec()]);
            let mut back = Vec::new();
            rs.seal_message(msg, &mut back).unwrap();
            let got: Vec<Vec<u8>> = frames(&back)
                .into_iter()
                .filter_map(|f| io.open_message(f).unwrap())
                .collect();
            assert_eq!(got, vec![msg.to_vec()]);
        }
    }

    #[test]
    fn wrong_psk_fails_on_the_first_message() {
        let mut i = Handshake::initiator(&psk(1)).unwrap();
        let mut r = Handshake::responder(&psk(2)).unwrap();
        let mut m1 = Vec::new();
        i.write(&[], &mut m1).unwrap();
        assert!(matches!(
            r.read(frames(&m1)[0]),
            Err(ChannelError::HandshakeAuth)
        ));
    }

    #[test]
    fn tampered_replayed_and_reordered_frames_fail() {
        let [(mut is, _), (_, mut ro)] = handshake(&psk(3), &psk(3)).unwrap();
        let (mut a, mut b) = (Vec::new(), Vec::new());
        is.seal_message(b"first", &mut a).unwrap();
        is.seal_message(b"second", &mut b).unwrap();
        let (fa, fb) = (frames(&a)[0].to_vec(), frames(&b)[0].to_vec());
        // Reordered: the second frame first.
        assert!(matches!(ro.open_message(&fb), Err(ChannelError::Decrypt)));
        assert_eq!(ro.open_message(&fa).unwrap().unwrap(), b"first");
        // Replayed.
        assert!(matches!(ro.open_message(&fa), Err(ChannelError::Decrypt)));
        // Tampered, every position.
        for pos in 0..fb.len() {
            let mut t = fb.clone();
            t[pos] ^= 0x01;
            assert!(matches!(ro.open_message(&t), Err(ChannelError::Decrypt)));
        }
        // Truncated.
        assert!(matches!(
            ro.open_message(&fb[..fb.len() - 1]),
            Err(ChannelError::Decrypt)
        ));
        assert_eq!(ro.open_message(&fb).unwrap().unwrap(), b"second");
    }

    #[test]
    fn send_limit_is_enforced() {
        let [(mut is, _), _] = handshake(&psk(4), &psk(4)).unwrap();
        is.limits.max_message = 10;
        assert!(matches!(
            is.seal_message(&[0; 11], &mut Vec::new()),
            Err(ChannelError::SendTooLong { len: 11, limit: 10 })
        ));
    }
}
