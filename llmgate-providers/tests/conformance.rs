#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One table of behaviours, run against every adapter (OpenAI-compatible, Anthropic, Ollama)
//! through the scripted loopback upstream, each family speaking its own documented wire format.
//!
//! Every scenario asserts the outbound request (path, auth headers and body as JSON) and what
//! the adapter decoded, reduced to a family-neutral [`Transcript`]. Every stream fixture is
//! replayed under every network chunking, and must decode to the same chunks each time.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use llmgate_core::chat::StreamOptions;
use llmgate_core::{
    Error, ErrorKind, Provider, Result,
    chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Message},
    keys::Secret,
    provider::ProviderCall,
};
use llmgate_providers::{ProviderSpec, WireFamily, build_provider};
use llmgate_testkit::{Chunking, FakeUpstream, Recorded, Reply, anthropic, ollama, openai};
use serde_json::{Value, json};

const KEY: &str = "sk-conformance-0123456789-SECRET-wxyz";
const MODEL: &str = "test-model";
const USAGE: (u64, u64) = (11, 3);
const PIECES: &[&str] = &["Hé", "llo ", "wörld 🙂"];
const TOOL_ID: &str = "call_weather_1";
const TOOL_ARGS: &[&str] = &["{\"city\":", " \"Paris\"}"];

// ---------------------------------------------------------------------------------------------
// The table.

#[derive(Debug, Clone, Copy)]
enum Scenario {
    PlainTextJson,
    PlainTextStream,
    MultiChoice,
    ToolCallJson,
    ToolCallStream,
    UsageOnlyFinalChunk,
    MissingTerminator,
    MalformedEvent,
    UpstreamStatus {
        status: u16,
        retry_after: Option<&'static str>,
        kind: ErrorKind,
        served: u16,
        retryable: bool,
    },
    CutMidway,
    SlowFirstByte,
    Utf8SplitAcrossChunks,
}

const fn status(
    status: u16,
    retry_after: Option<&'static str>,
    kind: ErrorKind,
    served: u16,
    retryable: bool,
) -> Scenario {
    Scenario::UpstreamStatus {
        status,
        retry_after,
        kind,
        served,
        retryable,
    }
}

const SCENARIOS: &[Scenario] = &[
    Scenario::PlainTextJson,
    Scenario::PlainTextStream,
    Scenario::MultiChoice,
    Scenario::ToolCallJson,
    Scenario::ToolCallStream,
    Scenario::UsageOnlyFinalChunk,
    Scenario::MissingTerminator,
    Scenario::MalformedEvent,
    status(400, None, ErrorKind::InvalidRequest, 400, false),
    status(401, None, ErrorKind::Upstream, 502, true),
    status(429, Some("7"), ErrorKind::UpstreamUnavailable, 503, true),
    status(500, None, ErrorKind::Upstream, 502, true),
    status(503, None, ErrorKind::UpstreamUnavailable, 503, true),
    Scenario::CutMidway,
    Scenario::SlowFirstByte,
    Scenario::Utf8SplitAcrossChunks,
];

const FAMILIES: &[Family] = &[Family::OpenAi, Family::Anthropic, Family::Ollama];

