//! The bounded load generator: a fixed number of keep-alive connections, each sending its next
//! request as soon as the last answer ended (closed loop), for a bounded time and at most a
//! bounded number of requests. A warm-up opens the connections and fills the pools first.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::client::{Connection, Failure, Target};
use super::stats::{Percentiles, nanos};

/// How long and how hard one measurement runs.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub concurrency: usize,
    /// Requests in this window are sent but not recorded.
    pub warmup: Duration,
    /// The measured window; it also ends after `max_requests`.
    pub duration: Duration,
    pub max_requests: u64,
}

/// The width of one step of [`Measured::timeline`].
pub const TIMELINE_STEP: Duration = Duration::from_millis(100);

/// What one measurement saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    /// Whole request, send to last byte.
    pub total: Percentiles,
    /// Send to first body byte.
    pub first_byte: Percentiles,
    /// Per request: (total − first byte) / (events − 1); empty for JSON.
    pub per_chunk: Percentiles,
    /// The longest pause between two frames of any one request.
    pub longest_gap: Percentiles,
    /// Events per good request (the smallest seen).
    pub min_events: u32,
    pub ok: u64,
    /// Good answers including the warm-up (for CPU time per request).
    pub answered: u64,
    pub errors: u64,
    /// A sample of what went wrong.
    pub first_error: Option<String>,
    /// Good requests per second over the measured window.
    pub throughput: f64,
    /// Good answers in each [`TIMELINE_STEP`] of the measured window, in order (a rate that
    /// falls as a run goes on shows up here).
    #[serde(default)]
    pub timeline: Vec<u64>,
}

#[derive(Default)]
struct Samples {
    total: Vec<u64>,
    first_byte: Vec<u64>,
    per_chunk: Vec<u64>,
    longest_gap: Vec<u64>,
    min_events: Option<u32>,
    errors: u64,
    answered: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
    timeline: Vec<u64>,
}

/// Run `load` against `target`, every request with `body`.
pub async fn measure(target: &Target, body: &Bytes, load: Load) -> Measured {
    measure_across(std::slice::from_ref(target), body, load).await
}

/// Run `load` spread over `targets` (client `i` sends to `targets[i mod len]`: the same
/// load split over several gateway replicas), every request with `body`.
pub async fn measure_across(targets: &[Target], body: &Bytes, load: Load) -> Measured {
    let start = Instant::now();
    let measure_from = start + load.warmup;
    let deadline = measure_from + load.duration;
    let started = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(load.concurrency);
    for index in 0..load.concurrency {
        let Some(target) = targets.get(index % targets.len().max(1)).cloned() else {
            break;
        };
        let body = body.clone();
        let started = started.clone();
        let client = Client {
            index: index as u64,
            clients: load.concurrency as u64,
        };
        workers.push(tokio::spawn(async move {
            worker(
                &target,
                &body,
                client,
                Window {
                    measure_from,
                    deadline,
                    max_requests: load.max_requests,
                },
                &started,
            )
            .await
        }));
    }
    let mut all = Samples::default();
    for worker in workers {
        let Ok(samples) = worker.await else {
            all.errors += 1;
            continue;
        };
        all.total.extend(samples.total);
        all.first_byte.extend(samples.first_byte);
        all.per_chunk.extend(samples.per_chunk);
        all.longest_gap.extend(samples.longest_gap);
        all.min_events = match (all.min_events, samples.min_events) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.errors += samples.errors;
        all.answered += samples.answered;
        if all.first_error.is_none() {
            all.first_error = samples.first_error;
        }
        all.last_done = all.last_done.max(samples.last_done);
        add_timeline(&mut all.timeline, &samples.timeline);
    }
    let window = all.last_done.map_or(Duration::ZERO, |done| {
        done.saturating_duration_since(measure_from)
    });
    let ok = all.total.len() as u64;
    // Answers that came after the window (sent within it) would make a short last step.
    all.timeline
        .truncate(load.duration.as_nanos().div_ceil(TIMELINE_STEP.as_nanos()) as usize);
    Measured {
        total: Percentiles::of(&mut all.total),
        first_byte: Percentiles::of(&mut all.first_byte),
        per_chunk: Percentiles::of(&mut all.per_chunk),
        longest_gap: Percentiles::of(&mut all.longest_gap),
        min_events: all.min_events.unwrap_or(0),
        ok,
        answered: all.answered,
        errors: all.errors,
        first_error: all.first_error,
        throughput: if window.is_zero() {
            0.0
        } else {
            ok as f64 / window.as_secs_f64()
        },
        timeline: all.timeline,
    }
}

