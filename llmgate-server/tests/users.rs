//! Users and API keys through the running server: the admin API, keys shown once and stored
//! as digests, revocation, tier changes, grants.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use llmgate_core::credits::{Credit, CreditKind, CreditStore, HoldRequest};
use llmgate_credits::SqlCreditStore;
use serde_json::{Value, json};
use support::databases::Database;
use support::users::{Gate, sqlite_file, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn admin_creates_a_user_whose_key_is_shown_once_and_works() {
    let gate = Gate::start(sqlite_file()).await;
    let (status, created) = gate
        .admin(
            "POST",
            "/api/v1/admin/users",
            Some(json!({"user_id": "ann", "tier": "starter", "role": "user"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["api_key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("lg-") && key.len() >= 3 + 22, "{key}");
    assert_eq!(created["user_id"], "ann");
    assert_eq!(created["tier"], "starter");
    assert_eq!(created["role"], "user");
    // The starter tier's 10000 monthly credits were granted.
    assert_eq!(created["balance_micros"], 10_000_000_000_i64);
    assert_eq!(created["balance"], "10000");

    // The key works for the user.
    let (status, models) = gate.call(Some(&key), "GET", "/v1/models", None).await;
    assert_eq!(status, 200, "{models}");

    // Never shown again: not in the user, the listing or the key listing.
    for path in [
        "/api/v1/admin/users",
        "/api/v1/admin/users/ann",
        "/api/v1/admin/users/ann/keys",
    ] {
        let (status, body) = gate.admin("GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(!text.contains(&key), "{path} shows the key: {text}");
        assert!(!text.contains("api_key"), "{path}: {text}");
    }
    let (_, keys) = gate
        .admin("GET", "/api/v1/admin/users/ann/keys", None)
        .await;
    let hint = keys["data"][0]["key_hint"].as_str().unwrap();
    assert_eq!(hint, format!("lg-...{}", &key[key.len() - 4..]));
    assert_eq!(keys["data"][0]["id"], created["key_id"]);
    gate.stop().await;
}

#[tokio::test]
async fn the_database_holds_only_a_digest_of_each_key() {
    let gate = Gate::start(sqlite_file()).await;
    let key = gate.create_user("ann", "free", "user").await;
    let (status, another) = gate
        .admin("POST", "/api/v1/admin/users/ann/keys", None)
        .await;
    assert_eq!(status, 201, "{another}");
    let second = another["api_key"].as_str().unwrap().to_owned();
    let db = gate.stop().await;
    let file = db.file.clone().unwrap();

    let mut bytes = std::fs::read(&file).unwrap();
    if let Ok(wal) = std::fs::read(file.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    for secret in [&key, &second] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "an API key is in the database file"
        );
        let digest = llmgate_credits::users::key_digest(secret);
        assert!(bytes.windows(32).any(|w| w == digest), "its digest is not");
    }
}

#[tokio::test]
async fn a_user_holds_several_keys_and_a_revoked_one_gets_401() {
    let gate = Gate::start(sqlite_file()).await;
    let first = gate.create_user("ann", "starter", "user").await;
    let (_, issued) = gate
        .admin("POST", "/api/v1/admin/users/ann/keys", None)
        .await;
    let second = issued["api_key"].as_str().unwrap().to_owned();
    let second_id = issued["key_id"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    // Both work (and the first is now in the in-process cache).
    for key in [&first, &second] {
        assert_eq!(gate.call(Some(key), "GET", "/v1/models", None).await.0, 200);
    }

    let (status, revoked) = gate
        .admin(
            "DELETE",
            &format!("/api/v1/admin/users/ann/keys/{second_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let (status, error) = gate.call(Some(&second), "GET", "/v1/models", None).await;
    assert_eq!(
        status, 401,
        "a revoked key must stop working at once: {error}"
    );
    assert_eq!(error["error"]["type"], "authentication_error");
    assert_eq!(
        gate.call(Some(&first), "GET", "/v1/models", None).await.0,
        200
    );

    // Revoking again, or someone else's key id, is 404.
    let path = format!("/api/v1/admin/users/ann/keys/{second_id}");
    assert_eq!(gate.admin("DELETE", &path, None).await.0, 404);
    let (_, keys) = gate
        .admin("GET", "/api/v1/admin/users/ann/keys", None)
        .await;
    let revoked_at: Vec<&Value> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["revoked_at"])
        .collect();
    assert_eq!(revoked_at.len(), 2);
    assert_eq!(revoked_at.iter().filter(|v| v.is_null()).count(), 1);

    // Unknown and malformed keys are 401 too.
    for bad in ["lg-nope", "sk-whatever", &first[..first.len() - 1]] {
        assert_eq!(gate.call(Some(bad), "GET", "/v1/models", None).await.0, 401);
    }
    gate.stop().await;
}

#[tokio::test]
async fn bad_creations_are_400_and_duplicates_409() {
    let gate = Gate::start(sqlite_file()).await;
    gate.create_user("ann", "free", "user").await;
    let cases = [
        (
            json!({"user_id": "ann", "tier": "free"}),
            409,
            Some("user_exists"),
        ),
        (
            json!({"user_id": "bob", "tier": "platinum"}),
            400,
            Some("unknown_tier"),
        ),
        (
            json!({"user_id": "bob", "tier": "free", "role": "root"}),
            400,
            None,
        ),
        (json!({"user_id": "admin", "tier": "free"}), 400, None),
        (json!({"user_id": "has space", "tier": "free"}), 400, None),
        (json!({"user_id": "bob"}), 400, None),
        (
            json!({"user_id": "bob", "tier": "free", "extra": 1}),
            400,
            None,
        ),
    ];
    for (body, status, code) in cases {
        let (got, answer) = gate
            .admin("POST", "/api/v1/admin/users", Some(body.clone()))
            .await;
        assert_eq!(got, status, "{body} → {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        if let Some(code) = code {
            assert_eq!(answer["error"]["code"], code, "{answer}");
        }
    }
    // Nothing but ann exists.
    let (_, users) = gate.admin("GET", "/api/v1/admin/users", None).await;
    assert_eq!(users["data"].as_array().unwrap().len(), 1, "{users}");
    gate.stop().await;
}

#[tokio::test]
async fn a_tier_change_applies_to_the_next_request() {
    let gate = Gate::start(sqlite_file()).await;
    let key = gate.create_user("ann", "free", "user").await;
    let put = |key: String| {
        let gate = &gate;
        async move {
            gate.call(
                Some(&key),
                "PUT",
                "/api/v1/llm/providers/fakeai/key",
                Some(json!({"api_key": "sk-ann-own-0123456789"})),
            )
            .await
            .0
        }
    };
    // Free has no BYOK (and the key → user answer is cached now).
    assert_eq!(put(key.clone()).await, 403);

    let (status, changed) = gate
        .admin(
            "PATCH",
            "/api/v1/admin/users/ann",
            Some(json!({"tier": "starter"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["tier"], "starter");
    assert_eq!(put(key.clone()).await, 200);

    // Role changes work the same way.
    let admin_path = "/api/v1/admin/users";
    assert_eq!(gate.call(Some(&key), "GET", admin_path, None).await.0, 403);
    gate.admin(
        "PATCH",
        "/api/v1/admin/users/ann",
        Some(json!({"role": "admin"})),
    )
    .await;
    assert_eq!(gate.call(Some(&key), "GET", admin_path, None).await.0, 200);

    for (body, status) in [
        (json!({"tier": "platinum"}), 400),
        (json!({}), 400),
        (json!({"role": "root"}), 400),
    ] {
        let (got, answer) = gate
            .admin("PATCH", "/api/v1/admin/users/ann", Some(body))
            .await;
        assert_eq!(got, status, "{answer}");
    }
    let (status, _) = gate
        .admin(
            "PATCH",
            "/api/v1/admin/users/nobody",
            Some(json!({"tier": "free"})),
        )
        .await;
    assert_eq!(status, 404);
    gate.stop().await;
}

#[tokio::test]
async fn users_list_in_pages_with_tier_role_and_balance() {
    let gate = Gate::start(sqlite_file()).await;
    for (id, tier, role) in [
        ("carl", "free", "user"),
        ("ann", "starter", "admin"),
        ("bob", "professional", "user"),
    ] {
        gate.create_user(id, tier, role).await;
    }
    let (status, page) = gate.admin("GET", "/api/v1/admin/users?limit=2", None).await;
    assert_eq!(status, 200, "{page}");
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["user_id"], "ann");
    assert_eq!(data[0]["role"], "admin");
    assert_eq!(data[0]["balance_micros"], 10_000_000_000_i64);
    assert_eq!(data[1]["user_id"], "bob");
    // Professional has no monthly grant.
    assert_eq!(data[1]["balance_micros"], 0);
    assert_eq!(page["has_more"], true);
    assert_eq!(page["next_after"], "bob");

    let (_, rest) = gate
        .admin("GET", "/api/v1/admin/users?limit=2&after=bob", None)
        .await;
    assert_eq!(rest["data"][0]["user_id"], "carl");
    assert_eq!(rest["data"][0]["balance"], "1000");
    assert_eq!(rest["has_more"], false);
    assert!(rest["next_after"].is_null());

    for bad in ["?limit=0", "?limit=501", "?limit=x", "?limt=2"] {
        let path = format!("/api/v1/admin/users{bad}");
        assert_eq!(gate.admin("GET", &path, None).await.0, 400, "{bad}");
    }
    gate.stop().await;
}

#[tokio::test]
async fn the_monthly_grant_is_applied_once_however_often_a_user_calls() {
    let gate = Gate::start(sqlite_file()).await;
    let key = gate.create_user("ann", "starter", "user").await;
    for _ in 0..3 {
        assert_eq!(
            gate.call(Some(&key), "GET", "/v1/models", None).await.0,
            200
        );
    }
    assert_eq!(gate.balance("ann").await, 10_000_000_000);
    // Changing to another granting tier in the same month grants nothing more.
    gate.admin(
        "PATCH",
        "/api/v1/admin/users/ann",
        Some(json!({"tier": "free"})),
    )
    .await;
    assert_eq!(
        gate.call(Some(&key), "GET", "/v1/models", None).await.0,
        200
    );
    assert_eq!(gate.balance("ann").await, 10_000_000_000);
    gate.stop().await;
}

/// A SQLite ledger as a run left it that was killed mid-request: Ann was credited 5 and a
/// hold of 2 (living `ttl_secs`) is still open.
async fn sqlite_with_an_open_hold(ttl_secs: u64) -> Database {
    let db = sqlite_file();
    let ledger = SqlCreditStore::connect(&db.url).await.unwrap();
    ledger
        .credit(Credit {
            user_id: "ann".into(),
            kind: CreditKind::TopUp,
            amount_micros: 5_000_000,
            idempotency_key: "test:top-up".into(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    ledger
        .hold(HoldRequest {
            user_id: "ann".into(),
            request_id: "killed".into(),
            amount_micros: 2_000_000,
            ttl_secs,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(ledger.balance("ann").await.unwrap(), 3_000_000);
    db
}

#[tokio::test]
async fn holds_left_by_a_crash_are_reclaimed_at_startup() {
    // A previous run credited Ann, placed a hold and died before settling it.
    let db = sqlite_with_an_open_hold(0).await;
    let gate = Gate::start(db).await;
    let ledger = gate.gateway.credits().clone();
    // Released as the server starts (on SQLite every hold of a previous run is; the
    // reclaimer's first round would take this expired one too); give it a generous while.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.balance("ann").await.unwrap() != 5_000_000 {
        assert!(
            Instant::now() < deadline,
            "the expired hold was never reclaimed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.stop().await;
}

/// A SQLite ledger belongs to one server: the holds a previous run left open (it was killed
/// mid-request) are released as the next one starts, not an hour later at their expiry.
#[tokio::test]
async fn on_sqlite_open_holds_of_a_previous_run_are_released_before_serving() {
    let db = sqlite_with_an_open_hold(3600).await;
    let gate = Gate::start(db).await;
    assert_eq!(
        gate.gateway.credits().balance("ann").await.unwrap(),
        5_000_000
    );
    gate.stop().await;
}

/// One inline Redis command over a plain socket; `None` when Redis is unreachable.
async fn redis_command(command: &str) -> Option<String> {
    let url = std::env::var("LLMGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = url.trim_start_matches("redis://").trim_end_matches('/');
    let mut stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(address),
    )
    .await
    .ok()?
    .ok()?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .ok()?;
    let mut answer = vec![0; 256];
    let read = stream.read(&mut answer).await.ok()?;
    Some(String::from_utf8_lossy(&answer[..read]).trim().to_owned())
}

#[tokio::test]
async fn with_redis_configured_balances_are_cached_there() {
    if redis_command("PING").await.as_deref() != Some("+PONG") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Redis is required when CI=true"
        );
        eprintln!("SKIPPED: Redis is unreachable");
        return;
    }
    let url = std::env::var("LLMGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let gate = Gate::start_with_redis(sqlite_file(), &url).await;
    let user = unique("cached-");
    gate.create_user(&user, "starter", "user").await;
    assert_eq!(gate.balance(&user).await, 10_000_000_000);
    // The balance read went through the Redis cache and left its entry there.
    let exists = redis_command(&format!("EXISTS llmgate:balance:b:{user}")).await;
    assert_eq!(exists.as_deref(), Some(":1"));
    gate.stop().await;
}

#[tokio::test]
async fn responses_with_a_key_are_not_stored_and_the_sqlite_files_are_private() {
    let db = sqlite_file();
    let file = db.file.clone().unwrap();
    let gate = Gate::start(db).await;
    let (status, headers, created) = gate
        .call_full(
            Some(support::MASTER_KEY),
            "POST",
            "/api/v1/admin/users",
            Some(json!({"user_id": "kim", "tier": "starter"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(headers["cache-control"], "no-store");
    let (status, headers, issued) = gate
        .call_full(
            Some(support::MASTER_KEY),
            "POST",
            "/api/v1/admin/users/kim/keys",
            None,
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    assert!(issued["api_key"].is_string());
    assert_eq!(headers["cache-control"], "no-store");
    // A response without a key carries no such header.
    let (status, headers, _) = gate
        .call_full(
            Some(support::MASTER_KEY),
            "GET",
            "/api/v1/admin/users/kim",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(headers.get("cache-control").is_none());

    // The database, its WAL and shared memory: owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let path = format!("{}{suffix}", file.display());
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{path} has mode {mode:o}");
        }
    }
    gate.stop().await;
}

#[tokio::test]
async fn a_bad_credit_amount_gets_one_readable_message() {
    let gate = Gate::start(sqlite_file()).await;
    gate.create_user("lee", "starter", "user").await;
    for (amount, message) in [
        (
            json!("1.2345678"),
            "`amount` has more than 6 decimals; the smallest amount is 0.000001 credits.",
        ),
        (json!("99999999999999999999"), "`amount` is too large."),
    ] {
        let (status, body) = gate
            .admin(
                "POST",
                "/api/v1/llm/credits/add",
                Some(json!({"user_id": "lee", "amount": amount, "reason": "test"})),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["message"], message, "{body}");
        assert_eq!(body["error"]["param"], "amount");
    }
    gate.stop().await;
}
