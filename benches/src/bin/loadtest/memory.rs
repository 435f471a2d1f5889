//! What the memory part of a SQLite run measures: RSS over a soak of many requests, after
//! idling, and with many slow streams open at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use llmgate_benches::load::client::{Connection, Target};
use llmgate_benches::load::gateway::{FREE_MODEL, Gateway, SLOW_MODEL, chat_body};
use llmgate_benches::load::runner::{Load, measure};
use llmgate_benches::load::stats::{Percentiles, nanos};
use llmgate_benches::load::upstream::{OpenStreams, UpstreamSettings};

use crate::options::{Options, Plan};

#[derive(Debug, Default)]
pub(crate) struct MemoryResult {
    /// (requests so far, RSS KiB, req/s of that step)
    pub(crate) soak: Vec<(u64, u64, f64)>,
    pub(crate) after_idle_kib: u64,
    pub(crate) streams: Option<StreamsResult>,
}

#[derive(Debug, Default)]
pub(crate) struct StreamsResult {
    pub(crate) wanted: usize,
    pub(crate) completed: usize,
    pub(crate) failed: usize,
    pub(crate) first_error: Option<String>,
    pub(crate) peak_open_upstream: usize,
    pub(crate) peak_rss_kib: u64,
    pub(crate) after_kib: u64,
    pub(crate) expected_events: u32,
    pub(crate) short: usize,
    pub(crate) longest_gap: Percentiles,
    pub(crate) stalls: usize,
    pub(crate) gap: Duration,
    pub(crate) took: Duration,
}

/// RSS over a soak of many requests, after idling, and with many slow streams open at once.
pub(crate) async fn memory(
    options: &Options,
    plan: &Plan,
    gateway: &Gateway,
    free: &Target,
    slow_streams: Option<&OpenStreams>,
    settings: &UpstreamSettings,
) -> MemoryResult {
    let mut result = MemoryResult::default();
    let steps = 10;
    let step = (plan.soak_requests / steps).max(1);
    let body = chat_body(FREE_MODEL, false);
    eprintln!("[sqlite] memory soak: {} requests", step * steps);
    for i in 1..=steps {
        let measured = measure(
            free,
            &body,
            Load {
                concurrency: 64,
                warmup: Duration::ZERO,
                duration: Duration::from_secs(600),
                max_requests: step,
            },
        )
        .await;
        result.soak.push((
            step * i,
            gateway.rss_kib().unwrap_or(0),
            measured.throughput,
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    result.after_idle_kib = gateway.rss_kib().unwrap_or(0);
    // The open-streams test counts the streams open at the upstream's end: an upstream in a
    // process of its own cannot tell.
    if let (true, Some(slow_streams)) = (options.open_streams > 0, slow_streams) {
        eprintln!("[sqlite] {} open streams", options.open_streams);
        result.streams =
            Some(open_streams(options.open_streams, gateway, free, slow_streams, settings).await);
    }
    result
}

pub(crate) async fn open_streams(
    wanted: usize,
    gateway: &Gateway,
    free: &Target,
    slow_streams: &OpenStreams,
    settings: &UpstreamSettings,
) -> StreamsResult {
    slow_streams.reset_peak();
    let body = chat_body(SLOW_MODEL, true);
    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let pid = gateway.pid();
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        let peak = peak.clone();
        async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = llmgate_benches::load::gateway::rss_kib(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let started = Instant::now();
    let tasks: Vec<_> = (0..wanted)
        .map(|_| {
            let target = free.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let mut connection = Connection::open(target.addr).await?;
                connection
                    .post(target.path, target.keys.pick(0), &body)
                    .await
            })
        })
        .collect();
    let expected_events = u32::try_from(settings.slow_chunks + 4).unwrap_or(u32::MAX);
    let mut result = StreamsResult {
        wanted,
        expected_events,
        gap: settings.slow_gap,
        ..StreamsResult::default()
    };
    let mut gaps = Vec::with_capacity(wanted);
    for task in tasks {
        match task.await {
            Ok(Ok(timing)) => {
                result.completed += 1;
                if timing.events < expected_events {
                    result.short += 1;
                }
                gaps.push(nanos(timing.longest_gap));
                // A stall: a pause well beyond the upstream's own.
                if timing.longest_gap > settings.slow_gap + Duration::from_secs(1) {
                    result.stalls += 1;
                }
            }
            Ok(Err(failure)) => {
                result.failed += 1;
                result
                    .first_error
                    .get_or_insert_with(|| failure.to_string());
            }
            Err(error) => {
                result.failed += 1;
                result.first_error.get_or_insert_with(|| error.to_string());
            }
        }
    }
    result.took = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    result.peak_rss_kib = peak.load(Ordering::Relaxed);
    result.peak_open_upstream = slow_streams.peak();
    result.longest_gap = Percentiles::of(&mut gaps);
    tokio::time::sleep(Duration::from_secs(2)).await;
    result.after_kib = gateway.rss_kib().unwrap_or(0);
    result
}
