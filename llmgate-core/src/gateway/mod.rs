//! The in-process request pipeline: resolve the model, rank deployments, hold credits, pick a
//! key, call, fall back, settle, record.

mod builder;
mod meter;
mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use rust_decimal::Decimal;

pub use builder::GatewayBuilder;
pub use meter::CompletionStream;

use crate::caller::{Billing, Caller};
use crate::catalog::{Catalog, Deployment};
use crate::chat::{ChatRequest, ChatResponse, StreamOptions};
use crate::credits::{CreditStore, Hold, HoldRequest, KeySource, UsageRecord};
use crate::error::{Error, ErrorKind, Result};
use crate::memory::unix_now;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::{Provider, ProviderCall};
use crate::routing::RoutingPolicy;
use crate::secret::Secret;
use crate::tokens;
use crate::vault::KeyVault;
use plan::Attempt;

/// Resolves a model name the catalog does not list (e.g. `groq/llama3-70b-8192` or a
/// well-known bare name) to an ad-hoc deployment.
pub type ModelResolver = dyn Fn(&str) -> Option<Deployment> + Send + Sync;

/// How the request was served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    pub request_id: Arc<str>,
    /// The configured provider that answered.
    pub provider: String,
    /// The configured model name that answered (differs from the request after a fallback).
    pub model: String,
    /// Attempts made, the successful one included.
    pub attempts: u32,
    pub key_source: KeySource,
    pub power_level: PowerLevel,
}

/// A whole completion and what it cost.
#[derive(Debug, Clone)]
pub struct Completion {
    pub response: ChatResponse,
    pub route: RouteInfo,
    /// Micro-credits charged (0 for free models, BYOK and uncharged callers).
    pub cost_micros: i64,
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
    credits: Arc<dyn CreditStore>,
    vault: Option<Arc<dyn KeyVault>>,
    policy: Arc<dyn RoutingPolicy>,
    power_levels: HashMap<PowerLevel, PowerLevelPolicy>,
    credits_per_usd: Decimal,
    max_attempts: u32,
    hold_ttl: Duration,
    default_max_tokens: u32,
    next_request: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("models", &self.catalog.deployments().len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A request ready to try: validated, with its candidates planned and its hold placed.
struct Prepared {
    request: ChatRequest,
    request_id: Arc<str>,
    power_level: PowerLevel,
    attempts: Vec<Attempt>,
    hold: Option<Hold>,
    prompt_estimate: u64,
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::new()
    }

    /// The configured models.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The credit store behind this gateway.
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
        let mut last_error = None;
        let mut tried = 0u32;
        for attempt in prepared.attempts.iter() {
            tried += 1;
            attempt.apply_to(&mut prepared.request);
            let call = ProviderCall {
                request: &prepared.request,
                api_key: attempt.key.as_ref(),
            };
            match attempt.provider.chat(call).await {
                Ok(mut response) => {
                    let usage = match response.usage.take() {
                        Some(usage) => usage,
                        None => meter::estimate_response_usage(&response, prepared.prompt_estimate),
                    };
                    let cost = attempt.cost_of(&usage)?;
                    let record = self.usage_record(caller, &prepared, attempt, &usage, cost);
                    let cost_micros = self.finish(prepared.hold.as_ref(), &record).await?;
                    response.usage = Some(usage);
                    let route = self.route_info(&prepared, attempt, tried);
                    return Ok(Completion {
                        response,
                        route,
                        cost_micros,
                    });
                }
                Err(error) => {
                    let error = attempt.classify(error);
                    tracing::debug!(provider = %attempt.deployment.provider, model = %attempt.deployment.name, %error, "attempt failed");
                    let stop = !error.is_retryable();
                    last_error = Some(error);
                    if stop {
                        break;
                    }
                }
            }
        }
        self.release(prepared.hold.as_ref()).await;
        Err(exhausted(last_error))
    }

