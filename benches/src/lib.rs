//! Holder crate for the benches and the load harness.
