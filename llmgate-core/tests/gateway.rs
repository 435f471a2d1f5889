//! The in-process pipeline end to end against scripted providers: holds, settles, fallbacks,
//! BYOK and streams.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::StreamExt;
use llmgate_core::*;
use llmgate_core::{
    caller::Tier,
    catalog::Deployment,
    chat::{ChatChunk, ChatResponse, FinishReason, Usage},
    credits::{KeySource, Page, TransactionKind, UsageGroup, UsageQuery},
    keys::{KeyVault, Secret},
    memory::MemoryKeyVault,
    pricing::ModelPrice,
    provider::{ChunkStream, ProviderCall},
};
use support::{dec, fund, ledger_counts, request, text_chunk};

/// What a scripted provider does on one call.
#[derive(Clone)]
enum Script {
    Answer {
        text: &'static str,
        usage: Option<(u64, u64)>,
    },
    Fail(u16),
    /// Stream these pieces, then usage, then end (or fail instead of ending).
    Stream {
        pieces: Vec<&'static str>,
        usage: Option<(u64, u64)>,
        fail_at_end: bool,
    },
}

#[derive(Debug, Default)]
struct Log {
    calls: usize,
    keys: Vec<Option<String>>,
    models: Vec<String>,
}

struct Scripted {
    name: &'static str,
    script: Mutex<VecDeque<Script>>,
    log: Arc<Mutex<Log>>,
}

impl std::fmt::Debug for Scripted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Scripted {
    fn new(name: &'static str, script: Vec<Script>) -> (Arc<Self>, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let provider = Arc::new(Self {
            name,
            script: Mutex::new(script.into()),
            log: log.clone(),
        });
        (provider, log)
    }

    fn next(&self, call: &ProviderCall<'_>) -> Script {
        let mut log = self.log.lock().unwrap();
        log.calls += 1;
        log.keys.push(call.api_key.map(|k| k.expose().to_owned()));
        log.models.push(call.request.model.clone());
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .expect("unscripted call")
    }
}

#[async_trait]
impl Provider for Scripted {
    fn name(&self) -> &str {
        self.name
    }

    async fn chat(&self, call: ProviderCall<'_>) -> Result<ChatResponse> {
        match self.next(&call) {
            Script::Answer { text, usage } => {
                let mut response = ChatResponse::assistant(&call.request.model, text)
                    .with_id("r1")
                    .with_created(1);
                response.usage = usage.map(|(p, c)| Usage::new(p, c));
                Ok(response)
            }
            Script::Fail(status) => Err(Error::from_upstream_status(self.name, status, "scripted")),
            Script::Stream { .. } => panic!("stream script on a JSON call"),
        }
    }

    async fn chat_stream(&self, call: ProviderCall<'_>) -> Result<ChunkStream> {
        match self.next(&call) {
            Script::Stream {
                pieces,
                usage,
                fail_at_end,
            } => {
                let mut items: Vec<Result<ChatChunk>> = pieces
                    .iter()
                    .map(|p| Ok(text_chunk(Some(p), None)))
                    .collect();
                if fail_at_end {
                    items.push(Err(Error::upstream_stream(self.name, "connection reset")));
                } else {
                    items.push(Ok(text_chunk(None, Some(FinishReason::Stop))));
                    if let Some((p, c)) = usage {
                        items.push(Ok(
                            ChatChunk::empty("c1", "up", 1).with_usage(Usage::new(p, c))
                        ));
                    }
                }
                Ok(Box::pin(futures::stream::iter(items)))
            }
            Script::Fail(status) => Err(Error::from_upstream_status(self.name, status, "scripted")),
            Script::Answer { .. } => panic!("JSON script on a stream call"),
        }
    }
}

fn priced(name: &str, provider: &str) -> Deployment {
    Deployment::new(name, provider, format!("{name}-upstream"))
        .with_price(ModelPrice::new(dec("0.002"), dec("0.002")))
}

fn starter() -> Arc<Tier> {
    let mut tier = Tier::new("starter");
    tier.markup = dec("0.4");
    tier.byok = true;
    Arc::new(tier)
}

/// An answer of 400 prompt and 600 completion tokens: SPEC's worked example, 700000 micros
/// for a starter user on a priced model.
fn worked_example(text: &'static str) -> Script {
    Script::Answer {
        text,
        usage: Some((400, 600)),
    }
}

/// A gateway where provider "p" (platform key "k") serves the priced model "m", and user "u"
/// holds `micros`.
async fn single(provider: Arc<Scripted>, micros: i64) -> Gateway {
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("k"))
        .model(priced("m", "p"))
        .build();
    fund(&gateway, "u", micros).await;
    gateway
}

/// A gateway where model "m" on provider "a" falls back to "backup" on provider "b", and user
/// "u" holds 10 credits.
async fn with_fallback(first: Arc<Scripted>, second: Arc<Scripted>) -> Gateway {
    let mut primary = priced("m", "a");
    primary.fallbacks = vec!["backup".into()];
    let gateway = Gateway::builder()
        .provider(first)
        .provider(second)
        .platform_key("a", Secret::new("ka"))
        .platform_key("b", Secret::new("kb"))
        .model(primary)
        .model(priced("backup", "b"))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    gateway
}

