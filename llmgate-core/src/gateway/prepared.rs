//! A request ready to try: validated, with its candidates planned and its hold placed.

use std::sync::Arc;
use std::time::Instant;

use super::attempts::AttemptLog;
use super::ledger::HoldGuard;
use super::plan::Attempt;
use crate::chat::ChatRequest;
use crate::power::PowerLevel;

/// A request ready to try: validated, with its candidates planned and its hold placed.
pub(super) struct Prepared {
    pub(super) request: ChatRequest,
    pub(super) request_id: Arc<str>,
    pub(super) power_level: PowerLevel,
    pub(super) attempts: Vec<Attempt>,
    pub(super) hold: HoldGuard,
    pub(super) prompt_estimate: u64,
    pub(super) seed: u64,
    /// When the gateway took the request (time to first token counts from here).
    pub(super) started: Instant,
    /// The caller's log for the calls of a failed request.
    pub(super) attempt_log: Option<AttemptLog>,
}
