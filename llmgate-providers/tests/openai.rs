#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The OpenAI-compatible adapter against a scripted upstream over real loopback HTTP.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;

use futures::StreamExt;
use llmgate_core::chat::StreamOptions;
use llmgate_core::{
    Error, ErrorKind, Provider, Result,
    chat::{ChatChunk, ChatRequest, FinishReason, Message},
    keys::Secret,
    provider::{ChunkStream, ProviderCall},
};
use llmgate_providers::{OpenAiCompatible, UpstreamConfig};
use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::json;

const KEY: &str = "sk-test-0123456789abcdefSECRET";
const MODEL: &str = "up/model-1";

fn provider_with_timeout(upstream: &FakeUpstream, timeout: Duration) -> OpenAiCompatible {
    OpenAiCompatible::new(UpstreamConfig {
        name: "fake".to_owned(),
        api_base: format!("{}/v1/", upstream.url()),
        timeout,
        headers: BTreeMap::from([("X-Title".to_owned(), "llmgate tests".to_owned())]),
    })
    .unwrap()
}

fn provider(upstream: &FakeUpstream) -> OpenAiCompatible {
    provider_with_timeout(upstream, Duration::from_secs(10))
}

/// The test key, for calls that borrow it.
static TEST_KEY: LazyLock<Secret> = LazyLock::new(|| Secret::new(KEY));

/// A call for `request` with the test key.
fn keyed(request: &ChatRequest) -> ProviderCall<'_> {
    ProviderCall {
        request,
        api_key: Some(&TEST_KEY),
    }
}

fn request() -> ChatRequest {
    let mut request = ChatRequest::new(
        MODEL,
        vec![Message::system("be brief"), Message::user("hi")],
    );
    request.max_tokens = Some(64);
    request
        .extra
        .insert("vendor_knob".to_owned(), json!({"deep": [1, 2]}));
    request
}

fn stream_request() -> ChatRequest {
    let mut request = request();
    request.stream = Some(true);
    request.stream_options = Some(StreamOptions {
        include_usage: Some(true),
        ..StreamOptions::default()
    });
    request
}

async fn collect(stream: ChunkStream) -> Vec<Result<ChatChunk>> {
    stream.collect().await
}

/// The successful chunks, or the test fails naming the first error.
fn all_ok(items: Vec<Result<ChatChunk>>) -> Vec<ChatChunk> {
    items
        .into_iter()
        .map(|item| item.unwrap_or_else(|e| panic!("unexpected stream error: {e}")))
        .collect()
}

fn text_of(chunks: &[ChatChunk]) -> String {
    chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|choice| choice.delta.content.as_deref())
        .collect()
}

/// Items up to and including the first error; asserts the stream ended right after it.
fn ends_with_error(items: &[Result<ChatChunk>]) -> &Error {
    let last = items.last().expect("the stream yielded nothing");
    let error = last
        .as_ref()
        .expect_err("the stream ended without an error");
    assert!(
        items[..items.len() - 1].iter().all(Result::is_ok),
        "only the last item may be an error"
    );
    error
}

#[tokio::test]
async fn json_completion_sends_openai_request_and_decodes_the_answer() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, openai::completion(MODEL, "Hello!", 12, 3)));
    let provider = provider(&upstream);
    let request = request();

    let response = provider.chat(keyed(&request)).await.unwrap();

    assert_eq!(response.choices[0].message.text_content(), "Hello!");
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (12, 3, 15)
    );

    let sent = upstream.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].method, "POST");
    assert_eq!(sent[0].path, "/v1/chat/completions");
    assert_eq!(
        sent[0].header("authorization"),
        Some(format!("Bearer {KEY}"))
    );
    assert_eq!(
        sent[0].header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(sent[0].header("x-title").as_deref(), Some("llmgate tests"));
    assert_eq!(
        sent[0].json(),
        json!({
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"}
            ],
            "max_tokens": 64,
            "vendor_knob": {"deep": [1, 2]}
        })
    );
}

