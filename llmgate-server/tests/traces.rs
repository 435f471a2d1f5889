#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! OpenTelemetry traces through the running server, received by the test OTLP collector
//! (real OTLP protobuf over HTTP): the server span with its GenAI attributes, the caller's
//! trace continued, a client span per upstream attempt whose `traceparent` the upstream saw,
//! streams, embeddings and errors, and a collector that is down changing nothing for clients.

mod support;

use std::time::Duration;

use llmgate_server::RunningServer;
use llmgate_testkit::otlp::{self, FakeCollector, KIND_CLIENT, KIND_SERVER, STATUS_ERROR, Span};
use llmgate_testkit::{FakeUpstream, Reply, embeddings, openai};
use serde_json::{Value, json};
use support::{MASTER_KEY, empty_env, yaml_config};

/// The caller's own trace, as an instrumented client would send it.
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const WAIT: Duration = Duration::from_secs(10);

struct Traced {
    server: RunningServer,
    http: reqwest::Client,
    flaky: FakeUpstream,
    steady: FakeUpstream,
}

impl Traced {
    /// A server whose spans go to `otlp_endpoint` (extra `telemetry:` lines in `telemetry`),
    /// with a model that always fails over (`primary` on `flaky`, then `backup` on `steady`).
    async fn start(otlp_endpoint: Option<&str>, telemetry: &str) -> Self {
        let (flaky, steady) = (FakeUpstream::start().await, FakeUpstream::start().await);
        flaky.set_default(Reply::json(
            500,
            openai::error("boom", "server_error", None),
        ));
        steady.respond_with(|request| {
            if request.path.ends_with("/count_tokens") {
                return Reply::json(200, json!({"input_tokens": 42}));
            }
            if request.path.ends_with("/embeddings") {
                return embeddings::openai(true)(request);
            }
            if request.json()["stream"] == true {
                return Reply::sse(&openai::text_chunks(
                    "steady-model",
                    &["Second ", "left."],
                    Some((12, 8)),
                ));
            }
            Reply::json(
                200,
                openai::completion("steady-model", "Second left.", 12, 8),
            )
        });
        let telemetry = match otlp_endpoint {
            Some(endpoint) => format!(
                "telemetry:\n  otlp_endpoint: \"{endpoint}\"\n  service_name: llmgate-test\n{telemetry}"
            ),
            None => String::new(),
        };
        let yaml = format!(
            r#"
tiers:
  paid: {{ markup: 0.0, default_power_level: balanced }}
providers:
  - {{ name: flaky, kind: openai, api_base: "{flaky}/v1", api_key: sk-flaky-0000 }}
  - {{ name: steady, kind: openai, api_base: "{steady}/v1", api_key: sk-steady-0000 }}
  - {{ name: claude, kind: anthropic, api_base: "{steady}", api_key: sk-ant-0000 }}
models:
  - {{ name: primary, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.01, fallbacks: [backup] }}
  - {{ name: backup, provider: steady, upstream_model: steady-model, cost_per_1k: 0.02 }}
  - {{ name: sonnet, provider: claude, upstream_model: claude-up, cost_per_1k: 0.01 }}
  - {{ name: vectors, provider: steady, upstream_model: embed-model, mode: embedding, input_cost_per_1k: 0.01 }}
routing:
  num_retries: 0
  cooldown_after_failures: 0
{telemetry}
"#,
            flaky = flaky.url(),
            steady = steady.url(),
        );
        let server = support::start(yaml_config(&yaml, &empty_env())).await;
        Self {
            server,
            http: support::client(),
            flaky,
            steady,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A funded user of the paid tier: its id and key.
    async fn user(&self) -> (String, String) {
        let user_id = format!("traced-{:012x}", rand::random::<u64>() >> 16);
        let key = support::create_user(&self.server.url(), &user_id, "paid").await;
        let funded = self
            .http
            .post(self.url("/api/v1/llm/credits/add"))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"user_id": user_id, "amount": 100, "reason": "traces test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(funded.status(), 200);
        (user_id, key)
    }

    async fn post(
        &self,
        path: &str,
        key: &str,
        body: Value,
        traceparent: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).bearer_auth(key).json(&body);
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send().await.unwrap()
    }

    /// A counter's value on `/metrics` (0 when it is not there yet).
    async fn counter(&self, name_and_labels: &str) -> f64 {
        let text = support::get(&self.server, "/metrics")
            .await
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|line| line.starts_with(name_and_labels))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn ask(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Which way to the station?"}],
        "max_tokens": 50,
    })
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

/// The spans of one request (by its `llmgate.request_id` on the server span): the server span
/// and its client spans in start order.
fn of_request(spans: &[Span], request_id: &str) -> (Span, Vec<Span>) {
    let server = spans
        .iter()
        .find(|s| {
            s.kind == KIND_SERVER && s.text("llmgate.request_id").as_deref() == Some(request_id)
        })
        .unwrap_or_else(|| panic!("no server span for {request_id} in {spans:#?}"))
        .clone();
    let mut clients: Vec<Span> = spans
        .iter()
        .filter(|s| s.kind == KIND_CLIENT && s.parent_span_id == server.span_id)
        .cloned()
        .collect();
    clients.sort_by_key(|s| s.start_unix_nano);
    (server, clients)
}

async fn wait_for_request(
    collector: &FakeCollector,
    request_id: &str,
    clients: usize,
) -> (Span, Vec<Span>) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let spans = collector.spans();
        let found = spans.iter().any(|s| {
            s.kind == KIND_SERVER && s.text("llmgate.request_id").as_deref() == Some(request_id)
        });
        if found {
            let (server, found_clients) = of_request(&spans, request_id);
            if found_clients.len() >= clients || std::time::Instant::now() >= deadline {
                return (server, found_clients);
            }
        } else if std::time::Instant::now() >= deadline {
            panic!("no spans for {request_id} arrived: {spans:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_fallback_is_one_server_span_with_a_client_span_per_attempt_in_the_callers_trace() {
    let collector = FakeCollector::start().await;
    let gate = Traced::start(Some(&collector.endpoint()), "").await;
    let (user_id, key) = gate.user().await;

    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = gate
        .post("/v1/chat/completions", &key, ask("primary"), Some(&caller))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-llmgate-attempts"), "2");
    let cost = header(&response, "x-llmgate-cost-micros");
    assert_ne!(cost, "0", "a priced model");
    let request_id = header(&response, "x-request-id");

    let (server, clients) = wait_for_request(&collector, &request_id, 2).await;
    // The caller's trace is continued: same trace id, the caller's span is the parent.
    assert_eq!(server.trace_id, CALLER_TRACE);
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.service_name.as_deref(), Some("llmgate-test"));
    assert_eq!(server.name, "POST /v1/chat/completions");
    for (attribute, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.request.model", "primary"),
        ("gen_ai.response.model", "backup"),
        ("gen_ai.provider.name", "steady"),
        ("gen_ai.usage.input_tokens", "12"),
        ("gen_ai.usage.output_tokens", "8"),
        ("llmgate.cost_micros", cost.as_str()),
        ("llmgate.user", user_id.as_str()),
        ("llmgate.attempts", "2"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(
            server.text(attribute).as_deref(),
            Some(value),
            "{attribute}: {server:#?}"
        );
    }
    assert_eq!(server.text("error.type"), None);

    // One client span per attempt, both under the server span, in the caller's trace.
    assert_eq!(clients.len(), 2, "{clients:#?}");
    let (failed, answered) = (&clients[0], &clients[1]);
    assert!(clients.iter().all(|s| s.trace_id == CALLER_TRACE));
    assert_eq!(
        failed.text("gen_ai.provider.name").as_deref(),
        Some("flaky")
    );
    assert_eq!(
        failed.text("gen_ai.request.model").as_deref(),
        Some("flaky-model")
    );
    assert_eq!(
        failed.text("http.response.status_code").as_deref(),
        Some("500")
    );
    assert!(failed.text("error.type").is_some(), "{failed:#?}");
    assert_eq!(failed.status_code, STATUS_ERROR);
    assert_eq!(answered.name, "chat steady-model");
    assert_eq!(
        answered.text("gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        answered.text("gen_ai.provider.name").as_deref(),
        Some("steady")
    );
    assert_eq!(
        answered.text("gen_ai.response.model").as_deref(),
        Some("steady-model")
    );
    assert_eq!(
        answered.text("gen_ai.usage.input_tokens").as_deref(),
        Some("12")
    );
    assert_eq!(
        answered.text("gen_ai.usage.output_tokens").as_deref(),
        Some("8")
    );
    assert_eq!(answered.text("error.type"), None);

    // Each upstream call carried its own client span as the parent.
    let sent = |upstream: &FakeUpstream| upstream.last_request().unwrap().header("traceparent");
    assert_eq!(sent(&gate.flaky), Some(failed.traceparent()));
    assert_eq!(sent(&gate.steady), Some(answered.traceparent()));
}

#[tokio::test]
async fn a_stream_a_miss_and_embeddings_are_each_a_server_span() {
    let collector = FakeCollector::start().await;
    let gate = Traced::start(Some(&collector.endpoint()), "").await;
    let (_, key) = gate.user().await;

    // A stream: its span ends with the stream, with the usage and cost of the last chunk.
    let mut body = ask("backup");
    body["stream"] = json!(true);
    let response = gate.post("/v1/chat/completions", &key, body, None).await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id");
    let text = response.text().await.unwrap();
    let last: Value = serde_json::from_str(
        support::sse_data(&text)
            .iter()
            .rev()
            .find(|data| data.as_str() != "[DONE]")
            .unwrap(),
    )
    .unwrap();
    let cost = last["llmgate"]["cost_micros"].as_i64().unwrap();
    let (server, clients) = wait_for_request(&collector, &request_id, 1).await;
    assert_eq!(server.text("llmgate.stream").as_deref(), Some("true"));
    assert_eq!(
        server.text("gen_ai.usage.input_tokens").as_deref(),
        Some("12")
    );
    assert_eq!(
        server.text("gen_ai.usage.output_tokens").as_deref(),
        Some("8")
    );
    assert_eq!(server.text("llmgate.cost_micros"), Some(cost.to_string()));
    assert_eq!(clients.len(), 1);
    assert!(server.end_unix_nano >= clients[0].end_unix_nano);

    // A model that does not exist: a server span with the error, no upstream call.
    let response = gate
        .post("/v1/chat/completions", &key, ask("no-such-model"), None)
        .await;
    assert_eq!(response.status(), 404);
    let request_id = header(&response, "x-request-id");
    let (server, clients) = wait_for_request(&collector, &request_id, 0).await;
    assert_eq!(
        server.text("http.response.status_code").as_deref(),
        Some("404")
    );
    assert_eq!(
        server.text("error.type").as_deref(),
        Some("model_not_found")
    );
    assert_eq!(
        server.text("gen_ai.request.model").as_deref(),
        Some("no-such-model")
    );
    assert!(clients.is_empty());
    // A new trace when the caller sent none.
    assert!(server.parent_span_id.is_empty());

    // Embeddings.
    let response = gate
        .post(
            "/v1/embeddings",
            &key,
            json!({"model": "vectors", "input": ["one", "two"]}),
            None,
        )
        .await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id");
    let (server, clients) = wait_for_request(&collector, &request_id, 1).await;
    assert_eq!(
        server.text("gen_ai.operation.name").as_deref(),
        Some("embeddings")
    );
    assert_eq!(
        server.text("gen_ai.request.model").as_deref(),
        Some("vectors")
    );
    assert!(
        server.text("gen_ai.usage.input_tokens").is_some(),
        "{server:#?}"
    );
    assert_eq!(server.text("gen_ai.usage.output_tokens"), None);
    assert_eq!(
        clients[0].text("gen_ai.request.model").as_deref(),
        Some("embed-model")
    );

    // Other endpoints are not traced.
    let models = gate
        .http
        .get(gate.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        collector
            .spans()
            .iter()
            .all(|s| s.text("url.path").as_deref() != Some("/v1/models")),
        "only model endpoints have spans"
    );
}

#[tokio::test]
async fn a_dead_collector_changes_nothing_for_clients_and_its_spans_are_counted_as_dropped() {
    let dropped = "llmgate_trace_spans_dropped_total";
    let gate = Traced::start(
        Some(&otlp::dead_endpoint()),
        "  max_queued_spans: 2\n  max_export_batch: 1\n  export_timeout_ms: 200\n",
    )
    .await;
    let (_, key) = gate.user().await;
    let before = gate.counter(dropped).await;
    for _ in 0..10 {
        let started = std::time::Instant::now();
        let response = gate
            .post("/v1/chat/completions", &key, ask("primary"), None)
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "Second left.");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "never waits on the collector"
        );
    }
    // 30 spans, none of which can be delivered: every one is counted, on the full queue or
    // as a failed export.
    let deadline = std::time::Instant::now() + WAIT;
    while gate.counter(dropped).await - before < 30.0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gate.counter(dropped).await - before >= 30.0);
}

