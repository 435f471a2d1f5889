//! What every family's embeddings adapter shares: counting the input when the upstream did not,
//! and the well-known embedding models with their list prices.

use llmgate_core::{
    catalog::{Deployment, ModelMode},
    embeddings::{EmbeddingInput, EmbeddingResponse, EmbeddingUsage},
    pricing::{Decimal, ModelPrice},
};

use crate::tokenizer::count_tokens;

/// The input's tokens by the gateway's tokenizer (a token array counts its length).
pub(crate) fn count_input(input: &EmbeddingInput) -> u64 {
    match input.texts() {
        Some(texts) => texts.into_iter().map(count_tokens).sum(),
        None => input.token_upper_bound(),
    }
}

/// Fill in `usage` from the gateway's own count when the upstream reported none.
pub(crate) fn with_usage(
    mut response: EmbeddingResponse,
    input: &EmbeddingInput,
) -> EmbeddingResponse {
    if response.usage.is_none() {
        response.usage = Some(EmbeddingUsage::new(count_input(input)));
    }
    response
}

/// A well-known embedding model: `(provider, upstream model id, USD per 1K input tokens as
/// (mantissa, scale) or `None` when the provider has no per-token list price, context window,
/// most inputs per request)`.
type KnownEmbedding = (&'static str, &'static str, Option<(i64, u32)>, u32, u32);

/// List prices per 1K input tokens (the providers' per-1M prices divided by 1,000). Ollama runs
/// on the operator's machines: free. HuggingFace bills its serverless inference by compute time,
/// not tokens, so its models have no list price here (BYOK, or a price set in `models:`).
const KNOWN: &[KnownEmbedding] = &[
    (
        "openai",
        "text-embedding-3-small",
        Some((2, 5)),
        8_191,
        2_048,
    ),
    (
        "openai",
        "text-embedding-3-large",
        Some((13, 5)),
        8_191,
        2_048,
    ),
    (
        "openai",
        "text-embedding-ada-002",
        Some((1, 4)),
        8_191,
        2_048,
    ),
    (
        "together",
        "togethercomputer/m2-bert-80M-8k-retrieval",
        Some((8, 6)),
        8_192,
        256,
    ),
    ("together", "BAAI/bge-base-en-v1.5", Some((8, 6)), 512, 256),
    (
        "together",
        "BAAI/bge-large-en-v1.5",
        Some((16, 6)),
        512,
        256,
    ),
    (
        "fireworks",
        "nomic-ai/nomic-embed-text-v1.5",
        Some((8, 6)),
        8_192,
        256,
    ),
    ("fireworks", "thenlper/gte-large", Some((16, 6)), 512, 256),
    ("deepinfra", "BAAI/bge-m3", Some((1, 5)), 8_192, 1_024),
    (
        "deepinfra",
        "BAAI/bge-base-en-v1.5",
        Some((5, 6)),
        512,
        1_024,
    ),
    (
        "huggingface",
        "sentence-transformers/all-MiniLM-L6-v2",
        None,
        256,
        256,
    ),
    ("huggingface", "BAAI/bge-small-en-v1.5", None, 512, 256),
    ("ollama", "nomic-embed-text", Some((0, 0)), 8_192, 512),
    ("ollama", "mxbai-embed-large", Some((0, 0)), 512, 512),
    ("ollama", "all-minilm", Some((0, 0)), 256, 512),
    ("ollama", "bge-m3", Some((0, 0)), 8_192, 512),
];

/// Make `deployment` the well-known embedding model it names, if it is one: mode `embedding`,
/// its list price (input only), context window and batch bound. Returns whether it was.
pub(crate) fn apply_known_embedding(deployment: &mut Deployment) -> bool {
    let model = deployment.upstream_model.as_str();
    // Ollama names may carry a tag (`nomic-embed-text:latest`).
    let untagged = model.split_once(':').map_or(model, |(name, _)| name);
    let Some(&(_, _, price, window, max_inputs)) = KNOWN
        .iter()
        .find(|k| k.0 == deployment.provider && (k.1 == model || k.1 == untagged))
    else {
        return false;
    };
    deployment.mode = ModelMode::Embedding;
    deployment.price = price.map(|(m, s)| ModelPrice::new(Decimal::new(m, s), Decimal::ZERO));
    deployment.context_window = Some(window);
    deployment.max_inputs = Some(max_inputs);
    true
}

/// Whether a bare model name is one of OpenAI's embedding models.
pub(crate) fn is_openai_embedding(model: &str) -> bool {
    model.starts_with("text-embedding-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_embedding_models_get_their_mode_and_list_price() {
        let mut small = Deployment::new("e", "openai", "text-embedding-3-small");
        assert!(apply_known_embedding(&mut small));
        assert_eq!(small.mode, ModelMode::Embedding);
        let price = small.price.unwrap();
        assert_eq!(price.input_per_1k.to_string(), "0.00002");
        assert!(price.output_per_1k.is_zero());
        assert_eq!(small.max_inputs, Some(2_048));
        let mut local = Deployment::new("e", "ollama", "nomic-embed-text:latest");
        assert!(apply_known_embedding(&mut local));
        assert!(local.is_free());
        let mut chat = Deployment::new("c", "openai", "gpt-4o");
        assert!(!apply_known_embedding(&mut chat));
        assert_eq!(chat.mode, ModelMode::Chat);
    }

    #[test]
    fn token_arrays_count_their_length_and_texts_are_tokenized() {
        assert_eq!(
            count_input(&EmbeddingInput::TokenLists(vec![vec![1, 2], vec![3]])),
            3
        );
        assert_eq!(
            count_input(&EmbeddingInput::from(vec!["hello world", "hi"])),
            3
        );
    }
}
