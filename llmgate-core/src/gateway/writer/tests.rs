//! The writer's unit tests.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use metrics::Counter;

use super::LedgerWriter;
use super::task::{LINGER, USAGE_LINGER};
use crate::credits::forwarding::ForwardingCreditStore;
use crate::credits::{
    Credit, CreditKind, CreditStore, HoldRequest, KeySource, LedgerWrite, Page, TransactionKind,
    UsageQuery, UsageRecord, Written, write_one_by_one,
};
use crate::error::{Error, Result};
use crate::memory::MemoryCreditStore;

fn usage(request_id: &str) -> UsageRecord {
    UsageRecord {
        user_id: "u".into(),
        request_id: request_id.into(),
        model: "m".into(),
        provider: "p".into(),
        key_source: KeySource::Platform,
        prompt_tokens: 1,
        completion_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_micros: 7,
        at: 1_700_000_000,
    }
}

/// Counts batch sizes; the first batch waits until released.
#[derive(Debug)]
struct Gated {
    inner: MemoryCreditStore,
    batches: Mutex<Vec<usize>>,
    gate: tokio::sync::Semaphore,
}

#[async_trait]
impl ForwardingCreditStore for Gated {
    fn inner(&self) -> &dyn CreditStore {
        &self.inner
    }
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        let _pass = self.gate.acquire().await;
        self.batches.lock().unwrap().push(writes.len());
        self.inner.write_batch(writes).await
    }
}

fn gated() -> Arc<Gated> {
    Arc::new(Gated {
        inner: MemoryCreditStore::new(),
        batches: Mutex::new(Vec::new()),
        gate: tokio::sync::Semaphore::new(0),
    })
}

#[tokio::test]
async fn writes_queued_while_one_is_written_are_committed_together() {
    let store = gated();
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    writer.write(LedgerWrite::Usage(usage("r0")), None).await;
    // Past the linger: the first batch is taken (and held at the gate) alone.
    tokio::time::sleep(USAGE_LINGER + LINGER * 10).await;
    for i in 1..=5 {
        writer
            .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
            .await;
    }
    store.gate.add_permits(10);
    writer.flushed().await;
    assert_eq!(*store.batches.lock().unwrap(), vec![1, 5]);
}

