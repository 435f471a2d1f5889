//! The `CreditStore` trait: balances, holds and an append-only ledger.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub use leases::{FLOOR_SHARE, LeaseOutcome, LeaseRequest, LeaseReturn, lease_take, no_leases};

pub mod forwarding;
mod leases;
#[cfg(test)]
mod tests;

/// The most an account may hold, open holds included: ten billion credits (10^16
/// micro-credits). Far below the 64-bit limit (about 9.2 × 10^18), so no sum the ledger forms
/// — a balance plus a give-back, an account's entries — can overflow. A credit that would
/// cross it is refused.
pub const MAX_BALANCE_MICROS: i64 = 10_000_000_000_000_000;

/// The refusal of a credit that would take an account over [`MAX_BALANCE_MICROS`].
pub fn balance_limit_exceeded() -> Error {
    Error::invalid_request(
        "this credit would take the balance over the maximum of 10000000000 credits",
    )
}

/// Whose key paid the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The gateway's own key for the provider (from configuration) paid; the caller is charged.
    Platform,
    /// The caller's own key (bring your own key) paid; the gateway charges nothing.
    Byok,
}

impl KeySource {
    /// The lowercase name stored in the ledger and shown in APIs: `"platform"` or `"byok"`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Platform => "platform",
            KeySource::Byok => "byok",
        }
    }
}

/// A reservation of credits for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    /// The account to reserve from.
    pub user_id: String,
    /// The gateway's id of the request the hold is for.
    pub request_id: String,
    /// The most this request can cost.
    pub amount_micros: i64,
    /// How long the hold lives if never settled (a crash); then it is reclaimed.
    pub ttl_secs: u64,
    /// The API key budget the hold also counts against, if any: placed, settled and released
    /// together with the balance, atomically.
    pub budget: Option<BudgetHold>,
}

/// The part of a hold that counts against an API key's budget for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetHold {
    /// The key whose budget it is.
    pub key_id: String,
    /// The Unix second the budget's period began (0 for a `total` budget).
    pub period_start: i64,
    /// The budget: the period's spend plus open holds may not pass it.
    pub max_micros: i64,
}

/// The refusal of a hold that would take a key's period spend over its budget (402).
pub fn key_budget_exceeded(needed_micros: i64, remaining_micros: i64) -> Error {
    Error::new(
        crate::error::ErrorKind::InsufficientCredits,
        format!(
            "This API key's budget is spent: this request may cost up to {needed_micros} \
             micro-credits and {remaining_micros} remain in the budget's period."
        ),
    )
    .with_code("key_budget_exceeded")
}

/// A placed hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// The backend's id of the hold, unique within the store.
    pub id: String,
    /// The account the hold was taken from.
    pub user_id: String,
    /// Micro-credits reserved (what the request asked for in [`HoldRequest::amount_micros`]).
    pub amount_micros: i64,
}

/// One request's consumption, as recorded in usage and on its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The account the request was made by.
    pub user_id: String,
    /// The gateway's id of the request (also on its ledger entries).
    pub request_id: String,
    /// The configured model name that served the request.
    pub model: String,
    /// The configured provider name that served the request.
    pub provider: String,
    /// Whose key paid the upstream.
    pub key_source: KeySource,
    /// Every prompt token, cached or not.
    pub prompt_tokens: u64,
    /// Every completion token, reasoning included.
    pub completion_tokens: u64,
    /// The part of `prompt_tokens` read from a prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// The part of `prompt_tokens` written to a prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// The part of `completion_tokens` spent reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Micro-credits charged for the request (0 when uncharged).
    pub cost_micros: i64,
    /// Unix seconds.
    pub at: i64,
}

impl UsageRecord {
    /// Copy the token counts of every class from the usage.
    pub fn set_tokens(&mut self, usage: &crate::chat::Usage) {
        let classes = usage.classes();
        self.prompt_tokens = usage.prompt_tokens;
        self.completion_tokens = usage.completion_tokens;
        self.cache_read_tokens = classes.cache_read;
        self.cache_write_tokens = classes.cache_write;
        self.reasoning_tokens = classes.reasoning;
    }
}

