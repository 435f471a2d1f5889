//! Token counts from a real BPE tokenizer (OpenAI's `o200k_base`, through `tiktoken-rs`).
//!
//! The gateway counts tokens itself where an upstream does not: an estimate of an answer's or an
//! input's tokens when the upstream reports no usage, and `count_tokens` for upstreams without a
//! counting endpoint of their own. `o200k_base` is the encoding of today's OpenAI models; for
//! other families (Claude, Llama, Qwen…) it is an estimate within a few percent on English text
//! and code, which is why holds never rely on it: they use the byte bound of
//! `llmgate_core::tokens`, which no tokenizer can exceed.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

/// The tokenizer, built once on first use (building it parses a ~3.6 MB vocabulary).
fn encoding() -> Option<&'static CoreBPE> {
    static ENCODING: OnceLock<Option<CoreBPE>> = OnceLock::new();
    ENCODING
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(encoding) => Some(encoding),
            Err(error) => {
                tracing::warn!(%error, "the o200k_base tokenizer failed to load; token counts fall back to bytes / 4");
                None
            }
        })
        .as_ref()
}

/// The number of tokens in `text` (special-token markers count as ordinary text).
pub fn count_tokens(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match encoding() {
        Some(encoding) => encoding.encode_ordinary(text).len() as u64,
        None => (text.len() as u64).div_ceil(4),
    }
}

/// Builds the tokenizer now, so that the first request does not pay for it.
pub fn warm_up() {
    let _ = encoding();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_like_o200k_base() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
        // Far fewer tokens than bytes for ordinary prose.
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(20);
        let tokens = count_tokens(&prose);
        assert!(
            tokens < prose.len() as u64 / 3,
            "{tokens} tokens for {} bytes",
            prose.len()
        );
    }

    #[test]
    fn special_token_markers_are_text() {
        assert!(count_tokens("<|endoftext|>") > 1);
    }
}
