#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every wire family through the running server: the real `async-openai` client talks to
//! llmgate, which talks to one fake upstream per family (OpenAI-compatible, Anthropic, Ollama,
//! the HuggingFace preset), each speaking its own documented wire format.

mod support;

use std::collections::BTreeMap;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, CompletionUsage, CreateChatCompletionRequest,
    CreateChatCompletionResponse, FinishReason,
};
use futures::StreamExt;
use llmgate_server::RunningServer;
use llmgate_server::config::Env;
use llmgate_testkit::{Chunking, FakeUpstream, Recorded, Reply, anthropic, ollama, openai};
use serde_json::{Value, json};
use support::*;

const TOGETHER_KEY: &str = "sk-together-test-0123456789";
const ANTHROPIC_KEY: &str = "sk-ant-test-0123456789abcdef";
const HF_KEY: &str = "hf_test_0123456789abcdefgh";
const OPENAI_KEY: &str = "sk-openai-test-0123456789";

/// One wire family, as the server reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    /// `kind: openai` under a name that is not a preset (so `api_base` is required).
    OpenAiCompatible,
    Anthropic,
    Ollama,
    /// The `huggingface` preset: OpenAI's wire format with its own key.
    HuggingFace,
}

const FAMILIES: [Family; 4] = [
    Family::OpenAiCompatible,
    Family::Anthropic,
    Family::Ollama,
    Family::HuggingFace,
];

/// The upstream model id every fixture answers as.
const UPSTREAM_MODEL: &str = "up-model";

