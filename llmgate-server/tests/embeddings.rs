#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `POST /v1/embeddings` through the running server, on SQLite and on PostgreSQL: the official
//! `openai` Python SDK (its default base64, floats, and base64 asked for) and LangChain's
//! `OpenAIEmbeddings` get the fake upstreams' vectors; every answer is charged exactly the hand
//! calculation below and recorded in usage; Ollama, HuggingFace's router and TEI answer through
//! the same endpoint; a failing upstream falls back; and the refusals are 400s (402 without
//! credits) in OpenAI's error shape.

#[macro_use]
mod support;

use llmgate_server::config::{Config, Env};
use llmgate_testkit::{FakeUpstream, Reply, embeddings};
use serde_json::{Value, json};
use support::money::{Database, Db, Gateway};

on_both_databases!(
    the_openai_python_sdk_gets_vectors_and_is_charged_the_hand_calculation,
    langchain_openai_embeddings_get_vectors_and_are_charged,
    every_upstream_family_answers_through_one_endpoint,
);

/// The charge of one input token: $0.0001 per 1K tokens = $0.0000001 a token; × 1.4 (starter
/// markup) × 0.25 (balanced) = $0.000000035 = 0.000035 credits at 1,000 credits per dollar =
/// 35 micro-credits. The fakes count one token per word or token id.
const PER_TOKEN: i64 = 35;
/// The user's starting balance: 100 credits.
const START: i64 = 100_000_000;

struct Setup {
    _db: Database,
    openai: FakeUpstream,
    broken: FakeUpstream,
    ollama: FakeUpstream,
    hf: FakeUpstream,
    tei: FakeUpstream,
    gateway: Gateway,
    /// A starter-tier user with 100 credits.
    key: String,
}

async fn setup(db: Db) -> Option<Setup> {
    let database = Database::create(db).await?;
    let openai = FakeUpstream::start().await;
    let broken = FakeUpstream::start().await;
    let ollama = FakeUpstream::start().await;
    let hf = FakeUpstream::start().await;
    let tei = FakeUpstream::start().await;
    openai.respond_with(embeddings::openai(true));
    broken.set_default(Reply::json(
        500,
        json!({"error": {"message": "boom", "type": "server_error"}}),
    ));
    ollama.respond_with(embeddings::ollama());
    hf.respond_with(embeddings::openai(true));
    tei.respond_with(embeddings::tei());
    let yaml = r#"
storage:
  database_url: ${DB_URL}
billing:
  credits_per_usd: 1000
tiers:
  starter: { markup: 0.4, byok: false, monthly_credits: 0, default_power_level: balanced }
providers:
  - { name: openai, kind: openai, api_base: "${OPENAI_URL}/v1", api_key: sk-fake-0000 }
  - { name: broken, kind: openai, api_base: "${BROKEN_URL}/v1", api_key: sk-fake-0000 }
  - { name: local, kind: ollama, api_base: "${OLLAMA_URL}" }
  - { name: hf, kind: huggingface, api_base: "${HF_URL}/v1", api_key: hf-fake-0000 }
  - { name: tei, kind: huggingface, api_base: "${TEI_URL}", api_key: hf-fake-0000, embeddings_api: tei }
  - { name: anthropic, kind: anthropic, api_base: "${BROKEN_URL}", api_key: sk-ant-fake-0000 }
models:
  - { name: embed, provider: openai, upstream_model: text-embedding-3-small, mode: embedding, input_cost_per_1k: 0.0001, max_inputs: 64 }
  - { name: flaky-embed, provider: broken, upstream_model: e, mode: embedding, input_cost_per_1k: 0.0001, fallbacks: [embed] }
  - { name: local-embed, provider: local, upstream_model: nomic-embed-text, mode: embedding, input_cost_per_1k: 0.0001 }
  - { name: hf-embed, provider: hf, upstream_model: BAAI/bge-m3, mode: embedding, input_cost_per_1k: 0.0001 }
  - { name: tei-embed, provider: tei, upstream_model: bge, mode: embedding, input_cost_per_1k: 0.0001 }
  - { name: chat, provider: openai, upstream_model: gpt-up, input_cost_per_1k: 0.002, output_cost_per_1k: 0.002 }
  - { name: claude, provider: anthropic, upstream_model: claude-up, input_cost_per_1k: 0.003, output_cost_per_1k: 0.015 }
"#;
    let env = Env::from_pairs([
        ("DB_URL", database.url.clone()),
        ("OPENAI_URL", openai.url()),
        ("BROKEN_URL", broken.url()),
        ("OLLAMA_URL", ollama.url()),
        ("HF_URL", hf.url()),
        ("TEI_URL", tei.url()),
    ]);
    let config = Config::from_yaml(yaml, &env).unwrap();
    config.check().unwrap();
    let gateway = Gateway::start(config).await;
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(100)).await;
    Some(Setup {
        _db: database,
        openai,
        broken,
        ollama,
        hf,
        tei,
        gateway,
        key,
    })
}

