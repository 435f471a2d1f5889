#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `llmgate` binary: `check`, and `serve` with the built-in default and a generated key.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_llmgate");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llmgate-cli-{name}-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn llmgate(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    // No provider keys, no config variable: exactly the quickstart.
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info");
    command
}

/// `llmgate check --config file`, run in `dir`.
fn check(dir: &Path, file: &Path) -> std::process::Output {
    llmgate(dir)
        .args(["check", "--config"])
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn check_accepts_a_good_config() {
    let dir = temp_dir("check-ok");
    let file = dir.join("good.yaml");
    std::fs::write(
        &file,
        "providers:\n  - { name: demo, kind: demo }\nmodels:\n  - { name: echo, provider: demo, cost_per_1k: 0 }\n",
    )
    .unwrap();
    let output = check(&dir, &file);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "config OK");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_lists_every_problem_with_its_path() {
    let dir = temp_dir("check-bad");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        r#"
server: { listen: "nowhere" }
providers:
  - { name: a, kind: openai, api_base: "https://a.example/v1" }
  - { name: a, kind: anthropic }
models:
  - { name: m, provider: ghost, input_cost_per_1k: "1,5", output_cost_per_1k: 0.1 }
  - { name: n, provider: a, cost_per_1k: 0.1, fallbacks: [missing] }
tiers:
  gold: { markup: 0.2, default_power_level: ludicrous }
"#,
    )
    .unwrap();
    let output = check(&dir, &file);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for path in [
        "server.listen:",
        "providers[1].name: duplicate provider \"a\"",
        "models[0].provider: unknown provider \"ghost\"",
        "models[0].input_cost_per_1k:",
        "models[1].fallbacks[0]: unknown model \"missing\"",
        "tiers.gold.default_power_level:",
    ] {
        assert!(stdout.contains(path), "missing {path:?} in:\n{stdout}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_lists_structural_and_other_problems_together() {
    let dir = temp_dir("check-all");
    let file = dir.join("many.yaml");
    std::fs::write(
        &file,
        r#"
server: { listen: "nowhere", master_kee: x }
providers:
  - { name: a, kind: openai, api_base: "https://a.example/v1", timeout_ms: soon }
  - { name: a, kind: anthropic, colour: red }
models:
  - { name: m, provider: ghost, cost_per_1k: 0 }
  - { provider: a, cost_per_1k: 0 }
  - { name: n, provider: a, cost_per_1k: 0, fallbacks: [missing] }
tiers:
  gold: { markup: 0.2, default_power_level: ludicrous, rpm: many }
"#,
    )
    .unwrap();
    let output = check(&dir, &file);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        // Structural: unknown keys, wrong types, a missing field.
        "server.master_kee: unknown field `master_kee`",
        "providers[0].timeout_ms: invalid",
        "providers[1].colour: unknown field `colour`",
        "models[1]: missing field `name`",
        "tiers.gold.rpm: invalid",
        // And what validation finds in the rest, at the file's own paths.
        "server.listen:",
        "providers[1].name: duplicate provider \"a\"",
        "models[0].provider: unknown provider \"ghost\"",
        "models[2].fallbacks[0]: unknown model \"missing\"",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn check_names_the_path_of_an_unknown_key_and_a_missing_variable() {
    let dir = temp_dir("check-keys");
    let file = dir.join("typo.yaml");
    std::fs::write(
        &file,
        "server:\n  listen: 127.0.0.1:4000\n  master_kee: x\n",
    )
    .unwrap();
    let output = check(&dir, &file);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("server.master_kee: unknown field `master_kee`"),
        "{stdout}"
    );

    std::fs::write(
        &file,
        "byok:\n  encryption_key: os.environ/LLMGATE_BYOK_KEY\n",
    )
    .unwrap();
    let output = check(&dir, &file);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("byok.encryption_key: environment variable `LLMGATE_BYOK_KEY` is not set"),
        "{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A running `llmgate serve` and the JSON log lines it writes.
struct Serving {
    child: Child,
    logs: mpsc::Receiver<serde_json::Value>,
    addr: String,
}

fn serve(dir: &Path) -> Serving {
    serve_with(dir, &[])
}

/// [`serve`] with extra environment variables.
fn serve_with(dir: &Path, env: &[(&str, &str)]) -> Serving {
    let mut command = llmgate(dir);
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command
        .args(["--log-json", "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (send, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && send.send(value).is_err()
            {
                break;
            }
        }
    });
    let addr = loop {
        // A generous guard so a broken start fails the test instead of hanging it.
        let line = logs
            .recv_timeout(Duration::from_secs(60))
            .expect("the server never said it is listening");
        // `--log-json` writes flat objects: the event's fields at the top.
        if line["message"] == "llmgate listening" {
            break line["addr"].as_str().unwrap().to_owned();
        }
    };
    Serving { child, logs, addr }
}

impl Serving {
    /// SIGTERM, then the exit status and everything printed on stdout.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let status = self.child.wait().unwrap();
        drop(self.logs);
        (status, stdout)
    }
}

fn chat_with(addr: &str, key: &str) -> (u16, serde_json::Value) {
    call(
        addr,
        "POST",
        "/v1/chat/completions",
        key,
        serde_json::json!({"model": "demo/echo", "messages": [{"role": "user", "content": "hi"}]}),
    )
}

#[test]
fn serve_without_config_generates_the_master_key_once_and_answers_demo_echo() {
    let dir = temp_dir("serve");

    let first = serve(&dir);
    let addr = first.addr.clone();
    let (status, _) = chat_with(&addr, "lg-master-not-the-key-000000");
    assert_eq!(status, 401);
    // Stopping first gives us stdout whole; the key was printed before the server listened.
    let key_file = dir.join("llmgate.master_key");
    let key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(key.starts_with("lg-master-"), "{key}");
    let (status, body) = chat_with(&addr, &key);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "Echo: hi");
    let (exit, stdout) = first.stop();
    assert!(exit.success(), "{exit:?}");
    assert!(
        stdout.contains(&key),
        "the first start must show the key:\n{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let second = serve(&dir);
    let (status, _) = chat_with(&second.addr, &key);
    assert_eq!(status, 200);
    let (exit, stdout) = second.stop();
    assert!(exit.success(), "{exit:?}");
    assert!(
        !stdout.contains("lg-master-"),
        "a later start must not show the key:\n{stdout}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `method path` with `key` and a JSON body against a running `llmgate serve`.
fn call(
    addr: &str,
    method: &str,
    path: &str,
    key: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let response = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("http://{addr}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    })
}

#[test]
fn serve_without_config_has_byok_on_with_a_generated_private_key_never_shown() {
    let dir = temp_dir("byok");
    // A platform key makes the `openai` preset appear; nothing here calls it.
    let first = serve_with(&dir, &[("OPENAI_API_KEY", "sk-platform-not-used-0000")]);
    let addr = first.addr.clone();
    let master = std::fs::read_to_string(dir.join("llmgate.master_key"))
        .unwrap()
        .trim()
        .to_owned();
    let (status, created) = call(
        &addr,
        "POST",
        "/api/v1/admin/users",
        &master,
        serde_json::json!({"user_id": "ann", "tier": "starter"}),
    );
    assert_eq!(status, 201, "{created}");
    let user_key = created["api_key"].as_str().unwrap().to_owned();
    let (status, stored) = call(
        &addr,
        "PUT",
        "/api/v1/llm/providers/openai/key",
        &user_key,
        serde_json::json!({"api_key": "sk-ann-own-key-0123456789"}),
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["byok_configured"], true, "{stored}");
    let (exit, stdout) = first.stop();
    assert!(exit.success(), "{exit:?}");

    let key_file = dir.join("llmgate.byok_key");
    let byok_key = std::fs::read_to_string(&key_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(byok_key.len(), 44, "base64 of 32 bytes");
    assert!(
        stdout.contains("saved to ./llmgate.byok_key"),
        "the first start names the file:\n{stdout}"
    );
    assert!(
        !stdout.contains(&byok_key),
        "the key was printed:\n{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The next start reads the same key: the stored key still opens.
    let second = serve_with(&dir, &[("OPENAI_API_KEY", "sk-platform-not-used-0000")]);
    let (status, listed) = call(
        &second.addr,
        "GET",
        "/api/v1/llm/providers",
        &user_key,
        serde_json::Value::Null,
    );
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["byok_allowed"], true, "{listed}");
    let (_, stdout) = second.stop();
    assert!(!stdout.contains("BYOK sealing key"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), byok_key);
    std::fs::remove_dir_all(dir).unwrap();
}
