#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `POST /v1/responses`, OpenAI's Responses API, translated onto an OpenAI-compatible fake
//! upstream and an Anthropic fake: the stream's event sequence under hostile chunking (text,
//! tool calls with split arguments, a cut stream), whole answers, hosted tools dropped and
//! namespace tools mapped back, errors in OpenAI's shape with their statuses, and the official
//! `openai` Python SDK driving the running server.

mod support;

use llmgate_server::config::Env;
use llmgate_testkit::{Chunking, FakeUpstream, Reply, anthropic, openai, responses};
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
  - { name: oai, kind: openai, api_base: "${UP_URL}/v1", api_key: sk-up-0000, timeout_ms: 10000, responses_api: true }
models:
  - { name: gpt, provider: compat, upstream_model: up-model, cost_per_1k: 0.001 }
  - { name: native, provider: oai, upstream_model: up-native, cost_per_1k: 0.001 }
  - { name: claude, provider: anthropic, upstream_model: claude-up, cost_per_1k: 0.001 }
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
        client()
            .post(self.gateway.url("/v1/responses"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn stop(self) {
        self.gateway.stop().await;
    }
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "input": "hi", "stream": stream})
}

/// The events of a Responses stream, checking that each `event:` name matches its data's
/// `type` and that `sequence_number` counts from 0 without gaps.
fn events(body: &str) -> Vec<Value> {
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|event| !event.trim().is_empty())
        .map(|event| {
            let (name, data) = event
                .strip_prefix("event: ")
                .and_then(|rest| rest.split_once("\ndata: "))
                .unwrap_or_else(|| panic!("not an event: {event:?}"));
            let data: Value = serde_json::from_str(data).unwrap();
            assert_eq!(data["type"], name, "{event}");
            data
        })
        .collect();
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event["sequence_number"], n as u64, "{body}");
    }
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

fn deltas(events: &[Value], kind: &str) -> String {
    events
        .iter()
        .filter(|e| e["type"] == kind)
        .filter_map(|e| e["delta"].as_str())
        .collect()
}

/// The events of an answer of one message whose text grew three times.
const ONE_MESSAGE_OF_THREE_DELTAS: [&str; 10] = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
];

const CHUNKINGS: [Chunking; 3] = [Chunking::Bytes(1), Chunking::Bytes(7), Chunking::Whole];

#[tokio::test]
async fn a_text_stream_is_the_documented_event_sequence_under_hostile_chunking() {
    let setup = Setup::start().await;
    let key = setup.gateway.user("ann", "starter").await;
    setup.gateway.add_credits("ann", json!(100)).await;
    for chunking in CHUNKINGS {
        let chunks = openai::text_chunks("up-model", &["Hel", "lo ", "wörld"], Some((12, 3)));
        setup.upstream.push(Reply::sse(&chunks).chunked(chunking));
        let before = setup.gateway.balance(&key).await;
        let response = setup.post(&key, ask("gpt", true)).await;
        assert_eq!(response.status(), 200, "{chunking:?}");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let body = response.text().await.unwrap();
        let events = events(&body);
        let mut expected = ONE_MESSAGE_OF_THREE_DELTAS.to_vec();
        expected.push("response.completed");
        assert_eq!(types(&events), expected, "{chunking:?}: {body}");
        assert_eq!(deltas(&events, "response.output_text.delta"), "Hello wörld");
        let done = &events.last().unwrap()["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["model"], "gpt");
        assert_eq!(done["output_text"], "Hello wörld");
        assert_eq!(done["usage"]["input_tokens"], 12);
        assert_eq!(done["usage"]["output_tokens"], 3);
        let cost = done["llmgate"]["cost_micros"].as_i64().unwrap();
        assert!(cost > 0, "{done}");
        assert_eq!(before - setup.gateway.balance(&key).await, cost);
        assert!(done["id"].as_str().unwrap().starts_with("resp_"));
    }
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
        let mut body = ask("gpt", true);
        body["tools"] = json!([{"type": "function", "name": "weather", "strict": true,
                                "parameters": {"type": "object"}}]);
        body["tool_choice"] = json!("required");
        let response = setup.post(MASTER_KEY, body).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events = events(&body);
        assert_eq!(
            types(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed"
            ],
            "{chunking:?}: {body}"
        );
        assert_eq!(events[2]["item"]["type"], "function_call");
        assert_eq!(events[2]["item"]["call_id"], "call_7");
        assert_eq!(events[2]["item"]["name"], "weather");
        let arguments = deltas(&events, "response.function_call_arguments.delta");
        assert_eq!(
            serde_json::from_str::<Value>(&arguments).unwrap(),
            json!({"city": "Oslo"})
        );
        assert_eq!(events[6]["arguments"], arguments);
        let output = &events[8]["response"]["output"][0];
        assert_eq!(output["arguments"], arguments);
        assert_eq!(output["status"], "completed");
    }
    let sent = setup.upstream.last_request().unwrap().json();
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "weather", "strict": true,
                                                 "parameters": {"type": "object"}}}])
    );
    setup.stop().await;
}

