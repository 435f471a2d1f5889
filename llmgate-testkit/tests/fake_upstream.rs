#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The fake upstream over real loopback HTTP, spoken to by hand so the bytes are visible.

use std::time::Duration;

use llmgate_testkit::{Chunking, FakeUpstream, Reply, openai};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Send one HTTP/1.1 request with `connection: close` and read everything until the server
/// closes (or resets) the connection.
async fn raw_exchange(upstream: &FakeUpstream, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(upstream.addr()).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nX-Test: Yes\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn records_requests_and_plays_replies_in_order() {
    let upstream = FakeUpstream::start().await;
    assert!(upstream.url().starts_with("http://127.0.0.1:"));
    assert!(!upstream.url().ends_with('/'));
    upstream.push(Reply::json(200, json!({"n": 1})));
    upstream.push(Reply::status(204).header("x-second", "yes"));

    let first = raw_exchange(&upstream, "/v1/chat/completions?a=b", r#"{"model":"m"}"#).await;
    let second = raw_exchange(&upstream, "/two", "").await;

    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.contains("{\"n\":1}"), "{first}");
    assert!(second.starts_with("HTTP/1.1 204"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("x-second: yes"),
        "{second}"
    );

    let requests = upstream.requests();
    assert_eq!(upstream.request_count(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].query.as_deref(), Some("a=b"));
    assert_eq!(requests[0].json(), json!({"model": "m"}));
    assert_eq!(requests[0].header("x-test").as_deref(), Some("Yes"));
    assert_eq!(requests[0].header("X-TEST").as_deref(), Some("Yes"));
    assert_eq!(requests[1].path, "/two");
}

#[tokio::test]
async fn empty_queue_answers_with_the_default() {
    let upstream = FakeUpstream::start().await;
    let answer = raw_exchange(&upstream, "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
    assert!(answer.contains("no scripted reply"), "{answer}");

    upstream.set_default(Reply::status(418));
    let answer = raw_exchange(&upstream, "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 418"), "{answer}");
}

#[tokio::test]
async fn a_responder_answers_each_request_from_its_body_after_the_queue() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::status(202));
    upstream.respond_with(|request| {
        let status = request.json()["status"].as_u64().unwrap_or(500);
        Reply::status(u16::try_from(status).unwrap_or(500))
    });

    let queued = raw_exchange(&upstream, "/", r#"{"status":201}"#).await;
    let picked = raw_exchange(&upstream, "/", r#"{"status":201}"#).await;
    let other = raw_exchange(&upstream, "/", r#"{"status":429}"#).await;

    assert!(queued.starts_with("HTTP/1.1 202"), "{queued}");
    assert!(picked.starts_with("HTTP/1.1 201"), "{picked}");
    assert!(other.starts_with("HTTP/1.1 429"), "{other}");
    assert_eq!(upstream.request_count(), 3);
}

#[tokio::test]
async fn chunked_reply_sends_each_frame_as_its_own_http_chunk() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::sse_raw("data: é\r\n\r\n").chunked(Chunking::SplitCrLf));
    let answer = raw_exchange(&upstream, "/", "").await;
    // HTTP/1.1 chunked encoding: size line, data, CRLF; the boundaries survive on the wire.
    assert!(answer.contains("\r\n9\r\ndata: \u{e9}\r\r\n"), "{answer:?}");
    assert!(answer.contains("\r\n2\r\n\n\r\r\n"), "{answer:?}");
    assert!(answer.ends_with("0\r\n\r\n"), "{answer:?}");
}

#[tokio::test]
async fn cut_after_aborts_without_the_final_chunk() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::sse(&openai::text_chunks("m", &["hello"], None)).cut_after(20));
    let answer = raw_exchange(&upstream, "/", "").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body_start = answer.find("\r\n\r\n").unwrap() + 4;
    let body = &answer[body_start..];
    assert!(body.contains("data: {\"choices\""), "{body:?}");
    assert!(!body.contains("[DONE]"), "{body:?}");
    assert!(!body.ends_with("0\r\n\r\n"), "{body:?}");
}

#[tokio::test]
async fn first_byte_delay_holds_back_the_head() {
    let upstream = FakeUpstream::start().await;
    upstream.push(Reply::status(200).first_byte_delay(Duration::from_secs(30)));
    let mut stream = TcpStream::connect(upstream.addr()).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(read.is_err(), "the head arrived before the delay");
    // The request was recorded before the reply started.
    assert_eq!(upstream.request_count(), 1);
}

#[tokio::test]
async fn dropping_the_fake_stops_the_server() {
    let upstream = FakeUpstream::start().await;
    let addr = upstream.addr();
    drop(upstream);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(TcpStream::connect(addr).await.is_err());
}

#[test]
fn openai_fixtures_follow_the_documented_shape() {
    let chunks = openai::text_chunks("m", &["a", "b"], Some((3, 2)));
    assert_eq!(chunks.len(), 5);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "a");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[3]["usage"].is_null());
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["total_tokens"], 5);

    let without_usage = openai::text_chunks("m", &["a"], None);
    assert_eq!(without_usage.len(), 3);
    assert!(without_usage[0].get("usage").is_none());

    let error = openai::error("bad", "invalid_request_error", Some("x"));
    assert_eq!(error["error"]["message"], "bad");
    assert_eq!(error["error"]["code"], "x");
    assert_eq!(
        openai::completion("m", "hi", 1, 2)["usage"]["total_tokens"],
        3
    );
}
