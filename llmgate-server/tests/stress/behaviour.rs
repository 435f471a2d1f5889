//! What the fake upstream does with each request. The client picks a behaviour and writes it,
//! with the request's marker and the completion tokens to report, into the prompt; the fake
//! reads it back from the request it receives, so concurrent requests never take each other's
//! replies.

use std::time::Duration;

use llmgate_testkit::{Chunking, FakeUpstream, Recorded, Reply, openai};
use rand::Rng;

/// Prompt tokens every answer reports.
pub const PROMPT_TOKENS: u64 = 20;
/// The `max_tokens` of every request: the hold covers it, answers report fewer, so every
/// settle gives part of its hold back.
pub const MAX_TOKENS: u64 = 999;

/// The model whose only deployment answers as told.
pub const STEADY: &str = "steady";
/// The model whose deployment always fails (5xx, 429 or a stream cut before any output) and
/// falls back to [`STEADY`].
pub const FLAKY: &str = "flaky";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// A whole answer.
    Answer,
    /// The first deployment fails, the fallback answers.
    Fallback,
    /// 500 from the only deployment.
    ServerError,
    /// 429 from the only deployment.
    RateLimited,
    /// The answer is cut off after its first bytes.
    Cut,
    /// The answer starts later than the hold lives (only where holds expire within a run).
    Slow,
    /// A slow stream the client drops after its first chunk.
    Disconnect,
}

impl Behaviour {
    const ALL: [(Behaviour, &'static str); 7] = [
        (Behaviour::Answer, "answer"),
        (Behaviour::Fallback, "fallback"),
        (Behaviour::ServerError, "error500"),
        (Behaviour::RateLimited, "error429"),
        (Behaviour::Cut, "cut"),
        (Behaviour::Slow, "slow"),
        (Behaviour::Disconnect, "disconnect"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(b, _)| *b == self)
            .map_or("?", |(_, name)| name)
    }

    fn from_name(name: &str) -> Option<Behaviour> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(b, _)| *b)
    }

    /// A random behaviour, mostly answers; `Slow` only when `slow` is allowed.
    pub fn pick(rng: &mut impl Rng, slow: bool) -> Behaviour {
        match rng.random_range(0..100) {
            0..55 => Behaviour::Answer,
            55..70 => Behaviour::Fallback,
            70..76 => Behaviour::ServerError,
            76..80 => Behaviour::RateLimited,
            80..87 => Behaviour::Cut,
            87..92 if slow => Behaviour::Slow,
            87..92 => Behaviour::Answer,
            _ => Behaviour::Disconnect,
        }
    }

    /// The model a request with this behaviour asks for.
    pub fn model(self) -> &'static str {
        match self {
            Behaviour::Fallback => FLAKY,
            _ => STEADY,
        }
    }
}

/// What one request asks the fake to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Unique in the run; also the request's `x-request-id`.
    pub marker: String,
    pub behaviour: Behaviour,
    pub completion_tokens: u64,
}

impl Order {
    /// The prompt carrying this order.
    pub fn prompt(&self) -> String {
        format!(
            "[[{} {} {}]] Please answer briefly.",
            self.marker,
            self.behaviour.name(),
            self.completion_tokens
        )
    }

    /// The order in a prompt, if it carries one.
    pub fn parse(prompt: &str) -> Option<Order> {
        let start = prompt.find("[[")? + 2;
        let end = start + prompt[start..].find("]]")?;
        let mut fields = prompt[start..end].split_whitespace();
        Some(Order {
            marker: fields.next()?.to_owned(),
            behaviour: Behaviour::from_name(fields.next()?)?,
            completion_tokens: fields.next()?.parse().ok()?,
        })
    }

    /// The order a request the fake received carries.
    pub fn of(request: &Recorded) -> Option<Order> {
        let body = request.json();
        let messages = body["messages"].as_array()?;
        messages
            .iter()
            .filter_map(|m| m["content"].as_str())
            .find_map(Order::parse)
    }
}

/// Make `upstream` follow the orders in the prompts it receives. `slow` is how late a `Slow`
/// answer starts.
pub fn obey_orders(upstream: &FakeUpstream, slow: Duration) {
    upstream.respond_with(move |request| {
        let body = request.json();
        let stream = body["stream"].as_bool().unwrap_or(false);
        let Some(order) = Order::of(request) else {
            return Reply::json(
                400,
                openai::error("no order", "invalid_request_error", None),
            );
        };
        if body["model"] == "up-flaky" {
            return failure(stream, order.completion_tokens);
        }
        let answer = answer(stream, order.completion_tokens);
        match order.behaviour {
            Behaviour::Answer | Behaviour::Fallback => answer,
            Behaviour::ServerError => error(500),
            Behaviour::RateLimited => rate_limited(),
            Behaviour::Cut if stream => answer.cut_after(300),
            Behaviour::Cut => answer.cut_after(40),
            Behaviour::Slow => answer.first_byte_delay(slow),
            Behaviour::Disconnect => answer.frame_delay(Duration::from_millis(60)),
        }
    });
}

fn answer(stream: bool, completion_tokens: u64) -> Reply {
    let usage = Some((PROMPT_TOKENS, completion_tokens));
    if stream {
        Reply::sse(&openai::text_chunks(
            "up-steady",
            &["Hel", "lo", " there", "!"],
            usage,
        ))
        .chunked(Chunking::AfterEach("\n\n"))
    } else {
        Reply::json(
            200,
            openai::completion(
                "up-steady",
                "Hello there!",
                PROMPT_TOKENS,
                completion_tokens,
            ),
        )
    }
}

fn error(status: u16) -> Reply {
    Reply::json(
        status,
        openai::error("scripted failure", "server_error", None),
    )
}

/// A 429 that asks for no cooldown, so that the deployment keeps serving the other requests.
fn rate_limited() -> Reply {
    error(429).header("retry-after", "0")
}

/// How the flaky deployment fails, varied by the request.
fn failure(stream: bool, salt: u64) -> Reply {
    match salt % 3 {
        0 => error(500),
        1 => rate_limited(),
        _ => answer(stream, salt).cut_after(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_order_survives_its_prompt() {
        for behaviour in Behaviour::ALL.map(|(b, _)| b) {
            let order = Order {
                marker: "run-1-2".to_owned(),
                behaviour,
                completion_tokens: 17,
            };
            assert_eq!(Order::parse(&order.prompt()), Some(order));
        }
        assert_eq!(Order::parse("no order here"), None);
    }
}
