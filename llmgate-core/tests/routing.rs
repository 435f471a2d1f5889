//! Routing end to end against scripted providers: candidate chains, retries and backoff (on
//! tokio's paused clock, so waits are checked without waiting), cooldowns, power levels,
//! privacy, context windows, strategies and rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::*;
use llmgate_core::{
    caller::Tier,
    catalog::{Deployment, Privacy},
    chat::{ChatRequest, Message},
    gateway::Completion,
    limits::{Admission, Quota, RateLimiter},
    power::{PowerLevel, PowerLevelPolicy},
    pricing::ModelPrice,
    routing::{Candidate, CandidateState, RouteFacts, SharedCooldowns, Strategy},
};
use support::*;
use tokio::time::Instant;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn providers_of(deployments: &[Arc<Deployment>]) -> Vec<String> {
    deployments.iter().map(|d| d.provider.clone()).collect()
}

fn names_of(deployments: &[Arc<Deployment>]) -> Vec<String> {
    deployments.iter().map(|d| d.name.clone()).collect()
}

fn call_gaps(calls: &Calls) -> Vec<Duration> {
    let calls = calls.lock().unwrap();
    calls.windows(2).map(|w| w[1].at - w[0].at).collect()
}

// ---------------------------------------------------------------------------------------------
// Candidate chains

#[tokio::test]
async fn candidates_are_own_deployments_then_fallbacks_then_default_fallbacks() {
    let calls = Calls::default();
    let mut m_a = priced("m", "a");
    m_a.fallbacks = vec!["f1".into(), "not-configured".into()];
    let mut m_b = priced("m", "b");
    m_b.fallbacks = vec!["f1".into(), "m".into()];
    let mut f1 = priced("f1", "c");
    // Fallbacks of a fallback are not followed.
    f1.fallbacks = vec!["f2".into()];
    let mut builder = Gateway::builder();
    for name in ["a", "b", "c", "d", "e"] {
        builder = builder.provider(Scripted::always(name, Step::Fail(500), &calls));
    }
    let gateway = builder
        .model(m_a)
        .model(m_b)
        .model(f1)
        .model(priced("f2", "e"))
        .model(priced("default", "d"))
        .default_fallbacks(vec!["default".into(), "m".into(), "unknown".into()])
        .build();

    let preview = gateway
        .route_preview(&Caller::admin(), &request("m"))
        .unwrap();
    assert_eq!(names_of(&preview), ["m", "m", "f1", "default"]);
    assert_eq!(providers_of(&preview), ["a", "b", "c", "d"]);

    let error = gateway
        .chat(&Caller::admin(), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 502);
    assert_eq!(order(&calls), ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn default_fallbacks_also_back_up_resolved_provider_model_names() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("groq", Step::Fail(503), &calls))
        .provider(Scripted::always("backup", ok(), &calls))
        .model(priced("safe", "backup"))
        .default_fallbacks(vec!["safe".into()])
        .model_resolver(|name| {
            let (provider, model) = name.split_once('/')?;
            Some(Deployment::new(name, provider, model).with_price(ModelPrice::default()))
        })
        .build();
    let done = gateway
        .chat(&Caller::admin(), request("groq/llama3-70b"))
        .await
        .unwrap();
    assert_eq!(done.route.model, "safe");
    assert_eq!(done.route.attempts, 2);
    assert_eq!(order(&calls), ["groq", "backup"]);
    let upstream: Vec<String> = calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.model.clone())
        .collect();
    assert_eq!(upstream, ["llama3-70b", "safe@backup"]);
}

// ---------------------------------------------------------------------------------------------
// Retries and backoff

