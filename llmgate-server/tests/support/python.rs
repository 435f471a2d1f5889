//! Running the official Python SDKs against the server under test.

use std::process::Command;

/// Whether python3 can import `module`; under `CI=true` it must (the test fails instead of
/// being skipped: `.ci/services` installs the packages).
pub fn has(module: &str) -> bool {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 with `{module}` is required under CI=true (run .ci/services)"
        );
        eprintln!("skipped: python3 with `{module}` is not installed");
    }
    found
}

/// Run `script` with `BASE_URL` and `KEY` in its environment; its stdout lines. A failing
/// script fails the test with its output.
pub async fn run(script: &'static str, base_url: String, key: String) -> Vec<String> {
    let stdout = run_with(script, vec![("BASE_URL", base_url), ("KEY", key)]).await;
    stdout.lines().map(str::to_owned).collect()
}

/// Run `script` with `env` in its environment (off the async runtime); its stdout. A failing
/// script fails the test with its output.
pub async fn run_with(script: &'static str, env: Vec<(&'static str, String)>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", script])
            .envs(env)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}
