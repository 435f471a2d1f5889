//! BYOK through the running server: a user's own key reaches the upstream and costs nothing,
//! the platform key (and credits) come back after DELETE, tiers without BYOK are refused, and
//! no key is ever seen in logs, responses or the database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmgate_testkit::{Reply, openai};
use serde_json::{Value, json};
use support::users::{
    Database, Gate, MASTER_KEY, MODEL, PLATFORM_KEY, PROVIDER, byok_key, config_yaml, postgres,
    sqlite_file, unique,
};

const KEY_PATH: &str = "/api/v1/llm/providers/fakeai/key";

/// The charge of one answer (400 + 600 tokens at $0.002/1K, starter markup 0.4, balanced 0.25).
const ONE_CHARGE: i64 = 700_000;

/// A `byok_keys` row: user, provider, key id, nonce, ciphertext.
type SealedRow = (String, String, String, Vec<u8>, Vec<u8>);

/// Store `own` as the BYOK key of the user behind `user_key`; it must be accepted.
async fn store_byok_key(gate: &Gate, user_key: &str, own: &str) {
    let (status, body) = gate
        .call(
            Some(user_key),
            "PUT",
            KEY_PATH,
            Some(json!({"api_key": own})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// The whole flow on one database: store a key, chat with it for free, delete it, pay again.
async fn byok_flow(db: Database) -> Gate {
    let gate = Gate::start(db).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let start = gate.balance("ann").await;
    assert_eq!(start, 10_000_000_000);

    let own = unique("sk-ann-own-");
    let (status, stored) = gate
        .call(Some(&ann), "PUT", KEY_PATH, Some(json!({"api_key": own})))
        .await;
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["byok_configured"], true);
    assert_eq!(
        stored["key_hint"],
        format!("sk-...{}", &own[own.len() - 4..])
    );

    let (status, listed) = gate
        .call(Some(&ann), "GET", "/api/v1/llm/providers", None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["byok_allowed"], true);
    let fake = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == PROVIDER)
        .unwrap()
        .clone();
    assert_eq!(fake["byok_configured"], true, "{listed}");
    assert_eq!(fake["key_hint"], stored["key_hint"]);
    assert_eq!(fake["platform_key"], true);
    assert!(!listed.to_string().contains(&own));

    // With the user's key: the upstream sees it, the answer costs nothing.
    let (status, headers, answer) = gate.chat(&ann).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["x-llmgate-key-source"], "byok");
    assert_eq!(headers["x-llmgate-cost-micros"], "0");
    let sent = gate.upstream.last_request().unwrap();
    assert_eq!(sent.header("authorization"), Some(bearer(&own)));
    assert_eq!(gate.balance("ann").await, start, "BYOK must not charge");

    // Deleted: the platform key, and credits are charged.
    let (status, deleted) = gate.call(Some(&ann), "DELETE", KEY_PATH, None).await;
    assert_eq!(status, 200, "{deleted}");
    let (status, headers, answer) = gate.chat(&ann).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["x-llmgate-key-source"], "platform");
    assert_eq!(
        headers["x-llmgate-cost-micros"],
        ONE_CHARGE.to_string().as_str()
    );
    let sent = gate.upstream.last_request().unwrap();
    assert_eq!(sent.header("authorization"), Some(bearer(PLATFORM_KEY)));
    assert_eq!(gate.balance("ann").await, start - ONE_CHARGE);

    // Deleting again: nothing there.
    assert_eq!(gate.call(Some(&ann), "DELETE", KEY_PATH, None).await.0, 404);
    gate
}

#[tokio::test]
async fn byok_key_is_used_free_of_charge_until_deleted_on_sqlite() {
    byok_flow(sqlite_file()).await.stop().await;
}