#[tokio::test]
async fn without_telemetry_nothing_is_sent_upstream_or_exported() {
    let gate = Traced::start(None, "").await;
    let (_, key) = gate.user().await;
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = gate
        .post("/v1/chat/completions", &key, ask("backup"), Some(&caller))
        .await;
    assert_eq!(response.status(), 200);
    let sent = gate.steady.last_request().unwrap();
    assert_eq!(
        sent.header("traceparent"),
        None,
        "traces are off by default"
    );
    let _ = &gate.flaky;
}

#[tokio::test]
async fn count_tokens_has_a_client_span_only_when_an_upstream_counts() {
    let collector = FakeCollector::start().await;
    let gate = Traced::start(Some(&collector.endpoint()), "").await;
    let (_, key) = gate.user().await;
    let ask = |model: &str| json!({"model": model, "messages": [{"role": "user", "content": "hello world"}]});

    // Anthropic counts: one client span, with the upstream's count.
    let response = gate
        .post("/v1/messages/count_tokens", &key, ask("sonnet"), None)
        .await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id");
    let (server, clients) = wait_for_request(&collector, &request_id, 1).await;
    assert_eq!(
        server.text("gen_ai.operation.name").as_deref(),
        Some("count_tokens")
    );
    assert_eq!(
        server.text("gen_ai.request.model").as_deref(),
        Some("sonnet")
    );
    assert_eq!(clients.len(), 1, "{clients:#?}");
    assert_eq!(clients[0].name, "count_tokens claude-up");
    assert_eq!(
        clients[0].text("gen_ai.usage.input_tokens").as_deref(),
        Some("42")
    );
    let sent = gate.steady.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages/count_tokens");
    assert_eq!(sent.header("traceparent"), Some(clients[0].traceparent()));

    // An OpenAI-compatible upstream has no counting endpoint: the gateway counts, no client span.
    let calls = gate.steady.request_count();
    let response = gate
        .post("/v1/messages/count_tokens", &key, ask("backup"), None)
        .await;
    assert_eq!(response.status(), 200);
    let request_id = header(&response, "x-request-id");
    let (_, clients) = wait_for_request(&collector, &request_id, 0).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, late) = of_request(&collector.spans(), &request_id);
    assert!(clients.is_empty() && late.is_empty(), "{late:#?}");
    assert_eq!(gate.steady.request_count(), calls, "nothing went upstream");
}