/// What kind of credit a top-up is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditKind {
    /// A tier's monthly credits.
    Grant,
    /// Bought or added by an admin.
    TopUp,
    /// Money given back.
    Refund,
}

/// A credit to apply once per idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credit {
    /// The account to credit.
    pub user_id: String,
    /// Why the credits are added: grant, top-up or refund.
    pub kind: CreditKind,
    /// Micro-credits to add; positive.
    pub amount_micros: i64,
    /// The same key applies once; a repeat is a no-op that reports `applied: false`.
    pub idempotency_key: String,
    /// A human-readable note kept on the ledger entry (e.g. `"bought 5 credits"`).
    pub reason: String,
}

/// The result of [`CreditStore::credit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditOutcome {
    /// `true` when this call added the credits; `false` when its idempotency key was used
    /// before.
    pub applied: bool,
    /// The account's spendable balance after the call, in micro-credits.
    pub balance_micros: i64,
}

/// A ledger entry kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// A tier's monthly credits.
    Grant,
    /// Credits bought or added by an admin.
    TopUp,
    /// Credits reserved for a request in flight (negative amount).
    Hold,
    /// A settled request's charge (negative amount); it follows the release of the request's hold.
    Charge,
    /// A hold given back in full (positive amount): at settle time before the charge, or when the
    /// request failed or its hold expired.
    Release,
    /// Money given back to the user.
    Refund,
}

/// One row of the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The ledger's id of the entry, increasing over time; pages use it as the cursor.
    pub id: i64,
    /// The account the entry belongs to.
    pub user_id: String,
    /// What moved the balance.
    pub kind: TransactionKind,
    /// Signed change to the spendable balance (holds negative, releases positive).
    pub amount_micros: i64,
    /// The spendable balance right after this entry, in micro-credits.
    pub balance_after_micros: i64,
    /// The configured model name of the request (charges only).
    pub model: Option<String>,
    /// The configured provider name of the request (charges only).
    pub provider: Option<String>,
    /// Prompt tokens of the settled request (charges only).
    pub prompt_tokens: Option<u64>,
    /// Completion tokens of the settled request (charges only).
    pub completion_tokens: Option<u64>,
    /// Parts of `prompt_tokens` read from and written to a prompt cache, and the part of
    /// `completion_tokens` spent reasoning (charges only).
    #[serde(default)]
    pub cache_read_tokens: Option<u64>,
    /// See `cache_read_tokens`.
    #[serde(default)]
    pub cache_write_tokens: Option<u64>,
    /// See `cache_read_tokens`.
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
    /// Whose key paid the upstream (charges only).
    pub key_source: Option<KeySource>,
    /// The gateway's id of the request (holds, charges and the releases of settles).
    pub request_id: Option<String>,
    /// The idempotency key of a credit (grants, top-ups and refunds).
    pub idempotency_key: Option<String>,
    /// The credit's note; on holds, charges and releases, which hold (`"hold h1"`).
    pub reason: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// A page of a newest-first listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Most entries to return.
    pub limit: u32,
    /// Only entries with an id below this (the `id` of the last entry seen).
    pub before_id: Option<i64>,
}

/// How to group usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageGroup {
    /// One row per configured model name.
    Model,
    /// One row per configured provider name.
    Provider,
    /// One row per UTC day (`YYYY-MM-DD`).
    Day,
}

/// Which usage to sum, and how to group it, for [`CreditStore::usage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    /// `None`: every user (admins only).
    pub user_id: Option<String>,
    /// Days as `YYYY-MM-DD`, inclusive.
    pub from_day: Option<String>,
    /// Last day included (`YYYY-MM-DD`, UTC); `None`: up to today.
    pub to_day: Option<String>,
    /// What each returned row stands for.
    pub group_by: UsageGroup,
}

