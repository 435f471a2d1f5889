#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The request log through the running server, on SQLite and PostgreSQL: a success, a
//! fallback, a stream, a 404, a 402 and an all-candidates-failed request each leave one row
//! with its status, attempts, tokens and cost, read back through `GET /api/v1/llm/requests`;
//! users see only their own rows; pages follow `next`; old rows are pruned.

#[macro_use]
mod support;

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::request_log::LogEntry;
use llmgate_server::RunningServer;
use llmgate_server::request_log::RequestLog;
use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::MASTER_KEY;
use support::databases::{Database, Db};

/// `logging.store_bodies` of every server here but [`bodies_are_kept_when_asked`]'s.
const STORE_BODIES: &str = "false";

/// A server on its own database, with a steady upstream and a failing one.
struct Gate {
    server: RunningServer,
    log: Arc<RequestLog>,
    http: reqwest::Client,
    _db: Database,
}

fn yaml(database_url: &str, steady: &str, failing: &str, other_failing: &str) -> String {
    format!(
        r#"
storage: {{ database_url: "{database_url}" }}
logging: {{ store_bodies: {STORE_BODIES} }}
tiers:
  paid: {{ markup: 0.0 }}
providers:
  - {{ name: steady, kind: openai, api_base: "{steady}/v1", api_key: sk-steady-0000 }}
  - {{ name: flaky, kind: openai, api_base: "{failing}/v1", api_key: sk-flaky-0000 }}
  - {{ name: broken, kind: openai, api_base: "{other_failing}/v1", api_key: sk-broken-0000 }}
models:
  - {{ name: backup, provider: steady, upstream_model: steady-model, cost_per_1k: 0.02 }}
  - {{ name: primary, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.01, fallbacks: [backup] }}
  - {{ name: doomed, provider: flaky, upstream_model: flaky-model, cost_per_1k: 0.01, fallbacks: [doomed-too] }}
  - {{ name: doomed-too, provider: broken, upstream_model: broken-model, cost_per_1k: 0.01 }}
routing:
  num_retries: 0
  cooldown_after_failures: 0
"#
    )
}

impl Gate {
    async fn start(db: Db, upstreams: &Upstreams) -> Option<Gate> {
        Self::start_with(db, upstreams, false).await
    }