#[tokio::test]
async fn byok_key_is_used_free_of_charge_until_deleted_on_postgres() {
    let Some(db) = postgres().await else {
        return;
    };
    let gate = byok_flow(db).await;
    // Store one again and look at the rows: ciphertext only.
    let ann_key = gate.create_user("bob", "starter", "user").await;
    let own = unique("sk-bob-own-");
    let (status, _) = gate
        .call(
            Some(&ann_key),
            "PUT",
            KEY_PATH,
            Some(json!({"api_key": own})),
        )
        .await;
    assert_eq!(status, 200);
    let db = gate.stop().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let rows: Vec<SealedRow> =
        sqlx::query_as("SELECT user_id, provider, key_id, nonce, ciphertext FROM byok_keys")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    let (user, provider, key_id, nonce, ciphertext) = &rows[0];
    assert_eq!((user.as_str(), provider.as_str()), ("bob", PROVIDER));
    assert_eq!(key_id.len(), 8);
    assert_eq!(nonce.len(), 12);
    assert!(!ciphertext.windows(own.len()).any(|w| w == own.as_bytes()));
    let dumped: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(t.* AS TEXT) FROM (SELECT * FROM byok_keys) t \
         UNION ALL SELECT CAST(a.* AS TEXT) FROM (SELECT * FROM api_keys) a",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for row in dumped {
        assert!(!row.contains(&own), "plaintext BYOK key in a row: {row}");
        assert!(!row.contains(&ann_key), "plaintext API key in a row: {row}");
    }
    pool.close().await;
}

#[tokio::test]
async fn streams_use_the_byok_key_too() {
    let gate = Gate::start(sqlite_file()).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let own = unique("sk-stream-own-");
    store_byok_key(&gate, &ann, &own).await;
    gate.upstream.push(Reply::sse(&openai::text_chunks(
        "fake-upstream-model",
        &["he", "llo"],
        Some((400, 600)),
    )));
    let response = gate
        .client
        .post(gate.url("/v1/chat/completions"))
        .bearer_auth(&ann)
        .json(&json!({
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": true,
            "stream_options": {"include_usage": true},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-key-source"], "byok");
    let body = response.text().await.unwrap();
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert_eq!(
        gate.upstream
            .last_request()
            .unwrap()
            .header("authorization"),
        Some(bearer(&own))
    );
    assert_eq!(gate.balance("ann").await, 10_000_000_000);
    gate.stop().await;
}

#[tokio::test]
async fn a_rejected_byok_key_is_the_users_error_without_falling_back_to_the_platform_key() {
    let gate = Gate::start(sqlite_file()).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let own = unique("sk-revoked-upstream-");
    store_byok_key(&gate, &ann, &own).await;
    // The upstream refuses it, quoting it back (some do).
    gate.upstream.push(Reply::json(
        401,
        openai::error(
            &format!("Incorrect API key provided: {own}"),
            "invalid_request_error",
            Some("invalid_api_key"),
        ),
    ));
    let before = gate.upstream.request_count();
    let (status, headers, answer) = gate.chat(&ann).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "byok_key_rejected");
    assert!(!answer.to_string().contains(&own), "{answer}");
    assert!(
        !format!("{headers:?}").contains(&own),
        "the key is in a response header"
    );
    // Exactly one upstream call, with the user's key; the platform key was never tried.
    let sent = gate.upstream.requests();
    assert_eq!(sent.len(), before + 1);
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some(bearer(&own))
    );
    assert_eq!(gate.balance("ann").await, 10_000_000_000);
    gate.stop().await;
}

#[tokio::test]
async fn tiers_without_byok_the_master_key_and_unknown_providers_are_refused() {
    let gate = Gate::start(sqlite_file()).await;
    let free = gate.create_user("fran", "free", "user").await;
    let body = json!({"api_key": "sk-free-user-0123456789"});

    let (status, refused) = gate
        .call(Some(&free), "PUT", KEY_PATH, Some(body.clone()))
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["type"], "permission_denied");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("free") && message.contains("BYOK"),
        "the message must say the tier has no BYOK: {message}"
    );
    let (_, listed) = gate
        .call(Some(&free), "GET", "/api/v1/llm/providers", None)
        .await;
    assert_eq!(listed["byok_allowed"], false);
    assert!(listed["byok_reason"].as_str().unwrap().contains("BYOK"));

    let (status, _) = gate.admin("PUT", KEY_PATH, Some(body.clone())).await;
    assert_eq!(status, 403);

    let starter = gate.create_user("sam", "starter", "user").await;
    let (status, missing) = gate
        .call(
            Some(&starter),
            "PUT",
            "/api/v1/llm/providers/nope/key",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "provider_not_found");
    // The demo provider takes no key.
    let (status, _) = gate
        .call(
            Some(&starter),
            "PUT",
            "/api/v1/llm/providers/demo/key",
            Some(body),
        )
        .await;
    assert_eq!(status, 400);
    for bad in [
        json!({}),
        json!({"api_key": ""}),
        json!({"api_key": "   "}),
        json!({"api_key": 5}),
        json!({"api_key": "sk-line\nbreak-0123456789"}),
        json!({"api_key": "sk-x-0123456789", "user_id": "other"}),
    ] {
        let (status, answer) = gate
            .call(Some(&starter), "PUT", KEY_PATH, Some(bad.clone()))
            .await;
        assert_eq!(status, 400, "{bad} → {answer}");
    }
    gate.stop().await;
}

