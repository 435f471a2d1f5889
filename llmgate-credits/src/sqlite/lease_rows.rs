//! A run's lease charges on SQLite (see `lease_runs`): every lease of the run charged with a
//! statement per chunk of leases (`run_statements`), not one per lease.

use std::collections::HashMap;

use llmgate_core::{Error, Result};
use sqlx::{Sqlite, Transaction};

use super::SqliteCreditStore;
use crate::error::database_error;
use crate::sql::lease_runs::{CombinedRows, in_chunks};
use crate::sql::run_statements::charge_leases_sql;

impl SqliteCreditStore {
    /// Charge every lease of `rows`: the leases charged, with their owners.
    pub(super) async fn charge_combined(
        tx: &mut Transaction<'static, Sqlite>,
        rows: &CombinedRows,
    ) -> Result<HashMap<i64, String>> {
        let mut owners = HashMap::with_capacity(rows.lease_id.len());
        let positions: Vec<usize> = (0..rows.lease_id.len()).collect();
        for these in in_chunks(&positions) {
            let sql = charge_leases_sql(these.len())
                .ok_or_else(|| Error::internal("no lease charge statement of that size"))?;
            let mut charge = sqlx::query_as::<Sqlite, (i64, String)>(sql);
            for &at in these {
                charge = charge
                    .bind(rows.lease_id[at])
                    .bind(rows.cost[at])
                    .bind(rows.first_seq[at])
                    .bind(rows.last_seq[at])
                    .bind(rows.expires_at[at]);
            }
            let charged = charge
                .fetch_all(&mut **tx)
                .await
                .map_err(database_error("charge leases"))?;
            owners.extend(charged);
        }
        Ok(owners)
    }
}
