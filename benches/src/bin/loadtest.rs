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

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use llmgate_benches::load::client::{Connection, Target};
use llmgate_benches::load::gateway::{
    FREE_MODEL, Gateway, Launch, PAID_MODEL, SLOW_MODEL, Storage, cpu_nanos, default_binary, exists,
};
use llmgate_benches::load::postgres::BenchDatabase;
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::report::{
    Check, Row, added, checks_table, json_table, spread, stream_table, throughput_share,
};
use llmgate_benches::load::runner::{Load, Measured, measure};
use llmgate_benches::load::stats::{Percentiles, human, human_delta, nanos};
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Json,
    Stream,
}

/// Direct-vs-gateway load test of llmgate.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
struct Options {
    /// A short run (about a minute and a half): short windows, fewer soak requests.
    #[arg(long)]
    quick: bool,
    /// The gateway binary (default: $CARGO_TARGET_DIR/release/llmgate, the target dir
    /// defaulting to /var/tmp/llmgate-target).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Do not run `cargo build --release -p llmgate-server` first.
    #[arg(long)]
    no_build: bool,
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite,postgres")]
    backends: Vec<Backend>,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "json,stream")]
    modes: Vec<Mode>,
    /// Measured window of each cell (default 400 quick, 3000 full).
    #[arg(long)]
    duration_ms: Option<u64>,
    /// Warm-up before each cell (default 100 quick, 500 full).
    #[arg(long)]
    warmup_ms: Option<u64>,
    /// Requests per cell at most (default 20000 quick, 300000 full).
    #[arg(long)]
    max_requests: Option<u64>,
    /// Requests of the memory soak on SQLite (default 50000 quick, 1000000 full).
    #[arg(long)]
    soak_requests: Option<u64>,
    /// Slow streams held open at once.
    #[arg(long, default_value_t = 1000)]
    open_streams: usize,
    /// Skip the memory soak and the open-streams test.
    #[arg(long)]
    skip_memory: bool,
    /// Skip the bare-proxy rows (the floor one extra hop costs on this machine).
    #[arg(long)]
    no_floor: bool,
    /// Content chunks per stream from the fake upstream.
    #[arg(long, default_value_t = 20)]
    stream_chunks: usize,
    /// RUST_LOG for the gateway (its logs go to a file in the work directory).
    #[arg(long, default_value = "info")]
    gateway_log: String,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// Scratch directory (default /var/tmp/llmgate-loadtest-PID, removed after).
    #[arg(long)]
    workdir: Option<PathBuf>,
}

/// Cell sizes for this run.
#[derive(Debug, Clone, Copy)]
struct Plan {
    warmup: Duration,
    duration: Duration,
    max_requests: u64,
    soak_requests: u64,
}

impl Plan {
    fn from(options: &Options) -> Self {
        let (warmup, duration, max_requests, soak) = if options.quick {
            (100, 400, 20_000, 50_000)
        } else {
            (500, 3_000, 300_000, 1_000_000)
        };
        Self {
            warmup: Duration::from_millis(options.warmup_ms.unwrap_or(warmup)),
            duration: Duration::from_millis(options.duration_ms.unwrap_or(duration)),
            max_requests: options.max_requests.unwrap_or(max_requests),
            soak_requests: options.soak_requests.unwrap_or(soak),
        }
    }

    fn load(&self, concurrency: usize) -> Load {
        Load {
            concurrency,
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.max_requests,
        }
    }
}

/// What one backend's run produced.
#[derive(Debug, Default)]
struct BackendResult {
    label: &'static str,
    startup: Duration,
    idle_rss_kib: Option<u64>,
    json: Vec<Row>,
    stream: Vec<Row>,
    memory: Option<MemoryResult>,
}

#[derive(Debug, Default)]
struct MemoryResult {
    /// (requests so far, RSS KiB, req/s of that step)
    soak: Vec<(u64, u64, f64)>,
    after_idle_kib: u64,
    streams: Option<StreamsResult>,
}

