//! OpenAI ↔ Anthropic translation, the pure part of calling a Messages API upstream: an
//! OpenAI-shaped request (system prompt, a few turns, a tool) to the Anthropic wire JSON, and
//! an Anthropic answer (text and a tool call, with usage) back to the core response.
//!
//! Run: `cargo bench -p llmgate-benches --bench translate`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use llmgate_core::chat::ChatRequest;
use llmgate_providers::anthropic::{request_json_for_bench, response_from_json_for_bench};

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
    group.finish();
}

criterion_group!(benches, translate);
criterion_main!(benches);
