//! The permission matrix through the running server: every endpoint × each role (the master
//! key, a user with role `admin`, a user with role `user`) × their own and another user's data,
//! on SQLite and on PostgreSQL. Plus: no key or a wrong key is 401 everywhere, and a refused
//! request changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use serde_json::{Value, json};
use support::users::{Database, Gate, MASTER_KEY, postgres, sqlite_file, unique};

/// What a caller must get back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Status(u16),
    /// Neither 401 nor 403 nor a server error: the permission check let it through (what
    /// happens next, e.g. Stripe not being configured, is another test's business).
    Allowed,
}

use Expect::{Allowed, Status};

/// One row: an endpoint with its path and body, and what the master key, an admin-role user
/// and a user-role user each get. In paths and bodies `{self}` is the caller's own user id
/// (`admin` for the master key), `{other}` another user's, `{fresh}` a new id.
struct Row {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    master: Expect,
    admin: Expect,
    user: Expect,
}

fn row(
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    [master, admin, user]: [Expect; 3],
) -> Row {
    Row {
        method,
        path,
        body,
        master,
        admin,
        user,
    }
}

const OK: Expect = Status(200);
const CREATED: Expect = Status(201);
const DENIED: Expect = Status(403);

fn matrix() -> Vec<Row> {
    let chat = json!({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]});
    let provider_key = json!({"api_key": "sk-own-key-0123456789"});
    vec![
        // llm.read and llm.execute: everyone, on their own data.
        row("GET", "/v1/models", None, [OK, OK, OK]),
        row("GET", "/api/v1/llm/models", None, [OK, OK, OK]),
        row(
            "POST",
            "/v1/chat/completions",
            Some(chat.clone()),
            [OK, OK, OK],
        ),
        row(
            "POST",
            "/api/v1/llm/chat/completions",
            Some(chat),
            [OK, OK, OK],
        ),
        row("GET", "/api/v1/llm/credits", None, [OK, OK, OK]),
        row(
            "GET",
            "/api/v1/llm/credits?user_id={self}",
            None,
            [OK, OK, OK],
        ),
        row(
            "GET",
            "/api/v1/llm/credits/transactions",
            None,
            [OK, OK, OK],
        ),
        row(
            "GET",
            "/api/v1/llm/usage?group_by=model",
            None,
            [OK, OK, OK],
        ),
        row("GET", "/api/v1/llm/requests", None, [OK, OK, OK]),
        row(
            "GET",
            "/api/v1/llm/requests?user_id={self}&status=ok",
            None,
            [OK, OK, OK],
        ),
        // A row id that does not exist (or is another user's) is 404 for everyone.
        row(
            "GET",
            "/api/v1/llm/requests/999999999",
            None,
            [Status(404), Status(404), Status(404)],
        ),
        row("GET", "/api/v1/llm/credits/packages", None, [OK, OK, OK]),
        row(
            "POST",
            "/api/v1/llm/credits/purchase",
            Some(json!({"package": "credits-1000"})),
            [Allowed, Allowed, Allowed],
        ),
        row("GET", "/api/v1/llm/providers", None, [OK, OK, OK]),
        // Another user's balance, ledger and usage: admins only.
        row(
            "GET",
            "/api/v1/llm/credits?user_id={other}",
            None,
            [OK, OK, DENIED],
        ),
        row(
            "GET",
            "/api/v1/llm/credits/transactions?user_id={other}",
            None,
            [OK, OK, DENIED],
        ),
        row(
            "GET",
            "/api/v1/llm/usage?group_by=day&user_id={other}",
            None,
            [OK, OK, DENIED],
        ),
        row(
            "GET",
            "/api/v1/llm/requests?user_id={other}",
            None,
            [OK, OK, DENIED],
        ),
        // Adding credits is llm.configure, for anyone's balance including one's own.
        row(
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"user_id": "{other}", "amount": 1, "reason": "matrix"})),
            [OK, OK, DENIED],
        ),
        row(
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"user_id": "{self}", "amount": 1, "reason": "matrix"})),
            [Allowed, OK, DENIED],
        ),
        // The admin API: llm.configure.
        row("GET", "/api/v1/admin/tiers", None, [OK, OK, DENIED]),
        row("GET", "/api/v1/admin/users", None, [OK, OK, DENIED]),
        row(
            "POST",
            "/api/v1/admin/users",
            Some(json!({"user_id": "{fresh}", "tier": "free", "role": "user"})),
            [CREATED, CREATED, DENIED],
        ),
        row("GET", "/api/v1/admin/users/{other}", None, [OK, OK, DENIED]),
        row(
            "GET",
            "/api/v1/admin/users/{self}",
            None,
            [Status(404), OK, DENIED],
        ),
        row(
            "PATCH",
            "/api/v1/admin/users/{other}",
            Some(json!({"tier": "starter"})),
            [OK, OK, DENIED],
        ),
        row(
            "PATCH",
            "/api/v1/admin/users/{self}",
            Some(json!({"role": "admin"})),
            [Status(404), OK, DENIED],
        ),
        row(
            "GET",
            "/api/v1/admin/users/{other}/keys",
            None,
            [OK, OK, DENIED],
        ),
        row(
            "GET",
            "/api/v1/admin/users/{self}/keys",
            None,
            [Status(404), OK, DENIED],
        ),
        row(
            "POST",
            "/api/v1/admin/users/{other}/keys",
            None,
            [CREATED, CREATED, DENIED],
        ),
        row(
            "DELETE",
            "/api/v1/admin/users/{other}/keys/key_0000000000000000",
            None,
            [Status(404), Status(404), DENIED],
        ),
        // API keys: users their own, admins anyone's; the master key has no user of its own.
        row("GET", "/api/v1/keys", None, [OK, OK, OK]),
        row("GET", "/api/v1/keys?user_id={self}", None, [OK, OK, OK]),
        row(
            "GET",
            "/api/v1/keys?user_id={other}",
            None,
            [OK, OK, DENIED],
        ),
        row(
            "POST",
            "/api/v1/keys",
            Some(json!({"name": "matrix"})),
            [Status(404), CREATED, CREATED],
        ),
        row(
            "POST",
            "/api/v1/keys",
            Some(json!({"user_id": "{other}", "models": ["demo/*"]})),
            [CREATED, CREATED, DENIED],
        ),
        row(
            "PATCH",
            "/api/v1/keys/key_0000000000000000",
            Some(json!({"rpm": 5})),
            [Status(404), Status(404), Status(404)],
        ),
        row(
            "DELETE",
            "/api/v1/keys/key_0000000000000000",
            None,
            [Status(404), Status(404), Status(404)],
        ),
        // Teams: the admin API is llm.configure.
        row("GET", "/api/v1/admin/teams", None, [OK, OK, DENIED]),
        row(
            "POST",
            "/api/v1/admin/teams",
            Some(json!({"team_id": "{fresh}", "tier": "starter"})),
            [CREATED, CREATED, DENIED],
        ),
        row(
            "POST",
            "/api/v1/admin/teams/no-team/members",
            Some(json!({"user_id": "{other}", "role": "member"})),
            [Status(404), Status(404), DENIED],
        ),
        row(
            "DELETE",
            "/api/v1/admin/teams/no-team/members/{other}",
            None,
            [Status(404), Status(404), DENIED],
        ),
        // BYOK (llm.manage_providers) is always the caller's own; the master key has none.
        row(
            "PUT",
            "/api/v1/llm/providers/fakeai/key",
            Some(provider_key),
            [DENIED, OK, OK],
        ),
        row(
            "DELETE",
            "/api/v1/llm/providers/fakeai/key",
            None,
            [DENIED, OK, OK],
        ),
    ]
}

