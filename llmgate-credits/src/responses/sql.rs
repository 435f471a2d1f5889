//! [`SqlResponseStore`]: stored responses in the `stored_responses` table (migration 0400), on
//! the ledger's pool.

use llmgate_core::{Error, Result};
use serde_json::Value;

use super::chain::{ChainRow, conversation};
use super::{MAX_CHAIN_DEPTH, StoredResponse};
use crate::error::database_error;
use crate::users::{SqlPool, on_pool};

/// Rows deleted per statement by [`SqlResponseStore::prune`]: short transactions, so pruning a
/// large backlog never holds the table for long.
const PRUNE_BATCH: i64 = 1000;

/// A new row, or the same owner's row replaced (a response stored again as it completes);
/// another owner's row with the same id is left alone (no row changes).
const UPSERT: &str = "\
INSERT INTO stored_responses \
(id, owner, created_at, model, previous_response_id, input_items, response) \
VALUES ($1, $2, $3, $4, $5, $6, $7) \
ON CONFLICT (id) DO UPDATE SET model = excluded.model, \
previous_response_id = excluded.previous_response_id, input_items = excluded.input_items, \
response = excluded.response \
WHERE stored_responses.owner = excluded.owner";

const SELECT: &str = "\
SELECT id, owner, created_at, model, previous_response_id, input_items, response \
FROM stored_responses WHERE owner = $1 AND id = $2";

const DELETE: &str = "DELETE FROM stored_responses WHERE owner = $1 AND id = $2";

const PRUNE: &str = "\
DELETE FROM stored_responses WHERE id IN \
(SELECT id FROM stored_responses WHERE created_at < $1 LIMIT $2)";

/// The chain ending at `$2`, newest first in the walk and oldest first in the result, every
/// step the owner's own, and at most one row past the depth limit `$3` (so that a chain that is
/// too long shows as one).
const CHAIN: &str = "\
WITH RECURSIVE chain (id, previous_response_id, input_items, response, depth) AS ( \
SELECT id, previous_response_id, input_items, response, 1 \
FROM stored_responses WHERE owner = $1 AND id = $2 \
UNION ALL \
SELECT r.id, r.previous_response_id, r.input_items, r.response, c.depth + 1 \
FROM stored_responses r JOIN chain c ON r.id = c.previous_response_id \
WHERE r.owner = $1 AND c.depth <= $3 \
) \
SELECT input_items, response FROM chain ORDER BY depth DESC";

type Row = (String, String, i64, String, Option<String>, String, String);

fn from_row(
    (id, owner, created_at, model, previous_response_id, input_items, response): Row,
) -> StoredResponse {
    StoredResponse {
        id,
        owner,
        created_at,
        model,
        previous_response_id,
        input_items,
        response,
    }
}

/// Stored responses in the same SQLite or PostgreSQL database as the ledger.
#[derive(Debug, Clone)]
pub struct SqlResponseStore {
    pool: SqlPool,
}

impl SqlResponseStore {
    /// Use the ledger's pool; its migrations created the table.
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }

    /// Store `r`, or replace the owner's earlier version of it. `input_items` must be a JSON
    /// array and `response` a JSON object; an id another owner holds is refused (409).
    pub async fn put(&self, r: &StoredResponse) -> Result<()> {
        check_json(r)?;
        let written = on_pool!(&self.pool, |db| sqlx::query(UPSERT)
            .bind(&r.id)
            .bind(&r.owner)
            .bind(r.created_at)
            .bind(&r.model)
            .bind(&r.previous_response_id)
            .bind(&r.input_items)
            .bind(&r.response)
            .execute(db)
            .await
            .map_err(database_error("store a response"))?
            .rows_affected());
        if written == 0 {
            return Err(
                Error::conflict(format!("The response id `{}` is already taken.", r.id))
                    .with_code("response_exists"),
            );
        }
        Ok(())
    }

    /// The owner's response `id`; `None` when there is none (or it is another owner's).
    pub async fn get(&self, owner: &str, id: &str) -> Result<Option<StoredResponse>> {
        let row: Option<Row> = on_pool!(&self.pool, |db| sqlx::query_as(SELECT)
            .bind(owner)
            .bind(id)
            .fetch_optional(db)
            .await
            .map_err(database_error("read a stored response"))?);
        Ok(row.map(from_row))
    }

    /// Delete the owner's response `id`; whether there was one. Responses that continue it
    /// stay, and their conversations now begin after it.
    pub async fn delete(&self, owner: &str, id: &str) -> Result<bool> {
        let deleted = on_pool!(&self.pool, |db| sqlx::query(DELETE)
            .bind(owner)
            .bind(id)
            .execute(db)
            .await
            .map_err(database_error("delete a stored response"))?
            .rows_affected());
        Ok(deleted > 0)
    }

    /// The whole conversation up to and including `id`: for each response in the chain
    /// (oldest first) its input items then its output items (the `output` array of
    /// `response`), as JSON values. `None` if `id` is unknown or not the owner's. One query;
    /// a chain longer than [`MAX_CHAIN_DEPTH`] is a 400 (`conversation_too_long`).
    pub async fn conversation(&self, owner: &str, id: &str) -> Result<Option<Vec<Value>>> {
        // The limit is a small constant; the cast cannot truncate.
        let depth = MAX_CHAIN_DEPTH as i32;
        let rows: Vec<ChainRow> = on_pool!(&self.pool, |db| sqlx::query_as(CHAIN)
            .bind(owner)
            .bind(id)
            .bind(depth)
            .fetch_all(db)
            .await
            .map_err(database_error("read a conversation"))?);
        if rows.is_empty() {
            return Ok(None);
        }
        conversation(&rows).map(Some)
    }

    /// Delete responses created before `before` (unix seconds), in short batches; returns how
    /// many.
    pub async fn prune(&self, before: i64) -> Result<u64> {
        let mut total = 0;
        loop {
            let deleted = on_pool!(&self.pool, |db| sqlx::query(PRUNE)
                .bind(before)
                .bind(PRUNE_BATCH)
                .execute(db)
                .await
                .map_err(database_error("prune stored responses"))?
                .rows_affected());
            total += deleted;
            if deleted < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// What the gateway stores is its own JSON: a wrong shape is a bug, caught before it is kept.
fn check_json(r: &StoredResponse) -> Result<()> {
    let input_is_array = serde_json::from_str::<Value>(&r.input_items).is_ok_and(|v| v.is_array());
    let response_is_object =
        serde_json::from_str::<Value>(&r.response).is_ok_and(|v| v.is_object());
    if input_is_array && response_is_object {
        Ok(())
    } else {
        tracing::error!(id = %r.id, "a response to store is not the JSON expected");
        Err(Error::internal("The response could not be stored."))
    }
}