impl Family {
    /// What the client asks for.
    fn model(self) -> &'static str {
        match self {
            Family::OpenAiCompatible => "compat-model",
            Family::Anthropic => "claude",
            Family::Ollama => "llama-local",
            Family::HuggingFace => "hf-model",
        }
    }

    fn text_json(self, text: &str, (prompt, completion): (u64, u64)) -> Reply {
        let body = match self {
            Family::OpenAiCompatible | Family::HuggingFace => {
                openai::completion(UPSTREAM_MODEL, text, prompt, completion)
            }
            Family::Anthropic => anthropic::message(UPSTREAM_MODEL, text, prompt, completion),
            Family::Ollama => ollama::chat(UPSTREAM_MODEL, text, prompt, completion),
        };
        Reply::json(200, body)
    }

    /// The whole stream body for `pieces`, and its content type.
    fn text_stream_body(self, pieces: &[&str], (prompt, completion): (u64, u64)) -> Reply {
        match self {
            Family::OpenAiCompatible | Family::HuggingFace => Reply::sse(&openai::text_chunks(
                UPSTREAM_MODEL,
                pieces,
                Some((prompt, completion)),
            )),
            Family::Anthropic => anthropic::sse(&anthropic::text_events(
                UPSTREAM_MODEL,
                pieces,
                prompt,
                completion,
            )),
            Family::Ollama => Reply::ndjson(&ollama::text_lines(
                UPSTREAM_MODEL,
                pieces,
                Some((prompt, completion)),
            )),
        }
    }

    /// The stream body as text, to pick a place to cut it.
    fn text_stream_text(self, pieces: &[&str]) -> String {
        match self {
            Family::OpenAiCompatible | Family::HuggingFace => {
                openai::text_chunks(UPSTREAM_MODEL, pieces, Some((5, 5)))
                    .iter()
                    .map(|chunk| format!("data: {chunk}\n\n"))
                    .collect()
            }
            Family::Anthropic => {
                anthropic::sse_body(&anthropic::text_events(UPSTREAM_MODEL, pieces, 5, 5))
            }
            Family::Ollama => ollama::text_lines(UPSTREAM_MODEL, pieces, Some((5, 5)))
                .iter()
                .map(|line| format!("{line}\n"))
                .collect(),
        }
    }

    fn tool_json(self, call_id: &str, name: &str, arguments: &Value) -> Reply {
        let body = match self {
            Family::OpenAiCompatible | Family::HuggingFace => {
                openai::tool_call_completion(UPSTREAM_MODEL, call_id, name, &arguments.to_string())
            }
            Family::Anthropic => {
                anthropic::tool_use_message(UPSTREAM_MODEL, call_id, name, arguments.clone())
            }
            Family::Ollama => ollama::tool_call_chat(UPSTREAM_MODEL, name, arguments.clone()),
        };
        Reply::json(200, body)
    }

    /// A streamed tool call whose arguments arrive in `pieces` (Ollama sends them whole).
    fn tool_stream(self, call_id: &str, name: &str, pieces: &[&str]) -> Reply {
        match self {
            Family::OpenAiCompatible | Family::HuggingFace => Reply::sse(
                &openai::tool_call_chunks(UPSTREAM_MODEL, call_id, name, pieces, Some((20, 10))),
            ),
            Family::Anthropic => anthropic::sse(&anthropic::tool_use_events(
                UPSTREAM_MODEL,
                call_id,
                name,
                pieces,
                20,
                10,
            )),
            Family::Ollama => {
                let arguments: Value = serde_json::from_str(&pieces.concat()).unwrap();
                Reply::ndjson(&ollama::tool_call_lines(UPSTREAM_MODEL, name, arguments))
            }
        }
    }

    /// Whether the family numbers tool calls itself (Ollama sends no ids).
    fn keeps_call_ids(self) -> bool {
        self != Family::Ollama
    }

    /// What the server must have sent: the family's path, auth and body shape.
    fn assert_outbound(self, sent: &Recorded, stream: bool) {
        let body = sent.json();
        let how = format!("{self:?} stream={stream}: {body}");
        match self {
            Family::OpenAiCompatible | Family::HuggingFace => {
                let key = if self == Family::HuggingFace {
                    HF_KEY
                } else {
                    TOGETHER_KEY
                };
                assert_eq!(sent.path, "/v1/chat/completions", "{how}");
                assert_eq!(
                    sent.header("authorization"),
                    Some(format!("Bearer {key}")),
                    "{how}"
                );
                assert_eq!(body["model"], UPSTREAM_MODEL, "{how}");
                assert_eq!(body["messages"][0]["role"], "system", "{how}");
                assert_eq!(body["messages"][1]["content"], "say hello", "{how}");
                assert_eq!(body["max_tokens"], 200, "{how}");
                if stream {
                    assert_eq!(body["stream"], true, "{how}");
                    assert_eq!(body["stream_options"]["include_usage"], true, "{how}");
                }
            }
            Family::Anthropic => {
                assert_eq!(sent.path, "/v1/messages", "{how}");
                assert_eq!(sent.header("x-api-key").as_deref(), Some(ANTHROPIC_KEY));
                assert_eq!(
                    sent.header("anthropic-version").as_deref(),
                    Some("2023-06-01")
                );
                assert_eq!(sent.header("authorization"), None, "{how}");
                assert_eq!(body["model"], UPSTREAM_MODEL, "{how}");
                // The system prompt is lifted out of the messages.
                assert_eq!(body["system"], "be brief", "{how}");
                let messages = body["messages"].as_array().unwrap();
                assert_eq!(messages.len(), 1, "{how}");
                assert_eq!(messages[0]["role"], "user", "{how}");
                assert_eq!(messages[0]["content"][0]["text"], "say hello", "{how}");
                assert_eq!(body["max_tokens"], 200, "{how}");
                assert_eq!(body.get("stream").is_some(), stream, "{how}");
            }
            Family::Ollama => {
                assert_eq!(sent.path, "/api/chat", "{how}");
                // A local provider without a key: nothing to authenticate with.
                assert_eq!(sent.header("authorization"), None, "{how}");
                assert_eq!(body["model"], UPSTREAM_MODEL, "{how}");
                assert_eq!(body["stream"], stream, "{how}");
                assert_eq!(body["messages"][0]["role"], "system", "{how}");
                assert_eq!(body["options"]["num_predict"], 200, "{how}");
            }
        }
    }

    /// What the server must have sent for the `get_weather` tool.
    fn assert_outbound_tool(self, sent: &Recorded) {
        let body = sent.json();
        let how = format!("{self:?}: {body}");
        let tool = &body["tools"][0];
        match self {
            Family::Anthropic => {
                assert_eq!(tool["name"], "get_weather", "{how}");
                assert_eq!(tool["input_schema"]["required"][0], "city", "{how}");
            }
            _ => {
                assert_eq!(tool["type"], "function", "{how}");
                assert_eq!(tool["function"]["name"], "get_weather", "{how}");
                assert_eq!(
                    tool["function"]["parameters"]["required"][0], "city",
                    "{how}"
                );
            }
        }
    }
}

