//! Crypto (layer 2): RFC 6275 5.2.5 Return Routability, RFC 4285 MN-HA auth, HKDF hierarchy.
