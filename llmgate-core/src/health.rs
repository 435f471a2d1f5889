//! The live state of each configured deployment: requests in flight, latency averages, a
//! circuit breaker (consecutive failures → cooldown → one probe → closed) and its tpm budget.
//!
//! Lock-light by design: one slot of atomics per deployment, indexed by its position in the
//! catalog. Routing reads a snapshot; a [`Ticket`] taken for each upstream call writes the
//! outcome back. Replicas share cooldowns through an optional [`SharedCooldowns`] store,
//! touched only when a deployment enters a cooldown and by a background pull at most once per
//! sync interval — never on the request's path.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::catalog::Deployment;
use crate::clock::{Clock, nanos};
use crate::error::{Error, Result};
use crate::limits::{Gcra, Quota};
use crate::routing::CandidateState;

/// Cooldowns shared between replicas (backed by Redis in `llmgate-credits`).
///
/// Deployments are named by a stable key (`name|provider|upstream_model`), the same on every
/// replica that loads the same configuration. Durations, not instants, cross the wire, so
/// replicas' clocks need not agree.
#[async_trait]
pub trait SharedCooldowns: Send + Sync + std::fmt::Debug + 'static {
    /// Tell the other replicas that `deployment` cools down for `cooldown` from now.
    async fn publish(&self, deployment: &str, cooldown: Duration) -> Result<()>;
    /// The cooldowns still running, with the time each has left.
    async fn active(&self) -> Result<Vec<(String, Duration)>>;
}

/// Compile-time check that the trait stays object-safe.
const _: Option<Arc<dyn SharedCooldowns>> = None;

/// When a failing deployment is taken out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CooldownRules {
    /// Consecutive retryable failures that start a cooldown; 0 turns this trigger off.
    pub after_failures: u32,
    /// How long a cooldown lasts; zero turns cooldowns off (Retry-After still applies).
    pub duration: Duration,
}

/// Weight of the newest observation in the latency averages.
const EWMA_WEIGHT: f64 = 0.3;

/// A moving average stored as `f64` bits; zero bits mean "no observation yet".
#[derive(Debug, Default)]
struct Ewma(AtomicU64);

impl Ewma {
    fn observe(&self, ms: f64) {
        // Racing updates may drop an observation; an average does not mind.
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                let next = if bits == 0 {
                    ms
                } else {
                    let old = f64::from_bits(bits);
                    old + (ms - old) * EWMA_WEIGHT
                };
                Some(next.max(f64::MIN_POSITIVE).to_bits())
            });
    }

    fn get(&self) -> Option<f64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            bits => Some(f64::from_bits(bits)),
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    in_flight: AtomicU32,
    latency: Ewma,
    ttft: Ewma,
    failures: AtomicU32,
    /// The end of the current cooldown on the clock; 0 when closed. Once it has passed the
    /// deployment is half-open: the next request probes it alone.
    cooldown_until: AtomicU64,
    probing: AtomicBool,
    /// Refused by its rpm quota until then (learnt from the rate limiter).
    limited_until: AtomicU64,
    tokens: Gcra,
}

/// Why a deployment cannot take a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable {
    /// Nanoseconds until it may be available; 0 when unknown (another request is probing it).
    pub wait: u64,
}

/// The state of every configured deployment.
#[derive(Debug)]
pub(crate) struct DeploymentStates {
    slots: Box<[Slot]>,
    keys: Box<[Arc<str>]>,
    rpm_keys: Box<[Arc<str>]>,
    rpm: Box<[Option<Quota>]>,
    tpm: Box<[Option<Quota>]>,
    by_key: HashMap<Arc<str>, usize>,
    rules: CooldownRules,
    clock: Clock,
    shared: Option<Arc<dyn SharedCooldowns>>,
    sync_every: u64,
    last_sync: AtomicU64,
}

/// The key that names a deployment across replicas.
pub(crate) fn deployment_key(deployment: &Deployment) -> String {
    format!(
        "{}|{}|{}",
        deployment.name, deployment.provider, deployment.upstream_model
    )
}

