//! `GET /api/v1/llm/requests` and `GET /api/v1/llm/requests/{id}`: the request log, newest
//! first, filtered and paged by id. Users see their own rows; admins everyone's, or one
//! user's with `user_id`.
//!
//! Contract: docs/http-api.md#get-apiv1llmrequests

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::request_log::{Cursor, LogQuery, LoggedRequest, StatusFilter};
use llmgate_core::{Error, Result};
use serde::Serialize;

use super::params::Params;
use super::response::{Body, json};
use crate::auth::Principal;
use crate::state::AppState;

/// Rows per page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 50;

#[derive(Debug, Serialize)]
struct Page {
    data: Vec<LoggedRequest>,
    /// The `before` of the next page; `null` on the last one.
    next: Option<String>,
}

pub(crate) async fn list(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let params = Params::parse(
        request.uri(),
        &[
            "from", "to", "model", "status", "key_id", "user_id", "limit", "before",
        ],
    )?;
    let (user_id, teams) = match params.get("user_id") {
        Some(requested) if principal.is_admin() => (Some(requested.to_owned()), Vec::new()),
        None if principal.is_admin() => (None, Vec::new()),
        // A user sees their own rows and their teams' (naming anyone else is refused).
        requested => {
            let me = principal.user.to_string();
            if requested.is_some_and(|requested| requested != me) {
                return Err(Error::permission_denied(
                    "Only admins may read another user's requests.",
                )
                .with_code("permission_denied"));
            }
            let teams = state.storage.teams.teams_of(&me).await?;
            (Some(me), teams)
        }
    };
    let seconds = |name| params.integer(name, 0..=i64::MAX / 1000, None);
    let query = LogQuery {
        from_ms: seconds("from")?.map(|s| s * 1000),
        to_ms: seconds("to")?.map(|s| s * 1000),
        model: params.get("model").map(str::to_owned),
        status: status_filter(params.get("status"))?,
        key_id: params.get("key_id").map(str::to_owned),
        user_id,
        teams,
        before: cursor(params.get("before"))?,
        limit: params
            .integer("limit", 1..=200, None)?
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(DEFAULT_PAGE),
    };
    // This replica's own rows queued before the listing are in it.
    state.request_log.flush().await;
    let data = state.request_log.store.list(&query).await?;
    let next = (data.len() == query.page_size() as usize)
        .then(|| data.last().map(|row| Cursor::of(row).to_string()))
        .flatten();
    Ok(json(StatusCode::OK, &Page { data, next }))
}

pub(crate) async fn get(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Response<Body>> {
    let not_found = || {
        Error::new(
            llmgate_core::ErrorKind::NotFound,
            format!("No logged request `{id}`."),
        )
        .with_code("request_not_found")
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    state.request_log.flush().await;
    let Some(row) = state.request_log.store.get(id).await? else {
        return Err(not_found());
    };
    if principal.is_admin() {
        return Ok(json(StatusCode::OK, &row));
    }
    // Another user's row is answered as missing: its existence is not the caller's business.
    let me = principal.user.to_string();
    let reader = LogQuery {
        teams: state.storage.teams.teams_of(&me).await?,
        user_id: Some(me),
        ..LogQuery::default()
    };
    if reader.owns(&row) {
        Ok(json(StatusCode::OK, &row))
    } else {
        Err(not_found())
    }
}

/// A page's `next`, passed back.
fn cursor(text: Option<&str>) -> Result<Option<Cursor>> {
    let Some(text) = text else {
        return Ok(None);
    };
    Cursor::parse(text).map(Some).ok_or_else(|| {
        Error::invalid_request(format!(
            "`before` must be the `next` of a previous page, got `{text}`."
        ))
        .with_param("before")
    })
}

/// `ok`, `error` or an HTTP status.
fn status_filter(text: Option<&str>) -> Result<StatusFilter> {
    match text {
        None => Ok(StatusFilter::Any),
        Some("ok") => Ok(StatusFilter::Ok),
        Some("error") => Ok(StatusFilter::Error),
        Some(code) => match code.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(StatusFilter::Code(code)),
            _ => Err(Error::invalid_request(format!(
                "`status` must be `ok`, `error` or an HTTP status, got `{code}`."
            ))
            .with_param("status")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_ok_error_or_a_code() {
        assert_eq!(status_filter(None).unwrap(), StatusFilter::Any);
        assert_eq!(status_filter(Some("ok")).unwrap(), StatusFilter::Ok);
        assert_eq!(status_filter(Some("error")).unwrap(), StatusFilter::Error);
        assert_eq!(status_filter(Some("404")).unwrap(), StatusFilter::Code(404));
        for bad in ["fine", "42", "600", "-1"] {
            assert_eq!(
                status_filter(Some(bad)).unwrap_err().param(),
                Some("status")
            );
        }
    }
}
