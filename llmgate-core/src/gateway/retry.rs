//! Calling the planned attempts: failover down the chain, retry rounds with backoff, and the
//! bookkeeping each call leaves in the deployment's state.
//!
//! A round walks the planned attempts in order, calling each one that is available (not
//! cooling down, not at its rpm/tpm limit); a retryable failure moves straight on to the next.
//! When a round ends without an answer and `num_retries` allows, the next round starts after a
//! jittered exponential backoff — or, when every attempt is unavailable for longer, as soon as
//! the first comes back, as long as that is within `max_wait` (`routing.max_retry_wait_ms`).
//! A longer pause is never slept through: the request ends with the upstream's error and its
//! Retry-After. A non-retryable failure ends the request at once. No request makes more than
//! `max_attempts` calls.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use futures::Stream;

use super::attempts::{AttemptFailure, AttemptRecord};
use super::inner::Gateway;
use super::plan::Attempt;
use crate::chat::{ChatChunk, ChatRequest};
use crate::error::{Error, ErrorKind, Result};
use crate::health::Ticket;
use crate::limits::Admission;
use crate::provider::ChunkStream;
use crate::trace::{self, Answered};

/// A successful call: its value, which attempt made it and how many calls it took.
pub(super) struct Tried<T> {
    pub value: T,
    pub index: usize,
    pub calls: u32,
    /// Every call made, this one last.
    pub log: Vec<AttemptRecord>,
    pub ticket: Ticket,
    /// Time spent in upstream calls and in backoff between rounds.
    pub upstream: Duration,
}

impl Gateway {
    /// Call the attempts until one answers, under the retry rules above. Each call made is
    /// pushed on `log`; a success takes the log with it.
    pub(super) async fn call_with_retries<T: Answered>(
        &self,
        attempts: &[Attempt],
        request: &mut ChatRequest,
        prompt_tokens: u64,
        seed: u64,
        log: &mut Vec<AttemptRecord>,
        mut call: impl AsyncFnMut(&Attempt, &ChatRequest) -> Result<T>,
    ) -> Result<Tried<T>> {
        let inner = &self.inner;
        let states = &inner.states;
        let mut calls = 0u32;
        let mut upstream = Duration::ZERO;
        let mut last_error: Option<Error> = None;
        let mut waited_too_long = false;
        let ready_in = |now: u64| {
            attempts
                .iter()
                .map(|a| states.wait_hint(a.slot, now, prompt_tokens))
                .min()
                .unwrap_or(0)
        };
        'rounds: for round in 0..=inner.num_retries {
            if round > 0 {
                if calls >= inner.max_attempts {
                    break;
                }
                let ready_in = Duration::from_nanos(ready_in(states.now()));
                let Some(wait) = inner.backoff.wait(round, seed, ready_in) else {
                    // The upstreams asked for a longer pause than a client is held for.
                    waited_too_long = true;
                    break;
                };
                tracing::debug!(round, ?wait, "retrying after a backoff");
                inner.metrics.retries.increment(1);
                let waited = Instant::now();
                tokio::time::sleep(wait).await;
                upstream += waited.elapsed();
            }
            for (index, attempt) in attempts.iter().enumerate() {
                if calls >= inner.max_attempts {
                    break 'rounds;
                }
                let Some(mut ticket) = self.admit(attempt, prompt_tokens).await else {
                    continue;
                };
                calls += 1;
                attempt.apply_to(request);
                let meters = inner
                    .metrics
                    .deployment(attempt.slot, &attempt.deployment.provider);
                let called = Instant::now();
                let answer = trace::attempt(&attempt.deployment, call(attempt, request)).await;
                let took = called.elapsed();
                upstream += took;
                meters.upstream_call(took, answer.is_ok());
                let mut record = AttemptRecord {
                    deployment: attempt.deployment.clone(),
                    failure: None,
                    latency: took,
                };
                match answer {
                    Ok(value) => {
                        log.push(record);
                        return Ok(Tried {
                            value,
                            index,
                            calls,
                            log: std::mem::take(log),
                            ticket,
                            upstream,
                        });
                    }
                    Err(error) => {
                        let error = attempt.classify(error);
                        record.failure = Some(AttemptFailure::of(&error));
                        log.push(record);
                        let cooldown = ticket.failed(&error);
                        tracing::debug!(
                            provider = %attempt.deployment.provider,
                            model = %attempt.deployment.name,
                            %error,
                            ?cooldown,
                            "attempt failed"
                        );
                        if !error.is_retryable() {
                            return Err(error);
                        }
                        last_error = Some(error);
                    }
                }
            }
        }
        Err(gave_up(last_error, ready_in(states.now()), waited_too_long))
    }

    /// Claim a deployment for one call: its health (cooldown, half-open probe, tpm) and then
    /// its rpm quota. `None` when it cannot be called now.
    async fn admit(&self, attempt: &Attempt, prompt_tokens: u64) -> Option<Ticket> {
        let states = &self.inner.states;
        let ticket = states.admit(attempt.slot, prompt_tokens).ok()?;
        if let Some((key, quota)) = states.rpm(attempt.slot) {
            match self.inner.limiter.acquire(key, quota, 1).await {
                Ok(Admission::Admitted) => {}
                Ok(Admission::Limited { retry_after }) => {
                    self.inner.metrics.deployment_rate_limited.increment(1);
                    states.mark_limited(attempt.slot, retry_after);
                    return None;
                }
                Err(error) => self.fail_open(&error),
            }
        }
        Some(ticket)
    }
}

/// The error a request ends with once its attempts are spent. When it ended because an
/// upstream rate limit asked for a longer pause than the gateway waits, the client gets that
/// 429 and its Retry-After, so that it can wait itself.
fn gave_up(last_error: Option<Error>, ready_in: u64, waited_too_long: bool) -> Error {
    let hint = (ready_in > 0).then(|| Duration::from_nanos(ready_in));
    let last_error = last_error.map(|error| match error.retry_after() {
        Some(after) if waited_too_long && error.upstream_status() == Some(429) => {
            Error::new(ErrorKind::RateLimited, error.message())
                .with_code("upstream_rate_limited")
                .with_retry_after(after)
        }
        _ => error,
    });
    match (last_error, hint) {
        (Some(error), Some(hint)) if error.retry_after().is_none() => error.with_retry_after(hint),
        (Some(error), _) => error,
        (None, hint) => {
            let error = Error::new(
                ErrorKind::UpstreamUnavailable,
                "Every deployment that could serve this request is cooling down after failures \
                 or at its rate limit; try again shortly.",
            )
            .with_code("no_deployment_available");
            match hint {
                Some(hint) => error.with_retry_after(hint),
                None => error,
            }
        }
    }
}

/// A stream that reports back to its deployment's state: tokens spent, a failure mid-way, and
/// the end of the call when it finishes or is dropped.
pub(super) struct Tracked {
    inner: ChunkStream,
    ticket: Option<Ticket>,
}

impl Tracked {
    pub fn new(inner: ChunkStream, ticket: Ticket) -> Self {
        Self {
            inner,
            ticket: Some(ticket),
        }
    }
}

impl Stream for Tracked {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let (Some(usage), Some(ticket)) = (&chunk.usage, &self.ticket) {
                    ticket.spent_tokens(usage.prompt_tokens + usage.completion_tokens);
                }
            }
            Some(Err(error)) => {
                if let Some(mut ticket) = self.ticket.take() {
                    ticket.failed(error);
                }
            }
            None => self.ticket = None,
        }
        Poll::Ready(item)
    }
}