#[tokio::test(start_paused = true)]
async fn a_single_deployment_is_retried_num_retries_times_with_backoff_in_bounds() {
    let calls = Calls::default();
    let provider = Scripted::new(
        "a",
        vec![Step::Fail(503), Step::Fail(502)],
        Some(ok()),
        &calls,
    );
    let gateway = Gateway::builder()
        .provider(provider)
        .model(priced("m", "a"))
        .num_retries(2)
        .backoff(ms(100), ms(1000))
        .build();
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.attempts, 3);
    let gaps = call_gaps(&calls);
    assert_eq!(gaps.len(), 2);
    assert!(gaps[0] >= ms(50) && gaps[0] <= ms(100), "{gaps:?}");
    assert!(gaps[1] >= ms(100) && gaps[1] <= ms(200), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn failover_is_immediate_and_only_a_new_round_waits() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::new(
            "a",
            vec![Step::Fail(500)],
            Some(ok()),
            &calls,
        ))
        .provider(Scripted::new(
            "b",
            vec![Step::Fail(500)],
            Some(ok()),
            &calls,
        ))
        .model(priced("m", "a"))
        .model(priced("m", "b"))
        .num_retries(1)
        .backoff(ms(100), ms(1000))
        .build();
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.attempts, 3);
    assert_eq!(order(&calls), ["a", "b", "a"]);
    let gaps = call_gaps(&calls);
    assert_eq!(gaps[0], Duration::ZERO, "failover does not wait");
    assert!(gaps[1] >= ms(50) && gaps[1] <= ms(100), "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn total_calls_never_exceed_max_attempts() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", Step::Fail(500), &calls))
        .provider(Scripted::always("b", Step::Fail(500), &calls))
        .model(priced("m", "a"))
        .model(priced("m", "b"))
        .num_retries(10)
        .max_attempts(5)
        .cooldown_after_failures(0)
        .backoff(ms(10), ms(20))
        .build();
    let error = gateway
        .chat(&Caller::admin(), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 502);
    assert_eq!(order(&calls), ["a", "b", "a", "b", "a"]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_for_before_the_retry() {
    let calls = Calls::default();
    let provider = Scripted::new(
        "a",
        vec![Step::FailRetryAfter(429, Duration::from_secs(2))],
        Some(ok()),
        &calls,
    );
    let gateway = Gateway::builder()
        .provider(provider)
        .model(priced("m", "a"))
        .num_retries(1)
        .backoff(ms(100), Duration::from_secs(5))
        .build();
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.attempts, 2);
    let gap = call_gaps(&calls)[0];
    assert!(
        gap >= Duration::from_secs(2) && gap <= Duration::from_millis(2100),
        "{gap:?}"
    );
    // The probe after the Retry-After succeeded: the deployment is in rotation again.
    let (_, state) = gateway.deployment_states().remove(0);
    assert!(!state.cooling_down);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_beyond_the_wait_bound_is_passed_on_as_429_without_waiting() {
    let calls = Calls::default();
    let provider = Scripted::new(
        "a",
        vec![Step::FailRetryAfter(429, Duration::from_secs(60))],
        Some(ok()),
        &calls,
    );
    let gateway = Gateway::builder()
        .provider(provider)
        .model(priced("m", "a"))
        .num_retries(3)
        .backoff(ms(100), Duration::from_secs(5))
        .build();
    let started = Instant::now();
    let error = gateway
        .chat(&Caller::admin(), request("m"))
        .await
        .unwrap_err();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(error.status(), 429);
    assert_eq!(error.code(), Some("upstream_rate_limited"));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    assert_eq!(order(&calls), ["a"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_error_is_not_retried() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", Step::Fail(400), &calls))
        .provider(Scripted::always("b", ok(), &calls))
        .model(priced("m", "a"))
        .model(priced("m", "b"))
        .num_retries(3)
        .build();
    let error = gateway
        .chat(&Caller::admin(), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(order(&calls), ["a"]);
}

// ---------------------------------------------------------------------------------------------
// Cooldowns

#[tokio::test(start_paused = true)]
async fn cooldown_is_entered_after_consecutive_failures_and_left_through_one_probe() {
    let calls = Calls::default();
    let mut primary = priced("m", "a");
    primary.fallbacks = vec!["backup".into()];
    let slow = Step::Slow {
        delay: Duration::from_secs(1),
    };
    let gateway = Gateway::builder()
        .provider(Scripted::new(
            "a",
            vec![Step::Fail(500), Step::Fail(500), slow.clone(), slow],
            Some(ok()),
            &calls,
        ))
        .provider(Scripted::always("b", ok(), &calls))
        .model(primary)
        .model(priced("backup", "b"))
        .cooldown_after_failures(2)
        .cooldown(Duration::from_secs(10))
        .build();
    let caller = Caller::admin();
    let served_by = |done: Completion| done.route.provider;
    let preview =
        |gateway: &Gateway| providers_of(&gateway.route_preview(&caller, &request("m")).unwrap());
    let spawn_request = |gateway: &Gateway| {
        let gateway = gateway.clone();
        tokio::spawn(async move { gateway.chat(&Caller::admin(), request("m")).await })
    };
    let calls_to_a = || order(&calls).iter().filter(|p| **p == "a").count();

    assert_eq!(
        served_by(gateway.chat(&caller, request("m")).await.unwrap()),
        "b"
    );
    assert_eq!(
        served_by(gateway.chat(&caller, request("m")).await.unwrap()),
        "b"
    );
    assert_eq!(order(&calls), ["a", "b", "a", "b"]);
    let (_, state) = gateway.deployment_states().remove(0);
    assert!(state.cooling_down, "two failures in a row start a cooldown");

    // While it cools down, `a` is not called at all.
    assert_eq!(preview(&gateway), ["b"]);
    assert_eq!(
        served_by(gateway.chat(&caller, request("m")).await.unwrap()),
        "b"
    );
    assert_eq!(calls_to_a(), 2);

    tokio::time::advance(Duration::from_secs(10)).await;
    let (_, state) = gateway.deployment_states().remove(0);
    assert!(!state.cooling_down, "half-open once the cooldown ran out");
    assert_eq!(preview(&gateway), ["a", "b"]);

    // One request probes `a`; while it is out, the others still go to `b`.
    let probe = spawn_request(&gateway);
    while calls_to_a() < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(preview(&gateway), ["b"]);
    assert_eq!(
        served_by(gateway.chat(&caller, request("m")).await.unwrap()),
        "b"
    );
    assert_eq!(served_by(probe.await.unwrap().unwrap()), "a");

    // The probe's success closed the circuit: requests to `a` run side by side again.
    let busy = spawn_request(&gateway);
    while calls_to_a() < 4 {
        tokio::task::yield_now().await;
    }
    assert_eq!(preview(&gateway), ["a", "b"]);
    assert_eq!(
        served_by(gateway.chat(&caller, request("m")).await.unwrap()),
        "a"
    );
    assert_eq!(served_by(busy.await.unwrap().unwrap()), "a");
}

#[tokio::test(start_paused = true)]
async fn a_model_whose_deployments_all_cool_down_is_a_503_with_retry_after() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", Step::Fail(429), &calls))
        .model(priced("m", "a"))
        .cooldown(Duration::from_secs(30))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let caller = Caller::user("u", tier());
    let first = gateway.chat(&caller, request("m")).await.unwrap_err();
    assert_eq!(first.status(), 503);
    tokio::time::advance(Duration::from_secs(5)).await;
    let error = gateway.chat(&caller, request("m")).await.unwrap_err();
    assert_eq!(error.status(), 503);
    assert_eq!(error.code(), Some("no_deployment_available"));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(25)));
    assert_eq!(order(&calls), ["a"], "a 429 cools down at once");
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10_000_000);
}