enum Verdict {
    Pass,
    Skip(&'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_adapter_passes_the_conformance_table() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for scenario in SCENARIOS {
        for family in FAMILIES {
            let label = format!("{scenario:?} × {family}");
            match tokio::spawn(run(*scenario, *family)).await {
                Ok(Verdict::Pass) => ran += 1,
                Ok(Verdict::Skip(reason)) => eprintln!("skipped {label}: {reason}"),
                Err(join) => failures.push(format!("{label}: {}", panic_text(join))),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        SCENARIOS.len() * FAMILIES.len(),
        failures.join("\n")
    );
    assert!(ran >= SCENARIOS.len() * FAMILIES.len() - 2);
}

async fn run(scenario: Scenario, family: Family) -> Verdict {
    match scenario {
        Scenario::PlainTextJson => plain_text_json(family).await,
        Scenario::PlainTextStream => plain_text_stream(family).await,
        Scenario::MultiChoice => multi_choice(family).await,
        Scenario::ToolCallJson => tool_call_json(family).await,
        Scenario::ToolCallStream => tool_call_stream(family).await,
        Scenario::UsageOnlyFinalChunk => usage_only_final_chunk(family).await,
        Scenario::MissingTerminator => missing_terminator(family).await,
        Scenario::MalformedEvent => malformed_event(family).await,
        Scenario::UpstreamStatus {
            status,
            retry_after,
            kind,
            served,
            retryable,
        } => upstream_status(family, status, retry_after, kind, served, retryable).await,
        Scenario::CutMidway => cut_midway(family).await,
        Scenario::SlowFirstByte => slow_first_byte(family).await,
        Scenario::Utf8SplitAcrossChunks => utf8_split(family).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios.

async fn plain_text_json(family: Family) -> Verdict {
    let upstream = FakeUpstream::start().await;
    upstream.push(family.text_json(&PIECES.concat(), USAGE));
    let response = call(&family.provider(&upstream), &plain_request(false))
        .await
        .unwrap();
    family.assert_request(
        &upstream.last_request().unwrap(),
        RequestShape::Plain,
        false,
    );
    assert_eq!(
        Transcript::of_response(&response),
        Transcript::text(&PIECES.concat(), USAGE)
    );
    Verdict::Pass
}

async fn plain_text_stream(family: Family) -> Verdict {
    let body = family.text_stream(PIECES, USAGE);
    let chunks = replay_everywhere(family, &body, &plain_request(true), RequestShape::Plain).await;
    assert_eq!(
        Transcript::of_chunks(&chunks),
        Transcript::text(&PIECES.concat(), USAGE)
    );
    Verdict::Pass
}

async fn multi_choice(family: Family) -> Verdict {
    let mut request = plain_request(false);
    request.n = Some(2);
    let upstream = FakeUpstream::start().await;
    let provider = family.provider(&upstream);
    let Some((json_reply, stream_body)) = family.two_choices() else {
        // Check the refusal is clean: a 400 naming `n`, and no upstream call.
        let error = call(&provider, &request).await.unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.param(), Some("n"));
        assert_eq!(upstream.request_count(), 0);
        return Verdict::Skip(
            "the wire has one choice per answer; `n > 1` is refused with a 400 before any call",
        );
    };
    upstream.push(json_reply);
    let response = call(&provider, &request).await.unwrap();
    assert_eq!(upstream.last_request().unwrap().json()["n"], 2);
    let transcript = Transcript::of_response(&response);
    assert_eq!(transcript.texts, texts(&[(0, "first"), (1, "second")]));

    let mut request = plain_request(true);
    request.n = Some(2);
    let chunks = replay(family, &stream_body, &request).await;
    let transcript = Transcript::of_chunks(&chunks);
    assert_eq!(transcript.texts, texts(&[(0, "first"), (1, "second")]));
    assert_eq!(transcript.usage, Some(USAGE));
    Verdict::Pass
}

async fn tool_call_json(family: Family) -> Verdict {
    let upstream = FakeUpstream::start().await;
    upstream.push(family.tool_json(TOOL_ID, "weather", &TOOL_ARGS.concat()));
    let response = call(&family.provider(&upstream), &tool_request(false))
        .await
        .unwrap();
    family.assert_request(&upstream.last_request().unwrap(), RequestShape::Tool, false);
    let transcript = Transcript::of_response(&response);
    assert_eq!(transcript.finish, Some(FinishReason::ToolCalls));
    family.assert_weather_call(&transcript);
    Verdict::Pass
}

async fn tool_call_stream(family: Family) -> Verdict {
    let body = family.tool_stream(TOOL_ID, "weather", TOOL_ARGS);
    let chunks = replay_everywhere(family, &body, &tool_request(true), RequestShape::Tool).await;
    let transcript = Transcript::of_chunks(&chunks);
    assert_eq!(transcript.finish, Some(FinishReason::ToolCalls));
    family.assert_weather_call(&transcript);
    Verdict::Pass
}

async fn usage_only_final_chunk(family: Family) -> Verdict {
    let body = family.text_stream(PIECES, USAGE);
    let chunks = replay(family, &body, &plain_request(true)).await;
    let (last, earlier) = chunks.split_last().unwrap();
    assert!(last.choices.is_empty(), "the last chunk has no choices");
    let usage = last.usage.as_ref().expect("the last chunk carries usage");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), USAGE);
    assert_eq!(usage.total_tokens, USAGE.0 + USAGE.1);
    assert!(!usage.estimated);
    assert!(earlier.iter().all(|c| c.usage.is_none()));
    assert!(
        earlier
            .iter()
            .any(|c| c.choices.iter().any(|ch| ch.finish_reason.is_some())),
        "the finish reason comes before the usage chunk"
    );
    Verdict::Pass
}

async fn missing_terminator(family: Family) -> Verdict {
    let body = family.without_terminator(PIECES, USAGE);
    let items = replay_items(family, &body, &plain_request(true), Chunking::Whole).await;
    let error = ends_with_error(&items);
    assert_eq!(error.kind(), ErrorKind::Upstream, "{error}");
    let text: String = items
        .iter()
        .filter_map(|i| i.as_ref().ok())
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, PIECES.concat(), "what arrived is still delivered");
    Verdict::Pass
}