#[tokio::test]
async fn one_users_key_is_never_used_for_or_shown_to_another() {
    let gate = Gate::start(sqlite_file()).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let bob = gate.create_user("bob", "starter", "user").await;
    let own = unique("sk-ann-only-");
    store_byok_key(&gate, &ann, &own).await;

    let (_, listed) = gate
        .call(Some(&bob), "GET", "/api/v1/llm/providers", None)
        .await;
    let fake = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == PROVIDER)
        .unwrap()
        .clone();
    assert_eq!(fake["byok_configured"], false, "{listed}");
    assert!(fake["key_hint"].is_null());

    let (status, headers, _) = gate.chat(&bob).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-llmgate-key-source"], "platform");
    assert_eq!(
        gate.upstream
            .last_request()
            .unwrap()
            .header("authorization"),
        Some(bearer(PLATFORM_KEY))
    );
    // Bob deleting "his" key does not touch Ann's.
    assert_eq!(gate.call(Some(&bob), "DELETE", KEY_PATH, None).await.0, 404);
    let (_, headers, _) = gate.chat(&ann).await;
    assert_eq!(headers["x-llmgate-key-source"], "byok");
    gate.stop().await;
}

#[tokio::test]
async fn without_an_encryption_key_byok_is_off_and_says_why() {
    let gate = Gate::start_with(sqlite_file(), None).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let (status, refused) = gate
        .call(
            Some(&ann),
            "PUT",
            KEY_PATH,
            Some(json!({"api_key": "sk-ann-0123456789"})),
        )
        .await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["error"]["code"], "byok_disabled");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("byok.encryption_key")
    );
    let (_, listed) = gate
        .call(Some(&ann), "GET", "/api/v1/llm/providers", None)
        .await;
    assert_eq!(listed["byok_allowed"], false);
    // Chats still work, on the platform key.
    let (status, headers, _) = gate.chat(&ann).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-llmgate-key-source"], "platform");
    gate.stop().await;
}

