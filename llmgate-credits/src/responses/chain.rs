//! A conversation from the rows of one chain walk: pure, so the rules are tested without a
//! database.

use llmgate_core::{Error, Result};
use serde_json::Value;

use super::MAX_CHAIN_DEPTH;

/// One row of a chain walk: a response's input items and the response object, as JSON text.
pub(super) type ChainRow = (String, String);

/// The conversation of `rows` (oldest first): for each response its input items, then the
/// `output` items of its response object.
pub(super) fn conversation(rows: &[ChainRow]) -> Result<Vec<Value>> {
    if rows.len() > MAX_CHAIN_DEPTH {
        return Err(too_long());
    }
    let mut items = Vec::new();
    for (input_items, response) in rows {
        let Value::Array(input) = parse(input_items)? else {
            return Err(corrupt());
        };
        items.extend(input);
        match parse(response)?.get_mut("output").map(Value::take) {
            Some(Value::Array(output)) => items.extend(output),
            None | Some(Value::Null) => {}
            Some(_) => return Err(corrupt()),
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

    fn row(input: Value, output: Value) -> ChainRow {
        (
            input.to_string(),
            json!({"id": "resp_1", "object": "response", "output": output}).to_string(),
        )
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
    fn a_response_without_output_adds_only_its_input() {
        let rows = [(
            json!([{"role": "user", "content": "a"}]).to_string(),
            "{}".to_owned(),
        )];
        assert_eq!(conversation(&rows).unwrap().len(), 1);
    }

    #[test]
    fn rows_that_are_not_the_written_json_are_an_internal_error() {
        for rows in [
            [("not json".to_owned(), "{}".to_owned())],
            [("{}".to_owned(), "{}".to_owned())],
            [("[]".to_owned(), r#"{"output": 3}"#.to_owned())],
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