    /// A streamed completion. Fails (and falls back) like [`Gateway::chat`] until the first
    /// chunk arrives; after that, failures arrive as an `Err` item and end the stream.
    pub async fn chat_stream(
        &self,
        caller: &Caller,
        request: ChatRequest,
    ) -> Result<CompletionStream> {
        let mut prepared = self.prepare(caller, request, true).await?;
        let mut last_error = None;
        let mut tried = 0u32;
        for index in 0..prepared.attempts.len() {
            tried += 1;
            let attempt = &prepared.attempts[index];
            attempt.apply_to(&mut prepared.request);
            let call = ProviderCall {
                request: &prepared.request,
                api_key: attempt.key.as_ref(),
            };
            let opened = match attempt.provider.chat_stream(call).await {
                Ok(mut stream) => match stream.next().await {
                    Some(Ok(first)) => Ok((first, stream)),
                    Some(Err(error)) => Err(error),
                    None => Err(Error::upstream_stream(
                        &attempt.deployment.provider,
                        "it ended before any output",
                    )),
                },
                Err(error) => Err(error),
            };
            match opened {
                Ok((first, stream)) => {
                    let route = self.route_info(&prepared, attempt, tried);
                    let record =
                        self.usage_record(caller, &prepared, attempt, &Default::default(), 0);
                    let settler = meter::Settler {
                        credits: self.inner.credits.clone(),
                        hold: prepared.hold.take(),
                        record,
                        terms: attempt.terms,
                        prompt_estimate: prepared.prompt_estimate,
                    };
                    return Ok(CompletionStream::new(route, first, stream, settler));
                }
                Err(error) => {
                    let error = attempt.classify(error);
                    tracing::debug!(provider = %attempt.deployment.provider, model = %attempt.deployment.name, %error, "stream attempt failed");
                    let stop = !error.is_retryable();
                    last_error = Some(error);
                    if stop {
                        break;
                    }
                }
            }
        }
        self.release(prepared.hold.as_ref()).await;
        Err(exhausted(last_error))
    }

    async fn prepare(
        &self,
        caller: &Caller,
        mut request: ChatRequest,
        stream: bool,
    ) -> Result<Prepared> {
        validate(&request)?;
        let inner = &self.inner;
        let power_level = request
            .power_level
            .unwrap_or(caller.tier.default_power_level);
        let level = inner
            .power_levels
            .get(&power_level)
            .cloned()
            .unwrap_or_else(|| PowerLevelPolicy::default_for(power_level));
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
        let prompt_bound = tokens::prompt_upper_bound(&request);
        let prompt_estimate = tokens::estimate_prompt_tokens(&request);
        let attempts = self
            .plan(
                caller,
                &request,
                power_level,
                &level,
                prompt_bound,
                prompt_estimate,
            )
            .await?;
        let hold = self.place_hold(caller, &request_id, &attempts).await?;
        Ok(Prepared {
            request,
            request_id,
            power_level,
            attempts,
            hold,
            prompt_estimate,
        })
    }

    async fn place_hold(
        &self,
        caller: &Caller,
        request_id: &Arc<str>,
        attempts: &[Attempt],
    ) -> Result<Option<Hold>> {
        if caller.billing == Billing::Uncharged {
            return Ok(None);
        }
        let amount = attempts.iter().map(|a| a.max_charge).max().unwrap_or(0);
        if amount == 0 {
            return Ok(None);
        }
        let hold = self
            .inner
            .credits
            .hold(HoldRequest {
                user_id: caller.user_id.to_string(),
                request_id: request_id.to_string(),
                amount_micros: amount,
                ttl_secs: self.inner.hold_ttl.as_secs(),
            })
            .await?;
        Ok(Some(hold))
    }

    /// Settle the hold (or just record usage when there is none); returns the charge.
    async fn finish(&self, hold: Option<&Hold>, record: &UsageRecord) -> Result<i64> {
        meter::settle_or_record(&self.inner.credits, hold, record).await
    }

    async fn release(&self, hold: Option<&Hold>) {
        if let Some(hold) = hold
            && let Err(error) = self.inner.credits.release(hold).await
        {
            // The hold expires and is reclaimed; the balance is whole again then.
            tracing::warn!(%error, hold = %hold.id, "releasing a hold failed");
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
        UsageRecord {
            user_id: caller.user_id.to_string(),
            request_id: prepared.request_id.to_string(),
            model: attempt.deployment.name.clone(),
            provider: attempt.deployment.provider.clone(),
            key_source: attempt.key_source,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_micros: cost,
            at: unix_now(),
        }
    }

    fn route_info(&self, prepared: &Prepared, attempt: &Attempt, tried: u32) -> RouteInfo {
        RouteInfo {
            request_id: prepared.request_id.clone(),
            provider: attempt.deployment.provider.clone(),
            model: attempt.deployment.name.clone(),
            attempts: tried,
            key_source: attempt.key_source,
            power_level: prepared.power_level,
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

fn exhausted(last_error: Option<Error>) -> Error {
    match last_error {
        Some(error) if error.kind() == ErrorKind::InvalidRequest => error,
        Some(error) => error,
        None => Error::new(
            ErrorKind::Upstream,
            "No deployment could serve this request.",
        ),
    }
}
