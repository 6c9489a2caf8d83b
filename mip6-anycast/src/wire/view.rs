//! The shared shape of every zero-copy view (smoltcp style).

/// Declares a view struct over `T: AsRef<[u8]>` with `new_unchecked`,
/// `new_checked` (which runs the type's own `check_len`) and `into_inner`.
macro_rules! view {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $name<T> {
            /// Wraps bytes without checking; getters panic on a short buffer.
            pub const fn new_unchecked(buffer: T) -> Self {
                $name { buffer }
            }

            /// Wraps bytes after `check_len` has accepted them.
            pub fn new_checked(buffer: T) -> $crate::wire::Result<Self> {
                let v = Self::new_unchecked(buffer);
                v.check_len()?;
                Ok(v)
            }

            /// Returns the underlying buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
        }
    };
}

/// Adds the RFC 8200 4 common extension-header fields (next header at 0,
/// Hdr Ext Len at 1 in 8-octet units not counting the first 8) to a view.
macro_rules! ext_header_fields {
    ($name:ident) => {
        impl<T: AsRef<[u8]>> $name<T> {
            /// Next header.
            pub fn next_header(&self) -> u8 {
                self.buffer.as_ref()[0]
            }

            /// Hdr Ext Len: 8-octet units, not counting the first 8 octets.
            pub fn hdr_ext_len(&self) -> u8 {
                self.buffer.as_ref()[1]
            }

            /// Header length in octets: `(hdr_ext_len + 1) * 8`.
            pub fn header_len(&self) -> usize {
                (usize::from(self.hdr_ext_len()) + 1) * 8
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets the next header.
            pub fn set_next_header(&mut self, nh: u8) {
                self.buffer.as_mut()[0] = nh;
            }

            /// Sets Hdr Ext Len.
            pub fn set_hdr_ext_len(&mut self, len: u8) {
                self.buffer.as_mut()[1] = len;
            }
        }
    };
}

pub(crate) use {ext_header_fields, view};