/// Run a Python script against the server; its stdout lines.
async fn python(setup: &Setup, script: &'static str) -> Vec<String> {
    support::python::run(script, setup.gateway.url(""), setup.key.clone()).await
}

/// The openai SDK's three ways of asking: by default it asks for base64 and decodes it; with
/// `float` it gets numbers; with `base64` it gets the string as it came. Each call is charged
/// [`PER_TOKEN`] per token the upstream counted.
async fn the_openai_python_sdk_gets_vectors_and_is_charged_the_hand_calculation(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    if !support::python::has("openai") {
        return;
    }
    let script = r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["KEY"])
default = client.embeddings.create(model="embed", input=["one", "two"])
print([list(d.embedding) for d in default.data], default.usage.prompt_tokens)
floats = client.embeddings.create(model="embed", input="one", encoding_format="float")
print([list(d.embedding) for d in floats.data], floats.model)
raw = client.embeddings.create(model="embed", input=[[1, 2, 3]], encoding_format="base64")
print(raw.data[0].embedding, raw.usage.prompt_tokens)
"#;
    let lines = python(&setup, script).await;
    assert_eq!(
        lines,
        [
            "[[0.5, 0.25, -0.125, 1.0], [1.5, 0.25, -0.125, 1.0]] 2".to_owned(),
            "[[0.5, 0.25, -0.125, 1.0]] text-embedding-3-small".to_owned(),
            format!("{} 3", embeddings::base64_of(&embeddings::vector(0, 4))),
        ]
    );
    // The encoding asked for went upstream as it was: the vectors came back in it and were
    // passed on without conversion.
    let sent: Vec<Value> = setup.openai.requests().iter().map(|r| r.json()).collect();
    assert_eq!(sent[0]["encoding_format"], "base64");
    assert_eq!(sent[0]["model"], "text-embedding-3-small");
    assert_eq!(sent[1]["encoding_format"], "float");
    assert_eq!(sent[2]["input"], json!([[1, 2, 3]]));
    // 2 + 1 + 3 tokens.
    assert_eq!(
        setup.gateway.balance(&setup.key).await,
        START - 6 * PER_TOKEN
    );
    setup.gateway.stop().await;
}

