#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Anthropic adapter against a scripted upstream over real loopback HTTP: the exact request
//! it sends, and what it makes of answers, streams and errors.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use llmgate_core::{
    ErrorKind, Provider, Result,
    chat::{ChatChunk, ChatRequest, FinishReason, Message},
    keys::Secret,
    provider::ProviderCall,
};
use llmgate_providers::UpstreamConfig;
use llmgate_providers::anthropic::{API_VERSION, Anthropic};
use llmgate_testkit::{Chunking, FakeUpstream, Reply, anthropic};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-api03-test-0123456789SECRET-abcd";
const MODEL: &str = "claude-3-5-haiku-20241022";

fn provider(upstream: &FakeUpstream) -> Anthropic {
    provider_with_timeout(upstream, Duration::from_secs(10))
}

fn provider_with_timeout(upstream: &FakeUpstream, timeout: Duration) -> Anthropic {
    let mut config = UpstreamConfig::new("anthropic", upstream.url());
    config.timeout = timeout;
    config.headers = BTreeMap::from([("anthropic-beta".to_owned(), "test-beta".to_owned())]);
    Anthropic::new(config).unwrap()
}

fn key() -> Secret {
    Secret::new(KEY)
}

fn request() -> ChatRequest {
    let mut request = ChatRequest::new(
        MODEL,
        vec![Message::system("be brief"), Message::user("hi")],
    );
    request.max_tokens = Some(64);
    request.temperature = Some(0.2);
    request
}

async fn chunks(provider: &Anthropic, request: &ChatRequest) -> Vec<Result<ChatChunk>> {
    let key = key();
    let stream = provider
        .chat_stream(ProviderCall {
            request,
            api_key: Some(&key),
        })
        .await
        .unwrap();
    stream.collect().await
}

fn values(items: &[Result<ChatChunk>]) -> Vec<Value> {
    items
        .iter()
        .map(|item| serde_json::to_value(item.as_ref().unwrap()).unwrap())
        .map(|mut value| {
            value["created"] = json!(0);
            value
        })
        .collect()
}

#[tokio::test]
async fn json_completion_sends_a_messages_request_with_anthropic_headers() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, anthropic::message(MODEL, "Hello!", 12, 3)));
    let key = key();
    let response = provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: Some(&key),
        })
        .await
        .unwrap();

    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key").as_deref(), Some(KEY));
    assert_eq!(
        sent.header("anthropic-version").as_deref(),
        Some(API_VERSION)
    );
    assert_eq!(sent.header("anthropic-beta").as_deref(), Some("test-beta"));
    assert_eq!(
        sent.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        json!({
            "model": MODEL, "max_tokens": 64, "system": "be brief", "temperature": 0.2,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
        })
    );

    assert_eq!(response.choices[0].message.text_content(), "Hello!");
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    assert_eq!(response.model, MODEL);
    let usage = response.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 3));
}

#[tokio::test]
async fn no_key_sends_no_x_api_key() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, anthropic::message(MODEL, "ok", 1, 1)));
    provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: None,
        })
        .await
        .unwrap();
    assert_eq!(upstream.last_request().unwrap().header("x-api-key"), None);
}

#[tokio::test]
async fn streamed_tool_use_becomes_openai_chunks_with_a_final_usage_chunk() {
    let upstream = FakeUpstream::start().await;
    upstream.push(anthropic::sse(&anthropic::tool_use_events(
        MODEL,
        "toolu_01A",
        "weather",
        &["{\"city\": ", "\"Paris\"}"],
        30,
        12,
    )));
    let mut request = request();
    request.stream = Some(true);
    let items = chunks(&provider(&upstream), &request).await;

    assert_eq!(upstream.last_request().unwrap().json()["stream"], true);
    let chunk = |choices: Value| {
        json!({"id": "msg_01FakeXyz", "object": "chat.completion.chunk", "created": 0,
               "model": MODEL, "choices": choices})
    };
    let delta = |delta: Value| chunk(json!([{"index": 0, "delta": delta, "finish_reason": null}]));
    assert_eq!(
        values(&items),
        vec![
            delta(json!({"role": "assistant", "content": ""})),
            delta(json!({"content": "Checking."})),
            delta(
                json!({"tool_calls": [{"index": 0, "id": "toolu_01A", "type": "function",
                                         "function": {"name": "weather", "arguments": ""}}]})
            ),
            delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]})),
            delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]})),
            chunk(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
            {
                let mut last = chunk(json!([]));
                last["usage"] =
                    json!({"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42});
                last
            },
        ]
    );
}