/// The server with one provider per family, each in front of its own fake upstream.
struct Setup {
    server: RunningServer,
    upstreams: BTreeMap<&'static str, FakeUpstream>,
}

impl Setup {
    async fn start() -> Setup {
        let mut upstreams = BTreeMap::new();
        for name in ["compat", "anthropic", "ollama", "huggingface", "openai"] {
            upstreams.insert(name, FakeUpstream::start().await);
        }
        let url = |name: &str| upstreams[name].url();
        let env = Env::from_pairs([
            ("COMPAT_URL", url("compat")),
            ("ANTHROPIC_URL", url("anthropic")),
            ("OLLAMA_URL", url("ollama")),
            ("HF_URL", url("huggingface")),
            ("OPENAI_URL", url("openai")),
            ("TOGETHER_KEY", TOGETHER_KEY.to_owned()),
            ("ANTHROPIC_KEY", ANTHROPIC_KEY.to_owned()),
            ("HF_KEY", HF_KEY.to_owned()),
            ("OPENAI_KEY", OPENAI_KEY.to_owned()),
        ]);
        // Distinct model names and no retries: every request makes exactly one upstream call.
        let yaml = r#"
providers:
  - { name: compat, kind: openai, api_base: "${COMPAT_URL}/v1", api_key: os.environ/TOGETHER_KEY, timeout_ms: 10000 }
  - { name: anthropic, kind: anthropic, api_base: "${ANTHROPIC_URL}", api_key: os.environ/ANTHROPIC_KEY, timeout_ms: 10000 }
  - { name: ollama, kind: ollama, api_base: "${OLLAMA_URL}", timeout_ms: 10000 }
  - { name: huggingface, kind: huggingface, api_base: "${HF_URL}/v1", api_key: os.environ/HF_KEY, timeout_ms: 10000 }
  - { name: openai, kind: openai, api_base: "${OPENAI_URL}/v1", api_key: os.environ/OPENAI_KEY, timeout_ms: 10000 }
models:
  - { name: compat-model, provider: compat, upstream_model: up-model, cost_per_1k: 0.001 }
  - { name: claude, provider: anthropic, upstream_model: up-model, cost_per_1k: 0.003 }
  - { name: llama-local, provider: ollama, upstream_model: up-model, free: true }
  - { name: hf-model, provider: huggingface, upstream_model: up-model, cost_per_1k: 0.0004 }
  - { name: reasoner, provider: openai, upstream_model: o3-mini, cost_per_1k: 0.0011 }
routing: { num_retries: 0, cooldown_after_failures: 0 }
"#;
        let server = start(yaml_config(yaml, &env)).await;
        Setup { server, upstreams }
    }

    fn upstream(&self, family: Family) -> &FakeUpstream {
        let name = match family {
            Family::OpenAiCompatible => "compat",
            Family::Anthropic => "anthropic",
            Family::Ollama => "ollama",
            Family::HuggingFace => "huggingface",
        };
        &self.upstreams[name]
    }

