//! The in-process request pipeline: resolve the model, rank deployments, hold credits, pick a
//! key, call, fall back, settle, record.

mod builder;
mod count;
mod meter;
mod owed;
mod plan;
mod reserve;
mod retry;
mod route;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use rust_decimal::Decimal;

pub use builder::GatewayBuilder;
pub use meter::CompletionStream;

use crate::backoff::Backoff;
use crate::caller::{Billing, Caller};
use crate::catalog::{Catalog, Deployment};
use crate::chat::{ChatRequest, ChatResponse, StreamOptions};
use crate::credits::{CreditStore, Hold, HoldRequest, KeySource, LedgerWrite, UsageRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::health::DeploymentStates;
use crate::limits::{Admission, Quota, RateLimiter};
use crate::memory::unix_now;
use crate::metrics::GatewayMetrics;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::pricing::CostBreakdown;
use crate::provider::{Provider, ProviderCall};
use crate::routing::{CandidateState, RoutingPolicy};
use crate::secret::Secret;
use crate::tokens;
use crate::vault::KeyVault;
use owed::{Owed, Settlements, detached};
use plan::{Ask, Attempt};
use retry::{Tracked, Tried};
use route::RouteTable;
use writer::LedgerWriter;

/// Resolves a model name the catalog does not list (e.g. `groq/llama3-70b-8192` or a
/// well-known bare name) to an ad-hoc deployment.
pub type ModelResolver = dyn Fn(&str) -> Option<Deployment> + Send + Sync;

/// How the request was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The request's id: the caller's, or one the gateway generated; also on the ledger entries.
    pub request_id: Arc<str>,
    /// The configured provider that answered.
    pub provider: String,
    /// The configured model name that answered (differs from the request after a fallback).
    pub model: String,
    /// Upstream calls made (failover and retries), the successful one included.
    pub attempts: u32,
    /// Whose key paid the upstream that answered.
    pub key_source: KeySource,
    /// The power level the request ran at (asked for, or the tier's default).
    pub power_level: PowerLevel,
    /// Time spent waiting on upstreams until the answer (JSON) or its first chunk (stream):
    /// every call made, failed ones included, and the backoff between retry rounds. The
    /// rest of a request's time is the gateway's own overhead.
    pub upstream_time: Duration,
}

/// A whole completion and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The upstream's answer, with the gateway's `llmgate` cost details in `extra`.
    pub response: ChatResponse,
    /// Which provider and model answered, after how many attempts.
    pub route: RouteInfo,
    /// Micro-credits charged (0 for free models, BYOK and uncharged callers).
    pub cost_micros: i64,
    /// The cost of each token class; its `cost_micros` is the charge above.
    pub cost_breakdown: CostBreakdown,
}

/// The gateway. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    providers: HashMap<String, Arc<dyn Provider>>,
    platform_keys: HashMap<String, Secret>,
    catalog: Catalog,
    resolver: Option<Box<ModelResolver>>,
    /// The store the pipeline writes to.
    ledger: Arc<dyn CreditStore>,
    /// What [`Gateway::credits`] hands out: `ledger`, or with write-behind a view whose reads
    /// wait for the queued writes.
    credits: Arc<dyn CreditStore>,
    /// Write-behind for settles and usage records, when enabled.
    writer: Option<Arc<LedgerWriter>>,
    vault: Option<Arc<dyn KeyVault>>,
    policy: Arc<dyn RoutingPolicy>,
    power_levels: HashMap<PowerLevel, PowerLevelPolicy>,
    credits_per_usd: Decimal,
    /// Upstream calls per request, across failover and retries.
    max_attempts: u32,
    /// Extra rounds over the planned attempts after a round without an answer.
    num_retries: u32,
    backoff: Backoff,
    hold_ttl: Duration,
    default_max_tokens: u32,
    next_request: AtomicU64,
    /// Seeds weighted routing and backoff jitter, one number per request.
    next_route: AtomicU64,
    routes: RouteTable,
    states: Arc<DeploymentStates>,
    limiter: Arc<dyn RateLimiter>,
    /// When the last fail-open warning was logged (on the states' clock).
    fail_open_warned: AtomicU64,
    metrics: GatewayMetrics,
    /// Ledger work still owed by requests (for a clean shutdown).
    settlements: Arc<Settlements>,
}

/// Fail-open warnings are logged at most this often; the rest go to debug.
const FAIL_OPEN_WARN_EVERY_NS: u64 = 10_000_000_000;

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("models", &self.catalog.deployments().len())
            .field("policy", &self.policy)
            .field("max_attempts", &self.max_attempts)
            .field("num_retries", &self.num_retries)
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