/// Usage summed over one group (a model, a provider or a day).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The group: a model name, a provider name or a `YYYY-MM-DD` day.
    pub key: String,
    /// Requests recorded in the group, charged or not.
    pub requests: u64,
    /// The group's prompt tokens, cached ones included.
    pub prompt_tokens: u64,
    /// The group's completion tokens, reasoning included.
    pub completion_tokens: u64,
    /// Of the group's `prompt_tokens`, those read from a prompt cache.
    #[serde(default)]
    pub cache_read_tokens: u64,
    /// Of the group's `prompt_tokens`, those written to a prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Of the group's `completion_tokens`, those spent reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// Micro-credits charged in the group.
    pub cost_micros: i64,
}

/// A request served from a lease is charged: `usage.cost_micros` leaves the lease for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseCharge {
    /// The lease the request's hold was served from.
    pub lease_id: String,
    /// The lease's write number (increasing per lease): a write whose number the lease has
    /// already seen was applied before, so a retry changes nothing.
    pub seq: i64,
    /// The request's usage; its `cost_micros` is the charge (already capped at the hold).
    pub usage: UsageRecord,
    /// The lease's expiry is renewed to now + this.
    pub ttl_secs: u64,
}

/// One write of a request's ledger work: what [`CreditStore::write_batch`] applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerWrite {
    /// [`CreditStore::hold`] this amount.
    Hold(HoldRequest),
    /// [`CreditStore::settle`] this hold with this usage.
    Settle {
        /// The hold to settle.
        hold: Hold,
        /// The request's consumption and its `cost_micros` charge.
        usage: UsageRecord,
    },
    /// [`CreditStore::record_usage`] for an uncharged request.
    Usage(UsageRecord),
    /// [`CreditStore::release`] this hold.
    Release(Hold),
    /// [`CreditStore::charge_lease`]: a request served from a lease is charged.
    LeaseCharge(LeaseCharge),
    /// [`CreditStore::return_lease`]: credits go back from a lease to the balance.
    LeaseReturn(LeaseReturn),
}

impl LedgerWrite {
    /// The account the write is about.
    pub fn user_id(&self) -> &str {
        match self {
            LedgerWrite::Hold(request) => &request.user_id,
            LedgerWrite::Settle { hold, .. } | LedgerWrite::Release(hold) => &hold.user_id,
            LedgerWrite::Usage(usage) => &usage.user_id,
            LedgerWrite::LeaseCharge(charge) => &charge.usage.user_id,
            LedgerWrite::LeaseReturn(give) => &give.user_id,
        }
    }
}

/// What a [`LedgerWrite`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// The hold placed.
    Held(Hold),
    /// The balance right after the settle (`None` when the backend does not say, e.g. for a
    /// hold closed before).
    Settled(Option<i64>),
    /// The usage record was added.
    Recorded,
    /// The hold was given back (or was closed before).
    Released,
    /// The lease charge was applied (or had been, by an earlier try); when this call applied
    /// it, what the account may spend right after it (its balance plus its leases, as
    /// [`CreditStore::balance`] reads it).
    LeaseCharged(Option<i64>),
    /// The lease return was applied (or had been).
    LeaseReturned,
    /// The lease is gone (reclaimed, or closed): nothing was charged or given back.
    LeaseGone,
}

