#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `POST /v1/messages`, Anthropic's Messages API, translated onto an OpenAI-compatible fake
//! upstream: the stream's event sequence under hostile chunking (text, tool calls with split
//! arguments, a cut stream), whole answers, errors in Anthropic's shape with their statuses, and
//! the official `anthropic` Python SDK driving the running server.

mod support;

use llmgate_server::config::Env;
use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::money::Gateway;
use support::{MASTER_KEY, client, create_user, yaml_config};

struct Setup {
    gateway: Gateway,
    /// OpenAI-compatible, behind model `gpt`.
    upstream: FakeUpstream,
    /// Anthropic, behind model `claude`.
    claude: FakeUpstream,
}

impl Setup {
    async fn start() -> Setup {
        let (upstream, claude) = (FakeUpstream::start().await, FakeUpstream::start().await);
        let env = Env::from_pairs([("UP_URL", upstream.url()), ("CLAUDE_URL", claude.url())]);
        let yaml = r#"
storage: { database_url: "sqlite::memory:" }
tiers:
  starter: { markup: 0, byok: false, monthly_credits: 0, default_power_level: balanced }
  limited: { markup: 0, byok: false, monthly_credits: 1000, default_power_level: balanced, rpm: 1 }
providers:
  - { name: compat, kind: openai, api_base: "${UP_URL}/v1", api_key: sk-up-0000, timeout_ms: 10000 }
  - { name: anthropic, kind: anthropic, api_base: "${CLAUDE_URL}", api_key: sk-ant-0000, timeout_ms: 10000 }
models:
  - { name: gpt, provider: compat, upstream_model: up-model, cost_per_1k: 0.001 }
  - name: claude
    provider: anthropic
    upstream_model: claude-up
    input_cost_per_1k: 0.003
    cache_read_cost_per_1k: 0.0003
    cache_write_cost_per_1k: 0.00375
    output_cost_per_1k: 0.015
routing: { num_retries: 0, cooldown_after_failures: 0 }
"#;
        let gateway = Gateway::start(yaml_config(yaml, &env)).await;
        Setup {
            gateway,
            upstream,
            claude,
        }
    }

    async fn post(&self, key: &str, body: Value) -> reqwest::Response {
        self.post_to("/v1/messages", key, body).await
    }

    async fn post_to(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", self.url()))
            .header("x-api-key", key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A user of tier `starter` with 100 credits; returns the key.
    async fn user_with_credits(&self, user_id: &str) -> String {
        let key = self.gateway.user(user_id, "starter").await;
        self.gateway.add_credits(user_id, json!(100)).await;
        key
    }

    fn url(&self) -> String {
        self.gateway.url("")
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}

fn ask(stream: bool) -> Value {
    json!({"model": "gpt", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "hi"}]})
}

/// The events of a Messages stream as (name, data), checking that each `event:` name matches
/// its data's `type`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an event: {event:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            (name.to_owned(), data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The text the `text_delta`s add up to.
fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str())
        .collect()
}

/// The events of an answer of one content block that grew three times.
const ONE_BLOCK_OF_THREE_DELTAS: [&str; 9] = [
    "message_start",
    "ping",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
];

const CHUNKINGS: [Chunking; 3] = [Chunking::Bytes(1), Chunking::Bytes(7), Chunking::Whole];

