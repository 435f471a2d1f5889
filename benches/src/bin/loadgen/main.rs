//! The load harness's parts as processes of their own, the way an outside client such as `wrk`
//! meets the gateway: nothing shares a process, a runtime or a scheduler with the generator.
//!
//! ```text
//! # a closed-loop run: 64 keep-alive connections, 0.5 s warm-up, then 10 s measured
//! loadgen run --addr 127.0.0.1:8080 --key 'Bearer lg-...' --body-file body.json \
//!     --concurrency 64 --warmup-ms 500 --duration-ms 10000
//! # the fake OpenAI upstream alone; prints its base URL, serves until stdin closes
//! loadgen upstream
//! # the bare proxy alone in front of it; prints its address, serves until stdin closes
//! loadgen proxy --upstream 127.0.0.1:PORT
//! ```
//!
//! `run` prints what it measured as one JSON object (`--output json`, what `loadtest --client
//! outer` reads) or as a few lines of text with the rate of every second (`--output text`).

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use llmgate_benches::load::client::{Keys, Target};
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::runner::{Load, Measured, TIMELINE_STEP, measure_across};
use llmgate_benches::load::stats::human;
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Options {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a target with a closed-loop load and report latency and throughput.
    Run(RunOptions),
    /// Serve the fake OpenAI upstream; prints `http://IP:PORT/v1`, stops when stdin closes.
    Upstream {
        /// Content chunks per stream.
        #[arg(long, default_value_t = 20)]
        stream_chunks: usize,
    },
    /// Serve the bare proxy (hyper in, pooled hyper client out) in front of `upstream`; prints
    /// `IP:PORT`, stops when stdin closes. Its own process, so its syscalls and context
    /// switches can be counted beside the gateway's.
    Proxy {
        /// The upstream's address (`IP:PORT`).
        #[arg(long)]
        upstream: SocketAddr,
        /// Runtime worker threads (the gateway's runtime has one per core).
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Json,
    Text,
}

#[derive(Debug, clap::Args)]
struct RunOptions {
    /// Where to send (repeat, or comma-separate, to split the connections over replicas).
    #[arg(long, value_delimiter = ',', required = true)]
    addr: Vec<SocketAddr>,
    #[arg(long, default_value = "/v1/chat/completions")]
    path: String,
    /// `Authorization` value of every request (`Bearer ...`).
    #[arg(long, conflicts_with = "keys_file")]
    key: Option<String>,
    /// A file of `Authorization` values, one a line, taken in turn (many accounts).
    #[arg(long)]
    keys_file: Option<PathBuf>,
    /// The JSON body of every request.
    #[arg(long)]
    body_file: PathBuf,
    /// Keep-alive connections, each one request at a time (closed loop).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[arg(long, default_value_t = 500)]
    warmup_ms: u64,
    #[arg(long, default_value_t = 10_000)]
    duration_ms: u64,
    /// Stop the measured window after this many requests (default: no bound, like wrk).
    #[arg(long, default_value_t = u64::MAX)]
    max_requests: u64,
    /// Runtime threads of the generator (1, like `wrk -t1`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

fn main() -> ExitCode {
    let options = Options::parse();
    let outcome = match options.command {
        Command::Run(run) => drive(run),
        Command::Upstream { stream_chunks } => upstream(stream_chunks),
        Command::Proxy { upstream, workers } => proxy(upstream, workers),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn drive(options: RunOptions) -> Result<(), String> {
    let body = std::fs::read(&options.body_file)
        .map_err(|e| format!("{}: {e}", options.body_file.display()))?;
    let keys = match (&options.key, &options.keys_file) {
        (Some(key), _) => Keys::one(key.clone()),
        (None, Some(file)) => {
            let text =
                std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            Keys::rotating(
                text.lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )
        }
        (None, None) => Keys::none(),
    };
    let path: &'static str = Box::leak(options.path.clone().into_boxed_str());
    let targets: Vec<Target> = options
        .addr
        .iter()
        .map(|&addr| Target {
            addr,
            path,
            keys: keys.clone(),
        })
        .collect();
    let load = Load {
        concurrency: options.concurrency,
        warmup: Duration::from_millis(options.warmup_ms),
        duration: Duration::from_millis(options.duration_ms),
        max_requests: options.max_requests,
    };
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()
    }
    .map_err(|e| e.to_string())?;
    let measured = runtime.block_on(measure_across(&targets, &Bytes::from(body), load));
    match options.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string(&measured).map_err(|e| e.to_string())?
        ),
        Output::Text => print!("{}", text(&measured)),
    }
    Ok(())
}

/// A wrk-like summary, and the rate of every second of the window.
fn text(measured: &Measured) -> String {
    let t = &measured.total;
    let mut out = format!(
        "{} requests, {:.0} req/s, {} errors{}\nlatency p50 {} p99 {} p99.9 {} max {} mean {}\n",
        measured.ok,
        measured.throughput,
        measured.errors,
        measured
            .first_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (first: {e})")),
        human(t.p50),
        human(t.p99),
        human(t.p999),
        human(t.max),
        human(t.mean),
    );
    let per_second = (Duration::from_secs(1).as_nanos() / TIMELINE_STEP.as_nanos()) as usize;
    let seconds: Vec<String> = measured
        .timeline
        .chunks(per_second.max(1))
        .map(|steps| {
            let done: u64 = steps.iter().sum();
            let spanned = steps.len() as f64 * TIMELINE_STEP.as_secs_f64();
            format!("{:.0}", done as f64 / spanned)
        })
        .collect();
    out.push_str(&format!("req/s each second: {}\n", seconds.join(" ")));
    out
}

fn upstream(stream_chunks: usize) -> Result<(), String> {
    let settings = UpstreamSettings {
        stream_chunks,
        ..UpstreamSettings::default()
    };
    let upstream = FakeUpstream::start(&settings).map_err(|e| e.to_string())?;
    println!("{}", upstream.api_base());
    until_stdin_closes();
    drop(upstream);
    Ok(())
}

fn proxy(upstream: SocketAddr, workers: usize) -> Result<(), String> {
    let proxy = BareProxy::start(upstream, workers).map_err(|e| e.to_string())?;
    println!("{}", proxy.addr());
    until_stdin_closes();
    drop(proxy);
    Ok(())
}

/// Serve until whoever started us closes our stdin (or goes away).
fn until_stdin_closes() {
    let mut stdin = std::io::stdin().lock();
    let mut sink = Vec::new();
    let _ = stdin.fill_buf();
    let _ = stdin.read_to_end(&mut sink);
}