#[tokio::test]
async fn no_key_sends_no_authorization() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, openai::completion(MODEL, "ok", 1, 1)));
    let provider = provider(&upstream).with_requires_key(false);
    assert!(!provider.requires_key());
    let request = request();
    provider
        .chat(ProviderCall {
            request: &request,
            api_key: None,
        })
        .await
        .unwrap();
    assert_eq!(upstream.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn json_tool_call_is_decoded() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        200,
        openai::tool_call_completion(MODEL, "call_9", "get_weather", r#"{"city":"Paris"}"#),
    ));
    let mut request = request();
    request.tools = Some(vec![
        serde_json::from_value(json!({
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object"}}
        }))
        .unwrap(),
    ]);
    let response = provider(&upstream).chat(keyed(&request)).await.unwrap();

    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    let call = &choice.message.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.id, "call_9");
    assert_eq!(call.function.name, "get_weather");
    assert_eq!(call.function.arguments, r#"{"city":"Paris"}"#);
    assert_eq!(
        upstream.requests()[0].json()["tools"][0]["function"]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn text_stream_asks_for_usage_and_decodes_every_chunk() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::sse(&openai::text_chunks(
        MODEL,
        &["Hel", "lo", " world"],
        Some((9, 3)),
    )));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let chunks = all_ok(collect(stream).await);

    assert_eq!(chunks.len(), 6);
    assert_eq!(text_of(&chunks), "Hello world");
    assert_eq!(chunks[4].choices[0].finish_reason, Some(FinishReason::Stop));
    assert!(chunks[..5].iter().all(|c| c.usage.is_none()));
    assert!(chunks[5].choices.is_empty());
    assert_eq!(chunks[5].usage.as_ref().unwrap().total_tokens, 12);

    let sent = &upstream.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.json()["stream"], true);
    assert_eq!(
        sent.json()["stream_options"],
        json!({"include_usage": true})
    );
    assert_eq!(sent.json()["vendor_knob"], json!({"deep": [1, 2]}));
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {KEY}")));
}

#[tokio::test]
async fn streamed_tool_call_deltas_concatenate_to_the_arguments() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::sse(&openai::tool_call_chunks(
        MODEL,
        "call_1",
        "lookup",
        &["{\"q\":", "\"caf", "é\"}"],
        Some((5, 7)),
    )));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let chunks = all_ok(collect(stream).await);

    let deltas: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .filter_map(|choice| choice.delta.tool_calls.as_ref())
        .flatten()
        .collect();
    assert_eq!(deltas[0].id.as_deref(), Some("call_1"));
    assert_eq!(deltas[0].kind.as_deref(), Some("function"));
    assert_eq!(
        deltas[0].function.as_ref().unwrap().name.as_deref(),
        Some("lookup")
    );
    assert!(deltas.iter().all(|d| d.index == 0));
    assert!(deltas[1..].iter().all(|d| d.id.is_none()));
    let arguments: String = deltas
        .iter()
        .filter_map(|d| d.function.as_ref()?.arguments.as_deref())
        .collect();
    assert_eq!(arguments, "{\"q\":\"café\"}");
    let finish = chunks
        .iter()
        .flat_map(|c| c.choices.iter())
        .find_map(|choice| choice.finish_reason);
    assert_eq!(finish, Some(FinishReason::ToolCalls));
    assert_eq!(
        chunks.last().unwrap().usage.as_ref().unwrap().total_tokens,
        12
    );
}

struct StatusCase {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    kind: ErrorKind,
    served_as: u16,
    retryable: bool,
    retry_after: Option<Duration>,
}

const STATUS_CASES: &[StatusCase] = &[
    StatusCase {
        status: 400,
        headers: &[],
        kind: ErrorKind::InvalidRequest,
        served_as: 400,
        retryable: false,
        retry_after: None,
    },
    StatusCase {
        status: 401,
        headers: &[],
        kind: ErrorKind::Upstream,
        served_as: 502,
        retryable: true,
        retry_after: None,
    },
    StatusCase {
        status: 429,
        headers: &[("retry-after", "17")],
        kind: ErrorKind::UpstreamUnavailable,
        served_as: 503,
        retryable: true,
        retry_after: Some(Duration::from_secs(17)),
    },
    StatusCase {
        status: 500,
        headers: &[],
        kind: ErrorKind::Upstream,
        served_as: 502,
        retryable: true,
        retry_after: None,
    },
    StatusCase {
        status: 503,
        headers: &[("retry-after-ms", "1500")],
        kind: ErrorKind::UpstreamUnavailable,
        served_as: 503,
        retryable: true,
        retry_after: Some(Duration::from_millis(1500)),
    },
];