/// A request ready to try: validated, with its candidates planned and its hold placed.
struct Prepared {
    request: ChatRequest,
    request_id: Arc<str>,
    power_level: PowerLevel,
    attempts: Vec<Attempt>,
    hold: HoldGuard,
    prompt_estimate: u64,
    seed: u64,
    /// When the gateway took the request (time to first token counts from here).
    started: Instant,
}

/// A request's hold until it is settled or released. Dropped while still armed (the caller
/// went away during a call or a backoff, or an error cut the request short), it releases the
/// hold in the background, so the balance is whole again without waiting for the hold's expiry.
struct HoldGuard {
    credits: Arc<dyn CreditStore>,
    writer: Option<Arc<LedgerWriter>>,
    hold: Option<Hold>,
    /// The request's ledger work, travelling with whoever settles or releases the hold.
    owed: Option<Owed>,
}

impl HoldGuard {
    /// Hand the hold (and the ledger work it owes) over to whoever settles it.
    fn disarm(&mut self) -> (Option<Hold>, Option<Owed>) {
        (self.hold.take(), self.owed.take())
    }

    /// Give the whole hold back now (on a task of its own, so it completes even if this
    /// request is dropped meanwhile).
    async fn release(&mut self) {
        let owed = self.owed.take();
        if let Some(hold) = self.hold.take() {
            let credits = self.credits.clone();
            let writer = self.writer.clone();
            detached(release_hold(credits, writer, hold, owed)).await;
        }
    }
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        let owed = self.owed.take();
        let Some(hold) = self.hold.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(hold = %hold.id, "request dropped outside a runtime; its hold is left to expire");
            return;
        };
        let credits = self.credits.clone();
        let writer = self.writer.clone();
        runtime.spawn(release_hold(credits, writer, hold, owed));
    }
}

/// Give a hold back in full: through the ledger queue when there is one (a hold reserved in
/// memory has no id the database knows until the queue has written it), else at once.
async fn release_hold(
    credits: Arc<dyn CreditStore>,
    writer: Option<Arc<LedgerWriter>>,
    hold: Hold,
    owed: Option<Owed>,
) {
    match writer {
        Some(writer) => writer.write(LedgerWrite::Release(hold), owed).await,
        None => {
            if let Err(error) = credits.release(&hold).await {
                // The hold expires and is reclaimed; the balance is whole again then.
                tracing::warn!(%error, hold = %hold.id, "releasing a hold failed");
            }
            drop(owed);
        }
    }
}