#[tokio::test]
async fn cache_tokens_count_as_prompt_and_are_kept_in_the_details() {
    let upstream = FakeUpstream::start().await;
    let mut events = anthropic::text_events(MODEL, &["hi"], 10, 5);
    events[0]["message"]["usage"]["cache_read_input_tokens"] = json!(1000);
    events[0]["message"]["usage"]["cache_creation_input_tokens"] = json!(200);
    upstream.push(anthropic::sse(&events));
    let items = chunks(&provider(&upstream), &request()).await;
    let last = values(&items).pop().unwrap();
    assert_eq!(
        last["usage"],
        json!({"prompt_tokens": 1210, "completion_tokens": 5, "total_tokens": 1215,
               "prompt_tokens_details": {"cached_tokens": 1000, "cache_creation_tokens": 200}})
    );
}

#[tokio::test]
async fn overloaded_529_is_retryable_and_keeps_retry_after() {
    let upstream = FakeUpstream::start().await;
    upstream.push(
        Reply::json(529, anthropic::error("overloaded_error", "Overloaded"))
            .header("retry-after", "3"),
    );
    let key = key();
    let error = provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: Some(&key),
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamUnavailable);
    assert!(error.is_retryable());
    assert_eq!(error.upstream_status(), Some(529));
    assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
    assert!(error.message().contains("Overloaded (overloaded_error)"));
}

#[tokio::test]
async fn an_echoed_key_is_scrubbed_from_the_error() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        401,
        anthropic::error("authentication_error", &format!("invalid x-api-key: {KEY}")),
    ));
    let key = key();
    let error = provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: Some(&key),
        })
        .await
        .unwrap_err();
    assert_eq!(error.upstream_status(), Some(401));
    assert!(error.message().contains("invalid x-api-key"), "{error}");
    assert!(!error.message().contains("SECRET"), "{error}");
    assert!(!format!("{error:?}").contains("SECRET"));
}

#[tokio::test]
async fn a_mid_stream_error_event_ends_the_stream_with_that_error() {
    let upstream = FakeUpstream::start().await;
    let mut events = anthropic::text_events(MODEL, &["Hel", "lo"], 5, 2);
    events.truncate(4);
    events.push(anthropic::error("overloaded_error", "Overloaded"));
    upstream.push(anthropic::sse(&events));
    let items = chunks(&provider(&upstream), &request()).await;
    let (last, good) = items.split_last().unwrap();
    assert_eq!(good.len(), 2, "role chunk and one text chunk");
    let error = last.as_ref().unwrap_err();
    assert_eq!(error.upstream_status(), Some(529));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_stream_stopping_after_message_delta_is_an_error_not_a_stop() {
    let upstream = FakeUpstream::start().await;
    let mut events = anthropic::text_events(MODEL, &["Hi"], 5, 2);
    events.pop();
    upstream.push(anthropic::sse(&events));
    let items = chunks(&provider(&upstream), &request()).await;
    let error = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(error.code(), Some("upstream_stream_error"));
    assert!(error.message().contains("message_stop"));
}

#[tokio::test]
async fn bad_tool_arguments_are_refused_before_any_upstream_call() {
    let upstream = FakeUpstream::start().await;
    let request: ChatRequest = serde_json::from_value(json!({
        "model": MODEL, "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
            ]},
            {"role": "tool", "tool_call_id": "t1", "content": "r"}
        ]
    }))
    .unwrap();
    let error = provider(&upstream)
        .chat(ProviderCall {
            request: &request,
            api_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(upstream.request_count(), 0);
}

#[tokio::test]
async fn the_whole_conversation_shape_reaches_the_upstream() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, anthropic::message(MODEL, "done", 1, 1)));
    let request: ChatRequest = serde_json::from_value(json!({
        "model": MODEL, "max_tokens": 10, "user": "u-1", "stop": ["END"],
        "parallel_tool_calls": false,
        "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "look", "arguments": "{\"zoom\":2}"}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"}
        ]
    }))
    .unwrap();
    provider(&upstream)
        .chat(ProviderCall {
            request: &request,
            api_key: None,
        })
        .await
        .unwrap();
    assert_eq!(
        upstream.last_request().unwrap().json(),
        json!({
            "model": MODEL, "max_tokens": 10, "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "tools": [{"name": "look", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"zoom": 2}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"}
                ]}
            ]
        })
    );
}

#[tokio::test]
async fn an_error_body_that_stalls_still_yields_the_status_error() {
    let upstream = FakeUpstream::start().await;
    upstream.push(
        Reply::json(503, anthropic::error("overloaded_error", "Overloaded"))
            .chunked(Chunking::Bytes(8))
            .frame_delay(Duration::from_secs(30)),
    );
    let mut request = request();
    request.stream = Some(true);
    let key = key();
    let provider = provider_with_timeout(&upstream, Duration::from_millis(300));
    let call = provider.chat_stream(ProviderCall {
        request: &request,
        api_key: Some(&key),
    });
    // Without a limit on reading the error body this would wait out every 30 s frame.
    let error = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the error arrives without the whole body")
        .err()
        .unwrap();
    assert_eq!(error.upstream_status(), Some(503));
    assert!(error.is_retryable());
}
