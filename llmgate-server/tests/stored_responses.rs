#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Stored responses through the running server, on SQLite and on PostgreSQL: rows put with the
//! server's own store (as `POST /v1/responses` puts them) are read, listed and deleted with the
//! official `openai` Python SDK (`responses.retrieve`, `responses.input_items.list`,
//! `responses.delete`) and raw HTTP; only their owner sees them (404 for anyone else, the same
//! answer as an unknown id); two servers on one database read the same row; the conversation of
//! a three-deep chain is rebuilt and never crosses owners; and expired responses are pruned
//! while fresh ones, and all of them with `retention_days: 0`, stay.

#[macro_use]
mod support;

use std::time::Duration;

use llmgate_credits::StoredResponse;
use llmgate_server::config::{Config, Env};
use serde_json::{Value, json};
use support::money::{Database, Db, Gateway, MASTER_KEY, client, now};

on_both_databases!(
    the_openai_sdk_retrieves_lists_and_deletes_a_stored_response,
    raw_http_gets_openais_shapes_and_errors,
    another_users_id_is_a_404_like_an_unknown_one,
    two_servers_on_one_database_read_the_same_row,
    a_conversation_is_rebuilt_from_its_chain_within_one_owner,
    expired_responses_are_pruned_and_fresh_ones_stay,
    an_expired_response_is_gone_before_the_pruner_runs,
    retention_zero_keeps_responses_until_deleted,
);

fn config(db: &Database, responses: &str) -> Config {
    let yaml = format!(
        r#"
storage:
  database_url: ${{DB_URL}}
tiers:
  starter: {{ markup: 0.4, byok: false, monthly_credits: 0, default_power_level: balanced }}
{responses}
"#
    );
    let env = Env::from_pairs([("DB_URL", db.url.clone())]);
    let config = Config::from_yaml(&yaml, &env).unwrap();
    config.check().unwrap();
    config
}

struct Setup {
    db: Database,
    gateway: Gateway,
    ann: String,
    bob: String,
}

async fn setup_with(db: Db, responses: &str) -> Option<Setup> {
    let database = Database::create(db).await?;
    let gateway = Gateway::start(config(&database, responses)).await;
    let ann = gateway.user("ann", "starter").await;
    let bob = gateway.user("bob", "starter").await;
    Some(Setup {
        db: database,
        gateway,
        ann,
        bob,
    })
}

async fn setup(db: Db) -> Option<Setup> {
    setup_with(db, "").await
}

/// A response as `POST /v1/responses` answers it: `owner` asked `asked` (and the items in
/// `more`), the model said `said`.
fn response(
    id: &str,
    owner: &str,
    previous: Option<&str>,
    asked: &str,
    said: &str,
) -> StoredResponse {
    let created_at = now();
    StoredResponse {
        id: id.to_owned(),
        owner: owner.to_owned(),
        created_at,
        model: "gpt-test".to_owned(),
        previous_response_id: previous.map(str::to_owned),
        input_items: json!([{"role": "user", "content": asked}]).to_string(),
        response: json!({
            "id": id,
            "object": "response",
            "created_at": created_at,
            "status": "completed",
            "model": "gpt-test",
            "previous_response_id": previous,
            "output": [{
                "type": "message",
                "id": format!("msg_out_{id}"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": said, "annotations": []}],
            }],
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 5,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 2,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 7,
            },
        })
        .to_string(),
    }
}

impl Setup {
    async fn put(&self, r: &StoredResponse) {
        self.gateway.state.storage.responses.put(r).await.unwrap();
    }