impl Gateway {
    /// Start configuring a gateway.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::new()
    }

    /// The configured models.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The credit store behind this gateway. With write-behind on
    /// ([`GatewayBuilder::ledger_write_behind`]), its reads first wait for the settles and
    /// usage records queued before them.
    pub fn credits(&self) -> &Arc<dyn CreditStore> {
        &self.inner.credits
    }

    /// The key vault, when BYOK is enabled.
    pub fn vault(&self) -> Option<&Arc<dyn KeyVault>> {
        self.inner.vault.as_ref()
    }

    /// The configured providers by name.
    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.inner.providers.values()
    }

    /// Whether the platform has its own key for a provider.
    pub fn has_platform_key(&self, provider: &str) -> bool {
        self.inner.platform_keys.contains_key(provider)
    }

    /// A whole completion. `request.stream` is ignored.
    pub async fn chat(&self, caller: &Caller, request: ChatRequest) -> Result<Completion> {
        let mut prepared = self.prepare(caller, request, false).await?;
        let tried = self
            .call_with_retries(
                &prepared.attempts,
                &mut prepared.request,
                prepared.prompt_estimate,
                prepared.seed,
                async |attempt: &Attempt, request: &ChatRequest| {
                    let call = ProviderCall {
                        request,
                        api_key: attempt.key.as_ref(),
                    };
                    attempt.provider.chat(call).await
                },
            )
            .await;
        let Tried {
            value: mut response,
            index,
            calls,
            mut ticket,
            upstream,
        } = match tried {
            Ok(tried) => tried,
            Err(error) => {
                prepared.hold.release().await;
                return Err(error);
            }
        };
        ticket.succeeded();
        let attempt = &prepared.attempts[index];
        let usage = match response.usage.take() {
            Some(usage) => usage,
            None => meter::estimate_response_usage(&response, prepared.prompt_estimate),
        };
        ticket.spent_tokens(usage.prompt_tokens + usage.completion_tokens);
        drop(ticket);
        let mut cost_breakdown = attempt.cost_of(&usage)?;
        let record = self.usage_record(
            caller,
            &prepared,
            attempt,
            &usage,
            cost_breakdown.cost_micros,
        );
        let (hold, owed) = prepared.hold.disarm();
        let cost_micros = self.finish(hold, record, owed).await?;
        let meters = self
            .inner
            .metrics
            .deployment(attempt.slot, &attempt.deployment.provider);
        meters.billed(usage.prompt_tokens, usage.completion_tokens, cost_micros);
        if index > 0 {
            meters.fallbacks.increment(1);
        }
        response.usage = Some(usage.with_class_details());
        cost_breakdown.cost_micros = cost_micros;
        let route = self.route_info(&prepared, attempt, calls, upstream);
        Ok(Completion {
            response,
            route,
            cost_micros,
            cost_breakdown,
        })
    }

    /// A streamed completion. Fails (and falls back) like [`Gateway::chat`] until the first
    /// chunk arrives; after that, failures arrive as an `Err` item and end the stream.
    pub async fn chat_stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<CompletionStream> {
        let mut prepared = self.prepare(caller, request, true).await?;
        let tried = self
            .call_with_retries(
                &prepared.attempts,
                &mut prepared.request,
                prepared.prompt_estimate,
                prepared.seed,
                async |attempt: &Attempt, request: &ChatRequest| {
                    let call = ProviderCall {
                        request,
                        api_key: attempt.key.as_ref(),
                    };
                    let mut stream = attempt.provider.chat_stream(call).await?;
                    match stream.next().await {
                        Some(Ok(first)) => Ok((first, stream)),
                        Some(Err(error)) => Err(error),
                        None => Err(Error::upstream_stream(
                            &attempt.deployment.provider,
                            "it ended before any output",
                        )),
                    }
                },
            )
            .await;
        let Tried {
            value: (first, stream),
            index,
            calls,
            mut ticket,
            upstream,
        } = match tried {
            Ok(tried) => tried,
            Err(error) => {
                prepared.hold.release().await;
                return Err(error);
            }
        };
        ticket.first_token();
        let attempt = &prepared.attempts[index];
        let meters = self
            .inner
            .metrics
            .deployment(attempt.slot, &attempt.deployment.provider)
            .clone();
        meters
            .first_token_seconds
            .record(prepared.started.elapsed().as_secs_f64());
        if index > 0 {
            meters.fallbacks.increment(1);
        }
        let route = self.route_info(&prepared, attempt, calls, upstream);
        let record = self.usage_record(caller, &prepared, attempt, &Default::default(), 0);
        let (hold, owed) = prepared.hold.disarm();
        let settler = meter::Settler {
            credits: self.inner.ledger.clone(),
            writer: self.inner.writer.clone(),
            hold,
            owed,
            meters,
            record,
            terms: attempt.terms,
            prompt_estimate: prepared.prompt_estimate,
        };
        let stream = Box::pin(Tracked::new(stream, ticket));
        Ok(CompletionStream::new(route, first, stream, settler))
    }

    /// The deployments a request would try, best first, without calling anything or placing
    /// a hold: the routing decision alone (model resolution, fallbacks, power level, privacy,
    /// context window, policy order, cooldowns and limits). At most `max_attempts` of them.
    pub fn route_preview(
        &self,
        caller: &Caller,
        request: &ChatRequest,
    ) -> Result<Vec<Arc<Deployment>>> {
        validate(request)?;
        let power_level = request
            .power_level
            .unwrap_or(caller.tier.default_power_level);
        let level = self.level(power_level);
        let ask = Ask {
            caller,
            request,
            power_level,
            level: &level,
            prompt_bound: 0,
            prompt_estimate: tokens::estimate_prompt_tokens(request),
            seed: self.inner.next_route.fetch_add(1, Ordering::Relaxed),
        };
        self.route_only(&ask)
    }

    /// Every configured deployment with its live state, in configuration order (for metrics
    /// and status pages).
    pub fn deployment_states(&self) -> Vec<(Arc<Deployment>, CandidateState)> {
        let states = &self.inner.states;
        let now = states.now();
        self.inner
            .catalog
            .deployments()
            .iter()
            .enumerate()
            .map(|(i, d)| (d.clone(), states.snapshot(i, now, 0)))
            .collect()
    }

    /// Requests whose ledger work (settling or releasing a hold, recording usage) is not done
    /// yet, including background writes for requests whose client went away.
    pub fn pending_settlements(&self) -> usize {
        self.inner.settlements.open()
    }

    /// Completes once no request owes ledger work. A server shutting down stops taking
    /// requests, drops the ones it will not finish, then waits for this, so that every hold
    /// is settled or released before the process exits.
    pub async fn settled(&self) {
        if let Some(writer) = &self.inner.writer {
            writer.hurry();
        }
        self.inner.settlements.idle().await;
    }

    /// The rate limiter could not answer: admit, and say so (not on every request).
    fn fail_open(&self, error: &Error) {
        let now = self.inner.states.now();
        let last = self.inner.fail_open_warned.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= FAIL_OPEN_WARN_EVERY_NS;
        if due
            && self
                .inner
                .fail_open_warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "rate limiter unavailable; admitting requests without it (fail open)");
        } else {
            tracing::debug!(%error, "rate limiter unavailable; admitting the request");
        }
    }

    fn level(&self, power_level: PowerLevel) -> std::borrow::Cow<'_, PowerLevelPolicy> {
        match self.inner.power_levels.get(&power_level) {
            Some(level) => std::borrow::Cow::Borrowed(level),
            None => std::borrow::Cow::Owned(PowerLevelPolicy::default_for(power_level)),
        }
    }

    /// A tier's per-user rpm. A limiter that cannot answer admits the request (fail open).
    async fn check_rate_limit(&self, caller: &Caller) -> Result<()> {
        let Some(rpm) = caller.tier.rpm else {
            return Ok(());
        };
        let key = format!("rpm:user:{}", caller.user_id);
        match self
            .inner
            .limiter
            .acquire(&key, Quota::per_minute(rpm), 1)
            .await
        {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::Limited { retry_after }) => {
                self.inner.metrics.user_rate_limited.increment(1);
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                Err(Error::new(
                    ErrorKind::RateLimited,
                    format!(
                        "Rate limit reached: your tier allows {rpm} requests per minute. Try                          again in {seconds} s."
                    ),
                )
                .with_code("rate_limit_exceeded")
                .with_retry_after(retry_after))
            }
            Err(error) => {
                self.fail_open(&error);
                Ok(())
            }
        }
    }

    async fn prepare(
        &self,
        caller: &Caller,
        mut request: ChatRequest,
        stream: bool,
    ) -> Result<Prepared> {
        let started = Instant::now();
        let mut owed = self.inner.settlements.begin();
        validate(&request)?;
        self.check_rate_limit(caller).await?;
        self.inner.states.sync_if_due();
        let power_level = request
            .power_level
            .unwrap_or(caller.tier.default_power_level);
        let level = self.level(power_level);
        let request_id = caller
            .request_id
            .clone()
            .unwrap_or_else(|| self.next_request_id());
        if stream {
            request.stream = Some(true);
            let options = request
                .stream_options
                .get_or_insert_with(StreamOptions::default);
            options.include_usage = Some(true);
        } else {
            request.stream = None;
            request.stream_options = None;
        }
        let prompt_estimate = tokens::estimate_prompt_tokens(&request);
        let seed = self.inner.next_route.fetch_add(1, Ordering::Relaxed);
        let mut attempts = self
            .plan(&Ask {
                caller,
                request: &request,
                power_level,
                level: &level,
                prompt_bound: tokens::prompt_upper_bound(&request),
                prompt_estimate,
                seed,
            })
            .await?;
        let hold = self.place_hold(caller, &request_id, &mut attempts).await?;
        if hold.is_some() {
            owed.hold_placed(&self.inner.metrics.holds_outstanding);
        }
        Ok(Prepared {
            request,
            request_id,
            power_level,
            attempts,
            hold: HoldGuard {
                credits: self.inner.ledger.clone(),
                writer: self.inner.writer.clone(),
                hold,
                owed: Some(owed),
            },
            prompt_estimate,
            seed,
            started,
        })
    }

    /// Hold the most any planned attempt may cost. When the balance cannot cover that but
    /// can cover some attempts, the ones it cannot cover are dropped (they would never be
    /// tried) and the rest are held for: an expensive last-resort fallback does not turn away
    /// a user who can afford the first choice.
    async fn place_hold(
        &self,
        caller: &Caller,
        request_id: &Arc<str>,
        attempts: &mut Vec<Attempt>,
    ) -> Result<Option<Hold>> {
        if caller.billing == Billing::Uncharged {
            return Ok(None);
        }
        let amount = attempts.iter().map(|a| a.max_charge).max().unwrap_or(0);
        // With write-behind the hold goes through the same queue as the settles: it is
        // committed after (and sees) every settle queued before it.
        let refused = match self.hold(caller, request_id, amount).await {
            Err(error) if error.kind() == ErrorKind::InsufficientCredits => error,
            placed => return placed,
        };
        let balance = self.inner.ledger.balance(&caller.user_id).await?;
        let before = attempts.len();
        attempts.retain(|a| a.max_charge <= balance);
        if attempts.is_empty() || attempts.len() == before {
            return Err(refused);
        }
        let amount = attempts.iter().map(|a| a.max_charge).max().unwrap_or(0);
        self.hold(caller, request_id, amount).await
    }

    async fn hold(
        &self,
        caller: &Caller,
        request_id: &Arc<str>,
        amount: i64,
    ) -> Result<Option<Hold>> {
        if amount == 0 {
            return Ok(None);
        }
        let request = HoldRequest {
            user_id: caller.user_id.to_string(),
            request_id: request_id.to_string(),
            amount_micros: amount,
            ttl_secs: self.inner.hold_ttl.as_secs(),
        };
        let hold = match &self.inner.writer {
            Some(writer) => writer.hold(request).await?,
            None => self.inner.ledger.hold(request).await?,
        };
        Ok(Some(hold))
    }

    /// Settle the hold (or just record usage when there is none); returns the charge.
    ///
    /// With write-behind the write is queued and the charge returned at once. Otherwise the
    /// write runs on a task of its own, so a client going away cannot cut it in half. An
    /// uncharged request whose usage cannot be recorded (the database is down) is still
    /// answered: the failure is logged and counted. A hold that cannot be settled fails the
    /// request; the hold is reclaimed at its expiry, so nothing is charged.
    async fn finish(
        &self,
        hold: Option<Hold>,
        record: UsageRecord,
        owed: Option<Owed>,
    ) -> Result<i64> {
        if let Some(writer) = &self.inner.writer {
            // Off the response path: the charge is known now, the write follows.
            let (charged, write) = match hold {
                Some(hold) => (
                    record.cost_micros.min(hold.amount_micros),
                    LedgerWrite::Settle {
                        hold,
                        usage: record,
                    },
                ),
                None => (record.cost_micros, LedgerWrite::Usage(record)),
            };
            writer.write(write, owed).await;
            return Ok(charged);
        }
        let credits = self.inner.ledger.clone();
        let held = hold.is_some();
        let written = detached(async move {
            let outcome = meter::settle_or_record(&credits, hold.as_ref(), &record).await;
            if let (Err(error), None) = (&outcome, &hold) {
                tracing::warn!(%error, request_id = %record.request_id, "recording usage failed; the request was served");
            }
            drop(owed);
            outcome
        })
        .await
        .unwrap_or_else(|| Err(Error::internal("Settling the request failed.")));
        match written {
            Ok(charged) => Ok(charged),
            Err(_) if !held => {
                self.inner.metrics.usage_record_failures.increment(1);
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }

    fn usage_record(
        &self,
        caller: &Caller,
        prepared: &Prepared,
        attempt: &Attempt,
        usage: &crate::chat::Usage,
        cost: i64,
    ) -> UsageRecord {
        let mut record = UsageRecord {
            user_id: caller.user_id.to_string(),
            request_id: prepared.request_id.to_string(),
            model: attempt.deployment.name.clone(),
            provider: attempt.deployment.provider.clone(),
            key_source: attempt.key_source,
            prompt_tokens: 0,
            completion_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost_micros: cost,
            at: unix_now(),
        };
        record.set_tokens(usage);
        record
    }

    fn route_info(
        &self,
        prepared: &Prepared,
        attempt: &Attempt,
        calls: u32,
        upstream_time: Duration,
    ) -> RouteInfo {
        RouteInfo {
            request_id: prepared.request_id.clone(),
            provider: attempt.deployment.provider.clone(),
            model: attempt.deployment.name.clone(),
            attempts: calls,
            key_source: attempt.key_source,
            power_level: prepared.power_level,
            upstream_time,
        }
    }

    fn next_request_id(&self) -> Arc<str> {
        let n = self.inner.next_request.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("req-{:x}-{n}", unix_now()))
    }
}

fn validate(request: &ChatRequest) -> Result<()> {
    if request.model.trim().is_empty() {
        return Err(Error::invalid_request("`model` must not be empty.").with_param("model"));
    }
    if request.messages.is_empty() {
        return Err(
            Error::invalid_request("`messages` must hold at least one message.")
                .with_param("messages"),
        );
    }
    if request.n.is_some_and(|n| n == 0 || n > 16) {
        return Err(Error::invalid_request("`n` must be between 1 and 16.").with_param("n"));
    }
    if request.requested_max_tokens() == Some(0) {
        return Err(
            Error::invalid_request("`max_tokens` must be at least 1.").with_param("max_tokens")
        );
    }
    Ok(())
}
