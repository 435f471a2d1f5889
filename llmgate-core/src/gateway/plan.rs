//! Planning: which deployments to try, with which key, at what price and output cap.

use std::sync::Arc;

use super::{Gateway, PowerLevel};
use crate::caller::{Billing, Caller};
use crate::catalog::{Deployment, Privacy};
use crate::chat::{ChatRequest, Usage};
use crate::credits::KeySource;
use crate::error::{Error, Result};
use crate::power::PowerLevelPolicy;
use crate::pricing::PriceTerms;
use crate::provider::Provider;
use crate::routing::{Candidate, CandidateState, RouteFacts};
use crate::secret::Secret;

/// One planned try: a deployment with its key, price terms and output cap.
pub(super) struct Attempt {
    pub deployment: Arc<Deployment>,
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

    /// The charge for the usage reported, never more than this attempt's maximum.
    pub fn cost_of(&self, usage: &Usage) -> Result<i64> {
        match &self.terms {
            Some(terms) => Ok(terms
                .charge_micros(usage.prompt_tokens, usage.completion_tokens)?
                .min(self.max_charge)),
            None => Ok(0),
        }
    }

    /// A user's own key that the upstream refused is the user's problem: say so, and do not
    /// fall back to the platform's key behind their back.
    pub fn classify(&self, error: Error) -> Error {
        let auth_refused = matches!(error.upstream_status(), Some(401 | 403));
        if self.key_source == KeySource::Byok && auth_refused {
            return Error::invalid_request(format!(
                "Your own {} API key was rejected by the provider. Update it under \
                 /api/v1/llm/providers/{}/key.",
                self.deployment.provider, self.deployment.provider
            ))
            .with_code("byok_key_rejected")
            .with_retryable(false);
        }
        error
    }
}

impl Gateway {
    pub(super) async fn plan(
        &self,
        caller: &Caller,
        request: &ChatRequest,
        power_level: PowerLevel,
        level: &PowerLevelPolicy,
        prompt_bound: u64,
        prompt_estimate: u64,
    ) -> Result<Vec<Attempt>> {
        let facts = RouteFacts {
            model: &request.model,
            power_level,
            level,
            prompt_tokens: prompt_estimate,
        };
        let deployments = self.candidates(&facts)?;
        let mut attempts = Vec::with_capacity(deployments.len());
        let mut byok_keys: Vec<(String, Option<Secret>)> = Vec::new();
        let mut first_refusal: Option<Error> = None;
        for deployment in deployments {
            match self
                .plan_one(
                    caller,
                    request,
                    level,
                    deployment,
                    prompt_bound,
                    prompt_estimate,
                    &mut byok_keys,
                )
                .await?
            {
                Ok(attempt) => attempts.push(attempt),
                Err(refusal) => {
                    first_refusal.get_or_insert(refusal);
                }
            }
            if attempts.len() >= self.inner.max_attempts as usize {
                break;
            }
        }
        if attempts.is_empty() {
            return Err(first_refusal.unwrap_or_else(|| Error::model_not_found(&request.model)));
        }
        Ok(attempts)
    }