async fn malformed_event(family: Family) -> Verdict {
    for chunking in [Chunking::Whole, Chunking::Bytes(7)] {
        let body = family.with_malformed_event(PIECES, USAGE);
        let items = replay_items(family, &body, &plain_request(true), chunking).await;
        let error = ends_with_error(&items);
        assert_eq!(error.kind(), ErrorKind::Upstream, "{error}");
        assert!(
            items[..items.len() - 1]
                .iter()
                .any(|i| i.as_ref().is_ok_and(|c| !c.choices.is_empty())),
            "the chunks before the bad event arrive"
        );
    }
    Verdict::Pass
}

async fn upstream_status(
    family: Family,
    status: u16,
    retry_after: Option<&'static str>,
    kind: ErrorKind,
    served: u16,
    retryable: bool,
) -> Verdict {
    for stream in [false, true] {
        let upstream = FakeUpstream::start().await;
        let mut reply = family.error_reply(status, &format!("no thanks, key {KEY}"));
        if let Some(after) = retry_after {
            reply = reply.header("retry-after", after);
        }
        upstream.push(reply);
        let provider = family.provider(&upstream);
        let request = plain_request(stream);
        let error = if stream {
            call_stream(&provider, &request).await.err().unwrap()
        } else {
            call(&provider, &request).await.unwrap_err()
        };
        let how = if stream { "stream" } else { "json" };
        assert_eq!(error.kind(), kind, "{how}: {error}");
        assert_eq!(error.status(), served, "{how}");
        assert_eq!(error.is_retryable(), retryable, "{how}");
        assert_eq!(error.upstream_status(), Some(status), "{how}");
        let expected_wait = retry_after.map(|s| Duration::from_secs(s.parse().unwrap()));
        assert_eq!(error.retry_after(), expected_wait, "{how}");
        assert!(error.message().contains("no thanks"), "{how}: {error}");
        assert!(
            !error.message().contains("SECRET"),
            "{how}: key leaked: {error}"
        );
        assert!(!format!("{error:?}").contains("SECRET"));
    }
    Verdict::Pass
}

async fn cut_midway(family: Family) -> Verdict {
    let body = family.text_stream(PIECES, USAGE);
    for chunking in [Chunking::Whole, Chunking::Bytes(7)] {
        let upstream = FakeUpstream::start().await;
        upstream.push(
            body.reply(chunking)
                .cut_after(body.text.len() / 2)
                .frame_delay(Duration::from_millis(1)),
        );
        let stream = call_stream(&family.provider(&upstream), &plain_request(true))
            .await
            .unwrap();
        let items: Vec<Result<ChatChunk>> = stream.collect().await;
        let error = ends_with_error(&items);
        assert_eq!(error.kind(), ErrorKind::Upstream, "{chunking:?}: {error}");
        assert!(
            items
                .iter()
                .filter_map(|i| i.as_ref().ok())
                .all(|c| c.choices.iter().all(|ch| ch.finish_reason.is_none())),
            "a cut stream never reports a finish"
        );
    }
    Verdict::Pass
}

