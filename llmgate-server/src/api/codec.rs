//! Ingress codecs: how one client protocol reads its request into a core [`ChatRequest`] and
//! writes the pipeline's answers back in its own shape.
//!
//! Every protocol (OpenAI chat completions, Anthropic Messages) runs the one chat pipeline in
//! `api/chat.rs`: authentication, the `x-llmgate-*` request headers, `Gateway::chat` /
//! `Gateway::chat_stream` (holds, settles, routing, usage) and the `x-llmgate-*` response
//! headers. A codec only translates; it never touches the ledger. Its hooks for I/O
//! ([`Codec::prepare`] before the pipeline, [`Codec::whole`] and the stream's end after it) are
//! for the protocol's own state, such as stored responses.

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

    /// Work between decoding and the pipeline that needs I/O, such as loading the earlier turns
    /// of a conversation from storage; none by default.
    fn prepare(&self, _chat: &mut ChatRequest) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }

    /// A whole answer as the protocol's 200 response, after any work the answer asks for
    /// (storing it); that work never fails the answer.
    fn whole(&self, answer: &ChatResponse) -> impl Future<Output = Response<Body>> + Send;

    /// A metered stream as the protocol's event-stream response. A failure after the first
    /// byte must be written as the protocol's in-stream error, never as a good end.
    fn stream(&self, stream: CompletionStream) -> Response<Body>;
}
