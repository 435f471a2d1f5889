#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The embeddings adapters against fake upstreams over real loopback HTTP, answered in one-byte
//! and seven-byte pieces: OpenAI's `/embeddings` (request as sent, vectors kept in their
//! encoding, key as a bearer token), TEI's `/embed` and Ollama's `/api/embed` (floats, counted
//! when the upstream does not), upstream errors, and Anthropic's refusal.

use std::time::Duration;

use llmgate_core::{
    ErrorKind, Provider, Result,
    embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EncodingFormat},
    keys::Secret,
    provider::EmbedCall,
};
use llmgate_providers::anthropic::{self, Anthropic};
use llmgate_providers::ollama::Ollama;
use llmgate_providers::{EmbeddingsApi, OpenAiCompatible, UpstreamConfig};
use llmgate_testkit::{Chunking, FakeUpstream, Recorded, Reply, embeddings};
use serde_json::json;

const HOSTILE: [Chunking; 2] = [Chunking::Bytes(1), Chunking::Bytes(7)];

fn openai(base: String, api: EmbeddingsApi) -> OpenAiCompatible {
    OpenAiCompatible::new(UpstreamConfig {
        name: "up".into(),
        api_base: base,
        timeout: Duration::from_secs(10),
        headers: Default::default(),
    })
    .unwrap()
    .with_embeddings_api(api)
}

async fn embed(
    provider: &dyn Provider,
    request: &EmbeddingRequest,
    key: Option<&Secret>,
) -> Result<EmbeddingResponse> {
    provider
        .embed(EmbedCall {
            request,
            api_key: key,
        })
        .await
}

/// A responder whose answers arrive in `chunking`'s pieces.
fn chunked(
    responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    chunking: Chunking,
) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| responder(request).chunked(chunking)
}

#[tokio::test]
async fn openai_embeddings_send_the_request_and_keep_the_asked_encoding() {
    for chunking in HOSTILE {
        let upstream = FakeUpstream::start().await;
        upstream.respond_with(chunked(embeddings::openai(true), chunking));
        let provider = openai(format!("{}/v1", upstream.url()), EmbeddingsApi::OpenAi);
        let mut request = EmbeddingRequest::new("text-embedding-3-small", vec!["a b", "c"])
            .with_encoding(EncodingFormat::Base64);
        request.dimensions = Some(3);
        request.user = Some("u-1".into());
        let key = Secret::new("sk-test-1234");
        let answer = embed(&provider, &request, Some(&key)).await.unwrap();
        let sent = upstream.last_request().unwrap();
        assert_eq!(sent.path, "/v1/embeddings");
        assert_eq!(
            sent.header("authorization").as_deref(),
            Some("Bearer sk-test-1234")
        );
        assert_eq!(
            sent.json(),
            json!({"model": "text-embedding-3-small", "input": ["a b", "c"],
                   "encoding_format": "base64", "dimensions": 3, "user": "u-1"})
        );
        assert_eq!(answer.data.len(), 2);
        assert_eq!(answer.data[1].embedding.format(), EncodingFormat::Base64);
        assert_eq!(
            answer.data[1].embedding.to_floats().unwrap(),
            [1.5, 0.25, -0.125]
        );
        assert_eq!(answer.usage.unwrap().prompt_tokens, 3, "{chunking:?}");
    }
}

#[tokio::test]
async fn an_openai_answer_without_usage_is_counted_and_token_arrays_count_their_length() {
    let upstream = FakeUpstream::start().await;
    upstream.respond_with(embeddings::openai(false));
    let provider = openai(format!("{}/v1", upstream.url()), EmbeddingsApi::OpenAi);
    let tokens = EmbeddingRequest::new("m", EmbeddingInput::TokenLists(vec![vec![1, 2], vec![3]]));
    let answer = embed(&provider, &tokens, None).await.unwrap();
    assert_eq!(answer.usage.unwrap().prompt_tokens, 3);
    assert_eq!(
        upstream.last_request().unwrap().json()["input"],
        json!([[1, 2], [3]])
    );
    let text = EmbeddingRequest::new("m", "hello world");
    assert_eq!(
        embed(&provider, &text, None)
            .await
            .unwrap()
            .usage
            .unwrap()
            .prompt_tokens,
        2
    );
}

