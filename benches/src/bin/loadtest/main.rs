//! The load harness: a fake OpenAI upstream, the real `llmgate` release binary in front of it,
//! and a bounded closed-loop load generator that measures the same requests sent straight to
//! the upstream and through the gateway, side by side, on each storage backend.
//!
//! ```text
//! cargo run --release -p llmgate-benches --bin loadtest -- --quick
//! ```
//!
//! Every cell can be measured by two load generators (`--client inner|outer|both`): the one in
//! this process, and `loadgen` in a process of its own, as an outside client such as `wrk`
//! meets the gateway; their figures are printed side by side. The paid routes run for one hot
//! account and for many accounts taken in turn (`--accounts`); on PostgreSQL the load is also
//! split over several gateways on one database (`--replicas`).
//!
//! Also measured: the gateway's start-up time (spawn to the first `/health` answer), its
//! resident memory idle, over many requests and with 1,000 slow streams open at once.
//! Everything is bounded in time and request count; see `docs/benchmarks.md`.

mod memory;
mod options;
mod scenarios;
mod summary;
mod targets;
mod upstreams;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use llmgate_benches::load::gateway::{Launch, Storage, bench_master_key, default_binary, exists};
use llmgate_benches::load::outside::{OutsideClient, default_loadgen};
use llmgate_benches::load::postgres::BenchDatabase;
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

use options::{Backend, ClientChoice, Options, Plan, UpstreamChoice};
use scenarios::{Bench, Generators, run_backend};
use summary::{load_average, print_header, print_summary};
use upstreams::Upstream;

fn main() -> ExitCode {
    let options = Options::parse();
    match start(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Build what is needed, start the servers that outlive every backend, and run.
fn start(options: &Options) -> Result<(), String> {
    let binary = options.binary.clone().unwrap_or_else(default_binary);
    if options.binary.is_none() && !options.no_build {
        build_gateway()?;
    }
    if !exists(&binary) {
        return Err(format!(
            "no gateway binary at {}; build it with `cargo build --release -p llmgate-server`",
            binary.display()
        ));
    }
    let loadgen = options
        .loadgen
        .clone()
        .unwrap_or_else(|| default_loadgen(&binary));
    let needs_loadgen =
        options.client != ClientChoice::Inner || options.upstream == UpstreamChoice::Outer;
    if needs_loadgen && !exists(&loadgen) {
        return Err(format!(
            "no loadgen binary at {} (the outside client); build it with `cargo build --release \
             -p llmgate-benches --bin loadgen`, or run with --client inner",
            loadgen.display()
        ));
    }
    let settings = UpstreamSettings {
        stream_chunks: options.stream_chunks,
        ..UpstreamSettings::default()
    };
    let upstream = Upstream::start(options.upstream, &loadgen, &settings)
        .map_err(|e| format!("starting the fake upstream: {e}"))?;
    // The collector shares the machine as a real one beside the gateway would.
    let collector = options
        .traces
        .then(|| FakeUpstream::start(&settings))
        .transpose()
        .map_err(|e| format!("starting the sink collector: {e}"))?;
    let otlp_endpoint = collector.as_ref().map(|c| format!("http://{}", c.addr()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let floor = (!options.no_floor)
        .then(|| BareProxy::start(upstream.addr(), 2))
        .transpose()
        .map_err(|e| format!("starting the bare proxy: {e}"))?;
    let workdir = options.workdir.clone().unwrap_or_else(|| {
        PathBuf::from(format!("/var/tmp/llmgate-loadtest-{}", std::process::id()))
    });
    std::fs::create_dir_all(&workdir).map_err(|e| format!("{}: {e}", workdir.display()))?;
    let generators = Generators {
        inner: options.client != ClientChoice::Outer,
        outer: (options.client != ClientChoice::Inner).then(|| OutsideClient {
            binary: loadgen.clone(),
            workdir: workdir.clone(),
        }),
    };
    let plan = Plan::from(options);
    let bench = Bench {
        options,
        plan: &plan,
        generators: &generators,
        upstream: upstream.addr(),
        slow_streams: upstream.slow_streams(),
        floor: floor.as_ref(),
        settings: &settings,
    };
    let outcome = runtime.block_on(run(&bench, binary, &workdir, otlp_endpoint));
    if options.workdir.is_none() {
        let _ = std::fs::remove_dir_all(&workdir);
    }
    outcome
}

/// `cargo build --release` of the gateway and `loadgen` into the shared target directory.
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
        "-p",
        "llmgate-benches",
        "--bin",
        "loadgen",
    ]);
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        command.env("CARGO_TARGET_DIR", "/var/tmp/llmgate-target");
    }
    eprintln!(
        "building the gateway and the outside client: cargo build --release -p llmgate-server \
         --bin llmgate -p llmgate-benches --bin loadgen"
    );
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
    bench: &Bench<'_>,
    binary: PathBuf,
    workdir: &std::path::Path,
    otlp_endpoint: Option<String>,
) -> Result<(), String> {
    let options = bench.options;
    print_header(options, bench.plan, &binary);
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
            workdir: workdir.to_path_buf(),
            upstream_api_base: format!("http://{}/v1", bench.upstream),
            storage,
            log_filter: options.gateway_log.clone(),
            request_log: !options.no_request_log,
            otlp_endpoint: otlp_endpoint.clone(),
            replica: 0,
            master_key: bench_master_key(),
        };
        let outcome = run_backend(bench, &launch, backend).await;
        if let Some(database) = database
            && let Err(error) = database.drop_database().await
        {
            eprintln!("warning: {error}");
        }
        results.push(outcome?);
    }
    print_summary(&results, bench.settings);
    println!(
        "\nRun took {:.0} s; load average at the end: {}",
        began.elapsed().as_secs_f64(),
        load_average()
    );
    Ok(())
}