#[tokio::test]
async fn paid_request_is_charged_exactly_the_worked_example() {
    let (provider, log) = Scripted::new("p", vec![worked_example("hi")]);
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("sk-platform-0000"))
        .model(priced("m", "p"))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let done = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    assert_eq!(done.cost_micros, 700_000);
    assert_eq!(done.route.attempts, 1);
    assert_eq!(done.route.key_source, KeySource::Platform);
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - 700_000
    );
    assert_eq!(
        log.lock().unwrap().keys,
        vec![Some("sk-platform-0000".to_owned())]
    );
    assert_eq!(log.lock().unwrap().models, vec!["m-upstream".to_owned()]);
    let ledger = gateway
        .credits()
        .transactions(
            "u",
            Page {
                limit: 10,
                before_id: None,
            },
        )
        .await
        .unwrap();
    let charges: Vec<_> = ledger
        .iter()
        .filter(|t| t.kind == TransactionKind::Charge)
        .collect();
    assert_eq!(charges.len(), 1);
    assert_eq!(charges[0].amount_micros, -700_000);
}

#[tokio::test]
async fn balance_below_the_hold_is_refused_before_any_upstream_call() {
    let (provider, log) = Scripted::new("p", vec![]);
    let gateway = single(provider, 10).await;
    let error = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InsufficientCredits);
    assert_eq!(error.status(), 402);
    assert_eq!(log.lock().unwrap().calls, 0);
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10);
}

#[tokio::test]
async fn failing_deployment_falls_back_and_the_hold_is_settled_once() {
    let (first, first_log) = Scripted::new("a", vec![Script::Fail(500)]);
    let (second, _) = Scripted::new("b", vec![worked_example("ok")]);
    let gateway = with_fallback(first, second).await;
    let done = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    assert_eq!(done.route.attempts, 2);
    assert_eq!(done.route.model, "backup");
    assert_eq!(first_log.lock().unwrap().calls, 1);
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - 700_000
    );
    let (holds, charges, _) = ledger_counts(&gateway, "u").await;
    assert_eq!(holds, 1);
    assert_eq!(charges, 1);
}

#[tokio::test]
async fn when_every_candidate_fails_the_balance_is_unchanged() {
    let (provider, _) = Scripted::new("p", vec![Script::Fail(503)]);
    let gateway = single(provider, 10_000_000).await;
    let error = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 503);
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10_000_000);
}

#[tokio::test]
async fn a_bad_request_is_not_retried_elsewhere() {
    let (first, _) = Scripted::new("a", vec![Script::Fail(400)]);
    let (second, second_log) = Scripted::new("b", vec![]);
    let gateway = with_fallback(first, second).await;
    let error = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(second_log.lock().unwrap().calls, 0);
}

#[tokio::test]
async fn byok_key_is_used_and_nothing_is_charged() {
    let (provider, log) = Scripted::new("p", vec![worked_example("hi")]);
    let vault = Arc::new(MemoryKeyVault::new());
    vault
        .put("u", "p", &Secret::new("sk-user-own-key-1234"))
        .await
        .unwrap();
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("sk-platform"))
        .key_vault(vault)
        .model(priced("m", "p"))
        .build();
    let done = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    assert_eq!(done.route.key_source, KeySource::Byok);
    assert_eq!(done.cost_micros, 0);
    assert_eq!(
        log.lock().unwrap().keys,
        vec![Some("sk-user-own-key-1234".to_owned())]
    );
    let usage = gateway
        .credits()
        .usage(&UsageQuery {
            user_id: Some("u".into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Model,
        })
        .await
        .unwrap();
    assert_eq!(usage[0].requests, 1);
}

#[tokio::test]
async fn rejected_byok_key_is_reported_and_not_replaced_by_the_platform_key() {
    let (provider, log) = Scripted::new("p", vec![Script::Fail(401)]);
    let vault = Arc::new(MemoryKeyVault::new());
    vault
        .put("u", "p", &Secret::new("sk-user-own-key-1234"))
        .await
        .unwrap();
    let mut model = priced("m", "p");
    model.fallbacks = vec!["m2".into()];
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("sk-platform"))
        .key_vault(vault)
        .model(model)
        .model(priced("m2", "p"))
        .build();
    let error = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("byok_key_rejected"));
    assert_eq!(log.lock().unwrap().calls, 1);
    assert!(!error.message().contains("sk-user"));
}

#[tokio::test]
async fn unpriced_model_is_refused_without_byok() {
    let (provider, _) = Scripted::new("p", vec![]);
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("k"))
        .model(Deployment::new("m", "p", "up"))
        .build();
    fund(&gateway, "u", 10_000_000).await;
    let error = gateway
        .chat(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some("model_unpriced"));
}

