//! The test Redis (`LLMGATE_TEST_REDIS_URL`, else 127.0.0.1:6379), checked with a PING.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The test Redis's URL when it answers a PING; `None` (after saying why) when it does not,
/// except with `CI=true`, where that fails the test.
pub async fn test_redis() -> Option<String> {
    let url = std::env::var("LLMGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    if answers(&url).await {
        return Some(url);
    }
    llmgate_testkit::db::service_unavailable("Redis", &url);
    None
}

/// Whether Redis answers a PING (a plain RESP exchange over TCP) within two seconds.
async fn answers(url: &str) -> bool {
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let exchange = async {
        let mut socket = tokio::net::TcpStream::connect(&address).await.ok()?;
        socket.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        socket.read_exact(&mut reply).await.ok()?;
        Some(reply == *b"+PONG\r\n")
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), exchange).await,
        Ok(Some(true))
    )
}
