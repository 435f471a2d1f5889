//! OpenAI ↔ Anthropic translation, the pure part of calling a Messages API upstream: an
//! OpenAI-shaped request (system prompt, a few turns, a tool) to the Anthropic wire JSON, and
//! an Anthropic answer (text and a tool call, with usage) back to the core response; and the
//! other way round at the ingress, a Claude Code request to `POST /v1/messages` decoded into a
//! core request.
//!
//! Run: `cargo bench -p llmgate-benches --bench translate`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_core::chat::ChatRequest;
use llmgate_providers::anthropic::{request_json_for_bench, response_from_json_for_bench};
use llmgate_server::messages_request_for_bench;

const REQUEST: &str = r#"{
  "model": "claude-3-5-haiku-latest",
  "messages": [
    {"role": "system", "content": "You are a concise assistant for a travel agency."},
    {"role": "user", "content": "I want to fly from Berlin to Lisbon next Friday."},
    {"role": "assistant", "content": "Morning or evening? Any airline preference?"},
    {"role": "user", "content": "Morning, and no low-cost carriers please. Also check the weather there."}
  ],
  "tools": [{
    "type": "function",
    "function": {
      "name": "get_weather",
      "description": "Current weather for a city",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }
  }],
  "temperature": 0.3,
  "max_tokens": 512
}"#;

const RESPONSE: &str = r#"{
  "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
  "type": "message",
  "role": "assistant",
  "model": "claude-3-5-haiku-20241022",
  "content": [
    {"type": "text", "text": "There is a 07:05 Lufthansa flight via Frankfurt arriving 11:40. Let me check the weather in Lisbon."},
    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"city": "Lisbon"}}
  ],
  "stop_reason": "tool_use",
  "stop_sequence": null,
  "usage": {"input_tokens": 412, "output_tokens": 61, "cache_read_input_tokens": 0}
}"#;

fn translate(c: &mut Criterion) {
    let Ok(request) = serde_json::from_str::<ChatRequest>(REQUEST) else {
        return;
    };
    let wire = request_json_for_bench(&request);
    assert!(
        wire.as_ref()
            .is_ok_and(|w| String::from_utf8_lossy(w).contains("\"system\"")),
        "the system prompt moves to `system`"
    );
    let answer = response_from_json_for_bench(RESPONSE.as_bytes());
    assert!(
        answer
            .as_ref()
            .is_ok_and(|a| a.choices[0].message.tool_calls.is_some()),
        "the tool call comes back"
    );

    let mut group = c.benchmark_group("translate");
    group.bench_function("openai-to-anthropic/request", |b| {
        b.iter(|| request_json_for_bench(black_box(&request)))
    });
    group.bench_function("anthropic-to-openai/response", |b| {
        b.iter(|| response_from_json_for_bench(black_box(RESPONSE.as_bytes())))
    });
    // A Claude Code turn as `POST /v1/messages` receives it, decoded into a core request.
    let claude_code = bytes::Bytes::from(claude_code_request());
    assert!(
        messages_request_for_bench(&claude_code)
            .is_ok_and(|r| r.tools.is_some_and(|t| t.len() == 25)),
        "the Messages request decodes with its tools"
    );
    group.bench_function("messages-to-core/claude-code-request", |b| {
        b.iter(|| messages_request_for_bench(black_box(&claude_code)))
    });
    group.finish();
}

/// What Claude Code sends: three system blocks, 25 tools, ten turns with tool use and results.
fn claude_code_request() -> Vec<u8> {
    let tools: Vec<serde_json::Value> = (0..25)
        .map(|i| {
            serde_json::json!({
                "name": format!("Tool{i}"),
                "description": "Does one thing well, with a description of a few lines as Claude Code's tools have. ".repeat(4),
                "input_schema": {"type": "object", "properties": {
                    "path": {"type": "string", "description": "Where"},
                    "content": {"type": "string", "description": "What"}
                }, "required": ["path"]}
            })
        })
        .collect();
    let mut messages = Vec::new();
    for i in 0..5 {
        messages.push(serde_json::json!({"role": "user", "content": [
            {"type": "text", "text": format!("Step {i}: please look at src/lib.rs and fix the bug.")}
        ]}));
        messages.push(serde_json::json!({"role": "assistant", "content": [
            {"type": "text", "text": "Reading the file."},
            {"type": "tool_use", "id": format!("toolu_{i}"), "name": "Tool1", "input": {"path": "src/lib.rs"}}
        ]}));
        messages.push(serde_json::json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i}"), "content": "fn main() {}\n".repeat(20)}
        ]}));
    }
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
        "system": [
            {"type": "text", "text": "You are Claude Code."},
            {"type": "text", "text": "Instructions. ".repeat(200), "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "Environment.", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": messages,
        "tools": tools,
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": "{\"session\":\"s-1\"}"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    });
    body.to_string().into_bytes()
}

criterion_group!(benches, translate);
criterion_main!(benches);
