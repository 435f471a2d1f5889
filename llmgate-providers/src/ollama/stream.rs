//! Ollama's NDJSON stream as OpenAI-style chunks.
//!
//! Lines are cut at `\n` bytes, which never occur inside a multi-byte UTF-8 character, so a
//! network frame that ends mid-character simply waits in the buffer for the rest of its line.

use std::collections::VecDeque;
use std::time::Duration;

use futures::{Stream, StreamExt};
use llmgate_core::chat::{FunctionCallDelta, ToolCallDelta};
use llmgate_core::{
    Error, Result,
    chat::{ChatChunk, Delta, FinishReason, Role},
};
use serde_json::Value;

use super::convert;
use super::wire::ChatLine;
use crate::chunks::ChunkDecoder;
use crate::client::Response;
use crate::http;

/// Collects bytes and hands out complete lines. Each byte is scanned once, however the input
/// is split, so decoding stays linear in the body's length.
#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already known to hold no newline.
    scanned: usize,
}

impl LineBuffer {
    /// Add a frame; complete lines (without their `\n` or `\r\n`) go to `out`.
    pub(crate) fn push(&mut self, frame: &[u8], out: &mut VecDeque<Vec<u8>>) {
        self.buffer.extend_from_slice(frame);
        let mut start = 0;
        while let Some(offset) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
            let end = self.scanned + offset;
            let line = trim_cr(&self.buffer[start..end]);
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push_back(line.to_vec());
            }
            start = end + 1;
            self.scanned = start;
        }
        if start > 0 {
            self.buffer.drain(..start);
        }
        self.scanned = self.buffer.len();
    }

    /// The last line, when the body did not end with a newline.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = std::mem::take(&mut self.buffer);
        self.scanned = 0;
        let line = trim_cr(&rest);
        (!line.iter().all(u8::is_ascii_whitespace)).then(|| line.to_vec())
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The body's lines, with transport failures and silences as core errors.
pub(crate) fn lines(
    provider: &str,
    response: Response,
    idle: Duration,
) -> impl Stream<Item = Result<Vec<u8>>> + Send + 'static {
    struct State<S> {
        body: std::pin::Pin<Box<S>>,
        buffer: LineBuffer,
        ready: VecDeque<Vec<u8>>,
        ended: bool,
        provider: String,
    }
    let state = State {
        body: Box::pin(http::timed_body(response, idle)),
        buffer: LineBuffer::default(),
        ready: VecDeque::new(),
        ended: false,
        provider: provider.to_owned(),
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(line) = state.ready.pop_front() {
                return Some((Ok(line), state));
            }
            if state.ended {
                return None;
            }
            match state.body.next().await {
                Some(Ok(frame)) => state.buffer.push(&frame, &mut state.ready),
                Some(Err(error)) => {
                    state.ended = true;
                    return Some((Err(error.to_error(&state.provider)), state));
                }
                None => {
                    state.ended = true;
                    state.ready.extend(state.buffer.finish());
                }
            }
        }
    })
}

/// Decodes one stream's lines, in order.
#[derive(Debug)]
pub(crate) struct LineDecoder {
    provider: String,
    created: u64,
    id: String,
    model: String,
    started: bool,
    tool_calls: usize,
    finished: bool,
}

impl LineDecoder {
    pub(crate) fn new(provider: &str, model: &str, created: u64) -> Self {
        Self {
            provider: provider.to_owned(),
            created,
            id: format!("chatcmpl-ollama-{created}"),
            model: model.to_owned(),
            started: false,
            tool_calls: 0,
            finished: false,
        }
    }

    fn chunk(&self, delta: Delta, finish_reason: Option<FinishReason>) -> ChatChunk {
        ChatChunk::empty(&self.id, &self.model, self.created).with_delta(delta, finish_reason)
    }

    fn on_line(&mut self, line: ChatLine) -> Result<Vec<ChatChunk>> {
        if let Some(message) = line.error {
            return Err(Error::upstream_stream(
                &self.provider,
                format!(
                    "the upstream reported: {}",
                    http::safe_detail(&message, None)
                ),
            ));
        }
        let mut chunks = Vec::new();
        if !line.model.is_empty() {
            self.model.clone_from(&line.model);
        }
        if !self.started {
            self.started = true;
            let delta = Delta {
                role: Some(Role::Assistant),
                content: Some(String::new()),
                ..Delta::default()
            };
            chunks.push(self.chunk(delta, None));
        }
        let message = line.message.clone().unwrap_or_default();
        if let Some(thinking) = message.thinking.filter(|t| !t.is_empty()) {
            let mut delta = Delta::default();
            delta
                .extra
                .insert("reasoning_content".to_owned(), Value::String(thinking));
            chunks.push(self.chunk(delta, None));
        }
        if !message.content.is_empty() {
            let delta = Delta {
                content: Some(message.content),
                ..Delta::default()
            };
            chunks.push(self.chunk(delta, None));
        }
        let calls = message.tool_calls.unwrap_or_default();
        if !calls.is_empty() {
            let first = self.tool_calls;
            self.tool_calls += calls.len();
            // Calls arrive whole: each delta carries id, name and the complete arguments.
            let deltas = convert::tool_calls(&line, &calls, first)
                .into_iter()
                .enumerate()
                .map(|(k, call)| ToolCallDelta {
                    index: (first + k) as u32,
                    id: Some(call.id),
                    kind: Some(call.kind),
                    function: Some(FunctionCallDelta {
                        name: Some(call.function.name),
                        arguments: Some(call.function.arguments),
                    }),
                })
                .collect();
            let delta = Delta {
                tool_calls: Some(deltas),
                ..Delta::default()
            };
            chunks.push(self.chunk(delta, None));
        }
        if line.done {
            self.finished = true;
            let finish = convert::finish_reason(&line, self.tool_calls > 0);
            chunks.push(self.chunk(Delta::default(), Some(finish)));
            if let Some(usage) = convert::usage(&line) {
                let mut last = ChatChunk::empty(self.id.clone(), self.model.clone(), self.created);
                last.usage = Some(usage);
                chunks.push(last);
            }
        }
        Ok(chunks)
    }
}