/// Cooldowns kept in one shared map, as the Redis store does across replicas.
#[derive(Debug, Default)]
struct SharedMap(Mutex<Vec<(String, Instant)>>);

#[async_trait]
impl SharedCooldowns for SharedMap {
    async fn publish(&self, deployment: &str, cooldown: Duration) -> Result<()> {
        self.0
            .lock()
            .unwrap()
            .push((deployment.to_owned(), Instant::now() + cooldown));
        Ok(())
    }

    async fn active(&self) -> Result<Vec<(String, Duration)>> {
        let now = Instant::now();
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(key, until)| (key.clone(), *until - now))
            .collect())
    }
}

#[tokio::test(start_paused = true)]
async fn a_cooldown_entered_on_one_gateway_reaches_another_sharing_the_store() {
    let calls = Calls::default();
    let shared = Arc::new(SharedMap::default());
    let build = || {
        let mut primary = priced("m", "a");
        primary.fallbacks = vec!["backup".into()];
        Gateway::builder()
            .provider(Scripted::new(
                "a",
                vec![Step::Fail(429)],
                Some(ok()),
                &calls,
            ))
            .provider(Scripted::always("b", ok(), &calls))
            .model(primary)
            .model(priced("backup", "b"))
            .cooldown(Duration::from_secs(30))
            .shared_cooldowns(shared.clone(), Duration::ZERO)
            .build()
    };
    let (one, two) = (build(), build());
    let done = one.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.provider, "b");
    // The publish runs in the background.
    for _ in 0..100 {
        if !shared.0.lock().unwrap().is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(shared.0.lock().unwrap()[0].0, "m|a|m@a");

    // The second gateway pulls in the background too: wait until it has.
    for _ in 0..100 {
        let _ = two.route_preview(&Caller::admin(), &request("m"));
        two.chat(&Caller::admin(), request("backup")).await.unwrap();
        if two.deployment_states()[0].1.cooling_down {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(two.deployment_states()[0].1.cooling_down);
    let before = order(&calls).iter().filter(|p| **p == "a").count();
    let done = two.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.provider, "b");
    assert_eq!(order(&calls).iter().filter(|p| **p == "a").count(), before);
}

// ---------------------------------------------------------------------------------------------
// Holds

#[tokio::test(start_paused = true)]
async fn the_hold_is_settled_exactly_once_however_many_calls_were_made() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::new(
            "a",
            vec![Step::Fail(500), Step::Fail(503)],
            Some(ok()),
            &calls,
        ))
        .provider(Scripted::new(
            "b",
            vec![Step::Fail(502)],
            Some(ok()),
            &calls,
        ))
        .model(priced("m", "a"))
        .model(priced("m", "b"))
        .num_retries(2)
        .cooldown_after_failures(0)
        .backoff(ms(10), ms(100))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let caller = Caller::user("u", tier());

    let done = gateway.chat(&caller, request("m")).await.unwrap();
    assert_eq!(done.route.attempts, 4);
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));
    let balance = gateway.credits().balance("u").await.unwrap();
    assert_eq!(balance, 10_000_000 - done.cost_micros);

    let mut stream = gateway.chat_stream(&caller, request("m")).await.unwrap();
    assert_eq!(stream.route().attempts, 1);
    while stream.next().await.is_some() {}
    assert_eq!(ledger_counts(&gateway, "u").await, (2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_request_that_fails_every_call_releases_its_hold_once() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", Step::Fail(500), &calls))
        .model(priced("m", "a"))
        .num_retries(3)
        .cooldown_after_failures(0)
        .backoff(ms(10), ms(100))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let caller = Caller::user("u", tier());
    let error = gateway.chat(&caller, request("m")).await.unwrap_err();
    assert_eq!(error.status(), 502);
    assert_eq!(order(&calls).len(), 4);
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 0, 1));
    let error = gateway
        .chat_stream(&caller, request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 502);
    assert_eq!(ledger_counts(&gateway, "u").await, (2, 0, 2));
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10_000_000);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_during_a_backoff_gets_its_hold_back() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::new(
            "a",
            vec![Step::Fail(503)],
            Some(ok()),
            &calls,
        ))
        .model(priced("m", "a"))
        .num_retries(1)
        .backoff(Duration::from_secs(8), Duration::from_secs(8))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let caller = Caller::user("u", tier());
    let gone =
        tokio::time::timeout(Duration::from_secs(1), gateway.chat(&caller, request("m"))).await;
    assert!(gone.is_err(), "the request was still backing off");
    for _ in 0..100 {
        if ledger_counts(&gateway, "u").await.2 == 1 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 0, 1));
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10_000_000);
    assert_eq!(order(&calls), ["a"]);
}