impl DeploymentStates {
    pub fn new(
        deployments: &[Arc<Deployment>],
        rules: CooldownRules,
        shared: Option<Arc<dyn SharedCooldowns>>,
        sync_every: Duration,
    ) -> Self {
        let keys: Box<[Arc<str>]> = deployments
            .iter()
            .map(|d| Arc::from(deployment_key(d)))
            .collect();
        let by_key = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        Self {
            slots: deployments.iter().map(|_| Slot::default()).collect(),
            rpm_keys: keys
                .iter()
                .map(|k| Arc::from(format!("rpm:deployment:{k}")))
                .collect(),
            keys,
            rpm: deployments
                .iter()
                .map(|d| d.rpm.map(Quota::per_minute))
                .collect(),
            tpm: deployments
                .iter()
                .map(|d| {
                    d.tpm
                        .map(|t| Quota::per_minute(u32::try_from(t).unwrap_or(u32::MAX)))
                })
                .collect(),
            by_key,
            rules,
            clock: Clock::new(),
            shared,
            sync_every: nanos(sync_every),
            last_sync: AtomicU64::new(0),
        }
    }

    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// What the router sees of one deployment; `prompt_tokens` decides the tpm check.
    pub fn snapshot(&self, slot: usize, now: u64, prompt_tokens: u64) -> CandidateState {
        let Some(s) = self.slots.get(slot) else {
            return CandidateState::default();
        };
        let until = s.cooldown_until.load(Ordering::Acquire);
        let cooling_down = until != 0 && (now < until || s.probing.load(Ordering::Acquire));
        CandidateState {
            in_flight: s.in_flight.load(Ordering::Relaxed),
            latency_ms: s.latency.get(),
            ttft_ms: s.ttft.get(),
            cooling_down,
            at_limit: self.limit_wait(slot, now, prompt_tokens) > 0,
        }
    }

    /// Nanoseconds until the deployment's rpm/tpm budget admits a request of this size.
    fn limit_wait(&self, slot: usize, now: u64, prompt_tokens: u64) -> u64 {
        let s = &self.slots[slot];
        let limited = s.limited_until.load(Ordering::Acquire).saturating_sub(now);
        let tokens = self.tpm[slot].map_or(0, |quota| {
            // A prompt larger than the whole budget would never fit; ask for what fits.
            let cost = prompt_tokens.min(u64::from(quota.limit));
            s.tokens.wait_for(now, quota, cost)
        });
        limited.max(tokens)
    }

    /// Nanoseconds until the deployment may take a request; 0 when it may now (or when
    /// another request is probing it and the outcome is unknown).
    pub fn wait_hint(&self, slot: Option<usize>, now: u64, prompt_tokens: u64) -> u64 {
        let Some(slot) = slot.filter(|&s| s < self.slots.len()) else {
            return 0;
        };
        let until = self.slots[slot].cooldown_until.load(Ordering::Acquire);
        until
            .saturating_sub(now)
            .max(self.limit_wait(slot, now, prompt_tokens))
    }

    /// Claim the deployment for one upstream call. In its half-open state only one request at
    /// a time gets through (the probe).
    pub fn admit(
        self: &Arc<Self>,
        slot: Option<usize>,
        prompt_tokens: u64,
    ) -> Result<Ticket, Unavailable> {
        let now = self.now();
        let Some(slot) = slot.filter(|&s| s < self.slots.len()) else {
            return Ok(Ticket::untracked(now));
        };
        let s = &self.slots[slot];
        let wait = self.limit_wait(slot, now, prompt_tokens);
        if wait > 0 {
            return Err(Unavailable { wait });
        }
        let until = s.cooldown_until.load(Ordering::Acquire);
        let mut probe = false;
        if until != 0 {
            if now < until {
                return Err(Unavailable { wait: until - now });
            }
            if s.probing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                return Err(Unavailable { wait: 0 });
            }
            probe = true;
        }
        s.in_flight.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            states: Some(self.clone()),
            slot,
            probe,
            started: now,
        })
    }

    /// The rate limiter key and quota of a deployment's rpm, when it has one.
    pub fn rpm(&self, slot: Option<usize>) -> Option<(&str, Quota)> {
        let slot = slot?;
        Some((self.rpm_keys.get(slot)?, (*self.rpm.get(slot)?)?))
    }

    /// The rate limiter refused the deployment: leave it out until `wait` has passed.
    pub fn mark_limited(&self, slot: Option<usize>, wait: Duration) {
        if let Some(s) = slot.and_then(|slot| self.slots.get(slot)) {
            let until = self.now().saturating_add(nanos(wait).max(1));
            s.limited_until.fetch_max(until, Ordering::AcqRel);
        }
    }

    /// Start a background pull of the shared cooldowns when one is due.
    pub fn sync_if_due(self: &Arc<Self>) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = self.now();
        let last = self.last_sync.load(Ordering::Acquire);
        if last != 0 && now.saturating_sub(last) < self.sync_every {
            return;
        }
        if self
            .last_sync
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let shared = shared.clone();
        let states = self.clone();
        runtime.spawn(async move {
            match shared.active().await {
                Ok(active) => states.apply_shared(&active),
                Err(error) => {
                    tracing::warn!(%error, "reading shared cooldowns failed; using this replica's view");
                }
            }
        });
    }

    /// Adopt cooldowns other replicas published.
    pub fn apply_shared(&self, active: &[(String, Duration)]) {
        let now = self.now();
        for (key, left) in active {
            if let Some(&slot) = self.by_key.get(key.as_str()) {
                let until = now.saturating_add(nanos(*left).max(1));
                self.slots[slot]
                    .cooldown_until
                    .fetch_max(until, Ordering::AcqRel);
            }
        }
    }

    fn publish(&self, slot: usize, cooldown: Duration) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let key = self.keys[slot].clone();
        runtime.spawn(async move {
            if let Err(error) = shared.publish(&key, cooldown).await {
                tracing::warn!(%error, deployment = %key, "sharing a cooldown failed; other replicas will find out themselves");
            }
        });
    }
}

