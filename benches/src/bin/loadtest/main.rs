//! The load harness: a fake OpenAI upstream, the real `llmgate` release binary in front of it,
//! and a bounded closed-loop load generator that measures the same requests sent straight to
//! the upstream and through the gateway, side by side, on each storage backend.
//!
//! ```text
//! cargo run --release -p llmgate-benches --bin loadtest -- --quick
//! ```
//!
//! Also measured: the gateway's start-up time (spawn to the first `/health` answer), its
//! resident memory idle, over many requests and with 1,000 slow streams open at once.
//! Everything is bounded in time and request count; see `docs/benchmarks.md`.

mod options;
mod scenarios;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use llmgate_benches::load::gateway::{Launch, Storage, default_binary, exists};
use llmgate_benches::load::postgres::BenchDatabase;
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

use options::{Backend, Options, Plan};
use scenarios::run_backend;
use summary::{load_average, print_header, print_summary};

fn main() -> ExitCode {
    let options = Options::parse();
    let binary = options.binary.clone().unwrap_or_else(default_binary);
    if options.binary.is_none()
        && !options.no_build
        && let Err(error) = build_gateway()
    {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    if !exists(&binary) {
        eprintln!(
            "error: no gateway binary at {}; build it with `cargo build --release -p llmgate-server`",
            binary.display()
        );
        return ExitCode::FAILURE;
    }
    let settings = UpstreamSettings {
        stream_chunks: options.stream_chunks,
        ..UpstreamSettings::default()
    };
    let upstream = match FakeUpstream::start(&settings) {
        Ok(upstream) => upstream,
        Err(error) => {
            eprintln!("error: starting the fake upstream: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The collector shares the machine as a real one beside the gateway would.
    let collector = match options.traces.then(|| FakeUpstream::start(&settings)) {
        None => None,
        Some(Ok(collector)) => Some(collector),
        Some(Err(error)) => {
            eprintln!("error: starting the sink collector: {error}");
            return ExitCode::FAILURE;
        }
    };
    let otlp_endpoint = collector.as_ref().map(|c| format!("http://{}", c.addr()));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let floor = if options.no_floor {
        None
    } else {
        match BareProxy::start(upstream.addr(), 2) {
            Ok(proxy) => Some(proxy),
            Err(error) => {
                eprintln!("error: starting the bare proxy: {error}");
                return ExitCode::FAILURE;
            }
        }
    };
    let run = run(
        &options,
        binary,
        &upstream,
        floor.as_ref(),
        &settings,
        otlp_endpoint,
    );
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo build --release -p llmgate-server` into the shared target directory.
fn build_gateway() -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.args([
        "build",
        "--release",
        "-p",
        "llmgate-server",
        "--bin",
        "llmgate",
    ]);
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        command.env("CARGO_TARGET_DIR", "/var/tmp/llmgate-target");
    }
    eprintln!("building the gateway: cargo build --release -p llmgate-server");
    let status = command
        .status()
        .map_err(|e| format!("running cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("cargo build failed ({status})"))
    }
}

async fn run(
    options: &Options,
    binary: PathBuf,
    upstream: &FakeUpstream,
    floor: Option<&BareProxy>,
    settings: &UpstreamSettings,
    otlp_endpoint: Option<String>,
) -> Result<(), String> {
    let plan = Plan::from(options);
    let workdir = options.workdir.clone().unwrap_or_else(|| {
        PathBuf::from(format!("/var/tmp/llmgate-loadtest-{}", std::process::id()))
    });
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    print_header(options, &plan, &binary);
    let began = Instant::now();
    let mut results = Vec::new();
    for &backend in &options.backends {
        let mut database = None;
        let storage = match backend {
            Backend::Memory => Storage::Memory,
            Backend::Sqlite => {
                let path = workdir.join("bench.db");
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Storage::Sqlite(path)
            }
            Backend::Postgres => {
                let created = BenchDatabase::create().await?;
                let storage = Storage::Postgres {
                    database_url: created.url.clone(),
                    redis_url: options.redis_url.clone(),
                };
                database = Some(created);
                storage
            }
        };
        let launch = Launch {
            binary: binary.clone(),
            workdir: workdir.clone(),
            upstream_api_base: upstream.api_base(),
            storage,
            log_filter: options.gateway_log.clone(),
            request_log: !options.no_request_log,
            otlp_endpoint: otlp_endpoint.clone(),
        };
        let outcome =
            run_backend(options, &plan, &launch, upstream, floor, settings, backend).await;
        if let Some(database) = database
            && let Err(error) = database.drop_database().await
        {
            eprintln!("warning: {error}");
        }
        results.push(outcome?);
    }
    print_summary(&results, settings);
    println!(
        "\nRun took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        load_average()
    );
    if options.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    Ok(())
}