/// Which of the concurrent clients a worker is: it uses key `index + k × clients` for its
/// `k`-th request, so the clients together go round the keys in turn.
#[derive(Debug, Clone, Copy)]
struct Client {
    index: u64,
    clients: u64,
}

/// When a worker records, and when it stops.
#[derive(Debug, Clone, Copy)]
struct Window {
    measure_from: Instant,
    deadline: Instant,
    max_requests: u64,
}

fn add_timeline(sum: &mut Vec<u64>, steps: &[u64]) {
    if sum.len() < steps.len() {
        sum.resize(steps.len(), 0);
    }
    for (total, step) in sum.iter_mut().zip(steps) {
        *total += step;
    }
}

/// The timeline step a moment falls in.
fn step_of(at: Instant, measure_from: Instant) -> usize {
    let since = at.saturating_duration_since(measure_from);
    (since.as_nanos() / TIMELINE_STEP.as_nanos()) as usize
}

async fn worker(
    target: &Target,
    body: &Bytes,
    client: Client,
    window: Window,
    started: &AtomicU64,
) -> Samples {
    let mut samples = Samples::default();
    let mut connection: Option<Connection> = None;
    let mut sent = 0u64;
    loop {
        let now = Instant::now();
        if now >= window.deadline {
            break;
        }
        let measuring = now >= window.measure_from;
        if measuring && started.fetch_add(1, Ordering::Relaxed) >= window.max_requests {
            break;
        }
        let open = match connection.as_mut() {
            Some(open) => open,
            None => match Connection::open(target.addr).await {
                Ok(open) => connection.insert(open),
                Err(failure) => {
                    note_error(&mut samples, &failure, measuring);
                    // Do not spin on a refused connect.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let key = target.keys.pick(client.index + sent * client.clients);
        sent += 1;
        let answer = open.post(target.path, key, body).await;
        if answer.is_ok() {
            samples.answered += 1;
        }
        match answer {
            Ok(timing) if measuring => {
                samples.total.push(nanos(timing.total));
                samples.first_byte.push(nanos(timing.first_byte));
                if timing.events > 1 {
                    let streamed = timing.total.saturating_sub(timing.first_byte);
                    samples
                        .per_chunk
                        .push(nanos(streamed) / u64::from(timing.events - 1));
                    samples.longest_gap.push(nanos(timing.longest_gap));
                }
                samples.min_events = Some(
                    samples
                        .min_events
                        .map_or(timing.events, |m| m.min(timing.events)),
                );
                let done = Instant::now();
                samples.last_done = Some(done);
                let step = step_of(done, window.measure_from);
                if samples.timeline.len() <= step {
                    samples.timeline.resize(step + 1, 0);
                }
                samples.timeline[step] += 1;
            }
            Ok(_) => {}
            Err(failure) => {
                if matches!(failure, Failure::Connection(_)) {
                    connection = None;
                }
                note_error(&mut samples, &failure, measuring);
            }
        }
    }
    samples
}

fn note_error(samples: &mut Samples, failure: &Failure, measuring: bool) {
    samples.errors += 1;
    if samples.first_error.is_none() {
        let phase = if measuring { "" } else { " (warm-up)" };
        samples.first_error = Some(format!("{failure}{phase}"));
    }
}
