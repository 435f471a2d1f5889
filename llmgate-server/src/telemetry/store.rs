//! [`MeteredCreditStore`]: times every call into a credit store and counts its failures, by
//! backend and operation, without touching the stores themselves.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use llmgate_core::{
    Result,
    credits::{
        Credit, CreditOutcome, CreditStore, Hold, HoldRequest, LedgerWrite, Page, Transaction,
        UsageQuery, UsageRecord, UsageRow, Written,
    },
};
use metrics::{Counter, Histogram, Unit};

/// Backend call latency by backend and operation.
pub const BACKEND_DURATION: &str = "llmgate_backend_duration_seconds";
/// Backend calls that failed (the backend's fault: 5xx, not a refused hold), by backend and
/// operation.
pub const BACKEND_ERRORS: &str = "llmgate_backend_errors_total";

pub(super) fn describe() {
    metrics::describe_histogram!(
        BACKEND_DURATION,
        Unit::Seconds,
        "Backend call latency by backend and operation."
    );
    metrics::describe_counter!(
        BACKEND_ERRORS,
        "Backend calls that failed, by backend and operation."
    );
}

/// The credit store's operations, as labels.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Hold,
    Settle,
    Release,
    RecordUsage,
    Credit,
    Balance,
    Transactions,
    Usage,
    ReclaimExpired,
}

impl Operation {
    const ALL: [Operation; 9] = [
        Operation::Hold,
        Operation::Settle,
        Operation::Release,
        Operation::RecordUsage,
        Operation::Credit,
        Operation::Balance,
        Operation::Transactions,
        Operation::Usage,
        Operation::ReclaimExpired,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Operation::Hold => "hold",
            Operation::Settle => "settle",
            Operation::Release => "release",
            Operation::RecordUsage => "record_usage",
            Operation::Credit => "credit",
            Operation::Balance => "balance",
            Operation::Transactions => "transactions",
            Operation::Usage => "usage",
            Operation::ReclaimExpired => "reclaim_expired",
        }
    }
}

#[derive(Debug)]
struct Meters {
    seconds: Histogram,
    errors: Counter,
}

/// A [`CreditStore`] that records how long each call into `inner` takes and whether it failed.
/// Wrap the SQL ledger (`backend = "database"`) where it is built; the handles are taken then,
/// so install the metrics recorder first.
pub struct MeteredCreditStore {
    inner: Arc<dyn CreditStore>,
    meters: Box<[Meters]>,
}

impl std::fmt::Debug for MeteredCreditStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeteredCreditStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl MeteredCreditStore {
    pub fn new(backend: &'static str, inner: Arc<dyn CreditStore>) -> Self {
        let meters = Operation::ALL
            .iter()
            .map(|op| Meters {
                seconds: metrics::histogram!(BACKEND_DURATION, "backend" => backend, "operation" => op.as_str()),
                errors: metrics::counter!(BACKEND_ERRORS, "backend" => backend, "operation" => op.as_str()),
            })
            .collect();
        Self { inner, meters }
    }

    /// `inner` as the database behind the ledger.
    pub fn database(inner: Arc<dyn CreditStore>) -> Arc<dyn CreditStore> {
        Arc::new(Self::new("database", inner))
    }

    async fn timed<T>(&self, op: Operation, call: impl Future<Output = Result<T>>) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        let meters = &self.meters[op as usize];
        meters.seconds.record(started.elapsed().as_secs_f64());
        if let Err(error) = &result
            && error.status() >= 500
        {
            meters.errors.increment(1);
        }
        result
    }
}

#[async_trait]
impl llmgate_core::credits::forwarding::ForwardingCreditStore for MeteredCreditStore {
    fn inner(&self) -> &dyn CreditStore {
        &*self.inner
    }

    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        self.timed(Operation::Hold, self.inner.hold(request)).await
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.timed(Operation::Settle, self.inner.settle(hold, usage))
            .await
    }

    async fn release(&self, hold: &Hold) -> Result<()> {
        self.timed(Operation::Release, self.inner.release(hold))
            .await
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.timed(Operation::RecordUsage, self.inner.record_usage(usage))
            .await
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        self.timed(Operation::Credit, self.inner.credit(credit))
            .await
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        self.timed(Operation::Balance, self.inner.balance(user_id))
            .await
    }

    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        self.timed(
            Operation::Transactions,
            self.inner.transactions(user_id, page),
        )
        .await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.timed(Operation::Usage, self.inner.usage(query)).await
    }

    async fn reclaim_expired(&self) -> Result<u64> {
        self.timed(Operation::ReclaimExpired, self.inner.reclaim_expired())
            .await
    }

    /// A batch is one database call: its time is recorded once under each kind of write it
    /// carried (`hold`, `settle`, `record_usage`), and each failed write counts as an error of
    /// its kind.
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        let started = Instant::now();
        let results = self.inner.write_batch(writes).await;
        let took = started.elapsed().as_secs_f64();
        let kind = |write: &LedgerWrite| match write {
            LedgerWrite::Hold(_) => Operation::Hold,
            LedgerWrite::Settle { .. } | LedgerWrite::LeaseCharge(_) => Operation::Settle,
            LedgerWrite::Usage(_) => Operation::RecordUsage,
            LedgerWrite::Release(_) | LedgerWrite::LeaseReturn(_) => Operation::Release,
        };
        for op in [Operation::Hold, Operation::Settle, Operation::RecordUsage] {
            if writes.iter().any(|w| kind(w) as usize == op as usize) {
                self.meters[op as usize].seconds.record(took);
            }
        }
        for (write, result) in writes.iter().zip(&results) {
            if let Err(error) = result
                && error.status() >= 500
            {
                self.meters[kind(write) as usize].errors.increment(1);
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::{credits::CreditKind, memory::MemoryCreditStore};

    #[tokio::test]
    async fn calls_pass_through_unchanged() {
        let store = MeteredCreditStore::database(Arc::new(MemoryCreditStore::new()));
        store
            .credit(Credit {
                user_id: "ann".into(),
                kind: CreditKind::TopUp,
                amount_micros: 5,
                idempotency_key: "k".into(),
                reason: "r".into(),
            })
            .await
            .unwrap();
        assert_eq!(store.balance("ann").await.unwrap(), 5);
        let refused = store
            .hold(HoldRequest {
                user_id: "ann".into(),
                request_id: "r1".into(),
                amount_micros: 6,
                ttl_secs: 60,
                budget: None,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.status(), 402);
    }
}
