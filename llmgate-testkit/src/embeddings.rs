//! Fake embeddings upstreams that answer from the request, as the real ones do: OpenAI's
//! `/embeddings` (floats, or base64 when asked), Ollama's `/api/embed` and HuggingFace Text
//! Embeddings Inference's `/embed` (always floats).
//!
//! Input `i` (in request order) gets [`vector`]`(i, dims)`: values exact in `f32`, so a test
//! can compare what a client decodes with `==`. The OpenAI and Ollama fakes report
//! [`tokens_of`] the input as its token count: one per word, one per token id.
//!
//! ```no_run
//! use llmgate_testkit::{FakeUpstream, embeddings};
//!
//! # async fn demo() {
//! let upstream = FakeUpstream::start().await;
//! upstream.respond_with(embeddings::openai(true));
//! # }
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::{Recorded, Reply};

/// Dimensions of a vector when the request does not ask for `dimensions`.
pub const DIMENSIONS: usize = 4;

/// The vector of input `index`: `[index + 0.5, 0.25, -0.125, 1, 1, ...]`, `dims` long.
pub fn vector(index: usize, dims: usize) -> Vec<f32> {
    let first = [index as f32 + 0.5, 0.25, -0.125];
    (0..dims)
        .map(|d| first.get(d).copied().unwrap_or(1.0))
        .collect()
}

/// How many inputs a request's `input` (OpenAI, Ollama) or `inputs` (TEI) holds.
pub fn input_count(input: &Value) -> usize {
    match input {
        Value::Array(items) if items.first().is_some_and(Value::is_number) => 1,
        Value::Array(items) => items.len(),
        _ => 1,
    }
}

/// The token count the fakes report: one per whitespace-separated word of each text (at least
/// one per text), one per token id.
pub fn tokens_of(input: &Value) -> u64 {
    match input {
        Value::String(text) => text.split_whitespace().count().max(1) as u64,
        Value::Array(items) if items.first().is_some_and(Value::is_number) => items.len() as u64,
        Value::Array(items) => items.iter().map(tokens_of).sum(),
        _ => 0,
    }
}

fn dims_of(body: &Value) -> usize {
    body["dimensions"]
        .as_u64()
        .map_or(DIMENSIONS, |d| usize::try_from(d).unwrap_or(DIMENSIONS))
}

/// The little-endian `f32` base64 of a vector, as OpenAI encodes it.
pub fn base64_of(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// OpenAI's `/embeddings`: one vector per input in the encoding asked for, and (when `usage`)
/// `usage.prompt_tokens` of [`tokens_of`] the input.
pub fn openai(usage: bool) -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        let body = request.json();
        let dims = dims_of(&body);
        let base64 = body["encoding_format"] == "base64";
        let data: Vec<Value> = (0..input_count(&body["input"]))
            .map(|i| {
                let values = vector(i, dims);
                let embedding = if base64 {
                    json!(base64_of(&values))
                } else {
                    json!(values)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        let mut answer = json!({"object": "list", "data": data, "model": body["model"]});
        if usage {
            let tokens = tokens_of(&body["input"]);
            answer["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
        }
        Reply::json(200, answer)
    }
}

/// Ollama's `/api/embed`: `embeddings`, and `prompt_eval_count` of [`tokens_of`] the input.
pub fn ollama() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        let body = request.json();
        let dims = dims_of(&body);
        let vectors: Vec<Vec<f32>> = (0..input_count(&body["input"]))
            .map(|i| vector(i, dims))
            .collect();
        Reply::json(
            200,
            json!({"model": body["model"], "embeddings": vectors,
                   "total_duration": 14_143_917, "load_duration": 1_019_500,
                   "prompt_eval_count": tokens_of(&body["input"])}),
        )
    }
}

/// TEI's `/embed`: a bare array of float vectors, no usage.
pub fn tei() -> impl Fn(&Recorded) -> Reply + Send + Sync + 'static {
    move |request| {
        let body = request.json();
        let dims = dims_of(&body);
        let vectors: Vec<Vec<f32>> = (0..input_count(&body["inputs"]))
            .map(|i| vector(i, dims))
            .collect();
        Reply::json(200, json!(vectors))
    }
}
