#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Token classes through the running server, on SQLite and on PostgreSQL: fake Anthropic and
//! OpenAI upstreams report cache reads, cache writes and reasoning tokens; the two worked
//! examples of docs/credits.md are charged exactly, whole and streamed; the client sees the
//! cached and reasoning counts and the cost of each class; the ledger and usage analytics keep
//! every class; and the prompt-cache levers reach the upstreams that take them.

mod support;

use llmgate_server::config::{Config, Env};
use llmgate_testkit::{FakeUpstream, Reply, anthropic, openai};
use serde_json::{Value, json};
use support::money::{Database, Db, Gateway};
use support::stream_chunks;

/// A test body run once on SQLite and once on PostgreSQL.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Db::Postgres).await;
            })*
        }
    };
}

on_both_databases!(
    anthropic_cache_example_is_charged_4252500_micros_whole_and_streamed,
    openai_cache_and_reasoning_example_is_charged_2450000_micros_whole_and_streamed,
    transactions_and_usage_analytics_show_every_class,
);

const ANTHROPIC_CHARGE: i64 = 4_252_500;
const OPENAI_CHARGE: i64 = 2_450_000;

struct Setup {
    _db: Database,
    claude: FakeUpstream,
    gpt: FakeUpstream,
    gateway: Gateway,
    /// A starter-tier user with 100 credits.
    key: String,
}

/// Tier starter (+40 %) on power level balanced (× 0.25), 1,000 credits per dollar; `claude`
/// and `gpt` priced as in the worked examples.
async fn setup(db: Db) -> Option<Setup> {
    let database = Database::create(db).await?;
    let (claude, gpt) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let yaml = r#"
storage:
  database_url: ${DB_URL}
billing:
  credits_per_usd: 1000
tiers:
  starter: { markup: 0.4, byok: false, monthly_credits: 0, default_power_level: balanced }
providers:
  - { name: anthropic, kind: anthropic, api_base: "${CLAUDE_URL}", api_key: sk-ant-fake-0000 }
  - { name: openai, kind: openai, api_base: "${GPT_URL}/v1", api_key: sk-fake-0000 }
models:
  - name: claude
    provider: anthropic
    upstream_model: claude-up
    input_cost_per_1k: 0.003
    cache_read_cost_per_1k: 0.0003
    cache_write_cost_per_1k: 0.00375
    output_cost_per_1k: 0.015
  - name: gpt
    provider: openai
    upstream_model: gpt-up
    input_cost_per_1k: 0.002
    cache_read_cost_per_1k: 0.0005
    output_cost_per_1k: 0.008
"#;
    let env = Env::from_pairs([
        ("DB_URL", database.url.clone()),
        ("CLAUDE_URL", claude.url()),
        ("GPT_URL", gpt.url()),
    ]);
    let config = Config::from_yaml(yaml, &env).unwrap();
    config.check().unwrap();
    let gateway = Gateway::start(config).await;
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(100)).await;
    Some(Setup {
        _db: database,
        claude,
        gpt,
        gateway,
        key,
    })
}

fn ask(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "max_tokens": 1000,
           "messages": [{"role": "user", "content": "go on"}]})
}

/// Anthropic's report of the first example: input 100, cache read 2000, cache write 1000,
/// output 500.
fn claude_answers(upstream: &FakeUpstream) {
    let mut whole = anthropic::message("claude-up", "Done.", 0, 0);
    whole["usage"] = anthropic::cache_usage(100, 2000, 1000, 500);
    upstream.push(Reply::json(200, whole));
    let mut events = anthropic::text_events("claude-up", &["Do", "ne."], 0, 500);
    events[0]["message"]["usage"] = anthropic::cache_usage(100, 2000, 1000, 1);
    upstream.push(anthropic::sse(&events));
}

/// OpenAI's report of the second example: prompt 3000 (2000 cached), completion 500 (300
/// reasoning).
fn gpt_answers(upstream: &FakeUpstream) {
    let usage = openai::usage_with_details(3000, 2000, 500, 300);
    let mut whole = openai::completion("gpt-up", "Done.", 0, 0);
    whole["usage"] = usage.clone();
    upstream.push(Reply::json(200, whole));
    let mut chunks = openai::text_chunks("gpt-up", &["Do", "ne."], Some((0, 0)));
    if let Some(last) = chunks.last_mut() {
        last["usage"] = usage;
    }
    upstream.push(Reply::sse(&chunks));
}