    async fn start_with(db: Db, upstreams: &Upstreams, store_bodies: bool) -> Option<Gate> {
        let database = Database::create(db).await?;
        let mut yaml = yaml(
            &database.url,
            &upstreams.steady.url(),
            &upstreams.flaky.url(),
            &upstreams.broken.url(),
        );
        if store_bodies {
            yaml = yaml.replace("store_bodies: false", "store_bodies: true");
        }
        let config = support::yaml_config(&yaml, &support::empty_env());
        let server = support::bind(config).await;
        let log = server.state().request_log.clone();
        Some(Gate {
            server: server.spawn().unwrap(),
            log,
            http: support::client(),
            _db: database,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A funded user of the paid tier: (id, key).
    async fn user(&self, name: &str) -> (String, String) {
        let user_id = format!("{name}-{:08x}", rand::random::<u32>());
        let key = support::create_user(&self.server.url(), &user_id, "paid").await;
        let response = self
            .http
            .post(self.url("/api/v1/llm/credits/add"))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"user_id": user_id, "amount": 100, "reason": "log test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        (user_id, key)
    }

    async fn chat(&self, key: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// `GET path` as `key`: status and JSON body.
    async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// The rows of a listing as `key`.
    async fn rows(&self, query: &str, key: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/v1/llm/requests{query}"), key).await;
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    }

    /// The row of the request `request_id`, waiting briefly for a stream's row (queued when
    /// its body is dropped, just after the client read the end).
    async fn row_of(&self, request_id: &str, key: &str) -> Value {
        for _ in 0..50 {
            let rows = self.rows("?limit=200", key).await;
            if let Some(row) = rows.into_iter().find(|r| r["request_id"] == request_id) {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no row for {request_id}");
    }
}

struct Upstreams {
    steady: FakeUpstream,
    flaky: FakeUpstream,
    broken: FakeUpstream,
}

impl Upstreams {
    async fn start() -> Upstreams {
        let upstreams = Upstreams {
            steady: FakeUpstream::start().await,
            flaky: FakeUpstream::start().await,
            broken: FakeUpstream::start().await,
        };
        upstreams.steady.set_default(Reply::json(
            200,
            openai::completion("steady-model", "Second left.", 12, 8),
        ));
        upstreams.flaky.set_default(Reply::json(
            500,
            openai::error("boom", "server_error", None),
        ));
        upstreams.broken.set_default(Reply::json(
            502,
            openai::error("bad gateway", "server_error", None),
        ));
        upstreams
    }
}

fn ask(model: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Which way to the station?"}],
        "max_tokens": 50,
    })
}

/// Send `body` as `key` with the request id `id`; returns the status.
async fn send(gate: &Gate, key: &str, id: &str, body: Value) -> u16 {
    let response = gate
        .http
        .post(gate.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-request-id", id)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    response.text().await.unwrap();
    status
}

fn attempts(row: &Value) -> Vec<(String, u64)> {
    row["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["provider"].as_str().unwrap().to_owned(),
                a["status"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn every_outcome_is_logged(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start(db, &upstreams).await else {
        return;
    };
    let (user, key) = gate.user("ann").await;

    assert_eq!(send(&gate, &key, "ok-1", ask("backup")).await, 200);
    assert_eq!(send(&gate, &key, "fallback-1", ask("primary")).await, 200);
    assert_eq!(
        send(&gate, &key, "missing-1", ask("no-such-model")).await,
        404
    );
    let failed = send(&gate, &key, "failed-1", ask("doomed")).await;
    assert!([502, 503].contains(&failed), "{failed}");
    upstreams.steady.push(Reply::sse(&openai::text_chunks(
        "steady-model",
        &["Second ", "left."],
        Some((12, 8)),
    )));
    let mut streamed = ask("backup");
    streamed["stream"] = json!(true);
    assert_eq!(send(&gate, &key, "stream-1", streamed).await, 200);

    // The Anthropic ingress runs the same pipeline, and counting tokens is logged too (free).
    for (path, id) in [
        ("/v1/messages", "messages-1"),
        ("/v1/messages/count_tokens", "count-1"),
    ] {
        let response = gate
            .http
            .post(gate.url(path))
            .header("x-api-key", &key)
            .header("x-request-id", id)
            .json(&json!({"model": "backup", "max_tokens": 50,
                          "messages": [{"role": "user", "content": "Which way to the station?"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "{path}: {}",
            response.text().await.unwrap()
        );
    }
    let messages = gate.row_of("messages-1", &key).await;
    assert_eq!(messages["endpoint"], "/v1/messages");
    assert_eq!(
        (
            messages["prompt_tokens"].as_u64(),
            messages["completion_tokens"].as_u64()
        ),
        (Some(12), Some(8))
    );
    assert_eq!(attempts(&messages), [("steady".to_owned(), 200)]);
    let counted = gate.row_of("count-1", &key).await;
    assert_eq!(counted["endpoint"], "/v1/messages/count_tokens");
    assert!(counted["prompt_tokens"].as_u64().unwrap() > 0, "{counted}");
    assert_eq!(counted["cost_micros"], 0);

    let ok = gate.row_of("ok-1", &key).await;
    assert_eq!(ok["user_id"], user);
    assert_eq!(ok["endpoint"], "/v1/chat/completions");
    assert_eq!(
        (ok["status"].as_u64(), ok["error_code"].is_null()),
        (Some(200), true)
    );
    assert_eq!(
        (ok["model"].as_str(), ok["provider"].as_str()),
        (Some("backup"), Some("steady"))
    );
    assert_eq!(attempts(&ok), [("steady".to_owned(), 200)]);
    assert_eq!(
        (
            ok["prompt_tokens"].as_u64(),
            ok["completion_tokens"].as_u64()
        ),
        (Some(12), Some(8))
    );
    assert!(ok["cost_micros"].as_i64().unwrap() > 0, "{ok}");
    assert_eq!(ok["key_source"], "platform");
    assert_eq!(ok["stream"], false);
    assert!(ok["key_id"].is_string(), "the user's key is named: {ok}");
    assert!(ok.get("prompt").is_none(), "no bodies by default: {ok}");

    let fallback = gate.row_of("fallback-1", &key).await;
    assert_eq!(fallback["status"], 200);
    assert_eq!(fallback["requested_model"], "primary");
    assert_eq!(fallback["model"], "backup");
    assert_eq!(
        attempts(&fallback),
        [("flaky".to_owned(), 500), ("steady".to_owned(), 200)]
    );
    assert!(fallback["cost_micros"].as_i64().unwrap() > 0);

    let missing = gate.row_of("missing-1", &key).await;
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["error_code"], "model_not_found");
    assert_eq!(missing["requested_model"], "no-such-model");
    assert!(missing["model"].is_null() && attempts(&missing).is_empty());
    assert_eq!(missing["cost_micros"], 0);

    let all_failed = gate.row_of("failed-1", &key).await;
    assert_eq!(all_failed["status"], failed);
    assert!(all_failed["error_code"].is_string(), "{all_failed}");
    assert_eq!(
        attempts(&all_failed),
        [("flaky".to_owned(), 500), ("broken".to_owned(), 502)]
    );
    assert_eq!(
        (
            all_failed["cost_micros"].as_i64(),
            all_failed["completion_tokens"].as_u64()
        ),
        (Some(0), Some(0))
    );

    let stream = gate.row_of("stream-1", &key).await;
    assert_eq!(
        (stream["status"].as_u64(), stream["stream"].as_bool()),
        (Some(200), Some(true))
    );
    assert_eq!(
        (
            stream["prompt_tokens"].as_u64(),
            stream["completion_tokens"].as_u64()
        ),
        (Some(12), Some(8))
    );
    assert!(stream["cost_micros"].as_i64().unwrap() > 0, "{stream}");
    let ttfb = stream["ttfb_ms"]
        .as_u64()
        .expect("a stream has a first byte");
    assert!(ttfb <= stream["latency_ms"].as_u64().unwrap());

    // The detail has the same row and its cost by class.
    let id = fallback["id"].as_i64().unwrap();
    let (status, detail) = gate.get(&format!("/api/v1/llm/requests/{id}"), &key).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["attempts"], fallback["attempts"]);
    assert_eq!(
        detail["cost_breakdown"]["cost_micros"],
        fallback["cost_micros"]
    );

    // Filters: status, a code, the model.
    let ids = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(gate.rows("?status=error", &key).await),
        ["failed-1", "missing-1"]
    );
    assert_eq!(ids(gate.rows("?status=404", &key).await), ["missing-1"]);
    assert_eq!(
        ids(gate.rows("?status=ok&model=backup", &key).await),
        ["count-1", "messages-1", "stream-1", "fallback-1", "ok-1"]
    );
    assert_eq!(
        ids(gate.rows("?model=no-such-model", &key).await),
        ["missing-1"]
    );
    let key_id = ok["key_id"].as_str().unwrap();
    assert_eq!(gate.rows(&format!("?key_id={key_id}"), &key).await.len(), 7);
    assert!(gate.rows("?key_id=someone-else", &key).await.is_empty());
    let (status, _) = gate.get("/api/v1/llm/requests?status=fine", &key).await;
    assert_eq!(status, 400);
    let (status, _) = gate.get("/api/v1/llm/requests?before=42", &key).await;
    assert_eq!(status, 400);
    gate.server.shutdown().await.unwrap();
}

async fn refusals_of_a_known_caller_are_logged_and_unknown_keys_are_not(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start(db, &upstreams).await else {
        return;
    };
    let user_id = format!("broke-{:08x}", rand::random::<u32>());
    let key = support::create_user(&gate.server.url(), &user_id, "paid").await;
    assert_eq!(send(&gate, &key, "broke-1", ask("backup")).await, 402);
    assert_eq!(
        send(&gate, "lg-not-a-key", "nobody-1", ask("backup")).await,
        401
    );

    let broke = gate.row_of("broke-1", &key).await;
    assert_eq!(
        (broke["status"].as_u64(), broke["error_code"].as_str()),
        (Some(402), Some("insufficient_credits"))
    );
    assert!(
        attempts(&broke).is_empty(),
        "refused before any upstream call"
    );
    let everyone = gate.rows("?limit=200", MASTER_KEY).await;
    assert!(
        everyone.iter().all(|r| r["request_id"] != "nobody-1"),
        "a 401 has no user to log"
    );
    gate.server.shutdown().await.unwrap();
}

async fn a_user_never_sees_another_users_rows(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start(db, &upstreams).await else {
        return;
    };
    let (ann, ann_key) = gate.user("ann").await;
    let (bob, bob_key) = gate.user("bob").await;
    assert_eq!(gate.chat(&ann_key, ask("backup")).await.status(), 200);
    assert_eq!(gate.chat(&bob_key, ask("backup")).await.status(), 200);

    let anns = gate.rows("", &ann_key).await;
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0]["user_id"], ann);
    let bobs = gate.rows("", &bob_key).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0]["user_id"], bob);

    // Naming another user is refused; another user's row is not found.
    let (status, _) = gate
        .get(&format!("/api/v1/llm/requests?user_id={bob}"), &ann_key)
        .await;
    assert_eq!(status, 403);
    let bobs_id = bobs[0]["id"].as_i64().unwrap();
    let (status, _) = gate
        .get(&format!("/api/v1/llm/requests/{bobs_id}"), &ann_key)
        .await;
    assert_eq!(status, 404);
    let (status, _) = gate
        .get(&format!("/api/v1/llm/requests/{bobs_id}"), &bob_key)
        .await;
    assert_eq!(status, 200);

    // The admin sees both, or one user's.
    let all = gate.rows("", MASTER_KEY).await;
    assert!(all.len() >= 2);
    let only_bob = gate.rows(&format!("?user_id={bob}"), MASTER_KEY).await;
    assert_eq!(only_bob.len(), 1);
    assert_eq!(only_bob[0]["user_id"], bob);
    gate.server.shutdown().await.unwrap();
}

async fn pages_follow_next_and_old_rows_are_pruned(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start(db, &upstreams).await else {
        return;
    };
    let (_, key) = gate.user("pat").await;
    for i in 0..5 {
        assert_eq!(
            send(&gate, &key, &format!("page-{i}"), ask("backup")).await,
            200
        );
    }
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let (status, page) = gate
            .get(&format!("/api/v1/llm/requests{query}"), &key)
            .await;
        assert_eq!(status, 200);
        for row in page["data"].as_array().unwrap() {
            seen.push(row["request_id"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(next) => query = format!("?limit=2&before={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["page-4", "page-3", "page-2", "page-1", "page-0"]);

    // A row from 40 days ago goes with a 30-day retention; today's stay.
    let old = LogEntry {
        request_id: Arc::from("ancient"),
        created_at_ms: (llmgate_core::memory::unix_now() - 40 * 86_400) * 1000,
        user_id: Arc::from("admin"),
        endpoint: "/v1/chat/completions",
        status: 200,
        ..LogEntry::default()
    };
    gate.log.store.append(&[old]).await.unwrap();
    let from = llmgate_core::memory::unix_now() - 41 * 86_400;
    let before = gate
        .rows(&format!("?from={from}&limit=200"), MASTER_KEY)
        .await;
    assert!(before.iter().any(|r| r["request_id"] == "ancient"));
    assert_eq!(gate.log.prune(30).await.unwrap(), 1);
    let after = gate.rows("?limit=200", MASTER_KEY).await;
    assert!(after.iter().all(|r| r["request_id"] != "ancient"));
    assert_eq!(after.len(), 5);
    gate.server.shutdown().await.unwrap();
}

async fn bodies_are_kept_when_asked(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start_with(db, &upstreams, true).await else {
        return;
    };
    let (_, key) = gate.user("kim").await;
    assert_eq!(send(&gate, &key, "body-1", ask("backup")).await, 200);
    upstreams.steady.push(Reply::sse(&openai::text_chunks(
        "steady-model",
        &["Second ", "left."],
        Some((12, 8)),
    )));
    let mut streamed = ask("backup");
    streamed["stream"] = json!(true);
    assert_eq!(send(&gate, &key, "body-2", streamed).await, 200);

    for id in ["body-1", "body-2"] {
        let listed = gate.row_of(id, &key).await;
        assert!(
            listed.get("prompt").is_none(),
            "the listing leaves bodies out"
        );
        let (status, detail) = gate
            .get(&format!("/api/v1/llm/requests/{}", listed["id"]), &key)
            .await;
        assert_eq!(status, 200);
        assert!(
            detail["prompt"]
                .as_str()
                .unwrap()
                .contains("Which way to the station?"),
            "{detail}"
        );
        assert_eq!(detail["answer"], "Second left.", "{detail}");
    }
    gate.server.shutdown().await.unwrap();
}

/// POST `body` to `path` as `key`: status and JSON body.
async fn post(gate: &Gate, path: &str, key: &str, body: Value) -> (u16, Value) {
    let response = gate
        .http
        .post(gate.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A team key's row is its maker's and names the team: every member sees it (in the listing
/// and by id), an outsider does not.
async fn team_members_see_their_teams_rows(db: Db) {
    let upstreams = Upstreams::start().await;
    let Some(gate) = Gate::start(db, &upstreams).await else {
        return;
    };
    let (owner, owner_key) = gate.user("olga").await;
    let (member, member_key) = gate.user("max").await;
    let (_, outsider_key) = gate.user("otto").await;
    let team = format!("core-{:08x}", rand::random::<u32>());
    let (status, body) = post(
        &gate,
        "/api/v1/admin/teams",
        MASTER_KEY,
        json!({"team_id": team, "tier": "paid"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for (user, role) in [(&owner, "owner"), (&member, "member")] {
        let path = format!("/api/v1/admin/teams/{team}/members");
        let (status, body) = post(
            &gate,
            &path,
            MASTER_KEY,
            json!({"user_id": user, "role": role}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let fund = json!({"team_id": team, "amount": 50, "reason": "team budget"});
    let (status, body) = post(&gate, "/api/v1/llm/credits/add", MASTER_KEY, fund).await;
    assert_eq!(status, 200, "{body}");
    let (status, made) = post(
        &gate,
        "/api/v1/keys",
        &owner_key,
        json!({"name": "ci", "team_id": team}),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let team_key = made["api_key"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&gate, &team_key, "team-call", ask("backup")).await,
        200
    );

    // The owner (who made the key) and the member both see the row, under the maker and the team.
    for key in [&owner_key, &member_key] {
        let row = gate.row_of("team-call", key).await;
        assert_eq!(row["user_id"], owner.as_str(), "{row}");
        assert_eq!(row["team_id"], team.as_str(), "{row}");
        let (status, _) = gate
            .get(&format!("/api/v1/llm/requests/{}", row["id"]), key)
            .await;
        assert_eq!(status, 200);
    }
    // The outsider sees neither the listing's row nor the row by id.
    let id = gate.row_of("team-call", MASTER_KEY).await["id"].clone();
    let theirs = gate.rows("?limit=200", &outsider_key).await;
    assert!(theirs.iter().all(|r| r["request_id"] != "team-call"));
    let (status, _) = gate
        .get(&format!("/api/v1/llm/requests/{id}"), &outsider_key)
        .await;
    assert_eq!(status, 404);
    gate.server.shutdown().await.unwrap();
}

on_both_databases!(
    team_members_see_their_teams_rows,
    bodies_are_kept_when_asked,
    every_outcome_is_logged,
    refusals_of_a_known_caller_are_logged_and_unknown_keys_are_not,
    a_user_never_sees_another_users_rows,
    pages_follow_next_and_old_rows_are_pruned,
);
