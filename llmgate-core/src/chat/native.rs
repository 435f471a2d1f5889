//! Same protocol on both sides: a client's own bytes carried through the pipeline for an
//! upstream that speaks its protocol, so nothing the core types have no field for is lost.

use bytes::Bytes;

/// A wire protocol whose bytes the gateway can carry through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WireFormat {
    /// OpenAI chat completions: a chunk's bytes are one SSE event's `data` JSON.
    ChatCompletions,
    /// Anthropic Messages: a request body, a whole `message`, or one whole SSE event
    /// (`event:` and `data:` lines and the blank line after them).
    AnthropicMessages,
    /// OpenAI Responses: a request body, a whole `response` object, or one whole SSE event.
    OpenAiResponses,
}

/// The request body exactly as the client sent it, in its protocol, with the protocol headers
/// a same-protocol upstream should get (e.g. `anthropic-beta`).
///
/// A provider of that protocol sends it upstream instead of encoding the core request, with
/// only the gateway's decisions written into it (the upstream model id, the output cap); any
/// other provider ignores it and translates the core request as usual, so fallbacks across
/// families keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeBody {
    /// The body's protocol.
    pub format: WireFormat,
    /// The JSON body as received.
    pub body: Bytes,
    /// Headers to pass on, lower-case names.
    pub headers: Vec<(String, String)>,
}
