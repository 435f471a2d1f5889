#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `previous_response_id` through the running server, on SQLite and on PostgreSQL: an answer
//! is stored (whole or streamed, unless `store: false`), a later request continues it and the
//! upstream sees the whole conversation; on PostgreSQL the follow-up goes to a second server on
//! the same database, and the official `openai` Python SDK chains three turns across both.
//! Another user's id reads as unknown (400 `previous_response_not_found`).

#[macro_use]
mod support;

use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::databases::Db;
use support::money::{Fakes, Gateway, Options, config};

/// The upstream answers with how many messages it was sent, as `seen N`, whole or streamed.
fn answer_with_message_count(upstream: &FakeUpstream) {
    upstream.respond_with(|request| {
        let body = request.json();
        let seen = format!("seen {}", body["messages"].as_array().map_or(0, Vec::len));
        if body["stream"] == true {
            Reply::sse(&openai::text_chunks(
                "up-cheap",
                &["se", &seen[2..]],
                Some((10, 2)),
            ))
        } else {
            Reply::json(200, openai::completion("up-cheap", &seen, 10, 2))
        }
    });
}

async fn create(gateway: &Gateway, key: &str, body: Value) -> (u16, Value) {
    gateway.post("/v1/responses", key, body).await
}

/// The text of a streamed answer and its response id, from the `response.completed` event.
async fn create_streamed(gateway: &Gateway, key: &str, mut body: Value) -> (String, String) {
    body["stream"] = json!(true);
    let response = support::client()
        .post(gateway.url("/v1/responses"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let completed = text
        .split("\n\n")
        .filter_map(|event| event.split_once("\ndata: "))
        .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap())
        .find(|event| event["type"] == "response.completed")
        .unwrap_or_else(|| panic!("no response.completed: {text}"));
    let response = &completed["response"];
    (
        response["output_text"].as_str().unwrap().to_owned(),
        response["id"].as_str().unwrap().to_owned(),
    )
}

fn last_messages(upstream: &FakeUpstream) -> Vec<(String, String)> {
    let sent = upstream.last_request().unwrap().json();
    sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(text) => text.clone(),
                parts => parts[0]["text"].as_str().unwrap_or_default().to_owned(),
            };
            (m["role"].as_str().unwrap().to_owned(), text)
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(role, text)| ((*role).to_owned(), (*text).to_owned()))
        .collect()
}

async fn conversation_continues_on_any_server(db: Db) {
    let Some(database) = support::databases::Database::create(db).await else {
        return;
    };
    let fakes = Fakes::start().await;
    answer_with_message_count(&fakes.upstream);
    let first = Gateway::start(config(&database, &fakes, Options::default())).await;
    // A second server on the same PostgreSQL; on SQLite (one machine) the same server again.
    let second = match db {
        Db::Postgres => Some(Gateway::start(config(&database, &fakes, Options::default())).await),
        Db::Sqlite => None,
    };
    let other = second.as_ref().unwrap_or(&first);
    let ann = first.user("ann", "starter").await;
    first.add_credits("ann", json!(100)).await;
    let bob = first.user("bob", "starter").await;
    first.add_credits("bob", json!(100)).await;

    let (status, one) = create(
        &first,
        &ann,
        json!({"model": "cheap", "instructions": "be brief", "input": "my name is Ann"}),
    )
    .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["output_text"], "seen 2");
    assert_eq!(one["store"], true);
    let one_id = one["id"].as_str().unwrap();

    // Streamed, on the other server: the earlier turns come first, not its instructions.
    let (text, two_id) = create_streamed(
        other,
        &ann,
        json!({"model": "cheap", "input": "what is my name?", "previous_response_id": one_id}),
    )
    .await;
    assert_eq!(text, "seen 3");
    assert_eq!(
        last_messages(&fakes.upstream),
        pairs(&[
            ("user", "my name is Ann"),
            ("assistant", "seen 2"),
            ("user", "what is my name?")
        ])
    );

    // The streamed answer was stored too; new instructions go first.
    let (status, three) = create(
        &first,
        &ann,
        json!({"model": "cheap", "instructions": "be kind", "previous_response_id": two_id,
               "input": [{"role": "user", "content": [{"type": "input_text", "text": "again"}]}]}),
    )
    .await;
    assert_eq!(status, 200, "{three}");
    assert_eq!(three["previous_response_id"], json!(two_id));
    assert_eq!(
        last_messages(&fakes.upstream),
        pairs(&[
            ("system", "be kind"),
            ("user", "my name is Ann"),
            ("assistant", "seen 2"),
            ("user", "what is my name?"),
            ("assistant", "seen 3"),
            ("user", "again")
        ])
    );

    // Another user's id reads as unknown, on either server.
    for gateway in [&first, other] {
        let (status, refused) = create(
            gateway,
            &bob,
            json!({"model": "cheap", "input": "hi", "previous_response_id": one_id}),
        )
        .await;
        assert_eq!(status, 400, "{refused}");
        assert_eq!(refused["error"]["code"], "previous_response_not_found");
        assert_eq!(refused["error"]["param"], "previous_response_id");
    }

    // `store: false` keeps nothing.
    let (_, unstored) = create(
        &first,
        &ann,
        json!({"model": "cheap", "input": "forget me", "store": false}),
    )
    .await;
    assert_eq!(unstored["store"], false);
    let (status, _) = create(
        other,
        &ann,
        json!({"model": "cheap", "input": "hi", "previous_response_id": unstored["id"]}),
    )
    .await;
    assert_eq!(status, 400);

    if support::python::has("openai") {
        let stdout = support::python::run_with(
            SDK_SCRIPT,
            vec![
                ("FIRST", first.url("/v1")),
                ("SECOND", other.url("/v1")),
                ("KEY", ann.clone()),
            ],
        )
        .await;
        assert_eq!(
            stdout.lines().collect::<Vec<_>>(),
            ["seen 1", "seen 3", "seen 5", "NotFoundError-free"],
            "{db:?}"
        );
    }
    if let Some(second) = second {
        second.stop().await;
    }
    first.stop().await;
}

/// Three turns chained by `previous_response_id`, alternating between the servers.
const SDK_SCRIPT: &str = r#"
import os, openai
key = os.environ["KEY"]
first = openai.OpenAI(base_url=os.environ["FIRST"], api_key=key, max_retries=0)
second = openai.OpenAI(base_url=os.environ["SECOND"], api_key=key, max_retries=0)
r1 = first.responses.create(model="cheap", input="hi")
print(r1.output_text)
r2 = second.responses.create(model="cheap", input="and?", previous_response_id=r1.id)
print(r2.output_text)
with first.responses.stream(model="cheap", input="more", previous_response_id=r2.id) as s:
    r3 = s.get_final_response()
print(r3.output_text)
print("NotFoundError-free" if r3.previous_response_id == r2.id else r3.previous_response_id)
"#;

on_both_databases!(conversation_continues_on_any_server);