#[tokio::test]
async fn sampling_a_new_trace_by_ratio_and_a_callers_by_its_flag() {
    let collector = FakeCollector::start().await;
    let gate = Traced::start(Some(&collector.endpoint()), "  sample_ratio: 0.0\n").await;
    let (_, key) = gate.user().await;
    let sent = || {
        gate.steady
            .last_request()
            .unwrap()
            .header("traceparent")
            .unwrap()
    };

    // A new trace at ratio 0, and a caller's trace it did not sample: the upstream still gets
    // the trace (flag 00), nothing is recorded.
    let unsampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-00");
    for caller in [None, Some(unsampled.as_str())] {
        let response = gate
            .post("/v1/chat/completions", &key, ask("backup"), caller)
            .await;
        assert_eq!(response.status(), 200);
        let traceparent = sent();
        assert!(
            traceparent.starts_with("00-") && traceparent.ends_with("-00"),
            "{traceparent}"
        );
        if caller.is_some() {
            assert!(traceparent.starts_with(&format!("00-{CALLER_TRACE}-")));
            assert!(
                !traceparent.contains(CALLER_SPAN),
                "a span of the gateway's own"
            );
        }
    }

    // A caller that sampled its trace: recorded whatever the ratio.
    let sampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let response = gate
        .post("/v1/chat/completions", &key, ask("backup"), Some(&sampled))
        .await;
    let request_id = header(&response, "x-request-id");
    let (server, clients) = wait_for_request(&collector, &request_id, 1).await;
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(sent(), clients[0].traceparent());
    assert_eq!(
        collector.spans().len(),
        2,
        "only the sampled request's spans"
    );
}

#[tokio::test]
async fn spans_over_many_small_batches_all_arrive_each_batch_a_whole_export() {
    let collector = FakeCollector::start().await;
    // Three spans a batch: ten requests (twenty spans) fill seven batches, each posted as its
    // own export, their buffers reused; every one must decode and no span may be lost.
    let gate = Traced::start(
        Some(&collector.endpoint()),
        "  max_export_batch: 3\n  max_queued_spans: 100\n",
    )
    .await;
    let (_, key) = gate.user().await;
    let mut request_ids = Vec::new();
    for _ in 0..10 {
        let response = gate
            .post("/v1/chat/completions", &key, ask("backup"), None)
            .await;
        assert_eq!(response.status(), 200);
        request_ids.push(header(&response, "x-request-id"));
    }
    for request_id in &request_ids {
        let (server, clients) = wait_for_request(&collector, request_id, 1).await;
        assert_eq!(clients[0].parent_span_id, server.span_id);
    }
    let spans = collector.spans();
    assert_eq!(spans.len(), 20);
    let ids: std::collections::HashSet<_> = spans.iter().map(|span| &span.span_id).collect();
    assert_eq!(ids.len(), 20, "every span once");
    assert!(collector.exports() >= 7, "{} exports", collector.exports());
}