    async fn send(&self, method: &str, path: &str, key: &str) -> (u16, Value) {
        let method: reqwest::Method = method.parse().unwrap();
        let response = client()
            .request(method, self.gateway.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn the_openai_sdk_retrieves_lists_and_deletes_a_stored_response(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    if !support::python::has("openai") {
        return;
    }
    let mut stored = response("resp_sdk1", "ann", None, "hi", "Hello there!");
    stored.input_items = json!([
        {"role": "developer", "content": "be brief"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        {"type": "function_call_output", "call_id": "call_7", "output": "42"},
    ])
    .to_string();
    setup.put(&stored).await;
    let script = r#"
import os, openai
ann = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["KEY"])
bob = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["OTHER"])
r = ann.responses.retrieve("resp_sdk1")
print(r.id, r.status, r.model, repr(r.output_text), r.usage.total_tokens)
page = ann.responses.input_items.list("resp_sdk1", order="asc", limit=2)
print([i.id for i in page.data], page.has_more)
print([(i.type, i.id) for i in ann.responses.input_items.list("resp_sdk1", order="asc", limit=2)])
print([i.id for i in ann.responses.input_items.list("resp_sdk1")])
try:
    bob.responses.retrieve("resp_sdk1")
except openai.NotFoundError as e:
    print("bob", e.status_code)
try:
    bob.responses.delete("resp_sdk1")
except openai.NotFoundError as e:
    print("bob delete", e.status_code)
print(ann.responses.delete("resp_sdk1"))
try:
    ann.responses.retrieve("resp_sdk1")
except openai.NotFoundError as e:
    print("gone", e.status_code)
try:
    ann.responses.retrieve("not-a-response")
except openai.BadRequestError as e:
    print("bad", e.status_code, e.body["param"])
"#;
    let out = support::python::run_with(
        script,
        vec![
            ("BASE_URL", setup.gateway.url("")),
            ("KEY", setup.ann.clone()),
            ("OTHER", setup.bob.clone()),
        ],
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "resp_sdk1 completed gpt-test 'Hello there!' 7",
            "['msg_sdk1_0', 'msg_sdk1_1'] True",
            // Iterating pages on with `after` until `has_more` is false.
            "[('message', 'msg_sdk1_0'), ('message', 'msg_sdk1_1'), ('function_call_output', 'fco_sdk1_2')]",
            // Newest first by default.
            "['fco_sdk1_2', 'msg_sdk1_1', 'msg_sdk1_0']",
            "bob 404",
            "bob delete 404",
            "None",
            "gone 404",
            "bad 400 response_id",
        ],
        "{out}"
    );
    assert_eq!(
        setup
            .gateway
            .state
            .storage
            .responses
            .get("ann", "resp_sdk1")
            .await
            .unwrap(),
        None
    );
}

async fn raw_http_gets_openais_shapes_and_errors(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    let stored = response("resp_raw1", "ann", None, "hi", "hello");
    setup.put(&stored).await;
    // The response byte for byte, key order included.
    let answer = client()
        .get(setup.gateway.url("/v1/responses/resp_raw1"))
        .bearer_auth(&setup.ann)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    assert_eq!(answer.text().await.unwrap(), stored.response);

    let (status, list) = setup
        .send("GET", "/v1/responses/resp_raw1/input_items", &setup.ann)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list,
        json!({
            "object": "list",
            "data": [{"type": "message", "id": "msg_raw1_0", "role": "user",
                      "content": [{"type": "input_text", "text": "hi"}]}],
            "first_id": "msg_raw1_0",
            "last_id": "msg_raw1_0",
            "has_more": false,
        })
    );
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("order=up", "order"),
        ("after=msg_nope", "after"),
        ("before=msg_raw1_0", "before"),
    ] {
        let response = client()
            .get(
                setup
                    .gateway
                    .url(&format!("/v1/responses/resp_raw1/input_items?{query}")),
            )
            .bearer_auth(&setup.ann)
            .send()
            .await
            .unwrap();
        let error = support::assert_error(response, 400, "invalid_request_error").await;
        assert_eq!(error["param"], param, "{query}");
    }
    // A malformed id is a 400 before any lookup; an unknown one a 404.
    for path in [
        "/v1/responses/abc",
        "/v1/responses/resp%20x",
        "/v1/responses/abc/input_items",
    ] {
        let response = client()
            .get(setup.gateway.url(path))
            .bearer_auth(&setup.ann)
            .send()
            .await
            .unwrap();
        let error = support::assert_error(response, 400, "invalid_request_error").await;
        assert_eq!(error["param"], "response_id", "{path}");
        assert_eq!(error["code"], "invalid_value", "{path}");
    }
    // Without a key: 401; a method the path does not take: 405 with Allow.
    let response = client()
        .get(setup.gateway.url("/v1/responses/resp_raw1"))
        .send()
        .await
        .unwrap();
    support::assert_error(response, 401, "authentication_error").await;
    let response = client()
        .post(setup.gateway.url("/v1/responses/resp_raw1"))
        .bearer_auth(&setup.ann)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, DELETE");
    support::assert_error(response, 405, "invalid_request_error").await;

    let (status, deleted) = setup
        .send("DELETE", "/v1/responses/resp_raw1", &setup.ann)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": "resp_raw1", "object": "response", "deleted": true})
    );
    for (method, path) in [
        ("GET", "/v1/responses/resp_raw1"),
        ("GET", "/v1/responses/resp_raw1/input_items"),
        ("DELETE", "/v1/responses/resp_raw1"),
    ] {
        let (status, body) = setup.send(method, path, &setup.ann).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "response_not_found");
        assert_eq!(body["error"]["type"], "not_found_error");
    }
}

