//! The command line and the cell sizes it makes.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use llmgate_benches::load::runner::Load;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    Memory,
    Sqlite,
    Postgres,
}

/// Which load generator measures the cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ClientChoice {
    /// In the harness's process (fast; what earlier runs reported).
    Inner,
    /// The `loadgen` binary in a process of its own, as `wrk` would be.
    Outer,
    /// Both, one after the other in every cell, printed side by side.
    Both,
}

/// Where the fake upstream runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UpstreamChoice {
    /// A thread of the harness's process.
    Inner,
    /// `loadgen upstream`, a process of its own.
    Outer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    Json,
    Stream,
}

/// Direct-vs-gateway load test of llmgate.
#[derive(Debug, Parser)]
#[command(name = "loadtest")]
pub(crate) struct Options {
    /// A short run (about a minute and a half): short windows, fewer soak requests.
    #[arg(long)]
    pub(crate) quick: bool,
    /// The gateway binary (default: $CARGO_TARGET_DIR/release/llmgate, the target dir
    /// defaulting to /var/tmp/llmgate-target).
    #[arg(long)]
    pub(crate) binary: Option<PathBuf>,
    /// Do not run `cargo build --release -p llmgate-server` first.
    #[arg(long)]
    pub(crate) no_build: bool,
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite,postgres")]
    pub(crate) backends: Vec<Backend>,
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    pub(crate) concurrency: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "json,stream")]
    pub(crate) modes: Vec<Mode>,
    /// Measured window of each cell (default 400 quick, 3000 full).
    #[arg(long)]
    pub(crate) duration_ms: Option<u64>,
    /// Warm-up before each cell (default 100 quick, 500 full).
    #[arg(long)]
    pub(crate) warmup_ms: Option<u64>,
    /// Requests per cell at most (default 20000 quick, 300000 full).
    #[arg(long)]
    pub(crate) max_requests: Option<u64>,
    /// Requests of the memory soak on SQLite (default 50000 quick, 1000000 full).
    #[arg(long)]
    pub(crate) soak_requests: Option<u64>,
    /// Slow streams held open at once.
    #[arg(long, default_value_t = 1000)]
    pub(crate) open_streams: usize,
    /// Skip the memory soak and the open-streams test.
    #[arg(long)]
    pub(crate) skip_memory: bool,
    /// Skip the bare-proxy rows (the floor one extra hop costs on this machine).
    #[arg(long)]
    pub(crate) no_floor: bool,
    /// Content chunks per stream from the fake upstream.
    #[arg(long, default_value_t = 20)]
    pub(crate) stream_chunks: usize,
    /// Turn the gateway's request log off (`logging.request_log: false`), to measure what it
    /// costs: A/B against a run without this flag.
    #[arg(long)]
    pub(crate) no_request_log: bool,
    /// RUST_LOG for the gateway (its logs go to a file in the work directory).
    #[arg(long, default_value = "info")]
    pub(crate) gateway_log: String,
    /// Export the gateway's traces (`telemetry.otlp_endpoint`) to a sink collector on loopback:
    /// a second fake server that reads each OTLP export and answers 200.
    #[arg(long)]
    pub(crate) traces: bool,
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    pub(crate) redis_url: String,
    /// Which load generator measures: in the harness's process, `loadgen` in a process of its
    /// own (an outside client, as wrk), or both side by side.
    #[arg(long, value_enum, default_value = "both")]
    pub(crate) client: ClientChoice,
    /// Where the fake upstream runs: a thread of the harness, or a process of its own.
    #[arg(long, value_enum, default_value = "inner")]
    pub(crate) upstream: UpstreamChoice,
    /// The `loadgen` binary (default: beside this one).
    #[arg(long)]
    pub(crate) loadgen: Option<PathBuf>,
    /// Funded users of the "paid, many accounts" route (requests spread over them in turn);
    /// 0 leaves the route out.
    #[arg(long, default_value_t = 1000)]
    pub(crate) accounts: usize,
    /// Paid requests sent (and not measured) before each paid cell, to fill the gateway's
    /// ledger queue so the cell measures the sustained rate; 0 measures from an empty queue
    /// (the burst the first few thousand requests see).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) paid_preload: u64,
    /// Gateway processes on the one PostgreSQL database for the replicas table (the load split
    /// across them); 1 leaves it out.
    #[arg(long, default_value_t = 2)]
    pub(crate) replicas: usize,
    /// Scratch directory (default /var/tmp/llmgate-loadtest-PID, removed after).
    #[arg(long)]
    pub(crate) workdir: Option<PathBuf>,
}

/// Cell sizes for this run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    pub(crate) max_requests: u64,
    pub(crate) soak_requests: u64,
}

impl Plan {
    pub(crate) fn from(options: &Options) -> Self {
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

    pub(crate) fn load(&self, concurrency: usize) -> Load {
        Load {
            concurrency,
            warmup: self.warmup,
            duration: self.duration,
            max_requests: self.max_requests,
        }
    }
}
