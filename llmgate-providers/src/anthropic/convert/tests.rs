//! Unit tests of the pure translation (`super`).

use super::*;
use serde_json::json;

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn wire(body: Value) -> Value {
    serde_json::to_value(to_wire(&request(body), false).unwrap()).unwrap()
}

#[test]
fn system_and_developer_messages_are_lifted_and_joined() {
    let out = wire(json!({
        "model": "claude-3-5-haiku-latest", "max_tokens": 100,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
            {"role": "user", "content": "Hi"}
        ]
    }));
    assert_eq!(
        out,
        json!({
            "model": "claude-3-5-haiku-latest", "max_tokens": 100,
            "system": "Be brief.\n\nUse French.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
        })
    );
}

#[test]
fn consecutive_same_role_turns_are_merged() {
    let out = wire(json!({
        "model": "m", "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "a"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": ""}
        ]
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
        ])
    );
}

#[test]
fn tool_calls_and_results_become_tool_use_and_one_user_turn_of_results() {
    let out = wire(json!({
        "model": "m", "max_tokens": 5,
        "messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "toolu_2", "type": "function", "function": {"name": "weather", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "thanks"}
        ]
    }));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
                {"type": "text", "text": "thanks"}
            ]}
        ])
    );
}

#[test]
fn unparseable_tool_arguments_are_a_400_naming_the_field() {
    for arguments in ["{\"city\":", "[1,2]"] {
        let error = to_wire(
            &request(json!({
                "model": "m",
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}
                    ]}
                ]
            })),
            false,
        )
        .unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.param(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }
}

#[test]
fn images_become_base64_or_url_sources() {
    let out = wire(json!({
        "model": "m", "max_tokens": 5,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "compare"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "high"}}
        ]}]
    }));
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "compare"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
        ])
    );
    let bad = to_wire(
        &request(
            json!({"model": "m", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}}
            ]}]}),
        ),
        false,
    )
    .unwrap_err();
    assert_eq!(bad.status(), 400);
}

#[test]
fn cache_breakpoints_on_parts_messages_and_tools_reach_anthropic() {
    let ephemeral = json!({"type": "ephemeral"});
    let body = wire(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": [
                {"type": "text", "text": "long rules", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "today"}
            ]},
            {"role": "user", "content": "the document", "cache_control": {"type": "ephemeral"}},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "q"}]}
        ],
        "tools": [{"type": "function", "function": {"name": "f"},
                   "cache_control": {"type": "ephemeral"}}]
    }));
    assert_eq!(
        body["system"],
        json!([
            {"type": "text", "text": "long rules", "cache_control": ephemeral},
            {"type": "text", "text": "today"}
        ])
    );
    assert_eq!(
        body["messages"][0]["content"],
        json!([{"type": "text", "text": "the document", "cache_control": ephemeral}])
    );
    assert_eq!(
        body["messages"][2]["content"],
        json!([{"type": "text", "text": "q"}])
    );
    assert_eq!(body["tools"][0]["cache_control"], ephemeral);
    // No breakpoint anywhere: the system prompt stays plain text.
    let plain = wire(json!({"model": "m", "messages": [
        {"role": "system", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": "q"}
    ]}));
    assert_eq!(plain["system"], "a");
    assert!(
        plain["messages"][0]["content"][0]
            .get("cache_control")
            .is_none()
    );
}

#[test]
fn tools_choice_and_sampling_fields_map_to_anthropic_names() {
    let out = wire(json!({
        "model": "m", "max_completion_tokens": 64,
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {"type": "function", "function": {"name": "weather", "description": "Get weather",
             "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "function", "function": {"name": "now"}}
        ],
        "tool_choice": "required", "parallel_tool_calls": false,
        "stop": "END", "temperature": 0.5, "top_p": 0.9, "user": "user-42", "top_k": 5,
        "seed": 7
    }));
    assert_eq!(
        out,
        json!({
            "model": "m", "max_tokens": 64,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
            "tools": [
                {"name": "weather", "description": "Get weather",
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now", "input_schema": {"type": "object", "properties": {}}}
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
            "metadata": {"user_id": "user-42"}
        })
    );
}

#[test]
fn tool_choice_modes_map_one_to_one() {
    let choice = |tool_choice: Value| {
        wire(json!({
            "model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "tool_choice": tool_choice
        }))["tool_choice"]
            .clone()
    };
    assert_eq!(choice(json!("auto")), json!({"type": "auto"}));
    assert_eq!(choice(json!("none")), json!({"type": "none"}));
    assert_eq!(
        choice(json!({"type": "function", "function": {"name": "f"}})),
        json!({"type": "tool", "name": "f"})
    );
    let no_tools = wire(json!({
        "model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"
    }));
    assert!(no_tools.get("tool_choice").is_none());
    assert_eq!(no_tools["max_tokens"], DEFAULT_MAX_TOKENS);
}

#[test]
fn several_choices_and_json_modes_are_refused() {
    let n = to_wire(
        &request(json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]})),
        false,
    )
    .unwrap_err();
    assert_eq!(n.param(), Some("n"));
    let json_mode = to_wire(
        &request(
            json!({"model": "m", "response_format": {"type": "json_object"},
                        "messages": [{"role": "user", "content": "x"}]}),
        ),
        false,
    )
    .unwrap_err();
    assert_eq!(json_mode.param(), Some("response_format"));
}

#[test]
fn response_joins_text_and_turns_tool_use_into_calls() {
    let response: MessagesResponse = serde_json::from_value(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me "},
            {"type": "text", "text": "check."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}},
            {"type": "server_tool_use", "id": "x", "name": "web_search", "input": {}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 20,
                  "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}
    }))
    .unwrap();
    let out = serde_json::to_value(from_wire(response, 7)).unwrap();
    assert_eq!(
        out,
        json!({
            "id": "msg_1", "object": "chat.completion", "created": 7, "model": "claude-x",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.", "reasoning_content": "hmm",
                "tool_calls": [{"id": "toolu_1", "type": "function",
                                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]
            }}],
            "usage": {"prompt_tokens": 115, "completion_tokens": 20, "total_tokens": 135,
                      "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 5}}
        })
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
    assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
    assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
    assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
    assert_eq!(finish_reason("refusal"), FinishReason::ContentFilter);
}

#[test]
fn error_bodies_and_stream_errors_are_classified() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    assert_eq!(
        error_detail(body).as_deref(),
        Some("Overloaded (overloaded_error)")
    );
    assert_eq!(error_detail(b"<html>"), None);
    let overloaded = stream_error(
        "anthropic",
        &ErrorObject {
            kind: Some("overloaded_error".into()),
            message: Some("Overloaded".into()),
        },
    );
    assert!(overloaded.is_retryable());
    assert_eq!(overloaded.upstream_status(), Some(529));
    let invalid = stream_error(
        "anthropic",
        &ErrorObject {
            kind: Some("invalid_request_error".into()),
            message: None,
        },
    );
    assert!(!invalid.is_retryable());
}
