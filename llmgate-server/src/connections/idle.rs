//! Closing connections that hold a socket without using it.
//!
//! Each connection has an [`Activity`]: how many of its requests are in flight (from the
//! request's head to the end of its response body) and since when it has had none.
//! [`Activity::idle_too_long`] completes when the connection should be closed:
//!
//! - before its first request, `header_read_timeout` after it opened: a client that connects
//!   and sends nothing, or its headers slowly, or stalls inside the HTTP/2 preface;
//! - between requests, `idle_timeout` after the last response ended: an idle keep-alive
//!   connection, an HTTP/2 connection without streams, a slow head of the next request.
//!
//! While a request is in flight there is no deadline here: its body has its own timeout
//! (`server.body_read_timeout_ms`), and a long answer (a stream whose first token takes a
//! while) is the upstream timeout's business.
//!
//! A request starting or ending only updates the counters; nothing wakes the watch. It
//! sleeps until the deadline it last read and then reads it again (while requests are in
//! flight, every `idle_timeout`). The watch runs in the connection's own task, so a wake from
//! a request would make the runtime poll that task once more and, on a multi-threaded
//! runtime, rouse an idle worker to look for work: a context switch per request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use llmgate_core::sync;
use tokio::time::Instant;

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// When the connection opened, then when its last request ended.
    idle_since: Instant,
    served_any: bool,
}

/// The request activity of one connection.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                idle_since: Instant::now(),
                served_any: false,
            }),
        })
    }

    /// The counters stay valid even if a holder panicked.
    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// A request started; it ends when the guard is dropped (with its response body).
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.in_flight += 1;
        state.served_any = true;
        InFlight(self.clone())
    }

    /// When the connection is to be closed if nothing starts meanwhile; `None` while a
    /// request is in flight.
    fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Instant> {
        let state = self.lock();
        if state.in_flight > 0 {
            return None;
        }
        let allowed = if state.served_any {
            idle_timeout
        } else {
            header_timeout
        };
        Some(state.idle_since + allowed)
    }

    /// Completes once the connection has gone without a request for too long (see the
    /// module doc).
    pub(crate) async fn idle_too_long(&self, header_timeout: Duration, idle_timeout: Duration) {
        loop {
            let now = Instant::now();
            match self.deadline(header_timeout, idle_timeout) {
                Some(deadline) if deadline <= now => return,
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                // A request that ends before the next look leaves a deadline
                // `idle_timeout` after its end, so that is later than the look.
                None => tokio::time::sleep_until(now + idle_timeout).await,
            }
        }
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            state.idle_since = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_millis(100);
    const IDLE: Duration = Duration::from_millis(250);

    #[tokio::test]
    async fn a_silent_connection_gets_the_header_timeout() {
        let activity = Activity::new();
        let opened = Instant::now();
        activity.idle_too_long(HEADER, IDLE).await;
        let took = opened.elapsed();
        assert!(took >= HEADER && took < IDLE, "{took:?}");
    }

    #[tokio::test]
    async fn a_request_in_flight_holds_the_connection_open_and_idleness_counts_from_its_end() {
        let activity = Activity::new();
        let request = activity.begin();
        let watch = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle_too_long(HEADER, IDLE).await }
        });
        tokio::time::sleep(IDLE * 2).await;
        assert!(!watch.is_finished());
        let ended = Instant::now();
        drop(request);
        watch.await.unwrap();
        let took = ended.elapsed();
        assert!(took >= IDLE && took < IDLE * 2, "{took:?}");
    }
}