async fn slow_first_byte(family: Family) -> Verdict {
    for stream in [false, true] {
        let upstream = FakeUpstream::start().await;
        let reply = if stream {
            family.text_stream(PIECES, USAGE).reply(Chunking::Whole)
        } else {
            family.text_json("late", USAGE)
        };
        upstream.push(reply.first_byte_delay(Duration::from_secs(3)));
        let provider = family.provider_with_timeout(&upstream, Duration::from_millis(200));
        let request = plain_request(stream);
        let error = if stream {
            call_stream(&provider, &request).await.err().unwrap()
        } else {
            call(&provider, &request).await.unwrap_err()
        };
        assert_eq!(
            error.kind(),
            ErrorKind::UpstreamTimeout,
            "stream={stream}: {error}"
        );
        assert_eq!(error.status(), 504);
        assert!(error.is_retryable());
    }
    Verdict::Pass
}

async fn utf8_split(family: Family) -> Verdict {
    let pieces = ["日本", "語 🙂", "é", "\u{1F468}\u{200D}\u{1F469}"];
    let body = family.text_stream(&pieces, USAGE);
    for chunking in [
        Chunking::SplitInsideUtf8,
        Chunking::Bytes(1),
        Chunking::Bytes(2),
    ] {
        let chunks = replay_with(family, &body, &plain_request(true), chunking).await;
        assert_eq!(
            Transcript::of_chunks(&chunks),
            Transcript::text(&pieces.concat(), USAGE),
            "{chunking:?}"
        );
    }
    Verdict::Pass
}

// ---------------------------------------------------------------------------------------------
// Linear decoding: a long stream decodes without a quadratic cost (no timing assertion; a
// quadratic decoder would take minutes here, not a second).