async fn another_users_id_is_a_404_like_an_unknown_one(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    setup
        .put(&response(
            "resp_own1",
            "ann",
            None,
            "ann's prompt",
            "ann's answer",
        ))
        .await;
    setup
        .put(&response("resp_adm1", "admin", None, "admin's", "answer"))
        .await;
    for (method, path) in [
        ("GET", "/v1/responses/resp_own1"),
        ("GET", "/v1/responses/resp_own1/input_items"),
        ("DELETE", "/v1/responses/resp_own1"),
    ] {
        // Bob, and the master key too: a response is its owner's alone.
        for key in [setup.bob.as_str(), MASTER_KEY] {
            let (status, body) = setup.send(method, path, key).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            let unknown = setup
                .send(method, &path.replace("resp_own1", "resp_nope1"), key)
                .await;
            let as_unknown = body.to_string().replace("resp_own1", "resp_nope1");
            assert_eq!(as_unknown, unknown.1.to_string(), "{method} {path}");
            assert!(!body.to_string().contains("ann's"), "{body}");
        }
    }
    // Still there for Ann, after Bob's delete; the master key reads its own.
    let (status, body) = setup
        .send("GET", "/v1/responses/resp_own1", &setup.ann)
        .await;
    assert_eq!((status, &body["id"]), (200, &json!("resp_own1")));
    let (status, _) = setup
        .send("GET", "/v1/responses/resp_adm1", MASTER_KEY)
        .await;
    assert_eq!(status, 200);
    let (status, _) = setup
        .send("GET", "/v1/responses/resp_adm1", &setup.ann)
        .await;
    assert_eq!(status, 404);
}

async fn two_servers_on_one_database_read_the_same_row(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    let other = Gateway::start(config(&setup.db, "")).await;
    // Written through one server's store, read and deleted through the other's HTTP API.
    setup
        .put(&response(
            "resp_rep1",
            "ann",
            None,
            "hi",
            "from replica one",
        ))
        .await;
    let (status, body) = other.get("/v1/responses/resp_rep1", &setup.ann).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["output"][0]["content"][0]["text"], "from replica one");
    let (status, body) = other
        .get("/v1/responses/resp_rep1/input_items", &setup.ann)
        .await;
    assert_eq!((status, &body["first_id"]), (200, &json!("msg_rep1_0")));
    let deleted = client()
        .delete(other.url("/v1/responses/resp_rep1"))
        .bearer_auth(&setup.ann)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let (status, _) = setup
        .gateway
        .get("/v1/responses/resp_rep1", &setup.ann)
        .await;
    assert_eq!(status, 404);
    other.stop().await;
}

async fn a_conversation_is_rebuilt_from_its_chain_within_one_owner(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    for r in [
        response("resp_c1", "ann", None, "one", "two"),
        response("resp_c2", "ann", Some("resp_c1"), "three", "four"),
        response("resp_c3", "ann", Some("resp_c2"), "five", "six"),
        // Bob names Ann's response as his previous one: his walk stops at his own.
        response("resp_c4", "bob", Some("resp_c3"), "seven", "eight"),
    ] {
        setup.put(&r).await;
    }
    let store = &setup.gateway.state.storage.responses;
    let texts = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|item| match &item["content"] {
                Value::String(text) => text.clone(),
                parts => parts[0]["text"].as_str().unwrap().to_owned(),
            })
            .collect()
    };
    let ann = store.conversation("ann", "resp_c3").await.unwrap().unwrap();
    assert_eq!(texts(ann), ["one", "two", "three", "four", "five", "six"]);
    let bob = store.conversation("bob", "resp_c4").await.unwrap().unwrap();
    assert_eq!(texts(bob), ["seven", "eight"]);
    assert_eq!(store.conversation("bob", "resp_c3").await.unwrap(), None);
}

