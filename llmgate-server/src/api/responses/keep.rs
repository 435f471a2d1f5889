//! Stored responses as the Responses codec uses them: the earlier turns of a
//! `previous_response_id` loaded before the pipeline runs, and the answer kept after it.
//!
//! - Only the caller's own responses are found: another user's id reads exactly like an unknown
//!   one, a 400 `previous_response_not_found` with `param: previous_response_id`, as OpenAI
//!   answers an id it does not know.
//! - Keeping is best effort: a store that fails is logged and the client still gets its
//!   answer. A failed stream is not kept; a finished one is kept before its
//!   `response.completed` goes out, so a follow-up request on any replica finds it.

use std::sync::Arc;

use llmgate_core::Error;
use llmgate_credits::{SqlResponseStore, StoredResponse};
use serde_json::Value;

use super::exchange::Exchange;

/// The store, and whose responses this request may read and write.
#[derive(Clone)]
pub(super) struct Keeper {
    store: Arc<SqlResponseStore>,
    owner: Arc<str>,
}

impl Keeper {
    pub fn new(store: Arc<SqlResponseStore>, owner: Arc<str>) -> Keeper {
        Keeper { store, owner }
    }

    /// The whole conversation up to and including `id`, oldest item first.
    pub async fn conversation(&self, id: &str) -> Result<Vec<Value>, Error> {
        match self.store.conversation(&self.owner, id).await? {
            Some(items) => Ok(items),
            None => Err(Error::invalid_request(format!(
                "Previous response with id '{id}' not found."
            ))
            .with_param("previous_response_id")
            .with_code("previous_response_not_found")),
        }
    }

    /// Keep the answer (a `response` object, the gateway's or a Responses upstream's, whose
    /// id it is kept under) when the request asked for it (`store`, default true); never fails.
    pub async fn keep(&self, exchange: &Exchange, response: &Value) {
        if !exchange.store {
            return;
        }
        let id = response
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(&exchange.id)
            .to_owned();
        let (Ok(input_items), Ok(response)) = (
            serde_json::to_string(&exchange.input_items),
            serde_json::to_string(response),
        ) else {
            tracing::warn!(%id, "a response could not be encoded for storing");
            return;
        };
        let stored = StoredResponse {
            id: id.clone(),
            owner: self.owner.to_string(),
            created_at: i64::try_from(exchange.created_at).unwrap_or(i64::MAX),
            model: exchange.model.clone(),
            previous_response_id: exchange.previous_response_id.clone(),
            input_items,
            response,
        };
        if let Err(error) = self.store.put(&stored).await {
            tracing::warn!(%id, %error, "storing a response failed; answered anyway");
        }
    }
}
