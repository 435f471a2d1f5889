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
use common::paths::{Case, PIECES, Rig, TEXT};
use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_testkit::{Recorded, Reply, openai, responses};
use serde_json::{Value, json};

/// The fake upstream's answer to `request`: each of the four built once, so its own work is a
/// copy whichever way the request came.
fn upstream_replies() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let chat = Reply::json(200, openai::completion("gpt-up", TEXT, 14, 10));
    let chat_stream = Reply::sse(&openai::text_chunks("gpt-up", &PIECES, Some((14, 10))));
    let response = Reply::json(200, responses::response("gpt-up", TEXT, 14, 10));
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

/// What a request to a path asks for, besides `stream`.
#[derive(Clone, Copy)]
enum Ask {
    /// A chat completion from this model.
    Chat(&'static str),
    /// A Responses request to this model, kept by the gateway or not.
    Responses { model: &'static str, store: bool },
}

/// A one-turn request, streamed or not.
fn body(ask: Ask, stream: bool) -> Bytes {
    let mut request = match ask {
        Ask::Chat(model) => json!({
            "model": model, "max_tokens": 64,
            "messages": [{"role": "user", "content": "hello"}],
        }),
        Ask::Responses { model, store } => json!({
            "model": model, "max_output_tokens": 64, "input": "hello", "store": store,
        }),
    };
    if stream {
        request["stream"] = json!(true);
    }
    Bytes::from(request.to_string())
}

fn responses_latency(c: &mut Criterion) {
    let rig = Rig::start(YAML, upstream_replies());
    let (chat, unstored, stored) = (
        Ask::Chat("chat"),
        Ask::Responses {
            model: "chat",
            store: false,
        },
        Ask::Responses {
            model: "chat",
            store: true,
        },
    );
    let native = Ask::Responses {
        model: "native",
        store: false,
    };
    let case = |path, way, target, ask| Case {
        path,
        way,
        target,
        ask,
    };
    let cases = [
        case("chat", "direct", rig.direct("/v1/chat/completions"), chat),
        case("chat", "gateway", rig.through("/v1/chat/completions"), chat),
        case(
            "responses-translated",
            "gateway",
            rig.through("/v1/responses"),
            unstored,
        ),
        case(
            "responses-stored",
            "gateway",
            rig.through("/v1/responses"),
            stored,
        ),
        case("responses", "direct", rig.direct("/v1/responses"), native),
        case("responses", "gateway", rig.through("/v1/responses"), native),
    ];
    rig.bench(c, "responses", &cases, |ask, stream| body(*ask, stream));
}

criterion_group!(benches, responses_latency);
criterion_main!(benches);