/// The whole answer's body, cost header and cost breakdown header.
async fn whole(setup: &Setup, model: &str) -> (Value, i64, Value) {
    let response = setup.gateway.chat(&setup.key, ask(model, false)).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let cost = headers["x-llmgate-cost-micros"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let breakdown = serde_json::from_slice(headers["x-llmgate-cost-breakdown"].as_bytes()).unwrap();
    (response.json().await.unwrap(), cost, breakdown)
}

/// The streamed answer's last chunk (usage and cost).
async fn streamed(setup: &Setup, model: &str) -> Value {
    let response = setup.gateway.chat(&setup.key, ask(model, true)).await;
    assert_eq!(response.status(), 200);
    let chunks = stream_chunks(&response.text().await.unwrap());
    chunks
        .into_iter()
        .rev()
        .find(|c| c.get("usage").is_some_and(|u| !u.is_null()))
        .expect("a usage chunk")
}

async fn anthropic_cache_example_is_charged_4252500_micros_whole_and_streamed(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    claude_answers(&setup.claude);

    let (body, cost, breakdown) = whole(&setup, "claude").await;
    assert_eq!(cost, ANTHROPIC_CHARGE);
    // The prompt counts every class; the details say which were cached.
    assert_eq!(body["usage"]["prompt_tokens"], 3100);
    assert_eq!(body["usage"]["total_tokens"], 3600);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cache_creation_tokens"],
        1000
    );
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );
    assert_eq!(
        breakdown,
        json!({
            "uncached_prompt": {"tokens": 100, "micros": "105000"},
            "cache_read": {"tokens": 2000, "micros": "210000"},
            "cache_write": {"tokens": 1000, "micros": "1312500"},
            "output": {"tokens": 500, "micros": "2625000"},
            "reasoning_tokens": 0,
            "cost_micros": ANTHROPIC_CHARGE
        })
    );

    let last = streamed(&setup, "claude").await;
    assert_eq!(last["llmgate"]["cost_micros"], ANTHROPIC_CHARGE);
    assert_eq!(last["llmgate"]["cost_breakdown"], breakdown);
    assert_eq!(last["usage"]["prompt_tokens"], 3100);
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );

    assert_eq!(
        setup.gateway.balance(&setup.key).await,
        100_000_000 - 2 * ANTHROPIC_CHARGE
    );
    setup.gateway.stop().await;
}

