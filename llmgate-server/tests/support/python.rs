//! Running a script with an official Python SDK against the running server.

/// Whether python3 can import `module`; when it cannot, the test is skipped, except under
/// `CI=true`, where it fails (`.ci/services` installs the SDKs).
pub fn sdk(module: &str) -> bool {
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "python3 with the {module} SDK is required under CI=true (run .ci/services)"
        );
        eprintln!("skipped: python3 with the {module} SDK is not installed");
    }
    found
}

/// Run `script` with `env` (off the async runtime); its stdout, after asserting it succeeded.
pub async fn run(script: &'static str, env: Vec<(&'static str, String)>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
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
