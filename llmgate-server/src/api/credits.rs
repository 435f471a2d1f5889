//! `GET /api/v1/llm/credits`, `POST /api/v1/llm/credits/add` and
//! `GET /api/v1/llm/credits/transactions`: balances and the ledger, in micro-credits and as
//! decimal strings of credits (never floats).
//!
//! Contract: docs/http-api.md#credits-and-usage

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{
    Error, ErrorKind, Result,
    credits::{Credit, CreditKind, KeySource, Page, Transaction, TransactionKind},
    pricing::micros_to_credits,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::accounts::team_for_reading;
use super::amount::parse_credits;
use super::body::read_json;
use super::params::Params;
use super::response::{Body, json};
use crate::auth::Principal;
use crate::state::AppState;

/// Transactions per page unless `limit` says otherwise, and the most a page may hold.
const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 500;
/// Admin-chosen idempotency keys live in their own namespace in the (global) key space, so
/// they can never collide with Stripe sessions or monthly grants.
const ADMIN_KEY_PREFIX: &str = "admin:";

#[derive(Debug, Serialize)]
struct BalanceView {
    user_id: String,
    tier: String,
    balance_micros: i64,
    balance: String,
    low_balance: bool,
}

/// `GET /api/v1/llm/credits[?user_id=]`.
pub(crate) async fn balance(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let params = Params::parse(request.uri(), &["user_id", "team_id"])?;
    let (user_id, tier) = match one_of(params.get("user_id"), params.get("team_id"))? {
        Some(team_id) => {
            let (account, team) = team_for_reading(state, principal, team_id).await?;
            (account, team.tier)
        }
        None => {
            let user_id = principal.target_user(params.get("user_id"))?;
            let tier = tier_of(state, principal, &user_id).await?;
            (user_id, tier)
        }
    };
    let balance_micros = state.gateway.credits().balance(&user_id).await?;
    Ok(json(
        StatusCode::OK,
        &BalanceView {
            user_id,
            tier,
            balance_micros,
            balance: credits_text(balance_micros),
            low_balance: state.billing.is_low(balance_micros),
        },
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddCredits {
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    amount: Box<RawValue>,
    reason: String,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Debug, Serialize)]
struct Added {
    user_id: String,
    amount_micros: i64,
    /// `false` when the idempotency key had been used: nothing was added this time.
    applied: bool,
    balance_micros: i64,
    balance: String,
    idempotency_key: String,
}

/// `POST /api/v1/llm/credits/add` (admins): a top-up, applied once per idempotency key.
pub(crate) async fn add(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let add: AddCredits = read_json(request, &state.config.server).await?;
    if add.user_id.is_none()
        && add.team_id.is_none()
        && principal.caller.billing == llmgate_core::caller::Billing::Uncharged
    {
        // The master key's own account is never charged; crediting it helps nobody.
        return Err(
            Error::invalid_request("Name the user to credit: `user_id` is required.")
                .with_param("user_id"),
        );
    }
    let team = one_of(add.user_id.as_deref(), add.team_id.as_deref())?;
    let user_id = match team {
        // Only admins reach this endpoint; the team must exist.
        Some(team_id) => team_for_reading(state, principal, team_id).await?.0,
        None => principal.target_user(add.user_id.as_deref())?,
    };
    let amount_micros = parse_amount(&add.amount)?;
    let reason = add.reason.trim();
    if reason.is_empty() {
        return Err(Error::invalid_request("`reason` must not be empty.").with_param("reason"));
    }
    // Crediting a user id that does not exist would lose the credits to a typo.
    if team.is_none() {
        tier_of(state, principal, &user_id).await?;
    }
    let idempotency_key = match add.idempotency_key.as_deref().map(str::trim) {
        Some("") => {
            return Err(
                Error::invalid_request("`idempotency_key` must not be empty.")
                    .with_param("idempotency_key"),
            );
        }
        Some(key) if key.len() > 200 => {
            return Err(
                Error::invalid_request("`idempotency_key` is longer than 200 characters.")
                    .with_param("idempotency_key"),
            );
        }
        Some(key) => format!("{ADMIN_KEY_PREFIX}{key}"),
        None => format!("{ADMIN_KEY_PREFIX}{:032x}", rand::random::<u128>()),
    };
    let outcome = state
        .gateway
        .credits()
        .credit(Credit {
            user_id: user_id.clone(),
            kind: CreditKind::TopUp,
            amount_micros,
            idempotency_key: idempotency_key.clone(),
            reason: format!("{reason} (by {})", principal.user_id()),
        })
        .await?;
    tracing::info!(
        user_id,
        amount_micros,
        applied = outcome.applied,
        by = principal.user_id(),
        "credits added"
    );
    Ok(json(
        StatusCode::OK,
        &Added {
            user_id,
            amount_micros,
            applied: outcome.applied,
            balance_micros: outcome.balance_micros,
            balance: credits_text(outcome.balance_micros),
            idempotency_key: idempotency_key
                .strip_prefix(ADMIN_KEY_PREFIX)
                .unwrap_or(&idempotency_key)
                .to_owned(),
        },
    ))
}

#[derive(Debug, Serialize)]
struct TransactionView {
    id: i64,
    user_id: String,
    kind: TransactionKind,
    amount_micros: i64,
    amount: String,
    balance_after_micros: i64,
    balance_after: String,
    model: Option<String>,
    provider: Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// Parts of `prompt_tokens` read from and written to a prompt cache.
    cache_read_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
    /// The part of `completion_tokens` spent reasoning.
    reasoning_tokens: Option<u64>,
    key_source: Option<KeySource>,
    request_id: Option<String>,
    reason: Option<String>,
    /// Unix seconds.
    created_at: i64,
}

impl From<Transaction> for TransactionView {
    fn from(t: Transaction) -> Self {
        Self {
            id: t.id,
            user_id: t.user_id,
            kind: t.kind,
            amount_micros: t.amount_micros,
            amount: credits_text(t.amount_micros),
            balance_after_micros: t.balance_after_micros,
            balance_after: credits_text(t.balance_after_micros),
            model: t.model,
            provider: t.provider,
            prompt_tokens: t.prompt_tokens,
            completion_tokens: t.completion_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            key_source: t.key_source,
            request_id: t.request_id,
            reason: t.reason,
            created_at: t.at,
        }
    }
}

#[derive(Debug, Serialize)]
struct TransactionPage {
    data: Vec<TransactionView>,
    /// Pass as `before` for the next page; `null` on the last one.
    next_before: Option<i64>,
}

/// `GET /api/v1/llm/credits/transactions[?limit=&before=&user_id=]`, newest first.
pub(crate) async fn transactions(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let params = Params::parse(request.uri(), &["user_id", "team_id", "limit", "before"])?;
    let user_id = match one_of(params.get("user_id"), params.get("team_id"))? {
        Some(team_id) => team_for_reading(state, principal, team_id).await?.0,
        None => principal.target_user(params.get("user_id"))?,
    };
    let limit = params
        .integer("limit", 1..=MAX_PAGE, Some(DEFAULT_PAGE))?
        .unwrap_or(DEFAULT_PAGE);
    let before_id = params.integer("before", 1..=i64::MAX, None)?;
    // One more than asked tells whether another page follows.
    let mut rows = state
        .gateway
        .credits()
        .transactions(
            &user_id,
            Page {
                limit: u32::try_from(limit + 1).unwrap_or(u32::MAX),
                before_id,
            },
        )
        .await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_before = if more {
        rows.last().map(|t| t.id)
    } else {
        None
    };
    Ok(json(
        StatusCode::OK,
        &TransactionPage {
            data: rows.into_iter().map(TransactionView::from).collect(),
            next_before,
        },
    ))
}

/// The `team_id` a request names, refusing one that also names a `user_id` (400).
pub(crate) fn one_of<'a>(
    user_id: Option<&str>,
    team_id: Option<&'a str>,
) -> Result<Option<&'a str>> {
    if user_id.is_some() && team_id.is_some() {
        return Err(
            Error::invalid_request("Name a `user_id` or a `team_id`, not both.")
                .with_param("team_id"),
        );
    }
    Ok(team_id)
}

/// The tier of the user a request is about; 404 when an admin names a user that does not
/// exist.
async fn tier_of(state: &AppState, principal: &Principal, user_id: &str) -> Result<String> {
    if user_id == principal.user_id() {
        return Ok(principal.caller.tier.name.clone());
    }
    match state.storage.users.store().get(user_id).await? {
        Some(user) => Ok(user.tier),
        None => Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no user `{user_id}`."),
        )
        .with_param("user_id")
        .with_code("user_not_found")),
    }
}