    fn client(&self) -> Client<OpenAIConfig> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::with_config(
            OpenAIConfig::new()
                .with_api_base(format!("{}/v1", self.server.url()))
                .with_api_key(MASTER_KEY),
        )
    }

    async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

fn request(model: &str, stream: bool, tools: bool) -> CreateChatCompletionRequest {
    let mut body = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "say hello"}
        ],
        "max_tokens": 200
    });
    if stream {
        body["stream"] = json!(true);
    }
    if tools {
        body["tools"] = json!([{
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"]
                }
            }
        }]);
    }
    serde_json::from_value(body).unwrap()
}

/// Everything a client reassembles from a stream.
#[derive(Debug, Default)]
struct Streamed {
    text: String,
    finish_reasons: Vec<FinishReason>,
    /// Tool calls by index: id, name and the concatenated argument pieces.
    calls: BTreeMap<u32, (String, String, String)>,
    usage: Option<CompletionUsage>,
    error: Option<OpenAIError>,
}

async fn stream(setup: &Setup, request: CreateChatCompletionRequest) -> Streamed {
    let mut stream = setup.client().chat().create_stream(request).await.unwrap();
    let mut out = Streamed::default();
    while let Some(item) = stream.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(error) => {
                out.error = Some(error);
                break;
            }
        };
        if let Some(usage) = chunk.usage {
            out.usage = Some(usage);
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content {
                out.text.push_str(&text);
            }
            out.finish_reasons.extend(choice.finish_reason);
            for call in choice.delta.tool_calls.unwrap_or_default() {
                let entry = out.calls.entry(call.index).or_default();
                entry.0.push_str(call.id.as_deref().unwrap_or_default());
                if let Some(function) = call.function {
                    entry
                        .1
                        .push_str(function.name.as_deref().unwrap_or_default());
                    entry
                        .2
                        .push_str(function.arguments.as_deref().unwrap_or_default());
                }
            }
        }
    }
    out
}

fn usage_of(response: &CreateChatCompletionResponse) -> (u32, u32, u32) {
    let usage = response.usage.as_ref().expect("usage");
    (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
}

#[tokio::test]
async fn json_answers_and_usage_from_every_family() {
    let setup = Setup::start().await;
    for family in FAMILIES {
        let text = format!("Hello from {family:?}");
        setup
            .upstream(family)
            .push(family.text_json(&text, (12, 3)));

        let response = setup
            .client()
            .chat()
            .create(request(family.model(), false, false))
            .await
            .unwrap_or_else(|e| panic!("{family:?}: {e}"));

        let choice = &response.choices[0];
        assert_eq!(
            choice.message.content.as_deref(),
            Some(text.as_str()),
            "{family:?}"
        );
        assert_eq!(choice.finish_reason, Some(FinishReason::Stop), "{family:?}");
        assert_eq!(usage_of(&response), (12, 3, 15), "{family:?}");
        let sent = setup.upstream(family).requests();
        assert_eq!(sent.len(), 1, "{family:?}");
        family.assert_outbound(&sent[0], false);
    }
    setup.stop().await;
}

#[tokio::test]
async fn streamed_answers_and_usage_from_every_family_under_hostile_chunking() {
    let setup = Setup::start().await;
    for family in FAMILIES {
        // Split every 7 bytes: events, lines and the two-byte `ö` all land across reads.
        setup.upstream(family).push(
            family
                .text_stream_body(&["Hel", "lo", " wörld"], (9, 4))
                .chunked(Chunking::Bytes(7)),
        );

        let got = stream(&setup, request(family.model(), true, false)).await;

        assert!(got.error.is_none(), "{family:?}: {:?}", got.error);
        assert_eq!(got.text, "Hello wörld", "{family:?}");
        assert_eq!(got.finish_reasons, [FinishReason::Stop], "{family:?}");
        let usage = got.usage.unwrap_or_else(|| panic!("{family:?}: no usage"));
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (9, 4),
            "{family:?}"
        );
        family.assert_outbound(&setup.upstream(family).last_request().unwrap(), true);
    }
    setup.stop().await;
}