/// Usage records wait up to [`USAGE_LINGER`] for company, a settle only [`LINGER`], and a
/// read stops the wait. The clock is paused: it moves only while every task sleeps.
#[tokio::test(start_paused = true)]
async fn usage_records_linger_longest_and_settles_or_reads_cut_the_wait() {
    let store = gated();
    store.gate.add_permits(100);
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    writer.write(LedgerWrite::Usage(usage("r0")), None).await;
    tokio::time::sleep(USAGE_LINGER / 2).await;
    assert!(store.batches.lock().unwrap().is_empty());
    let asked = tokio::time::Instant::now();
    writer.flushed().await;
    assert!(
        asked.elapsed() < LINGER,
        "a read waited {:?}",
        asked.elapsed()
    );
    assert_eq!(*store.batches.lock().unwrap(), vec![1]);

    store
        .inner
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let hold = store
        .inner
        .hold(HoldRequest {
            user_id: "u".into(),
            request_id: "h".into(),
            amount_micros: 10,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    writer.write(LedgerWrite::Usage(usage("r1")), None).await;
    tokio::time::sleep(USAGE_LINGER / 2).await;
    let queued = tokio::time::Instant::now();
    let settle = LedgerWrite::Settle {
        hold,
        usage: usage("h"),
    };
    writer.write(settle, None).await;
    while store.batches.lock().unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    assert!(queued.elapsed() <= LINGER + Duration::from_millis(1));
    assert_eq!(*store.batches.lock().unwrap(), vec![1, 2]);
}

#[tokio::test]
async fn writes_arriving_within_the_linger_share_a_commit_but_a_hold_does_not_wait() {
    let store = gated();
    store.gate.add_permits(100);
    store
        .inner
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    for i in 0..3 {
        writer
            .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
            .await;
    }
    writer.flushed().await;
    assert_eq!(*store.batches.lock().unwrap(), vec![3]);
    // A hold does not linger: it is written at once, beside what lingers.
    writer.write(LedgerWrite::Usage(usage("r3")), None).await;
    let hold = writer
        .hold(HoldRequest {
            user_id: "u".into(),
            request_id: "h".into(),
            amount_micros: 10,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(hold.amount_micros, 10);
    writer.flushed().await;
    assert_eq!(*store.batches.lock().unwrap(), vec![3, 1, 1]);
    let holds = store.inner.transactions(
        "u",
        Page {
            limit: 10,
            before_id: None,
        },
    );
    let kinds: Vec<_> = holds.await.unwrap().iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TransactionKind::Hold, TransactionKind::TopUp]);
}

/// A hold is written beside the queue; refused while a settle is still queued, it is tried
/// again once that settle, which may give back what it needs, is written.
#[tokio::test]
async fn a_hold_refused_ahead_of_an_earlier_give_back_is_tried_after_it() {
    let store = gated();
    store.gate.add_permits(100);
    store
        .inner
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let request = |id: &str, amount_micros| HoldRequest {
        user_id: "u".into(),
        request_id: id.into(),
        amount_micros,
        ttl_secs: 60,
        budget: None,
    };
    let first = store.inner.hold(request("a", 100)).await.unwrap();
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    // The settle charges 7 of 100 and lingers; the next hold needs 90 of what it gives back.
    let settle = LedgerWrite::Settle {
        hold: first,
        usage: usage("a"),
    };
    writer.write(settle, None).await;
    let second = writer.hold(request("b", 90)).await.unwrap();
    assert_eq!(second.amount_micros, 90);
    // The hold (refused), the queued settle, the hold again.
    assert_eq!(*store.batches.lock().unwrap(), vec![1, 1, 1]);
    assert_eq!(store.inner.balance("u").await.unwrap(), 3);
}

#[tokio::test]
async fn reads_wait_for_the_writes_queued_before_them() {
    let store = gated();
    store
        .inner
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let hold = store
        .inner
        .hold(HoldRequest {
            user_id: "u".into(),
            request_id: "r".into(),
            amount_micros: 50,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    let view = writer.flushed_view();
    writer
        .write(
            LedgerWrite::Settle {
                hold,
                usage: usage("r"),
            },
            None,
        )
        .await;
    let read = tokio::spawn(async move { view.balance("u").await.unwrap() });
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!read.is_finished(), "the read waits for the queued settle");
    store.gate.add_permits(1);
    // 100 − 50 held + 43 given back = 93.
    assert_eq!(read.await.unwrap(), 93);
}

#[tokio::test]
async fn a_full_queue_makes_writers_wait_and_loses_nothing() {
    let store = gated();
    let writer = Arc::new(LedgerWriter::new(store.clone(), 2, Counter::noop()));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let writer = writer.clone();
        tasks.push(tokio::spawn(async move {
            writer
                .write(LedgerWrite::Usage(usage(&format!("r{i}"))), None)
                .await;
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        tasks.iter().filter(|t| t.is_finished()).count() <= 2,
        "only two fit in the queue"
    );
    store.gate.add_permits(100);
    for task in tasks {
        task.await.unwrap();
    }
    writer.flushed().await;
    assert_eq!(store.batches.lock().unwrap().iter().sum::<usize>(), 6);
}

/// Fails its first `failures` settles, like a database that comes back.
#[derive(Debug)]
struct Recovering {
    inner: MemoryCreditStore,
    failures: std::sync::atomic::AtomicU32,
}

#[async_trait]
impl ForwardingCreditStore for Recovering {
    fn inner(&self) -> &dyn CreditStore {
        &self.inner
    }
    async fn settle(&self, hold: &crate::credits::Hold, usage: &UsageRecord) -> Result<i64> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(Error::unavailable("database unavailable"));
        }
        self.inner.settle(hold, usage).await
    }
    /// Each write through the failing `settle` above.
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        write_one_by_one(self, writes).await
    }
}

#[tokio::test]
async fn a_failed_settle_is_tried_again_without_holding_up_other_writes() {
    let store = Arc::new(Recovering {
        inner: MemoryCreditStore::new(),
        failures: std::sync::atomic::AtomicU32::new(2),
    });
    store
        .inner
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let hold = store
        .inner
        .hold(HoldRequest {
            user_id: "u".into(),
            request_id: "r".into(),
            amount_micros: 50,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    let settlements = Arc::new(crate::gateway::owed::Settlements::default());
    let writer = LedgerWriter::new(store.clone(), 100, Counter::noop());
    writer
        .write(
            LedgerWrite::Settle {
                hold,
                usage: usage("r"),
            },
            Some(settlements.begin()),
        )
        .await;
    writer
        .write(LedgerWrite::Usage(usage("free")), Some(settlements.begin()))
        .await;
    // The usage record does not wait for the failing settle.
    tokio::time::timeout(Duration::from_secs(5), async {
        while settlements.open() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    settlements.idle().await;
    assert_eq!(store.failures.load(Ordering::SeqCst), 0);
    assert_eq!(store.inner.balance("u").await.unwrap(), 93);
    writer.flushed().await;
}

/// Poll a future that never waits (the in-memory store) to its end, with no runtime.
fn at_once<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("the future waited"),
    }
}

#[test]
fn outside_a_runtime_the_write_is_made_at_once() {
    let store = Arc::new(MemoryCreditStore::new());
    let writer = LedgerWriter::new(store.clone(), 10, Counter::noop());
    at_once(writer.write(LedgerWrite::Usage(usage("r")), None));
    let rows = at_once(store.usage(&UsageQuery {
        user_id: Some("u".into()),
        from_day: None,
        to_day: None,
        group_by: crate::credits::UsageGroup::Model,
    }))
    .unwrap();
    assert_eq!(rows.len(), 1);
}