#[tokio::test]
async fn a_text_stream_is_the_documented_event_sequence_under_hostile_chunking() {
    let setup = Setup::start().await;
    for chunking in CHUNKINGS {
        let chunks = openai::text_chunks("up-model", &["Hel", "lo ", "wörld"], Some((12, 3)));
        setup.upstream.push(Reply::sse(&chunks).chunked(chunking));
        let response = setup.post(MASTER_KEY, ask(true)).await;
        assert_eq!(response.status(), 200, "{chunking:?}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        assert_eq!(response.headers()["x-llmgate-provider"], "compat");
        let body = response.text().await.unwrap();
        let events = events(&body);
        assert_eq!(
            names(&events),
            ONE_BLOCK_OF_THREE_DELTAS,
            "{chunking:?}: {body}"
        );
        assert_eq!(streamed_text(&events), "Hello wörld", "{chunking:?}");
        assert_eq!(events[0].1["message"]["role"], "assistant");
        assert_eq!(
            events[2].1["content_block"],
            json!({"type": "text", "text": ""})
        );
        let delta = &events[7].1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn");
        assert_eq!(delta["usage"]["input_tokens"], 12);
        assert_eq!(delta["usage"]["output_tokens"], 3);
        // The master key is never charged, but the charge is reported.
        assert_eq!(delta["llmgate"]["cost_micros"], 0, "{body}");
    }
    // The upstream was asked in OpenAI's shape, for usage in the stream.
    let sent = setup.upstream.last_request().unwrap().json();
    assert_eq!(sent["model"], "up-model");
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(sent["stream_options"]["include_usage"], true);
    setup.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_reassembles_its_split_arguments() {
    let setup = Setup::start().await;
    for chunking in CHUNKINGS {
        let chunks = openai::tool_call_chunks(
            "up-model",
            "call_7",
            "weather",
            &["{\"ci", "ty\": \"Os", "lo\"}"],
            Some((20, 9)),
        );
        setup.upstream.push(Reply::sse(&chunks).chunked(chunking));
        let mut body = ask(true);
        body["tools"] = json!([{"name": "weather", "input_schema": {"type": "object"}}]);
        body["tool_choice"] = json!({"type": "any"});
        let response = setup.post(MASTER_KEY, body).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events = events(&body);
        assert_eq!(
            names(&events),
            ONE_BLOCK_OF_THREE_DELTAS,
            "{chunking:?}: {body}"
        );
        assert_eq!(
            events[2].1["content_block"],
            json!({"type": "tool_use", "id": "call_7", "name": "weather", "input": {}})
        );
        let json: String = events
            .iter()
            .filter_map(|(_, e)| e["delta"]["partial_json"].as_str())
            .collect();
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"city": "Oslo"})
        );
        assert_eq!(events[7].1["delta"]["stop_reason"], "tool_use");
    }
    let sent = setup.upstream.last_request().unwrap().json();
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    setup.stop().await;
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_and_no_message_stop() {
    let setup = Setup::start().await;
    for chunking in [Chunking::Bytes(1), Chunking::Bytes(7)] {
        let chunks = openai::text_chunks("up-model", &["Hel", "lo", " CUT-HERE more"], None);
        let whole: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        let cut = whole.find("CUT-HERE").unwrap() + 3;
        setup
            .upstream
            .push(Reply::sse(&chunks).cut_after(cut).chunked(chunking));
        let response = setup.post(MASTER_KEY, ask(true)).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events = events(&body);
        let (last, before) = events.split_last().unwrap();
        assert_eq!(last.0, "error", "{body}");
        assert_eq!(last.1["error"]["type"], "api_error", "{body}");
        assert!(
            !names(before)
                .iter()
                .any(|n| *n == "message_stop" || *n == "message_delta"),
            "{body}"
        );
        assert_eq!(streamed_text(before), "Hello", "{chunking:?}");
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_whole_answer_is_a_message_with_anthropic_usage() {
    let setup = Setup::start().await;
    let mut answer =
        openai::tool_call_completion("up-model", "call_1", "weather", "{\"city\":\"Oslo\"}");
    answer["usage"] = openai::usage_with_details(300, 200, 40, 0);
    setup.upstream.push(Reply::json(200, answer));
    let mut body = ask(false);
    body["system"] = json!("be brief");
    body["messages"] = json!([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_0", "name": "weather", "input": {"city": "Rome"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "sun"}]}
    ]);
    let response = setup
        .post_to("/anthropic/v1/messages", MASTER_KEY, body)
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-llmgate-cost-micros"));
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"],
        json!([{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}])
    );
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 100, "cache_read_input_tokens": 200,
               "cache_creation_input_tokens": 0, "output_tokens": 40})
    );
    let sent = setup.upstream.last_request().unwrap().json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "toolu_0", "type": "function",
              "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_0", "content": "sun"}
        ])
    );
    setup.stop().await;
}