#[tokio::test]
async fn a_cut_stream_ends_with_response_failed_and_no_completion() {
    let setup = Setup::start().await;
    for chunking in [Chunking::Bytes(1), Chunking::Bytes(7)] {
        let chunks = openai::text_chunks("up-model", &["Hel", "lo", " CUT-HERE more"], None);
        let whole: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        let cut = whole.find("CUT-HERE").unwrap() + 3;
        setup
            .upstream
            .push(Reply::sse(&chunks).cut_after(cut).chunked(chunking));
        let response = setup.post(MASTER_KEY, ask("gpt", true)).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events = events(&body);
        let (last, before) = events.split_last().unwrap();
        assert_eq!(last["type"], "response.failed", "{body}");
        assert_eq!(last["response"]["status"], "failed", "{body}");
        assert!(last["response"]["error"]["message"].is_string(), "{body}");
        assert!(
            !types(before).iter().any(|t| *t == "response.completed"
                || *t == "response.incomplete"
                || *t == "response.output_text.done"),
            "{body}"
        );
        assert_eq!(
            deltas(before, "response.output_text.delta"),
            "Hello",
            "{chunking:?}"
        );
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_whole_answer_is_a_response_and_a_function_call_round_trip_keeps_call_ids() {
    let setup = Setup::start().await;
    let mut answer =
        openai::tool_call_completion("up-model", "call_1", "weather", "{\"city\":\"Oslo\"}");
    answer["usage"] = openai::usage_with_details(300, 200, 40, 10);
    setup.upstream.push(Reply::json(200, answer));
    let body = json!({
        "model": "gpt", "instructions": "be brief", "max_output_tokens": 64,
        "input": [
            {"role": "user", "content": "weather in Rome, then Oslo?"},
            {"type": "function_call", "call_id": "call_0", "name": "weather", "arguments": "{\"city\":\"Rome\"}"},
            {"type": "function_call_output", "call_id": "call_0", "output": "sun"}
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": {"type": "object"}}]
    });
    let response = setup.post(MASTER_KEY, body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-llmgate-cost-micros"));
    assert_eq!(response.headers()["x-llmgate-model"], "gpt");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["instructions"], "be brief");
    assert_eq!(answer["max_output_tokens"], 64);
    let call = &answer["output"][0];
    assert_eq!(
        (
            &call["type"],
            &call["call_id"],
            &call["name"],
            &call["arguments"]
        ),
        (
            &json!("function_call"),
            &json!("call_1"),
            &json!("weather"),
            &json!("{\"city\":\"Oslo\"}")
        )
    );
    assert_eq!(
        answer["usage"],
        json!({"input_tokens": 300, "input_tokens_details": {"cached_tokens": 200},
               "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 10},
               "total_tokens": 340})
    );
    let sent = setup.upstream.last_request().unwrap().json();
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "weather in Rome, then Oslo?"},
            {"role": "assistant", "tool_calls": [{"id": "call_0", "type": "function",
              "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]},
            {"role": "tool", "tool_call_id": "call_0", "content": "sun"}
        ])
    );
    setup.stop().await;
}

#[tokio::test]
async fn hosted_tools_are_dropped_and_named_and_namespace_calls_map_back() {
    let setup = Setup::start().await;
    setup.upstream.push(Reply::json(
        200,
        openai::tool_call_completion("up-model", "call_2", "multi_agent_v1__close_agent", "{}"),
    ));
    let body = json!({
        "model": "gpt", "input": "close it", "tool_choice": "auto",
        "tools": [
            {"type": "function", "name": "exec_command", "parameters": {"type": "object"}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents",
             "tools": [{"type": "function", "name": "close_agent", "parameters": {"type": "object"}}]},
            {"type": "web_search", "external_web_access": false}
        ]
    });
    let response = setup.post(MASTER_KEY, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-dropped-tools"], "web_search");
    let answer: Value = response.json().await.unwrap();
    let call = &answer["output"][0];
    assert_eq!(call["name"], "close_agent");
    assert_eq!(call["namespace"], "multi_agent_v1");
    let sent = setup.upstream.last_request().unwrap().json();
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exec_command", "multi_agent_v1__close_agent"]);

    // Forcing the hosted tool is the one case that is refused.
    let mut forced = body;
    forced["tool_choice"] = json!({"type": "web_search"});
    let response = setup.post(MASTER_KEY, forced).await;
    let error = assert_openai_error(response, 400, "invalid_request_error").await;
    assert_eq!(error["error"]["param"], "tool_choice");
    setup.stop().await;
}

async fn assert_openai_error(response: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    body
}

#[tokio::test]
async fn errors_are_in_openai_shape_with_their_statuses() {
    let setup = Setup::start().await;
    let base = setup.gateway.url("");
    assert_openai_error(
        setup.post("wrong-key", ask("gpt", false)).await,
        401,
        "authentication_error",
    )
    .await;
    let missing = assert_openai_error(
        setup.post(MASTER_KEY, ask("no-such-model", false)).await,
        404,
        "not_found_error",
    )
    .await;
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-model")
    );
    let unknown_item = assert_openai_error(
        setup
            .post(
                MASTER_KEY,
                json!({"model": "gpt", "input": [{"role": "user", "content": "hi"},
                                                 {"type": "computer_call", "call_id": "c1"}]}),
            )
            .await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(unknown_item["error"]["param"], "input[1]");
    assert!(
        unknown_item["error"]["message"]
            .as_str()
            .unwrap()
            .contains("computer_call")
    );
    let no_model = assert_openai_error(
        setup.post(MASTER_KEY, json!({"input": "hi"})).await,
        400,
        "invalid_request_error",
    )
    .await;
    assert_eq!(no_model["error"]["param"], "model");

    let broke = create_user(&base, "broke", "starter").await;
    assert_eq!(
        setup
            .post(&broke, ask("gpt", false))
            .await
            .status()
            .as_u16(),
        402
    );

    let wrong_method = client()
        .get(format!("{base}/v1/responses"))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status().as_u16(), 405);
    assert!(
        wrong_method.headers()["allow"]
            .to_str()
            .unwrap()
            .contains("POST")
    );

    let limited = create_user(&base, "limited", "limited").await;
    setup
        .upstream
        .push(Reply::json(200, openai::completion("up-model", "ok", 1, 1)));
    assert_eq!(setup.post(&limited, ask("gpt", false)).await.status(), 200);
    let response = setup.post(&limited, ask("gpt", false)).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_openai_error(response, 429, "rate_limit_exceeded").await;

    // An upstream failure before the first byte is an HTTP error, not a stream.
    setup
        .upstream
        .push(Reply::json(529, json!({"error": {"message": "busy"}})));
    let response = setup.post(MASTER_KEY, ask("gpt", true)).await;
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.json::<Value>().await.unwrap()["error"]["message"].is_string());
    setup
        .upstream
        .push(Reply::json(500, json!({"error": {"message": "boom"}})));
    let response = setup.post(MASTER_KEY, ask("gpt", false)).await;
    assert_eq!(response.status().as_u16(), 502);
    setup.stop().await;
}

#[tokio::test]
async fn an_anthropic_upstream_answers_translated_whole_and_streamed() {
    let setup = Setup::start().await;
    setup.claude.push(Reply::json(
        200,
        anthropic::tool_use_message("claude-up", "toolu_1", "weather", json!({"city": "Oslo"})),
    ));
    let mut body = ask("claude", false);
    body["instructions"] = json!("be brief");
    body["tools"] = json!([{"type": "function", "name": "weather", "parameters": {"type": "object"}},
                           {"type": "web_search"}]);
    let response = setup.post(MASTER_KEY, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-dropped-tools"], "web_search");
    let answer: Value = response.json().await.unwrap();
    let call = &answer["output"][0];
    assert_eq!(
        (&call["call_id"], &call["name"]),
        (&json!("toolu_1"), &json!("weather"))
    );
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Oslo"})
    );
    let sent = setup.claude.last_request().unwrap().json();
    assert_eq!(sent["system"], "be brief");
    assert_eq!(sent["tools"][0]["name"], "weather");
    assert_eq!(sent["tools"].as_array().unwrap().len(), 1);

    for chunking in CHUNKINGS {
        let events = anthropic::text_events("claude-up", &["Hel", "lo ", "wörld"], 12, 3);
        setup.claude.push(anthropic::sse(&events).chunked(chunking));
        let response = setup.post(MASTER_KEY, ask("claude", true)).await;
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        let events = self::events(&body);
        let mut expected = ONE_MESSAGE_OF_THREE_DELTAS.to_vec();
        expected.push("response.completed");
        assert_eq!(types(&events), expected, "{chunking:?}: {body}");
        assert_eq!(deltas(&events, "response.output_text.delta"), "Hello wörld");
        let usage = &events.last().unwrap()["response"]["usage"];
        assert_eq!(
            (&usage["input_tokens"], &usage["output_tokens"]),
            (&json!(12), &json!(3))
        );
    }
    setup.stop().await;
}

/// Answers by what was asked: a tool call when tools were sent and no tool output came back,
/// else text; streamed or whole.
fn answer_by_request(upstream: &FakeUpstream) {
    upstream.respond_with(|request| {
        let body = request.json();
        let stream = body["stream"] == true;
        let answered = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["role"] == "tool"));
        match (body.get("tools").is_some() && !answered, stream) {
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

/// The same answers from the Anthropic fake, in its own protocol.
fn claude_answers_by_request(upstream: &FakeUpstream) {
    upstream.respond_with(|request| {
        let body = request.json();
        let stream = body["stream"] == true;
        let answered = body["messages"].as_array().is_some_and(|m| {
            m.iter().any(|m| {
                m["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|b| b["type"] == "tool_result"))
            })
        });
        match (body.get("tools").is_some() && !answered, stream) {
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

const SDK_SCRIPT: &str = r#"
import json, os, openai
base, key, model = os.environ["BASE_URL"], os.environ["KEY"], os.environ["MODEL"]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)

r = client.responses.create(model=model, input="hi", store=False)
print("create", r.status, r.output_text, r.usage.input_tokens, r.usage.output_tokens)

events = []
text = ""
final = None
for event in client.responses.create(model=model, input="hi", stream=True, store=False):
    events.append(event.type)
    if event.type == "response.output_text.delta":
        text += event.delta
    if event.type == "response.completed":
        final = event.response
print("stream", text, events[0], events[-1], final.output_text, final.usage.output_tokens)

with client.responses.stream(model=model, input="hi", store=False) as stream:
    final = stream.get_final_response()
print("helper", final.output_text)

tools = [{"type": "function", "name": "weather", "description": "Weather now",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
history = [{"role": "user", "content": "weather in Oslo?"}]
r = client.responses.create(model=model, input=history, tools=tools, store=False)
call = r.output[-1]
print("call", call.type, call.call_id, call.name, json.dumps(json.loads(call.arguments)))
history += r.output
history.append({"type": "function_call_output", "call_id": call.call_id, "output": "rain"})
r = client.responses.create(model=model, input=history, tools=tools, store=False)
print("after", r.output_text)

def status_of(key, model):
    try:
        openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0).responses.create(
            model=model, input="hi", store=False)
        return "no error"
    except openai.APIStatusError as e:
        return f"{type(e).__name__} {e.status_code}"

print("errors", status_of("wrong-key", model), "|", status_of(key, "nope"), "|",
      status_of(os.environ["BROKE_KEY"], model))
"#;

/// The SDK against both upstream families.
#[tokio::test]
async fn the_openai_python_sdk_creates_streams_and_round_trips_function_calls() {
    if !support::python::has("openai") {
        return;
    }
    let setup = Setup::start().await;
    answer_by_request(&setup.upstream);
    claude_answers_by_request(&setup.claude);
    let base = setup.gateway.url("");
    for model in ["gpt", "claude"] {
        let broke = create_user(&base, &format!("broke-{model}"), "starter").await;
        let env = vec![
            ("BASE_URL", base.clone()),
            ("KEY", MASTER_KEY.to_owned()),
            ("MODEL", model.to_owned()),
            ("BROKE_KEY", broke),
        ];
        let stdout = support::python::run_with(SDK_SCRIPT, env).await;
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            [
                "create completed Hi there 10 2",
                "stream Hi there response.created response.completed Hi there 2",
                "helper Hi there",
                "call function_call call_9 weather {\"city\": \"Oslo\"}",
                "after Hi there",
                "errors AuthenticationError 401 | NotFoundError 404 | APIStatusError 402",
            ],
            "{model}"
        );
    }
    // The tool output went back to the upstream under the call's id.
    let sent = setup.claude.last_request().unwrap().json();
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(
        (&result["type"], &result["tool_use_id"]),
        (&json!("tool_result"), &json!("call_9"))
    );
    setup.stop().await;
}

/// An `openai` provider with `responses_api: true` gets the client's body as it came (model
/// and cap written in) at `/v1/responses`, and its answer comes back as written, whole or
/// streamed under hostile chunking; the charge comes from its usage.
#[tokio::test]
async fn a_responses_upstream_gets_the_body_as_sent_and_its_answer_back_as_written() {
    let setup = Setup::start().await;
    let key = setup.gateway.user("ann", "starter").await;
    setup.gateway.add_credits("ann", json!(100)).await;
    let upstream_answer = responses::response("up-native", "Hi there", 1000, 200);
    setup
        .upstream
        .push(Reply::json(200, upstream_answer.clone()));
    let body = json!({
        "model": "native", "store": false, "include": ["reasoning.encrypted_content"],
        "input": [{"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
                  {"role": "user", "content": "hi"}],
        "tools": [{"type": "web_search"}], "client_metadata": {"x": "y"}
    });
    let before = setup.gateway.balance(&key).await;
    let response = setup.post(&key, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-provider"], "oai");
    // The hosted tool went upstream: nothing was dropped.
    assert!(!response.headers().contains_key("x-llmgate-dropped-tools"));
    let cost: i64 = response.headers()["x-llmgate-cost-micros"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0);
    assert_eq!(response.json::<Value>().await.unwrap(), upstream_answer);
    assert_eq!(before - setup.gateway.balance(&key).await, cost);
    let sent = setup.upstream.last_request().unwrap();
    assert_eq!(sent.path, "/v1/responses");
    let mut expected = body.clone();
    expected["model"] = json!("up-native");
    expected["stream"] = json!(false);
    let mut got = sent.json();
    got.as_object_mut().unwrap().remove("max_output_tokens");
    assert_eq!(got, expected);

    for chunking in CHUNKINGS {
        let events = responses::text_events("up-native", &["Hel", "lo ", "wörld"], 12, 3);
        let written = llmgate_testkit::anthropic::sse_body(&events);
        setup
            .upstream
            .push(responses::sse(&events).chunked(chunking));
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let response = setup.post(MASTER_KEY, streamed).await;
        assert_eq!(response.status(), 200);
        assert!(!response.headers().contains_key("x-llmgate-dropped-tools"));
        assert_eq!(response.text().await.unwrap(), written, "{chunking:?}");
    }
    setup.stop().await;
}
