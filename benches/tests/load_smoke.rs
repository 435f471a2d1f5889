//! The load harness's parts against each other: the load generator driving the fake upstream,
//! JSON and streamed, with a few requests (no timing assertions).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use bytes::Bytes;
use llmgate_benches::load::client::{Keys, Target};
use llmgate_benches::load::outside::{OutsideClient, OutsideUpstream};
use llmgate_benches::load::runner::{Load, measure, measure_across};
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

fn load(max_requests: u64) -> Load {
    Load {
        concurrency: 2,
        warmup: Duration::ZERO,
        duration: Duration::from_secs(30),
        max_requests,
    }
}

#[tokio::test]
async fn load_generator_counts_answers_and_stream_events() {
    let settings = UpstreamSettings {
        stream_chunks: 5,
        ..UpstreamSettings::default()
    };
    let upstream = FakeUpstream::start(&settings).unwrap();
    let target = Target {
        addr: upstream.addr(),
        path: "/v1/chat/completions",
        keys: Keys::none(),
    };

    let json = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
    let measured = measure(&target, &json, load(40)).await;
    assert_eq!(
        (measured.ok, measured.errors),
        (40, 0),
        "{:?}",
        measured.first_error
    );
    assert_eq!(measured.total.count, 40);
    assert!(measured.total.p50 <= measured.total.p99);
    assert_eq!(measured.per_chunk.count, 0, "JSON has no chunks");

    let stream = Bytes::from_static(br#"{"model":"m","messages":[],"stream":true}"#);
    let measured = measure(&target, &stream, load(20)).await;
    assert_eq!(
        (measured.ok, measured.errors),
        (20, 0),
        "{:?}",
        measured.first_error
    );
    // role + 5 content + finish + usage + [DONE]
    assert_eq!(measured.min_events, 9);
    assert!(measured.first_byte.p50 <= measured.total.p50);
}

#[tokio::test]
async fn bare_proxy_passes_answers_through() {
    let upstream = FakeUpstream::start(&UpstreamSettings::default()).unwrap();
    let proxy = llmgate_benches::load::proxy::BareProxy::start(upstream.addr(), 1).unwrap();
    let target = Target {
        addr: proxy.addr(),
        path: "/v1/chat/completions",
        keys: Keys::none(),
    };
    let stream = Bytes::from_static(br#"{"model":"m","messages":[],"stream":true}"#);
    let measured = measure(&target, &stream, load(10)).await;
    assert_eq!(
        (measured.ok, measured.errors),
        (10, 0),
        "{:?}",
        measured.first_error
    );
    assert_eq!(measured.min_events, 20 + 4);
}

#[tokio::test]
async fn refused_connections_are_counted_as_errors() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let target = Target {
        addr,
        path: "/v1/chat/completions",
        keys: Keys::none(),
    };
    let body = Bytes::from_static(b"{}");
    let measured = measure(
        &target,
        &body,
        Load {
            concurrency: 1,
            warmup: Duration::ZERO,
            duration: Duration::from_millis(50),
            max_requests: 10,
        },
    )
    .await;
    assert_eq!(measured.ok, 0);
    assert!(measured.errors > 0);
    assert!(measured.first_error.is_some());
}

#[tokio::test]
async fn load_is_split_over_several_targets() {
    let settings = UpstreamSettings::default();
    let (a, b) = (
        FakeUpstream::start(&settings).unwrap(),
        FakeUpstream::start(&settings).unwrap(),
    );
    let keys = Keys::rotating(vec!["Bearer k1".into(), "Bearer k2".into()]);
    let targets: Vec<Target> = [a.addr(), b.addr()]
        .into_iter()
        .map(|addr| Target {
            addr,
            path: "/v1/chat/completions",
            keys: keys.clone(),
        })
        .collect();
    let json = Bytes::from_static(br#"{"model":"m","messages":[]}"#);
    let mut split = load(30);
    split.concurrency = 4;
    let measured = measure_across(&targets, &json, split).await;
    assert_eq!(
        (measured.ok, measured.errors),
        (30, 0),
        "{:?}",
        measured.first_error
    );
    assert_eq!(measured.timeline.iter().sum::<u64>(), 30);
}

/// `loadgen` in a process of its own: as the upstream, and as the generator the harness reads.
#[tokio::test]
async fn the_outside_generator_and_upstream_run_as_processes() {
    let loadgen = std::path::PathBuf::from(env!("CARGO_BIN_EXE_loadgen"));
    let upstream = OutsideUpstream::start(&loadgen, 3).unwrap();
    let workdir = std::env::temp_dir().join(format!("llmgate-load-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&workdir).unwrap();
    let outside = OutsideClient {
        binary: loadgen,
        workdir: workdir.clone(),
    };
    let target = Target {
        addr: upstream.addr(),
        path: "/v1/chat/completions",
        keys: Keys::one("Bearer k".into()),
    };
    let stream = Bytes::from_static(br#"{"model":"m","messages":[],"stream":true}"#);
    let measured = outside.measure(&[target], &stream, load(25)).await.unwrap();
    let _ = std::fs::remove_dir_all(&workdir);
    assert_eq!(
        (measured.ok, measured.errors),
        (25, 0),
        "{:?}",
        measured.first_error
    );
    // role + 3 content + finish + usage + [DONE]
    assert_eq!(measured.min_events, 7);
}
