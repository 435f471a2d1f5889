//! One write on the queue, and how many the writer commits together.

use tokio::sync::OwnedSemaphorePermit;

use crate::credits::{HoldRequest, LedgerWrite};
use crate::gateway::owed::Owed;

/// The most writes committed together.
pub(super) const MAX_BATCH: usize = 512;

/// One queued write, with the work it settles and its place in the queue.
pub(super) struct Queued {
    /// Its number in the queue, from 1 (set as it is sent).
    pub seq: u64,
    pub write: LedgerWrite,
    pub owed: Option<Owed>,
    /// How often it failed and was tried again.
    pub tries: u32,
    /// A hold reserved in memory: the number of its provisional id.
    pub provisional: Option<u64>,
    _slot: OwnedSemaphorePermit,
}

impl Queued {
    /// A write to queue in the room `slot` holds.
    pub fn new(write: LedgerWrite, owed: Option<Owed>, slot: OwnedSemaphorePermit) -> Self {
        Self {
            seq: 0,
            write,
            owed,
            tries: 0,
            provisional: None,
            _slot: slot,
        }
    }

    /// The write of a hold reserved in memory under provisional number `number`.
    pub fn reserved_hold(request: HoldRequest, number: u64, slot: OwnedSemaphorePermit) -> Self {
        Self {
            provisional: Some(number),
            ..Self::new(LedgerWrite::Hold(request), None, slot)
        }
    }
}
