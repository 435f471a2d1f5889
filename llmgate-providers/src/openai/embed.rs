//! Embeddings for the OpenAI-compatible family, pure translation: `POST {base}/embeddings` in
//! OpenAI's shape, or HuggingFace Text Embeddings Inference's `POST {base}/embed` (a bare array
//! of float vectors, no usage) when the provider is configured for it.

use llmgate_core::{
    Error, ErrorKind, Result,
    embeddings::{EmbeddingRequest, EmbeddingResponse, Vector},
};
use serde_json::json;

/// Which embeddings API an OpenAI-compatible provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddingsApi {
    /// OpenAI's `/embeddings` (OpenAI, Together, Fireworks, DeepInfra, HuggingFace's router,
    /// vLLM, Ollama's `/v1` layer...).
    #[default]
    OpenAi,
    /// HuggingFace Text Embeddings Inference's native `/embed`.
    Tei,
}

/// The path (under the base URL) and JSON body of an embeddings request.
pub(super) fn request_body(
    request: &EmbeddingRequest,
    api: EmbeddingsApi,
) -> Result<(&'static str, Vec<u8>)> {
    let (path, body) = match api {
        EmbeddingsApi::OpenAi => ("embeddings", serde_json::to_vec(request)),
        EmbeddingsApi::Tei => {
            let mut body = json!({"inputs": request.input, "truncate": false});
            if let Some(dimensions) = request.dimensions {
                body["dimensions"] = json!(dimensions);
            }
            ("embed", serde_json::to_vec(&body))
        }
    };
    let body = body.map_err(|_| Error::internal("The embeddings request could not be encoded."))?;
    Ok((path, body))
}

/// The upstream's answer as core's response (`model` names the model when TEI does not).
pub(super) fn from_wire(
    provider: &str,
    api: EmbeddingsApi,
    body: &[u8],
    model: &str,
) -> Result<EmbeddingResponse> {
    match api {
        EmbeddingsApi::OpenAi => openai_answer(provider, body),
        EmbeddingsApi::Tei => tei_answer(provider, body, model),
    }
}

fn malformed(provider: &str, what: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Upstream,
        format!("Upstream {provider} sent a malformed embeddings response: {what}"),
    )
    .with_code("upstream_malformed_response")
}

fn openai_answer(provider: &str, body: &[u8]) -> Result<EmbeddingResponse> {
    let mut response: EmbeddingResponse =
        serde_json::from_slice(body).map_err(|e| malformed(provider, &e))?;
    response.data.sort_by_key(|item| item.index);
    Ok(response)
}

fn tei_answer(provider: &str, body: &[u8], model: &str) -> Result<EmbeddingResponse> {
    let vectors: Vec<Vec<f32>> =
        serde_json::from_slice(body).map_err(|e| malformed(provider, &e))?;
    let vectors = vectors
        .iter()
        .map(|v| Vector::from_floats(v))
        .collect::<Result<Vec<_>>>()?;
    Ok(EmbeddingResponse::new(model, vectors))
}

#[cfg(test)]
mod tests {
    use llmgate_core::embeddings::EncodingFormat;

    use super::*;

    #[test]
    fn openai_answers_keep_their_vectors_in_input_order() {
        let body = br#"{"object":"list","model":"m","data":[
            {"object":"embedding","index":1,"embedding":"AACAPw=="},
            {"object":"embedding","index":0,"embedding":[0.5]}],
            "usage":{"prompt_tokens":4,"total_tokens":4}}"#;
        let response = openai_answer("p", body).unwrap();
        assert_eq!(response.data[0].embedding.to_floats().unwrap(), [0.5]);
        assert_eq!(response.data[1].embedding.format(), EncodingFormat::Base64);
        assert_eq!(response.usage.unwrap().prompt_tokens, 4);
    }

    #[test]
    fn tei_answers_are_bare_float_arrays() {
        let response = tei_answer("p", b"[[0.25, 1], [2]]", "bge").unwrap();
        assert_eq!(response.model, "bge");
        assert_eq!(response.data[1].index, 1);
        assert_eq!(response.data[0].embedding.to_floats().unwrap(), [0.25, 1.0]);
        assert!(response.usage.is_none());
    }

    #[test]
    fn a_bad_answer_is_an_upstream_error() {
        let error = openai_answer("p", b"{\"data\": 3}").unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Upstream);
    }
}
