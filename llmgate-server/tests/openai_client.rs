#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The real `async-openai` client against the real server and `demo/echo`.

mod support;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, CreateChatCompletionRequestArgs,
};
use futures::StreamExt;
use support::*;

fn openai_client(url: &str) -> Client<OpenAIConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("{url}/v1"))
            .with_api_key(MASTER_KEY),
    )
}

fn request(stream: bool) -> async_openai::types::chat::CreateChatCompletionRequest {
    let mut args = CreateChatCompletionRequestArgs::default();
    args.model("demo/echo").messages(vec![
        ChatCompletionRequestUserMessageArgs::default()
            .content("hello from async-openai")
            .build()
            .unwrap()
            .into(),
    ]);
    if stream {
        args.stream(true);
    }
    args.build().unwrap()
}

#[tokio::test]
async fn async_openai_gets_a_json_completion() {
    let server = start(demo_config()).await;
    let client = openai_client(&server.url());
    let response = client.chat().create(request(false)).await.unwrap();
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("Echo: hello from async-openai")
    );
    let usage = response.usage.unwrap();
    assert!(usage.completion_tokens > 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn async_openai_reads_a_stream_to_the_end() {
    let server = start(demo_config()).await;
    let client = openai_client(&server.url());
    let mut stream = client.chat().create_stream(request(true)).await.unwrap();
    let mut text = String::new();
    let mut saw_usage = false;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in &chunk.choices {
            if let Some(content) = &choice.delta.content {
                text.push_str(content);
            }
        }
        saw_usage |= chunk.usage.is_some();
    }
    assert_eq!(text, "Echo: hello from async-openai");
    assert!(saw_usage);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn async_openai_sees_errors_as_api_errors() {
    let server = start(demo_config()).await;
    let client = openai_client(&server.url());
    let mut bad = request(false);
    bad.model = "no-such-model".to_owned();
    let error = client.chat().create(bad).await.unwrap_err();
    match error {
        async_openai::error::OpenAIError::ApiError(api) => {
            assert_eq!(api.status_code.as_u16(), 404);
            assert_eq!(api.api_error.code.as_deref(), Some("model_not_found"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    server.shutdown().await.unwrap();
}
