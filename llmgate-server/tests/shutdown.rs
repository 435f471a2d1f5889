//! SIGTERM to the real `llmgate` binary while streams are open: a short stream finishes within
//! the grace period, the long ones and a slow JSON request are cut after it, the process exits
//! 0, and the SQLite ledger it leaves has no open hold and one settle or release per hold.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::json;
use support::{MASTER_KEY, client, create_user};

/// A stream of `events` text chunks, one SSE event per frame, `gap` apart.
fn slow_stream(events: usize, gap: Duration) -> Reply {
    let pieces: Vec<String> = (0..events).map(|i| format!("w{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    Reply::sse(&openai::text_chunks(
        "up-model",
        &pieces,
        Some((30, events as u64)),
    ))
    .chunked(Chunking::AfterEach("\n\n"))
    .frame_delay(gap)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The running binary; killed (not gracefully) if the test fails before it exits.
struct Gateway {
    child: Child,
    log: PathBuf,
}

impl Gateway {
    fn start(config: &Path, log: PathBuf) -> Gateway {
        let stderr = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_llmgate"));
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("LLMGATE_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(stderr);
        for variable in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OLLAMA_HOST",
            "VLLM_HOST",
        ] {
            command.env_remove(variable);
        }
        Gateway {
            child: command.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "llmgate did not exit within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(url: &str, gateway: &Gateway) {
    for _ in 0..200 {
        if let Ok(response) = client().get(format!("{url}/health/ready")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("llmgate never became ready:\n{}", gateway.log());
}

fn send_chat(url: &str, key: &str, model: &str, stream: bool) -> reqwest::RequestBuilder {
    client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": model,
            "stream": stream,
            "max_tokens": 200,
            "messages": [{"role": "user", "content": "tell me a long story"}]
        }))
}

/// Read a stream to its end; whether it ended with `data: [DONE]`.
async fn finish(mut response: reqwest::Response) -> bool {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
    }
    String::from_utf8_lossy(&body).contains("data: [DONE]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_cuts_and_leaves_no_hold_open() {
    let dir = std::env::temp_dir().join(format!("llmgate-shutdown-{:08x}", rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = dir.join("ledger.db");

    let streams = FakeUpstream::start().await;
    // Long streams would take 12 s; the short one (pushed last) takes under a second.
    streams.set_default(slow_stream(40, Duration::from_millis(300)));
    let slow_json = FakeUpstream::start().await;
    slow_json.set_default(
        Reply::json(200, openai::completion("up-model", "late", 30, 10))
            .first_byte_delay(Duration::from_secs(20)),
    );

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let config = dir.join("llmgate.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
server:
  listen: 127.0.0.1:{port}
  shutdown_grace_ms: 2000
storage:
  database_url: "sqlite://{database}"
tiers:
  pro: {{ markup: 0.0, byok: false, monthly_credits: 1000, default_power_level: balanced }}
providers:
  - {{ name: streams, kind: openai, api_base: "{streams}/v1", api_key: sk-test-streams-0000 }}
  - {{ name: slow, kind: openai, api_base: "{slow}/v1", api_key: sk-test-slow-0000, timeout_ms: 60000 }}
models:
  - {{ name: story, provider: streams, upstream_model: up-model, cost_per_1k: 0.002 }}
  - {{ name: slow-json, provider: slow, upstream_model: up-model, cost_per_1k: 0.002 }}
routing:
  num_retries: 0
"#,
            database = database.display(),
            streams = streams.url(),
            slow = slow_json.url(),
        ),
    )
    .unwrap();

    let mut gateway = Gateway::start(&config, dir.join("llmgate.log"));
    wait_ready(&url, &gateway).await;
    let user = format!("shutdown-{:08x}", rand::random::<u32>());
    let key = create_user(&url, &user, "pro").await;

    // Every request is in flight, each stream past its first chunk, before the signal.
    let mut long = Vec::new();
    for _ in 0..3 {
        let mut response = send_chat(&url, &key, "story", true).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", gateway.log());
        response.chunk().await.unwrap().unwrap();
        long.push(response);
    }
    let json_request = tokio::spawn(send_chat(&url, &key, "slow-json", false).send());
    while slow_json.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    streams.push(slow_stream(4, Duration::from_millis(100)));
    let mut short = send_chat(&url, &key, "story", true).send().await.unwrap();
    assert_eq!(short.status(), 200);
    short.chunk().await.unwrap().unwrap();

    gateway.terminate();
    let short_done = finish(short).await;
    let long_done = futures::future::join_all(long.into_iter().map(finish)).await;
    let json_outcome = json_request.await.unwrap();
    let status = gateway.wait_exit(Duration::from_secs(30)).await;
    let log = gateway.log();

    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(
        short_done,
        "the short stream finished within the grace period:\n{log}"
    );
    assert_eq!(long_done, [false; 3], "the long streams were cut:\n{log}");
    assert!(
        json_outcome.is_err() || json_outcome.unwrap().status() != 200,
        "the slow JSON request was cut"
    );

    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    let open: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM credit_holds")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "no hold is left open");
    let entries: Vec<(String, i64)> = sqlx::query_as(
        "SELECT kind, amount_micros FROM credit_ledger WHERE user_id = $1 ORDER BY id",
    )
    .bind(&user)
    .fetch_all(&pool)
    .await
    .unwrap();
    let count = |kind: &str| entries.iter().filter(|(k, _)| k == kind).count();
    let sum = |kind: &str| -> i64 {
        entries
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, amount)| amount)
            .sum()
    };
    // Five paid requests, served from balance leases: every micro-credit the leases took went
    // back (given back, or released to be charged), and the streams that produced output were
    // charged for it (the JSON request was not).
    assert!(count("hold") >= 1, "{entries:?}");
    assert_eq!(sum("hold") + sum("release"), 0, "{entries:?}");
    assert_eq!(count("charge"), 4, "{entries:?}");
    // The ledger reads like a statement: its entries add up to the balance.
    let entries_sum: i64 = entries.iter().map(|(_, amount)| amount).sum();
    assert!(
        entries
            .iter()
            .filter(|(k, _)| k == "charge")
            .all(|(_, a)| *a < 0)
    );
    // balance = grants − charges.
    let balance: i64 =
        sqlx::query_scalar("SELECT balance_micros FROM credit_balances WHERE user_id = $1")
            .bind(&user)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(balance, sum("grant") + sum("charge"), "{entries:?}");
    assert_eq!(balance, entries_sum, "{entries:?}");
    pool.close().await;
    assert!(log.contains("SIGTERM received"), "{log}");
    // The last lines were held in the log's buffer: the exit wrote them, the requests' too.
    assert!(log.contains("ledger settled"), "{log}");
    assert!(log.contains("path=/v1/chat/completions"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