// ---------------------------------------------------------------------------------------------
// Power levels, auto, privacy, context windows

fn model(name: &str, provider: &str, price: &str, quality: f64) -> Deployment {
    let mut deployment =
        Deployment::new(name, provider, name).with_price(ModelPrice::new(dec(price), dec(price)));
    deployment.quality = Some(quality);
    deployment
}

fn level_catalog(calls: &Calls) -> GatewayBuilder {
    let mut local = model("llama-local", "vllm", "0", 0.7);
    local.local = true;
    local.privacy = Privacy::High;
    let mut builder = Gateway::builder();
    for name in [
        "vllm",
        "groq",
        "together",
        "openrouter",
        "anthropic",
        "openai",
    ] {
        builder = builder.provider(Scripted::always(name, ok(), calls));
    }
    builder
        .routing_strategy(Strategy::Cost)
        .model(model("gpt-premium", "openai", "0.01", 0.96))
        .model(model("claude-premium", "anthropic", "0.015", 0.97))
        .model(model("or-cheap", "openrouter", "0.001", 0.82))
        .model(model("mixtral", "together", "0.002", 0.85))
        .model(model("llama-groq", "groq", "0.0005", 0.7))
        .model(model("tiny", "groq", "0.0001", 0.3))
        .model(local)
}

fn auto(level: PowerLevel) -> ChatRequest {
    let mut request = request("auto");
    request.power_level = Some(level);
    request
}