#[tokio::test]
async fn stream_is_charged_from_its_usage_chunk_and_reports_the_cost() {
    let script = Script::Stream {
        pieces: vec!["a", "b"],
        usage: Some((400, 600)),
        fail_at_end: false,
    };
    let (provider, _) = Scripted::new("p", vec![script]);
    let gateway = single(provider, 10_000_000).await;
    let stream = gateway
        .chat_stream(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    let chunks: Vec<_> = stream.collect().await;
    let last = chunks.last().unwrap().as_ref().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().completion_tokens, 600);
    assert_eq!(last.extra["llmgate"]["cost_micros"], 700_000);
    assert_eq!(last.cost().map(|cost| cost.cost_micros), Some(700_000));
    assert_eq!(
        gateway.credits().balance("u").await.unwrap(),
        10_000_000 - 700_000
    );
}

#[tokio::test]
async fn stream_failing_mid_way_ends_with_an_error_and_charges_what_was_produced() {
    let script = Script::Stream {
        pieces: vec!["partial answer"],
        usage: None,
        fail_at_end: true,
    };
    let (provider, _) = Scripted::new("p", vec![script]);
    let gateway = single(provider, 10_000_000).await;
    let stream = gateway
        .chat_stream(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    let items: Vec<_> = stream.collect().await;
    assert!(
        items.last().unwrap().is_err(),
        "the stream must end in an error"
    );
    let finished_with_stop = items.iter().filter_map(|i| i.as_ref().ok()).any(|c| {
        c.choices
            .iter()
            .any(|ch| ch.finish_reason == Some(FinishReason::Stop))
    });
    assert!(!finished_with_stop, "no made-up finish_reason: stop");
    let balance = gateway.credits().balance("u").await.unwrap();
    assert!(balance < 10_000_000, "what was produced is charged");
    assert!(balance > 10_000_000 - 700_000, "but not the whole hold");
}

#[tokio::test]
async fn stream_failing_before_its_first_chunk_falls_back() {
    let (first, _) = Scripted::new("a", vec![Script::Fail(502)]);
    let script = Script::Stream {
        pieces: vec!["x"],
        usage: Some((1, 1)),
        fail_at_end: false,
    };
    let (second, _) = Scripted::new("b", vec![script]);
    let gateway = with_fallback(first, second).await;
    let stream = gateway
        .chat_stream(&Caller::user("u", starter()), request("m"))
        .await
        .unwrap();
    assert_eq!(stream.route().attempts, 2);
    assert_eq!(stream.route().provider, "b");
    let items: Vec<_> = stream.collect().await;
    assert!(items.iter().all(|i| i.is_ok()));
}

#[tokio::test]
async fn stream_dropped_before_output_releases_and_mid_way_settles_what_was_produced() {
    let before = Script::Stream {
        pieces: vec![""],
        usage: None,
        fail_at_end: false,
    };
    let mid = Script::Stream {
        pieces: vec!["some words", "more words"],
        usage: None,
        fail_at_end: false,
    };
    let (provider, _) = Scripted::new("p", vec![before, mid]);
    let gateway = single(provider, 10_000_000).await;
    let caller = Caller::user("u", starter());

    let stream = gateway.chat_stream(&caller, request("m")).await.unwrap();
    drop(stream);
    wait_for_no_open_hold(&gateway).await;
    assert_eq!(gateway.credits().balance("u").await.unwrap(), 10_000_000);

    let mut stream = gateway.chat_stream(&caller, request("m")).await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(
        first.choices[0].delta.content.as_deref(),
        Some("some words")
    );
    drop(stream);
    wait_for_no_open_hold(&gateway).await;
    let balance = gateway.credits().balance("u").await.unwrap();
    assert!(
        balance < 10_000_000 && balance > 10_000_000 - 700_000,
        "charged the produced part: {balance}"
    );
}

/// Settling a dropped stream happens on a spawned task; wait until its ledger entry lands.
async fn wait_for_no_open_hold(gateway: &Gateway) {
    for _ in 0..200 {
        let (holds, charges, releases) = ledger_counts(gateway, "u").await;
        if holds == charges + releases {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("a hold was never settled or released");
}

#[tokio::test]
async fn unknown_model_is_not_found_and_admin_is_never_charged() {
    let (provider, _) = Scripted::new("p", vec![worked_example("hi")]);
    let gateway = Gateway::builder()
        .provider(provider)
        .platform_key("p", Secret::new("k"))
        .model(priced("m", "p"))
        .build();
    let error = gateway
        .chat(&Caller::admin(), request("nope"))
        .await
        .unwrap_err();
    assert_eq!(error.status(), 404);
    let done = gateway.chat(&Caller::admin(), request("m")).await.unwrap();
    assert_eq!(done.cost_micros, 0);
    let usage = gateway
        .credits()
        .usage(&UsageQuery {
            user_id: Some("admin".into()),
            from_day: None,
            to_day: None,
            group_by: UsageGroup::Provider,
        })
        .await
        .unwrap();
    assert_eq!(usage.len(), 1);
}