#[tokio::test]
async fn tool_calls_as_json_from_every_family() {
    let setup = Setup::start().await;
    let arguments = json!({"city": "Zürich", "unit": "celsius"});
    for family in FAMILIES {
        setup
            .upstream(family)
            .push(family.tool_json("call_weather_1", "get_weather", &arguments));

        let response = setup
            .client()
            .chat()
            .create(request(family.model(), false, true))
            .await
            .unwrap_or_else(|e| panic!("{family:?}: {e}"));

        let choice = &response.choices[0];
        assert_eq!(
            choice.finish_reason,
            Some(FinishReason::ToolCalls),
            "{family:?}"
        );
        let calls = choice.message.tool_calls.as_ref().expect("tool calls");
        assert_eq!(calls.len(), 1, "{family:?}");
        let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
            panic!("{family:?}: not a function call: {calls:?}");
        };
        assert_eq!(call.function.name, "get_weather", "{family:?}");
        let sent_arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(sent_arguments, arguments, "{family:?}");
        if family.keeps_call_ids() {
            assert_eq!(call.id, "call_weather_1", "{family:?}");
        } else {
            assert!(!call.id.is_empty(), "{family:?}: a call needs an id");
        }
        assert_eq!(usage_of(&response), (20, 10, 30), "{family:?}");
        family.assert_outbound_tool(&setup.upstream(family).last_request().unwrap());
    }
    setup.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_reassemble_their_arguments_from_every_family() {
    let setup = Setup::start().await;
    let pieces = ["{\"ci", "ty\": \"Zü", "rich\", \"unit\"", ": \"celsius\"}"];
    for family in FAMILIES {
        setup.upstream(family).push(
            family
                .tool_stream("call_weather_2", "get_weather", &pieces)
                .chunked(Chunking::Bytes(5)),
        );

        let got = stream(&setup, request(family.model(), true, true)).await;

        assert!(got.error.is_none(), "{family:?}: {:?}", got.error);
        assert_eq!(got.finish_reasons, [FinishReason::ToolCalls], "{family:?}");
        assert_eq!(got.calls.len(), 1, "{family:?}: {:?}", got.calls);
        let (id, name, arguments) = &got.calls[&0];
        assert_eq!(name, "get_weather", "{family:?}");
        let arguments: Value = serde_json::from_str(arguments)
            .unwrap_or_else(|e| panic!("{family:?}: {arguments:?} is not JSON: {e}"));
        assert_eq!(
            arguments,
            json!({"city": "Zürich", "unit": "celsius"}),
            "{family:?}"
        );
        if family.keeps_call_ids() {
            assert_eq!(id, "call_weather_2", "{family:?}");
        } else {
            assert!(!id.is_empty(), "{family:?}: a call needs an id");
        }
        let usage = got.usage.unwrap_or_else(|| panic!("{family:?}: no usage"));
        assert_eq!(
            (usage.prompt_tokens, usage.completion_tokens),
            (20, 10),
            "{family:?}"
        );
        family.assert_outbound_tool(&setup.upstream(family).last_request().unwrap());
    }
    setup.stop().await;
}

/// The `data:` payloads of a raw SSE body.
fn sse_payloads(body: &str) -> Vec<Value> {
    sse_data(body)
        .into_iter()
        .map(|data| {
            if data == "[DONE]" {
                Value::String(data)
            } else {
                serde_json::from_str(&data).unwrap_or_else(|e| panic!("{data:?}: {e}"))
            }
        })
        .collect()
}

