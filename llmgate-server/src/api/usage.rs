//! `GET /api/v1/llm/usage?from=&to=&group_by=model|provider|day[&user_id=]`: requests, tokens
//! and cost summed per group from the daily rollup. Users see their own usage; admins name a
//! user or, leaving `user_id` out, see everyone's.
//!
//! Contract: docs/http-api.md#get-apiv1llmusage

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{
    Error, Result,
    credits::{UsageGroup, UsageQuery, UsageRow},
};
use serde::Serialize;

use super::accounts::team_for_reading;
use super::credits::{credits_text, one_of};
use super::params::Params;
use super::response::{Body, json};
use crate::auth::Principal;
use crate::state::AppState;

#[derive(Debug, Serialize)]
struct UsageView {
    key: String,
    requests: u64,
    /// Every prompt token; `cache_read_tokens` and `cache_write_tokens` are parts of it.
    prompt_tokens: u64,
    /// Every output token; `reasoning_tokens` is part of it.
    completion_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost_micros: i64,
    cost: String,
}

#[derive(Debug, Serialize)]
struct UsageReport {
    /// `null` when the report covers every user.
    user_id: Option<String>,
    from: Option<String>,
    to: Option<String>,
    group_by: UsageGroup,
    data: Vec<UsageView>,
}

impl From<UsageRow> for UsageView {
    fn from(row: UsageRow) -> Self {
        Self {
            key: row.key,
            requests: row.requests,
            prompt_tokens: row.prompt_tokens,
            completion_tokens: row.completion_tokens,
            cache_read_tokens: row.cache_read_tokens,
            cache_write_tokens: row.cache_write_tokens,
            reasoning_tokens: row.reasoning_tokens,
            cost_micros: row.cost_micros,
            cost: credits_text(row.cost_micros),
        }
    }
}

pub(crate) async fn usage(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let params = Params::parse(
        request.uri(),
        &["from", "to", "group_by", "user_id", "team_id"],
    )?;
    let team_id = one_of(params.get("user_id"), params.get("team_id"))?;
    let user_id = match (team_id, params.get("user_id")) {
        (Some(team_id), _) => Some(team_for_reading(state, principal, team_id).await?.0),
        (None, Some(requested)) => Some(principal.target_user(Some(requested))?),
        (None, None) if principal.is_admin() => None,
        (None, None) => Some(principal.user_id().to_owned()),
    };
    let from_day = params.day("from")?;
    let to_day = params.day("to")?;
    if let (Some(from), Some(to)) = (&from_day, &to_day)
        && from > to
    {
        return Err(
            Error::invalid_request(format!("`from` ({from}) is after `to` ({to})."))
                .with_param("from"),
        );
    }
    let group_by = match params.get("group_by").unwrap_or("model") {
        "model" => UsageGroup::Model,
        "provider" => UsageGroup::Provider,
        "day" => UsageGroup::Day,
        other => {
            return Err(Error::invalid_request(format!(
                "`group_by` must be model, provider or day, got `{other}`."
            ))
            .with_param("group_by"));
        }
    };
    let rows = state
        .gateway
        .credits()
        .usage(&UsageQuery {
            user_id: user_id.clone(),
            from_day: from_day.clone(),
            to_day: to_day.clone(),
            group_by,
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &UsageReport {
            user_id,
            from: from_day,
            to: to_day,
            group_by,
            data: rows.into_iter().map(UsageView::from).collect(),
        },
    ))
}