    /// The deployments that may serve the request, best first.
    fn candidates(&self, facts: &RouteFacts<'_>) -> Result<Vec<Arc<Deployment>>> {
        let catalog = &self.inner.catalog;
        if facts.model == "auto" {
            let eligible: Vec<&Arc<Deployment>> = catalog
                .deployments()
                .iter()
                .filter(|d| d.quality.unwrap_or(0.0) >= facts.level.quality_threshold)
                .collect();
            let mut ranked = self.rank(facts, &eligible);
            ranked.sort_by_key(|d| preference_rank(d, &facts.level.preferred_providers));
            if ranked.is_empty() {
                return Err(Error::invalid_request(format!(
                    "No configured model meets the {} power level's quality threshold of {}.",
                    facts.power_level, facts.level.quality_threshold
                ))
                .with_param("model")
                .with_code("no_model_for_power_level"));
            }
            return Ok(ranked);
        }
        if catalog.contains(facts.model) {
            let mut chain: Vec<Arc<Deployment>> = Vec::new();
            let mut names: Vec<String> = vec![facts.model.to_owned()];
            let mut next = 0;
            while next < names.len() {
                let group: Vec<&Arc<Deployment>> = catalog.by_name(&names[next]).collect();
                next += 1;
                for deployment in self.rank(facts, &group) {
                    for fallback in &deployment.fallbacks {
                        if !names.contains(fallback) && catalog.contains(fallback) {
                            names.push(fallback.clone());
                        }
                    }
                    chain.push(deployment);
                }
            }
            return Ok(chain);
        }
        if let Some(resolver) = &self.inner.resolver
            && let Some(deployment) = resolver(facts.model)
            && self.inner.providers.contains_key(&deployment.provider)
        {
            return Ok(vec![Arc::new(deployment)]);
        }
        Err(Error::model_not_found(facts.model))
    }

    fn rank(&self, facts: &RouteFacts<'_>, group: &[&Arc<Deployment>]) -> Vec<Arc<Deployment>> {
        let candidates: Vec<Candidate<'_>> = group
            .iter()
            .map(|d| Candidate {
                deployment: d,
                state: CandidateState::default(),
            })
            .collect();
        self.inner
            .policy
            .rank(facts, &candidates)
            .into_iter()
            .filter_map(|i| group.get(i).map(|d| Arc::clone(d)))
            .collect()
    }

    /// Plan one deployment. The outer `Result` is a backend failure; the inner one says why
    /// this deployment cannot serve the request (the next may).
    #[allow(clippy::too_many_arguments)]
    async fn plan_one(
        &self,
        caller: &Caller,
        request: &ChatRequest,
        level: &PowerLevelPolicy,
        deployment: Arc<Deployment>,
        prompt_bound: u64,
        prompt_estimate: u64,
        byok_keys: &mut Vec<(String, Option<Secret>)>,
    ) -> Result<Result<Attempt>> {
        let inner = &self.inner;
        let Some(provider) = inner.providers.get(&deployment.provider).cloned() else {
            return Ok(Err(Error::internal(format!(
                "Model `{}` names provider `{}`, which is not configured.",
                deployment.name, deployment.provider
            ))));
        };
        if caller.tier.require_private && deployment.privacy != Privacy::High {
            return Ok(Err(Error::permission_denied(format!(
                "Your tier may only use private (local) models; `{}` is not one.",
                deployment.name
            ))));
        }
        if let Some(window) = deployment.context_window
            && prompt_estimate >= u64::from(window)
        {
            return Ok(Err(Error::invalid_request(format!(
                "The prompt (about {prompt_estimate} tokens) does not fit the {window}-token \
                 context window of `{}`.",
                deployment.name
            ))
            .with_param("messages")
            .with_code("context_length_exceeded")));
        }

        let byok = self
            .byok_key(caller, &deployment.provider, byok_keys)
            .await?;
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

        let max_tokens = effective_max_tokens(
            request,
            level,
            &deployment,
            prompt_estimate,
            inner.default_max_tokens,
        );
        let choices = u64::from(request.n.unwrap_or(1));
        let max_charge = match &terms {
            Some(terms) => terms.charge_micros(prompt_bound, u64::from(max_tokens) * choices)?,
            None => 0,
        };
        Ok(Ok(Attempt {
            deployment,
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

/// Position of a deployment in a power level's preference list; unlisted ones come last.
fn preference_rank(deployment: &Deployment, preferred: &[String]) -> usize {
    preferred
        .iter()
        .position(|entry| match entry.split_once(':') {
            Some((provider, tag)) => {
                deployment.provider == provider && deployment.tags.iter().any(|t| t == tag)
            }
            None if entry == "local" => deployment.local,
            None => deployment.provider == *entry,
        })
        .unwrap_or(preferred.len())
}
