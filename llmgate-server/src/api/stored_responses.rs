//! Stored responses through the API: `GET /v1/responses/{id}` (the response object as it was
//! answered), `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items` (the
//! request's own input items, a page at a time). Owner-only: another user's id answers exactly
//! like an unknown one (404), so ids reveal nothing.
//!
//! Items the client sent without an `id` are given one when listed (`msg_…` for messages),
//! made from the response id and the item's place, so the same item has the same id on every
//! call and every replica, and `after` can page by it. The stored items themselves are kept as
//! the client sent them: a conversation rebuilt from them carries no id the client never saw.
//!
//! Contract: docs/http-api.md#stored-responses

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind, Result};
use llmgate_credits::StoredResponse;
use serde_json::{Map, Value, json, value::RawValue};

use super::params::Params;
use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// The longest response id accepted; the gateway's own are far shorter.
const MAX_ID_LEN: usize = 128;
/// Items per page of `input_items`: OpenAI's default and bounds.
const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

/// `GET /v1/responses/{id}`: the stored `response` object, byte for byte as it was answered.
pub(crate) async fn retrieve(
    state: &AppState,
    caller: &Principal,
    request: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>> {
    Params::parse(request.uri(), &[])?;
    let stored = owned(state, caller, id).await?;
    let raw = RawValue::from_string(stored.response).map_err(|_| {
        tracing::error!(id, "a stored response is not valid JSON");
        Error::internal("The stored response could not be read.")
    })?;
    Ok(json_response(StatusCode::OK, &raw))
}

/// `DELETE /v1/responses/{id}`: gone for good; responses that continued it stay, and their
/// conversations now begin after it.
pub(crate) async fn delete(
    state: &AppState,
    caller: &Principal,
    id: &str,
) -> Result<Response<Body>> {
    check_id(id)?;
    if !state.storage.responses.delete(caller.user_id(), id).await? {
        return Err(not_found(id));
    }
    tracing::info!(user_id = caller.user_id(), id, "deleted a stored response");
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "object": "response", "deleted": true}),
    ))
}

/// `GET /v1/responses/{id}/input_items?limit=&order=&after=`: OpenAI's list shape.
pub(crate) async fn input_items(
    state: &AppState,
    caller: &Principal,
    request: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>> {
    let params = Params::parse(request.uri(), &["limit", "order", "after"])?;
    let limit = params
        .integer("limit", 1..=MAX_LIMIT, Some(DEFAULT_LIMIT))?
        .unwrap_or(DEFAULT_LIMIT);
    let newest_first = match params.get("order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(Error::invalid_request(format!(
                "`order` must be `asc` or `desc`, got `{other}`."
            ))
            .with_param("order"));
        }
    };
    let stored = owned(state, caller, id).await?;
    let mut items = listed_items(&stored)?;
    if newest_first {
        items.reverse();
    }
    let page = page(items, params.get("after"), limit as usize)?;
    Ok(json_response(StatusCode::OK, &page))
}

/// The caller's response `id`, or the 404 an unknown id gets.
async fn owned(state: &AppState, caller: &Principal, id: &str) -> Result<StoredResponse> {
    check_id(id)?;
    state
        .storage
        .responses
        .get(caller.user_id(), id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Response ids are `resp` then letters, digits, `_` and `-`; anything else is a 400 naming it
/// (as OpenAI answers), before any lookup.
fn check_id(id: &str) -> Result<()> {
    let well_formed = id.starts_with("resp")
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if well_formed {
        return Ok(());
    }
    let shown: String = id.chars().take(MAX_ID_LEN).collect();
    Err(Error::invalid_request(format!(
        "Invalid 'response_id': '{shown}'. Expected an ID that begins with 'resp' and contains \
         only letters, numbers, underscores or dashes."
    ))
    .with_param("response_id")
    .with_code("invalid_value"))
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("Response with id '{id}' not found."),
    )
    .with_param("response_id")
    .with_code("response_not_found")
}

/// The stored input items as OpenAI lists them, in the order sent: each an object with an `id`
/// and a `type`; a message's string content as one text part.
fn listed_items(stored: &StoredResponse) -> Result<Vec<Value>> {
    let Ok(Value::Array(items)) = serde_json::from_str(&stored.input_items) else {
        tracing::error!(id = %stored.id, "stored input items are not a JSON array");
        return Err(Error::internal("The stored input items could not be read."));
    };
    let suffix = stored.id.strip_prefix("resp_").unwrap_or(&stored.id);
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(index, item)| listed_item(item, suffix, index))
        .collect())
}

