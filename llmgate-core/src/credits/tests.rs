//! Unit tests of the credit store's shared parts: forwarding and one-by-one batches.

use std::sync::Mutex;

use super::forwarding::ForwardingCreditStore;
use super::*;
use crate::memory::MemoryCreditStore;

/// Notes which of its own methods ran; forwards everything else.
#[derive(Debug, Default)]
struct Noting {
    inner: MemoryCreditStore,
    seen: Mutex<Vec<&'static str>>,
    /// Batches go through this wrapper's own methods.
    one_by_one: bool,
}

#[async_trait]
impl ForwardingCreditStore for Noting {
    fn inner(&self) -> &dyn CreditStore {
        &self.inner
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.seen.lock().unwrap().push("settle");
        self.inner.settle(hold, usage).await
    }

    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        self.seen.lock().unwrap().push("write_batch");
        if self.one_by_one {
            write_one_by_one(self, writes).await
        } else {
            self.inner.write_batch(writes).await
        }
    }
}

fn usage(cost_micros: i64) -> UsageRecord {
    UsageRecord {
        user_id: "u".into(),
        request_id: "r".into(),
        model: "m".into(),
        provider: "p".into(),
        key_source: KeySource::Platform,
        prompt_tokens: 1,
        completion_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_micros,
        at: 1_700_000_000,
    }
}

async fn funded(one_by_one: bool) -> (Arc<Noting>, Hold) {
    let store = Arc::new(Noting {
        one_by_one,
        ..Noting::default()
    });
    let dyn_store: Arc<dyn CreditStore> = store.clone();
    dyn_store
        .credit(Credit {
            user_id: "u".into(),
            kind: CreditKind::TopUp,
            amount_micros: 100,
            idempotency_key: "k".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let hold = dyn_store
        .hold(HoldRequest {
            user_id: "u".into(),
            request_id: "r".into(),
            amount_micros: 50,
            ttl_secs: 60,
            budget: None,
        })
        .await
        .unwrap();
    (store, hold)
}

#[tokio::test]
async fn a_forwarding_wrapper_changes_only_what_it_writes() {
    let (store, hold) = funded(false).await;
    let dyn_store: Arc<dyn CreditStore> = store.clone();
    // Credit, hold and balance went to the inner store untouched.
    assert_eq!(dyn_store.balance("u").await.unwrap(), 50);
    assert!(store.seen.lock().unwrap().is_empty());
    assert_eq!(dyn_store.settle(&hold, &usage(7)).await.unwrap(), 93);
    assert_eq!(*store.seen.lock().unwrap(), ["settle"]);
    let entries = dyn_store
        .transactions(
            "u",
            Page {
                limit: 10,
                before_id: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(entries.len(), 4, "top-up, hold, release, charge");
}

#[tokio::test]
async fn a_batch_goes_whole_to_the_inner_store_unless_written_one_by_one() {
    let (whole, hold) = funded(false).await;
    let settle = [LedgerWrite::Settle {
        hold,
        usage: usage(7),
    }];
    let dyn_store: Arc<dyn CreditStore> = whole.clone();
    let results = dyn_store.write_batch(&settle).await;
    assert!(matches!(results[..], [Ok(Written::Settled(Some(93)))]));
    assert_eq!(*whole.seen.lock().unwrap(), ["write_batch"]);

    let (each, hold) = funded(true).await;
    let settle = [LedgerWrite::Settle {
        hold,
        usage: usage(7),
    }];
    let dyn_store: Arc<dyn CreditStore> = each.clone();
    let results = dyn_store.write_batch(&settle).await;
    assert!(matches!(results[..], [Ok(Written::Settled(Some(93)))]));
    assert_eq!(*each.seen.lock().unwrap(), ["write_batch", "settle"]);
}
