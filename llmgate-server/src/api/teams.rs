//! The admin API for teams (`llm.configure`): `GET|POST /api/v1/admin/teams`,
//! `POST /api/v1/admin/teams/{team_id}/members`,
//! `DELETE /api/v1/admin/teams/{team_id}/members/{user_id}`.
//!
//! A team is a ledger account of its own (`team:<team_id>`) with a tier and that tier's
//! monthly grant; its owners make team keys, which spend the team's balance.
//!
//! Contract: docs/http-api.md#teams

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use llmgate_core::{Error, ErrorKind, Result, pricing::micros_to_credits};
use llmgate_credits::users::{Team, TeamRole, check_user_id, team_account};
use serde::Deserialize;
use serde_json::{Value, json};

use super::accounts::no_such_team;
use super::body::read_json;
use super::response::{Body, json as json_response};
use crate::auth::Principal;
use crate::state::AppState;

/// `GET /api/v1/admin/teams`: every team with its members and balance.
pub(crate) async fn list(state: &AppState) -> Result<Response<Body>> {
    let teams = state.storage.teams.list().await?;
    let mut data = Vec::with_capacity(teams.len());
    for team in &teams {
        data.push(team_json(state, team).await?);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({ "object": "list", "data": data }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTeam {
    team_id: String,
    tier: String,
}

/// `POST /api/v1/admin/teams {"team_id","tier"}`: grants the tier's monthly credits.
pub(crate) async fn create(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let new: NewTeam = read_json(request, &state.config.server).await?;
    check_user_id(&new.team_id).map_err(|_| {
        Error::invalid_request(
            "`team_id` must be 1 to 64 characters of letters, digits, `.`, `_`, `-` or `@`.",
        )
        .with_param("team_id")
    })?;
    if !state.tiers.contains_key(&new.tier) {
        return Err(
            Error::invalid_request(format!("Unknown tier `{}`.", new.tier))
                .with_param("tier")
                .with_code("unknown_tier"),
        );
    }
    let team = state.storage.teams.create(&new.team_id, &new.tier).await?;
    state
        .storage
        .users
        .grant_team(&team.team_id, &team.tier)
        .await?;
    tracing::info!(team_id = %team.team_id, tier = %team.tier, by = %principal.user, "created a team");
    Ok(json_response(
        StatusCode::CREATED,
        &team_json(state, &team).await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewMember {
    user_id: String,
    role: String,
}

/// `POST /api/v1/admin/teams/{team_id}/members {"user_id","role"}`: add, or change the role.
pub(crate) async fn add_member(
    state: &AppState,
    principal: &Principal,
    request: Request<Incoming>,
    team_id: &str,
) -> Result<Response<Body>> {
    let new: NewMember = read_json(request, &state.config.server).await?;
    let role: TeamRole = new.role.parse()?;
    let Some(team) = state.storage.teams.get(team_id).await? else {
        return Err(no_such_team(team_id));
    };
    if state
        .storage
        .users
        .store()
        .get(&new.user_id)
        .await?
        .is_none()
    {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("There is no user `{}`.", new.user_id),
        )
        .with_param("user_id")
        .with_code("user_not_found"));
    }
    let teams = &state.storage.teams;
    teams.set_member(team_id, &new.user_id, role).await?;
    // Their cached team keys are read again: a demoted owner's keys stop at once here.
    state.storage.users.forget_user(&new.user_id);
    tracing::info!(team_id, user_id = %new.user_id, role = role.as_str(), by = %principal.user, "set a team member");
    Ok(json_response(
        StatusCode::OK,
        &team_json(state, &team).await?,
    ))
}

/// `DELETE /api/v1/admin/teams/{team_id}/members/{user_id}`: their team keys stop working.
pub(crate) async fn remove_member(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
    user_id: &str,
) -> Result<Response<Body>> {
    if !state.storage.teams.remove_member(team_id, user_id).await? {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("`{user_id}` is not a member of the team `{team_id}`."),
        )
        .with_code("member_not_found"));
    }
    state.storage.users.forget_user(user_id);
    tracing::info!(team_id, user_id, by = %principal.user, "removed a team member");
    Ok(json_response(
        StatusCode::OK,
        &json!({ "team_id": team_id, "user_id": user_id, "removed": true }),
    ))
}

async fn team_json(state: &AppState, team: &Team) -> Result<Value> {
    let members = state.storage.teams.members(&team.team_id).await?;
    let balance_micros = state
        .gateway
        .credits()
        .balance(&team_account(&team.team_id))
        .await?;
    Ok(json!({
        "team_id": team.team_id,
        "tier": team.tier,
        "created_at": team.created_at,
        "members": members,
        "balance_micros": balance_micros,
        "balance": micros_to_credits(balance_micros).to_string(),
    }))
}