#[tokio::test]
async fn auto_chooses_by_the_levels_preference_then_by_price() {
    let calls = Calls::default();
    let gateway = level_catalog(&calls).build();
    let admin = Caller::admin();
    let eco = gateway
        .route_preview(&admin, &auto(PowerLevel::Eco))
        .unwrap();
    assert_eq!(
        names_of(&eco),
        [
            "llama-local",
            "llama-groq",
            "or-cheap",
            "mixtral",
            "gpt-premium",
            "claude-premium"
        ],
        "local, then groq, then the rest cheapest first; `tiny` is below eco's quality"
    );
    let balanced = gateway
        .route_preview(&admin, &auto(PowerLevel::Balanced))
        .unwrap();
    assert_eq!(
        names_of(&balanced),
        ["mixtral", "or-cheap", "gpt-premium", "claude-premium"]
    );
    let precision = gateway
        .route_preview(&admin, &auto(PowerLevel::Precision))
        .unwrap();
    assert_eq!(names_of(&precision), ["claude-premium", "gpt-premium"]);

    // Served for real: eco goes to the free local model and costs nothing, precision to a
    // premium one and is charged in full.
    let mut eco_tier = Tier::new("free");
    eco_tier.default_power_level = PowerLevel::Eco;
    fund(&gateway, "u", 100_000_000).await;
    let done = gateway
        .chat(&Caller::user("u", Arc::new(eco_tier)), request("auto"))
        .await
        .unwrap();
    assert_eq!(done.route.model, "llama-local");
    assert_eq!(done.route.power_level, PowerLevel::Eco);
    assert_eq!(done.cost_micros, 0);
    let done = gateway
        .chat(&Caller::user("u", tier()), auto(PowerLevel::Precision))
        .await
        .unwrap();
    assert_eq!(done.route.provider, "anthropic");
    assert!(done.cost_micros > 0);
}

#[tokio::test]
async fn a_named_model_keeps_its_provider_but_takes_the_levels_output_cap() {
    let calls = Calls::default();
    let gateway = level_catalog(&calls).build();
    let mut asked = ChatRequest::new("claude-premium", vec![Message::user("hi")]);
    asked.power_level = Some(PowerLevel::Eco);
    let done = gateway.chat(&Caller::admin(), asked).await.unwrap();
    assert_eq!(done.route.provider, "anthropic");
    assert_eq!(calls.lock().unwrap()[0].max_tokens, Some(2000));
}

#[tokio::test]
async fn a_private_request_only_reaches_private_models() {
    let calls = Calls::default();
    let mut named = model("mixtral-or-local", "together", "0.002", 0.85);
    named.fallbacks = vec!["llama-local".into()];
    let gateway = level_catalog(&calls).model(named).build();
    let private = Caller::admin().with_privacy(Privacy::High);

    let preview = gateway
        .route_preview(&private, &auto(PowerLevel::Precision))
        .unwrap_err();
    assert_eq!(preview.status(), 403, "no premium model is private");
    let done = gateway
        .chat(&private, auto(PowerLevel::Balanced).clone())
        .await;
    assert!(
        done.is_err(),
        "balanced's quality bar excludes the local model"
    );
    let done = gateway.chat(&private, auto(PowerLevel::Eco)).await.unwrap();
    assert_eq!(done.route.model, "llama-local");

    let error = gateway
        .chat(&private, request("mixtral"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 403);
    assert_eq!(error.code(), Some("private_model_required"));

    // A named model whose fallback is private falls through to it.
    let done = gateway
        .chat(&private, request("mixtral-or-local"))
        .await
        .unwrap();
    assert_eq!(done.route.model, "llama-local");
    assert_eq!(order(&calls), ["vllm", "vllm"]);

    // A private tier does the same for all its users' requests.
    let mut tier = Tier::new("private");
    tier.require_private = true;
    let user = Caller::user("u", Arc::new(tier));
    let error = gateway.chat(&user, request("mixtral")).await.unwrap_err();
    assert_eq!(error.status(), 403);
}

#[tokio::test]
async fn a_prompt_too_long_for_a_model_moves_on_or_fails_clearly() {
    let calls = Calls::default();
    let mut small = priced("small", "a");
    small.context_window = Some(64);
    small.fallbacks = vec!["big".into()];
    let mut big = priced("big", "b");
    big.context_window = Some(100_000);
    let mut alone = priced("alone", "a");
    alone.context_window = Some(64);
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .provider(Scripted::always("b", ok(), &calls))
        .model(small)
        .model(big)
        .model(alone)
        .build();
    let long = |model: &str| ChatRequest::new(model, vec![Message::user("word ".repeat(200))]);

    let done = gateway.chat(&Caller::admin(), long("small")).await.unwrap();
    assert_eq!(done.route.model, "big");
    let error = gateway
        .chat(&Caller::admin(), long("alone"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.code(), Some("context_length_exceeded"));
    assert_eq!(error.param(), Some("messages"));
    assert_eq!(order(&calls), ["b"]);
    // A short prompt still fits the small model.
    let done = gateway
        .chat(&Caller::admin(), request("small"))
        .await
        .unwrap();
    assert_eq!(done.route.model, "small");
}

// ---------------------------------------------------------------------------------------------
// Strategies

fn candidates_of<'a>(
    deployments: &'a [Deployment],
    states: &[CandidateState],
) -> Vec<Candidate<'a>> {
    deployments
        .iter()
        .zip(states)
        .map(|(deployment, state)| Candidate {
            deployment,
            state: *state,
        })
        .collect()
}

