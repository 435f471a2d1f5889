#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Codex CLI itself against the running server: `codex exec "say hi"` with a `config.toml`
//! model provider pointing at llmgate (`wire_api = "responses"`), on a model behind a fake
//! OpenAI-compatible upstream and on one behind a fake Anthropic upstream (both translated).
//! The answer must reach the terminal and the user's balance must show the charge.
//!
//! Needs `node` and `agent-tests/node_modules` (`cd agent-tests && npm ci`). Without them the
//! test says so and passes, except under `CI=true`, where it fails. Offline and bounded: HOME
//! and CODEX_HOME are a fresh directory, retries are off (Codex retries 5 times by default),
//! the stream idle timeout is short, and a hung CLI is killed after [`CLI_DEADLINE`].

mod support;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use llmgate_server::config::Env;
use llmgate_testkit::FakeUpstream;
use serde_json::json;
use support::agents::{agent_bin, answer_hi, missing_prerequisite};
use support::databases::unique;
use support::money::Gateway;
use support::yaml_config;

/// Long enough for a cold start of the CLI; a hung CLI is killed after it.
const CLI_DEADLINE: Duration = Duration::from_secs(120);

/// Codex's configuration: llmgate as the model provider, speaking the Responses API.
fn config_toml(base_url: &str, model: &str) -> String {
    format!(
        r#"model = "{model}"
model_provider = "llmgate"

[model_providers.llmgate]
name = "llmgate"
base_url = "{base_url}/v1"
env_key = "LLMGATE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 30000
"#
    )
}

#[tokio::test]
async fn codex_answers_through_the_gateway_and_the_user_is_charged() {
    if let Some(missing) = missing_prerequisite("codex") {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "Codex CLI is required under CI=true: {missing}"
        );
        eprintln!("skipped: {missing}");
        return;
    }
    let (compat, claude) = (FakeUpstream::start().await, FakeUpstream::start().await);
    answer_hi(&compat, &claude);
    let env = Env::from_pairs([("UP_URL", compat.url()), ("CLAUDE_URL", claude.url())]);
    let yaml = r#"
storage: { database_url: "sqlite::memory:" }
tiers:
  starter: { markup: 0, byok: false, monthly_credits: 0, default_power_level: balanced }
providers:
  - { name: compat, kind: openai, api_base: "${UP_URL}/v1", api_key: sk-up-0000, timeout_ms: 10000 }
  - { name: anthropic, kind: anthropic, api_base: "${CLAUDE_URL}", api_key: sk-ant-0000, timeout_ms: 10000 }
models:
  - { name: coder, provider: compat, upstream_model: up-model, cost_per_1k: 0.001 }
  - { name: claude-coder, provider: anthropic, upstream_model: claude-up, cost_per_1k: 0.001 }
routing: { num_retries: 0 }
"#;
    let gateway = Gateway::start(yaml_config(yaml, &env)).await;
    let key = gateway.user("ann", "starter").await;
    gateway.add_credits("ann", json!(100)).await;

    for (model, upstream) in [("coder", &compat), ("claude-coder", &claude)] {
        let before = gateway.balance(&key).await;
        let asked_before = upstream.request_count();
        let home = std::env::temp_dir().join(unique("llmgate-codex"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("config.toml"),
            config_toml(&gateway.url(""), model),
        )
        .unwrap();
        let mut command = Command::new(agent_bin("codex"));
        command
            .args(["exec", "--skip-git-repo-check", "say hi"])
            .current_dir(&home)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("CODEX_HOME", &home)
            .env("LLMGATE_API_KEY", &key);
        let output = tokio::task::spawn_blocking(move || run_with_deadline(command))
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{model}: {}\n{stdout}\n{stderr}",
            output.status
        );
        assert!(stdout.contains("hi there"), "{model}: {stdout}\n{stderr}");
        assert!(upstream.request_count() > asked_before, "{model}");
        // Codex's hosted web search was dropped, not sent upstream.
        let sent = upstream.last_request().unwrap().json();
        assert!(
            !sent.to_string().contains("\"web_search\""),
            "{model}: {sent}"
        );
        let charged = before - gateway.balance(&key).await;
        assert!(charged > 0, "{model}: nothing was charged");
    }
    gateway.stop().await;
}

/// Run the command to its end, killing it after [`CLI_DEADLINE`].
fn run_with_deadline(mut command: Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > CLI_DEADLINE {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "codex did not finish in {CLI_DEADLINE:?}:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}
