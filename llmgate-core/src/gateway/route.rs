//! Routing one request: the candidate chains, worked out once when the gateway is built, and a
//! cursor that filters and ranks them one group at a time, so that a request never ranks more
//! groups than it needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::catalog::{Catalog, Deployment, Privacy};
use crate::error::{Error, ErrorKind, Result};
use crate::health::DeploymentStates;
use crate::power::{PowerLevel, PowerLevelPolicy};
use crate::provider::Provider;
use crate::routing::{Candidate, RouteFacts, RoutingPolicy};

/// Resolves a model name the catalog does not list (e.g. `groq/llama3-70b-8192` or a
/// well-known bare name) to an ad-hoc deployment.
pub type ModelResolver = dyn Fn(&str) -> Option<Deployment> + Send + Sync;

/// What routing reads of the gateway: its tables and the deployments' live state.
#[derive(Clone, Copy)]
pub(super) struct RouteSources<'g> {
    pub routes: &'g RouteTable,
    pub catalog: &'g Catalog,
    pub resolver: Option<&'g ModelResolver>,
    pub providers: &'g HashMap<String, Arc<dyn Provider>>,
    pub states: &'g DeploymentStates,
    pub policy: &'g dyn RoutingPolicy,
}

/// The precomputed part of routing.
#[derive(Debug, Default)]
pub(super) struct RouteTable {
    /// Catalog positions of each model's deployments, by model id.
    groups: Vec<Box<[usize]>>,
    model_ids: HashMap<Box<str>, usize>,
    /// Per model id: its own group, then its fallbacks' groups, then the default fallbacks'.
    chains: Vec<Box<[usize]>>,
    /// The default fallbacks alone, for models the resolver supplies.
    default_chain: Box<[usize]>,
    /// Per power level: the deployments `auto` may pick, grouped by the level's provider
    /// preference, best first.
    auto: HashMap<PowerLevel, Box<[Box<[usize]>]>>,
}