#[tokio::test]
async fn a_truncated_upstream_stream_reaches_the_client_as_an_error_event() {
    let setup = Setup::start().await;
    let pieces = ["Hel", "lo", " CUT-HERE and the rest"];
    for family in FAMILIES {
        for (how, aborted) in [("connection cut", true), ("clean end", false)] {
            // End the body inside the third piece's event: before any finish reason.
            let whole = family.text_stream_text(&pieces);
            let cut = whole.find("CUT-HERE").unwrap() + 3;
            let reply = family.text_stream_body(&pieces, (5, 5));
            let reply = if aborted {
                reply.cut_after(cut)
            } else {
                reply.body(whole[..cut].to_owned())
            };
            setup
                .upstream(family)
                .push(reply.chunked(Chunking::Bytes(11)));

            let ask = serde_json::to_value(request(family.model(), true, false)).unwrap();
            let response = chat(&setup.server, ask).await;
            assert_eq!(response.status(), 200, "{family:?} {how}");
            let body = response.text().await.unwrap();
            let events = sse_payloads(&body);

            let (last, before) = events.split_last().unwrap();
            assert_eq!(
                last["error"]["type"], "upstream_error",
                "{family:?} {how}: {body}"
            );
            assert!(
                !events.iter().any(|e| e == "[DONE]"),
                "{family:?} {how}: {body}"
            );
            let finishes: Vec<Value> = before
                .iter()
                .flat_map(|chunk| chunk["choices"].as_array().cloned().unwrap_or_default())
                .map(|choice| choice["finish_reason"].clone())
                .filter(|reason| !reason.is_null())
                .collect();
            assert!(
                finishes.is_empty(),
                "{family:?} {how}: made-up finish {finishes:?} in {body}"
            );
            let text: String = before
                .iter()
                .filter_map(|chunk| chunk["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "Hello", "{family:?} {how}: {body}");
        }
    }
    setup.stop().await;
}

/// Same protocol both ways: an OpenAI-compatible upstream's chunks reach the client byte for
/// byte (spacing, key order, vendor fields), not decoded and encoded again; only the usage,
/// which the gateway prices, comes last in a chunk of its own.
#[tokio::test]
async fn openai_compatible_chunks_are_forwarded_as_the_upstream_wrote_them() {
    let setup = Setup::start().await;
    let first = r#"{"id":"chatcmpl-raw",  "object":"chat.completion.chunk","created":7,"model":"up-model","system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}],"x_vendor":{"z":1,"a":2},"usage":null}"#;
    let second = r#"{"id":"chatcmpl-raw","object":"chat.completion.chunk","created":7,"model":"up-model","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}],"usage":null}"#;
    let usage = r#"{"id":"chatcmpl-raw","object":"chat.completion.chunk","created":7,"model":"up-model","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
    let body = format!("data: {first}\n\ndata: {second}\n\ndata: {usage}\n\ndata: [DONE]\n\n");
    setup
        .upstream(Family::OpenAiCompatible)
        .push(Reply::sse_raw(body).chunked(Chunking::Bytes(7)));

    let ask = serde_json::to_value(request("compat-model", true, false)).unwrap();
    let response = chat(&setup.server, ask).await;
    assert_eq!(response.status(), 200);
    let got = response.text().await.unwrap();
    assert!(
        got.starts_with(&format!("data: {first}\n\ndata: {second}\n\n")),
        "{got}"
    );
    let events = sse_payloads(&got);
    assert_eq!(events.len(), 4, "{got}");
    assert_eq!(events[2]["usage"]["total_tokens"], 7, "{got}");
    assert!(events[2]["llmgate"]["cost_micros"].is_i64(), "{got}");
    assert_eq!(events[3], "[DONE]");
    setup.stop().await;
}

#[tokio::test]
async fn async_openai_sees_a_truncated_stream_fail_without_a_stop() {
    let setup = Setup::start().await;
    let pieces = ["Hel", "lo", " CUT-HERE and the rest"];
    for family in FAMILIES {
        let whole = family.text_stream_text(&pieces);
        let cut = whole.find("CUT-HERE").unwrap() + 3;
        setup
            .upstream(family)
            .push(family.text_stream_body(&pieces, (5, 5)).cut_after(cut));

        let got = stream(&setup, request(family.model(), true, false)).await;

        assert_eq!(got.text, "Hello", "{family:?}");
        assert!(got.finish_reasons.is_empty(), "{family:?}: {got:?}");
        // The error event is not a chunk: the client's stream fails on it, with our error.
        match got.error {
            Some(OpenAIError::JSONDeserialize(_, content)) => {
                let event: Value = serde_json::from_str(&content).unwrap();
                assert_eq!(event["error"]["type"], "upstream_error", "{family:?}");
            }
            other => panic!("{family:?}: expected the error event, got {other:?}"),
        }
    }
    setup.stop().await;
}

#[tokio::test]
async fn openai_reasoning_models_get_max_completion_tokens_through_the_server() {
    let setup = Setup::start().await;
    let upstream = &setup.upstreams["openai"];
    upstream.push(Reply::json(
        200,
        openai::completion("o3-mini", "thought about it", 7, 30),
    ));
    let mut ask = request("reasoner", false, false);
    ask.temperature = Some(0.3);
    ask.top_p = Some(0.9);

    let response = setup.client().chat().create(ask).await.unwrap();

    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("thought about it")
    );
    let sent = upstream.last_request().unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}"))
    );
    let body = sent.json();
    assert_eq!(body["model"], "o3-mini", "{body}");
    assert_eq!(body["max_completion_tokens"], 200, "{body}");
    for refused in ["max_tokens", "temperature", "top_p"] {
        assert!(body.get(refused).is_none(), "{refused} was sent: {body}");
    }
    setup.stop().await;
}

