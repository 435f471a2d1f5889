//! The replicas of a run over one database: in-process servers (each with its own pools, as
//! separate processes would have) or the real `llmgate` binary as child processes, which can
//! be killed with SIGKILL and started again.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::money::Gateway;
use crate::support::{MASTER_KEY, client, empty_env, yaml_config};

use super::config::{Storage, yaml};

/// Replicas of one run.
pub enum Fleet {
    InProcess(Vec<Gateway>),
    Binaries(Vec<Process>),
}

impl Fleet {
    pub async fn in_process(count: usize, storage: &Storage, upstream_url: &str) -> Fleet {
        let mut gateways = Vec::with_capacity(count);
        for _ in 0..count {
            let config = yaml_config(&yaml(storage, upstream_url, None), &empty_env());
            gateways.push(Gateway::start(config).await);
        }
        Fleet::InProcess(gateways)
    }

    pub async fn binaries(
        count: usize,
        storage: &Storage,
        upstream_url: &str,
        dir: &std::path::Path,
    ) -> Fleet {
        // Every start, the restart included, runs this copy: a build while a long run goes on
        // (the target directory may be shared) cannot swap the binary under it.
        std::fs::copy(env!("CARGO_BIN_EXE_llmgate"), binary(dir)).unwrap();
        let mut processes = Vec::with_capacity(count);
        for index in 0..count {
            processes.push(Process::start(storage, upstream_url, dir, index, 0));
        }
        for process in &processes {
            process.wait_ready().await;
        }
        Fleet::Binaries(processes)
    }

    /// Each replica's base URL.
    pub fn urls(&self) -> Vec<String> {
        match self {
            Fleet::InProcess(gateways) => gateways.iter().map(|g| g.url("")).collect(),
            Fleet::Binaries(processes) => processes.iter().map(Process::url).collect(),
        }
    }

    /// Stop every replica gracefully: in-flight requests finish or are cut after the grace
    /// period, and the ledger queue is drained before each one returns.
    pub async fn stop(self) {
        match self {
            Fleet::InProcess(gateways) => {
                futures::future::join_all(gateways.into_iter().map(Gateway::stop)).await;
            }
            Fleet::Binaries(mut processes) => {
                for process in &processes {
                    process.signal("-TERM");
                }
                for process in &mut processes {
                    process.wait_exit(Duration::from_secs(30)).await;
                }
            }
        }
    }
}

/// One `llmgate serve` child process, on a port of its own.
pub struct Process {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Process {
    /// Start replica `index` (its `generation`-th start) with a config of its own, from the
    /// binary [`Fleet::binaries`] copied into `dir`.
    pub fn start(
        storage: &Storage,
        upstream_url: &str,
        dir: &std::path::Path,
        index: usize,
        generation: usize,
    ) -> Process {
        let port = free_port();
        let config = dir.join(format!("replica-{index}-{generation}.yaml"));
        std::fs::write(&config, yaml(storage, upstream_url, Some(port))).unwrap();
        let log = dir.join(format!("replica-{index}-{generation}.log"));
        let mut command = Command::new(binary(dir));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env("LLMGATE_MASTER_KEY", MASTER_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for variable in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "OLLAMA_HOST",
            "VLLM_HOST",
        ] {
            command.env_remove(variable);
        }
        Process {
            child: command.spawn().unwrap(),
            port,
            log,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn wait_ready(&self) {
        for _ in 0..400 {
            if let Ok(response) = client()
                .get(format!("{}/health/ready", self.url()))
                .send()
                .await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("llmgate never became ready:\n{}", self.log());
    }

    /// SIGKILL: no drain, no settle, holds left open.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    async fn wait_exit(&mut self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit {status:?}:\n{}", self.log());
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "llmgate did not exit within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run's copy of the `llmgate` binary.
fn binary(dir: &std::path::Path) -> PathBuf {
    dir.join("llmgate")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
