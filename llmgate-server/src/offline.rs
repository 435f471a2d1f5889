//! What every offline command (`llmgate rotate-keys`, `llmgate ledger verify`) does before and
//! after its own work: start a small runtime, find and load the config, and turn a failure into
//! one `error:` line and exit code 1.

use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{Config, ConfigSource, Env};

/// Load the config (`--config`, else `$LLMGATE_CONFIG`, else `./llmgate.yaml`), then run
/// `command` on it to completion. An `Err` is printed as `error: MESSAGE` and exits 1.
pub(crate) fn run<F>(
    config: Option<&Path>,
    env: &Env,
    command: impl FnOnce(Config) -> F,
) -> ExitCode
where
    F: Future<Output = Result<ExitCode, String>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start the async runtime: {error}")),
    };
    let source = ConfigSource::locate(config, env);
    let config = match Config::load(&source, env) {
        Ok(config) => config,
        Err(error) => return fail(&error.to_string()),
    };
    match runtime.block_on(command(config)) {
        Ok(code) => code,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
