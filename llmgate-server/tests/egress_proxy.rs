//! The real `llmgate` binary started with `HTTP_PROXY` in its environment sends its upstream
//! calls through that proxy: here the fake upstream plays the proxy, and the provider's
//! `api_base` names a host that does not resolve, so only the proxy can answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use llmgate_testkit::db::unique;
use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::json;
use support::{MASTER_KEY, client};

/// Killed when the test ends, however it ends.
struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn upstream_calls_go_through_the_proxy_the_environment_names() {
    let proxy = FakeUpstream::start().await;
    proxy.set_default(Reply::json(
        200,
        openai::completion("up-model", "via the proxy", 5, 3),
    ));
    let dir = std::env::temp_dir().join(unique("llmgate-egress-proxy-"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: \"127.0.0.1:{port}\"\n\
             storage:\n  database_url: \"sqlite://{db}\"\n\
             providers:\n  - name: far\n    kind: openai\n    api_base: \"http://upstream.invalid/v1\"\n    api_key: sk-far\n\
             models:\n  - name: far-model\n    provider: far\n    upstream_model: up-model\n    free: true\n",
            db = dir.join("db.sqlite").display()
        ),
    )
    .unwrap();
    let _gateway = Gateway(
        Command::new(env!("CARGO_BIN_EXE_llmgate"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("LLMGATE_MASTER_KEY", MASTER_KEY)
            .env("HTTP_PROXY", proxy.url())
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = client();
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/health")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway did not start");

    let answer = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(MASTER_KEY)
        .json(&json!({"model": "far-model", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "via the proxy");
    let seen = proxy.last_request().expect("the proxy saw the call");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.header("host").as_deref(), Some("upstream.invalid"));
    assert_eq!(
        seen.header("authorization").as_deref(),
        Some("Bearer sk-far")
    );
    let _ = std::fs::remove_dir_all(&dir);
}
