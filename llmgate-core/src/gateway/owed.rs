//! Ledger work a request still owes: settling or releasing its hold, or recording its usage.
//!
//! Each request carries an [`Owed`] from the moment it is accepted until its ledger write has
//! finished, including writes that run on a background task after the client went away. A
//! server shutting down waits for [`Settlements::idle`] so that no hold is left open and no
//! usage record is lost when the process exits.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::Gauge;
use tokio::sync::Notify;

/// Counts the requests whose ledger work is not done yet.
#[derive(Debug, Default)]
pub(crate) struct Settlements {
    open: AtomicUsize,
    idle: Notify,
}

impl Settlements {
    /// A request starts owing its ledger work.
    pub fn begin(self: &Arc<Self>) -> Owed {
        self.open.fetch_add(1, Ordering::AcqRel);
        Owed {
            settlements: self.clone(),
            hold: None,
        }
    }

    /// Requests whose ledger work is not done yet.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Completes once no request owes ledger work.
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            let mut notified = std::pin::pin!(notified);
            // Register before checking, so a decrement in between still wakes us.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One request's outstanding ledger work; dropping it says the work is done (or abandoned to
/// the hold's expiry after a logged failure).
#[derive(Debug)]
pub(crate) struct Owed {
    settlements: Arc<Settlements>,
    /// The holds-outstanding gauge, while this request has a hold.
    hold: Option<Gauge>,
}

impl Owed {
    /// The request now holds credits.
    pub fn hold_placed(&mut self, gauge: &Gauge) {
        if self.hold.is_none() {
            gauge.increment(1.0);
            self.hold = Some(gauge.clone());
        }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        if let Some(gauge) = self.hold.take() {
            gauge.decrement(1.0);
        }
        if self.settlements.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.settlements.idle.notify_waiters();
        }
    }
}

/// Run a ledger write on its own task, so that a caller who goes away mid-write (a client
/// disconnecting, a connection cut at shutdown) cannot leave it half done. `None` when the
/// task panicked. Outside a Tokio runtime the write runs inline.
pub(crate) async fn detached<T: Send + 'static>(
    write: impl Future<Output = T> + Send + 'static,
) -> Option<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => runtime.spawn(write).await.ok(),
        Err(_) => Some(write.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_every_owed_write() {
        let settlements = Arc::new(Settlements::default());
        settlements.idle().await;
        let first = settlements.begin();
        let second = settlements.begin();
        assert_eq!(settlements.open(), 2);
        let waiter = tokio::spawn({
            let settlements = settlements.clone();
            async move { settlements.idle().await }
        });
        drop(first);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one write is still owed");
        drop(second);
        waiter.await.unwrap();
        assert_eq!(settlements.open(), 0);
    }

    #[tokio::test]
    async fn a_detached_write_finishes_when_its_caller_is_dropped() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let caller = tokio::spawn(detached(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = done_tx.send(());
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
        caller.abort();
        done_rx.await.unwrap();
    }
}