fn fill(template: &str, own: &str, other: &str) -> String {
    template
        .replace("{self}", own)
        .replace("{other}", other)
        .replace("{fresh}", &unique("fresh-"))
}

fn fill_body(body: &Value, own: &str, other: &str) -> Value {
    serde_json::from_str(&fill(&body.to_string(), own, other)).unwrap()
}

fn check(expect: Expect, status: u16, what: &str, body: &Value) {
    match expect {
        Status(wanted) => assert_eq!(status, wanted, "{what}: {body}"),
        Allowed => assert!(
            !matches!(status, 401 | 403) && status < 500,
            "{what}: got {status}: {body}"
        ),
    }
    if status == 403 {
        assert_eq!(body["error"]["type"], "permission_denied", "{what}: {body}");
    }
}

async fn run_matrix(db: Database) {
    let gate = Gate::start(db).await;
    let boss = gate.create_user("boss", "starter", "admin").await;
    let ann = gate.create_user("ann", "starter", "user").await;
    gate.create_user("bob", "starter", "user").await;

    let callers = [
        ("master key", MASTER_KEY.to_owned(), "admin"),
        ("admin-role user", boss, "boss"),
        ("user-role user", ann.clone(), "ann"),
    ];
    for (i, (who, key, own)) in callers.iter().enumerate() {
        for row in matrix() {
            let expect = [row.master, row.admin, row.user][i];
            let path = fill(row.path, own, "bob");
            let body = row.body.as_ref().map(|b| fill_body(b, own, "bob"));
            let (status, answer) = gate.call(Some(key), row.method, &path, body).await;
            check(
                expect,
                status,
                &format!("{who} {} {path}", row.method),
                &answer,
            );
            // Reads of one's own balance answer about oneself.
            if status == 200 && row.method == "GET" && path == "/api/v1/llm/credits" {
                assert_eq!(answer["user_id"], *own, "{who}: {answer}");
            }
        }
    }

    // No key, a wrong key, a revoked-looking key: 401 on every protected endpoint.
    for row in matrix() {
        let path = fill(row.path, "ann", "bob");
        let body = row.body.as_ref().map(|b| fill_body(b, "ann", "bob"));
        for key in [None, Some("lg-not-a-real-key"), Some("sk-anything")] {
            let (status, answer) = gate.call(key, row.method, &path, body.clone()).await;
            assert_eq!(status, 401, "{key:?} {} {path}: {answer}", row.method);
            assert_eq!(answer["error"]["type"], "authentication_error");
        }
    }

    // What a user was refused changed nothing.
    let before = gate.balance("bob").await;
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/llm/credits/add",
            json!({"user_id": "bob", "amount": 1000, "reason": "x"}),
        ),
        (
            "POST",
            "/api/v1/llm/credits/add",
            json!({"user_id": "ann", "amount": 1000, "reason": "x"}),
        ),
        ("PATCH", "/api/v1/admin/users/bob", json!({"role": "admin"})),
        ("PATCH", "/api/v1/admin/users/ann", json!({"role": "admin"})),
        (
            "POST",
            "/api/v1/admin/users",
            json!({"user_id": "mallory", "tier": "enterprise", "role": "admin"}),
        ),
    ] {
        let (status, _) = gate.call(Some(&ann), method, path, Some(body)).await;
        assert_eq!(status, 403, "{method} {path}");
    }
    assert_eq!(gate.balance("bob").await, before);
    let (_, bob) = gate.admin("GET", "/api/v1/admin/users/bob", None).await;
    assert_eq!(bob["role"], "user");
    let (_, ann_now) = gate.admin("GET", "/api/v1/admin/users/ann", None).await;
    assert_eq!(ann_now["role"], "user");
    let (status, _) = gate.admin("GET", "/api/v1/admin/users/mallory", None).await;
    assert_eq!(status, 404);
    // Ann can still do what users do.
    let (status, _) = gate.call(Some(&ann), "GET", "/v1/models", None).await;
    assert_eq!(status, 200);
    gate.stop().await;
}