fn rank(strategy: Strategy, deployments: &[Deployment], states: &[CandidateState]) -> Vec<usize> {
    let level = PowerLevelPolicy::default_for(PowerLevel::Balanced);
    let mut facts = RouteFacts::new("m", PowerLevel::Balanced, &level);
    facts.prompt_tokens = 1000;
    strategy
        .policy()
        .rank(&facts, &candidates_of(deployments, states))
}

fn idle(n: usize) -> Vec<CandidateState> {
    vec![CandidateState::default(); n]
}

fn cooling() -> CandidateState {
    CandidateState {
        cooling_down: true,
        ..Default::default()
    }
}

#[test]
fn cost_puts_free_first_then_cheapest_then_unpriced_and_unavailable_last() {
    let mut heavy_output = priced("m", "heavy-output");
    heavy_output.price = Some(ModelPrice::new(dec("0.0001"), dec("0.01")));
    let deployments = [
        priced("m", "two-tenths"),
        Deployment::new("m", "unpriced", "x"),
        priced("m", "free").with_price(ModelPrice::default()),
        priced("m", "cheap").with_price(ModelPrice::new(dec("0.001"), dec("0.001"))),
        heavy_output,
        priced("m", "free-but-cooling").with_price(ModelPrice::default()),
    ];
    let mut states = idle(6);
    states[5] = cooling();
    assert_eq!(
        rank(Strategy::Cost, &deployments, &states),
        [2, 3, 0, 4, 1, 5]
    );
}

#[test]
fn latency_prefers_unmeasured_then_fastest_and_ttft_for_streams() {
    let deployments = [priced("m", "a"), priced("m", "b"), priced("m", "c")];
    let states = [
        CandidateState {
            latency_ms: Some(900.0),
            ttft_ms: Some(50.0),
            ..Default::default()
        },
        CandidateState {
            latency_ms: Some(300.0),
            ttft_ms: Some(200.0),
            ..Default::default()
        },
        CandidateState::default(),
    ];
    assert_eq!(rank(Strategy::Latency, &deployments, &states), [2, 1, 0]);
    let level = PowerLevelPolicy::default_for(PowerLevel::Balanced);
    let mut facts = RouteFacts::new("m", PowerLevel::Balanced, &level);
    facts.stream = true;
    let order = Strategy::Latency
        .policy()
        .rank(&facts, &candidates_of(&deployments, &states));
    assert_eq!(order, [2, 0, 1]);
}

#[test]
fn least_busy_orders_by_requests_in_flight() {
    let deployments = [priced("m", "a"), priced("m", "b"), priced("m", "c")];
    let busy = |n| CandidateState {
        in_flight: n,
        ..Default::default()
    };
    let states = [busy(5), busy(1), busy(1)];
    assert_eq!(rank(Strategy::LeastBusy, &deployments, &states), [1, 2, 0]);
}

#[test]
fn priority_orders_by_number_then_configuration() {
    let with_priority = |provider: &str, priority| {
        let mut d = priced("m", provider);
        d.priority = priority;
        d
    };
    let deployments = [
        with_priority("a", 2),
        with_priority("b", 1),
        with_priority("c", 2),
        with_priority("d", 0),
    ];
    let mut states = idle(4);
    assert_eq!(
        rank(Strategy::Priority, &deployments, &states),
        [3, 1, 0, 2]
    );
    states[3].at_limit = true;
    assert_eq!(
        rank(Strategy::Priority, &deployments, &states),
        [1, 0, 2, 3]
    );
}

