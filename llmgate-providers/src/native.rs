//! What the same-protocol passthroughs share (Anthropic Messages, OpenAI Responses): the
//! client's body read only at its top level, each value kept as the JSON text the client sent
//! (the codec has parsed the whole body once already; the messages and tools, most of the
//! bytes, are copied, not rebuilt), the gateway's decisions written in, and an upstream SSE
//! event as the bytes to hand back.

mod body;

use sse_stream::Sse;

pub(crate) use body::Rewrite;

/// The event as SSE text: its name and its data, each data line as it came.
pub(crate) fn sse_event_bytes(event: &Sse) -> Vec<u8> {
    let name = event.event.as_deref();
    let data = event.data.as_deref().unwrap_or_default();
    // Room for one data line without growing; a multi-line event grows once or twice.
    let mut out = Vec::with_capacity(name.map_or(0, str::len) + data.len() + 24);
    if let Some(name) = name {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_written_back_line_by_line() {
        let named = Sse::default().event("ping").data("{\"type\":\"ping\"}");
        assert_eq!(
            sse_event_bytes(&named),
            b"event: ping\ndata: {\"type\":\"ping\"}\n\n"
        );
        let unnamed = Sse::default().data("{\"a\":\n1}");
        assert_eq!(sse_event_bytes(&unnamed), b"data: {\"a\":\ndata: 1}\n\n");
    }
}
