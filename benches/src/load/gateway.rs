//! The real `llmgate` release binary as a child process: a generated config pointing at the fake
//! upstream, start-up timed to the first `/health` answer, its resident memory, and a paid user
//! created and funded through the admin API.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client;

/// Names used in the generated config.
pub const FREE_MODEL: &str = "bench-free";
pub const PAID_MODEL: &str = "bench-paid";
pub const SLOW_MODEL: &str = super::upstream::SLOW_MODEL;
const TIER: &str = "bench";

/// Where the gateway keeps its ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// In-memory SQLite (`sqlite::memory:`): no file, no fsync.
    Memory,
    /// The embedded default: a SQLite file (WAL; ledger commits synchronous=NORMAL).
    Sqlite(PathBuf),
    /// PostgreSQL with the Redis balance cache (none when `redis_url` is empty).
    Postgres {
        database_url: String,
        redis_url: String,
    },
}

impl Storage {
    pub fn label(&self) -> &'static str {
        match self {
            Storage::Memory => "memory",
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres { redis_url, .. } if redis_url.is_empty() => "postgres",
            Storage::Postgres { .. } => "postgres+redis",
        }
    }

    fn yaml(&self) -> String {
        match self {
            Storage::Memory => "  database_url: \"sqlite::memory:\"\n".to_owned(),
            Storage::Sqlite(path) => format!("  database_url: \"sqlite://{}\"\n", path.display()),
            Storage::Postgres {
                database_url,
                redis_url,
            } if redis_url.is_empty() => format!("  database_url: \"{database_url}\"\n"),
            Storage::Postgres {
                database_url,
                redis_url,
            } => format!("  database_url: \"{database_url}\"\n  redis_url: \"{redis_url}\"\n"),
        }
    }
}

/// How to start the gateway.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    /// Scratch directory for the config, logs and the SQLite file.
    pub workdir: PathBuf,
    pub upstream_api_base: String,
    pub storage: Storage,
    /// `RUST_LOG` for the gateway.
    pub log_filter: String,
    /// Keep the request log (the gateway's default); false writes `logging.request_log: false`.
    pub request_log: bool,
    /// Export traces there (`telemetry.otlp_endpoint`); none when `None`.
    pub otlp_endpoint: Option<String>,
    /// 0 for the first gateway on this storage, 1, 2, ... for more replicas (its own config
    /// and log file names).
    pub replica: usize,
    /// `server.master_key`; replicas of one database share it.
    pub master_key: String,
}

impl Launch {
    /// `llmgate-<storage>[-replica<n>]`: the stem of its config and log files.
    fn file_stem(&self) -> String {
        match self.replica {
            0 => format!("llmgate-{}", self.storage.label()),
            n => format!("llmgate-{}-replica{n}", self.storage.label()),
        }
    }
}

/// A running gateway; dropping it stops it.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    addr: SocketAddr,
    master_key: String,
    /// From spawning the process to the first `200` from `/health`.
    pub startup: Duration,
    pub log_path: PathBuf,
}

impl Gateway {
    /// Write the config, start the binary and wait (at most 30 s) for `/health`.
    pub fn start(launch: &Launch) -> Result<Self, String> {
        let addr = free_port()?;
        let master_key = launch.master_key.clone();
        let config_path = launch.workdir.join(format!("{}.yaml", launch.file_stem()));
        std::fs::write(&config_path, config_yaml(addr, &master_key, launch))
            .map_err(|e| format!("writing {}: {e}", config_path.display()))?;
        let log_path = launch.workdir.join(format!("{}.log", launch.file_stem()));
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let mut command = Command::new(&launch.binary);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .current_dir(&launch.workdir)
            .env("RUST_LOG", &launch.log_filter);
        Self::spawn(command, addr, master_key, log, log_path)
    }