async fn assert_anthropic_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn errors_are_in_anthropic_shape_with_their_statuses() {
    let setup = Setup::start().await;
    let base = setup.url();
    assert_anthropic_error(
        setup.post("wrong-key", ask(false)).await,
        401,
        "authentication_error",
    )
    .await;
    let mut unknown = ask(false);
    unknown["model"] = json!("no-such-model");
    assert_anthropic_error(
        setup.post(MASTER_KEY, unknown).await,
        404,
        "not_found_error",
    )
    .await;
    assert_anthropic_error(
        setup
            .post(MASTER_KEY, json!({"model": "gpt", "messages": []}))
            .await,
        400,
        "invalid_request_error",
    )
    .await;

    let broke = create_user(&base, "broke", "starter").await;
    assert_anthropic_error(setup.post(&broke, ask(false)).await, 402, "billing_error").await;

    // The router's own misses under Anthropic's paths are in Anthropic's shape too.
    assert_anthropic_error(
        setup
            .post_to("/v1/messages/batches", MASTER_KEY, ask(false))
            .await,
        404,
        "not_found_error",
    )
    .await;
    let wrong_method = client()
        .get(format!("{base}/anthropic/v1/messages"))
        .header("x-api-key", MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_anthropic_error(wrong_method, 405, "invalid_request_error").await;

    let limited = create_user(&base, "limited", "limited").await;
    setup
        .upstream
        .push(Reply::json(200, openai::completion("up-model", "ok", 1, 1)));
    assert_eq!(setup.post(&limited, ask(false)).await.status(), 200);
    let response = setup.post(&limited, ask(false)).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_anthropic_error(response, 429, "rate_limit_error").await;

    setup
        .upstream
        .push(Reply::json(529, json!({"error": {"message": "busy"}})));
    assert_anthropic_error(
        setup.post(MASTER_KEY, ask(true)).await,
        503,
        "overloaded_error",
    )
    .await;
    setup.stop().await;
}

/// Answers by what was asked: a tool call when tools were sent, else text; streamed or whole.
fn answer_by_request(upstream: &FakeUpstream) {
    upstream.respond_with(|request| {
        let body = request.json();
        let stream = body["stream"] == true;
        match (body.get("tools").is_some(), stream) {
            (true, true) => Reply::sse(&openai::tool_call_chunks(
                "up-model",
                "call_9",
                "weather",
                &["{\"city\"", ": \"Oslo\"}"],
                Some((30, 8)),
            )),
            (true, false) => Reply::json(
                200,
                openai::tool_call_completion(
                    "up-model",
                    "call_9",
                    "weather",
                    "{\"city\": \"Oslo\"}",
                ),
            ),
            (false, true) => Reply::sse(&openai::text_chunks(
                "up-model",
                &["Hi ", "there"],
                Some((10, 2)),
            )),
            (false, false) => Reply::json(200, openai::completion("up-model", "Hi there", 10, 2)),
        }
    });
}

const SDK_SCRIPT: &str = r#"
import json, os, anthropic
base, key = os.environ["BASE_URL"], os.environ["KEY"]
client = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)
ask = dict(model=os.environ["MODEL"], max_tokens=100, messages=[{"role": "user", "content": "hi"}])
tools = [{"name": "weather", "description": "Weather now",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]

m = client.messages.create(**ask)
print("create", m.content[0].text, m.stop_reason, m.usage.input_tokens, m.usage.output_tokens)

with client.messages.stream(**ask) as stream:
    text = "".join(stream.text_stream)
    final = stream.get_final_message()
print("stream", text, final.stop_reason, final.usage.output_tokens)

with client.messages.stream(tools=tools, **ask) as stream:
    final = stream.get_final_message()
call = final.content[-1]
print("tools", call.type, call.id, call.name, json.dumps(call.input), final.stop_reason)

def status_of(key, model):
    try:
        anthropic.Anthropic(base_url=base, api_key=key, max_retries=0).messages.create(
            **dict(ask, model=model))
        return "no error"
    except anthropic.APIStatusError as e:
        return f"{type(e).__name__} {e.status_code} {e.body['error']['type']}"

model = os.environ["MODEL"]
print("count", client.messages.count_tokens(model=model, messages=ask["messages"]).input_tokens)
print("errors", status_of("wrong-key", model), "|", status_of(key, "nope"), "|",
      status_of(os.environ["BROKE_KEY"], model), "|", status_of(os.environ["LIMITED_KEY"], model),
      "|", status_of(os.environ["LIMITED_KEY"], model))
"#;

/// The same answers from the Anthropic fake, in its own protocol.
fn claude_answers_by_request(upstream: &FakeUpstream) {
    use llmgate_testkit::anthropic;
    upstream.respond_with(|request| {
        if request.path.ends_with("/count_tokens") {
            return Reply::json(200, json!({"input_tokens": 1}));
        }
        let body = request.json();
        let stream = body["stream"] == true;
        match (body.get("tools").is_some(), stream) {
            (true, true) => anthropic::sse(&anthropic::tool_use_events(
                "claude-up",
                "call_9",
                "weather",
                &["{\"city\"", ": \"Oslo\"}"],
                30,
                8,
            )),
            (true, false) => Reply::json(
                200,
                anthropic::tool_use_message(
                    "claude-up",
                    "call_9",
                    "weather",
                    json!({"city": "Oslo"}),
                ),
            ),
            (false, true) => anthropic::sse(&anthropic::text_events(
                "claude-up",
                &["Hi ", "there"],
                10,
                2,
            )),
            (false, false) => Reply::json(200, anthropic::message("claude-up", "Hi there", 10, 2)),
        }
    });
}

/// The SDK against both upstream families: translated onto chat completions (`gpt`) and
/// passed through to Anthropic (`claude`).
#[tokio::test]
async fn the_anthropic_python_sdk_creates_streams_and_raises_typed_errors() {
    if !support::python::has("anthropic") {
        return;
    }
    let setup = Setup::start().await;
    answer_by_request(&setup.upstream);
    claude_answers_by_request(&setup.claude);
    let base = setup.url();
    for model in ["gpt", "claude"] {
        let broke = create_user(&base, &format!("broke-{model}"), "starter").await;
        let limited = create_user(&base, &format!("limited-{model}"), "limited").await;
        let env = vec![
            ("BASE_URL", base.clone()),
            ("KEY", MASTER_KEY.to_owned()),
            ("MODEL", model.to_owned()),
            ("BROKE_KEY", broke),
            ("LIMITED_KEY", limited),
        ];
        let stdout = support::python::run_with(SDK_SCRIPT, env).await;
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            [
                "create Hi there end_turn 10 2",
                "stream Hi there end_turn 2",
                "tools tool_use call_9 weather {\"city\": \"Oslo\"} tool_use",
                "count 1",
                "errors AuthenticationError 401 authentication_error | NotFoundError 404 not_found_error | \
                 PaymentRequiredError 402 billing_error | no error | RateLimitError 429 rate_limit_error",
            ],
            "{model}"
        );
    }
    setup.stop().await;
}