#[tokio::test]
async fn tei_gets_inputs_at_embed_and_answers_floats() {
    for chunking in HOSTILE {
        let upstream = FakeUpstream::start().await;
        upstream.respond_with(chunked(embeddings::tei(), chunking));
        let provider = openai(upstream.url(), EmbeddingsApi::Tei);
        let request = EmbeddingRequest::new("bge", vec!["hello world", "hi"])
            .with_encoding(EncodingFormat::Base64);
        let answer = embed(&provider, &request, None).await.unwrap();
        let sent = upstream.last_request().unwrap();
        assert_eq!(sent.path, "/embed");
        assert_eq!(
            sent.json(),
            json!({"inputs": ["hello world", "hi"], "truncate": false})
        );
        // The adapter hands floats on; the gateway encodes them as the client asked.
        assert_eq!(answer.data[0].embedding.format(), EncodingFormat::Float);
        assert_eq!(
            answer.data[1].embedding.to_floats().unwrap(),
            [1.5, 0.25, -0.125, 1.0]
        );
        assert_eq!(answer.model, "bge");
        assert_eq!(
            answer.usage.unwrap().prompt_tokens,
            3,
            "counted by the tokenizer"
        );
    }
}

#[tokio::test]
async fn ollama_embeds_texts_at_api_embed_and_refuses_token_ids() {
    for chunking in HOSTILE {
        let upstream = FakeUpstream::start().await;
        upstream.respond_with(chunked(embeddings::ollama(), chunking));
        let provider = Ollama::new(UpstreamConfig::new("local", upstream.url())).unwrap();
        let answer = embed(
            &provider,
            &EmbeddingRequest::new("nomic-embed-text", "one two"),
            None,
        )
        .await
        .unwrap();
        let sent = upstream.last_request().unwrap();
        assert_eq!(sent.path, "/api/embed");
        assert_eq!(
            sent.json(),
            json!({"model": "nomic-embed-text", "input": ["one two"], "truncate": false})
        );
        assert_eq!(answer.usage.unwrap().prompt_tokens, 2);
        assert_eq!(
            answer.data[0].embedding.to_floats().unwrap(),
            [0.5, 0.25, -0.125, 1.0]
        );

        let tokens = EmbeddingRequest::new("nomic-embed-text", EmbeddingInput::Tokens(vec![1]));
        let error = embed(&provider, &tokens, None).await.unwrap_err();
        assert_eq!((error.status(), error.param()), (400, Some("input")));
    }
}

#[tokio::test]
async fn upstream_failures_are_retryable_errors_without_the_key() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        500,
        json!({"error": {"message": "overloaded, key sk-test-1234", "type": "server_error"}}),
    ));
    upstream.push(Reply::json(200, json!({"data": "nope"})));
    let provider = openai(format!("{}/v1", upstream.url()), EmbeddingsApi::OpenAi);
    let key = Secret::new("sk-test-1234");
    let request = EmbeddingRequest::new("m", "a");
    let error = embed(&provider, &request, Some(&key)).await.unwrap_err();
    assert_eq!(error.upstream_status(), Some(500));
    assert!(error.is_retryable());
    assert!(
        !error.message().contains("sk-test-1234"),
        "{}",
        error.message()
    );
    let error = embed(&provider, &request, Some(&key)).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Upstream);
}

#[tokio::test]
async fn anthropic_has_no_embeddings() {
    let provider = Anthropic::new(UpstreamConfig::new(
        "anthropic",
        anthropic::DEFAULT_API_BASE,
    ))
    .unwrap();
    let error = embed(&provider, &EmbeddingRequest::new("claude", "a"), None)
        .await
        .unwrap_err();
    assert_eq!(error.status(), 400);
    assert_eq!(error.code(), Some("embeddings_unsupported"));
}

#[tokio::test]
async fn an_ollama_in_band_error_is_an_upstream_error_without_the_key() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        200,
        json!({"error": "model \"x\" not found for sk-proxy-5678"}),
    ));
    let provider = Ollama::new(UpstreamConfig::new("local", upstream.url())).unwrap();
    let key = Secret::new("sk-proxy-5678");
    let error = embed(&provider, &EmbeddingRequest::new("x", "a"), Some(&key))
        .await
        .unwrap_err();
    assert_eq!(error.upstream_status(), Some(500));
    assert!(
        !error.message().contains("sk-proxy-5678"),
        "{}",
        error.message()
    );
}
