//! The `loadgen` binary as a child process: the load generator, or the fake upstream, in a
//! process of its own. Beside the in-process generator (which shares the harness's process
//! with the fake upstream and the bare proxy) it shows the gateway as an outside client such
//! as `wrk` sees it: its own process, its own scheduling, a fixed window with no request bound.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::client::Target;
use super::runner::{Load, Measured};

/// Where `loadgen` is: beside the running executable (cargo builds both into one directory),
/// or else beside the gateway binary (where the harness's own build puts it).
pub fn default_loadgen(gateway: &Path) -> PathBuf {
    let beside_us = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("loadgen")));
    let beside_gateway = gateway.parent().map(|dir| dir.join("loadgen"));
    beside_us
        .iter()
        .chain(&beside_gateway)
        .find(|path| path.is_file())
        .or(beside_us.as_ref())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("loadgen"))
}

/// The generator as a process of its own; files it reads go to `workdir`.
#[derive(Debug, Clone)]
pub struct OutsideClient {
    pub binary: PathBuf,
    pub workdir: PathBuf,
}

impl OutsideClient {
    /// Run `loadgen run` with `load` against `targets` (the connections split over them) and
    /// read what it measured. Blocks a thread of the blocking pool meanwhile, not the caller's.
    pub async fn measure(
        &self,
        targets: &[Target],
        body: &Bytes,
        load: Load,
    ) -> Result<Measured, String> {
        let command = self.command(targets, body, load)?;
        let output = tokio::task::spawn_blocking(move || {
            let mut command = command;
            command.stdin(Stdio::null()).output()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("running {}: {e}", self.binary.display()))?;
        if !output.status.success() {
            return Err(format!(
                "{} failed ({}): {}",
                self.binary.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| format!("reading loadgen's answer: {e}"))
    }

    fn command(&self, targets: &[Target], body: &Bytes, load: Load) -> Result<Command, String> {
        let Some(first) = targets.first() else {
            return Err("no target".to_owned());
        };
        let body_file = self.write("loadgen-body.json", body)?;
        let addrs: Vec<String> = targets.iter().map(|t| t.addr.to_string()).collect();
        let mut command = Command::new(&self.binary);
        command
            .arg("run")
            .args(["--addr", &addrs.join(",")])
            .args(["--path", first.path])
            .arg("--body-file")
            .arg(&body_file)
            .args(["--concurrency", &load.concurrency.to_string()])
            .args(["--warmup-ms", &load.warmup.as_millis().to_string()])
            .args(["--duration-ms", &load.duration.as_millis().to_string()])
            .args(["--max-requests", &load.max_requests.to_string()])
            .args(["--output", "json"]);
        match first.keys.len() {
            0 => {}
            1 => {
                command.args(["--key", first.keys.all()[0].as_str()]);
            }
            _ => {
                let keys = first.keys.all().join("\n");
                let file = self.write("loadgen-keys.txt", keys.as_bytes())?;
                command.arg("--keys-file").arg(file);
            }
        }
        Ok(command)
    }

    fn write(&self, name: &str, contents: &[u8]) -> Result<PathBuf, String> {
        let path = self.workdir.join(name);
        std::fs::write(&path, contents).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

/// The fake upstream in a process of its own (`loadgen upstream`); dropping it stops it.
#[derive(Debug)]
pub struct OutsideUpstream {
    child: Child,
    addr: SocketAddr,
}

impl OutsideUpstream {
    /// Start it and read the address it serves on.
    pub fn start(binary: &Path, stream_chunks: usize) -> Result<Self, String> {
        let mut child = Command::new(binary)
            .arg("upstream")
            .args(["--stream-chunks", &stream_chunks.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {} upstream: {e}", binary.display()))?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        let addr = line
            .trim()
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/v1"))
            .and_then(|addr| addr.parse().ok());
        match addr {
            Some(addr) => Ok(Self { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the outside upstream said {line:?}"))
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for OutsideUpstream {
    fn drop(&mut self) {
        // Closing its stdin tells it to stop.
        drop(self.child.stdin.take());
        if !exited_within(&mut self.child, Duration::from_secs(1)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether a child asked to stop has exited within `limit`.
fn exited_within(child: &mut Child, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}