async fn openai_cache_and_reasoning_example_is_charged_2450000_micros_whole_and_streamed(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    gpt_answers(&setup.gpt);

    let (body, cost, breakdown) = whole(&setup, "gpt").await;
    assert_eq!(cost, OPENAI_CHARGE);
    assert_eq!(body["usage"]["prompt_tokens"], 3000);
    assert_eq!(
        body["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );
    assert_eq!(
        body["usage"]["completion_tokens_details"]["reasoning_tokens"],
        300
    );
    assert_eq!(
        breakdown["uncached_prompt"],
        json!({"tokens": 1000, "micros": "700000"})
    );
    assert_eq!(
        breakdown["cache_read"],
        json!({"tokens": 2000, "micros": "350000"})
    );
    assert_eq!(
        breakdown["output"],
        json!({"tokens": 500, "micros": "1400000"})
    );
    assert_eq!(breakdown["reasoning_tokens"], 300);

    let last = streamed(&setup, "gpt").await;
    assert_eq!(last["llmgate"]["cost_micros"], OPENAI_CHARGE);
    assert_eq!(
        last["usage"]["completion_tokens_details"]["reasoning_tokens"],
        300
    );
    assert_eq!(
        last["usage"]["prompt_tokens_details"]["cached_tokens"],
        2000
    );

    assert_eq!(
        setup.gateway.balance(&setup.key).await,
        100_000_000 - 2 * OPENAI_CHARGE
    );
    setup.gateway.stop().await;
}

async fn transactions_and_usage_analytics_show_every_class(db: Db) {
    let Some(setup) = setup(db).await else {
        return;
    };
    claude_answers(&setup.claude);
    gpt_answers(&setup.gpt);
    whole(&setup, "claude").await;
    streamed(&setup, "claude").await;
    whole(&setup, "gpt").await;
    streamed(&setup, "gpt").await;

    let (status, page) = setup
        .gateway
        .get("/api/v1/llm/credits/transactions?limit=20", &setup.key)
        .await;
    assert_eq!(status, 200, "{page}");
    let charges: Vec<(Value, Value, Value, Value, Value, Value)> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "charge")
        .map(|t| {
            (
                t["model"].clone(),
                t["amount_micros"].clone(),
                t["prompt_tokens"].clone(),
                t["cache_read_tokens"].clone(),
                t["cache_write_tokens"].clone(),
                t["reasoning_tokens"].clone(),
            )
        })
        .collect();
    let gpt = (
        json!("gpt"),
        json!(-OPENAI_CHARGE),
        json!(3000),
        json!(2000),
        json!(0),
        json!(300),
    );
    let claude = (
        json!("claude"),
        json!(-ANTHROPIC_CHARGE),
        json!(3100),
        json!(2000),
        json!(1000),
        json!(0),
    );
    assert_eq!(charges, [gpt.clone(), gpt, claude.clone(), claude]);

    let (status, usage) = setup
        .gateway
        .get("/api/v1/llm/usage?group_by=model", &setup.key)
        .await;
    assert_eq!(status, 200, "{usage}");
    let rows = usage["data"].as_array().unwrap();
    let row = |model: &str| rows.iter().find(|r| r["key"] == model).unwrap().clone();
    let claude = row("claude");
    assert_eq!(
        (
            &claude["requests"],
            &claude["prompt_tokens"],
            &claude["cache_read_tokens"],
            &claude["cache_write_tokens"],
            &claude["completion_tokens"],
            &claude["cost_micros"]
        ),
        (
            &json!(2),
            &json!(6200),
            &json!(4000),
            &json!(2000),
            &json!(1000),
            &json!(2 * ANTHROPIC_CHARGE)
        )
    );
    let gpt = row("gpt");
    assert_eq!(
        (
            &gpt["cache_read_tokens"],
            &gpt["reasoning_tokens"],
            &gpt["cost_micros"]
        ),
        (&json!(4000), &json!(600), &json!(2 * OPENAI_CHARGE))
    );
    let (_, by_day) = setup
        .gateway
        .get("/api/v1/llm/usage?group_by=day", &setup.key)
        .await;
    assert_eq!(by_day["data"][0]["cache_read_tokens"], 8000);
    assert_eq!(by_day["data"][0]["reasoning_tokens"], 600);
    setup.gateway.stop().await;
}

/// Cache breakpoints on chat-completions content parts, a message and a tool arrive at an
/// Anthropic upstream as its `cache_control` blocks; `prompt_cache_key` reaches OpenAI.
#[tokio::test]
async fn prompt_cache_levers_reach_the_upstreams_that_take_them() {
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    claude_answers(&setup.claude);
    gpt_answers(&setup.gpt);
    let ephemeral = json!({"type": "ephemeral"});
    let body = json!({
        "model": "claude",
        "max_tokens": 100,
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "You are a careful agent.", "cache_control": ephemeral}
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "A long document.", "cache_control": ephemeral},
                {"type": "text", "text": "Summarise it."}
            ]}
        ],
        "tools": [{"type": "function", "cache_control": ephemeral,
                   "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    });
    let response = setup.gateway.chat(&setup.key, body).await;
    assert_eq!(response.status(), 200);
    let sent = setup.claude.last_request().unwrap().json();
    assert_eq!(
        sent["system"],
        json!([{"type": "text", "text": "You are a careful agent.", "cache_control": ephemeral}])
    );
    assert_eq!(
        sent["messages"][0]["content"],
        json!([
            {"type": "text", "text": "A long document.", "cache_control": ephemeral},
            {"type": "text", "text": "Summarise it."}
        ])
    );
    assert_eq!(sent["tools"][0]["cache_control"], ephemeral);

    let mut to_gpt = ask("gpt", false);
    to_gpt["prompt_cache_key"] = json!("agent-42");
    let response = setup.gateway.chat(&setup.key, to_gpt).await;
    assert_eq!(response.status(), 200);
    let sent = setup.gpt.last_request().unwrap().json();
    assert_eq!(sent["prompt_cache_key"], "agent-42");
    setup.gateway.stop().await;
}

/// The official `openai` Python SDK reads the cached and reasoning counts, whole and streamed,
/// from the running server's answers.
#[tokio::test]
async fn the_openai_python_sdk_reads_cached_and_reasoning_tokens() {
    if !support::python::sdk("openai") {
        return;
    }
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    gpt_answers(&setup.gpt);
    let script = r#"
import os, openai
client = openai.OpenAI(base_url=os.environ["BASE_URL"] + "/v1", api_key=os.environ["KEY"])
messages = [{"role": "user", "content": "go on"}]
whole = client.chat.completions.create(model="gpt", messages=messages, max_tokens=1000)
u = whole.usage
print(u.prompt_tokens, u.prompt_tokens_details.cached_tokens,
      u.completion_tokens, u.completion_tokens_details.reasoning_tokens)
stream = client.chat.completions.create(model="gpt", messages=messages, max_tokens=1000,
                                        stream=True, stream_options={"include_usage": True})
last = [chunk for chunk in stream if chunk.usage is not None][-1]
u = last.usage
print(u.prompt_tokens, u.prompt_tokens_details.cached_tokens,
      u.completion_tokens, u.completion_tokens_details.reasoning_tokens,
      last.model_extra["llmgate"]["cost_micros"])
"#;
    let env = vec![
        ("BASE_URL", setup.gateway.url("")),
        ("KEY", setup.key.clone()),
    ];
    let stdout = support::python::run(script, env).await;
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "3000 2000 500 300",
            &format!("3000 2000 500 300 {OPENAI_CHARGE}")
        ]
    );
    setup.gateway.stop().await;
}

