//! The one Stripe call the gateway makes: create a Checkout Session for a package, priced
//! inline (`price_data`), so no products or prices need to exist in the Stripe account.

use std::time::Duration;

use http::HeaderValue;
use llmgate_core::{Error, ErrorKind, Result, keys::Secret};
use serde::Deserialize;

use crate::config::Package;
use crate::config::StripeConfig;

/// Stripe answers in well under a second; a stuck call should not hold a user's click long.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Stripe's error messages go into ours; cut anything longer.
const MAX_DETAIL: usize = 300;

/// A Checkout Session Stripe created.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    /// Where the buyer pays.
    pub url: String,
}

/// What one purchase attempt asks Stripe for.
#[derive(Debug, Clone)]
pub struct CheckoutRequest<'a> {
    pub user_id: &'a str,
    pub package: &'a Package,
    /// Unique per attempt: a retried request creates one session, not two.
    pub idempotency_key: &'a str,
}

/// A client for Stripe's REST API.
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    api_base: String,
    secret_key: Secret,
    success_url: String,
    cancel_url: String,
}

impl std::fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeClient")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl StripeClient {
    pub fn new(config: &StripeConfig) -> Result<Self> {
        // Another part of the process may have installed a provider first; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("llmgate/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| {
                tracing::error!(error = %error.without_url(), "building the Stripe client failed");
                Error::internal("The Stripe client could not be built.")
            })?;
        Ok(Self {
            http,
            api_base: config.api_base.trim_end_matches('/').to_owned(),
            secret_key: config.secret_key.clone(),
            success_url: config.success_url.clone(),
            cancel_url: config.cancel_url.clone(),
        })
    }

    /// `POST {api_base}/v1/checkout/sessions`. Failures are 502 `upstream_error` naming Stripe;
    /// they never carry the secret key.
    pub async fn create_checkout_session(
        &self,
        request: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession> {
        let form = checkout_form(request, &self.success_url, &self.cancel_url);
        let response = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.api_base))
            .header(http::header::AUTHORIZATION, self.authorization()?)
            .header("idempotency-key", request.idempotency_key)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
            .send()
            .await
            .map_err(|error| {
                let error = error.without_url();
                tracing::warn!(%error, "calling Stripe failed");
                if error.is_timeout() {
                    stripe_error("Stripe did not answer in time.")
                } else {
                    stripe_error("Could not reach Stripe.")
                }
            })?;
        let status = response.status();
        let body = response.bytes().await.map_err(|error| {
            tracing::warn!(error = %error.without_url(), "reading Stripe's answer failed");
            stripe_error("Stripe's answer could not be read.")
        })?;
        if !status.is_success() {
            let detail = self.scrub(&error_detail(&body));
            tracing::warn!(status = status.as_u16(), %detail, "Stripe refused to create a Checkout Session");
            return Err(stripe_error(format!(
                "Stripe refused to create the Checkout Session (HTTP {}): {detail}",
                status.as_u16()
            )));
        }
        serde_json::from_slice::<CheckoutSession>(&body).map_err(|error| {
            tracing::warn!(%error, "Stripe's Checkout Session could not be parsed");
            stripe_error("Stripe's answer was not a Checkout Session.")
        })
    }

    fn authorization(&self) -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.secret_key.expose()))
            .map_err(|_| {
                Error::internal("billing.stripe.secret_key is not valid in an HTTP header.")
            })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// Stripe masks keys in its messages already; make sure of it.
    fn scrub(&self, text: &str) -> String {
        let key = self.secret_key.expose();
        if key.is_empty() {
            text.to_owned()
        } else {
            text.replace(key, "*****")
        }
    }
}

fn stripe_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Upstream, message)
        .with_code("stripe_error")
        .with_retryable(false)
}

/// Stripe's `error.message` (else its type), or a note that there was none.
fn error_detail(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let text = error
        .and_then(|e| e.get("message").or_else(|| e.get("type")))
        .and_then(|v| v.as_str())
        .unwrap_or("no error message");
    text.chars().take(MAX_DETAIL).collect()
}

/// The form Stripe's API takes: `mode=payment`, one line item priced inline from the package,
/// and the user and package named twice (for Stripe's dashboard and for the webhook).
pub fn checkout_form(request: &CheckoutRequest<'_>, success_url: &str, cancel_url: &str) -> String {
    let package = request.package;
    let name = format!("{} llmgate credits", package.credits.normalize());
    form_urlencoded::Serializer::new(String::new())
        .append_pair("mode", "payment")
        .append_pair("line_items[0][price_data][currency]", "usd")
        .append_pair(
            "line_items[0][price_data][unit_amount]",
            &package.price_cents.to_string(),
        )
        .append_pair("line_items[0][price_data][product_data][name]", &name)
        .append_pair("line_items[0][quantity]", "1")
        .append_pair("client_reference_id", request.user_id)
        .append_pair("metadata[user_id]", request.user_id)
        .append_pair("metadata[package]", &package.id)
        .append_pair("success_url", success_url)
        .append_pair("cancel_url", cancel_url)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_form_prices_the_package_inline_in_cents() {
        let package = Package {
            id: "credits-5000".into(),
            credits: "5000".parse().unwrap(),
            credits_micros: 5_000_000_000,
            price_usd: "4.50".parse().unwrap(),
            price_cents: 450,
        };
        let form = checkout_form(
            &CheckoutRequest {
                user_id: "ann@example.com",
                package: &package,
                idempotency_key: "k",
            },
            "https://example.com/done?x=1&y=2",
            "https://example.com/cancelled",
        );
        let fields: HashMap<String, String> = form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(fields["mode"], "payment");
        assert_eq!(fields["line_items[0][price_data][unit_amount]"], "450");
        assert_eq!(fields["line_items[0][price_data][currency]"], "usd");
        assert_eq!(fields["line_items[0][quantity]"], "1");
        assert_eq!(fields["client_reference_id"], "ann@example.com");
        assert_eq!(fields["metadata[user_id]"], "ann@example.com");
        assert_eq!(fields["metadata[package]"], "credits-5000");
        assert_eq!(fields["success_url"], "https://example.com/done?x=1&y=2");
        assert_eq!(
            fields["line_items[0][price_data][product_data][name]"],
            "5000 llmgate credits"
        );
    }

    #[test]
    fn error_detail_prefers_stripes_message() {
        let body = br#"{"error":{"type":"invalid_request_error","message":"No such thing"}}"#;
        assert_eq!(error_detail(body), "No such thing");
        assert_eq!(error_detail(b"<html>"), "no error message");
    }
}
