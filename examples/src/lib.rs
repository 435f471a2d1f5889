//! Holder crate for the `examples/` programs.