#[tokio::test]
async fn upstream_errors_from_every_family_keep_status_meaning_and_hide_keys() {
    let setup = Setup::start().await;
    for family in FAMILIES {
        // Ollama gets no key: there is none to echo.
        let key = match family {
            Family::OpenAiCompatible => TOGETHER_KEY,
            Family::Anthropic => ANTHROPIC_KEY,
            Family::HuggingFace => HF_KEY,
            Family::Ollama => "",
        };
        let message = format!("slow down, {key}");
        let body = match family {
            Family::OpenAiCompatible | Family::HuggingFace => {
                openai::error(&message, "rate_limit_exceeded", None)
            }
            Family::Anthropic => anthropic::error("rate_limit_error", &message),
            Family::Ollama => ollama::error(&message),
        };
        setup
            .upstream(family)
            .push(Reply::json(429, body).header("retry-after", "7"));

        let response = chat(
            &setup.server,
            serde_json::to_value(request(family.model(), false, false)).unwrap(),
        )
        .await;

        let error = assert_error(response, 503, "upstream_error").await;
        let text = error["message"].as_str().unwrap();
        assert!(text.contains("slow down"), "{family:?}: {error}");
        assert!(
            key.is_empty() || !text.contains(key),
            "{family:?}: the key leaked: {error}"
        );
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_local_provider_without_a_key_is_called_without_one() {
    let upstream = FakeUpstream::start().await;
    let env = Env::from_pairs([("GPU_URL", upstream.url())]);
    let yaml = r#"
providers:
  - { name: gpu-box, kind: openai, api_base: "${GPU_URL}/v1", local: true }
models:
  - { name: qwen-local, provider: gpu-box, upstream_model: qwen2.5, free: true }
"#;
    let server = start(yaml_config(yaml, &env)).await;
    upstream.push(Reply::json(
        200,
        openai::completion("qwen2.5", "local hello", 4, 2),
    ));

    let response = chat(
        &server,
        json!({"model": "qwen-local", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "local hello");
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.json()["model"], "qwen2.5");
    server.shutdown().await.unwrap();
}
