#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The HTTP API against the demo provider: chat (JSON and SSE), models, health, and the
//! error answers to bad input.

mod support;

use serde_json::{Value, json};
use support::*;

fn hi(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi there"}]})
}

#[tokio::test]
async fn demo_json_completion_carries_route_headers() {
    let server = start(demo_config()).await;
    let response = chat(&server, hi("demo/echo")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-llmgate-provider"], "demo");
    assert_eq!(headers["x-llmgate-model"], "demo/echo");
    assert_eq!(headers["x-llmgate-attempts"], "1");
    assert_eq!(headers["x-llmgate-key-source"], "platform");
    assert_eq!(headers["x-llmgate-cost-micros"], "0");
    assert!(
        headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("req-")
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hi there");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn alias_path_and_x_api_key_work_and_request_id_is_echoed() {
    let server = start(demo_config()).await;
    let response = client()
        .post(format!("{}/api/v1/llm/chat/completions", server.url()))
        .header("x-api-key", MASTER_KEY)
        .header("x-request-id", "my-trace-42")
        .json(&hi("demo/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "my-trace-42");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn demo_stream_ends_with_usage_cost_and_done() {
    let server = start(demo_config()).await;
    let mut body = hi("demo/echo");
    body["stream"] = json!(true);
    let response = chat(&server, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    assert_eq!(response.headers()["x-llmgate-model"], "demo/echo");
    assert!(response.headers().get("x-llmgate-cost-micros").is_none());
    let chunks = stream_chunks(&response.text().await.unwrap());
    assert_eq!(streamed_content(&chunks), "Echo: hi there");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]), "{last}");
    assert!(
        last["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{last}"
    );
    assert_eq!(last["llmgate"]["cost_micros"], 0, "{last}");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn models_list_has_openai_shape_and_catalog_facts() {
    let server = start(demo_config()).await;
    for path in ["/v1/models", "/api/v1/llm/models"] {
        let response = client()
            .get(format!("{}{path}", server.url()))
            .bearer_auth(MASTER_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "list");
        let echo = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "demo/echo")
            .unwrap_or_else(|| panic!("no demo/echo in {body}"));
        assert_eq!(echo["object"], "model");
        assert_eq!(echo["owned_by"], "demo");
        assert_eq!(echo["provider"], "demo");
        assert!(echo["created"].as_u64().unwrap() > 0);
        assert_eq!(echo["input_cost_per_1k"], "0");
        assert_eq!(echo["output_cost_per_1k"], "0");
        assert_eq!(echo["free"], true);
        assert_eq!(echo["quality"], 0.5);
        assert_eq!(echo["tags"], json!(["demo"]));
        assert_eq!(echo["latency"], "ultrafast");
        assert_eq!(echo["privacy"], "high");
        assert!(echo.get("context_window").is_some());
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn models_list_shows_decimal_prices_as_strings() {
    let yaml = r#"
providers:
  - { name: demo, kind: demo }
models:
  - { name: priced, provider: demo, upstream_model: echo, input_cost_per_1k: 0.0015, output_cost_per_1k: "0.002", context_window: 8192 }
  - { name: unpriced, provider: demo, upstream_model: echo }
"#;
    let server = start(yaml_config(yaml, &empty_env())).await;
    let body: Value = client()
        .get(format!("{}/v1/models", server.url()))
        .bearer_auth(MASTER_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["input_cost_per_1k"], "0.0015");
    assert_eq!(data[0]["output_cost_per_1k"], "0.002");
    assert_eq!(data[0]["free"], false);
    assert_eq!(data[0]["context_window"], 8192);
    assert_eq!(data[1]["input_cost_per_1k"], Value::Null);
    assert_eq!(data[1]["free"], false);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_and_readiness_need_no_key() {
    let server = start(demo_config()).await;
    let live = get(&server, "/health").await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let ready = get(&server, "/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    server.shutdown().await.unwrap();
}

/// One bad request and what it must get back.
struct Bad {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    key: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    body: Option<String>,
    status: u16,
    kind: &'static str,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

fn chat_case(name: &'static str, body: &str, status: u16, kind: &'static str) -> Bad {
    Bad {
        name,
        method: reqwest::Method::POST,
        path: "/v1/chat/completions",
        key: Some(MASTER_KEY),
        headers: &[],
        body: Some(body.to_owned()),
        status,
        kind,
        param: None,
        code: None,
    }
}

#[tokio::test]
async fn bad_input_gets_openai_errors_and_the_server_keeps_answering() {
    let mut config = demo_config();
    config.server.max_body_bytes = 2048;
    let server = start(config).await;
    let good = r#"{"model":"demo/echo","messages":[{"role":"user","content":"hi"}]}"#;
    let cases = vec![
        chat_case(
            "malformed json",
            "{\"model\": ",
            400,
            "invalid_request_error",
        ),
        chat_case("not an object", "[1,2]", 400, "invalid_request_error"),
        Bad {
            param: Some("model"),
            ..chat_case(
                "model of wrong type",
                r#"{"model":5,"messages":[{"role":"user","content":"hi"}]}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            param: Some("messages[0].role"),
            ..chat_case(
                "unknown role",
                r#"{"model":"demo/echo","messages":[{"role":"wizard","content":"hi"}]}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            param: Some("messages"),
            ..chat_case(
                "no messages field",
                r#"{"model":"demo/echo"}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            param: Some("messages"),
            ..chat_case(
                "empty messages",
                r#"{"model":"demo/echo","messages":[]}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            param: Some("model"),
            ..chat_case(
                "empty model",
                r#"{"model":"","messages":[{"role":"user","content":"hi"}]}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            param: Some("model"),
            code: Some("model_not_found"),
            ..chat_case(
                "unknown model",
                r#"{"model":"no-such-model","messages":[{"role":"user","content":"hi"}]}"#,
                404,
                "not_found_error",
            )
        },
        Bad {
            code: Some("model_not_found"),
            ..chat_case(
                "unknown provider prefix",
                r#"{"model":"nope/x","messages":[{"role":"user","content":"hi"}]}"#,
                404,
                "not_found_error",
            )
        },
        Bad {
            key: None,
            code: Some("missing_api_key"),
            ..chat_case("no key", good, 401, "authentication_error")
        },
        Bad {
            key: Some("lg-master-wrong-key-0000000000"),
            code: Some("invalid_api_key"),
            ..chat_case("wrong key", good, 401, "authentication_error")
        },
        Bad {
            code: Some("request_too_large"),
            ..chat_case(
                "body over the limit",
                &format!(
                    r#"{{"model":"demo/echo","messages":[{{"role":"user","content":"{}"}}]}}"#,
                    "x".repeat(4096)
                ),
                413,
                "request_too_large",
            )
        },
        Bad {
            headers: &[("x-llmgate-power-level", "turbo")],
            param: Some("x-llmgate-power-level"),
            ..chat_case("bad power level header", good, 400, "invalid_request_error")
        },
        Bad {
            param: Some("power_level"),
            ..chat_case(
                "bad power level in body",
                r#"{"model":"demo/echo","power_level":"turbo","messages":[{"role":"user","content":"hi"}]}"#,
                400,
                "invalid_request_error",
            )
        },
        Bad {
            method: reqwest::Method::GET,
            body: None,
            code: Some("method_not_allowed"),
            ..chat_case("wrong method", good, 405, "invalid_request_error")
        },
        Bad {
            method: reqwest::Method::DELETE,
            path: "/v1/models",
            body: None,
            code: Some("method_not_allowed"),
            ..chat_case("wrong method on models", good, 405, "invalid_request_error")
        },
        Bad {
            method: reqwest::Method::GET,
            path: "/v1/nothing-here",
            body: None,
            code: Some("unknown_path"),
            ..chat_case("unknown path", good, 404, "not_found_error")
        },
        Bad {
            method: reqwest::Method::GET,
            path: "/v1/models",
            key: None,
            body: None,
            ..chat_case("models without key", good, 401, "authentication_error")
        },
    ];
    let http = client();
    for case in cases {
        let mut request = http.request(
            case.method.clone(),
            format!("{}{}", server.url(), case.path),
        );
        if let Some(key) = case.key {
            request = request.bearer_auth(key);
        }
        for (name, value) in case.headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = &case.body {
            request = request
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let response = request.send().await.unwrap();
        if case.status == 405 {
            assert!(response.headers().get("allow").is_some(), "{}", case.name);
        }
        let error = assert_error(response, case.status, case.kind).await;
        if let Some(param) = case.param {
            assert_eq!(error["param"], param, "{}: {error}", case.name);
        }
        if let Some(code) = case.code {
            assert_eq!(error["code"], code, "{}: {error}", case.name);
        }
        let message = error["message"].as_str().unwrap();
        assert!(!message.contains(MASTER_KEY), "{}: key leaked", case.name);

        // The server keeps answering after every bad request.
        let after = chat(&server, serde_json::from_str(good).unwrap()).await;
        assert_eq!(after.status(), 200, "after {}", case.name);
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413() {
    let mut config = demo_config();
    config.server.max_body_bytes = 1024;
    let server = start(config).await;
    // No Content-Length: the limit must hold while the body streams in.
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..16).map(|_| Ok(vec![b' '; 256])).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(pieces));
    let response = client()
        .post(format!("{}/v1/chat/completions", server.url()))
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let error = assert_error(response, 413, "request_too_large").await;
    assert_eq!(error["code"], "request_too_large");
    let after = chat(&server, hi("demo/echo")).await;
    assert_eq!(after.status(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn power_level_header_overrides_the_body() {
    let server = start(demo_config()).await;
    let mut body = hi("demo/echo");
    body["power_level"] = json!("eco");
    let response = client()
        .post(format!("{}/v1/chat/completions", server.url()))
        .bearer_auth(MASTER_KEY)
        .header("x-llmgate-power-level", "precision")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-power-level"], "precision");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let server = start(demo_config()).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = h2
        .post(format!("{}/v1/chat/completions", server.url()))
        .bearer_auth(MASTER_KEY)
        .json(&hi("demo/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hi there");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut config = demo_config();
    config.server.header_read_timeout_ms = 300;
    let server = start(config).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The server gives up on the headers and closes; a generous guard keeps a bug from
    // hanging the test.
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.read_to_end(&mut buffer),
    )
    .await
    .expect("the server kept a half-sent request open");
    assert!(read.is_ok() || buffer.is_empty());
    assert!(
        !String::from_utf8_lossy(&buffer).contains("200 OK"),
        "{buffer:?}"
    );
    let health = get(&server, "/health").await;
    assert_eq!(health.status(), 200);
    server.shutdown().await.unwrap();
}