#[tokio::test]
async fn fifty_thousand_events_decode_through_every_adapter() {
    const EVENTS: usize = 50_000;
    let pieces: Vec<&str> = vec!["ab"; EVENTS];
    for family in FAMILIES {
        let body = family.text_stream(&pieces, (1, EVENTS as u64));
        let chunks = replay_with(*family, &body, &plain_request(true), Chunking::Bytes(4096)).await;
        let transcript = Transcript::of_chunks(&chunks);
        assert_eq!(transcript.texts[&0].len(), 2 * EVENTS, "{family}");
        assert_eq!(transcript.usage, Some((1, EVENTS as u64)), "{family}");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests.

fn plain_request(stream: bool) -> ChatRequest {
    let mut request = ChatRequest::new(
        MODEL,
        vec![Message::system("be brief"), Message::user("héllo")],
    );
    request.max_tokens = Some(50);
    request.temperature = Some(0.5);
    if stream {
        // As the gateway sends streams to providers.
        request.stream = Some(true);
        request.stream_options = Some(StreamOptions {
            include_usage: Some(true),
            ..StreamOptions::default()
        });
    }
    request
}

fn weather_schema() -> Value {
    json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
}

fn tool_request(stream: bool) -> ChatRequest {
    let mut request = plain_request(stream);
    request.tools = Some(
        serde_json::from_value(json!([{"type": "function", "function": {
            "name": "weather", "description": "Current weather", "parameters": weather_schema()
        }}]))
        .unwrap(),
    );
    request.tool_choice = Some(serde_json::from_value(json!("auto")).unwrap());
    request
}

#[derive(Debug, Clone, Copy)]
enum RequestShape {
    Plain,
    Tool,
}

async fn call(provider: &Arc<dyn Provider>, request: &ChatRequest) -> Result<ChatResponse> {
    let key = Secret::new(KEY);
    provider
        .chat(ProviderCall {
            request,
            api_key: Some(&key),
        })
        .await
}

async fn call_stream(
    provider: &Arc<dyn Provider>,
    request: &ChatRequest,
) -> Result<llmgate_core::provider::ChunkStream> {
    let key = Secret::new(KEY);
    provider
        .chat_stream(ProviderCall {
            request,
            api_key: Some(&key),
        })
        .await
}

// ---------------------------------------------------------------------------------------------
// Replaying stream fixtures.

/// A stream body in a family's format, before it is cut into frames.
#[derive(Debug, Clone)]
struct StreamBody {
    text: String,
    content_type: &'static str,
    /// One event (SSE) or one line (NDJSON) ends with this.
    event_end: &'static str,
}

impl StreamBody {
    fn reply(&self, chunking: Chunking) -> Reply {
        // The split between `\r` and `\n` only exists when lines end in `\r\n`, which both
        // SSE and NDJSON readers must accept.
        let text = match chunking {
            Chunking::SplitCrLf => self.text.replace('\n', "\r\n"),
            _ => self.text.clone(),
        };
        Reply::status(200)
            .header("content-type", self.content_type)
            .body(text)
            .chunked(chunking)
    }

    fn chunkings(&self) -> [Chunking; 6] {
        [
            Chunking::Whole,
            Chunking::AfterEach(self.event_end),
            Chunking::Bytes(7),
            Chunking::Bytes(1),
            Chunking::SplitInsideUtf8,
            Chunking::SplitCrLf,
        ]
    }
}

async fn replay_items(
    family: Family,
    body: &StreamBody,
    request: &ChatRequest,
    chunking: Chunking,
) -> Vec<Result<ChatChunk>> {
    let upstream = FakeUpstream::start().await;
    upstream.push(body.reply(chunking));
    let stream = call_stream(&family.provider(&upstream), request)
        .await
        .unwrap();
    stream.collect().await
}

async fn replay_with(
    family: Family,
    body: &StreamBody,
    request: &ChatRequest,
    chunking: Chunking,
) -> Vec<ChatChunk> {
    replay_items(family, body, request, chunking)
        .await
        .into_iter()
        .map(|item| item.unwrap_or_else(|e| panic!("{chunking:?}: unexpected stream error: {e}")))
        .collect()
}

async fn replay(family: Family, body: &StreamBody, request: &ChatRequest) -> Vec<ChatChunk> {
    replay_with(family, body, request, Chunking::Whole).await
}

/// Replay under every chunking, asserting the request once and identical chunks every time.
async fn replay_everywhere(
    family: Family,
    body: &StreamBody,
    request: &ChatRequest,
    shape: RequestShape,
) -> Vec<ChatChunk> {
    let upstream = FakeUpstream::start().await;
    upstream.push(body.reply(Chunking::Whole));
    let reference: Vec<ChatChunk> = call_stream(&family.provider(&upstream), request)
        .await
        .unwrap()
        .map(|item| item.unwrap())
        .collect()
        .await;
    family.assert_request(&upstream.last_request().unwrap(), shape, true);
    for chunking in body.chunkings() {
        let chunks = replay_with(family, body, request, chunking).await;
        assert_eq!(
            normalized(&chunks),
            normalized(&reference),
            "{chunking:?} decodes differently"
        );
    }
    reference
}

/// Chunks as JSON without the fields an adapter may take from the clock.
fn normalized(chunks: &[ChatChunk]) -> Vec<Value> {
    chunks
        .iter()
        .map(|chunk| {
            let mut value = serde_json::to_value(chunk).unwrap();
            let object = value.as_object_mut().unwrap();
            object.remove("created");
            object.remove("id");
            value
        })
        .collect()
}

fn ends_with_error(items: &[Result<ChatChunk>]) -> &Error {
    let (last, before) = items.split_last().expect("at least one item");
    assert!(
        before.iter().all(Result::is_ok),
        "an error item is the last item"
    );
    last.as_ref().expect_err("the stream ends with an error")
}

fn panic_text(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(join) => join.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// What was decoded, without the family's accidents.

#[derive(Debug, Default, PartialEq)]
struct Transcript {
    /// Text per choice index.
    texts: BTreeMap<u32, String>,
    /// (id, name, arguments as JSON) per tool-call index, choice 0.
    tool_calls: Vec<(String, String, Value)>,
    finish: Option<FinishReason>,
    usage: Option<(u64, u64)>,
}

fn texts(pairs: &[(u32, &str)]) -> BTreeMap<u32, String> {
    pairs.iter().map(|(i, t)| (*i, (*t).to_owned())).collect()
}

impl Transcript {
    fn text(text: &str, usage: (u64, u64)) -> Self {
        Self {
            texts: texts(&[(0, text)]),
            tool_calls: Vec::new(),
            finish: Some(FinishReason::Stop),
            usage: Some(usage),
        }
    }

    fn of_response(response: &ChatResponse) -> Self {
        let mut transcript = Self::default();
        for choice in &response.choices {
            let text = choice.message.text_content();
            if !text.is_empty() {
                transcript.texts.insert(choice.index, text);
            }
            if choice.index == 0 {
                transcript.finish = choice.finish_reason;
                for call in choice.message.tool_calls.iter().flatten() {
                    transcript.tool_calls.push((
                        call.id.clone(),
                        call.function.name.clone(),
                        serde_json::from_str(&call.function.arguments).unwrap(),
                    ));
                }
            }
        }
        transcript.usage = response
            .usage
            .as_ref()
            .map(|u| (u.prompt_tokens, u.completion_tokens));
        transcript
    }

    fn of_chunks(chunks: &[ChatChunk]) -> Self {
        let mut transcript = Self::default();
        let mut calls: BTreeMap<u32, (String, String, String)> = BTreeMap::new();
        for chunk in chunks {
            if let Some(usage) = &chunk.usage {
                transcript.usage = Some((usage.prompt_tokens, usage.completion_tokens));
            }
            for choice in &chunk.choices {
                if let Some(text) = choice.delta.content.as_deref().filter(|t| !t.is_empty()) {
                    transcript
                        .texts
                        .entry(choice.index)
                        .or_default()
                        .push_str(text);
                }
                if choice.index != 0 {
                    continue;
                }
                if choice.finish_reason.is_some() {
                    transcript.finish = choice.finish_reason;
                }
                for call in choice.delta.tool_calls.iter().flatten() {
                    let entry = calls.entry(call.index).or_default();
                    if let Some(id) = &call.id {
                        entry.0.clone_from(id);
                    }
                    if let Some(function) = &call.function {
                        if let Some(name) = &function.name {
                            entry.1.push_str(name);
                        }
                        if let Some(arguments) = &function.arguments {
                            entry.2.push_str(arguments);
                        }
                    }
                }
            }
        }
        let indices: Vec<u32> = calls.keys().copied().collect();
        let expected: Vec<u32> = (0..calls.len() as u32).collect();
        assert_eq!(indices, expected, "tool calls are numbered from 0 in order");
        transcript.tool_calls = calls
            .into_values()
            .map(|(id, name, arguments)| (id, name, serde_json::from_str(&arguments).unwrap()))
            .collect();
        transcript
    }
}

// ---------------------------------------------------------------------------------------------
// The families: how to build each adapter, its fixtures, and the request it must send.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    OpenAi,
    Anthropic,
    Ollama,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Family {
    fn provider(self, upstream: &FakeUpstream) -> Arc<dyn Provider> {
        self.provider_with_timeout(upstream, Duration::from_secs(10))
    }

    /// Built through `build_provider`, as the server builds them from config.
    fn provider_with_timeout(
        self,
        upstream: &FakeUpstream,
        timeout: Duration,
    ) -> Arc<dyn Provider> {
        let (family, base) = match self {
            Family::OpenAi => (WireFamily::OpenAi, format!("{}/v1", upstream.url())),
            Family::Anthropic => (WireFamily::Anthropic, upstream.url()),
            Family::Ollama => (WireFamily::Ollama, upstream.url()),
        };
        let mut spec = ProviderSpec::new(format!("{self}-under-test"), family);
        spec.api_base = Some(base);
        spec.timeout = timeout;
        build_provider(&spec).unwrap()
    }

    fn text_json(self, text: &str, (prompt, completion): (u64, u64)) -> Reply {
        let body = match self {
            Family::OpenAi => openai::completion(MODEL, text, prompt, completion),
            Family::Anthropic => anthropic::message(MODEL, text, prompt, completion),
            Family::Ollama => ollama::chat(MODEL, text, prompt, completion),
        };
        Reply::json(200, body)
    }

    fn tool_json(self, id: &str, name: &str, arguments: &str) -> Reply {
        let body = match self {
            Family::OpenAi => openai::tool_call_completion(MODEL, id, name, arguments),
            Family::Anthropic => anthropic::tool_use_message(
                MODEL,
                id,
                name,
                serde_json::from_str(arguments).unwrap(),
            ),
            Family::Ollama => {
                ollama::tool_call_chat(MODEL, name, serde_json::from_str(arguments).unwrap())
            }
        };
        Reply::json(200, body)
    }

    fn sse(events: &[Value], done: bool) -> StreamBody {
        let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
        if done {
            text.push_str("data: [DONE]\n\n");
        }
        StreamBody {
            text,
            content_type: "text/event-stream",
            event_end: "\n\n",
        }
    }

    fn named_sse(events: &[Value]) -> StreamBody {
        StreamBody {
            text: anthropic::sse_body(events),
            content_type: "text/event-stream",
            event_end: "\n\n",
        }
    }

    fn ndjson(lines: &[Value]) -> StreamBody {
        StreamBody {
            text: lines.iter().map(|l| format!("{l}\n")).collect(),
            content_type: "application/x-ndjson",
            event_end: "\n",
        }
    }

    fn text_events(self, pieces: &[&str], (prompt, completion): (u64, u64)) -> Vec<Value> {
        match self {
            Family::OpenAi => openai::text_chunks(MODEL, pieces, Some((prompt, completion))),
            Family::Anthropic => anthropic::text_events(MODEL, pieces, prompt, completion),
            Family::Ollama => ollama::text_lines(MODEL, pieces, Some((prompt, completion))),
        }
    }

    fn body(self, events: &[Value], terminated: bool) -> StreamBody {
        match self {
            Family::OpenAi => Self::sse(events, terminated),
            Family::Anthropic => Self::named_sse(events),
            Family::Ollama => Self::ndjson(events),
        }
    }

    fn text_stream(self, pieces: &[&str], usage: (u64, u64)) -> StreamBody {
        self.body(&self.text_events(pieces, usage), true)
    }

    /// The text stream without the family's terminator: `[DONE]`, `message_stop`, the `done`
    /// line.
    fn without_terminator(self, pieces: &[&str], usage: (u64, u64)) -> StreamBody {
        let mut events = self.text_events(pieces, usage);
        match self {
            Family::OpenAi => {}
            Family::Anthropic => {
                events.pop();
            }
            Family::Ollama => {
                events.pop();
            }
        }
        self.body(&events, false)
    }

    /// The text stream with an event that is not JSON after the first two.
    fn with_malformed_event(self, pieces: &[&str], usage: (u64, u64)) -> StreamBody {
        let events = self.text_events(pieces, usage);
        let (head, tail) = events.split_at(2);
        let mut body = self.body(head, false);
        body.text.push_str(match self {
            Family::OpenAi => "data: {\"id\": broken\n\n",
            Family::Anthropic => "event: content_block_delta\ndata: {\"type\": broken\n\n",
            Family::Ollama => "{\"model\": broken\n",
        });
        body.text.push_str(&self.body(tail, true).text);
        body
    }

    fn tool_stream(self, id: &str, name: &str, pieces: &[&str]) -> StreamBody {
        match self {
            Family::OpenAi => Self::sse(
                &openai::tool_call_chunks(MODEL, id, name, pieces, Some(USAGE)),
                true,
            ),
            Family::Anthropic => Self::named_sse(&anthropic::tool_use_events(
                MODEL, id, name, pieces, USAGE.0, USAGE.1,
            )),
            Family::Ollama => Self::ndjson(&ollama::tool_call_lines(
                MODEL,
                name,
                serde_json::from_str(&pieces.concat()).unwrap(),
            )),
        }
    }

    /// Two choices, whole and streamed; `None` where the wire has no `n`.
    fn two_choices(self) -> Option<(Reply, StreamBody)> {
        if self != Family::OpenAi {
            return None;
        }
        let mut whole = openai::completion(MODEL, "first", USAGE.0, USAGE.1);
        let mut second = whole["choices"][0].clone();
        second["index"] = json!(1);
        second["message"]["content"] = json!("second");
        whole["choices"].as_array_mut().unwrap().push(second);

        let chunk = |index: u32, delta: Value, finish: Value| {
            json!({"id": "chatcmpl-n", "object": "chat.completion.chunk", "created": 1,
                   "model": MODEL, "usage": null,
                   "choices": [{"index": index, "delta": delta, "finish_reason": finish}]})
        };
        let events = vec![
            chunk(0, json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(1, json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(0, json!({"content": "fir"}), Value::Null),
            chunk(1, json!({"content": "sec"}), Value::Null),
            chunk(1, json!({"content": "ond"}), Value::Null),
            chunk(0, json!({"content": "st"}), Value::Null),
            chunk(0, json!({}), json!("stop")),
            chunk(1, json!({}), json!("stop")),
            json!({"id": "chatcmpl-n", "object": "chat.completion.chunk", "created": 1,
                   "model": MODEL, "choices": [], "usage": openai::usage(USAGE.0, USAGE.1)}),
        ];
        Some((Reply::json(200, whole), Self::sse(&events, true)))
    }

    fn error_reply(self, status: u16, message: &str) -> Reply {
        let body = match self {
            Family::OpenAi => {
                let kind = if status >= 500 {
                    "server_error"
                } else {
                    "invalid_request_error"
                };
                openai::error(message, kind, None)
            }
            Family::Anthropic => {
                let kind = match status {
                    401 => "authentication_error",
                    429 => "rate_limit_error",
                    500 => "api_error",
                    503 | 529 => "overloaded_error",
                    _ => "invalid_request_error",
                };
                anthropic::error(kind, message)
            }
            Family::Ollama => ollama::error(message),
        };
        Reply::json(status, body)
    }

    /// Ollama sends no tool-call ids, so the adapter makes one up.
    fn assert_weather_call(self, transcript: &Transcript) {
        assert_eq!(transcript.tool_calls.len(), 1, "{transcript:?}");
        let (id, name, arguments) = &transcript.tool_calls[0];
        assert_eq!(name, "weather");
        assert_eq!(arguments, &json!({"city": "Paris"}));
        match self {
            Family::Ollama => assert!(id.starts_with("call_") && id.len() > 5, "{id}"),
            _ => assert_eq!(id, TOOL_ID),
        }
    }

    fn assert_request(self, sent: &Recorded, shape: RequestShape, stream: bool) {
        let headers: HashMap<&str, &str> = sent
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(sent.method, "POST");
        assert_eq!(headers.get("content-type"), Some(&"application/json"));
        let bearer = format!("Bearer {KEY}");
        let tools = matches!(shape, RequestShape::Tool);
        let expected = match self {
            Family::OpenAi => {
                assert_eq!(sent.path, "/v1/chat/completions");
                assert_eq!(headers.get("authorization"), Some(&bearer.as_str()));
                let mut body = json!({
                    "model": MODEL, "max_tokens": 50, "temperature": 0.5,
                    "messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "héllo"}]
                });
                if stream {
                    body["stream"] = json!(true);
                    body["stream_options"] = json!({"include_usage": true});
                }
                if tools {
                    body["tools"] = json!([{"type": "function", "function": {
                        "name": "weather", "description": "Current weather",
                        "parameters": weather_schema()}}]);
                    body["tool_choice"] = json!("auto");
                }
                body
            }
            Family::Anthropic => {
                assert_eq!(sent.path, "/v1/messages");
                assert_eq!(headers.get("x-api-key"), Some(&KEY));
                assert_eq!(headers.get("anthropic-version"), Some(&"2023-06-01"));
                assert_eq!(headers.get("authorization"), None);
                let mut body = json!({
                    "model": MODEL, "max_tokens": 50, "temperature": 0.5, "system": "be brief",
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "héllo"}]}]
                });
                if stream {
                    body["stream"] = json!(true);
                }
                if tools {
                    body["tools"] = json!([{"name": "weather", "description": "Current weather",
                                            "input_schema": weather_schema()}]);
                    body["tool_choice"] = json!({"type": "auto"});
                }
                body
            }
            Family::Ollama => {
                assert_eq!(sent.path, "/api/chat");
                assert_eq!(headers.get("authorization"), Some(&bearer.as_str()));
                let mut body = json!({
                    "model": MODEL, "stream": stream,
                    "messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "héllo"}],
                    "options": {"temperature": 0.5, "num_predict": 50}
                });
                if tools {
                    body["tools"] = json!([{"type": "function", "function": {
                        "name": "weather", "description": "Current weather",
                        "parameters": weather_schema()}}]);
                }
                body
            }
        };
        assert_eq!(sent.json(), expected, "{self}: request body");
    }
}
