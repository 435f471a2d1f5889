//! The in-process request pipeline: resolve the model, rank deployments, hold credits, pick a
//! key, call, fall back, settle, record.

mod admit;
mod answer;
mod attempts;
mod bill;
mod builder;
mod count;
mod embed;
mod inner;
mod lease;
mod ledger;
mod meter;
mod owed;
mod plan;
mod prepared;
mod reserve;
mod retry;
mod route;
mod settle;
mod writer;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;

pub use answer::{Completion, Embedded, RouteInfo};
pub use attempts::{AttemptFailure, AttemptLog, AttemptRecord};
pub use builder::GatewayBuilder;
pub use inner::Gateway;
pub use meter::CompletionStream;
pub use route::ModelResolver;

use crate::caller::Caller;
use crate::catalog::{Catalog, Deployment};
use crate::chat::{ChatRequest, StreamOptions};
use crate::credits::CreditStore;
use crate::error::{Error, Result};
use crate::memory::unix_now;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::{Provider, ProviderCall};
use crate::routing::CandidateState;
use crate::vault::KeyVault;
use admit::validate;
use ledger::HoldGuard;
use plan::{Ask, Attempt, Sizing};
use prepared::Prepared;
use retry::{Tracked, Tried};

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
        let sizing = Sizing::chat(&request);
        let mut prepared = self.prepare(caller, request, false, sizing).await?;
        let answer = async |attempt: &Attempt, request: &ChatRequest| {
            let call = ProviderCall {
                request,
                api_key: attempt.key.as_ref(),
            };
            attempt.provider.chat(call).await
        };
        let (mut response, call) = self.try_prepared(&mut prepared, answer).await?.take();
        let usage = match response.usage.take() {
            Some(usage) => usage,
            None => meter::estimate_response_usage(&response, prepared.prompt_estimate),
        };
        let billed = self.bill(caller, &mut prepared, call, &usage).await?;
        response.usage = Some(usage.with_class_details());
        Ok(Completion {
            response,
            route: billed.route,
            cost_micros: billed.cost_micros,
            cost_breakdown: billed.cost_breakdown,
        })
    }

    /// A streamed completion. Fails (and falls back) like [`Gateway::chat`] until the first
    /// chunk arrives; after that, failures arrive as an `Err` item and end the stream.
    pub async fn chat_stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<CompletionStream> {
        let sizing = Sizing::chat(&request);
        let mut prepared = self.prepare(caller, request, true, sizing).await?;
        let first_chunk = async |attempt: &Attempt, request: &ChatRequest| {
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
        };
        let Tried {
            value: (first, stream),
            index,
            calls,
            log,
            mut ticket,
            upstream,
        } = self.try_prepared(&mut prepared, first_chunk).await?;
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
        let route = self.route_info(&prepared, attempt, calls, log, upstream);
        let record = self.usage_record(
            caller,
            &prepared.request_id,
            attempt,
            &Default::default(),
            0,
        );
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
            sizing: Sizing {
                prompt_bound: 0,
                ..Sizing::chat(request)
            },
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
        if let Some(writer) = &self.inner.writer {
            // Nothing in flight: every balance lease goes back before the process ends.
            writer.return_leases().await;
        }
    }

    fn level(&self, power_level: PowerLevel) -> std::borrow::Cow<'_, PowerLevelPolicy> {
        match self.inner.power_levels.get(&power_level) {
            Some(level) => std::borrow::Cow::Borrowed(level),
            None => std::borrow::Cow::Owned(PowerLevelPolicy::default_for(power_level)),
        }
    }

    async fn prepare(
        &self,
        caller: &Caller,
        mut request: ChatRequest,
        stream: bool,
        sizing: Sizing,
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
        let prompt_estimate = sizing.prompt_estimate;
        let seed = self.inner.next_route.fetch_add(1, Ordering::Relaxed);
        let mut attempts = self
            .plan(&Ask {
                caller,
                request: &request,
                power_level,
                level: &level,
                sizing,
                seed,
            })
            .await?;
        let output_cap = attempts.iter().map(|a| a.max_tokens).max().unwrap_or(0);
        let choices = u64::from(request.n.unwrap_or(1));
        let tokens = prompt_estimate.saturating_add(u64::from(output_cap) * choices);
        self.check_key_tokens(caller, tokens).await?;
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
            attempt_log: caller.attempt_log.clone(),
        })
    }

    /// Try the prepared request's attempts with `call`, failing over and retrying; when none
    /// answers, the hold is given back before the error is returned, and the calls made are
    /// left in the caller's attempt log.
    async fn try_prepared<T: crate::trace::Answered>(
        &self,
        prepared: &mut Prepared,
        call: impl AsyncFnMut(&Attempt, &ChatRequest) -> Result<T>,
    ) -> Result<Tried<T>> {
        let mut log = Vec::new();
        let tried = self
            .call_with_retries(
                &prepared.attempts,
                &mut prepared.request,
                prepared.prompt_estimate,
                prepared.seed,
                &mut log,
                call,
            )
            .await;
        if tried.is_err() {
            // Boxed: giving a hold back is a 10 KB future that only failures need; inline it
            // would make every request's future that much larger (and it is moved whole).
            Box::pin(prepared.hold.release()).await;
            if let Some(attempt_log) = &prepared.attempt_log {
                attempt_log.put(log);
            }
        }
        tried
    }

    fn route_info(
        &self,
        prepared: &Prepared,
        attempt: &Attempt,
        calls: u32,
        attempt_log: Vec<attempts::AttemptRecord>,
        upstream_time: Duration,
    ) -> RouteInfo {
        RouteInfo {
            request_id: prepared.request_id.clone(),
            provider: attempt.deployment.provider.clone(),
            model: attempt.deployment.name.clone(),
            attempts: calls,
            attempt_log,
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
