#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Every endpoint reads bodies and query strings the same way, through a running server:
//! trailing bytes after the JSON value are a 400 on chat, credits and admin alike, an unknown
//! query parameter is refused with the code `unknown_parameter` wherever it is sent, and the
//! caller is checked once, before any of it. Also `GET /api/v1/admin/tiers`.

mod support;

use serde_json::Value;
use support::{MASTER_KEY, assert_error, client, create_user, demo_config, start};

/// `method path` with `key` and a raw body (sent as JSON).
async fn send(
    base: &str,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> reqwest::Response {
    let mut request = client().request(method, format!("{base}{path}"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn trailing_garbage_after_the_json_is_400_on_chat_credits_and_admin() {
    let server = start(demo_config()).await;
    let base = server.url();
    create_user(&base, "ann", "free").await;
    let cases = [
        (
            "/v1/chat/completions",
            r#"{"model":"demo/echo","messages":[{"role":"user","content":"hi"}]} x"#,
        ),
        (
            "/api/v1/llm/credits/add",
            r#"{"user_id":"ann","amount":5,"reason":"gift"}{"amount":5}"#,
        ),
        (
            "/api/v1/admin/users",
            r#"{"user_id":"bob","tier":"free"} trailing"#,
        ),
        ("/api/v1/admin/users/ann", r#"{"tier":"starter"},"#),
    ];
    for (path, body) in cases {
        let method = if path == "/api/v1/admin/users/ann" {
            reqwest::Method::PATCH
        } else {
            reqwest::Method::POST
        };
        let response = send(&base, method, path, Some(MASTER_KEY), Some(body)).await;
        let error = assert_error(response, 400, "invalid_request_error").await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid request body"),
            "{path}: {error}"
        );
    }
    // Nothing was applied: no credits added, no user created, the tier unchanged.
    let ann: Value = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/users/ann",
        Some(MASTER_KEY),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ann["tier"], "free", "{ann}");
    assert_eq!(ann["balance"], "1000", "{ann}");
    let bob = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/users/bob",
        Some(MASTER_KEY),
        None,
    )
    .await;
    assert_eq!(bob.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_unknown_query_parameter_is_unknown_parameter_on_admin_and_credits() {
    let server = start(demo_config()).await;
    let base = server.url();
    for (path, name) in [
        ("/api/v1/admin/users?limt=2", "limt"),
        ("/api/v1/llm/credits?user=ann", "user"),
        ("/api/v1/llm/credits/transactions?page=2", "page"),
        ("/api/v1/llm/usage?group=model", "group"),
    ] {
        let response = send(&base, reqwest::Method::GET, path, Some(MASTER_KEY), None).await;
        let error = assert_error(response, 400, "invalid_request_error").await;
        assert_eq!(error["code"], "unknown_parameter", "{path}: {error}");
        assert_eq!(error["param"], name, "{path}: {error}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_key_is_checked_before_the_body_or_the_query() {
    let server = start(demo_config()).await;
    let base = server.url();
    let user = create_user(&base, "ann", "free").await;
    // No key: 401 though the body is garbage; a user's key on an admin endpoint: 403.
    let response = send(
        &base,
        reqwest::Method::POST,
        "/api/v1/llm/credits/add",
        None,
        Some("{nope"),
    )
    .await;
    let error = assert_error(response, 401, "authentication_error").await;
    assert_eq!(error["code"], "missing_api_key");
    let response = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/users?limt=2",
        Some(&user),
        None,
    )
    .await;
    let error = assert_error(response, 403, "permission_denied").await;
    assert_eq!(error["code"], "permission_denied");
    // Open endpoints need no key.
    let health = send(&base, reqwest::Method::GET, "/health", None, None).await;
    assert_eq!(health.status(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn admins_read_the_configured_tiers() {
    let server = start(demo_config()).await;
    let base = server.url();
    let user = create_user(&base, "ann", "free").await;
    let response = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/tiers",
        Some(MASTER_KEY),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let tiers = body["data"].as_array().unwrap();
    let names: Vec<&str> = tiers.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["enterprise", "free", "professional", "starter"]);
    let free = &tiers[1];
    assert_eq!(free["markup"], "0");
    assert_eq!(free["byok"], false);
    assert_eq!(free["monthly_credits"], "1000");
    assert_eq!(free["default_power_level"], "eco");
    assert_eq!(free["rpm"], 20);
    assert_eq!(free["require_private"], false);
    let starter = &tiers[3];
    assert_eq!(
        (&starter["markup"], &starter["byok"], &starter["rpm"]),
        (&Value::from("0.4"), &Value::from(true), &Value::Null)
    );
    assert!(tiers[2]["monthly_credits"].is_null());

    let response = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/tiers",
        Some(&user),
        None,
    )
    .await;
    assert_error(response, 403, "permission_denied").await;
    let response = send(
        &base,
        reqwest::Method::GET,
        "/api/v1/admin/tiers",
        None,
        None,
    )
    .await;
    assert_error(response, 401, "authentication_error").await;
    server.shutdown().await.unwrap();
}
