#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The server in front of an OpenAI-compatible provider pointed at a local fake upstream.

mod support;

use std::time::Duration;

use llmgate_server::RunningServer;
use llmgate_server::config::Env;
use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::*;

const UPSTREAM_KEY: &str = "sk-fake-upstream-key-1234";

async fn server_for(upstream: &FakeUpstream) -> RunningServer {
    server_with(upstream, "").await
}

/// `extra` is appended to the YAML (e.g. a `routing:` section).
async fn server_with(upstream: &FakeUpstream, extra: &str) -> RunningServer {
    let yaml = r#"
providers:
  - name: fake
    kind: openai
    api_base: ${FAKE_URL}/v1
    api_key: os.environ/FAKE_KEY
    timeout_ms: 10000
models:
  - name: fake-model
    provider: fake
    upstream_model: up-model
    input_cost_per_1k: 0.002
    output_cost_per_1k: 0.002
"#;
    let env = Env::from_pairs([
        ("FAKE_URL", upstream.url()),
        ("FAKE_KEY", UPSTREAM_KEY.to_owned()),
    ]);
    start(yaml_config(&format!("{yaml}{extra}"), &env)).await
}

fn ask(stream: bool) -> Value {
    json!({"model": "fake-model", "stream": stream,
           "messages": [{"role": "user", "content": "say hello"}]})
}

#[tokio::test]
async fn json_completion_passes_through_with_usage() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        200,
        openai::completion("up-model", "Hello!", 12, 3),
    ));
    let server = server_for(&upstream).await;

    let response = chat(&server, ask(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-provider"], "fake");
    assert_eq!(response.headers()["x-llmgate-model"], "fake-model");
    assert_eq!(response.headers()["x-llmgate-key-source"], "platform");
    // The master key is never charged.
    assert_eq!(response.headers()["x-llmgate-cost-micros"], "0");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello!");
    assert_eq!(body["usage"]["prompt_tokens"], 12);
    assert_eq!(body["usage"]["completion_tokens"], 3);

    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    let sent = sent.json();
    assert_eq!(sent["model"], "up-model");
    assert_eq!(sent["messages"][0]["content"], "say hello");
    assert!(sent.get("power_level").is_none());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stream_passes_through_with_usage_and_done() {
    let upstream = FakeUpstream::start().await;
    upstream.push(
        Reply::sse(&openai::text_chunks(
            "up-model",
            &["Hel", "lo", " wörld"],
            Some((9, 4)),
        ))
        .chunked(Chunking::Bytes(7)),
    );
    let server = server_for(&upstream).await;

    let response = chat(&server, ask(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = stream_chunks(&response.text().await.unwrap());
    assert_eq!(streamed_content(&chunks), "Hello wörld");
    let last = chunks.last().unwrap();
    assert_eq!(last["usage"]["prompt_tokens"], 9, "{last}");
    assert_eq!(last["usage"]["completion_tokens"], 4, "{last}");
    assert_eq!(last["llmgate"]["cost_micros"], 0, "{last}");
    // The gateway asks the upstream for usage in the stream.
    assert_eq!(
        upstream.last_request().unwrap().json()["stream_options"]["include_usage"],
        true
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn upstream_500_becomes_502_upstream_error() {
    let upstream = FakeUpstream::start().await;
    upstream.set_default(Reply::json(
        500,
        openai::error("boom inside", "server_error", None),
    ));
    // No retry rounds and no cooldown: each request makes one call and sees the 500 itself.
    let server = server_with(
        &upstream,
        "routing: { num_retries: 0, cooldown_after_failures: 0 }\n",
    )
    .await;

    for stream in [false, true] {
        let response = chat(&server, ask(stream)).await;
        let error = assert_error(response, 502, "upstream_error").await;
        assert!(
            !error["message"].as_str().unwrap().contains(UPSTREAM_KEY),
            "{error}"
        );
    }
    assert_eq!(upstream.request_count(), 2);
    // Still answering.
    let health = get(&server, "/health").await;
    assert_eq!(health.status(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_upstream_error_page_is_not_passed_to_the_client_but_its_json_message_is() {
    let upstream = FakeUpstream::start().await;
    let page = "<html><body><h1>502 Bad Gateway</h1>\
                <pre>/srv/inference/worker.py line 88: pool exhausted</pre></body></html>";
    upstream.set_default(
        Reply::status(502)
            .header("content-type", "text/html")
            .body(page),
    );
    let server = server_with(
        &upstream,
        "routing: { num_retries: 0, cooldown_after_failures: 0 }\n",
    )
    .await;

    for stream in [false, true] {
        let error = assert_error(chat(&server, ask(stream)).await, 502, "upstream_error").await;
        let message = error["message"].as_str().unwrap();
        assert_eq!(message, "Upstream fake answered HTTP 502.", "{error}");
        assert_eq!(error["code"], "upstream_failed");
    }

    // An error the upstream explains in JSON keeps its explanation, on one short line.
    upstream.set_default(Reply::json(
        503,
        openai::error("model is loading,\n  try again", "server_error", None),
    ));
    let error = assert_error(chat(&server, ask(false)).await, 503, "upstream_error").await;
    assert_eq!(
        error["message"],
        "Upstream fake answered HTTP 503: model is loading, try again"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn stream_cut_midway_ends_with_an_error_event_and_no_done() {
    let upstream = FakeUpstream::start().await;
    let chunks = openai::text_chunks("up-model", &["Hel", "lo", " there"], Some((9, 4)));
    // Cut inside the third event: the first two reach the client, then the connection dies.
    let whole: Vec<String> = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    let cut = whole[0].len() + whole[1].len() + 10;
    upstream.push(Reply::sse(&chunks).cut_after(cut));
    let server = server_for(&upstream).await;

    let response = chat(&server, ask(true)).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert!(!events.iter().any(|e| e == "[DONE]"), "{text}");
    let last: Value = serde_json::from_str(events.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert!(last["error"]["message"].as_str().is_some());
    let made_up_finish = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .any(|c| !c["choices"][0]["finish_reason"].is_null());
    assert!(!made_up_finish, "a made-up finish_reason was sent: {text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_drains_a_stream_in_flight() {
    let upstream = FakeUpstream::start().await;
    upstream.push(
        Reply::sse(&openai::text_chunks(
            "up-model",
            &["one ", "two ", "three"],
            Some((5, 3)),
        ))
        .chunked(Chunking::Bytes(64))
        .frame_delay(Duration::from_millis(40)),
    );
    let server = server_for(&upstream).await;
    let response = chat(&server, ask(true)).await;
    assert_eq!(response.status(), 200);

    // Headers are out and the stream is still running: ask the server to stop now.
    let stopping = tokio::spawn(server.shutdown());
    let chunks = stream_chunks(&response.text().await.unwrap());
    assert_eq!(streamed_content(&chunks), "one two three");
    stopping.await.unwrap().unwrap();
}
