//! The cap on open client connections, and what a connection over it gets: a short 503 and a
//! close, instead of a socket the process cannot afford (running out of file descriptors
//! would fail database and upstream connections, and so every request).

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::{Error, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors kept for everything that is not a client connection: the listeners, the
/// database and Redis pools, log files.
const RESERVED_FILES: u64 = 256;
/// Connections being refused at once; beyond this they are closed without an answer.
const MAX_SHEDDING: usize = 256;
/// How long a refused connection is given to take its 503.
const SHED_WAIT: Duration = Duration::from_secs(1);

/// At most `configured`, and at most half of what the open-file limit leaves after
/// [`RESERVED_FILES`]: each client connection may need an upstream connection too.
pub(crate) fn effective_limit(configured: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(files) => {
            let affordable = files.saturating_sub(RESERVED_FILES) / 2;
            configured.min(usize::try_from(affordable).unwrap_or(usize::MAX).max(1))
        }
        None => configured,
    }
}

/// The soft limit on open files (`ulimit -n`), where the system tells it.
pub(crate) fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Slots for open connections, and for refusing the ones over the cap.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlots {
    open: Arc<Semaphore>,
    shedding: Arc<Semaphore>,
    refusal: Arc<[u8]>,
}

impl ConnectionSlots {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            open: Arc::new(Semaphore::new(limit)),
            shedding: Arc::new(Semaphore::new(MAX_SHEDDING)),
            refusal: refusal().into(),
        }
    }

    /// A slot for a new connection, held as long as the connection is open.
    pub(crate) fn try_open(&self) -> Option<OwnedSemaphorePermit> {
        self.open.clone().try_acquire_owned().ok()
    }

    /// Answer a connection over the cap with a 503 and close it, on a task of its own so that
    /// accepting goes on. The request is read a little first (closing on unread data would
    /// reset the connection and the client might lose the answer).
    pub(crate) fn shed(&self, mut stream: TcpStream) {
        let Ok(slot) = self.shedding.clone().try_acquire_owned() else {
            return;
        };
        let refusal = self.refusal.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _ = tokio::time::timeout(SHED_WAIT, async {
                let mut head = [0u8; 4096];
                let _ = stream.write_all(&refusal).await;
                let _ = stream.shutdown().await;
                while matches!(stream.read(&mut head).await, Ok(n) if n > 0) {}
            })
            .await;
        });
    }
}

/// The whole HTTP/1.1 answer for a connection over the cap.
fn refusal() -> Vec<u8> {
    let error = Error::new(
        ErrorKind::Unavailable,
        "The server has too many open connections; try again shortly.",
    )
    .with_code("too_many_connections");
    let body = error.to_json().to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_leaves_room_for_upstream_connections_and_the_pools() {
        assert_eq!(effective_limit(4096, None), 4096);
        assert_eq!(effective_limit(4096, Some(1_048_576)), 4096);
        assert_eq!(effective_limit(4096, Some(1024)), 384);
        assert_eq!(effective_limit(4096, Some(100)), 1);
    }

    #[test]
    fn the_open_files_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn the_refusal_is_a_complete_http_answer_in_the_error_shape() {
        let text = String::from_utf8(refusal()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert_eq!(json["error"]["type"], "service_unavailable");
    }
}
