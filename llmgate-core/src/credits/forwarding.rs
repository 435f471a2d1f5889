//! [`ForwardingCreditStore`]: the one way to wrap a [`CreditStore`].

use std::sync::Arc;

use async_trait::async_trait;

use super::{
    Credit, CreditOutcome, CreditStore, Hold, HoldRequest, LeaseCharge, LeaseOutcome, LeaseRequest,
    LeaseReturn, LedgerWrite, Page, Transaction, UsageQuery, UsageRecord, UsageRow, Written,
};
use crate::error::Result;

/// A [`CreditStore`] that wraps another one and changes only some of its methods.
///
/// Implement this instead of [`CreditStore`]: name the wrapped store in
/// [`inner`](Self::inner) and write the methods the wrapper changes; every other method goes
/// to the inner store unchanged (a blanket implementation makes every `ForwardingCreditStore`
/// a `CreditStore`). A method added to [`CreditStore`] is added here once, with its
/// forwarding default, and no wrapper changes.
///
/// [`write_batch`](Self::write_batch) goes to the inner store whole, so a backend can commit
/// the batch together; it does not pass through the wrapper's own `hold`, `settle`, … A
/// wrapper that changes those changes `write_batch` to match: either it handles the batch's
/// results itself, or it hands the batch to [`write_one_by_one`](super::write_one_by_one) to have each write go through
/// its own methods.
///
/// The methods share their names with [`CreditStore`]'s, so where both traits are in scope a
/// call on the wrapper's own type is ambiguous. Name the trait by its path where it is
/// implemented (`impl llmgate_core::credits::forwarding::ForwardingCreditStore for Cache`) rather than importing
/// it, or call the wrapper through `Arc<dyn CreditStore>`.
///
/// A wrapper over the in-memory store that refuses any single credit above 100 credits:
///
/// ```
/// use std::sync::Arc;
///
/// use async_trait::async_trait;
/// use llmgate_core::credits::forwarding::ForwardingCreditStore;
/// use llmgate_core::credits::{Credit, CreditKind, CreditOutcome, CreditStore};
/// use llmgate_core::memory::MemoryCreditStore;
/// use llmgate_core::pricing::MICROS_PER_CREDIT;
/// use llmgate_core::{Error, Gateway, Result};
///
/// const MOST_AT_ONCE: i64 = 100 * MICROS_PER_CREDIT;
///
/// #[derive(Debug, Default)]
/// struct CappedCredits {
///     inner: MemoryCreditStore,
/// }
///
/// #[async_trait]
/// impl ForwardingCreditStore for CappedCredits {
///     fn inner(&self) -> &dyn CreditStore {
///         &self.inner
///     }
///
///     async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
///         if credit.amount_micros > MOST_AT_ONCE {
///             return Err(Error::invalid_request("at most 100 credits at once"));
///         }
///         self.inner.credit(credit).await
///     }
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<()> {
///     let store: Arc<dyn CreditStore> = Arc::new(CappedCredits::default());
///     let top_up = |amount_micros, key: &str| Credit {
///         user_id: "ann".into(),
///         kind: CreditKind::TopUp,
///         amount_micros,
///         idempotency_key: key.into(),
///         reason: "top-up".into(),
///     };
///     assert!(store.credit(top_up(500 * MICROS_PER_CREDIT, "t1")).await.is_err());
///     let outcome = store.credit(top_up(5 * MICROS_PER_CREDIT, "t2")).await?;
///     assert_eq!(outcome.balance_micros, 5_000_000);
///
///     let gateway = Gateway::builder().credit_store(store).build();
///     assert_eq!(gateway.credits().balance("ann").await?, 5_000_000);
///     Ok(())
/// }
/// ```
#[async_trait]
pub trait ForwardingCreditStore: Send + Sync + std::fmt::Debug + 'static {
    /// The wrapped store, which gets every call this wrapper does not change.
    fn inner(&self) -> &dyn CreditStore;

    /// [`CreditStore::hold`]; forwarded unless changed.
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        self.inner().hold(request).await
    }

    /// [`CreditStore::settle`]; forwarded unless changed.
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        self.inner().settle(hold, usage).await
    }

    /// [`CreditStore::release`]; forwarded unless changed.
    async fn release(&self, hold: &Hold) -> Result<()> {
        self.inner().release(hold).await
    }

    /// [`CreditStore::record_usage`]; forwarded unless changed.
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.inner().record_usage(usage).await
    }

    /// [`CreditStore::credit`]; forwarded unless changed.
    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        self.inner().credit(credit).await
    }

    /// [`CreditStore::balance`]; forwarded unless changed.
    async fn balance(&self, user_id: &str) -> Result<i64> {
        self.inner().balance(user_id).await
    }

    /// [`CreditStore::transactions`]; forwarded unless changed.
    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        self.inner().transactions(user_id, page).await
    }

    /// [`CreditStore::usage`]; forwarded unless changed.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        self.inner().usage(query).await
    }

    /// [`CreditStore::reclaim_expired`]; forwarded unless changed.
    async fn reclaim_expired(&self) -> Result<u64> {
        self.inner().reclaim_expired().await
    }

    /// [`CreditStore::write_batch`]; forwarded whole unless changed.
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        self.inner().write_batch(writes).await
    }

    /// [`CreditStore::leases`]; forwarded unless changed.
    fn leases(&self) -> bool {
        self.inner().leases()
    }

    /// [`CreditStore::take_lease`]; forwarded unless changed.
    async fn take_lease(&self, request: LeaseRequest) -> Result<LeaseOutcome> {
        self.inner().take_lease(request).await
    }

    /// [`CreditStore::charge_lease`]; forwarded unless changed.
    async fn charge_lease(&self, charge: &LeaseCharge) -> Result<Written> {
        self.inner().charge_lease(charge).await
    }

    /// [`CreditStore::return_lease`]; forwarded unless changed.
    async fn return_lease(&self, give: &LeaseReturn) -> Result<Written> {
        self.inner().return_lease(give).await
    }
}

#[async_trait]
impl<T: ForwardingCreditStore> CreditStore for T {
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        ForwardingCreditStore::hold(self, request).await
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        ForwardingCreditStore::settle(self, hold, usage).await
    }

    async fn release(&self, hold: &Hold) -> Result<()> {
        ForwardingCreditStore::release(self, hold).await
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        ForwardingCreditStore::record_usage(self, usage).await
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        ForwardingCreditStore::credit(self, credit).await
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        ForwardingCreditStore::balance(self, user_id).await
    }

    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        ForwardingCreditStore::transactions(self, user_id, page).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        ForwardingCreditStore::usage(self, query).await
    }

    async fn reclaim_expired(&self) -> Result<u64> {
        ForwardingCreditStore::reclaim_expired(self).await
    }

    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        ForwardingCreditStore::write_batch(self, writes).await
    }

    fn leases(&self) -> bool {
        ForwardingCreditStore::leases(self)
    }

    async fn take_lease(&self, request: LeaseRequest) -> Result<LeaseOutcome> {
        ForwardingCreditStore::take_lease(self, request).await
    }

    async fn charge_lease(&self, charge: &LeaseCharge) -> Result<Written> {
        ForwardingCreditStore::charge_lease(self, charge).await
    }

    async fn return_lease(&self, give: &LeaseReturn) -> Result<Written> {
        ForwardingCreditStore::return_lease(self, give).await
    }
}

/// Compile-time check that the forwarding trait stays object-safe too.
const _: Option<Arc<dyn ForwardingCreditStore>> = None;