/// `/v1/models` lists the four prices of each model: a cache price the config leaves out is the
/// input price.
#[tokio::test]
async fn models_list_cache_prices_defaulting_to_the_input_price() {
    let Some(setup) = setup(Db::Sqlite).await else {
        return;
    };
    let (status, models) = setup.gateway.get("/v1/models", &setup.key).await;
    assert_eq!(status, 200, "{models}");
    let model = |id: &str| {
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    let prices = |m: &Value| {
        [
            "input_cost_per_1k",
            "cache_read_cost_per_1k",
            "cache_write_cost_per_1k",
            "output_cost_per_1k",
        ]
        .map(|field| m[field].clone())
    };
    assert_eq!(
        prices(&model("claude")),
        ["0.003", "0.0003", "0.00375", "0.015"].map(Value::from)
    );
    assert_eq!(
        prices(&model("gpt")),
        ["0.002", "0.0005", "0.002", "0.008"].map(Value::from)
    );
    setup.gateway.stop().await;
}

/// A cache price needs the model's input and output prices, and must be a decimal.
#[test]
fn cache_prices_are_validated_with_their_paths() {
    let yaml = r#"
providers:
  - { name: p, kind: openai, api_base: "https://p.example/v1" }
models:
  - { name: a, provider: p, cache_read_cost_per_1k: 0.1 }
  - { name: b, provider: p, input_cost_per_1k: 1, output_cost_per_1k: 1, cache_write_cost_per_1k: lots }
  - { name: c, provider: p, free: true, cache_read_cost_per_1k: 0.5 }
"#;
    let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    let has = |path: &str| problems.iter().any(|p| p.starts_with(path));
    assert!(has("models[0].cache_read_cost_per_1k"), "{problems:?}");
    assert!(has("models[1].cache_write_cost_per_1k"), "{problems:?}");
    assert!(has("models[2]"), "{problems:?}");
    assert_eq!(problems.len(), 4, "{problems:?}");
}
