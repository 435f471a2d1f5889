//! Planning: which deployments to try, with which key, at what price and output cap.

use std::sync::Arc;

use super::inner::Gateway;
use super::route::{Route, Routed};
use crate::caller::{Billing, Caller};
use crate::catalog::{Deployment, ModelMode};
use crate::chat::{ChatRequest, Usage};
use crate::credits::KeySource;
use crate::error::{Error, ErrorKind, Result};
use crate::key_limits::KeyLimits;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::pricing::{CostBreakdown, PriceTerms};
use crate::provider::Provider;
use crate::routing::RouteFacts;
use crate::secret::Secret;
use crate::tokens;

/// One planned try: a deployment with its key, price terms and output cap.
pub(super) struct Attempt {
    pub deployment: Arc<Deployment>,
    /// The deployment's state slot; `None` for ad-hoc deployments, which are not tracked.
    pub slot: Option<usize>,
    pub provider: Arc<dyn Provider>,
    pub key: Option<Secret>,
    pub key_source: KeySource,
    /// `None` when this attempt is not charged (free model, BYOK, uncharged caller).
    pub terms: Option<PriceTerms>,
    pub max_tokens: u32,
    /// The most this attempt can cost: the hold covers the largest of these.
    pub max_charge: i64,
}

impl Attempt {
    /// Point the request at this deployment.
    pub fn apply_to(&self, request: &mut ChatRequest) {
        request.model.clone_from(&self.deployment.upstream_model);
        request.set_max_tokens(self.max_tokens);
    }

    /// The cost of the usage reported, class by class; the charge is never more than this
    /// attempt's maximum.
    pub fn cost_of(&self, usage: &Usage) -> Result<CostBreakdown> {
        let classes = usage.classes();
        match &self.terms {
            Some(terms) => {
                let mut cost = terms.breakdown(&classes)?;
                cost.cost_micros = cost.cost_micros.min(self.max_charge);
                Ok(cost)
            }
            None => Ok(CostBreakdown::free(&classes)),
        }
    }

    /// A user's own key that the upstream refused is the user's problem: say so, and do not
    /// fall back to the platform's key behind their back.
    pub fn classify(&self, error: Error) -> Error {
        let auth_refused = matches!(error.upstream_status(), Some(401 | 403));
        if self.key_source == KeySource::Byok && auth_refused {
            return Error::invalid_request(format!(
                "Your own {provider} API key was rejected by the provider. Replace the key you \
                 stored for `{provider}`.",
                provider = self.deployment.provider
            ))
            .with_code("byok_key_rejected")
            .with_retryable(false);
        }
        error
    }
}

/// What routing needs to know about a request, worked out once in `prepare`.
pub(super) struct Ask<'a> {
    pub caller: &'a Caller,
    /// The chat request, or for embeddings a stand-in that carries the model and power level.
    pub request: &'a ChatRequest,
    pub power_level: PowerLevel,
    pub level: &'a PowerLevelPolicy,
    pub sizing: Sizing,
    pub seed: u64,
}

/// The size and kind of a request's input, for routing and the hold.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    /// An upper bound on the input's tokens (the hold covers it).
    pub prompt_bound: u64,
    /// An estimate of the input's tokens (rate limits, context windows, answers without usage).
    pub prompt_estimate: u64,
    /// The mode a deployment must have to serve the request.
    pub mode: ModelMode,
    /// Embeddings: how many inputs the request carries (checked against `max_inputs`).
    pub inputs: u32,
}

impl Sizing {
    pub fn chat(request: &ChatRequest) -> Self {
        Self {
            prompt_bound: tokens::prompt_upper_bound(request),
            prompt_estimate: tokens::estimate_prompt_tokens(request),
            mode: ModelMode::Chat,
            inputs: 0,
        }
    }
}

/// Why a deployment cannot take a request of this kind: the wrong mode, or (embeddings) more
/// inputs than its `max_inputs`.
fn refuse_kind(deployment: &Deployment, sizing: &Sizing) -> Option<Error> {
    let name = &deployment.name;
    if deployment.mode != sizing.mode {
        let message = match deployment.mode {
            ModelMode::Embedding => format!(
                "Model `{name}` is an embedding model (mode `embedding`); send it to \
                 /v1/embeddings, not to chat completions."
            ),
            ModelMode::Chat => {
                format!("Model `{name}` is a chat model (mode `chat`); it cannot make embeddings.")
            }
        };
        return Some(
            Error::invalid_request(message)
                .with_param("model")
                .with_code("wrong_model_mode"),
        );
    }
    match deployment.max_inputs {
        Some(max) if sizing.inputs > max => Some(
            Error::invalid_request(format!(
                "Model `{name}` takes at most {max} inputs per request; this one has {}. Split \
                 the batch.",
                sizing.inputs
            ))
            .with_param("input")
            .with_code("too_many_inputs"),
        ),
        _ => None,
    }
}