#[tokio::test]
async fn count_tokens_is_free_asks_anthropic_and_estimates_elsewhere() {
    let setup = Setup::start().await;
    let key = setup.user_with_credits("ann").await;
    let before = setup.gateway.balance(&key).await;
    let ask = |model: &str| {
        json!({"model": model, "system": "be brief",
               "messages": [{"role": "user", "content": "hello world"}],
               "context_management": {"edits": []}})
    };
    for path in [
        "/v1/messages/count_tokens",
        "/anthropic/v1/messages/count_tokens",
    ] {
        // The tokenizer's count: "be brief" and "hello world" are 2 tokens each.
        let response = setup.post_to(path, &key, ask("gpt")).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"input_tokens": 4}), "{path}");

        setup
            .claude
            .push(Reply::json(200, json!({"input_tokens": 42})));
        let response = setup.post_to(path, &key, ask("claude")).await;
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"input_tokens": 42}), "{path}");
        let sent = setup.claude.last_request().unwrap();
        assert_eq!(sent.path, "/v1/messages/count_tokens");
        let mut expected = ask("claude-up");
        expected["model"] = json!("claude-up");
        assert_eq!(sent.json(), expected);
    }
    // An upstream that cannot count leaves it to the estimate.
    setup
        .claude
        .push(Reply::json(500, json!({"type": "error"})));
    let response = setup
        .post_to("/v1/messages/count_tokens", &key, ask("claude"))
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"input_tokens": 4}));

    let unknown = setup
        .post_to(
            "/v1/messages/count_tokens",
            &key,
            json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_anthropic_error(unknown, 404, "not_found_error").await;
    assert_eq!(setup.gateway.balance(&key).await, before);
    assert_eq!(setup.upstream.request_count(), 0);
    setup.stop().await;
}

