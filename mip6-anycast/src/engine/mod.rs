//! The tunnel engine (layer 4): TUN devices, raw sockets, netlink, tables.