#[test]
fn check_warns_when_tiers_allow_byok_but_no_key_is_set() {
    let dir = std::env::temp_dir().join(unique("llmgate-check-byok-"));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |byok: Option<&str>| {
        let file = dir.join("llmgate.yaml");
        std::fs::write(
            &file,
            config_yaml("http://127.0.0.1:9/v1", "sqlite::memory:", byok),
        )
        .unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .args(["check", "--config"])
            .arg(&file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let warned = run(None);
    assert!(
        warned.contains("byok.encryption_key") && warned.contains("starter"),
        "{warned}"
    );
    assert!(!run(Some(&byok_key())).contains("byok"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_malformed_encryption_key_stops_the_server_naming_the_setting() {
    for bad in ["not-base64!", "c2hvcnQ=", ""] {
        let yaml = config_yaml("http://127.0.0.1:9/v1", "sqlite::memory:", Some(bad));
        let env = llmgate_server::config::Env::from_pairs([("LLMGATE_TEST", "1")]);
        let error = llmgate_server::config::Config::from_yaml(&yaml, &env)
            .unwrap()
            .check()
            .unwrap_err();
        assert!(
            error
                .problems
                .iter()
                .any(|p| p.path == "byok.encryption_key"),
            "{bad}: {error}"
        );
        assert!(!error.to_string().contains("c2hvcnQ"), "{error}");
    }
}

/// `llmgate rotate-keys --config FILE` on `db`: exit success and stdout.
async fn rotate_keys(
    db: &Database,
    upstream: &str,
    key: &str,
    previous: &[&str],
) -> (bool, String) {
    let yaml = config_yaml(upstream, &db.url, Some(key));
    let previous: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    let yaml = yaml.replace(
        &format!("  encryption_key: \"{key}\"\n"),
        &format!(
            "  encryption_key: \"{key}\"\n  previous_keys: [{}]\n",
            previous.join(", ")
        ),
    );
    let file = db.file.as_ref().unwrap().with_file_name("rotate.yaml");
    std::fs::write(&file, yaml).unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .args(["rotate-keys", "--config"])
            .arg(&file)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_keys_reseals_every_stored_key_under_the_new_key() {
    let (old, new) = (byok_key(), byok_key());
    let gate = Gate::start_with(sqlite_file(), Some(&old)).await;
    let ann = gate.create_user("ann", "starter", "user").await;
    let own = unique("sk-rotate-me-");
    let (status, _) = gate
        .call(Some(&ann), "PUT", KEY_PATH, Some(json!({"api_key": own})))
        .await;
    assert_eq!(status, 200);
    let upstream = gate.upstream.url();
    let db = gate.stop().await;

    // Without the old key the stored key cannot be opened: say so, exit 1.
    let (ok, text) = rotate_keys(&db, &upstream, &new, &[]).await;
    assert!(!ok, "{text}");
    assert!(text.contains("1 unreadable"), "{text}");

    let (ok, text) = rotate_keys(&db, &upstream, &new, &[&old]).await;
    assert!(ok, "{text}");
    assert!(text.contains("re-sealed 1 key(s)"), "{text}");
    assert!(!text.contains(&own) && !text.contains(&new) && !text.contains(&old));
    let (ok, text) = rotate_keys(&db, &upstream, &new, &[&old]).await;
    assert!(ok, "{text}");
    assert!(text.contains("re-sealed 0 key(s); 1 already"), "{text}");

    // The old key is gone from the config; the user's key still works.
    let gate = Gate::start_with(db, Some(&new)).await;
    let (status, headers, answer) = gate.chat(&ann).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(headers["x-llmgate-key-source"], "byok");
    assert_eq!(
        gate.upstream
            .last_request()
            .unwrap()
            .header("authorization"),
        Some(bearer(&own))
    );
    gate.stop().await;
}

// ---------------------------------------------------------------------------------------------
// No leaks: the real binary at RUST_LOG=debug, every response and the database file.
// ---------------------------------------------------------------------------------------------

/// Everything one request showed the client.
fn shown(status: u16, headers: &reqwest::header::HeaderMap, body: &Value) -> String {
    format!("{status} {headers:?} {body}")
}

/// Fails when `secret` (or a 12-character piece of its random part) is in `text`.
fn assert_absent(what: &str, text: &[u8], secret: &str) {
    let mut pieces = vec![secret.to_owned()];
    let tail = &secret[secret.len() - 12..];
    pieces.push(tail.to_owned());
    for piece in pieces {
        assert!(
            !text.windows(piece.len()).any(|w| w == piece.as_bytes()),
            "a secret ({piece}) appears in {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_appears_in_debug_logs_responses_or_the_database() {
    let upstream = llmgate_testkit::FakeUpstream::start().await;
    upstream.set_default(Reply::json(
        200,
        openai::completion("fake-upstream-model", "hello", 400, 600),
    ));
    let db = sqlite_file();
    let dir = db.file.as_ref().unwrap().parent().unwrap().to_owned();
    let config = dir.join("llmgate.yaml");
    std::fs::write(
        &config,
        config_yaml(&upstream.url(), &db.url, Some(&byok_key())),
    )
    .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_llmgate"))
        .args(["--log-json", "serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LLMGATE_MASTER_KEY", MASTER_KEY)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    // Fields at the top (flattened JSON logs) or under `fields`.
                    let fields = if value.get("message").is_some() {
                        &value
                    } else {
                        &value["fields"]
                    };
                    if fields["message"] == "llmgate listening" {
                        let _ = addr_tx.send(fields["addr"].as_str().unwrap_or("").to_owned());
                    }
                }
                let mut all = logs.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        })
    };
    let addr = tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the server never said it is listening");
    let base = format!("http://{addr}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut responses = String::new();
    let call = |method: &str, path: &str, key: Option<&str>, body: Option<Value>| {
        let mut request = client.request(method.parse().unwrap(), format!("{base}{path}"));
        if let Some(key) = key {
            request = request.header("x-api-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let text = response.text().await.unwrap();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, headers, body)
        }
    };

    // The one response allowed to show the user's API key: its creation.
    let (status, _, created) = call(
        "POST",
        "/api/v1/admin/users",
        Some(MASTER_KEY),
        Some(json!({"user_id": "ann", "tier": "starter", "role": "user"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let own = unique("sk-leakcheck-");
    assert_absent(
        "the creation response",
        created.to_string().as_bytes(),
        &own,
    );

    let chat = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    let stream = json!({"model": MODEL, "stream": true,
        "messages": [{"role": "user", "content": "hi"}]});
    let steps: Vec<(&str, &str, Option<Value>)> = vec![
        ("PUT", KEY_PATH, Some(json!({"api_key": own}))),
        ("GET", "/api/v1/llm/providers", None),
        ("POST", "/v1/chat/completions", Some(chat.clone())),
        ("POST", "/v1/chat/completions", Some(stream)),
        // Refused bodies that carry the key.
        ("PUT", KEY_PATH, Some(json!({"api_key": own, "extra": own}))),
        ("PUT", KEY_PATH, Some(json!({"api_key": [own]}))),
        (
            "PUT",
            "/api/v1/llm/providers/nope/key",
            Some(json!({"api_key": own})),
        ),
        // The upstream refuses the key and quotes it (queued below).
        ("POST", "/v1/chat/completions", Some(chat.clone())),
        ("DELETE", KEY_PATH, None),
        ("POST", "/v1/chat/completions", Some(chat)),
        ("GET", "/api/v1/admin/users/ann/keys", None),
    ];
    for (i, (method, path, body)) in steps.into_iter().enumerate() {
        if i == 7 {
            upstream.push(Reply::json(
                401,
                openai::error(
                    &format!("Incorrect API key provided: {own}"),
                    "invalid_request_error",
                    Some("invalid_api_key"),
                ),
            ));
        }
        let key = if path.contains("/admin/") {
            MASTER_KEY
        } else {
            &api_key
        };
        let (status, headers, body) = call(method, path, Some(key), body).await;
        assert!(status < 500, "{method} {path}: {status} {body}");
        responses.push_str(&shown(status, &headers, &body));
        responses.push('\n');
    }
    // The key was really used upstream.
    assert!(
        upstream
            .requests()
            .iter()
            .any(|r| r.header("authorization") == Some(format!("Bearer {own}")))
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    reader.join().unwrap();
    let logs = logs.lock().unwrap().clone();
    // The capture is real: debug lines and the BYOK steps are in it.
    assert!(
        logs.contains("\"level\":\"DEBUG\""),
        "no debug lines captured"
    );
    assert!(logs.contains("stored a BYOK key"), "{logs}");

    assert_absent("the logs", logs.as_bytes(), &own);
    assert_absent("the logs", logs.as_bytes(), &api_key);
    assert_absent("the responses", responses.as_bytes(), &own);
    assert_absent("the responses", responses.as_bytes(), &api_key);
    let file = db.file.clone().unwrap();
    let mut stored = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", file.display());
        if let Ok(bytes) = std::fs::read(path) {
            stored.extend(bytes);
        }
    }
    assert!(!stored.is_empty());
    assert_absent("the database", &stored, &own);
    assert_absent("the database", &stored, &api_key);
}
