//! `llmgate health`: ask a running server whether it is ready, for container health checks
//! in images that have no curl. Exit 0 on 200, 1 on anything else.

use std::process::ExitCode;
use std::time::Duration;

use llmgate_core::with_causes;

/// Where `llmgate health` asks by default: the server's default port on loopback.
pub const DEFAULT_URL: &str = "http://127.0.0.1:4000/health/ready";

/// GET `url` with `timeout` for the whole exchange; print the verdict on one line.
pub fn run(url: &str, timeout: Duration) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("unhealthy: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(ask(url, timeout)) {
        Ok((200, _)) => {
            println!("ready ({url})");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            println!("unhealthy: {url} answered {status}: {}", body.trim());
            ExitCode::FAILURE
        }
        Err(reason) => {
            println!("unhealthy: {url}: {reason}");
            ExitCode::FAILURE
        }
    }
}

async fn ask(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|error| format!("no HTTP client: {}", with_causes(&error)))?;
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| with_causes(&error.without_url()))?;
    let status = response.status().as_u16();
    // The readiness body is short; a failure to read it does not change the verdict.
    let body = response.text().await.unwrap_or_default();
    Ok((status, body))
}