/// One upstream call's claim on a deployment. Dropping it ends the call (in flight − 1, and a
/// probe that never reported frees the half-open slot for the next request).
#[derive(Debug)]
pub(crate) struct Ticket {
    states: Option<Arc<DeploymentStates>>,
    slot: usize,
    probe: bool,
    started: u64,
}

impl Ticket {
    /// A ticket for a deployment the gateway does not track (an ad-hoc `provider/model`).
    fn untracked(now: u64) -> Self {
        Self {
            states: None,
            slot: 0,
            probe: false,
            started: now,
        }
    }

    fn slot(&self) -> Option<(&DeploymentStates, &Slot)> {
        let states = self.states.as_deref()?;
        Some((states, states.slots.get(self.slot)?))
    }

    fn elapsed_ms(&self, states: &DeploymentStates) -> f64 {
        states.now().saturating_sub(self.started) as f64 / 1e6
    }

    /// A whole answer arrived: record its latency and close the circuit.
    pub fn succeeded(&mut self) {
        if let Some((states, s)) = self.slot() {
            s.latency.observe(self.elapsed_ms(states));
            self.healthy();
        }
    }

    /// A stream's first chunk arrived: record time to first token and close the circuit.
    pub fn first_token(&mut self) {
        if let Some((states, s)) = self.slot() {
            s.ttft.observe(self.elapsed_ms(states));
            self.healthy();
        }
    }