#[derive(Debug, Default)]
struct StreamsResult {
    wanted: usize,
    completed: usize,
    failed: usize,
    first_error: Option<String>,
    peak_open_upstream: usize,
    peak_rss_kib: u64,
    after_kib: u64,
    expected_events: u32,
    short: usize,
    longest_gap: Percentiles,
    stalls: usize,
    gap: Duration,
    took: Duration,
}

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
    match runtime.block_on(run(&options, binary, &upstream, floor.as_ref(), &settings)) {
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

fn print_header(options: &Options, plan: &Plan, binary: &std::path::Path) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# llmgate load test\n");
    println!(
        "- machine: {cpus} CPUs ({}), load average at the start: {}",
        cpu_model(),
        load_average()
    );
    println!(
        "- gateway: {} (RUST_LOG={})",
        binary.display(),
        options.gateway_log
    );
    println!(
        "- each cell: {} ms warm-up, then {} ms or {} requests, whichever ends first; closed loop, \
         one HTTP/1.1 keep-alive connection per concurrent client",
        plan.warmup.as_millis(),
        plan.duration.as_millis(),
        plan.max_requests
    );
    println!(
        "- added = gateway percentile − direct percentile from the same run; the fake upstream \
         answers at once ({} content chunks per stream); the bare proxy (hyper in, pooled \
         hyper client out, nothing else) shows what one extra loopback hop costs here\n",
        options.stream_chunks
    );
}

async fn run_backend(
    options: &Options,
    plan: &Plan,
    launch: &Launch,
    upstream: &FakeUpstream,
    floor: Option<&BareProxy>,
    settings: &UpstreamSettings,
    backend: Backend,
) -> Result<BackendResult, String> {
    let label = launch.storage.label();
    eprintln!("[{label}] starting the gateway");
    let gateway = Gateway::start(launch)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut result = BackendResult {
        label,
        startup: gateway.startup,
        idle_rss_kib: gateway.rss_kib(),
        ..BackendResult::default()
    };
    let user = format!("bench-{}-{label}", std::process::id()).replace('+', "-");
    let user_key = gateway.paid_user(&user).await?;

    let direct = Target {
        addr: upstream.addr(),
        path: "/v1/chat/completions",
        authorization: None,
    };
    let bare = floor.map(|proxy| Target {
        addr: proxy.addr(),
        path: "/v1/chat/completions",
        authorization: None,
    });
    let free = Target {
        addr: gateway.addr(),
        path: "/v1/chat/completions",
        authorization: Some(gateway.master_authorization()),
    };
    let paid = Target {
        authorization: Some(format!("Bearer {user_key}")),
        ..free.clone()
    };
    for &mode in &options.modes {
        let stream = mode == Mode::Stream;
        let free_body = chat_body(FREE_MODEL, stream);
        let paid_body = chat_body(PAID_MODEL, stream);
        let mut rows = Vec::new();
        for &concurrency in &options.concurrency {
            let load = plan.load(concurrency);
            eprintln!("[{label}] {mode:?} c={concurrency}");
            let mut routes = vec![("direct", &direct, &free_body)];
            if let Some(bare) = &bare {
                routes.push((BARE_ROUTE, bare, &free_body));
            }
            routes.push(("free (master key)", &free, &free_body));
            routes.push(("paid (user key)", &paid, &paid_body));
            for (route, target, body) in routes {
                let through_gateway = route != "direct" && route != BARE_ROUTE;
                let cpu_before = cpu_nanos(gateway.pid());
                let measured = measure(target, body, load).await;
                let cpu_per_request = match (cpu_before, cpu_nanos(gateway.pid())) {
                    (Some(before), Some(after)) if through_gateway && measured.answered > 0 => {
                        Some(after.saturating_sub(before) / measured.answered)
                    }
                    _ => None,
                };
                rows.push(Row {
                    concurrency,
                    route: route.to_owned(),
                    measured,
                    cpu_per_request,
                });
            }
        }
        let title = match mode {
            Mode::Json => "JSON",
            Mode::Stream => "streaming",
        };
        println!("## {label}: {title}\n");
        match mode {
            Mode::Json => {
                println!("{}", json_table(&rows));
                result.json = rows;
            }
            Mode::Stream => {
                println!("{}", stream_table(&rows));
                result.stream = rows;
            }
        }
    }
    if backend == Backend::Sqlite && !options.skip_memory {
        result.memory = Some(memory(options, plan, &gateway, &free, upstream, settings).await);
    }
    let status = gateway.stop();
    if status.is_some_and(|s| !s.success()) {
        eprintln!("[{label}] warning: the gateway exited with {status:?}");
    }
    Ok(result)
}