fn scripted_error(case: &StatusCase) -> Reply {
    let message = format!("upstream says {}", case.status);
    let mut reply = Reply::json(
        case.status,
        openai::error(&message, "some_error", Some("some_code")),
    );
    for (name, value) in case.headers {
        reply = reply.header(name, value);
    }
    reply
}

fn assert_maps(case: &StatusCase, error: &Error, how: &str) {
    let status = case.status;
    assert_eq!(error.kind(), case.kind, "{how} {status}");
    assert_eq!(error.status(), case.served_as, "{how} {status}");
    assert_eq!(error.is_retryable(), case.retryable, "{how} {status}");
    assert_eq!(error.retry_after(), case.retry_after, "{how} {status}");
    assert_eq!(error.upstream_status(), Some(status), "{how} {status}");
    assert!(
        error.message().contains(&format!("upstream says {status}")),
        "{how} {status}: {}",
        error.message()
    );
}

#[tokio::test]
async fn error_statuses_map_to_kind_status_retryability_and_retry_after() {
    let upstream = FakeUpstream::start().await;
    let provider = provider(&upstream);
    let json_request = request();
    let stream_request = stream_request();
    for case in STATUS_CASES {
        upstream.push(scripted_error(case));
        let error = provider.chat(keyed(&json_request)).await.unwrap_err();
        assert_maps(case, &error, "json");

        upstream.push(scripted_error(case));
        let error = provider
            .chat_stream(keyed(&stream_request))
            .await
            .err()
            .expect("an error status must fail before the stream starts");
        assert_maps(case, &error, "stream");
    }
    assert_eq!(upstream.request_count(), 2 * STATUS_CASES.len());
}

#[tokio::test]
async fn the_key_never_appears_in_error_messages() {
    let upstream = FakeUpstream::start().await;
    let provider = provider(&upstream);
    let echo = format!("Incorrect API key provided: {KEY}. Bearer {KEY}");
    let request = request();
    let stream_request = stream_request();

    upstream.push(Reply::json(
        401,
        openai::error(&echo, "invalid_request_error", Some("invalid_api_key")),
    ));
    let status_error = provider.chat(keyed(&request)).await.unwrap_err();

    upstream.push(Reply::status(400).body(echo.clone()));
    let plain_error = provider.chat(keyed(&request)).await.unwrap_err();

    upstream.push(Reply::sse_raw(format!(
        "data: {}\n\n",
        openai::error(&echo, "server_error", None)
    )));
    let stream = provider.chat_stream(keyed(&stream_request)).await.unwrap();
    let items = collect(stream).await;
    let event_error = ends_with_error(&items).clone();

    for error in [&status_error, &plain_error, &event_error] {
        let rendered = format!("{error} {error:?} {}", error.to_json());
        assert!(!rendered.contains(KEY), "{rendered}");
        assert!(!rendered.contains("0123456789abcdef"), "{rendered}");
    }
    for error in [status_error, event_error] {
        assert!(
            error
                .message()
                .contains("Incorrect API key provided: *****"),
            "{error}"
        );
    }
    // A body that is not an error JSON is never shown to the client, scrubbed or not.
    assert_eq!(plain_error.message(), "Upstream fake answered HTTP 400.");
}