    fn healthy(&mut self) {
        let probe = std::mem::take(&mut self.probe);
        let Some((states, s)) = self.slot() else {
            return;
        };
        s.failures.store(0, Ordering::Release);
        let until = s.cooldown_until.load(Ordering::Acquire);
        // A probe closes the circuit; so does any success once the cooldown has run out. A
        // success that started before a newer cooldown does not cancel it.
        if probe || (until != 0 && states.now() >= until) {
            let _ =
                s.cooldown_until
                    .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire);
        }
        if probe {
            s.probing.store(false, Ordering::Release);
        }
    }

    /// Tokens the call consumed, for the deployment's tpm budget.
    pub fn spent_tokens(&self, tokens: u64) {
        if let Some((states, s)) = self.slot()
            && let Some(quota) = states.tpm[self.slot]
        {
            s.tokens.spend(states.now(), quota, tokens);
        }
    }

    /// The call failed. Failures that are the request's fault (not retryable) say nothing
    /// about the deployment. Returns the cooldown it entered, if any.
    pub fn failed(&mut self, error: &Error) -> Option<Duration> {
        let probe = std::mem::take(&mut self.probe);
        let (states, s) = self.slot()?;
        let cooldown = if error.is_retryable() {
            let failures = s.failures.fetch_add(1, Ordering::AcqRel).saturating_add(1);
            let rules = states.rules;
            let tripped = probe
                || error.upstream_status() == Some(429)
                || (rules.after_failures > 0 && failures >= rules.after_failures);
            // The upstream's Retry-After says exactly when to come back.
            error
                .retry_after()
                .or(tripped.then_some(rules.duration))
                .filter(|d| !d.is_zero())
        } else {
            None
        };
        if let Some(cooldown) = cooldown {
            let until = states.now().saturating_add(nanos(cooldown));
            s.cooldown_until.fetch_max(until, Ordering::AcqRel);
            states.publish(self.slot, cooldown);
        }
        if probe {
            s.probing.store(false, Ordering::Release);
        }
        cooldown
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let probe = self.probe;
        if let Some((_, s)) = self.slot() {
            s.in_flight.fetch_sub(1, Ordering::Relaxed);
            if probe {
                s.probing.store(false, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn states(after_failures: u32, cooldown: Duration) -> Arc<DeploymentStates> {
        let deployments = [Arc::new(Deployment::new("m", "p", "u"))];
        Arc::new(DeploymentStates::new(
            &deployments,
            CooldownRules {
                after_failures,
                duration: cooldown,
            },
            None,
            Duration::from_secs(1),
        ))
    }

    fn upstream(status: u16) -> Error {
        Error::from_upstream_status("p", status, "x")
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_the_circuit_and_a_probe_closes_it() {
        let states = states(2, Duration::from_secs(10));
        let mut ticket = states.admit(Some(0), 0).unwrap();
        assert_eq!(states.snapshot(0, states.now(), 0).in_flight, 1);
        assert_eq!(ticket.failed(&upstream(500)), None);
        drop(ticket);
        let mut ticket = states.admit(Some(0), 0).unwrap();
        assert_eq!(ticket.failed(&upstream(502)), Some(Duration::from_secs(10)));
        drop(ticket);
        assert!(states.snapshot(0, states.now(), 0).cooling_down);
        assert_eq!(states.admit(Some(0), 0).unwrap_err().wait, 10_000_000_000);

        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!states.snapshot(0, states.now(), 0).cooling_down);
        let mut probe = states.admit(Some(0), 0).unwrap();
        // While the probe is out, nobody else gets in.
        assert!(states.snapshot(0, states.now(), 0).cooling_down);
        assert_eq!(states.admit(Some(0), 0).unwrap_err().wait, 0);
        probe.succeeded();
        drop(probe);
        let state = states.snapshot(0, states.now(), 0);
        assert!(!state.cooling_down);
        assert_eq!(state.in_flight, 0);
        assert!(state.latency_ms.is_some());
        assert!(states.admit(Some(0), 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_a_dropped_probe_frees_the_slot() {
        let states = states(1, Duration::from_secs(5));
        states.admit(Some(0), 0).unwrap().failed(&upstream(503));
        tokio::time::advance(Duration::from_secs(5)).await;
        let probe = states.admit(Some(0), 0).unwrap();
        drop(probe);
        let mut probe = states.admit(Some(0), 0).unwrap();
        assert_eq!(probe.failed(&upstream(503)), Some(Duration::from_secs(5)));
        drop(probe);
        assert!(states.admit(Some(0), 0).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_cools_down_at_once_for_its_retry_after() {
        let states = states(3, Duration::from_secs(30));
        let error = upstream(429).with_retry_after(Duration::from_secs(2));
        let cooldown = states.admit(Some(0), 0).unwrap().failed(&error);
        assert_eq!(cooldown, Some(Duration::from_secs(2)));
        let cooldown = {
            tokio::time::advance(Duration::from_secs(2)).await;
            states.admit(Some(0), 0).unwrap().failed(&upstream(429))
        };
        assert_eq!(cooldown, Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn request_errors_do_not_count_against_the_deployment() {
        let states = states(1, Duration::from_secs(5));
        let cooldown = states.admit(Some(0), 0).unwrap().failed(&upstream(400));
        assert_eq!(cooldown, None);
        assert!(states.admit(Some(0), 0).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn tpm_budget_marks_the_deployment_at_limit() {
        let mut deployment = Deployment::new("m", "p", "u");
        deployment.tpm = Some(1000);
        let states = Arc::new(DeploymentStates::new(
            &[Arc::new(deployment)],
            CooldownRules {
                after_failures: 3,
                duration: Duration::from_secs(30),
            },
            None,
            Duration::from_secs(1),
        ));
        let ticket = states.admit(Some(0), 100).unwrap();
        ticket.spent_tokens(1000);
        drop(ticket);
        assert!(states.snapshot(0, states.now(), 100).at_limit);
        assert!(states.admit(Some(0), 100).is_err());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(!states.snapshot(0, states.now(), 100).at_limit);
    }

    #[test]
    fn shared_cooldowns_apply_by_key() {
        let states = states(3, Duration::from_secs(30));
        states.apply_shared(&[
            ("m|p|u".to_owned(), Duration::from_secs(5)),
            ("other|p|u".to_owned(), Duration::from_secs(5)),
        ]);
        assert!(states.snapshot(0, states.now(), 0).cooling_down);
    }
}
