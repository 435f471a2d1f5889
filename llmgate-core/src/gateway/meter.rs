//! Streams: meter what the upstream produced, and settle the hold exactly once — at the end,
//! on a mid-stream failure, or when the client goes away.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};

use super::answer::RouteInfo;
use super::owed::{Owed, detached};
use super::settle::settle_or_record;
use super::writer::LedgerWriter;
use crate::chat::{ChatChunk, ChatResponse, Usage};
use crate::credits::{CreditStore, Hold, LedgerWrite, UsageRecord};
use crate::error::Result;
use crate::metrics::DeploymentMeters;
use crate::pricing::{CostBreakdown, PriceTerms};
use crate::provider::ChunkStream;
use crate::tokens;

/// Usage for a whole response whose upstream reported none.
pub(super) fn estimate_response_usage(response: &ChatResponse, prompt_estimate: u64) -> Usage {
    let produced: usize = response
        .choices
        .iter()
        .map(|c| {
            c.message.text_content().len()
                + c.message
                    .tool_calls
                    .iter()
                    .flatten()
                    .map(|t| t.function.name.len() + t.function.arguments.len())
                    .sum::<usize>()
        })
        .sum();
    let mut usage = Usage::new(prompt_estimate, tokens::estimate_text_tokens(produced));
    usage.estimated = true;
    usage
}

/// Everything needed to settle a stream's hold, whichever way the stream ends.
pub(super) struct Settler {
    pub credits: Arc<dyn CreditStore>,
    /// Write-behind, when enabled: the settle is queued instead of awaited.
    pub writer: Option<Arc<LedgerWriter>>,
    pub hold: Option<Hold>,
    /// The request's ledger work; dropped once the settle has been written.
    pub owed: Option<Owed>,
    pub meters: Arc<DeploymentMeters>,
    /// The usage record with identity filled in; tokens and cost are set at the end.
    pub record: UsageRecord,
    pub terms: Option<PriceTerms>,
    pub prompt_estimate: u64,
}

/// What the stream produced so far.
#[derive(Debug, Default)]
struct Meter {
    usage: Option<Usage>,
    produced_bytes: usize,
    id: String,
    model: String,
    created: u64,
}

impl Meter {
    /// Note a chunk: remember its usage (moved out of it) and count what it produced.
    fn observe(&mut self, chunk: &mut ChatChunk) {
        if let Some(usage) = chunk.usage.take() {
            self.usage = Some(usage);
            // The usage is sent last, with the cost: this chunk goes on without it.
            chunk.wire.clear();
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            self.produced_bytes += delta.content.as_ref().map_or(0, String::len);
            self.produced_bytes += delta.refusal.as_ref().map_or(0, String::len);
            for call in delta.tool_calls.iter().flatten() {
                if let Some(function) = &call.function {
                    self.produced_bytes += function.name.as_ref().map_or(0, String::len);
                    self.produced_bytes += function.arguments.as_ref().map_or(0, String::len);
                }
            }
            if let Some(serde_json::Value::String(reasoning)) = delta.extra.get("reasoning_content")
            {
                self.produced_bytes += reasoning.len();
            }
        }
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
            self.created = chunk.created;
        }
        if self.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
    }

    /// The usage to bill: the upstream's, or an estimate from what was produced.
    fn billable_usage(&self, prompt_estimate: u64) -> Usage {
        match &self.usage {
            Some(usage) => usage.clone(),
            None => {
                let mut usage = Usage::new(
                    prompt_estimate,
                    tokens::estimate_text_tokens(self.produced_bytes),
                );
                usage.estimated = true;
                usage
            }
        }
    }
}

/// Settles on drop when the stream did not get to settle itself (the client went away).
struct SettleGuard {
    settler: Option<Settler>,
    meter: Meter,
}

impl SettleGuard {
    /// Settle now; returns the usage billed and its cost (whose `cost_micros` is the charge).
    /// The write runs on a task of its own, so a client going away (or a connection cut at
    /// shutdown) cannot cut it in half.
    async fn settle(&mut self) -> Option<(Usage, CostBreakdown)> {
        let settler = self.settler.take()?;
        let usage = self.meter.billable_usage(settler.prompt_estimate);
        let (_, mut cost) = billed_record(&settler, &usage);
        cost.cost_micros = if settler.writer.is_some() {
            // Queuing cannot be cut in half by the client going away.
            settle_stream(settler, usage.clone()).await
        } else {
            detached(settle_stream(settler, usage.clone()))
                .await
                .unwrap_or(0)
        };
        Some((usage, cost))
    }
}

/// Write a stream's charge (or usage) and count what it billed; returns the charge.
async fn settle_stream(settler: Settler, usage: Usage) -> i64 {
    let (record, breakdown) = billed_record(&settler, &usage);
    let cost = breakdown.cost_micros;
    if let Some(writer) = &settler.writer {
        settler
            .meters
            .billed(usage.prompt_tokens, usage.completion_tokens, cost);
        let write = match settler.hold {
            Some(hold) => LedgerWrite::Settle {
                hold,
                usage: record,
            },
            None => LedgerWrite::Usage(record),
        };
        writer.write(write, settler.owed).await;
        return cost;
    }
    let charged = match settle_or_record(&settler.credits, settler.hold.as_ref(), &record).await {
        Ok(charged) => charged,
        Err(error) => {
            // The hold stays open and is reclaimed at expiry; say so loudly.
            tracing::error!(%error, request_id = %record.request_id, "settling a stream failed");
            record.cost_micros
        }
    };
    settler
        .meters
        .billed(usage.prompt_tokens, usage.completion_tokens, charged);
    drop(settler.owed);
    charged
}