#[test]
fn weighted_is_reproducible_per_seed_and_proportional_to_weight() {
    let with_weight = |provider: &str, weight| {
        let mut d = priced("m", provider);
        d.weight = weight;
        d
    };
    let deployments = [
        with_weight("heavy", 3),
        with_weight("light", 1),
        with_weight("off", 0),
    ];
    let candidates = candidates_of(&deployments, &idle(3));
    let level = PowerLevelPolicy::default_for(PowerLevel::Balanced);
    let policy = Strategy::Weighted.policy();
    let mut heavy_first = 0;
    for seed in 0..4000 {
        let mut facts = RouteFacts::new("m", PowerLevel::Balanced, &level);
        facts.seed = seed;
        let order = policy.rank(&facts, &candidates);
        assert_eq!(
            order,
            policy.rank(&facts, &candidates),
            "same seed, same order"
        );
        assert_eq!(order[2], 2, "weight 0 comes last");
        heavy_first += usize::from(order[0] == 0);
    }
    // Expected 3000 of 4000; the bounds are many standard deviations wide.
    assert!((2800..=3200).contains(&heavy_first), "{heavy_first}");
}

#[tokio::test]
async fn the_cost_strategy_serves_the_cheapest_deployment() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("dear", ok(), &calls))
        .provider(Scripted::always("cheap", ok(), &calls))
        .model(priced("m", "dear").with_price(ModelPrice::new(dec("0.01"), dec("0.01"))))
        .model(priced("m", "cheap").with_price(ModelPrice::new(dec("0.001"), dec("0.001"))))
        .routing_strategy("cost".parse().unwrap())
        .build();
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.route.provider, "cheap");
}

#[tokio::test(start_paused = true)]
async fn the_latency_strategy_learns_from_observed_latency() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always(
            "slow",
            Step::Slow { delay: ms(300) },
            &calls,
        ))
        .provider(Scripted::always(
            "fast",
            Step::Slow { delay: ms(50) },
            &calls,
        ))
        .model(priced("m", "slow"))
        .model(priced("m", "fast"))
        .routing_strategy(Strategy::Latency)
        .build();
    for _ in 0..3 {
        gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    }
    // Unmeasured first (config order), then the unmeasured one, then the faster.
    assert_eq!(order(&calls), ["slow", "fast", "fast"]);
    let states = gateway.deployment_states();
    assert_eq!(states[0].1.latency_ms, Some(300.0));
    assert_eq!(states[1].1.latency_ms, Some(50.0));

    let mut stream = gateway
        .chat_stream(&Caller::admin(), request("m"))
        .await
        .unwrap();
    while stream.next().await.is_some() {}
    assert_eq!(gateway.deployment_states()[1].1.ttft_ms, Some(50.0));
}

#[tokio::test(start_paused = true)]
async fn the_least_busy_strategy_routes_around_a_request_in_flight() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always(
            "a",
            Step::Slow {
                delay: Duration::from_secs(10),
            },
            &calls,
        ))
        .provider(Scripted::always("b", ok(), &calls))
        .model(priced("m", "a"))
        .model(priced("m", "b"))
        .routing_strategy(Strategy::LeastBusy)
        .build();
    let busy = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.chat(&Caller::admin(), request("m")).await }
    });
    while order(&calls).is_empty() {
        tokio::task::yield_now().await;
    }
    assert_eq!(gateway.deployment_states()[0].1.in_flight, 1);
    let preview = gateway
        .route_preview(&Caller::admin(), &request("m"))
        .unwrap();
    assert_eq!(providers_of(&preview), ["b", "a"]);
    busy.await.unwrap().unwrap();
    assert_eq!(gateway.deployment_states()[0].1.in_flight, 0);
}

