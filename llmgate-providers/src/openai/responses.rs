//! Same protocol both ways for OpenAI's Responses API: on a provider configured to speak it
//! (`OpenAiCompatible::with_responses_api`), a Responses request a client sent (see
//! [`NativeBody`]) goes to `{api_base}/responses` as it came, and the answer's bytes come back as
//! the upstream wrote them, while the usage is read on the way for the charge.
//!
//! Only the gateway's own decisions are written into the body: `model` (the upstream's id),
//! `max_output_tokens` (never above the cap the hold was computed for) and `stream`. Everything
//! else — `reasoning` items with their encrypted content, hosted tools, `store`,
//! `previous_response_id`, `include` — is the upstream's to read.
//!
//! In a stream every upstream event rides on a chunk as its bytes, on a chunk without usage;
//! text deltas are also decoded onto that chunk (so an answer without usage can still be
//! estimated), and `response.completed` / `response.incomplete` add a chunk of their own with
//! the usage and the finish reason. `response.failed` and `error` end the stream with an error.

use llmgate_core::chat::{ChatChunk, ChatRequest, ChatResponse, FinishReason, Usage, WireJson};
use llmgate_core::chat::{NativeBody, WireFormat};
use llmgate_core::{Error, Result};
use serde::Deserialize;
use serde_json::Value;
use sse_stream::Sse;

use crate::chunks::ChunkDecoder;
use crate::native::{Rewrite, sse_event_bytes};

/// The client's Responses body, when the request carries one.
pub(super) fn native(request: &ChatRequest) -> Option<&NativeBody> {
    request
        .native
        .as_ref()
        .filter(|native| native.format == WireFormat::OpenAiResponses)
}

/// The client's body with the upstream model id, the output cap and `stream` written in.
pub(super) fn body(native: &NativeBody, request: &ChatRequest, stream: bool) -> Result<Vec<u8>> {
    let mut body = Rewrite::of(&native.body)?;
    body.set("model", request.model.as_str())?;
    body.cap("max_output_tokens", request.requested_max_tokens())?;
    body.set("stream", stream)?;
    body.finish()
}

/// The parts of a `response` object the gateway reads.
#[derive(Debug, Default, Deserialize)]
struct ResponseHead {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    usage: Option<ResponseUsage>,
}

#[derive(Debug, Default, Deserialize)]
struct ResponseUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

#[derive(Debug, Default, Deserialize)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl ResponseHead {
    fn usage(&self) -> Option<Usage> {
        let usage = self.usage.as_ref()?;
        let detail = |details: &Option<Details>, pick: fn(&Details) -> Option<u64>| {
            details.as_ref().and_then(pick).unwrap_or(0)
        };
        Some(
            Usage::new(usage.input_tokens, usage.output_tokens)
                .with_cached_tokens(detail(&usage.input_tokens_details, |d| d.cached_tokens))
                .with_reasoning_tokens(detail(&usage.output_tokens_details, |d| {
                    d.reasoning_tokens
                })),
        )
    }

    fn finish(&self) -> FinishReason {
        match self.status.as_deref() {
            Some("incomplete") => FinishReason::Length,
            _ => FinishReason::Stop,
        }
    }
}

/// A whole answer read for its usage, with its bytes kept for the client.
pub(super) fn whole(provider: &str, bytes: bytes::Bytes) -> Result<ChatResponse> {
    let head: ResponseHead = serde_json::from_slice(&bytes).map_err(|error| {
        Error::upstream_stream(provider, format!("not a Responses answer: {error}"))
    })?;
    let mut answer = ChatResponse::assistant(head.model.clone(), "")
        .with_id(head.id.clone())
        .with_finish_reason(head.finish());
    if let Some(usage) = head.usage() {
        answer = answer.with_usage(usage);
    }
    answer.wire = WireJson::of(WireFormat::OpenAiResponses, bytes);
    Ok(answer)
}

/// One stream event's fields the gateway reads.
#[derive(Debug, Deserialize)]
struct EventHead {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    delta: Option<Value>,
    #[serde(default)]
    response: Option<ResponseHead>,
    #[serde(default)]
    message: Option<String>,
}

/// Responses events in, chunks carrying them out.
#[derive(Debug)]
pub(super) struct EventDecoder {
    provider: String,
    id: String,
    model: String,
    done: bool,
}

impl EventDecoder {
    pub fn new(provider: String, model: String) -> EventDecoder {
        EventDecoder {
            provider,
            id: String::new(),
            model,
            done: false,
        }
    }
}

impl ChunkDecoder for EventDecoder {
    type Event = Sse;
    const END_MARKER: &'static str = "response.completed";

    fn provider(&self) -> &str {
        &self.provider
    }

