//! Ollama's native embeddings: `POST {base}/api/embed` with `input` as a text or texts,
//! answered with `embeddings` (float vectors) and `prompt_eval_count` (the input's tokens).

use llmgate_core::{
    EmbedCall, EmbeddingResponse, EmbeddingUsage, Error, ErrorKind, Result, Vector,
};
use serde::{Deserialize, Serialize};

use super::Ollama;
use crate::embedding::with_usage;
use crate::http;

#[derive(Debug, Serialize)]
struct EmbedBody<'a> {
    model: &'a str,
    input: Vec<&'a str>,
    /// Refuse an input longer than the model's context rather than cut it silently.
    truncate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct EmbedAnswer {
    #[serde(default)]
    model: String,
    #[serde(default)]
    embeddings: Vec<Vec<f32>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

impl Ollama {
    pub(super) async fn embed_call(&self, call: EmbedCall<'_>) -> Result<EmbeddingResponse> {
        let request = call.request;
        let Some(input) = request.input.texts() else {
            return Err(Error::invalid_request(format!(
                "Provider `{}` (Ollama) embeds texts only; send `input` as a string or strings, \
                 not token ids.",
                self.connection.name
            ))
            .with_param("input"));
        };
        let body = EmbedBody {
            model: &request.model,
            input,
            truncate: false,
            dimensions: request.dimensions,
        };
        let url = http::endpoint(&self.base, "api/embed");
        let post = self.authorized(self.connection.client.post(url).json(&body), call.api_key)?;
        let answer: EmbedAnswer = self
            .connection
            .send_for_json(call.api_key, post, "an embeddings response")
            .await?;
        Ok(with_usage(
            from_answer(&self.connection.name, answer, &request.model, call.api_key)?,
            &request.input,
        ))
    }
}

fn from_answer(
    provider: &str,
    answer: EmbedAnswer,
    model: &str,
    key: Option<&llmgate_core::Secret>,
) -> Result<EmbeddingResponse> {
    if let Some(message) = answer.error {
        return Err(Error::from_upstream_status(
            provider,
            500,
            &http::safe_detail(&message, key),
        ));
    }
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
        let response = from_answer("ollama", answer, "x", None).unwrap();
        assert_eq!(response.model, "nomic-embed-text");
        assert_eq!(response.data.len(), 2);
        assert_eq!(response.data[1].embedding.to_floats().unwrap(), [2.0, 0.0]);
        assert_eq!(response.usage.unwrap().prompt_tokens, 7);
    }

    #[test]
    fn an_in_band_error_is_an_upstream_error() {
        let answer: EmbedAnswer =
            serde_json::from_value(json!({"error": "model not found"})).unwrap();
        let error = from_answer("ollama", answer, "x", None).unwrap_err();
        assert_eq!(error.upstream_status(), Some(500));
    }
}
