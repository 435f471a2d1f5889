//! What the same-protocol passthroughs share (Anthropic Messages, OpenAI Responses): the
//! client's body read only at its top level, each value kept as the JSON text the client sent
//! (the codec has parsed the whole body once already; the messages and tools, most of the
//! bytes, are copied, not rebuilt), the gateway's decisions written in, and an upstream SSE
//! event as the bytes to hand back.

use std::collections::BTreeMap;

use llmgate_core::chat::NativeBody;
use llmgate_core::{Error, Result};
use serde_json::value::RawValue;
use sse_stream::Sse;

/// A body's top-level fields, each value as the client's JSON text.
pub(crate) type TopLevel = BTreeMap<String, Box<RawValue>>;

pub(crate) fn top_level(native: &NativeBody) -> Result<TopLevel> {
    serde_json::from_slice(&native.body)
        .map_err(|error| Error::invalid_request(format!("Invalid request body: {error}")))
}

pub(crate) fn set(body: &mut TopLevel, name: &str, value: impl serde::Serialize) -> Result<()> {
    let raw = serde_json::value::to_raw_value(&value)
        .map_err(|error| Error::internal(error.to_string()))?;
    body.insert(name.to_owned(), raw);
    Ok(())
}

/// The output cap `field` no higher than `cap` (the one the hold was computed for); set to
/// `cap` when the client left it out.
pub(crate) fn cap(body: &mut TopLevel, field: &str, cap: Option<u32>) -> Result<()> {
    let Some(cap) = cap else {
        return Ok(());
    };
    let asked = body
        .get(field)
        .and_then(|raw| serde_json::from_str::<u64>(raw.get()).ok());
    let capped = asked.map_or(u64::from(cap), |asked| asked.min(u64::from(cap)));
    set(body, field, capped)
}

pub(crate) fn encode(body: &TopLevel) -> Result<Vec<u8>> {
    serde_json::to_vec(body).map_err(|error| Error::internal(error.to_string()))
}

/// The event as SSE text: its name and its data, each data line as it came.
pub(crate) fn sse_event_bytes(event: &Sse) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(name) = &event.event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in event.data.as_deref().unwrap_or_default().split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}
