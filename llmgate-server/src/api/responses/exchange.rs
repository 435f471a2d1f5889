//! What one `POST /v1/responses` carries from its request to its answer besides the core chat
//! request: the response's id, the settings echoed back, how flattened tool names map back to
//! their namespaces, the tools that were dropped, and what storing the response needs.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// A flattened function name's `namespace` and the function's own name.
pub(super) type Namespaced = HashMap<String, (String, String)>;

#[derive(Debug, Clone, Default)]
pub(super) struct Exchange {
    /// `resp_…`, made by the gateway.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model the client asked for (the answer names it, not the upstream's id).
    pub model: String,
    /// `instructions`, `tools`, `tool_choice`, ... as the client sent them, echoed on the answer.
    pub settings: Map<String, Value>,
    /// Functions of `namespace` tools, by the flat name the upstream saw.
    pub namespaced: Namespaced,
    /// Tools the upstream cannot run, by name (`x-llmgate-dropped-tools`).
    pub dropped: Vec<String>,
    /// This request's own input items (a string input as one user message item).
    pub input_items: Vec<Value>,
    /// Whether to keep the answer (`store`, default true).
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// How many leading chat messages come from `instructions` (earlier turns go after them).
    pub leading_messages: usize,
}

impl Exchange {
    /// A new exchange's id and time.
    pub fn new(model: &str) -> Exchange {
        let created_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Exchange {
            id: format!("resp_{:032x}", rand::random::<u128>()),
            created_at,
            model: model.to_owned(),
            store: true,
            ..Exchange::default()
        }
    }

    /// An output item's id, unique within the response: `msg_…`, `fc_…`, `rs_…`.
    pub fn item_id(&self, prefix: &str, index: u32) -> String {
        let tail = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{tail}_{index}")
    }
}