impl Ask<'_> {
    fn facts(&self, default_max_tokens: u32) -> RouteFacts<'_> {
        let output = self
            .request
            .requested_max_tokens()
            .unwrap_or(default_max_tokens)
            .min(self.level.max_tokens);
        RouteFacts {
            model: &self.request.model,
            power_level: self.power_level,
            level: self.level,
            prompt_tokens: self.sizing.prompt_estimate,
            max_output_tokens: u64::from(output),
            stream: self.request.is_stream(),
            seed: self.seed,
        }
    }
}

impl Gateway {
    /// Where the routing of a request starts, and how many deployments it may try.
    fn route<'g>(&'g self, ask: &'g Ask<'_>) -> Result<(Route<'g>, usize)> {
        let inner = &self.inner;
        let route = Route::start(
            inner.route_sources(),
            ask.facts(inner.default_max_tokens),
            ask.caller.required_privacy(),
        )?;
        Ok((route, inner.max_attempts as usize))
    }

    /// The deployments to try, best first, each with its key, price terms and output cap; at
    /// most `max_attempts` of them.
    pub(super) async fn plan(&self, ask: &Ask<'_>) -> Result<Vec<Attempt>> {
        if let Some(key) = &ask.caller.key
            && !key.allows_requested(&ask.request.model)
        {
            return Err(KeyLimits::refusal(&ask.request.model));
        }
        let (mut route, wanted) = self.route(ask)?;
        let mut attempts = Vec::with_capacity(wanted.min(4));
        let mut byok_keys: Vec<(String, Option<Secret>)> = Vec::new();
        let mut first_refusal: Option<Error> = None;
        let mut group = Vec::new();
        'groups: while route.next_group(&mut group) {
            for pick in group.drain(..) {
                let Some(routed) = route.routed(pick) else {
                    continue;
                };
                match self.plan_one(ask, routed, &mut byok_keys).await? {
                    Ok(attempt) => attempts.push(attempt),
                    Err(refusal) => {
                        first_refusal.get_or_insert(refusal);
                    }
                }
                if attempts.len() >= wanted {
                    break 'groups;
                }
            }
        }
        if attempts.is_empty() {
            let nothing = route.nothing_fits();
            return Err(match first_refusal {
                Some(refusal) if nothing.kind() != crate::error::ErrorKind::UpstreamUnavailable => {
                    refusal
                }
                _ => nothing,
            });
        }
        Ok(attempts)
    }

    /// The routing decision alone: the deployments a request would try, best first, without
    /// keys, prices, holds or calls (at most `max_attempts`).
    pub(super) fn route_only(&self, ask: &Ask<'_>) -> Result<Vec<Arc<Deployment>>> {
        let (mut route, wanted) = self.route(ask)?;
        let mut chosen = Vec::with_capacity(wanted.min(4));
        let mut group = Vec::new();
        while chosen.len() < wanted && route.next_group(&mut group) {
            let room = wanted - chosen.len();
            chosen.extend(
                group
                    .drain(..)
                    .take(room)
                    .filter_map(|pick| route.routed(pick))
                    .map(|routed| routed.deployment),
            );
        }
        if chosen.is_empty() {
            return Err(route.nothing_fits());
        }
        Ok(chosen)
    }

    /// Plan one deployment. The outer `Result` is a backend failure; the inner one says why
    /// this deployment cannot serve the request (the next may).
    async fn plan_one(
        &self,
        ask: &Ask<'_>,
        routed: Routed,
        byok_keys: &mut Vec<(String, Option<Secret>)>,
    ) -> Result<Result<Attempt>> {
        let inner = &self.inner;
        let Ask {
            caller,
            request,
            level,
            sizing,
            ..
        } = *ask;
        let Routed { deployment, slot } = routed;
        if let Some(key) = &caller.key
            && !key.allows_candidate(&request.model, &deployment.name)
        {
            return Ok(Err(KeyLimits::refusal(&deployment.name)));
        }
        if let Some(refusal) = refuse_kind(&deployment, &sizing) {
            return Ok(Err(refusal));
        }
        let Some(provider) = inner.providers.get(&deployment.provider).cloned() else {
            return Ok(Err(Error::internal(format!(
                "Model `{}` names provider `{}`, which is not configured.",
                deployment.name, deployment.provider
            ))));
        };

        let byok = match self.byok_key(caller, &deployment.provider, byok_keys).await {
            Ok(byok) => byok,
            // The vault's database is down and it has no answer to fall back on. A free model
            // costs the caller nothing on either key, so the platform key serves it; a priced
            // one cannot tell "their own key, uncharged" from "ours, charged" and waits.
            Err(error) if error.kind() == ErrorKind::Unavailable && deployment.is_free() => {
                tracing::warn!(
                    provider = %deployment.provider,
                    model = %deployment.name,
                    "the BYOK key could not be looked up; serving the free model on the platform key"
                );
                None
            }
            Err(error) => return Err(error),
        };
        let (key, key_source) = match byok {
            Some(key) => (Some(key), KeySource::Byok),
            None => {
                let key = inner.platform_keys.get(&deployment.provider).cloned();
                if key.is_none() && provider.requires_key() {
                    return Ok(Err(Error::invalid_request(format!(
                        "Provider `{}` has no platform key; add your own key to use `{}`.",
                        deployment.provider, deployment.name
                    ))
                    .with_code("no_provider_key")));
                }
                (key, KeySource::Platform)
            }
        };

        let charged = caller.billing == Billing::Charged && key_source == KeySource::Platform;
        let terms = match (charged, deployment.price) {
            (false, _) => None,
            (true, Some(price)) if price.is_free() => None,
            (true, Some(price)) => Some(PriceTerms {
                price,
                markup: caller.tier.markup,
                multiplier: level.cost_multiplier,
                credits_per_usd: inner.credits_per_usd,
            }),
            (true, None) => {
                return Ok(Err(Error::invalid_request(format!(
                    "Model `{}` has no price on this gateway; it can be used only with your own \
                     {} key.",
                    deployment.name, deployment.provider
                ))
                .with_param("model")
                .with_code("model_unpriced")));
            }
        };

        // An embedding has no output tokens.
        let max_tokens = match deployment.mode {
            ModelMode::Embedding => 0,
            ModelMode::Chat => effective_max_tokens(
                request,
                level,
                &deployment,
                sizing.prompt_estimate,
                inner.default_max_tokens,
            ),
        };
        let choices = u64::from(request.n.unwrap_or(1));
        let max_charge = match &terms {
            Some(terms) => {
                terms.max_charge_micros(sizing.prompt_bound, u64::from(max_tokens) * choices)?
            }
            None => 0,
        };
        Ok(Ok(Attempt {
            deployment,
            slot,
            provider,
            key,
            key_source,
            terms,
            max_tokens,
            max_charge,
        }))
    }

    async fn byok_key(
        &self,
        caller: &Caller,
        provider: &str,
        seen: &mut Vec<(String, Option<Secret>)>,
    ) -> Result<Option<Secret>> {
        let Some(vault) = &self.inner.vault else {
            return Ok(None);
        };
        if caller.billing != Billing::Charged || !caller.tier.byok {
            return Ok(None);
        }
        if let Some((_, key)) = seen.iter().find(|(p, _)| p == provider) {
            return Ok(key.clone());
        }
        let key = vault.get(&caller.user_id, provider).await?;
        seen.push((provider.to_owned(), key.clone()));
        Ok(key)
    }
}

/// The smallest of the request's cap, the power level's cap, the model's output limit and what
/// is left of its context window.
fn effective_max_tokens(
    request: &ChatRequest,
    level: &PowerLevelPolicy,
    deployment: &Deployment,
    prompt_estimate: u64,
    default_cap: u32,
) -> u32 {
    let mut cap = request
        .requested_max_tokens()
        .unwrap_or(default_cap)
        .min(level.max_tokens);
    if let Some(limit) = deployment.max_output_tokens {
        cap = cap.min(limit);
    }
    if let Some(window) = deployment.context_window {
        let left = u64::from(window).saturating_sub(prompt_estimate);
        cap = cap.min(u32::try_from(left).unwrap_or(u32::MAX));
    }
    cap.max(1)
}
