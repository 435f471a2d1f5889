// A bench whose setup fails has nothing to measure: it stops there, as a test would.
#![allow(clippy::expect_used)]
//! The latency llmgate adds to an OpenAI Responses call, beside the latency it adds to a chat
//! completion, in one run (the machine is shared and noisy: only figures from the same run are
//! compared). One local fake upstream answers from canned bytes: chat completions on
//! `/v1/chat/completions` and Responses on `/v1/responses`, as JSON or as an event stream when
//! the request asks for one. An in-process `llmgate` server (in-memory SQLite, a charged user:
//! hold, settle and usage record) sits in front of it, with an OpenAI-compatible model `chat`
//! and a model `native` on a provider with `responses_api: true`. Over keep-alive HTTP/1.1,
//! four paths are timed:
//!
//! - `chat`: `POST /v1/chat/completions` to `chat`, direct and through the gateway;
//! - `responses-translated`: `POST /v1/responses` to `chat` with `store: false` (as Codex
//!   sends it), through the gateway only: it is translated to a chat completion, so its direct
//!   counterpart is `direct/chat`;
//! - `responses-stored`: the same with `store: true` (the default): the answer is also written
//!   to the database before it is sent;
//! - `responses`: `POST /v1/responses` to `native` (passed through), direct and through.
//!
//! Each path is timed as JSON (`json/...`, the whole answer) and as a stream, both to the first
//! body byte (`ttfb/...`) and to the last one (`stream/...`). The gateway's share of a path is
//! its through time less its direct time.
//!
//! Run: `cargo bench -p llmgate-benches --bench responses`

mod common;

use bytes::Bytes;
use common::{Measure, bench};
use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_benches::load::client::Target;
use llmgate_testkit::{FakeUpstream, Recorded, Reply, openai, responses};
use serde_json::{Value, json};
use tokio::runtime::Runtime;

const PIECES: [&str; 8] = [
    "Hello", " there", ", how", " can", " I", " help", " you", " today?",
];

/// The fake upstream's answer to `request`: each of the four built once, so its own work is a
/// copy whichever way the request came.
fn upstream_replies() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let chat = Reply::json(
        200,
        openai::completion("gpt-up", "Hello there, how can I help you today?", 14, 10),
    );
    let chat_stream = Reply::sse(&openai::text_chunks("gpt-up", &PIECES, Some((14, 10))));
    let response = Reply::json(
        200,
        responses::response("gpt-up", "Hello there, how can I help you today?", 14, 10),
    );
    let response_stream = responses::sse(&responses::text_events("gpt-up", &PIECES, 14, 10));
    move |request| {
        let stream = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|body| body.get("stream").and_then(Value::as_bool))
            .unwrap_or(false);
        let native = request.path.ends_with("/responses");
        match (native, stream) {
            (false, false) => chat.clone(),
            (false, true) => chat_stream.clone(),
            (true, false) => response.clone(),
            (true, true) => response_stream.clone(),
        }
    }
}

const YAML: &str = r#"
providers:
  - { name: fake, kind: openai, api_base: "${UPSTREAM}/v1", api_key: sk-bench-0000 }
  - { name: native, kind: openai, api_base: "${UPSTREAM}/v1", api_key: sk-bench-0000, responses_api: true }
models:
  - { name: chat, provider: fake, upstream_model: gpt-up, input_cost_per_1k: 0.002, output_cost_per_1k: 0.002 }
  - { name: native, provider: native, upstream_model: gpt-up, input_cost_per_1k: 0.002, output_cost_per_1k: 0.002 }
routing: { num_retries: 0, cooldown_after_failures: 0 }
"#;

/// What a request to a path says, besides its model and `stream`.
#[derive(Clone, Copy)]
enum Ask {
    Chat,
    /// A Responses request, kept by the gateway or not.
    Responses {
        store: bool,
    },
}

/// A one-turn request for `model`, streamed or not.
fn body(ask: Ask, model: &str, stream: bool) -> Bytes {
    let mut request = match ask {
        Ask::Chat => json!({
            "model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
        }),
        Ask::Responses { store } => json!({
            "model": model, "max_output_tokens": 64, "input": "hello", "store": store,
        }),
    };
    if stream {
        request["stream"] = json!(true);
    }
    Bytes::from(request.to_string())
}

fn responses_latency(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let (upstream, gateway) = runtime.block_on(async {
        let upstream = FakeUpstream::start().await;
        upstream.respond_with(upstream_replies());
        let gateway = common::start(YAML, &upstream.url()).await;
        (upstream, gateway)
    });
    let direct = |path| Target {
        addr: common::address(&upstream.url()),
        path,
        authorization: Some("Bearer sk-bench-0000".to_owned()),
    };
    let through = |path| Target {
        addr: gateway.addr,
        path,
        authorization: Some(format!("Bearer {}", gateway.key)),
    };
    let (chat, unstored, stored) = (
        Ask::Chat,
        Ask::Responses { store: false },
        Ask::Responses { store: true },
    );
    // (path name, the way it was sent, what is asked, the model it names)
    let cases = [
        (
            "chat",
            "direct",
            direct("/v1/chat/completions"),
            chat,
            "chat",
        ),
        (
            "chat",
            "gateway",
            through("/v1/chat/completions"),
            chat,
            "chat",
        ),
        (
            "responses-translated",
            "gateway",
            through("/v1/responses"),
            unstored,
            "chat",
        ),
        (
            "responses-stored",
            "gateway",
            through("/v1/responses"),
            stored,
            "chat",
        ),
        (
            "responses",
            "direct",
            direct("/v1/responses"),
            unstored,
            "gpt-up",
        ),
        (
            "responses",
            "gateway",
            through("/v1/responses"),
            unstored,
            "native",
        ),
    ];
    let mut group = c.benchmark_group("responses");
    let kinds = [
        ("json", false, Measure::Total),
        ("ttfb", true, Measure::FirstByte),
        ("stream", true, Measure::Total),
    ];
    for (kind, stream, measure) in kinds {
        for (path, way, target, ask, model) in &cases {
            let id = format!("{kind}/{way}/{path}");
            bench(
                &mut group,
                &runtime,
                &id,
                target,
                &body(*ask, model, stream),
                measure,
            );
        }
    }
    group.finish();
}

criterion_group!(benches, responses_latency);
criterion_main!(benches);
