//! What runs against one backend: the direct / bare-proxy / gateway cells of each mode and
//! concurrency, the memory soak and the open-streams test; and what they produce.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use llmgate_benches::load::client::{Connection, Target};
use llmgate_benches::load::gateway::{
    FREE_MODEL, Gateway, Launch, PAID_MODEL, SLOW_MODEL, cpu_nanos,
};
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::report::{Row, json_table, stream_table};
use llmgate_benches::load::runner::{Load, measure};
use llmgate_benches::load::stats::{Percentiles, nanos};
use llmgate_benches::load::upstream::{FakeUpstream, UpstreamSettings};

use crate::options::{Backend, Mode, Options, Plan};

/// What one backend's run produced.
#[derive(Debug, Default)]
pub(crate) struct BackendResult {
    pub(crate) label: &'static str,
    pub(crate) startup: Duration,
    pub(crate) idle_rss_kib: Option<u64>,
    pub(crate) json: Vec<Row>,
    pub(crate) stream: Vec<Row>,
    pub(crate) memory: Option<MemoryResult>,
}

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

pub(crate) async fn run_backend(
    options: &Options,
    plan: &Plan,
    launch: &Launch,
    upstream: &FakeUpstream,
    floor: Option<&BareProxy>,
    settings: &UpstreamSettings,
    backend: Backend,
) -> Result<BackendResult, String> {
    let label = launch.storage.label();
    eprintln!("[{label}] starting the gateway");
    let gateway = Gateway::start(launch)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut result = BackendResult {
        label,
        startup: gateway.startup,
        idle_rss_kib: gateway.rss_kib(),
        ..BackendResult::default()
    };
    let user = format!("bench-{}-{label}", std::process::id()).replace('+', "-");
    let user_key = gateway.paid_user(&user).await?;

    let direct = Target {
        addr: upstream.addr(),
        path: "/v1/chat/completions",
        authorization: None,
    };
    let bare = floor.map(|proxy| Target {
        addr: proxy.addr(),
        path: "/v1/chat/completions",
        authorization: None,
    });
    let free = Target {
        addr: gateway.addr(),
        path: "/v1/chat/completions",
        authorization: Some(gateway.master_authorization()),
    };
    let paid = Target {
        authorization: Some(format!("Bearer {user_key}")),
        ..free.clone()
    };
    for &mode in &options.modes {
        let stream = mode == Mode::Stream;
        let free_body = chat_body(FREE_MODEL, stream);
        let paid_body = chat_body(PAID_MODEL, stream);
        let mut rows = Vec::new();
        for &concurrency in &options.concurrency {
            let load = plan.load(concurrency);
            eprintln!("[{label}] {mode:?} c={concurrency}");
            let mut routes = vec![("direct", &direct, &free_body)];
            if let Some(bare) = &bare {
                routes.push((BARE_ROUTE, bare, &free_body));
            }
            routes.push(("free (master key)", &free, &free_body));
            routes.push(("paid (user key)", &paid, &paid_body));
            for (route, target, body) in routes {
                let through_gateway = route != "direct" && route != BARE_ROUTE;
                let cpu_before = cpu_nanos(gateway.pid());
                let measured = measure(target, body, load).await;
                let cpu_per_request = match (cpu_before, cpu_nanos(gateway.pid())) {
                    (Some(before), Some(after)) if through_gateway && measured.answered > 0 => {
                        Some(after.saturating_sub(before) / measured.answered)
                    }
                    _ => None,
                };
                rows.push(Row {
                    concurrency,
                    route: route.to_owned(),
                    measured,
                    cpu_per_request,
                });
            }
        }
        let title = match mode {
            Mode::Json => "JSON",
            Mode::Stream => "streaming",
        };
        println!("## {label}: {title}\n");
        match mode {
            Mode::Json => {
                println!("{}", json_table(&rows));
                result.json = rows;
            }
            Mode::Stream => {
                println!("{}", stream_table(&rows));
                result.stream = rows;
            }
        }
    }
    if backend == Backend::Sqlite && !options.skip_memory {
        result.memory = Some(memory(options, plan, &gateway, &free, upstream, settings).await);
    }
    let status = gateway.stop();
    if status.is_some_and(|s| !s.success()) {
        eprintln!("[{label}] warning: the gateway exited with {status:?}");
    }
    Ok(result)
}

/// The bare proxy's rows: the floor of one extra hop on this machine.
pub(crate) const BARE_ROUTE: &str = "bare proxy (floor)";

pub(crate) fn chat_body(model: &str, stream: bool) -> Bytes {
    let stream = if stream { r#","stream":true"# } else { "" };
    Bytes::from(format!(
        r#"{{"model":"{model}","messages":[{{"role":"user","content":"Say hello to the benchmark, briefly."}}],"max_tokens":64{stream}}}"#
    ))
}

/// RSS over a soak of many requests, after idling, and with many slow streams open at once.
pub(crate) async fn memory(
    options: &Options,
    plan: &Plan,
    gateway: &Gateway,
    free: &Target,
    upstream: &FakeUpstream,
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
    if options.open_streams > 0 {
        eprintln!("[sqlite] {} open streams", options.open_streams);
        result.streams =
            Some(open_streams(options.open_streams, gateway, free, upstream, settings).await);
    }
    result
}

pub(crate) async fn open_streams(
    wanted: usize,
    gateway: &Gateway,
    free: &Target,
    upstream: &FakeUpstream,
    settings: &UpstreamSettings,
) -> StreamsResult {
    upstream.slow_streams().reset_peak();
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
                connection.post(&target, &body).await
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
    result.peak_open_upstream = upstream.slow_streams().peak();
    result.longest_gap = Percentiles::of(&mut gaps);
    tokio::time::sleep(Duration::from_secs(2)).await;
    result.after_kib = gateway.rss_kib().unwrap_or(0);
    result
}
