//! Whose ledger account a credits or usage request reads: a user's, or a team's when it names
//! `team_id` (members and admins only).

use llmgate_core::{Error, ErrorKind, Result};
use llmgate_credits::users::{Team, team_account};

use crate::auth::Principal;
use crate::state::AppState;

/// The account of `team_id` for a caller who may read it (an admin, or a member of the team);
/// 403 `not_team_member` for anyone else, 404 for a team that does not exist (to admins only;
/// others cannot tell it from one they are not in).
pub(crate) async fn team_for_reading(
    state: &AppState,
    principal: &Principal,
    team_id: &str,
) -> Result<(String, Team)> {
    let teams = &state.storage.teams;
    let member = teams.role_of(team_id, &principal.user).await?.is_some();
    if !member && !principal.is_admin() {
        return Err(Error::permission_denied(format!(
            "You are not a member of the team `{team_id}`."
        ))
        .with_param("team_id")
        .with_code("not_team_member"));
    }
    let Some(team) = teams.get(team_id).await? else {
        return Err(no_such_team(team_id));
    };
    Ok((team_account(team_id), team))
}

/// 404 for a team id that names no team.
pub(crate) fn no_such_team(team_id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("There is no team `{team_id}`."),
    )
    .with_param("team_id")
    .with_code("team_not_found")
}
