//! `GET /api/v1/llm/credits/packages`, `POST /api/v1/llm/credits/purchase` and the Stripe
//! webhook `POST /api/v1/billing/stripe/webhook` (no API key: Stripe signs it).
//!
//! Contract: docs/http-api.md#billing

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Error, Result};
use serde::{Deserialize, Serialize};

use super::body::{read_json, read_limited};
use super::response::{Body, json};
use crate::auth::Principal;
use crate::billing::PackageView;
use crate::state::AppState;

#[derive(Debug, Serialize)]
struct Packages {
    data: Vec<PackageView>,
    purchases_enabled: bool,
}

/// `GET /api/v1/llm/credits/packages`.
pub(crate) fn packages(state: &AppState) -> Response<Body> {
    json(
        StatusCode::OK,
        &Packages {
            data: state
                .billing
                .packages()
                .iter()
                .map(PackageView::from)
                .collect(),
            purchases_enabled: state.billing.purchases_enabled(),
        },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurchaseRequest {
    package: String,
}

#[derive(Debug, Serialize)]
struct PurchaseStarted {
    checkout_url: String,
    session_id: String,
}

/// `POST /api/v1/llm/credits/purchase {"package"}` → a Stripe Checkout Session to pay at.
pub(crate) async fn purchase(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    if principal.caller.billing == llmgate_core::caller::Billing::Uncharged {
        return Err(Error::invalid_request(
            "The master key is never charged and has no balance to buy credits for; buy with a user's key.",
        )
        .with_code("no_balance_to_buy_for"));
    }
    let wanted: PurchaseRequest = read_json(request, &state.config.server).await?;
    let session = state
        .billing
        .start_purchase(principal.user_id(), wanted.package.trim())
        .await?;
    Ok(json(
        StatusCode::OK,
        &PurchaseStarted {
            checkout_url: session.url,
            session_id: session.id,
        },
    ))
}

#[derive(Debug, Serialize)]
struct Received {
    received: bool,
    outcome: &'static str,
}

/// `POST /api/v1/billing/stripe/webhook`: verified against the raw body before anything is
/// parsed; a bad signature is 400 and changes nothing.
pub(crate) async fn stripe_webhook(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let signature = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let payload = read_limited(request, &state.config.server).await?;
    let outcome = state
        .billing
        .receive_webhook(signature.as_deref(), &payload, &**state.gateway.credits())
        .await?;
    Ok(json(
        StatusCode::OK,
        &Received {
            received: true,
            outcome: outcome.as_str(),
        },
    ))
}
