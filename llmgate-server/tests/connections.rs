//! Connections that cost without using the server, through the running server: silent ones,
//! slow headers, slow bodies and idle keep-alive connections are closed after their timeouts
//! while normal traffic keeps flowing, and connections over `server.max_connections` get a
//! 503 until the others are gone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use llmgate_server::RunningServer;
use llmgate_testkit::{FakeUpstream, Reply, openai};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the tests give the server beyond a timeout to act on it.
const SLACK: Duration = Duration::from_secs(3);

async fn server_with(server_yaml: &str) -> RunningServer {
    start(yaml_config(
        &format!(
            r#"
server:
{server_yaml}
providers:
  - {{ name: demo, kind: demo }}
models:
  - {{ name: echo, provider: demo, upstream_model: echo, free: true }}
"#
        ),
        &empty_env(),
    ))
    .await
}

async fn connect(server: &RunningServer) -> TcpStream {
    TcpStream::connect(server.addr()).await.unwrap()
}

/// Everything the server sends until it closes the connection, and when it closed it; panics
/// when it is still open after `within`.
async fn until_closed(
    stream: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (String, Instant) {
    let mut received = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is still open after {within:?}"
    );
    (
        String::from_utf8_lossy(&received).into_owned(),
        Instant::now(),
    )
}

/// Trickle `bytes` one every 100 ms until the server stops taking them.
fn trickle(mut writer: tokio::net::tcp::OwnedWriteHalf, bytes: &'static [u8]) {
    tokio::spawn(async move {
        for byte in bytes.iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

async fn normal_chat(server: &RunningServer) {
    let response = chat(
        server,
        json!({"model": "echo", "messages": [{"role": "user", "content": "still there?"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["choices"][0]["message"]["content"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed_while_normal_traffic_flows() {
    let server = server_with(
        "  header_read_timeout_ms: 500\n  idle_timeout_ms: 700\n  body_read_timeout_ms: 900\n",
    )
    .await;
    let opened = Instant::now();

    // Connects and sends nothing.
    let mut silent = connect(&server).await;
    // Sends its headers one byte at a time.
    let (mut slow_head, writer) = connect(&server).await.into_split();
    trickle(writer, b"X-Slow: a");
    // Half an HTTP/2 preface, then nothing.
    let mut half_preface = connect(&server).await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    // Complete headers, then a body one byte at a time.
    let slow_body = connect(&server).await;
    let (mut slow_body, mut writer) = slow_body.into_split();
    writer
        .write_all(
            format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER_KEY}\r\n\
                 content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    trickle(writer, b" ");
    // One request, then an idle keep-alive connection.
    let mut idle = connect(&server).await;
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 512];
    let n = idle.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    let idle_from = Instant::now();

    // Meanwhile, normal requests are served.
    for _ in 0..5 {
        normal_chat(&server).await;
    }

    let (nothing, closed) = until_closed(&mut silent, SLACK).await;
    assert!(nothing.is_empty(), "{nothing}");
    assert!(
        closed - opened >= Duration::from_millis(450),
        "{:?}",
        closed - opened
    );
    let (nothing, _) = until_closed(&mut half_preface, SLACK).await;
    assert!(nothing.is_empty(), "{nothing}");
    let (nothing, _) = until_closed(&mut slow_head, SLACK).await;
    assert!(nothing.is_empty(), "{nothing}");
    let (answer, closed) = until_closed(&mut slow_body, SLACK).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        closed - opened >= Duration::from_millis(850),
        "{:?}",
        closed - opened
    );
    let (nothing, closed) = until_closed(&mut idle, SLACK).await;
    assert!(nothing.is_empty(), "{nothing}");
    assert!(
        closed - idle_from >= Duration::from_millis(650),
        "{:?}",
        closed - idle_from
    );

    normal_chat(&server).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_however_long_its_answer_takes() {
    let upstream = FakeUpstream::start().await;
    // Longer than the idle timeout before the first byte: first a stream, then a JSON answer.
    let delay = Duration::from_millis(1_200);
    let chunks = openai::text_chunks("up-model", &["slow", " answer"], Some((3, 2)));
    upstream.push(Reply::sse(&chunks).first_byte_delay(delay));
    let whole = openai::completion("up-model", "slow answer", 3, 2);
    upstream.push(Reply::json(200, whole).first_byte_delay(delay));
    let server = start(yaml_config(
        &format!(
            r#"
server:
  header_read_timeout_ms: 300
  idle_timeout_ms: 300
providers:
  - {{ name: up, kind: openai, api_base: "{up}/v1", api_key: sk-up-0000 }}
models:
  - {{ name: slow, provider: up, upstream_model: up-model, free: true }}
"#,
            up = upstream.url()
        ),
        &empty_env(),
    ))
    .await;
    let client = client();
    for stream in [true, false] {
        let response = client
            .post(format!("{}/v1/chat/completions", server.url()))
            .bearer_auth(MASTER_KEY)
            .json(&json!({"model": "slow", "stream": stream,
                          "messages": [{"role": "user", "content": "take your time"}]}))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "stream: {stream}: {text}");
        assert!(text.contains("slow"), "{text}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_over_the_limit_get_503_until_others_close() {
    let server = server_with("  header_read_timeout_ms: 1000\n  max_connections: 4\n").await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&server).await);
    }
    // Give the server a moment to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut over = connect(&server).await;
    over.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = until_closed(&mut over, SLACK).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");

    // The silent connections are closed after the header timeout, and room comes back.
    for stream in &mut held {
        until_closed(stream, SLACK).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    normal_chat(&server).await;
    let scrape = get(&server, "/metrics").await.text().await.unwrap();
    let refused = scrape
        .lines()
        .find(|l| l.starts_with("llmgate_connections_refused_total"))
        .unwrap_or_else(|| panic!("no refused counter in {scrape}"));
    let count: f64 = refused.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 1.0, "{refused}");
    server.shutdown().await.unwrap();
}
