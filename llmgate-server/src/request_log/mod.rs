//! The request log as the server runs it: the store (the ledger's database), the queue that
//! writes to it off the response path, the retention task, and the recording each request
//! fills in (`Recording`).
//!
//! Contract: docs/request-log.md

mod log;
mod recording;

pub use log::RequestLog;
pub(crate) use recording::{Recording, Who};
