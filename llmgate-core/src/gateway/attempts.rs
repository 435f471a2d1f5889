//! What each upstream call of a request did: the deployment called, how it ended and how
//! long it took. The retry loop pushes one record per call; a success carries them on its
//! [`RouteInfo`](super::RouteInfo), a failure hands them to the caller's [`AttemptLog`].
//!
//! Recording is cheap on purpose: a record borrows the deployment (`Arc`), copies the error's
//! kind and status, and formats nothing; the only allocation is the request's one `Vec`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::catalog::Deployment;
use crate::error::{Error, ErrorKind};

/// One upstream call.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    /// The deployment called (its `provider` and `name`).
    pub deployment: Arc<Deployment>,
    /// `None` when the call answered; else how it failed.
    pub failure: Option<AttemptFailure>,
    /// From sending the request to the answer (JSON) or the first chunk (stream).
    pub latency: Duration,
}

/// How a call failed: the error's kind and the HTTP status it carries (the upstream's own
/// status when there was one, else the gateway's for that kind: 504 for a timeout, 502 for a
/// refused connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFailure {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The status it came with.
    pub status: u16,
}

impl AttemptFailure {
    pub(super) fn of(error: &Error) -> Self {
        Self {
            kind: error.kind(),
            status: error.upstream_status().unwrap_or_else(|| error.status()),
        }
    }
}

impl AttemptRecord {
    /// The HTTP status this call ended with (200 for an answer).
    pub fn status(&self) -> u16 {
        self.failure.map_or(200, |failure| failure.status)
    }
}

impl PartialEq for AttemptRecord {
    fn eq(&self, other: &Self) -> bool {
        self.deployment.name == other.deployment.name
            && self.deployment.provider == other.deployment.provider
            && self.failure == other.failure
            && self.latency == other.latency
    }
}

impl Eq for AttemptRecord {}

/// Where a request that fails leaves the calls it made (a success has them on its
/// `RouteInfo`). Put one on the [`Caller`](crate::Caller) (`with_attempt_log`) and read it
/// after the error came back. Cloning shares the log.
#[derive(Debug, Clone, Default)]
pub struct AttemptLog(Arc<Mutex<Vec<AttemptRecord>>>);

impl AttemptLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls a failed request made, taken out of the log.
    pub fn take(&self) -> Vec<AttemptRecord> {
        std::mem::take(&mut *crate::sync::lock(&self.0))
    }

    pub(super) fn put(&self, records: Vec<AttemptRecord>) {
        *crate::sync::lock(&self.0) = records;
    }
}
