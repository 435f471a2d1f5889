//! Scripted in-process providers for the routing tests: each call takes the next step of a
//! script (or repeats a default step) and is logged with the virtual time it happened at.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use llmgate_core::credits::forwarding::ForwardingCreditStore;
use llmgate_core::*;
use llmgate_core::{
    caller::Tier,
    catalog::Deployment,
    chat::{ChatChunk, ChatRequest, ChatResponse, Delta, FinishReason, Message, Usage},
    credits::{
        Credit, CreditKind, CreditStore, Hold, HoldRequest, LedgerWrite, Page, TransactionKind,
        UsageRecord, Written, write_one_by_one,
    },
    memory::MemoryCreditStore,
    pricing::{Decimal, ModelPrice, PriceTerms},
    provider::{ChunkStream, ProviderCall},
};
use tokio::time::Instant;

/// What a scripted provider does on one call.
#[derive(Clone, Debug)]
pub enum Step {
    /// Answer "ok" (JSON or a two-chunk stream) reporting this usage.
    Answer { usage: (u64, u64) },
    /// Answer after a (virtual) delay.
    Slow { delay: Duration },
    /// Fail with this upstream status.
    Fail(u16),
    /// Fail with this upstream status and a Retry-After.
    FailRetryAfter(u16, Duration),
}

pub fn ok() -> Step {
    Step::Answer { usage: (400, 600) }
}

/// One call as a provider saw it.
#[derive(Clone, Debug)]
pub struct Call {
    pub provider: &'static str,
    pub model: String,
    pub max_tokens: Option<u32>,
    pub at: Instant,
}

/// Calls across all providers of a test, in order.
pub type Calls = Arc<Mutex<Vec<Call>>>;

pub struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Step>>,
    otherwise: Option<Step>,
    calls: Calls,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Scripted {
    /// A provider that plays `script`, then repeats `otherwise` (or fails the test).
    pub fn new(
        name: &'static str,
        script: Vec<Step>,
        otherwise: Option<Step>,
        calls: &Calls,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            script: Mutex::new(script.into()),
            otherwise,
            calls: calls.clone(),
        })
    }

    /// A provider that always does `step`.
    pub fn always(name: &'static str, step: Step, calls: &Calls) -> Arc<Self> {
        Self::new(name, Vec::new(), Some(step), calls)
    }

    async fn step(&self, call: &ProviderCall<'_>) -> Result<()> {
        self.calls.lock().unwrap().push(Call {
            provider: self.name,
            model: call.request.model.clone(),
            max_tokens: call.request.max_tokens,
            at: Instant::now(),
        });
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .or_else(|| self.otherwise.clone())
            .unwrap_or_else(|| panic!("unscripted call to {}", self.name));
        match step {
            Step::Answer { .. } => Ok(()),
            Step::Slow { delay } => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
            Step::Fail(status) => Err(Error::from_upstream_status(self.name, status, "scripted")),
            Step::FailRetryAfter(status, after) => {
                Err(Error::from_upstream_status(self.name, status, "scripted")
                    .with_retry_after(after))
            }
        }
    }
}

/// A stream chunk adding `content` to choice 0, or ending it with `finish`.
pub fn text_chunk(content: Option<&str>, finish: Option<FinishReason>) -> ChatChunk {
    let delta = content.map(Delta::text).unwrap_or_default();
    ChatChunk::empty("c1", "up", 1).with_delta(delta, finish)
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        self.step(&call).await?;
        Ok(ChatResponse::assistant(&call.request.model, "ok")
            .with_id("r1")
            .with_created(1)
            .with_usage(Usage::new(400, 600)))
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        self.step(&call).await?;
        let last = ChatChunk::empty("c1", "up", 1).with_usage(Usage::new(400, 600));
        let items = vec![
            Ok(text_chunk(Some("ok"), None)),
            Ok(text_chunk(None, Some(FinishReason::Stop))),
            Ok(last),
        ];
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

pub fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// A deployment priced at $0.002 per 1K tokens both ways.
pub fn priced(name: &str, provider: &str) -> Deployment {
    Deployment::new(name, provider, format!("{name}@{provider}"))
        .with_price(ModelPrice::new(dec("0.002"), dec("0.002")))
}

pub fn tier() -> Arc<Tier> {
    let mut tier = Tier::new("starter");
    tier.markup = dec("0.4");
    Arc::new(tier)
}

pub async fn fund(gateway: &Gateway, user: &str, micros: i64) {
    gateway
        .credits()
        .credit(Credit {
            user_id: user.into(),
            kind: CreditKind::TopUp,
            amount_micros: micros,
            idempotency_key: format!("fund:{user}:{micros}"),
            reason: "test".into(),
        })
        .await
        .unwrap();
}

pub fn request(model: &str) -> ChatRequest {
    let mut request = ChatRequest::new(model, vec![Message::user("hello")]);
    request.max_tokens = Some(1000);
    request
}

/// The providers called, in order.
pub fn order(calls: &Calls) -> Vec<&'static str> {
    calls.lock().unwrap().iter().map(|c| c.provider).collect()
}