#[tokio::test]
async fn the_weighted_strategy_spreads_requests_by_weight() {
    let calls = Calls::default();
    let mut heavy = priced("m", "heavy");
    heavy.weight = 4;
    let gateway = Gateway::builder()
        .provider(Scripted::always("heavy", ok(), &calls))
        .provider(Scripted::always("light", ok(), &calls))
        .model(heavy)
        .model(priced("m", "light"))
        .routing_strategy(Strategy::Weighted)
        .build();
    for _ in 0..500 {
        gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    }
    let heavy = order(&calls).iter().filter(|p| **p == "heavy").count();
    // Expected 400 of 500.
    assert!((350..=450).contains(&heavy), "{heavy}");
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test(start_paused = true)]
async fn a_user_over_the_tiers_rpm_gets_a_429_with_retry_after() {
    let calls = Calls::default();
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .model(priced("m", "a"))
        .build();
    fund(&gateway, "u", 100_000_000).await;
    let mut limited = Tier::new("free");
    limited.rpm = Some(2);
    let caller = Caller::user("u", Arc::new(limited));
    for _ in 0..2 {
        gateway.chat(&caller, request("m")).await.unwrap();
    }
    let error = gateway.chat(&caller, request("m")).await.unwrap_err();
    assert_eq!(error.status(), 429);
    assert_eq!(error.kind(), ErrorKind::RateLimited);
    assert_eq!(error.code(), Some("rate_limit_exceeded"));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(
        error.message(),
        "Rate limit reached: your tier allows 2 requests per minute. Try again in 30 s."
    );
    assert!(!error.message().contains("  "), "{}", error.message());
    assert_eq!(order(&calls).len(), 2);
    assert_eq!(ledger_counts(&gateway, "u").await, (2, 2, 0));
    // Another user has a budget of their own.
    let other = Caller::user("v", caller.tier.clone());
    fund(&gateway, "v", 100_000_000).await;
    gateway.chat(&other, request("m")).await.unwrap();

    tokio::time::advance(Duration::from_secs(30)).await;
    gateway.chat(&caller, request("m")).await.unwrap();
}

#[derive(Debug)]
struct BrokenLimiter;

#[async_trait]
impl RateLimiter for BrokenLimiter {
    async fn acquire(&self, _key: &str, _quota: Quota, _cost: u32) -> Result<Admission> {
        Err(Error::unavailable("redis is down"))
    }
}

#[tokio::test]
async fn a_limiter_that_cannot_answer_admits_requests() {
    let calls = Calls::default();
    let mut deployment = priced("m", "a");
    deployment.rpm = Some(1);
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .model(deployment)
        .rate_limiter(Arc::new(BrokenLimiter))
        .build();
    let mut limited = Tier::new("free");
    limited.rpm = Some(1);
    let caller = Caller::user("u", Arc::new(limited));
    fund(&gateway, "u", 100_000_000).await;
    for _ in 0..3 {
        gateway.chat(&caller, request("m")).await.unwrap();
    }
    assert_eq!(order(&calls).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_deployment_at_its_rpm_is_avoided_instead_of_called() {
    let calls = Calls::default();
    let mut limited = priced("m", "a");
    limited.rpm = Some(1);
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .provider(Scripted::always("b", ok(), &calls))
        .model(limited)
        .model(priced("m", "b"))
        .build();
    for _ in 0..3 {
        gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    }
    assert_eq!(order(&calls), ["a", "b", "b"]);
    assert!(gateway.deployment_states()[0].1.at_limit);
    tokio::time::advance(Duration::from_secs(60)).await;
    assert!(!gateway.deployment_states()[0].1.at_limit);
    gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(order(&calls)[3], "a");
}

#[tokio::test(start_paused = true)]
async fn a_deployment_over_its_tpm_is_avoided_until_the_budget_refills() {
    let calls = Calls::default();
    let mut limited = priced("m", "a");
    // Each answer reports 1,000 tokens.
    limited.tpm = Some(1500);
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .provider(Scripted::always("b", ok(), &calls))
        .model(limited)
        .model(priced("m", "b"))
        .build();
    for _ in 0..3 {
        gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    }
    assert_eq!(order(&calls), ["a", "a", "b"]);
}

#[tokio::test]
async fn a_user_who_can_afford_the_first_choice_is_not_refused_for_a_dear_fallback() {
    let calls = Calls::default();
    let mut cheap = priced("m", "a").with_price(ModelPrice::new(dec("0.0001"), dec("0.0001")));
    cheap.fallbacks = vec!["dear".into()];
    let gateway = Gateway::builder()
        .provider(Scripted::always("a", ok(), &calls))
        .provider(Scripted::always("b", ok(), &calls))
        .model(cheap)
        .model(priced("dear", "b").with_price(ModelPrice::new(dec("1"), dec("1"))))
        .build();
    // Enough for `m` at its most (about 0.04 credits), far too little for `dear` (360).
    fund(&gateway, "u", 500_000).await;
    let caller = Caller::user("u", tier());
    let done = gateway.chat(&caller, request("m")).await.unwrap();
    assert_eq!(done.route.model, "m");
    assert_eq!(ledger_counts(&gateway, "u").await, (1, 1, 0));

    // Asking for the dear model itself is still a 402.
    let error = gateway.chat(&caller, request("dear")).await.unwrap_err();
    assert_eq!(error.status(), 402);
    assert_eq!(order(&calls), ["a"]);
}