impl ChunkDecoder for LineDecoder {
    type Event = Vec<u8>;
    const END_MARKER: &'static str = "the `done` line";

    fn provider(&self) -> &str {
        &self.provider
    }

    fn decode(&mut self, line: Vec<u8>) -> Result<Vec<ChatChunk>> {
        let parsed: ChatLine = serde_json::from_slice(&line)
            .map_err(|e| Error::upstream_stream(&self.provider, format!("malformed line: {e}")))?;
        self.on_line(parsed)
    }

    fn is_done(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn split_everywhere(body: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut buffer = LineBuffer::default();
        let mut out = VecDeque::new();
        for frame in body.chunks(size) {
            buffer.push(frame, &mut out);
        }
        out.extend(buffer.finish());
        out.into_iter().collect()
    }

    #[test]
    fn lines_survive_any_split_including_inside_utf8_and_crlf() {
        let body = "{\"a\":\"h\u{e9}llo \u{1f642}\"}\r\n\n{\"b\":2}\n{\"c\":3}".as_bytes();
        let expected = vec![
            "{\"a\":\"h\u{e9}llo \u{1f642}\"}".as_bytes().to_vec(),
            b"{\"b\":2}".to_vec(),
            b"{\"c\":3}".to_vec(),
        ];
        for size in 1..body.len() + 1 {
            assert_eq!(split_everywhere(body, size), expected, "frames of {size}");
        }
    }

    #[test]
    fn one_megabyte_line_fed_byte_by_byte_is_one_line() {
        let line = vec![b'x'; 1 << 20];
        let mut body = line.clone();
        body.push(b'\n');
        let out = split_everywhere(&body, 1);
        assert_eq!(out, vec![line]);
    }

    fn decode(lines: &[Value]) -> (Vec<Value>, Result<()>) {
        let lines = lines.iter().map(|l| l.to_string().into_bytes()).collect();
        crate::chunks::decode_all(LineDecoder::new("ollama", "requested", 9), lines)
    }

    #[test]
    fn tool_calls_arrive_whole_and_are_numbered_across_lines() {
        let (chunks, end) = decode(&[
            json!({"model": "m", "created_at": "t1", "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "a", "arguments": {"x": 1}}},
                {"function": {"name": "b", "arguments": {}}}
            ]}, "done": false}),
            json!({"model": "m", "created_at": "t2", "message": {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "c", "arguments": {"y": "z"}}}
            ]}, "done": false}),
            json!({"model": "m", "created_at": "t3", "message": {"role": "assistant", "content": ""},
                   "done": true, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 6}),
        ]);
        end.unwrap();
        let calls: Vec<(u64, String, String)> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array().cloned())
            .flatten()
            .map(|call| {
                assert!(call["id"].as_str().unwrap().starts_with("call_"));
                (
                    call["index"].as_u64().unwrap(),
                    call["function"]["name"].as_str().unwrap().to_owned(),
                    call["function"]["arguments"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                (0, "a".into(), "{\"x\":1}".into()),
                (1, "b".into(), "{}".into()),
                (2, "c".into(), "{\"y\":\"z\"}".into()),
            ]
        );
        let n = chunks.len();
        assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(chunks[n - 1]["choices"], json!([]));
        assert_eq!(chunks[n - 1]["usage"]["total_tokens"], 10);
    }

    #[test]
    fn error_lines_and_missing_done_fail_the_stream() {
        let (_, end) = decode(&[
            json!({"model": "m", "message": {"role": "assistant", "content": "a"}, "done": false}),
            json!({"error": "model runner crashed"}),
        ]);
        assert!(end.unwrap_err().message().contains("model runner crashed"));
        let (chunks, end) = decode(&[
            json!({"model": "m", "message": {"role": "assistant", "content": "a"}, "done": false}),
        ]);
        assert_eq!(chunks.len(), 2);
        assert_eq!(end.unwrap_err().code(), Some("upstream_stream_error"));
    }
}