impl RouteTable {
    pub fn build(
        catalog: &Catalog,
        providers: &HashMap<String, Arc<dyn Provider>>,
        power_levels: &HashMap<PowerLevel, PowerLevelPolicy>,
        default_fallbacks: &[String],
    ) -> Self {
        let deployments = catalog.deployments();
        let mut model_ids: HashMap<Box<str>, usize> = HashMap::new();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for (position, deployment) in deployments.iter().enumerate() {
            let id = *model_ids
                .entry(Box::from(deployment.name.as_str()))
                .or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
            groups[id].push(position);
        }

        let known = |name: &str, whose: &str| {
            let id = model_ids.get(name).copied();
            if id.is_none() {
                tracing::warn!(
                    fallback = name,
                    of = whose,
                    "ignoring a fallback that is not a configured model"
                );
            }
            id
        };
        let mut default_chain: Vec<usize> = Vec::new();
        for name in default_fallbacks {
            if let Some(id) = known(name, "default_fallbacks")
                && !default_chain.contains(&id)
            {
                default_chain.push(id);
            }
        }
        let chains = groups
            .iter()
            .enumerate()
            .map(|(id, group)| {
                let mut chain = vec![id];
                let fallbacks = group.iter().flat_map(|&p| &deployments[p].fallbacks);
                for name in fallbacks {
                    if let Some(fallback) = known(name, &deployments[group[0]].name)
                        && !chain.contains(&fallback)
                    {
                        chain.push(fallback);
                    }
                }
                for &fallback in &default_chain {
                    if !chain.contains(&fallback) {
                        chain.push(fallback);
                    }
                }
                chain.into_boxed_slice()
            })
            .collect();

        let auto = power_levels
            .iter()
            .map(|(&level, policy)| {
                let mut by_preference: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for (position, deployment) in deployments.iter().enumerate() {
                    let good_enough = deployment.quality.unwrap_or(0.0) >= policy.quality_threshold;
                    if good_enough && providers.contains_key(&deployment.provider) {
                        by_preference
                            .entry(preference_rank(deployment, &policy.preferred_providers))
                            .or_default()
                            .push(position);
                    }
                }
                let groups = by_preference
                    .into_values()
                    .map(Vec::into_boxed_slice)
                    .collect();
                (level, groups)
            })
            .collect();

        Self {
            groups: groups.into_iter().map(Vec::into_boxed_slice).collect(),
            model_ids,
            chains,
            default_chain: default_chain.into_boxed_slice(),
            auto,
        }
    }
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

fn privacy_rank(privacy: Privacy) -> u8 {
    match privacy {
        Privacy::Low => 0,
        Privacy::Medium => 1,
        Privacy::High => 2,
    }
}

/// A deployment picked for a request, with its state slot (`None` for ad-hoc deployments).
#[derive(Debug, Clone)]
pub(super) struct Routed {
    pub deployment: Arc<Deployment>,
    pub slot: Option<usize>,
}

/// A pick from [`Route::next_group`]: a catalog position, or `None` for the ad-hoc deployment.
/// Turned into a [`Routed`] only when used, so that ranking a large group clones nothing.
pub(super) type Pick = Option<usize>;

/// What the cursor left out, to explain an empty result.
#[derive(Debug, Default)]
pub(super) struct Excluded {
    privacy: usize,
    /// The largest context window that was still too small.
    context: Option<u32>,
    /// The soonest one of the unavailable candidates may be back, in nanoseconds.
    unavailable: Option<u64>,
}

enum Source<'t> {
    Chain(&'t [usize]),
    Auto(&'t [Box<[usize]>]),
    AdHoc(Arc<Deployment>, &'t [usize]),
}

/// Walks a request's candidates group by group: filtered by privacy and context window,
/// ranked by the policy, unavailable ones left out.
pub(super) struct Route<'g> {
    inner: RouteSources<'g>,
    facts: RouteFacts<'g>,
    privacy: Privacy,
    now: u64,
    source: Source<'g>,
    next: usize,
    excluded: Excluded,
    candidates: Vec<Candidate<'g>>,
    slots: Vec<usize>,
    taken: Vec<bool>,
}

impl<'g> Route<'g> {
    /// Start routing; fails when the model is unknown (or `auto` has nothing to choose from).
    pub fn start(inner: RouteSources<'g>, facts: RouteFacts<'g>, privacy: Privacy) -> Result<Self> {
        let table = inner.routes;
        let source = if facts.model == "auto" {
            match table.auto.get(&facts.power_level) {
                Some(groups) if !groups.is_empty() => Source::Auto(groups),
                _ => {
                    return Err(Error::invalid_request(format!(
                        "No configured model meets the {} power level's quality threshold of {}.",
                        facts.power_level, facts.level.quality_threshold
                    ))
                    .with_param("model")
                    .with_code("no_model_for_power_level"));
                }
            }
        } else if let Some(&id) = table.model_ids.get(facts.model) {
            Source::Chain(&table.chains[id])
        } else if let Some(resolver) = inner.resolver
            && let Some(deployment) = resolver(facts.model)
            && inner.providers.contains_key(&deployment.provider)
        {
            Source::AdHoc(Arc::new(deployment), &table.default_chain)
        } else {
            return Err(Error::model_not_found(facts.model));
        };
        Ok(Self {
            inner,
            facts,
            privacy,
            now: inner.states.now(),
            source,
            next: 0,
            excluded: Excluded::default(),
            candidates: Vec::new(),
            slots: Vec::new(),
            taken: Vec::new(),
        })
    }

    /// Rank the next group into `out` (cleared first). Returns false when no group is left;
    /// a group may come out empty when all of it was filtered away.
    pub fn next_group(&mut self, out: &mut Vec<Pick>) -> bool {
        out.clear();
        let table: &'g RouteTable = self.inner.routes;
        let index = self.next;
        self.next += 1;
        let group: &'g [usize] = match &self.source {
            Source::Chain(chain) => {
                let chain: &'g [usize] = chain;
                match chain.get(index) {
                    Some(&id) => &table.groups[id],
                    None => return false,
                }
            }
            Source::Auto(groups) => {
                let groups: &'g [Box<[usize]>] = groups;
                match groups.get(index) {
                    Some(group) => group,
                    None => return false,
                }
            }
            Source::AdHoc(deployment, then) => {
                let then: &'g [usize] = then;
                if index == 0 {
                    let deployment = deployment.clone();
                    if self.fits(&deployment) {
                        out.push(None);
                    }
                    return true;
                }
                match then.get(index - 1) {
                    Some(&id) => &table.groups[id],
                    None => return false,
                }
            }
        };
        self.rank(group, out);
        true
    }

    /// Whether a deployment may serve this request at all (privacy, context window); notes
    /// why not.
    fn fits(&mut self, deployment: &Deployment) -> bool {
        if privacy_rank(deployment.privacy) < privacy_rank(self.privacy) {
            self.excluded.privacy += 1;
            return false;
        }
        if let Some(window) = deployment.context_window
            && self.facts.prompt_tokens >= u64::from(window)
        {
            self.excluded.context = self.excluded.context.max(Some(window));
            return false;
        }
        true
    }

    /// The deployment behind a pick.
    pub fn routed(&self, pick: Pick) -> Option<Routed> {
        match (pick, &self.source) {
            (Some(position), _) => Some(Routed {
                deployment: self.inner.catalog.deployments().get(position)?.clone(),
                slot: Some(position),
            }),
            (None, Source::AdHoc(deployment, _)) => Some(Routed {
                deployment: deployment.clone(),
                slot: None,
            }),
            (None, _) => None,
        }
    }

    fn rank(&mut self, group: &[usize], out: &mut Vec<Pick>) {
        let inner = self.inner;
        let deployments = inner.catalog.deployments();
        self.candidates.clear();
        self.slots.clear();
        for &position in group {
            let deployment: &'g Deployment = &deployments[position];
            if !self.fits(deployment) {
                continue;
            }
            let state = inner
                .states
                .snapshot(position, self.now, self.facts.prompt_tokens);
            self.candidates.push(Candidate { deployment, state });
            self.slots.push(position);
        }
        if self.candidates.is_empty() {
            return;
        }
        let order = inner.policy.rank(&self.facts, &self.candidates);
        self.taken.clear();
        self.taken.resize(self.candidates.len(), false);
        for i in order {
            let (Some(candidate), Some(&position)) = (self.candidates.get(i), self.slots.get(i))
            else {
                continue;
            };
            // A policy that names a candidate twice does not get it tried twice.
            if std::mem::replace(&mut self.taken[i], true) {
                continue;
            }
            if !candidate.state.is_available() {
                let wait =
                    inner
                        .states
                        .wait_hint(Some(position), self.now, self.facts.prompt_tokens);
                self.excluded.unavailable =
                    Some(self.excluded.unavailable.map_or(wait, |w| w.min(wait)));
                continue;
            }
            out.push(Some(position));
        }
    }

    /// Why nothing could be routed.
    pub fn nothing_fits(&self) -> Error {
        let model = self.facts.model;
        let excluded = &self.excluded;
        if let Some(wait) = excluded.unavailable {
            let mut error = Error::new(
                ErrorKind::UpstreamUnavailable,
                format!(
                    "Every deployment that could serve `{model}` is cooling down after \
                     failures or at its rate limit; try again shortly."
                ),
            )
            .with_code("no_deployment_available");
            if wait > 0 {
                error = error.with_retry_after(std::time::Duration::from_nanos(wait));
            }
            return error;
        }
        if let Some(window) = excluded.context {
            return Error::invalid_request(format!(
                "The prompt (about {} tokens) does not fit the context window of any model \
                 that could serve `{model}` (the largest is {window} tokens).",
                self.facts.prompt_tokens
            ))
            .with_param("messages")
            .with_code("context_length_exceeded");
        }
        if excluded.privacy > 0 {
            return Error::permission_denied(format!(
                "This request may only use private (local, privacy: high) models, and none \
                 can serve `{model}`."
            ))
            .with_code("private_model_required");
        }
        Error::model_not_found(model)
    }
}
