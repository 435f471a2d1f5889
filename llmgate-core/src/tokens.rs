//! Token counts the gateway works out itself: a prompt bound for holds, and an estimate for
//! answers whose upstream reported no usage.

use crate::chat::{ChatRequest, Content, ContentPart};

/// Tokens a chat template adds per message (role markers, separators).
const PER_MESSAGE_OVERHEAD: u64 = 8;
/// A generous allowance for one image; high-detail images tile to about 1,100 tokens on
/// today's models.
const PER_IMAGE_BOUND: u64 = 2_000;

/// An upper bound on the prompt's tokens. BPE tokenizers emit at most one token per byte of
/// text (their byte-level fallback), so the UTF-8 length bounds the text's tokens.
pub fn prompt_upper_bound(request: &ChatRequest) -> u64 {
    let mut bound = 16;
    for message in &request.messages {
        bound += PER_MESSAGE_OVERHEAD;
        if let Some(content) = &message.content {
            bound += content_bound(content);
        }
        if let Some(calls) = &message.tool_calls {
            for call in calls {
                bound += (call.function.name.len() + call.function.arguments.len() + call.id.len())
                    as u64
                    + PER_MESSAGE_OVERHEAD;
            }
        }
        if let Some(name) = &message.name {
            bound += name.len() as u64;
        }
    }
    if let Some(tools) = &request.tools {
        bound += serde_json::to_string(tools).map_or(0, |s| s.len() as u64);
    }
    if let Some(format) = &request.response_format {
        bound += serde_json::to_string(format).map_or(0, |s| s.len() as u64);
    }
    bound
}

fn content_bound(content: &Content) -> u64 {
    match content {
        Content::Text(text) => text.len() as u64,
        Content::Parts(parts) => parts
            .iter()
            .map(|part| match part {
                ContentPart::Text { text, .. } => text.len() as u64,
                ContentPart::ImageUrl { .. } => PER_IMAGE_BOUND,
                ContentPart::InputAudio { input_audio } => input_audio.to_string().len() as u64,
                ContentPart::File { file } => file.to_string().len() as u64,
            })
            .sum(),
    }
}

/// An estimate of the tokens in generated text when the upstream gave no count: one token per
/// three bytes, rounded up. English averages about four bytes a token, so this leans high
/// without charging the byte-per-token worst case.
pub fn estimate_text_tokens(text_bytes: usize) -> u64 {
    (text_bytes as u64).div_ceil(3)
}

/// An estimate of the prompt's tokens when the upstream gave no count.
pub fn estimate_prompt_tokens(request: &ChatRequest) -> u64 {
    let text: usize = request
        .messages
        .iter()
        .map(|m| m.content.as_ref().map_or(0, |c| content_bound(c) as usize))
        .sum();
    estimate_text_tokens(text) + request.messages.len() as u64 * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    #[test]
    fn prompt_bound_covers_every_byte_of_text() {
        let request = ChatRequest::new("m", vec![Message::user("héllo wörld")]);
        assert!(prompt_upper_bound(&request) >= "héllo wörld".len() as u64);
    }

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate_text_tokens(0), 0);
        assert_eq!(estimate_text_tokens(1), 1);
        assert_eq!(estimate_text_tokens(7), 3);
    }
}
