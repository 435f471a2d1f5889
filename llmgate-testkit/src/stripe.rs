//! Fixtures in Stripe's wire format: Checkout Sessions as its API returns them, webhook events
//! as it delivers them, and the `Stripe-Signature` header that signs them.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A Checkout Session as `POST /v1/checkout/sessions` returns it (the fields that matter,
/// plus a few that real answers carry).
pub fn checkout_session(id: &str, url: &str, amount_total: i64) -> Value {
    json!({
        "id": id,
        "object": "checkout.session",
        "mode": "payment",
        "status": "open",
        "payment_status": "unpaid",
        "currency": "usd",
        "amount_total": amount_total,
        "url": url,
        "livemode": false
    })
}

/// Stripe's error answer, e.g. `("invalid_request_error", "Invalid API Key provided: sk_test_****1234")`.
pub fn error(kind: &str, message: &str) -> Value {
    json!({"error": {"type": kind, "message": message}})
}

/// An event as a webhook delivers it.
pub fn event(id: &str, kind: &str, object: Value) -> Value {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "livemode": false,
        "pending_webhooks": 1,
        "type": kind,
        "data": {"object": object}
    })
}

/// `checkout.session.completed` for a paid session bought by `user_id`.
pub fn checkout_completed(
    event_id: &str,
    session_id: &str,
    user_id: &str,
    package: &str,
    amount_total: i64,
) -> Value {
    event(
        event_id,
        "checkout.session.completed",
        json!({
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "complete",
            "payment_status": "paid",
            "client_reference_id": user_id,
            "metadata": {"user_id": user_id, "package": package},
            "amount_total": amount_total,
            "currency": "usd"
        }),
    )
}

/// The `Stripe-Signature` header for `payload` signed at `timestamp` with `secret`:
/// `t={timestamp},v1={hex HMAC-SHA256 of "{timestamp}.{payload}"}`.
pub fn signature_header(payload: &[u8], secret: &str, timestamp: i64) -> String {
    format!("t={timestamp},v1={}", signature(payload, secret, timestamp))
}

/// The hex `v1` signature alone (to build headers with several).
///
/// # Panics
/// Never: HMAC takes keys of any length.
#[allow(clippy::expect_used)]
pub fn signature(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    hex::encode(mac.finalize().into_bytes())
}

/// A form-encoded body (what Stripe's API takes) as a map; a repeated name keeps its last value.
pub fn form_fields(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_stripes_documented_scheme() {
        // HMAC-SHA256(key "key", message "1.x"), computed with Python's hmac module.
        assert_eq!(
            signature_header(b"x", "key", 1),
            "t=1,v1=fc4913c41a7bf793267e2a384f3261c9436ec2cd097bd745e7b0d99113f510ec"
        );
        assert_ne!(signature(b"x", "key", 1), signature(b"y", "key", 1));
        assert_ne!(signature(b"x", "key", 1), signature(b"x", "key", 2));
    }

    #[test]
    fn form_fields_decode_brackets_and_escapes() {
        let fields = form_fields(
            b"line_items%5B0%5D%5Bquantity%5D=1&success_url=https%3A%2F%2Fa%2Fb%3Fc%3Dd",
        );
        assert_eq!(fields["line_items[0][quantity]"], "1");
        assert_eq!(fields["success_url"], "https://a/b?c=d");
    }
}