/// What Claude Code sends besides the basics: fields this gateway has no type for.
fn claude_code_ask(stream: bool) -> Value {
    json!({
        "model": "claude", "max_tokens": 32000, "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}],
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "metadata": {"user_id": "{\"session\":\"s-1\"}"}
    })
}

/// Anthropic's report with cache reads and writes.
const CACHED: (u64, u64, u64, u64) = (100, 2000, 1000, 500);

#[tokio::test]
async fn an_anthropic_upstream_gets_the_body_as_sent_and_its_answer_comes_back_as_written() {
    let setup = Setup::start().await;
    let key = setup.user_with_credits("ann").await;
    let (input, read, write, output) = CACHED;
    let mut answer = llmgate_testkit::anthropic::message("claude-up", "Done.", 0, 0);
    answer["usage"] = llmgate_testkit::anthropic::cache_usage(input, read, write, output);
    answer["container"] = json!({"id": "c-1"}); // a field the core types do not have
    let written = answer.to_string();
    setup
        .claude
        .push(Reply::json(200, answer.clone()).body(written.clone()));

    let response = client()
        .post(format!("{}/v1/messages", setup.url()))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27,oauth")
        .json(&claude_code_ask(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let charged: i64 = response.headers()["x-llmgate-cost-micros"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(response.text().await.unwrap(), written);

    let sent = setup.claude.last_request().unwrap();
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(
        sent.header("anthropic-beta").as_deref(),
        Some("context-management-2025-06-27,oauth")
    );
    assert_eq!(sent.header("x-api-key").as_deref(), Some("sk-ant-0000"));
    let mut expected = claude_code_ask(false);
    expected["model"] = json!("claude-up");
    let body = sent.json();
    expected["max_tokens"] = body["max_tokens"].clone();
    assert!(body["max_tokens"].as_u64().unwrap() <= 32000);
    assert_eq!(body, expected);

    // The charge reads every class: the same answer through chat completions costs the same.
    let mut again = llmgate_testkit::anthropic::message("claude-up", "Done.", 0, 0);
    again["usage"] = llmgate_testkit::anthropic::cache_usage(input, read, write, output);
    setup.claude.push(Reply::json(200, again));
    let response = client()
        .post(format!("{}/v1/chat/completions", setup.url()))
        .bearer_auth(&key)
        .json(&json!({"model": "claude", "max_tokens": 32000,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["x-llmgate-cost-micros"],
        charged.to_string().as_str()
    );
    assert!(charged > 0);
    setup.stop().await;
}

#[tokio::test]
async fn an_anthropic_stream_is_forwarded_byte_for_byte_and_charged_by_its_usage() {
    let setup = Setup::start().await;
    let key = setup.user_with_credits("ann").await;
    let (input, read, write, output) = CACHED;
    // The charge of this usage, from a whole answer.
    let mut whole = llmgate_testkit::anthropic::message("claude-up", "Done.", 0, 0);
    whole["usage"] = llmgate_testkit::anthropic::cache_usage(input, read, write, output);
    setup.claude.push(Reply::json(200, whole));
    let before = setup.gateway.balance(&key).await;
    assert_eq!(setup.post(&key, claude_code_ask(false)).await.status(), 200);
    let charge = before - setup.gateway.balance(&key).await;
    assert!(charge > 0);

    for chunking in CHUNKINGS {
        let mut events = llmgate_testkit::anthropic::tool_use_events(
            "claude-up",
            "toolu_1",
            "weather",
            &["{\"ci", "ty\": \"Oslo\"}"],
            0,
            output,
        );
        events[0]["message"]["usage"] =
            llmgate_testkit::anthropic::cache_usage(input, read, write, 1);
        events.insert(2, json!({"type": "ping"}));
        let written = llmgate_testkit::anthropic::sse_body(&events);
        setup
            .claude
            .push(llmgate_testkit::anthropic::sse(&events).chunked(chunking));
        let before = setup.gateway.balance(&key).await;
        let response = setup.post(&key, claude_code_ask(true)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), written, "{chunking:?}");
        assert_eq!(
            before - setup.gateway.balance(&key).await,
            charge,
            "{chunking:?}"
        );
        assert_eq!(setup.claude.last_request().unwrap().json()["stream"], true);
    }
    setup.stop().await;
}