    fn decode(&mut self, event: Sse) -> Result<Vec<ChatChunk>> {
        let Some(data) = event.data.as_deref().filter(|d| !d.trim().is_empty()) else {
            return Ok(Vec::new());
        };
        let head: EventHead = serde_json::from_str(data).map_err(|error| {
            Error::upstream_stream(&self.provider, format!("not a Responses event: {error}"))
        })?;
        if let Some(response) = &head.response {
            if !response.id.is_empty() {
                self.id.clone_from(&response.id);
            }
            if !response.model.is_empty() {
                self.model.clone_from(&response.model);
            }
        }
        match head.kind.as_str() {
            "response.failed" | "error" => {
                let why = head
                    .message
                    .or_else(|| {
                        let error = serde_json::from_str::<Value>(data).ok()?;
                        error["response"]["error"]["message"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| head.kind.clone());
                return Err(Error::upstream_stream(&self.provider, why));
            }
            _ => {}
        }
        let mut carrier = match head.delta.as_ref().and_then(Value::as_str) {
            Some(text) if head.kind == "response.output_text.delta" => {
                ChatChunk::text(&self.id, &self.model, 0, text)
            }
            _ => ChatChunk::empty(&self.id, &self.model, 0),
        };
        carrier.wire = WireJson::of(WireFormat::OpenAiResponses, sse_event_bytes(&event));
        let mut chunks = vec![carrier];
        if matches!(
            head.kind.as_str(),
            "response.completed" | "response.incomplete"
        ) {
            self.done = true;
            let response = head.response.unwrap_or_default();
            let mut last = ChatChunk::finish(&self.id, &self.model, 0, response.finish());
            last.usage = response.usage();
            chunks.push(last);
        }
        Ok(chunks)
    }

    fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmgate_core::chat::Message;
    use serde_json::json;

    #[test]
    fn the_body_keeps_everything_but_model_cap_and_stream() {
        let native = NativeBody {
            format: WireFormat::OpenAiResponses,
            body: json!({"model": "gpt", "max_output_tokens": 9000, "store": false,
                         "input": [{"type": "reasoning", "encrypted_content": "x"}],
                         "tools": [{"type": "web_search"}]})
            .to_string()
            .into(),
            headers: Vec::new(),
        };
        let mut request = ChatRequest::new("gpt-up", vec![Message::user("hi")]);
        request.max_tokens = Some(4096);
        let sent: Value = serde_json::from_slice(&body(&native, &request, true).unwrap()).unwrap();
        assert_eq!(
            sent,
            json!({"model": "gpt-up", "max_output_tokens": 4096, "stream": true, "store": false,
                   "input": [{"type": "reasoning", "encrypted_content": "x"}],
                   "tools": [{"type": "web_search"}]})
        );
    }

    #[test]
    fn events_ride_on_chunks_and_the_completion_carries_the_usage() {
        let mut decoder = EventDecoder::new("openai".to_owned(), "gpt-up".to_owned());
        let events = [
            json!({"type": "response.created", "sequence_number": 0,
                   "response": {"id": "resp_1", "model": "gpt-up", "status": "in_progress"}}),
            json!({"type": "response.output_text.delta", "sequence_number": 1, "delta": "Hi"}),
            json!({"type": "response.completed", "sequence_number": 2,
                   "response": {"id": "resp_1", "model": "gpt-up", "status": "completed",
                                "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 20},
                                          "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 2}}}}),
        ];
        let mut chunks = Vec::new();
        for event in &events {
            let name = event["type"].as_str().unwrap();
            chunks.extend(
                decoder
                    .decode(Sse::default().event(name).data(event.to_string()))
                    .unwrap(),
            );
        }
        assert!(decoder.is_done());
        let carried: Vec<_> = chunks
            .iter()
            .filter_map(|c| c.wire.get_as(WireFormat::OpenAiResponses))
            .collect();
        assert_eq!(carried.len(), 3);
        assert!(carried[1].starts_with(b"event: response.output_text.delta\ndata: {"));
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hi"));
        let usage = chunks.last().unwrap().usage.clone().unwrap();
        let classes = usage.classes();
        assert_eq!(
            (
                usage.prompt_tokens,
                classes.cache_read,
                usage.completion_tokens
            ),
            (30, 20, 5)
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.usage.is_none() || c.wire.get_as(WireFormat::OpenAiResponses).is_none())
        );
    }

    #[test]
    fn a_failed_response_ends_the_stream_with_an_error() {
        let mut decoder = EventDecoder::new("openai".to_owned(), "gpt-up".to_owned());
        let failed = json!({"type": "response.failed",
                            "response": {"id": "r", "status": "failed",
                                         "error": {"code": "server_error", "message": "boom"}}});
        let error = decoder
            .decode(Sse::default().data(failed.to_string()))
            .unwrap_err();
        assert!(error.message().contains("boom"), "{}", error.message());
    }
}