#[tokio::test]
async fn stream_cut_mid_way_ends_with_an_error() {
    let upstream = FakeUpstream::start().await;
    let events = openai::text_chunks(MODEL, &["one", "two", "three"], Some((1, 3)));
    let full = Reply::sse(&events);
    // Cut in the middle of the third event.
    let first_two = format!("data: {}\n\ndata: {}\n\n", events[0], events[1]).len();
    upstream.push(full.cut_after(first_two + 20));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let items = collect(stream).await;

    assert_eq!(items.len(), 3, "two chunks, then the error");
    let error = ends_with_error(&items);
    assert_eq!(error.kind(), ErrorKind::Upstream);
    assert_eq!(error.code(), Some("upstream_stream_error"));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn stream_without_done_ends_with_an_error() {
    let upstream = FakeUpstream::start().await;
    let mut body = String::new();
    for event in openai::text_chunks(MODEL, &["a", "b"], Some((1, 2))) {
        body.push_str(&format!("data: {event}\n\n"));
    }
    upstream.push(Reply::sse_raw(body));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let items = collect(stream).await;

    assert_eq!(items.len(), 6, "all five chunks, then the error");
    let error = ends_with_error(&items);
    assert_eq!(error.code(), Some("upstream_stream_error"));
    assert!(
        error.message().contains("without [DONE]"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn malformed_event_ends_the_stream_with_an_error() {
    let upstream = FakeUpstream::start().await;
    let events = openai::text_chunks(MODEL, &["a"], None);
    upstream.push(Reply::sse_raw(format!(
        "data: {}\n\ndata: {{\"id\": \"x\", \"choices\": [\n\ndata: {}\n\ndata: [DONE]\n\n",
        events[0], events[1]
    )));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let items = collect(stream).await;

    assert_eq!(
        items.len(),
        2,
        "one chunk, then the error; nothing after it"
    );
    let error = ends_with_error(&items);
    assert_eq!(error.code(), Some("upstream_stream_error"));
    assert!(error.message().contains("malformed"), "{}", error.message());
}

#[tokio::test]
async fn error_event_mid_stream_ends_the_stream_with_an_error() {
    let upstream = FakeUpstream::start().await;
    let events = openai::text_chunks(MODEL, &["a", "b"], None);
    upstream.push(Reply::sse_raw(format!(
        "data: {}\n\ndata: {}\n\ndata: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        events[0],
        events[1],
        openai::error(
            "The server is overloaded",
            "server_error",
            Some("overloaded")
        ),
        events[2],
    )));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let items = collect(stream).await;

    assert_eq!(items.len(), 3);
    let error = ends_with_error(&items);
    assert_eq!(error.kind(), ErrorKind::Upstream);
    assert!(
        error.message().contains("The server is overloaded"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn slow_first_byte_beyond_the_timeout_is_an_upstream_timeout() {
    let upstream = FakeUpstream::start().await;
    let provider = provider_with_timeout(&upstream, Duration::from_millis(200));
    let slow = Duration::from_secs(5);

    upstream.push(Reply::json(200, openai::completion(MODEL, "late", 1, 1)).first_byte_delay(slow));
    let request = request();
    let error = provider.chat(keyed(&request)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::UpstreamTimeout);
    assert_eq!(error.status(), 504);
    assert!(error.is_retryable());

    upstream.push(Reply::sse(&openai::text_chunks(MODEL, &["late"], None)).first_byte_delay(slow));
    let stream_request = stream_request();
    let error = provider
        .chat_stream(keyed(&stream_request))
        .await
        .err()
        .expect("no head within the timeout must fail the call");
    assert_eq!(error.kind(), ErrorKind::UpstreamTimeout);
}

#[tokio::test]
async fn stalled_stream_yields_an_upstream_timeout_item() {
    let upstream = FakeUpstream::start().await;
    let provider = provider_with_timeout(&upstream, Duration::from_millis(300));
    let events = openai::text_chunks(MODEL, &["a", "b"], None);
    let body = Reply::sse(&events);
    let first_event = format!("data: {}\n\n", events[0]).len();
    // The first event arrives at once, then the upstream goes quiet for far longer than the
    // idle timeout.
    upstream.push(
        body.chunked(Chunking::Bytes(first_event))
            .frame_delay(Duration::from_secs(30)),
    );
    let request = stream_request();
    let stream = provider.chat_stream(keyed(&request)).await.unwrap();
    let items = collect(stream).await;

    assert_eq!(items.len(), 2);
    assert_eq!(ends_with_error(&items).kind(), ErrorKind::UpstreamTimeout);
}

#[tokio::test]
async fn unreachable_upstream_is_a_connect_error() {
    let upstream = FakeUpstream::start().await;
    let provider = provider(&upstream);
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let request = request();
    let error = provider.chat(keyed(&request)).await.unwrap_err();
    assert_eq!(error.code(), Some("upstream_unreachable"));
    assert!(error.is_retryable());
    assert!(
        !error.message().contains("127.0.0.1"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn json_answer_to_a_stream_request_is_replayed_as_chunks() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, openai::completion(MODEL, "whole", 4, 1)));
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let chunks = all_ok(collect(stream).await);
    assert_eq!(text_of(&chunks), "whole");
    assert_eq!(
        chunks.last().unwrap().usage.as_ref().unwrap().total_tokens,
        5
    );
}

/// A stream body with multi-byte text, a keep-alive comment and the given line ending.
fn hostile_body(line_end: &str) -> String {
    let events = openai::text_chunks(
        MODEL,
        &["Café ", "日本", "語 ", "🙂🎉", " naïve"],
        Some((11, 6)),
    );
    let mut body = format!(": keep-alive{line_end}{line_end}");
    for event in &events {
        body.push_str(&format!("data: {event}{line_end}{line_end}"));
    }
    body.push_str(&format!("data: [DONE]{line_end}{line_end}"));
    body
}

async fn decode(upstream: &FakeUpstream, reply: Reply) -> Vec<ChatChunk> {
    upstream.push(reply);
    let request = stream_request();
    let stream = provider(upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    all_ok(collect(stream).await)
}

#[tokio::test]
async fn stream_decodes_identically_under_every_chunking() {
    let upstream = FakeUpstream::start().await;
    let plans = [
        Chunking::Whole,
        Chunking::Bytes(1),
        Chunking::Bytes(7),
        Chunking::SplitInsideUtf8,
        Chunking::SplitCrLf,
    ];
    let reference = decode(&upstream, Reply::sse_raw(hostile_body("\n"))).await;
    assert_eq!(reference.len(), 8);
    assert_eq!(text_of(&reference), "Café 日本語 🙂🎉 naïve");
    assert_eq!(
        reference
            .last()
            .unwrap()
            .usage
            .as_ref()
            .unwrap()
            .total_tokens,
        17
    );

    for line_end in ["\n", "\r\n"] {
        for plan in plans {
            let chunks = decode(
                &upstream,
                Reply::sse_raw(hostile_body(line_end)).chunked(plan),
            )
            .await;
            assert_eq!(chunks, reference, "{plan:?} with {line_end:?} line endings");
        }
    }
}

#[tokio::test]
async fn stream_of_ten_thousand_chunks_decodes() {
    let upstream = FakeUpstream::start().await;
    let pieces: Vec<String> = (0..10_000).map(|i| format!("{} ", i % 10)).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    upstream.push(
        Reply::sse(&openai::text_chunks(MODEL, &pieces, Some((1, 10_000))))
            .chunked(Chunking::Bytes(4096)),
    );
    let request = stream_request();
    let stream = provider(&upstream)
        .chat_stream(keyed(&request))
        .await
        .unwrap();
    let chunks = all_ok(collect(stream).await);
    assert_eq!(chunks.len(), 10_003);
    assert_eq!(text_of(&chunks).len(), 20_000);
}

#[test]
fn bad_configuration_is_refused() {
    let config = |api_base: &str, header: (&str, &str), timeout: Duration| UpstreamConfig {
        name: "bad".to_owned(),
        api_base: api_base.to_owned(),
        timeout,
        headers: BTreeMap::from([(header.0.to_owned(), header.1.to_owned())]),
    };
    let ok = Duration::from_secs(1);
    assert!(OpenAiCompatible::new(config("not a url", ("a", "b"), ok)).is_err());
    assert!(OpenAiCompatible::new(config("ftp://h/v1", ("a", "b"), ok)).is_err());
    assert!(OpenAiCompatible::new(config("http://h/v1", ("bad header", "b"), ok)).is_err());
    assert!(OpenAiCompatible::new(config("http://h/v1", ("a", "line\nbreak"), ok)).is_err());
    assert!(OpenAiCompatible::new(config("http://h/v1", ("a", "b"), Duration::ZERO)).is_err());
    let good = OpenAiCompatible::new(config("http://h/v1/", ("a", "b"), ok)).unwrap();
    assert_eq!(good.endpoint(), "http://h/v1/chat/completions");
}
