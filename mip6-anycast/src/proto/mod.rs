//! Sans-IO protocol state machines (layer 3).
