//! Fixtures in Ollama's documented native API format (`/api/chat`, `/api/tags`).

use serde_json::{Value, json};

const CREATED_AT: &str = "2024-07-22T20:33:28.123648Z";

/// A whole (`stream: false`) answer with `text`.
pub fn chat(model: &str, text: &str, prompt_eval_count: u64, eval_count: u64) -> Value {
    done_line(
        model,
        json!({"role": "assistant", "content": text}),
        "stop",
        Some((prompt_eval_count, eval_count)),
    )
}

/// A whole answer with one tool call (arguments as an object, as Ollama sends them).
pub fn tool_call_chat(model: &str, name: &str, arguments: Value) -> Value {
    done_line(
        model,
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": name, "arguments": arguments}}
        ]}),
        "stop",
        Some((20, 10)),
    )
}

/// The lines of a streamed text answer: one per piece, then the `done: true` line with
/// `done_reason: stop` and, when given, the token counts.
pub fn text_lines(model: &str, pieces: &[&str], counts: Option<(u64, u64)>) -> Vec<Value> {
    let mut lines: Vec<Value> = pieces
        .iter()
        .map(|piece| line(model, json!({"role": "assistant", "content": piece})))
        .collect();
    lines.push(done_line(
        model,
        json!({"role": "assistant", "content": ""}),
        "stop",
        counts,
    ));
    lines
}

/// The lines of a streamed tool call: Ollama sends the whole call in one line, then `done`.
pub fn tool_call_lines(model: &str, name: &str, arguments: Value) -> Vec<Value> {
    vec![
        line(
            model,
            json!({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": name, "arguments": arguments}}
            ]}),
        ),
        done_line(
            model,
            json!({"role": "assistant", "content": ""}),
            "stop",
            Some((20, 10)),
        ),
    ]
}

/// One `done: false` line.
pub fn line(model: &str, message: Value) -> Value {
    json!({"model": model, "created_at": CREATED_AT, "message": message, "done": false})
}

/// The `done: true` line, with durations as Ollama reports them.
pub fn done_line(
    model: &str,
    message: Value,
    done_reason: &str,
    counts: Option<(u64, u64)>,
) -> Value {
    let mut value = json!({
        "model": model, "created_at": CREATED_AT, "message": message,
        "done": true, "done_reason": done_reason,
        "total_duration": 4_883_583_458_u64, "load_duration": 1_334_875,
        "prompt_eval_duration": 342_546_000, "eval_duration": 4_535_599_000_u64
    });
    if let Some((prompt, completion)) = counts {
        value["prompt_eval_count"] = json!(prompt);
        value["eval_count"] = json!(completion);
    }
    value
}

/// An error body or stream line: `{"error": "..."}`.
pub fn error(message: &str) -> Value {
    json!({"error": message})
}

/// `GET /api/tags` listing these model names.
pub fn tags(names: &[&str]) -> Value {
    let models: Vec<Value> = names
        .iter()
        .map(|name| {
            json!({
                "name": name, "model": name, "modified_at": "2024-07-20T10:00:00.000000Z",
                "size": 2_019_393_189_u64, "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
                "details": {"parent_model": "", "format": "gguf", "family": "llama",
                            "families": ["llama"], "parameter_size": "3.2B",
                            "quantization_level": "Q4_K_M"}
            })
        })
        .collect();
    json!({"models": models})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_end_with_one_done_line_carrying_counts() {
        let lines = text_lines("m", &["a", "b"], Some((3, 2)));
        assert_eq!(lines.len(), 3);
        assert!(lines[..2].iter().all(|l| l["done"] == false));
        assert_eq!(lines[2]["done"], true);
        assert_eq!(lines[2]["prompt_eval_count"], 3);
        assert!(text_lines("m", &[], None)[0].get("eval_count").is_none());
    }
}
