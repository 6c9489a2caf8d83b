//! Wire formats (layer 1): IPv6, extension headers, Mobility Header, IPv6-in-IPv6.
