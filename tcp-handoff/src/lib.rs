//! Live TCP connection handoff for Linux with `TCP_REPAIR`.