/// LangChain's `OpenAIEmbeddings` (documents and a query) against the server.
async fn langchain_openai_embeddings_get_vectors_and_are_charged(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    if !support::python::has("langchain_openai") {
        return;
    }
    // `check_embedding_ctx_length=False`: send the texts, not tiktoken's token ids (whose
    // tables LangChain would download).
    let script = r#"
import os
from langchain_openai import OpenAIEmbeddings
e = OpenAIEmbeddings(model="embed", base_url=os.environ["BASE_URL"] + "/v1",
                     api_key=os.environ["KEY"], check_embedding_ctx_length=False)
print(e.embed_documents(["alpha", "beta", "gamma"]))
print(e.embed_query("delta"))
"#;
    let lines = python(&setup, script).await;
    assert_eq!(
        lines,
        [
            "[[0.5, 0.25, -0.125, 1.0], [1.5, 0.25, -0.125, 1.0], [2.5, 0.25, -0.125, 1.0]]",
            "[0.5, 0.25, -0.125, 1.0]",
        ]
    );
    assert_eq!(setup.openai.request_count(), 2);
    // 3 + 1 tokens.
    assert_eq!(
        setup.gateway.balance(&setup.key).await,
        START - 4 * PER_TOKEN
    );
    let (status, usage) = setup
        .gateway
        .get("/api/v1/llm/usage?group_by=model", &setup.key)
        .await;
    assert_eq!(status, 200, "{usage}");
    let row = usage["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "embed")
        .unwrap()
        .clone();
    assert_eq!(row["requests"], 2);
    assert_eq!(row["prompt_tokens"], 4);
    assert_eq!(row["cost_micros"], 4 * PER_TOKEN);
    assert_eq!(row["completion_tokens"], 0);
    setup.gateway.stop().await;
}

async fn embed(setup: &Setup, body: Value) -> reqwest::Response {
    support::client()
        .post(setup.gateway.url("/v1/embeddings"))
        .bearer_auth(&setup.key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn floats(answer: &Value) -> Vec<Vec<f64>> {
    answer["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Ollama's `/api/embed`, HuggingFace's router and TEI's `/embed` through `/v1/embeddings`,
/// base64 made by the gateway from their floats; a failing upstream falls back to the next.
async fn every_upstream_family_answers_through_one_endpoint(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    let mut balance = START;
    for (model, upstream) in [
        ("local-embed", &setup.ollama),
        ("hf-embed", &setup.hf),
        ("tei-embed", &setup.tei),
    ] {
        let response = embed(&setup, json!({"model": model, "input": ["a", "b"]})).await;
        assert_eq!(response.status(), 200, "{model}");
        let cost: i64 = response.headers()["x-llmgate-cost-micros"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            floats(&answer),
            [[0.5, 0.25, -0.125, 1.0], [1.5, 0.25, -0.125, 1.0]],
            "{model}"
        );
        // (TEI reports no usage: the gateway's tokenizer counts "a" and "b".)
        assert_eq!(answer["usage"]["prompt_tokens"], 2, "{model}");
        assert_eq!(cost, 2 * PER_TOKEN, "{model}");
        balance -= cost;
        assert_eq!(upstream.request_count(), 1, "{model}");
    }
    assert_eq!(setup.ollama.last_request().unwrap().path, "/api/embed");
    assert_eq!(
        setup.ollama.last_request().unwrap().json()["input"],
        json!(["a", "b"])
    );
    assert_eq!(setup.hf.last_request().unwrap().path, "/v1/embeddings");
    assert_eq!(setup.tei.last_request().unwrap().path, "/embed");
    assert_eq!(
        setup.tei.last_request().unwrap().json()["inputs"],
        json!(["a", "b"])
    );

    // Base64 asked of an upstream that answers floats: the gateway encodes them.
    let response = embed(
        &setup,
        json!({"model": "local-embed", "input": "a", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["data"][0]["embedding"],
        embeddings::base64_of(&embeddings::vector(0, 4))
    );
    balance -= PER_TOKEN;

    // The first deployment answers 500: the request falls back to `embed`, charged once.
    let response = embed(&setup, json!({"model": "flaky-embed", "input": "a"})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-llmgate-model"], "embed");
    assert_eq!(response.headers()["x-llmgate-provider"], "openai");
    assert_eq!(response.headers()["x-llmgate-attempts"], "2");
    assert_eq!(response.headers()["x-llmgate-cost-micros"], "35");
    assert_eq!(setup.broken.request_count(), 1);
    balance -= PER_TOKEN;
    assert_eq!(setup.gateway.balance(&setup.key).await, balance);
    setup.gateway.stop().await;
}

/// Each refusal: its status, OpenAI's error shape, and nothing sent upstream or charged.
#[tokio::test]
async fn refusals_are_openai_errors_and_cost_nothing() {
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    let too_many: Vec<String> = (0..65).map(|i| format!("t{i}")).collect();
    let cases = [
        (json!({"model": "chat", "input": "a"}), 400, "mode `chat`"),
        (
            json!({"model": "embed", "input": too_many}),
            400,
            "at most 64 inputs",
        ),
        (json!({"model": "embed", "input": []}), 400, "at least one"),
        (json!({"model": "embed", "input": ""}), 400, "empty string"),
        (json!({"model": "claude", "input": "a"}), 400, "mode `chat`"),
        (json!({"model": "embed"}), 400, "input"),
    ];
    for (body, status, words) in cases {
        let response = embed(&setup, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{body}: {message}");
        assert_eq!(error["error"]["type"], "invalid_request_error", "{body}");
    }
    // Malformed JSON.
    let response = support::client()
        .post(setup.gateway.url("/v1/embeddings"))
        .bearer_auth(&setup.key)
        .header("content-type", "application/json")
        .body("{\"model\": \"embed\", \"input\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "invalid_request_error");

    // Chat on an embedding model names the mode too.
    let response = setup
        .gateway
        .chat(
            &setup.key,
            json!({"model": "embed", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mode `embedding`"),
        "{error}"
    );
    assert_eq!(error["error"]["code"], "wrong_model_mode");

    assert_eq!(setup.openai.request_count(), 0);
    assert_eq!(setup.broken.request_count(), 0);
    assert_eq!(setup.gateway.balance(&setup.key).await, START);

    // A user without credits: 402 before any upstream call.
    let broke = setup.gateway.user("bob", "starter").await;
    let response = support::client()
        .post(setup.gateway.url("/v1/embeddings"))
        .bearer_auth(&broke)
        .json(&json!({"model": "embed", "input": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 402);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["type"], "insufficient_credits");
    assert_eq!(setup.openai.request_count(), 0);
    setup.gateway.stop().await;
}

/// `/v1/models` shows each model's mode (and an embedding model's batch bound).
#[tokio::test]
async fn the_model_list_shows_the_mode() {
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    let (status, models) = setup.gateway.get("/v1/models", &setup.key).await;
    assert_eq!(status, 200, "{models}");
    let model = |id: &str| support::listed_model(&models, id);
    assert_eq!(model("embed")["mode"], "embedding");
    assert_eq!(model("embed")["max_inputs"], 64);
    assert_eq!(model("embed")["output_cost_per_1k"], "0");
    assert_eq!(model("chat")["mode"], "chat");
    setup.gateway.stop().await;
}

/// The hold covers the input's byte bound: a request whose bound the balance cannot cover is
/// refused even though the upstream would have counted fewer tokens.
#[tokio::test]
async fn the_hold_covers_the_inputs_byte_bound() {
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    // 35 µ per token: 0.001 credits (1,000 µ) covers 28 tokens.
    let poor = setup.gateway.user("cat", "starter").await;
    setup.gateway.add_credits("cat", json!("0.001")).await;
    let post = |input: Value| {
        support::client()
            .post(setup.gateway.url("/v1/embeddings"))
            .bearer_auth(&poor)
            .json(&json!({"model": "embed", "input": input}))
            .send()
    };
    assert_eq!(post(json!("x".repeat(29))).await.unwrap().status(), 402);
    assert_eq!(post(json!([vec![1; 29]])).await.unwrap().status(), 402);
    assert_eq!(setup.openai.request_count(), 0);
    setup.gateway.stop().await;
}