    /// The embedded default as a user first meets it: `serve` with no config file in an empty
    /// `dir` (a SQLite file there, the demo model), on a free loopback port.
    pub fn start_embedded_default(binary: &Path, dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let addr = free_port()?;
        let log_path = dir.join("llmgate.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .current_dir(dir);
        Self::spawn(command, addr, String::new(), log, log_path)
    }

    /// Start `command` (its output to `log`) and wait (at most 30 s) for `/health` on `addr`.
    fn spawn(
        mut command: Command,
        addr: SocketAddr,
        master_key: String,
        log: std::fs::File,
        log_path: PathBuf,
    ) -> Result<Self, String> {
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let child = command
            .env_remove("LLMGATE_CONFIG")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("starting {:?}: {e}", command.get_program()))?;
        let mut gateway = Self {
            child,
            addr,
            master_key,
            startup: Duration::ZERO,
            log_path,
        };
        let limit = spawned + Duration::from_secs(30);
        loop {
            if health_ok(addr) {
                gateway.startup = spawned.elapsed();
                return Ok(gateway);
            }
            if let Ok(Some(status)) = gateway.child.try_wait() {
                return Err(format!(
                    "llmgate exited with {status} before answering /health; see {}",
                    gateway.log_path.display()
                ));
            }
            if Instant::now() > limit {
                return Err(format!(
                    "llmgate did not answer /health within 30 s; see {}",
                    gateway.log_path.display()
                ));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Bearer <master key>`.
    pub fn master_authorization(&self) -> String {
        format!("Bearer {}", self.master_key)
    }

    /// Resident memory now, in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib(self.pid())
    }

    /// Create a user of the bench tier and give it plenty of credits; returns its API key.
    pub async fn paid_user(&self, user_id: &str) -> Result<String, String> {
        let auth = self.master_authorization();
        let create = serde_json::json!({"user_id": user_id, "tier": TIER, "role": "user"});
        let (status, body) = client::call(
            self.addr,
            "/api/v1/admin/users",
            &auth,
            Bytes::from(create.to_string()),
        )
        .await
        .map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "creating a user: HTTP {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        let created: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("creating a user: {e}"))?;
        let Some(key) = created["api_key"].as_str() else {
            return Err("creating a user: no api_key in the answer".to_owned());
        };
        let fund = serde_json::json!({
            "user_id": user_id,
            "amount": "100000000",
            "reason": "load test",
        });
        let (status, body) = client::call(
            self.addr,
            "/api/v1/llm/credits/add",
            &auth,
            Bytes::from(fund.to_string()),
        )
        .await
        .map_err(|e| e.to_string())?;
        if !(200..300).contains(&status) {
            return Err(format!(
                "funding the user: HTTP {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok(key.to_owned())
    }

    /// `count` funded users of the bench tier (`<prefix>-0`, `<prefix>-1`, ...), made a few at
    /// a time; their API keys, in order.
    pub async fn paid_users(&self, prefix: &str, count: usize) -> Result<Vec<String>, String> {
        const AT_ONCE: usize = 16;
        let mut keys = Vec::with_capacity(count);
        for first in (0..count).step_by(AT_ONCE) {
            let names: Vec<String> = (first..(first + AT_ONCE).min(count))
                .map(|i| format!("{prefix}-{i}"))
                .collect();
            let made = futures::future::join_all(names.iter().map(|n| self.paid_user(n))).await;
            for key in made {
                keys.push(key?);
            }
        }
        Ok(keys)
    }

    /// Requests whose ledger work is not written yet (`llmgate_pending_settlements` of
    /// `/metrics`); `None` when the gauge cannot be read.
    pub async fn pending_settlements(&self) -> Option<u64> {
        let auth = self.master_authorization();
        let (status, body) = client::get(self.addr, "/metrics", &auth).await.ok()?;
        if status != 200 {
            return None;
        }
        pending_in(&String::from_utf8_lossy(&body))
    }

    /// Wait (at most `limit`) until the ledger work of earlier requests is written, so that a
    /// cell does not start behind the backlog of the one before it. Returns how long it took.
    pub async fn settle_down(&self, limit: Duration) -> Duration {
        let began = Instant::now();
        while began.elapsed() < limit {
            match self.pending_settlements().await {
                Some(0) | None => break,
                Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        began.elapsed()
    }

    /// SIGTERM, then wait up to 10 s for the drain before killing it.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        self.terminate()
    }

    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let limit = Instant::now() + Duration::from_secs(10);
        while Instant::now() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn config_yaml(addr: SocketAddr, master_key: &str, launch: &Launch) -> String {
    let storage = launch.storage.yaml();
    let api_base = &launch.upstream_api_base;
    let logging = if launch.request_log {
        ""
    } else {
        "logging:\n  request_log: false\n"
    };
    let telemetry = match &launch.otlp_endpoint {
        Some(endpoint) => format!("telemetry:\n  otlp_endpoint: \"{endpoint}\"\n"),
        None => String::new(),
    };
    format!(
        r#"# Generated by the llmgate load harness.
server:
  listen: "{addr}"
  master_key: "{master_key}"
  shutdown_grace_ms: 5000
storage:
{storage}tiers:
  {TIER}: {{ markup: 0.4, byok: false, default_power_level: balanced }}
providers:
  - name: fake
    kind: openai
    api_base: "{api_base}"
    api_key: sk-bench-upstream-key
    timeout_ms: 60000
models:
  - name: {FREE_MODEL}
    provider: fake
    upstream_model: {FREE_MODEL}
    free: true
  - name: {PAID_MODEL}
    provider: fake
    upstream_model: {PAID_MODEL}
    input_cost_per_1k: 0.001
    output_cost_per_1k: 0.002
  - name: {SLOW_MODEL}
    provider: fake
    upstream_model: {SLOW_MODEL}
    free: true
{logging}{telemetry}"#
    )
}

/// The value of `llmgate_pending_settlements` in a Prometheus text exposition (a gauge with
/// no labels; absent until the first request).
fn pending_in(metrics: &str) -> Option<u64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix("llmgate_pending_settlements ")?;
        value.trim().parse::<f64>().ok().map(|v| v.max(0.0) as u64)
    })
}

/// A port that was free a moment ago.
fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map_err(|e| e.to_string())
}

/// Whether `GET /health` answers 200 right now.
fn health_ok(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// `VmRSS` of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time the process has used so far, in nanoseconds: the sum over its threads of
/// `/proc/PID/task/TID/schedstat` (nanosecond resolution, unlike `/proc/PID/stat`).
pub fn cpu_nanos(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0u64;
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        if let Some(on_cpu) = text
            .split_whitespace()
            .next()
            .and_then(|n| n.parse::<u64>().ok())
        {
            total += on_cpu;
        }
    }
    Some(total)
}

/// A short chat completion request for `model`, streamed or not.
pub fn chat_body(model: &str, stream: bool) -> Bytes {
    let stream = if stream { r#","stream":true"# } else { "" };
    Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello to the benchmark, briefly."}}],"max_tokens":64{stream}}}"#
    ))
}

/// Where `cargo build --release` puts the binary: `$CARGO_TARGET_DIR` (default
/// `/var/tmp/llmgate-target`), `release/llmgate`.
pub fn default_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/llmgate-target"));
    target.join("release").join("llmgate")
}

/// Whether `path` is an existing file.
pub fn exists(path: &Path) -> bool {
    path.is_file()
}

/// A master key for the gateways of one run (random enough: time and pid; no crypto needed).
pub fn bench_master_key() -> String {
    format!("lg-bench-master-{:016x}", rand_u64())
}

/// A random-enough number for names (time and pid; no crypto needed).
fn rand_u64() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_of_this_process_is_read() {
        let rss = rss_kib(std::process::id()).unwrap();
        assert!(rss > 0);
    }

    #[test]
    fn cpu_time_of_this_process_grows() {
        let before = cpu_nanos(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_nanos(std::process::id()).unwrap() > before);
    }

    #[test]
    fn pending_settlements_are_read_from_the_metrics_text() {
        let text = "# HELP llmgate_pending_settlements Requests ...\n\
                    # TYPE llmgate_pending_settlements gauge\n\
                    llmgate_pending_settlements 8250\n\
                    llmgate_pending_settlements_other 3\n";
        assert_eq!(pending_in(text), Some(8250));
        assert_eq!(pending_in("llmgate_tokens_total 5\n"), None);
    }

    #[test]
    fn config_names_the_models_and_the_storage() {
        let launch = Launch {
            binary: PathBuf::from("/nonexistent"),
            workdir: PathBuf::from("/tmp"),
            upstream_api_base: "http://127.0.0.1:9/v1".to_owned(),
            storage: Storage::Memory,
            log_filter: "warn".to_owned(),
            request_log: false,
            otlp_endpoint: None,
            replica: 0,
            master_key: "lg-bench-master-x".to_owned(),
        };
        let yaml = config_yaml("127.0.0.1:1".parse().unwrap(), &launch.master_key, &launch);
        assert!(yaml.contains("sqlite::memory:"), "{yaml}");
        assert!(yaml.contains("name: bench-paid"), "{yaml}");
        assert!(yaml.contains("logging:\n  request_log: false\n"), "{yaml}");
        assert!(
            yaml.contains("api_base: \"http://127.0.0.1:9/v1\""),
            "{yaml}"
        );
    }
}
