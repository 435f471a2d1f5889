//! Ollama's native embeddings, pure translation: `POST {base}/api/embed` with `input` as texts,
//! answered with `embeddings` (float vectors) and `prompt_eval_count` (the input's tokens).

use llmgate_core::{
    Error, ErrorKind, Result,
    embeddings::{EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, Vector},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
pub(super) struct EmbedBody<'a> {
    model: &'a str,
    input: Vec<&'a str>,
    /// Refuse an input longer than the model's context rather than cut it silently.
    truncate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

#[derive(Debug, Deserialize)]
pub(super) struct EmbedAnswer {
    #[serde(default)]
    model: String,
    #[serde(default)]
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The `/api/embed` body; Ollama embeds texts only.
pub(super) fn to_wire<'a>(provider: &str, request: &'a EmbeddingRequest) -> Result<EmbedBody<'a>> {
    let Some(input) = request.input.texts() else {
        return Err(Error::invalid_request(format!(
            "Provider `{provider}` (Ollama) embeds texts only; send `input` as a string or \
             strings, not token ids."
        ))
        .with_param("input"));
    };
    Ok(EmbedBody {
        model: &request.model,
        input,
        truncate: false,
        dimensions: request.dimensions,
    })
}

/// The answer as core's response. An in-band `error` is the caller's to check first (its text
/// must be scrubbed of the key).
pub(super) fn from_answer(
    provider: &str,
    answer: EmbedAnswer,
    model: &str,
) -> Result<EmbeddingResponse> {
    if answer.embeddings.is_empty() {
        return Err(Error::new(
            ErrorKind::Upstream,
            format!("Upstream {provider} answered without embeddings."),
        )
        .with_code("upstream_malformed_response"));
    }
    let vectors = answer
        .embeddings
        .iter()
        .map(|v| Vector::from_floats(v))
        .collect::<Result<Vec<_>>>()?;
    let model = if answer.model.is_empty() {
        model
    } else {
        &answer.model
    };
    let mut response = EmbeddingResponse::new(model, vectors);
    response.usage = answer.prompt_eval_count.map(EmbeddingUsage::new);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn answers_carry_vectors_and_the_prompt_count() {
        let answer: EmbedAnswer = serde_json::from_value(json!({
            "model": "nomic-embed-text", "embeddings": [[0.5, 1.0], [2.0, 0.0]],
            "total_duration": 1, "prompt_eval_count": 7
        }))
        .unwrap();
        let response = from_answer("ollama", answer, "x").unwrap();
        assert_eq!(response.model, "nomic-embed-text");
        assert_eq!(response.data.len(), 2);
        assert_eq!(response.data[1].embedding.to_floats().unwrap(), [2.0, 0.0]);
        assert_eq!(response.usage.unwrap().prompt_tokens, 7);
    }
}
