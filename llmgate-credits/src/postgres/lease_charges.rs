//! Phase 1's charges on PostgreSQL (see `lease_batch`): every lease of a run charged in one
//! statement, whatever the number of leases.
//!
//! A run over one hot account touches a lease or two; one over a thousand accounts touches a
//! lease per charge, and a statement per lease made the ledger writer one round trip per
//! request, which bounded paid throughput over many accounts. The run's leases (each with its
//! charges combined, `lease_runs::CombinedRows`) go as arrays; a lease the statement leaves as
//! it was is tried one charge at a time by the caller (`apply_lease_charges`).

use std::collections::HashMap;

use llmgate_core::Result;
use sqlx::{Postgres, Transaction};

use super::PostgresCreditStore;
use crate::error::database_error;
use crate::sql::lease_runs::CombinedRows;
use crate::sql::statements as sql;

impl PostgresCreditStore {
    /// Charge every lease of `rows` at once: the leases charged, with their owners.
    pub(super) async fn charge_combined(
        tx: &mut Transaction<'static, Postgres>,
        rows: &CombinedRows,
    ) -> Result<HashMap<i64, String>> {
        Ok(
            sqlx::query_as::<Postgres, (i64, String)>(sql::PG_CHARGE_LEASES)
                .bind(&rows.lease_id)
                .bind(&rows.cost)
                .bind(&rows.first_seq)
                .bind(&rows.last_seq)
                .bind(&rows.expires_at)
                .fetch_all(&mut **tx)
                .await
                .map_err(database_error("charge leases"))?
                .into_iter()
                .collect(),
        )
    }
}