/// The usage record to write and the cost of each class; the charge is capped at the hold.
fn billed_record(settler: &Settler, usage: &Usage) -> (UsageRecord, CostBreakdown) {
    let classes = usage.classes();
    let mut cost = settler
        .terms
        .as_ref()
        .and_then(|t| t.breakdown(&classes).ok())
        .unwrap_or_else(|| CostBreakdown::free(&classes));
    if let Some(hold) = &settler.hold {
        cost.cost_micros = cost.cost_micros.min(hold.amount_micros);
    }
    let mut record = settler.record.clone();
    record.set_tokens(usage);
    record.cost_micros = cost.cost_micros;
    (record, cost)
}

impl Drop for SettleGuard {
    fn drop(&mut self) {
        let Some(settler) = self.settler.take() else {
            return;
        };
        let meter = std::mem::take(&mut self.meter);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(request_id = %settler.record.request_id, "stream dropped outside a runtime; its hold is left to expire");
            return;
        };
        runtime.spawn(async move {
            if meter.produced_bytes == 0 && meter.usage.is_none() {
                // Nothing reached the client: give the whole hold back.
                if let Some(hold) = settler.hold {
                    super::settle::release_hold(
                        settler.credits,
                        settler.writer,
                        hold,
                        settler.owed,
                    )
                    .await;
                }
                return;
            }
            let usage = meter.billable_usage(settler.prompt_estimate);
            settle_stream(settler, usage).await;
        });
    }
}

struct State {
    first: Option<ChatChunk>,
    upstream: ChunkStream,
    guard: SettleGuard,
    done: bool,
}

/// A metered stream of completion chunks. The last chunk of a good stream has no choices and
/// carries the usage and the cost: typed through [`ChatChunk::cost`], and as JSON in
/// `"llmgate": {"cost_micros": N, "cost_breakdown": {…}}`. A mid-stream
/// failure ends it with an `Err` item. Dropping it early settles what was produced in the
/// background.
pub struct CompletionStream {
    route: RouteInfo,
    inner: ChunkStream,
}

impl std::fmt::Debug for CompletionStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionStream")
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl CompletionStream {
    pub(super) fn new(
        route: RouteInfo,
        first: ChatChunk,
        upstream: ChunkStream,
        settler: Settler,
    ) -> Self {
        let state = State {
            first: Some(first),
            upstream,
            guard: SettleGuard {
                settler: Some(settler),
                meter: Meter::default(),
            },
            done: false,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            loop {
                let next = match state.first.take() {
                    Some(chunk) => Some(Ok(chunk)),
                    None => state.upstream.next().await,
                };
                match next {
                    Some(Ok(mut chunk)) => {
                        let had_usage = chunk.usage.is_some();
                        state.guard.meter.observe(&mut chunk);
                        if had_usage && chunk.choices.is_empty() {
                            // The usage-only chunk is re-sent at the end with the cost.
                            continue;
                        }
                        return Some((Ok(chunk), state));
                    }
                    None => {
                        state.done = true;
                        let (usage, cost) = state.guard.settle().await?;
                        let meter = &state.guard.meter;
                        let mut last =
                            ChatChunk::empty(meter.id.clone(), meter.model.clone(), meter.created)
                                .with_usage(usage.with_class_details());
                        last.set_cost(cost);
                        return Some((Ok(last), state));
                    }
                    Some(Err(error)) => {
                        state.done = true;
                        state.guard.settle().await;
                        return Some((Err(error), state));
                    }
                }
            }
        });
        Self {
            route,
            inner: Box::pin(inner),
        }
    }

    /// How the request was routed.
    pub fn route(&self) -> &RouteInfo {
        &self.route
    }

    /// The same stream, with `look` shown every item as it passes (the last chunk carries the
    /// usage and the cost). `look` is dropped with the stream, when it ends or the client
    /// leaves, so it can also mark the end of the request.
    pub fn inspect(self, look: impl FnMut(&Result<ChatChunk>) + Send + 'static) -> Self {
        Self {
            route: self.route,
            inner: Box::pin(self.inner.inspect(look)),
        }
    }
}

impl Stream for CompletionStream {
    type Item = Result<ChatChunk>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::WireJson;

    /// A chunk the meter changes (it takes the usage away, to send it last with the cost)
    /// must not go out as the upstream's bytes, which still carry the usage.
    #[test]
    fn taking_the_usage_drops_the_upstream_bytes() {
        let mut meter = Meter::default();
        let mut plain = ChatChunk::empty("c", "m", 1);
        plain.wire = WireJson::new(&b"{}"[..]);
        meter.observe(&mut plain);
        assert!(plain.wire.get().is_some());

        let mut with_usage = ChatChunk::empty("c", "m", 1);
        with_usage.usage = Some(Usage::new(1, 2));
        with_usage.wire = WireJson::new(&b"{}"[..]);
        meter.observe(&mut with_usage);
        assert!(with_usage.wire.get().is_none());
        assert!(meter.usage.is_some());
    }
}