/// Balances and the ledger.
///
/// Every method is atomic in its backend; together they keep the ledger's invariants: a
/// balance never goes below zero, every settled charge is in the ledger exactly once, and
/// `balance = grants + top-ups + refunds − charges`.
///
/// # Implementing it
///
/// A backend implements every method. A store that wraps another one (a cache, metrics, a
/// test fake) implements [`ForwardingCreditStore`](forwarding::ForwardingCreditStore) instead and writes only what it changes.
#[async_trait]
pub trait CreditStore: Send + Sync + std::fmt::Debug + 'static {
    /// Reserve `amount_micros` or fail with `insufficient_credits` without changing anything.
    async fn hold(&self, request: HoldRequest) -> Result<Hold>;

    /// Turn a hold into a charge of `usage.cost_micros` (capped at the hold) and give the rest
    /// back. Settling an already settled or released hold changes nothing. Returns the balance.
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64>;

    /// Give a hold back in full.
    async fn release(&self, hold: &Hold) -> Result<()>;

    /// Record an uncharged request (free model, BYOK, admin) in usage.
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()>;

    /// Add credits once per idempotency key.
    async fn credit(&self, credit: Credit) -> Result<CreditOutcome>;

    /// The spendable balance (holds already subtracted, balance leases counted in); 0 for an
    /// unknown user.
    async fn balance(&self, user_id: &str) -> Result<i64>;

    /// The user's ledger, newest first.
    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>>;

    /// Usage grouped by model, provider or day.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>>;

    /// Release holds past their expiry; returns how many.
    async fn reclaim_expired(&self) -> Result<u64>;

    /// Apply many holds, settles and usage records, each exactly as [`hold`](Self::hold),
    /// [`settle`](Self::settle) or [`record_usage`](Self::record_usage) would, in order; one
    /// result per write. A refused hold (`insufficient_credits`) fails only itself. Backends
    /// that can should commit the batch together (one transaction: group commit); the
    /// default writes them one by one ([`write_one_by_one`]). A wrapper forwards the batch whole
    /// (see [`ForwardingCreditStore`](forwarding::ForwardingCreditStore)).
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        write_one_by_one(self, writes).await
    }

    /// Whether this store has balance leases ([`take_lease`](Self::take_lease),
    /// [`charge_lease`](Self::charge_lease), [`return_lease`](Self::return_lease)). The
    /// default says no: the gateway then places a hold per request.
    fn leases(&self) -> bool {
        false
    }

    /// Move credits from a balance into this replica's lease (see [`LeaseRequest`]), in one
    /// atomic step; a lease is an open hold row, reclaimed like one.
    async fn take_lease(&self, request: LeaseRequest) -> Result<LeaseOutcome> {
        let _ = request;
        Err(no_leases())
    }

    /// Charge a request served from a lease: the lease gives up `cost_micros` (only if it
    /// holds that much), the ledger gets the `release` and the `charge`, the usage rollup the
    /// request, and the lease's expiry is renewed. [`Written::LeaseGone`] when the lease is
    /// gone: the request goes uncharged, as a late settle of a reclaimed hold.
    async fn charge_lease(&self, charge: &LeaseCharge) -> Result<Written> {
        let _ = charge;
        Err(no_leases())
    }

    /// Give credits back from a lease to the balance (a `release` entry); closing gives back
    /// everything the lease holds and deletes it.
    async fn return_lease(&self, give: &LeaseReturn) -> Result<Written> {
        let _ = give;
        Err(no_leases())
    }
}

/// Apply `writes` one by one through `store`'s own [`hold`](CreditStore::hold),
/// [`settle`](CreditStore::settle), [`release`](CreditStore::release) and
/// [`record_usage`](CreditStore::record_usage): the default [`CreditStore::write_batch`], and
/// what a [`ForwardingCreditStore`](forwarding::ForwardingCreditStore) that changes those methods hands its batches to.
pub async fn write_one_by_one<S>(store: &S, writes: &[LedgerWrite]) -> Vec<Result<Written>>
where
    S: CreditStore + ?Sized,
{
    let mut results = Vec::with_capacity(writes.len());
    for write in writes {
        results.push(match write {
            LedgerWrite::Hold(request) => store.hold(request.clone()).await.map(Written::Held),
            LedgerWrite::Settle { hold, usage } => store
                .settle(hold, usage)
                .await
                .map(|balance| Written::Settled(Some(balance))),
            LedgerWrite::Usage(usage) => {
                store.record_usage(usage).await.map(|()| Written::Recorded)
            }
            LedgerWrite::Release(hold) => store.release(hold).await.map(|()| Written::Released),
            LedgerWrite::LeaseCharge(charge) => store.charge_lease(charge).await,
            LedgerWrite::LeaseReturn(give) => store.return_lease(give).await,
        });
    }
    results
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn CreditStore>> = None;
