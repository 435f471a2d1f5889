//! The responses that carry a plaintext API key: the only place one is ever written.

use http::{HeaderValue, Response, StatusCode, header};
use llmgate_credits::users::IssuedKey;
use serde_json::Value;

use super::response::{Body, json as json_response};

/// The one place a plaintext key is written into a response.
pub(crate) fn add_issued_key(answer: &mut Value, key: &IssuedKey) {
    answer["key_id"] = Value::String(key.id.clone());
    answer["api_key"] = Value::String(key.key.expose().to_owned());
    answer["key_hint"] = Value::String(key.key.hint());
}

/// A response that carries a plaintext key: 201, and no cache (a proxy, the browser) may keep
/// a copy of it.
pub(crate) fn issued_key_response(answer: &Value) -> Response<Body> {
    let mut response = json_response(StatusCode::CREATED, answer);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
