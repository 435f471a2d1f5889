//! Teams (migration 0410): a ledger account of its own (`team:<team_id>`, see
//! [`team_account`](super::team_account)) with a tier, and members who are its owners or
//! plain members. Owners make team keys, which spend the team's balance at the team's tier;
//! members read the team's balance, ledger and usage.

use llmgate_core::memory::unix_now;
use llmgate_core::{Error, Result};
use serde::Serialize;

use super::pool::{SqlPool, on_pool};
use crate::error::database_error;

/// A member's standing in a team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamRole {
    /// Makes team keys; reads the team's books.
    Owner,
    /// Reads the team's books.
    Member,
}

impl TeamRole {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            TeamRole::Owner => "owner",
            TeamRole::Member => "member",
        }
    }
}

impl std::str::FromStr for TeamRole {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "owner" => Ok(TeamRole::Owner),
            "member" => Ok(TeamRole::Member),
            _ => Err(Error::invalid_request(format!(
                "Unknown team role `{text}`: use `owner` or `member`."
            ))
            .with_param("role")),
        }
    }
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Team {
    /// Chosen by the admin who made it; same rules as a user id.
    pub team_id: String,
    /// The tier its keys are charged at and its monthly grant comes from.
    pub tier: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// One member of a team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamMember {
    /// The member.
    pub user_id: String,
    /// Owner or member.
    pub role: TeamRole,
}

const INSERT_TEAM: &str = "\
INSERT INTO teams (team_id, tier, created_at) VALUES ($1, $2, $3) \
ON CONFLICT (team_id) DO NOTHING RETURNING created_at";
const SELECT_TEAM: &str = "SELECT team_id, tier, created_at FROM teams WHERE team_id = $1";
const LIST_TEAMS: &str = "SELECT team_id, tier, created_at FROM teams ORDER BY team_id LIMIT 500";
const UPSERT_MEMBER: &str = "\
INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role";
const DELETE_MEMBER: &str = "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2";
const SELECT_MEMBERS: &str =
    "SELECT user_id, role FROM team_members WHERE team_id = $1 ORDER BY user_id";
const SELECT_TEAMS_OF: &str =
    "SELECT team_id FROM team_members WHERE user_id = $1 ORDER BY team_id LIMIT 500";
const SELECT_ROLE: &str = "SELECT role FROM team_members WHERE team_id = $1 AND user_id = $2";

/// Teams and their members in the ledger's database.
#[derive(Debug, Clone)]
pub struct SqlTeamStore {
    pool: SqlPool,
}

impl SqlTeamStore {
    /// Use the ledger's pool; its migrations created the tables.
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }

    /// Make a team; 409 `team_exists` when the id is taken.
    pub async fn create(&self, team_id: &str, tier: &str) -> Result<Team> {
        let now = unix_now();
        let created: Option<i64> = on_pool!(&self.pool, |db| sqlx::query_scalar(INSERT_TEAM)
            .bind(team_id)
            .bind(tier)
            .bind(now)
            .fetch_optional(db)
            .await
            .map_err(database_error("create a team"))?);
        let Some(created_at) = created else {
            return Err(
                Error::conflict(format!("The team `{team_id}` already exists."))
                    .with_param("team_id")
                    .with_code("team_exists"),
            );
        };
        Ok(Team {
            team_id: team_id.to_owned(),
            tier: tier.to_owned(),
            created_at,
        })
    }

    /// The team with this id.
    pub async fn get(&self, team_id: &str) -> Result<Option<Team>> {
        let row: Option<(String, String, i64)> =
            on_pool!(&self.pool, |db| sqlx::query_as(SELECT_TEAM)
                .bind(team_id)
                .fetch_optional(db)
                .await
                .map_err(database_error("read a team"))?);
        Ok(row.map(|(team_id, tier, created_at)| Team {
            team_id,
            tier,
            created_at,
        }))
    }

    /// Every team by id (at most 500).
    pub async fn list(&self) -> Result<Vec<Team>> {
        let rows: Vec<(String, String, i64)> =
            on_pool!(&self.pool, |db| sqlx::query_as(LIST_TEAMS)
                .fetch_all(db)
                .await
                .map_err(database_error("list teams"))?);
        Ok(rows
            .into_iter()
            .map(|(team_id, tier, created_at)| Team {
                team_id,
                tier,
                created_at,
            })
            .collect())
    }

    /// Add a member, or change their role.
    pub async fn set_member(&self, team_id: &str, user_id: &str, role: TeamRole) -> Result<()> {
        on_pool!(&self.pool, |db| sqlx::query(UPSERT_MEMBER)
            .bind(team_id)
            .bind(user_id)
            .bind(role.as_str())
            .bind(unix_now())
            .execute(db)
            .await
            .map_err(database_error("add a team member"))?
            .rows_affected());
        Ok(())
    }

    /// Remove a member; `false` when they were not one.
    pub async fn remove_member(&self, team_id: &str, user_id: &str) -> Result<bool> {
        let removed = on_pool!(&self.pool, |db| sqlx::query(DELETE_MEMBER)
            .bind(team_id)
            .bind(user_id)
            .execute(db)
            .await
            .map_err(database_error("remove a team member"))?
            .rows_affected());
        Ok(removed > 0)
    }

    /// A team's members by user id.
    pub async fn members(&self, team_id: &str) -> Result<Vec<TeamMember>> {
        let rows: Vec<(String, String)> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT_MEMBERS)
            .bind(team_id)
            .fetch_all(db)
            .await
            .map_err(database_error("list team members"))?);
        rows.into_iter()
            .map(|(user_id, role)| {
                Ok(TeamMember {
                    user_id,
                    role: role
                        .parse()
                        .map_err(|_| Error::internal("a stored team role is unknown"))?,
                })
            })
            .collect()
    }

    /// The teams a user is a member (or owner) of.
    pub async fn teams_of(&self, user_id: &str) -> Result<Vec<String>> {
        Ok(on_pool!(&self.pool, |db| sqlx::query_scalar(
            SELECT_TEAMS_OF
        )
        .bind(user_id)
        .fetch_all(db)
        .await
        .map_err(database_error("list a user's teams"))?))
    }

    /// A user's role in a team; `None` when they are not a member.
    pub async fn role_of(&self, team_id: &str, user_id: &str) -> Result<Option<TeamRole>> {
        let role: Option<String> = on_pool!(&self.pool, |db| sqlx::query_scalar(SELECT_ROLE)
            .bind(team_id)
            .bind(user_id)
            .fetch_optional(db)
            .await
            .map_err(database_error("read a team role"))?);
        role.map(|r| {
            r.parse()
                .map_err(|_| Error::internal("a stored team role is unknown"))
        })
        .transpose()
    }
}