/// Counts of a user's ledger entries: (holds, charges, holds released whole).
pub async fn ledger_counts(gateway: &Gateway, user: &str) -> (usize, usize, usize) {
    let ledger = gateway
        .credits()
        .transactions(
            user,
            Page {
                limit: 1000,
                before_id: None,
            },
        )
        .await
        .unwrap();
    let count = |kind: TransactionKind| ledger.iter().filter(|t| t.kind == kind).count();
    // A settle writes its hold's release before its charge (reason "hold {id} of {held}"):
    // only releases without a charge gave a hold back whole.
    let hold_of = |t: &llmgate_core::credits::Transaction| {
        let reason = t.reason.as_deref().unwrap_or_default();
        reason.split(" of ").next().unwrap_or(reason).to_owned()
    };
    let charged: std::collections::HashSet<String> = ledger
        .iter()
        .filter(|t| t.kind == TransactionKind::Charge)
        .map(hold_of)
        .collect();
    let given_back_whole = ledger
        .iter()
        .filter(|t| t.kind == TransactionKind::Release && !charged.contains(&hold_of(t)))
        .count();
    (
        count(TransactionKind::Hold),
        count(TransactionKind::Charge),
        given_back_whole,
    )
}

/// The hold `request("m")` takes at `priced` and `tier()` on the balanced power level: its
/// prompt bound and 1,000 output tokens.
pub fn hold_of_one_request() -> i64 {
    let terms = PriceTerms {
        price: ModelPrice::new(dec("0.002"), dec("0.002")),
        markup: dec("0.4"),
        multiplier: dec("0.25"),
        credits_per_usd: dec("1000"),
    };
    terms
        .max_charge_micros(tokens::prompt_upper_bound(&request("m")), 1000)
        .unwrap()
}

/// The charge of one answer of `ok()` (400 + 600 tokens) at the same terms.
pub const CHARGE: i64 = 700_000;

/// Which writes of a [`Gated`] ledger wait until the test opens the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatedWrites {
    /// Holds.
    Holds,
    /// Settles and usage records.
    SettlesAndUsage,
}

/// The in-memory ledger whose chosen writes wait until the test opens the gate.
#[derive(Debug)]
pub struct Gated {
    pub inner: MemoryCreditStore,
    gate: tokio::sync::Semaphore,
    gated: GatedWrites,
}

impl Gated {
    pub fn closed(gated: GatedWrites) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryCreditStore::new(),
            gate: tokio::sync::Semaphore::new(0),
            gated,
        })
    }

    pub fn open(&self) {
        self.gate
            .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
    }

    /// Waits for the gate when `writes` are the gated ones; the pass is held for the write.
    async fn pass(&self, writes: GatedWrites) -> Option<tokio::sync::SemaphorePermit<'_>> {
        if self.gated == writes {
            self.gate.acquire().await.ok()
        } else {
            None
        }
    }
}

#[async_trait]
impl ForwardingCreditStore for Gated {
    fn inner(&self) -> &dyn CreditStore {
        &self.inner
    }
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        let _pass = self.pass(GatedWrites::Holds).await;
        self.inner.hold(request).await
    }
    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        let _pass = self.pass(GatedWrites::SettlesAndUsage).await;
        self.inner.settle(hold, usage).await
    }
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        let _pass = self.pass(GatedWrites::SettlesAndUsage).await;
        self.inner.record_usage(usage).await
    }
    /// Each write through the gates above.
    async fn write_batch(&self, writes: &[LedgerWrite]) -> Vec<Result<Written>> {
        write_one_by_one(self, writes).await
    }
}