/// Micro-credits as a decimal string of credits (`700000` → `"0.7"`).
pub(crate) fn credits_text(micros: i64) -> String {
    micros_to_credits(micros).to_string()
}

/// An amount of credits to add: above zero.
fn parse_amount(raw: &RawValue) -> Result<i64> {
    let micros = parse_credits(raw, "amount")?;
    if micros == 0 {
        return Err(Error::invalid_request("`amount` must be greater than 0.").with_param("amount"));
    }
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(json_text: &str) -> Result<i64> {
        let raw: Box<RawValue> = serde_json::from_str(json_text).unwrap();
        parse_amount(&raw)
    }

    #[test]
    fn amounts_parse_exactly_from_numbers_and_strings() {
        assert_eq!(amount("5000").unwrap(), 5_000_000_000);
        assert_eq!(amount("\"12.5\"").unwrap(), 12_500_000);
        assert_eq!(amount("0.000001").unwrap(), 1);
        assert_eq!(amount("\"0.000001\"").unwrap(), 1);
        assert_eq!(amount("1e3").unwrap(), 1_000_000_000);
        // A float would turn this into 0.30000000000000004.
        assert_eq!(amount("0.3").unwrap(), 300_000);
        assert_eq!(amount("\"9223372036854.775807\"").unwrap(), i64::MAX);
    }

    #[test]
    fn each_bad_amount_gets_the_one_message_that_fits() {
        let message = |text: &str| amount(text).unwrap_err().message().to_owned();
        for too_precise in [
            "0.0000001",
            "\"1.2345678\"",
            "1.00000000000000000000000000000001",
            "1e-7",
        ] {
            assert_eq!(
                message(too_precise),
                "`amount` has more than 6 decimals; the smallest amount is 0.000001 credits.",
                "{too_precise}"
            );
        }
        let forty_nines = format!("\"{}\"", "9".repeat(40));
        for too_large in ["\"9223372036854.775808\"", "1e40", forty_nines.as_str()] {
            assert_eq!(message(too_large), "`amount` is too large.", "{too_large}");
        }
        // Trailing zeros are not precision.
        assert_eq!(amount("\"2.500000000\"").unwrap(), 2_500_000);
    }

    #[test]
    fn bad_amounts_are_refused_with_the_param() {
        for bad in [
            "0",
            "-5",
            "\"-5\"",
            "\"0\"",
            "0.0000001",
            "\"1.2345678\"",
            "\"ten\"",
            "\"\"",
            "\" 5\"",
            "\"1e3\"",
            "\"1_000\"",
            "\"+5\"",
            "\"5.\"",
            "\".5\"",
            "true",
            "null",
            "[5]",
            "{\"v\":5}",
            "\"9223372036854.775808\"",
            "1e40",
        ] {
            let error = amount(bad).unwrap_err();
            assert_eq!(
                (error.status(), error.param()),
                (400, Some("amount")),
                "{bad}"
            );
        }
    }
}