/// Poll (bounded) until `id` of `owner` is gone; whether it went.
async fn gone_within(setup: &Setup, owner: &str, id: &str, wait: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let store = &setup.gateway.state.storage.responses;
        if store.get(owner, id).await.unwrap().is_none() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn expired_responses_are_pruned_and_fresh_ones_stay(db: Db) {
    let Some(setup) = setup_with(db, "responses: { retention_days: 1, prune_every_secs: 1 }").await
    else {
        return;
    };
    let mut old = response("resp_old1", "ann", None, "old", "old");
    old.created_at = now() - 86_400 - 60;
    let mut nearly = response("resp_nearly1", "ann", None, "nearly", "nearly");
    nearly.created_at = now() - 86_400 + 3_600;
    setup.put(&old).await;
    setup.put(&nearly).await;
    setup
        .put(&response("resp_fresh1", "ann", None, "fresh", "fresh"))
        .await;
    assert!(
        gone_within(&setup, "ann", "resp_old1", Duration::from_secs(10)).await,
        "a response older than the retention was not pruned"
    );
    let (status, _) = setup
        .send("GET", "/v1/responses/resp_old1", &setup.ann)
        .await;
    assert_eq!(status, 404);
    // Another round or two of pruning leaves the fresh ones.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    for id in ["resp_fresh1", "resp_nearly1"] {
        let (status, _) = setup
            .send("GET", &format!("/v1/responses/{id}"), &setup.ann)
            .await;
        assert_eq!(status, 200, "{id}");
    }
}

async fn an_expired_response_is_gone_before_the_pruner_runs(db: Db) {
    // The pruner ran once at start and waits an hour for its next round.
    let Some(setup) = setup_with(
        db,
        "responses: { retention_days: 1, prune_every_secs: 3600 }",
    )
    .await
    else {
        return;
    };
    let mut old = response("resp_exp1", "ann", None, "old", "old");
    old.created_at = now() - 86_400 - 10;
    setup.put(&old).await;
    setup
        .put(&response(
            "resp_exp2",
            "ann",
            Some("resp_exp1"),
            "new",
            "new",
        ))
        .await;
    for (method, path) in [
        ("GET", "/v1/responses/resp_exp1"),
        ("GET", "/v1/responses/resp_exp1/input_items"),
        ("DELETE", "/v1/responses/resp_exp1"),
    ] {
        let (status, body) = setup.send(method, path, &setup.ann).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    let store = &setup.gateway.state.storage.responses;
    let items = store
        .conversation("ann", "resp_exp2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[0]["content"], "new");
}

async fn retention_zero_keeps_responses_until_deleted(db: Db) {
    let Some(setup) = setup_with(db, "responses: { retention_days: 0, prune_every_secs: 1 }").await
    else {
        return;
    };
    let mut ancient = response("resp_ancient1", "ann", None, "a", "b");
    ancient.created_at = 1_000;
    setup.put(&ancient).await;
    assert!(
        !gone_within(&setup, "ann", "resp_ancient1", Duration::from_millis(2_500)).await,
        "retention_days: 0 must keep responses"
    );
}

#[test]
fn the_responses_section_is_validated_with_its_paths() {
    let env = Env::from_pairs([("X", "1")]);
    let config = Config::from_yaml("storage: { database_url: 'sqlite::memory:' }", &env).unwrap();
    assert_eq!(config.responses.retention_days, 30);
    assert_eq!(config.responses.prune_every_secs, 3600);
    assert_eq!(
        config.responses.retention(),
        Some(Duration::from_secs(30 * 86_400))
    );
    let forever = Config::from_yaml("responses: { retention_days: 0 }", &env).unwrap();
    assert_eq!(forever.responses.retention(), None);
    assert!(forever.validate().is_empty(), "{:?}", forever.validate());
    let bad = Config::from_yaml(
        "responses: { retention_days: 36501, prune_every_secs: 0 }",
        &env,
    )
    .unwrap();
    let paths: Vec<String> = bad.validate().into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        ["responses.retention_days", "responses.prune_every_secs"]
    );
    assert!(Config::from_yaml("responses: { retention: 3 }", &env).is_err());
}