fn listed_item(item: Value, suffix: &str, index: usize) -> Value {
    let mut item = match item {
        Value::Object(item) => item,
        // Not an item object (never written by the gateway): listed as it is, under an id.
        other => {
            return json!({"id": format!("item_{suffix}_{index}"), "type": "unknown", "value": other});
        }
    };
    if !item.contains_key("type") && item.contains_key("role") {
        item.insert("type".into(), "message".into());
    }
    if item.get("type").and_then(Value::as_str) == Some("message") {
        text_as_part(&mut item);
    }
    if !item.get("id").is_some_and(Value::is_string) {
        let prefix = match item.get("type").and_then(Value::as_str) {
            Some("message") => "msg",
            Some("function_call") => "fc",
            Some("function_call_output") => "fco",
            _ => "item",
        };
        item.insert("id".into(), format!("{prefix}_{suffix}_{index}").into());
    }
    Value::Object(item)
}

/// A message's `content` given as a string becomes one text part, as OpenAI lists it.
fn text_as_part(item: &mut Map<String, Value>) {
    let Some(Value::String(text)) = item.get("content") else {
        return;
    };
    let kind = if item.get("role").and_then(Value::as_str) == Some("assistant") {
        "output_text"
    } else {
        "input_text"
    };
    let part = json!([{"type": kind, "text": text}]);
    item.insert("content".into(), part);
}

/// One page of `items` (already in the order asked for): those after the item `after`, at most
/// `limit` of them.
fn page(items: Vec<Value>, after: Option<&str>, limit: usize) -> Result<Value> {
    let start = match after {
        None => 0,
        Some(after) => {
            let at = items.iter().position(|item| item["id"] == after);
            match at {
                Some(at) => at + 1,
                None => {
                    return Err(Error::invalid_request(format!(
                        "`after` must be the id of one of this response's input items; \
                         `{after}` is not."
                    ))
                    .with_param("after"));
                }
            }
        }
    };
    let rest = items.len() - start;
    let data: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    Ok(json!({
        "object": "list",
        "first_id": data.first().map(|item| item["id"].clone()),
        "last_id": data.last().map(|item| item["id"].clone()),
        "has_more": rest > limit,
        "data": data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(items: Value) -> StoredResponse {
        StoredResponse {
            id: "resp_abc".into(),
            owner: "ann".into(),
            created_at: 0,
            model: "m".into(),
            previous_response_id: None,
            input_items: items.to_string(),
            response: "{}".into(),
        }
    }

    #[test]
    fn ids_must_look_like_response_ids() {
        for good in ["resp_abc", "resp_0A-_z", "resp"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "abc",
            "msg_1",
            "resp_a%20b",
            "resp_ä",
            "resp.x",
            &"resp_".repeat(30),
        ] {
            let error = check_id(bad).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            assert_eq!(error.param(), Some("response_id"));
        }
    }

    #[test]
    fn items_without_ids_get_stable_ones_and_messages_get_parts() {
        let items = listed_items(&stored(json!([
            {"role": "user", "content": "hi"},
            {"type": "message", "role": "assistant", "content": "earlier answer"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"type": "message", "id": "msg_client", "role": "user",
             "content": [{"type": "input_text", "text": "x"}]},
        ])))
        .unwrap();
        assert_eq!(
            items[0],
            json!({"type": "message", "id": "msg_abc_0", "role": "user",
                   "content": [{"type": "input_text", "text": "hi"}]})
        );
        assert_eq!(items[1]["content"][0]["type"], "output_text");
        assert_eq!(items[1]["id"], "msg_abc_1");
        assert_eq!(items[2]["id"], "fco_abc_2");
        assert_eq!(items[2]["call_id"], "call_1");
        assert_eq!(items[3]["id"], "msg_client");
        // Listing twice gives the same ids.
        let again = listed_items(&stored(json!([{"role": "user", "content": "hi"}]))).unwrap();
        assert_eq!(again[0]["id"], "msg_abc_0");
    }

    #[test]
    fn pages_follow_after_and_say_whether_more_remain() {
        let items: Vec<Value> = (0..5).map(|i| json!({"id": format!("i{i}")})).collect();
        let first = page(items.clone(), None, 2).unwrap();
        assert_eq!(first["first_id"], "i0");
        assert_eq!(first["last_id"], "i1");
        assert_eq!(first["has_more"], true);
        let second = page(items.clone(), Some("i1"), 2).unwrap();
        assert_eq!(second["data"], json!([{"id": "i2"}, {"id": "i3"}]));
        let last = page(items.clone(), Some("i3"), 2).unwrap();
        assert_eq!(last["data"], json!([{"id": "i4"}]));
        assert_eq!(last["has_more"], false);
        let empty = page(items.clone(), Some("i4"), 2).unwrap();
        assert_eq!(empty["data"], json!([]));
        assert_eq!(empty["first_id"], Value::Null);
        assert_eq!(empty["has_more"], false);
        let unknown = page(items, Some("nope"), 2).unwrap_err();
        assert_eq!(unknown.param(), Some("after"));
    }
}
