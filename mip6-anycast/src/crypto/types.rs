//! Fixed-size byte newtypes shared by the crypto modules.
//!
//! Secret types (keys, keygen tokens, nonces) get a redacted `Debug`, an
//! equality that runs in constant time, and an explicit `expose_secret()`
//! accessor so that every place that reads the raw bytes is easy to find.
//! Public types (cookies, authenticators) print their bytes in hex.

use std::fmt;

/// A byte string of the wrong length was given where a fixed size is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be {expected} bytes, got {got}")]
pub struct LengthError {
    /// The type that was being built.
    pub what: &'static str,
    /// Its fixed length.
    pub expected: usize,
    /// The length that was given.
    pub got: usize,
}

/// Writes bytes as lower-case hex.
pub(crate) fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

pub(crate) fn array_from_slice<const N: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<[u8; N], LengthError> {
    <[u8; N]>::try_from(bytes).map_err(|_| LengthError {
        what,
        expected: N,
        got: bytes.len(),
    })
}

/// Items every fixed-size byte newtype has: `LEN`, `from_bytes`,
/// `TryFrom<&[u8]>` (a wrong length is a [`LengthError`]).
macro_rules! fixed_bytes_common {
    ($name:ident, $len:expr) => {
        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Wraps raw bytes.
            #[must_use]
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }
        }

        impl TryFrom<&[u8]> for $name {
            type Error = $crate::crypto::LengthError;

            fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
                $crate::crypto::types::array_from_slice(stringify!($name), bytes).map(Self)
            }
        }
    };
}

/// Defines a secret fixed-size byte newtype: redacted `Debug`, constant-time
/// `PartialEq`, `expose_secret`, `generate`, plus [`fixed_bytes_common`].
macro_rules! secret_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name([u8; $len]);

        $crate::crypto::types::fixed_bytes_common!($name, $len);

        impl $name {
            /// The raw secret bytes. Every caller is a place where key
            /// material leaves this type: keep them few.
            #[must_use]
            pub const fn expose_secret(&self) -> &[u8; $len] {
                &self.0
            }

            /// Draws fresh random bytes from `rng`.
            pub fn generate(
                rng: &mut dyn $crate::crypto::RandomSource,
            ) -> Result<Self, $crate::crypto::RandomError> {
                let mut b = [0u8; $len];
                rng.fill(&mut b)?;
                Ok(Self(b))
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted>)"))
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                $crate::crypto::ct_eq(&self.0, &other.0)
            }
        }

        impl Eq for $name {}
    };
}

/// Defines a public fixed-size byte newtype: hex `Debug`, ordinary equality,
/// `as_bytes`, plus [`fixed_bytes_common`].
macro_rules! public_bytes {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; $len]);

        $crate::crypto::types::fixed_bytes_common!($name, $len);

        impl $name {
            /// The raw bytes, as they go on the wire.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!(stringify!($name), "("))?;
                $crate::crypto::types::write_hex(f, &self.0)?;
                write!(f, ")")
            }
        }
    };
}

pub(crate) use fixed_bytes_common;
pub(crate) use public_bytes;
pub(crate) use secret_bytes;
