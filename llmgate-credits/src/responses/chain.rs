//! A conversation's items: the output items kept apart when a response is stored, and the
//! conversation put together from the rows of one chain walk. Pure, so the rules are tested
//! without a database.

use llmgate_core::{Error, Result};
use serde_json::Value;

use super::types::{MAX_CHAIN_DEPTH, StoredResponse};

/// One row of a chain walk: a response's input items and output items, as JSON text.
pub(super) type ChainRow = (String, String);

/// The `output` items of `r.response` as a JSON array's text (empty when it has none), once
/// `r` is checked to be the gateway's JSON: a wrong shape is a bug, caught before it is kept.
pub(super) fn output_items(r: &StoredResponse) -> Result<String> {
    let input_is_array = serde_json::from_str::<Value>(&r.input_items).is_ok_and(|v| v.is_array());
    let output = match serde_json::from_str::<Value>(&r.response) {
        Ok(Value::Object(mut response)) if input_is_array => response.remove("output"),
        _ => return Err(unstorable(r)),
    };
    match output {
        None | Some(Value::Null) => Ok("[]".to_owned()),
        Some(output @ Value::Array(_)) => Ok(output.to_string()),
        Some(_) => Err(unstorable(r)),
    }
}

fn unstorable(r: &StoredResponse) -> Error {
    tracing::error!(id = %r.id, "a response to store is not the JSON expected");
    Error::internal("The response could not be stored.")
}

/// The conversation of `rows` (oldest first): for each response its input items, then its
/// output items.
pub(super) fn conversation(rows: &[ChainRow]) -> Result<Vec<Value>> {
    if rows.len() > MAX_CHAIN_DEPTH {
        return Err(too_long());
    }
    let mut items = Vec::new();
    for (input_items, output_items) in rows {
        for text in [input_items, output_items] {
            let Value::Array(some) = parse(text)? else {
                return Err(corrupt());
            };
            items.extend(some);
        }
    }
    Ok(items)
}

fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|_| corrupt())
}

fn corrupt() -> Error {
    tracing::error!("a stored response is not the JSON the gateway wrote");
    Error::internal("A stored response could not be read.")
}

fn too_long() -> Error {
    Error::invalid_request(format!(
        "This conversation is longer than {MAX_CHAIN_DEPTH} responses chained with \
         `previous_response_id`; start a new one that sends the history it needs as `input`."
    ))
    .with_param("previous_response_id")
    .with_code("conversation_too_long")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(input: Value, response: Value) -> StoredResponse {
        StoredResponse {
            id: "resp_1".into(),
            owner: "ann".into(),
            created_at: 0,
            model: "m".into(),
            previous_response_id: None,
            input_items: input.to_string(),
            response: response.to_string(),
        }
    }

    fn row(input: Value, output: Value) -> ChainRow {
        (input.to_string(), output.to_string())
    }

    #[test]
    fn the_output_items_are_kept_apart_and_an_answer_without_any_has_none() {
        let output = json!([{"type": "message", "id": "m1"}]);
        let response = json!({"id": "resp_1", "instructions": "long", "output": output});
        let kept = output_items(&stored(json!([]), response)).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&kept).unwrap(), output);
        for empty in [json!({"id": "resp_1"}), json!({"output": null})] {
            assert_eq!(output_items(&stored(json!([]), empty)).unwrap(), "[]");
        }
    }

    #[test]
    fn json_that_is_not_the_gateways_is_an_internal_error() {
        for (input, response) in [
            (json!({}), json!({"output": []})),
            (json!([]), json!([1])),
            (json!([]), json!({"output": 3})),
        ] {
            let error = output_items(&stored(input.clone(), response.clone())).unwrap_err();
            assert_eq!(error.status(), 500, "{input} {response}");
        }
        let broken = StoredResponse {
            response: "not json".into(),
            ..stored(json!([]), json!({}))
        };
        assert_eq!(output_items(&broken).unwrap_err().status(), 500);
    }

    #[test]
    fn each_response_gives_its_input_then_its_output_oldest_first() {
        let rows = [
            row(
                json!([{"role": "user", "content": "a"}]),
                json!([{"type": "message", "id": "m1"}]),
            ),
            row(
                json!([{"role": "user", "content": "b"}]),
                json!([{"type": "function_call"}]),
            ),
        ];
        let items = conversation(&rows).unwrap();
        assert_eq!(
            items,
            [
                json!({"role": "user", "content": "a"}),
                json!({"type": "message", "id": "m1"}),
                json!({"role": "user", "content": "b"}),
                json!({"type": "function_call"}),
            ]
        );
    }

    #[test]
    fn rows_that_are_not_arrays_are_an_internal_error() {
        for rows in [
            [("not json".to_owned(), "[]".to_owned())],
            [("{}".to_owned(), "[]".to_owned())],
            [("[]".to_owned(), "3".to_owned())],
        ] {
            let error = conversation(&rows).unwrap_err();
            assert_eq!(error.status(), 500, "{rows:?}");
        }
    }

    #[test]
    fn a_chain_past_the_depth_limit_is_refused() {
        let rows = vec![row(json!([]), json!([])); MAX_CHAIN_DEPTH + 1];
        let error = conversation(&rows).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.code(), Some("conversation_too_long"));
        assert!(conversation(&rows[..MAX_CHAIN_DEPTH]).is_ok());
    }
}
