#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Ollama native adapter against a scripted upstream over real loopback HTTP.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use llmgate_core::{
    Caller, ErrorKind, Gateway, Provider, Result,
    catalog::Deployment,
    chat::{ChatChunk, ChatRequest, FinishReason, Message},
    keys::Secret,
    pricing::ModelPrice,
    provider::ProviderCall,
};
use llmgate_providers::UpstreamConfig;
use llmgate_providers::ollama::Ollama;
use llmgate_testkit::{Chunking, FakeUpstream, Reply, ollama};
use serde_json::json;

const MODEL: &str = "llama3.2:3b";

fn provider(upstream: &FakeUpstream) -> Ollama {
    let mut config = UpstreamConfig::new("ollama", format!("{}/", upstream.url()));
    config.timeout = Duration::from_secs(10);
    Ollama::new(config).unwrap()
}

fn request() -> ChatRequest {
    let mut request = ChatRequest::new(
        MODEL,
        vec![Message::system("be brief"), Message::user("hi")],
    );
    request.max_tokens = Some(64);
    request
}

async fn stream(provider: &Ollama, request: &ChatRequest) -> Vec<Result<ChatChunk>> {
    provider
        .chat_stream(ProviderCall {
            request,
            api_key: None,
        })
        .await
        .unwrap()
        .collect()
        .await
}

#[tokio::test]
async fn json_chat_sends_stream_false_explicitly_and_no_auth() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, ollama::chat(MODEL, "Hello!", 26, 4)));
    let response = provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: None,
        })
        .await
        .unwrap();
    let sent = upstream.last_request().unwrap();
    assert_eq!(sent.path, "/api/chat");
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(
        sent.json(),
        json!({
            "model": MODEL, "stream": false,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            "options": {"num_predict": 64}
        })
    );
    assert_eq!(response.choices[0].message.text_content(), "Hello!");
    assert_eq!(response.choices[0].finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (26, 4));
}

#[tokio::test]
async fn a_configured_key_is_sent_as_bearer() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(200, ollama::chat(MODEL, "ok", 1, 1)));
    let key = Secret::new("proxy-token-123456");
    provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: Some(&key),
        })
        .await
        .unwrap();
    assert_eq!(
        upstream
            .last_request()
            .unwrap()
            .header("authorization")
            .as_deref(),
        Some("Bearer proxy-token-123456")
    );
}

#[tokio::test]
async fn ndjson_stream_decodes_text_finish_and_usage_under_one_byte_frames() {
    let upstream = FakeUpstream::start().await;
    let lines = ollama::text_lines(MODEL, &["Hé", "llo 🙂"], Some((26, 4)));
    upstream.push(Reply::ndjson(&lines).chunked(Chunking::Bytes(1)));
    let items = stream(&provider(&upstream), &request()).await;
    assert_eq!(upstream.last_request().unwrap().json()["stream"], true);
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| &c.choices)
        .filter_map(|c| c.delta.content.as_deref())
        .collect();
    assert_eq!(text, "Héllo 🙂");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish.choices[0].finish_reason, Some(FinishReason::Stop));
    let last = chunks.last().unwrap();
    assert!(last.choices.is_empty());
    assert_eq!(last.usage.as_ref().unwrap().total_tokens, 30);
}

#[tokio::test]
async fn an_error_line_mid_stream_ends_it_with_an_error() {
    let upstream = FakeUpstream::start().await;
    let mut lines = ollama::text_lines(MODEL, &["a", "b"], Some((1, 2)));
    lines.truncate(1);
    lines.push(ollama::error("llama runner process has terminated"));
    upstream.push(Reply::ndjson(&lines));
    let items = stream(&provider(&upstream), &request()).await;
    let (last, good) = items.split_last().unwrap();
    assert_eq!(good.len(), 2);
    let error = last.as_ref().unwrap_err();
    assert!(
        error
            .message()
            .contains("llama runner process has terminated")
    );
}

#[tokio::test]
async fn unknown_model_is_a_final_400_with_ollamas_message() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        404,
        ollama::error("model \"nope\" not found, try pulling it first"),
    ));
    let error = provider(&upstream)
        .chat(ProviderCall {
            request: &request(),
            api_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(!error.is_retryable());
    assert!(error.message().contains("try pulling it first"), "{error}");
}

#[tokio::test]
async fn remote_image_urls_are_refused_without_calling_upstream() {
    let upstream = FakeUpstream::start().await;
    let request: ChatRequest = serde_json::from_value(json!({
        "model": "llava", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]
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
async fn list_models_reads_api_tags() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::json(
        200,
        ollama::tags(&["llama3.2:latest", "qwen2.5:7b"]),
    ));
    let models = provider(&upstream).list_models().await.unwrap();
    let sent = upstream.last_request().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("GET", "/api/tags")
    );
    let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["llama3.2:latest", "qwen2.5:7b"]);
    assert_eq!(models[0].size, Some(2_019_393_189));
    assert_eq!(models[0].quantization_level.as_deref(), Some("Q4_K_M"));
}

#[tokio::test]
async fn without_token_counts_the_gateway_bills_an_estimate() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::ndjson(&ollama::text_lines(
        MODEL,
        &["twelve bytes"],
        None,
    )));
    let gateway = Gateway::builder()
        .provider(Arc::new(provider(&upstream)))
        .model(Deployment::new("local", "ollama", MODEL).with_price(ModelPrice::default()))
        .build();
    let mut request = request();
    request.model = "local".to_owned();
    let chunks: Vec<ChatChunk> = gateway
        .chat_stream(&Caller::admin(), request)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let usage = chunks.last().unwrap().usage.clone().unwrap();
    assert!(usage.estimated);
    // "twelve bytes" is 12 bytes: 4 tokens at the estimate's 3 bytes per token.
    assert_eq!(usage.completion_tokens, 4);
    assert!(usage.prompt_tokens > 0);
}