/// The bare proxy's rows: the floor of one extra hop on this machine.
const BARE_ROUTE: &str = "bare proxy (floor)";

fn chat_body(model: &str, stream: bool) -> Bytes {
    let stream = if stream { r#","stream":true"# } else { "" };
    Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello to the benchmark, briefly."}}],"max_tokens":64{stream}}}"#
    ))
}

/// RSS over a soak of many requests, after idling, and with many slow streams open at once.
async fn memory(
    options: &Options,
    plan: &Plan,
    gateway: &Gateway,
    free: &Target,
    upstream: &FakeUpstream,
    settings: &UpstreamSettings,
) -> MemoryResult {
    let mut result = MemoryResult::default();
    let steps = 10;
    let step = (plan.soak_requests / steps).max(1);
    let body = chat_body(FREE_MODEL, false);
    eprintln!("[sqlite] memory soak: {} requests", step * steps);
    for i in 1..=steps {
        let measured = measure(
            free,
            &body,
            Load {
                concurrency: 64,
                warmup: Duration::ZERO,
                duration: Duration::from_secs(600),
                max_requests: step,
            },
        )
        .await;
        result.soak.push((
            step * i,
            gateway.rss_kib().unwrap_or(0),
            measured.throughput,
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    result.after_idle_kib = gateway.rss_kib().unwrap_or(0);
    if options.open_streams > 0 {
        eprintln!("[sqlite] {} open streams", options.open_streams);
        result.streams =
            Some(open_streams(options.open_streams, gateway, free, upstream, settings).await);
    }
    result
}

async fn open_streams(
    wanted: usize,
    gateway: &Gateway,
    free: &Target,
    upstream: &FakeUpstream,
    settings: &UpstreamSettings,
) -> StreamsResult {
    upstream.slow_streams().reset_peak();
    let body = chat_body(SLOW_MODEL, true);
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = gateway.pid();
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        let peak = peak.clone();
        async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = llmgate_benches::load::gateway::rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..wanted)
        .map(|_| {
            let target = free.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut connection = Connection::open(target.addr).await?;
                connection.post(&target, &body).await
            })
        })
        .collect();
    let expected_events = u32::try_from(settings.slow_chunks + 4).unwrap_or(u32::MAX);
    let mut result = StreamsResult {
        wanted,
        expected_events,
        gap: settings.slow_gap,
        ..StreamsResult::default()
    };
    let mut gaps = Vec::with_capacity(wanted);
    for task in tasks {
        match task.await {
            Ok(Ok(timing)) => {
                result.completed += 1;
                if timing.events < expected_events {
                    result.short += 1;
                }
                gaps.push(nanos(timing.longest_gap));
                // A stall: a pause well beyond the upstream's own.
                if timing.longest_gap > settings.slow_gap + Duration::from_secs(1) {
                    result.stalls += 1;
                }
            }
            Ok(Err(failure)) => {
                result.failed += 1;
                result
                    .first_error
                    .get_or_insert_with(|| failure.to_string());
            }
            Err(error) => {
                result.failed += 1;
                result.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    result.took = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    result.peak_rss_kib = peak.load(Ordering::Relaxed);
    result.peak_open_upstream = upstream.slow_streams().peak();
    result.longest_gap = Percentiles::of(&mut gaps);
    tokio::time::sleep(Duration::from_secs(2)).await;
    result.after_kib = gateway.rss_kib().unwrap_or(0);
    result
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn print_summary(results: &[BackendResult], settings: &UpstreamSettings) {
    println!("## Start-up and memory\n");
    println!("| backend | spawn → /health 200 | RSS idle after start |\n|---|---:|---:|");
    for result in results {
        println!(
            "| {} | {:.1} ms | {} |",
            result.label,
            result.startup.as_secs_f64() * 1e3,
            result.idle_rss_kib.map_or("–".to_owned(), mib)
        );
    }
    for result in results {
        let Some(memory) = &result.memory else {
            continue;
        };
        println!(
            "\n### RSS over a soak ({}, JSON, free model, 64 connections)\n",
            result.label
        );
        println!("| requests | RSS | req/s in step |\n|---:|---:|---:|");
        for (requests, rss, rps) in &memory.soak {
            println!("| {requests} | {} | {rps:.0} |", mib(*rss));
        }
        println!("| idle 2 s later | {} | |", mib(memory.after_idle_kib));
        if let Some(streams) = &memory.streams {
            println!(
                "\n### {} slow streams open at once ({} chunks {} ms apart each)\n",
                streams.wanted,
                settings.slow_chunks,
                streams.gap.as_millis()
            );
            println!("| measure | value |\n|---|---:|");
            println!(
                "| streams completed / failed | {} / {}{} |",
                streams.completed,
                streams.failed,
                streams
                    .first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"))
            );
            println!(
                "| most open at the upstream at once | {} |",
                streams.peak_open_upstream
            );
            println!(
                "| streams missing events (expected {}) | {} |",
                streams.expected_events, streams.short
            );
            println!(
                "| longest pause within a stream, p50 / p99 / max | {} |",
                spread(&streams.longest_gap)
            );
            println!("| stalls (pause > gap + 1 s) | {} |", streams.stalls);
            println!("| peak gateway RSS | {} |", mib(streams.peak_rss_kib));
            println!("| RSS 2 s after they ended | {} |", mib(streams.after_kib));
            println!("| wall time | {:.1} s |", streams.took.as_secs_f64());
        }
    }
    println!("\n## Targets\n");
    println!("{}", checks_table(&checks(results)));
}

fn checks(results: &[BackendResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let find = |label: &str| results.iter().find(|r| r.label == label);
    let latency = |what: &str, goal_us: u64, value: Option<i64>| Check {
        what: what.to_owned(),
        target: format!("≤ {goal_us} µs"),
        measured: value.map_or("–".to_owned(), human_delta),
        met: value.map(|v| v <= (goal_us * 1000) as i64),
    };
    let share = |what: &str, goal: f64, value: Option<f64>| Check {
        what: what.to_owned(),
        target: format!("≥ {:.0} %", goal * 100.0),
        measured: value.map_or("–".to_owned(), |v| format!("{:.0} %", v * 100.0)),
        met: value.map(|v| v >= goal),
    };
    let p50 = |m: &Measured| m.total.p50;
    let p99 = |m: &Measured| m.total.p99;
    if let Some(sqlite) = find("sqlite") {
        let free = "free (master key)";
        let paid = "paid (user key)";
        checks.push(latency(
            "added p50, JSON, c=1, free (SQLite)",
            50,
            added(&sqlite.json, free, 1, p50),
        ));
        checks.push(latency(
            "added p99, JSON, c=1, free (SQLite)",
            150,
            added(&sqlite.json, free, 1, p99),
        ));
        checks.push(latency(
            "added p50, JSON, c=1, paid on SQLite",
            150,
            added(&sqlite.json, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, free (SQLite)",
            0.40,
            throughput_share(&sqlite.json, free, 64),
        ));
        let floor = |what: &str, measured: String| Check {
            what: what.to_owned(),
            target: "(floor)".to_owned(),
            measured,
            met: None,
        };
        if let Some(added) = added(&sqlite.json, BARE_ROUTE, 1, p50) {
            checks.push(floor(
                "bare proxy: added p50, JSON, c=1",
                human_delta(added),
            ));
        }
        if let Some(share) = throughput_share(&sqlite.json, BARE_ROUTE, 64) {
            checks.push(floor(
                "bare proxy: throughput c=64 JSON",
                format!("{:.0} %", share * 100.0),
            ));
        }
        checks.push(share(
            "throughput c=64 JSON, paid on SQLite",
            0.25,
            throughput_share(&sqlite.json, paid, 64),
        ));
        checks.push(latency(
            "added TTFB p50, stream, c=1, free (SQLite)",
            200,
            added(&sqlite.stream, free, 1, |m| m.first_byte.p50),
        ));
        let per_chunk = added(&sqlite.stream, free, 1, |m| m.per_chunk.p50);
        checks.push(Check {
            what: "added per chunk p50, stream, c=1, free (SQLite)".to_owned(),
            target: "≤ 2 µs".to_owned(),
            measured: per_chunk.map_or("–".to_owned(), human_delta),
            met: per_chunk.map(|v| v <= 2_000),
        });
        checks.push(Check {
            what: "ready (spawn → /health), embedded SQLite".to_owned(),
            target: "≤ 100 ms".to_owned(),
            measured: format!("{:.1} ms", sqlite.startup.as_secs_f64() * 1e3),
            met: Some(sqlite.startup <= Duration::from_millis(100)),
        });
        if let Some(rss) = sqlite.idle_rss_kib {
            checks.push(Check {
                what: "RSS idle".to_owned(),
                target: "≤ 10 MiB".to_owned(),
                measured: mib(rss),
                met: Some(rss <= 10 * 1024),
            });
        }
        if let Some(memory) = &sqlite.memory {
            if let Some(streams) = &memory.streams {
                checks.push(Check {
                    what: format!("RSS with {} open streams", streams.wanted),
                    target: "≤ 150 MiB".to_owned(),
                    measured: mib(streams.peak_rss_kib),
                    met: Some(streams.peak_rss_kib <= 150 * 1024),
                });
                checks.push(Check {
                    what: format!("{} concurrent streams without stalls", streams.wanted),
                    target: "0 stalls, 0 failures".to_owned(),
                    measured: format!(
                        "{} stalls, {} failed, {} short, {} open at once",
                        streams.stalls, streams.failed, streams.short, streams.peak_open_upstream
                    ),
                    met: Some(
                        streams.stalls == 0
                            && streams.failed == 0
                            && streams.short == 0
                            && streams.peak_open_upstream >= streams.wanted,
                    ),
                });
            }
            if let (Some(first), Some(last)) = (memory.soak.first(), memory.soak.last()) {
                let growth = last.1 as i64 - first.1 as i64;
                checks.push(Check {
                    what: format!("RSS flat from {} to {} requests", first.0, last.0),
                    target: "no growth".to_owned(),
                    measured: format!("{:+.1} MiB", growth as f64 / 1024.0),
                    // Allow allocator noise of 2 MiB.
                    met: Some(growth <= 2048),
                });
            }
        }
    }
    if let Some(postgres) = find("postgres+redis") {
        let paid = "paid (user key)";
        checks.push(latency(
            "added p50, JSON, c=1, paid on PostgreSQL + Redis",
            500,
            added(&postgres.json, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, paid on PostgreSQL + Redis",
            0.15,
            throughput_share(&postgres.json, paid, 64),
        ));
    }
    if checks.is_empty() {
        checks.push(Check {
            what: "(run with the sqlite backend for the target checks)".to_owned(),
            target: String::new(),
            measured: human(0),
            met: None,
        });
    }
    checks
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let parts: Vec<&str> = text.split_whitespace().take(3).collect();
            (parts.len() == 3).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
