//! A scripted answer to one request, and how its body reaches the wire.

use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

use crate::chunking::{Chunking, split_frames};

/// One scripted answer: status, headers, body, and the misbehaviour to show while sending it.
#[derive(Debug, Clone)]
pub struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) chunking: Chunking,
    pub(crate) frame_delay: Option<Duration>,
    pub(crate) first_byte_delay: Option<Duration>,
    pub(crate) cut_after: Option<usize>,
}

impl Reply {
    /// An empty-bodied answer with this status.
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            chunking: Chunking::Whole,
            frame_delay: None,
            first_byte_delay: None,
            cut_after: None,
        }
    }

    /// A JSON answer (`content-type: application/json`).
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A 200 server-sent-event stream: `data: {json}\n\n` per event, then `data: [DONE]\n\n`.
    pub fn sse(events: &[Value]) -> Reply {
        let mut text = String::new();
        for event in events {
            text.push_str("data: ");
            text.push_str(&event.to_string());
            text.push_str("\n\n");
        }
        text.push_str("data: [DONE]\n\n");
        Reply::sse_raw(text)
    }

    /// A 200 server-sent-event stream with exactly this body.
    pub fn sse_raw(text: impl Into<String>) -> Reply {
        Reply::status(200)
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(text.into())
    }

    /// A 200 newline-delimited JSON stream (`application/x-ndjson`), one value per line.
    pub fn ndjson(lines: &[Value]) -> Reply {
        let mut text = String::new();
        for line in lines {
            text.push_str(&line.to_string());
            text.push('\n');
        }
        Reply::status(200)
            .header("content-type", "application/x-ndjson")
            .body(text)
    }

    /// Add a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Replace the body.
    pub fn body(mut self, bytes: impl Into<Bytes>) -> Reply {
        self.body = bytes.into();
        self
    }

    /// Send the body cut into frames by `plan`.
    pub fn chunked(mut self, plan: Chunking) -> Reply {
        self.chunking = plan;
        self
    }

    /// Pause this long between body frames.
    pub fn frame_delay(mut self, delay: Duration) -> Reply {
        self.frame_delay = Some(delay);
        self
    }

    /// Pause this long before sending the response head.
    pub fn first_byte_delay(mut self, delay: Duration) -> Reply {
        self.first_byte_delay = Some(delay);
        self
    }

    /// Send only the first `bytes` body bytes, then abort the connection (no clean end).
    pub fn cut_after(mut self, bytes: usize) -> Reply {
        self.cut_after = Some(bytes);
        self
    }

    /// The frames to send, and whether the connection is to be aborted after them.
    pub(crate) fn frames(&self) -> (Vec<Bytes>, bool) {
        match self.cut_after {
            Some(limit) if limit < self.body.len() => {
                (split_frames(&self.body.slice(..limit), self.chunking), true)
            }
            Some(_) => (split_frames(&self.body, self.chunking), true),
            None => (split_frames(&self.body, self.chunking), false),
        }
    }

    /// What the fake answers when nothing is scripted.
    pub(crate) fn unscripted() -> Reply {
        Reply::json(
            500,
            crate::openai::error("no scripted reply", "server_error", None),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sse_frames_each_event_and_ends_with_done() {
        let reply = Reply::sse(&[json!({"a": 1}), json!({"b": "é"})]);
        assert_eq!(
            std::str::from_utf8(&reply.body).unwrap(),
            "data: {\"a\":1}\n\ndata: {\"b\":\"é\"}\n\ndata: [DONE]\n\n"
        );
        assert!(
            reply
                .headers
                .contains(&("content-type".into(), "text/event-stream".into()))
        );
    }

    #[test]
    fn cut_after_truncates_and_asks_for_abort() {
        let reply = Reply::sse_raw("0123456789")
            .chunked(Chunking::Bytes(4))
            .cut_after(6);
        let (frames, abort) = reply.frames();
        assert!(abort);
        assert_eq!(frames, vec![Bytes::from("0123"), Bytes::from("45")]);
    }
}
