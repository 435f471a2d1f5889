// A bench whose setup fails has nothing to measure: it stops there, as a test would.
#![allow(clippy::expect_used)]
//! The latency llmgate adds to an Anthropic Messages call, beside the latency it adds to a chat
//! completion. One local fake upstream answers both families from canned bytes: OpenAI chat
//! completions on `/v1/chat/completions` and Anthropic messages on `/v1/messages`, as JSON or
//! as an event stream when the request asks for one. An in-process `llmgate` server (in-memory
//! SQLite, a charged user: hold, settle and usage record) sits in front of it, with an
//! OpenAI-compatible model `chat` and an `anthropic` model `claude`. Over keep-alive HTTP/1.1,
//! three paths are timed:
//!
//! - `chat`: `POST /v1/chat/completions` to `chat`, direct and through the gateway;
//! - `messages`: `POST /v1/messages` to `claude` (passed through), direct and through;
//! - `messages-translated`: `POST /v1/messages` to `chat`, through the gateway only: it is
//!   translated to a chat completion, so its direct counterpart is `direct/chat`.
//!
//! Each path is timed as JSON (`json/...`, the whole answer) and as a stream, both to the first
//! body byte (`ttfb/...`) and to the last one (`stream/...`). The gateway's share of a path is
//! its through time less its direct time.
//!
//! Run: `cargo bench -p llmgate-benches --bench messages`

mod common;

use bytes::Bytes;
use common::paths::{Case, PIECES, Rig, TEXT};
use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_testkit::{Recorded, Reply, anthropic, openai};
use serde_json::{Value, json};

/// The fake upstream's answer to `request`: each of the four built once, so its own work is a
/// copy whichever way the request came.
fn upstream_replies() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    let chat = Reply::json(200, openai::completion("gpt-up", TEXT, 14, 10));
    let chat_stream = Reply::sse(&openai::text_chunks("gpt-up", &PIECES, Some((14, 10))));
    let message = Reply::json(200, anthropic::message("claude-up", TEXT, 14, 10));
    let message_stream = anthropic::sse(&anthropic::text_events("claude-up", &PIECES, 14, 10));
    move |request| {
        let stream = serde_json::from_slice::<Value>(&request.body)
            .ok()
            .and_then(|body| body.get("stream").and_then(Value::as_bool))
            .unwrap_or(false);
        let messages = request.path.ends_with("/messages");
        match (messages, stream) {
            (false, false) => chat.clone(),
            (false, true) => chat_stream.clone(),
            (true, false) => message.clone(),
            (true, true) => message_stream.clone(),
        }
    }
}

const YAML: &str = r#"
providers:
  - { name: fake, kind: openai, api_base: "${UPSTREAM}/v1", api_key: sk-bench-0000 }
  - { name: claude, kind: anthropic, api_base: "${UPSTREAM}", api_key: sk-ant-bench-0000 }
models:
  - { name: chat, provider: fake, upstream_model: gpt-up, input_cost_per_1k: 0.002, output_cost_per_1k: 0.002 }
  - { name: claude, provider: claude, upstream_model: claude-up, input_cost_per_1k: 0.003, output_cost_per_1k: 0.015 }
routing: { num_retries: 0, cooldown_after_failures: 0 }
"#;

/// A one-turn request for `model`, streamed or not (the same fields in both families).
fn body(model: &str, stream: bool) -> Bytes {
    let mut request = json!({
        "model": model, "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}],
    });
    if stream {
        request["stream"] = json!(true);
    }
    Bytes::from(request.to_string())
}

fn messages_latency(c: &mut Criterion) {
    let rig = Rig::start(YAML, upstream_replies());
    let case = |path, way, target, model| Case {
        path,
        way,
        target,
        ask: model,
    };
    let cases = [
        case("chat", "direct", rig.direct("/v1/chat/completions"), "chat"),
        case(
            "chat",
            "gateway",
            rig.through("/v1/chat/completions"),
            "chat",
        ),
        case("messages", "direct", rig.direct("/v1/messages"), "claude"),
        case("messages", "gateway", rig.through("/v1/messages"), "claude"),
        case(
            "messages-translated",
            "gateway",
            rig.through("/v1/messages"),
            "chat",
        ),
    ];
    rig.bench(c, "messages", &cases, |model, stream| body(model, stream));
}

criterion_group!(benches, messages_latency);
criterion_main!(benches);
