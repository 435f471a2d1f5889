//! The parts of the ledger stress suite (`tests/ledger_stress.rs`): a seeded plan, the fake
//! upstream's per-request behaviour, the gateway config, the replicas (in-process or the real
//! binary), the clients, and the invariants checked in SQL afterwards.

pub mod behaviour;
pub mod config;
pub mod invariants;
pub mod plan;
pub mod replicas;
pub mod run;
pub mod traffic;
