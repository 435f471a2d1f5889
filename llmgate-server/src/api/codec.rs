//! Ingress codecs: how one client protocol reads its request into a core [`ChatRequest`] and
//! writes the pipeline's answers back in its own shape.
//!
//! Every protocol (OpenAI chat completions, Anthropic Messages) runs the one chat pipeline in
//! `api/chat.rs`: authentication, the `x-llmgate-*` request headers, `Gateway::chat` /
//! `Gateway::chat_stream` (holds, settles, routing, usage) and the `x-llmgate-*` response
//! headers. A codec only translates; it never touches the ledger.

use bytes::Bytes;
use http::{HeaderMap, Response};
use llmgate_core::Error;
use llmgate_core::chat::{ChatRequest, ChatResponse};
use llmgate_core::gateway::CompletionStream;

use super::response::Body;

/// One client protocol over the chat pipeline.
pub(super) trait Codec {
    /// The request headers a same-protocol upstream should get (read before the body).
    fn passed_on(&self, _headers: &HeaderMap) -> Vec<(String, String)> {
        Vec::new()
    }

    /// The request body as a core chat request (400 with the failing field when it is bad);
    /// `passed_on` are the headers [`Codec::passed_on`] picked.
    fn decode(&self, body: &Bytes, passed_on: Vec<(String, String)>) -> Result<ChatRequest, Error>;

    /// A whole answer as the protocol's 200 response.
    fn whole(&self, answer: &ChatResponse) -> Response<Body>;

    /// A metered stream as the protocol's event-stream response. A failure after the first
    /// byte must be written as the protocol's in-stream error, never as a good end.
    fn stream(&self, stream: CompletionStream) -> Response<Body>;
}
