//! The streaming path, per chunk, without sockets: a 1,000-chunk OpenAI SSE body decoded by
//! the OpenAI adapter's decoder (sse-stream + chunk parsing), the same chunks metered by the
//! gateway and encoded by the server's SSE encoder (and by the Messages encoder, as
//! `POST /v1/messages` onto an OpenAI-compatible upstream sends them), and the whole way through
//! (decode → gateway → encode), as a streamed request to an OpenAI-compatible upstream runs.
//!
//! Run: `cargo bench -p llmgate-benches --bench sse` (divide by 1,000 for the cost per chunk).

use std::hint::black_box;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::StreamExt;
use http_body_util::BodyExt;
use llmgate_core::{
    Caller, Error, Gateway, Provider, Result,
    catalog::Deployment,
    chat::{ChatChunk, ChatRequest, ChatResponse, Message},
    pricing::ModelPrice,
    provider::{ChunkStream, ProviderCall},
};
use llmgate_providers::openai::decode_sse_for_bench;
use llmgate_server::{Body, messages_body_for_bench, sse_body_for_bench};

const CHUNKS: usize = 1000;
/// Upstream bodies arrive in reads of about this size.
const READ_BYTES: usize = 4096;

/// An OpenAI stream: role, 1,000 content chunks, finish, usage, `[DONE]`.
fn openai_sse() -> Vec<u8> {
    let head = r#""id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini""#;
    let mut body = format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"finish_reason\":null}}]}}\n\n"
    );
    for i in 0..CHUNKS {
        body.push_str(&format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    body.push_str(&format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    body.push_str(&format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":12,\"completion_tokens\":{CHUNKS},\"total_tokens\":{}}}}}\n\n",
        12 + CHUNKS
    ));
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

/// The body as network reads.
fn reads(body: &Bytes) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let mut frames = Vec::with_capacity(body.len() / READ_BYTES + 1);
    let mut at = 0;
    while at < body.len() {
        let end = (at + READ_BYTES).min(body.len());
        frames.push(Ok(body.slice(at..end)));
        at = end;
    }
    futures::stream::iter(frames)
}

/// Streams either pre-decoded chunks or the SSE body through the real decoder.
#[derive(Debug)]
struct Upstream {
    body: Bytes,
    decoded: Vec<ChatChunk>,
    decode: bool,
}

#[async_trait]
impl Provider for Upstream {
    fn name(&self) -> &str {
        "up"
    }

    fn requires_key(&self) -> bool {
        false
    }

    async fn chat(&self, _call: ProviderCall<'_>) -> Result<ChatResponse> {
        Err(Error::invalid_request("streams only"))
    }

    async fn chat_stream(&self, _call: ProviderCall<'_>) -> Result<ChunkStream> {
        if self.decode {
            return Ok(decode_sse_for_bench(reads(&self.body)));
        }
        let chunks = self.decoded.clone().into_iter().map(Ok);
        Ok(Box::pin(futures::stream::iter(chunks)))
    }
}

fn gateway(upstream: Upstream) -> Gateway {
    Gateway::builder()
        .provider(Arc::new(upstream))
        .model(Deployment::new("m", "up", "gpt-4o-mini").with_price(ModelPrice::default()))
        .build()
}

/// One streamed request, SSE-encoded and read to the end; returns the bytes sent.
async fn stream_through(gateway: &Gateway, caller: &Caller, request: &ChatRequest) -> usize {
    stream_as(gateway, caller, request, sse_body_for_bench).await
}

/// One streamed request, encoded by `encode` and read to the end; returns the bytes sent.
async fn stream_as(
    gateway: &Gateway,
    caller: &Caller,
    request: &ChatRequest,
    encode: fn(llmgate_core::gateway::CompletionStream) -> Body,
) -> usize {
    let Ok(stream) = gateway.chat_stream(caller, request.clone()).await else {
        return 0;
    };
    let mut body = encode(stream);
    let mut sent = 0;
    while let Some(Ok(frame)) = body.frame().await {
        sent += frame.data_ref().map_or(0, Bytes::len);
    }
    sent
}

fn sse(c: &mut Criterion) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let body = Bytes::from(openai_sse());
    let decoded: Vec<ChatChunk> = runtime.block_on(async {
        decode_sse_for_bench(reads(&body))
            .filter_map(|item| async move { item.ok() })
            .collect()
            .await
    });
    assert_eq!(decoded.len(), CHUNKS + 3, "role, content, finish, usage");

    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("decode/openai-1000-chunks", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut stream = decode_sse_for_bench(reads(black_box(&body)));
                let mut n = 0;
                while let Some(item) = stream.next().await {
                    n += usize::from(item.is_ok());
                }
                n
            })
        })
    });

    let caller = Caller::admin();
    let request = ChatRequest::new("m", vec![Message::user("Count to a thousand.")]);
    let metered = gateway(Upstream {
        body: body.clone(),
        decoded: decoded.clone(),
        decode: false,
    });
    let sent = runtime.block_on(stream_through(&metered, &caller, &request));
    assert!(sent > body.len() / 2, "the encoded stream came out");
    group.bench_function("gateway+encode/1000-chunks", |b| {
        b.iter(|| runtime.block_on(stream_through(&metered, &caller, black_box(&request))))
    });

    // The same chunks as Anthropic Messages events (`POST /v1/messages` onto an OpenAI upstream).
    let sent = runtime.block_on(stream_as(
        &metered,
        &caller,
        &request,
        messages_body_for_bench,
    ));
    assert!(sent > body.len() / 2, "the Messages events came out");
    group.bench_function("gateway+messages-encode/1000-chunks", |b| {
        b.iter(|| {
            runtime.block_on(stream_as(
                &metered,
                &caller,
                black_box(&request),
                messages_body_for_bench,
            ))
        })
    });

    let whole = gateway(Upstream {
        body: body.clone(),
        decoded: Vec::new(),
        decode: true,
    });
    group.bench_function("decode+gateway+encode/1000-chunks", |b| {
        b.iter(|| runtime.block_on(stream_through(&whole, &caller, black_box(&request))))
    });
    group.finish();
}

criterion_group!(benches, sse);
criterion_main!(benches);