#[tokio::test]
async fn permission_matrix_on_sqlite() {
    run_matrix(sqlite_file()).await;
}

#[tokio::test]
async fn permission_matrix_on_postgres() {
    if let Some(db) = postgres().await {
        run_matrix(db).await;
    }
}

/// The team endpoints for an admin (the master key), the team's owner, a plain member and an
/// outsider: members read the team's books, only owners make its keys, only admins write.
async fn run_team_matrix(db: Database) {
    let gate = Gate::start(db).await;
    let owner = gate.create_user("own", "starter", "user").await;
    let member = gate.create_user("mem", "starter", "user").await;
    let outsider = gate.create_user("out", "starter", "user").await;
    gate.create_user("extra", "starter", "user").await;
    let (status, _) = gate
        .admin(
            "POST",
            "/api/v1/admin/teams",
            Some(json!({"team_id": "crew", "tier": "starter"})),
        )
        .await;
    assert_eq!(status, 201);
    for (user, role) in [("own", "owner"), ("mem", "member")] {
        let (status, _) = gate
            .admin(
                "POST",
                "/api/v1/admin/teams/crew/members",
                Some(json!({"user_id": user, "role": role})),
            )
            .await;
        assert_eq!(status, 200);
    }
    let rows: Vec<(&str, &str, Option<Value>, [Expect; 4])> = vec![
        (
            "GET",
            "/api/v1/llm/credits?team_id=crew",
            None,
            [OK, OK, OK, DENIED],
        ),
        (
            "GET",
            "/api/v1/llm/credits/transactions?team_id=crew",
            None,
            [OK, OK, OK, DENIED],
        ),
        (
            "GET",
            "/api/v1/llm/usage?team_id=crew",
            None,
            [OK, OK, OK, DENIED],
        ),
        (
            "POST",
            "/api/v1/llm/credits/add",
            Some(json!({"team_id": "crew", "amount": 1, "reason": "matrix"})),
            [OK, DENIED, DENIED, DENIED],
        ),
        (
            "POST",
            "/api/v1/keys",
            Some(json!({"team_id": "crew"})),
            [DENIED, CREATED, DENIED, DENIED],
        ),
        (
            "POST",
            "/api/v1/keys",
            Some(json!({"team_id": "crew", "user_id": "own"})),
            [CREATED, CREATED, DENIED, DENIED],
        ),
        (
            "GET",
            "/api/v1/admin/teams",
            None,
            [OK, DENIED, DENIED, DENIED],
        ),
        (
            "POST",
            "/api/v1/admin/teams",
            Some(json!({"team_id": "{fresh}", "tier": "starter"})),
            [CREATED, DENIED, DENIED, DENIED],
        ),
        (
            "POST",
            "/api/v1/admin/teams/crew/members",
            Some(json!({"user_id": "extra", "role": "member"})),
            [OK, DENIED, DENIED, DENIED],
        ),
        (
            "DELETE",
            "/api/v1/admin/teams/crew/members/extra",
            None,
            [OK, DENIED, DENIED, DENIED],
        ),
    ];
    let callers = [
        ("admin", MASTER_KEY.to_owned()),
        ("owner", owner),
        ("member", member),
        ("outsider", outsider),
    ];
    for (i, (who, key)) in callers.iter().enumerate() {
        for (method, path, body, expect) in &rows {
            let body = body.as_ref().map(|b| fill_body(b, "", ""));
            let (status, answer) = gate.call(Some(key), method, path, body).await;
            check(
                expect[i],
                status,
                &format!("{who} {method} {path}"),
                &answer,
            );
        }
    }
    gate.stop().await;
}

#[tokio::test]
async fn team_permission_matrix_on_sqlite() {
    run_team_matrix(sqlite_file()).await;
}

#[tokio::test]
async fn team_permission_matrix_on_postgres() {
    if let Some(db) = postgres().await {
        run_team_matrix(db).await;
    }
}

#[tokio::test]
async fn public_endpoints_need_no_key() {
    let gate = Gate::start(sqlite_file()).await;
    for path in ["/health", "/health/ready"] {
        let (status, body) = gate.call(None, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    gate.stop().await;
}
