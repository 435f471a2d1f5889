//! Phase 1's charges on PostgreSQL (see `lease_batch`): every lease of a run charged in one
//! statement, whatever the number of leases.
//!
//! A run over one hot account touches a lease or two; one over a thousand accounts touches a
//! lease per charge, and a statement per lease made the ledger writer one round trip per
//! request, which bounded paid throughput over many accounts. Each lease's charges are
//! combined as in `lease_runs` and sent as arrays; a lease the statement leaves as it was
//! (gone, holding less, a write applied before) has its charges tried one by one, exactly as
//! when written alone.

use std::collections::HashMap;

use llmgate_core::Result;
use llmgate_core::credits::{LeaseCharge, Written};
use sqlx::{Postgres, Transaction};

use super::PostgresCreditStore;
use crate::error::database_error;
use crate::sql::lease_runs::{CombinedCharge, LeaseGroup, combine, group_by_lease};
use crate::sql::statements as sql;

/// The combined charges of a run, column by column (bound as arrays), one lease each.
#[derive(Debug, Default, PartialEq)]
struct Columns {
    lease_id: Vec<i64>,
    cost: Vec<i64>,
    first_seq: Vec<i64>,
    last_seq: Vec<i64>,
    expires_at: Vec<i64>,
}

impl Columns {
    /// Each group's charges combined, one row per lease; a group whose charges cannot be
    /// combined is left out (tried one by one).
    fn of(groups: &[LeaseGroup], charges: &[&LeaseCharge], now: i64) -> Self {
        let mut columns = Self::default();
        for group in groups {
            let members: Vec<&LeaseCharge> = group.members.iter().map(|&at| charges[at]).collect();
            if let Some(together) = combine(&members, now) {
                columns.push(group.lease_id, &together);
            }
        }
        columns
    }

    fn push(&mut self, lease_id: i64, charge: &CombinedCharge) {
        self.lease_id.push(lease_id);
        self.cost.push(charge.cost);
        self.first_seq.push(charge.first_seq);
        self.last_seq.push(charge.last_seq);
        self.expires_at.push(charge.expires_at);
    }
}

impl PostgresCreditStore {
    /// Take the run's charges out of their leases: per charge, `Ok` with the lease's owner
    /// once applied, else what the charge did (as alone).
    pub(super) async fn charge_leases_at_once(
        tx: &mut Transaction<'static, Postgres>,
        charges: &[&LeaseCharge],
        now: i64,
    ) -> Result<Vec<std::result::Result<String, Written>>> {
        let groups = group_by_lease(charges);
        let columns = Columns::of(&groups, charges, now);
        let owners: HashMap<i64, String> = if columns.lease_id.is_empty() {
            HashMap::new()
        } else {
            sqlx::query_as::<Postgres, (i64, String)>(sql::PG_CHARGE_LEASES)
                .bind(&columns.lease_id)
                .bind(&columns.cost)
                .bind(&columns.first_seq)
                .bind(&columns.last_seq)
                .bind(&columns.expires_at)
                .fetch_all(&mut **tx)
                .await
                .map_err(database_error("charge leases"))?
                .into_iter()
                .collect()
        };
        let mut outcomes = vec![Err(Written::LeaseGone); charges.len()];
        for group in &groups {
            match owners.get(&group.lease_id) {
                Some(user_id) => {
                    for &at in &group.members {
                        outcomes[at] = Ok(user_id.clone());
                    }
                }
                None => Self::charge_each_alone(tx, group, charges, &mut outcomes, now).await?,
            }
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lease_runs::test_charge as charge;

    #[test]
    fn a_lease_whose_charges_repeat_a_write_number_is_left_to_the_one_by_one_path() {
        let (a, b) = (charge("7", 2, 100), charge("7", 2, 100));
        let charges = [&a, &b];
        let columns = Columns::of(&group_by_lease(&charges), &charges, 0);
        assert!(columns.lease_id.is_empty());
    }

    #[test]
    fn each_lease_is_one_row_of_the_arrays_with_its_charges_combined() {
        let (a, b, c) = (charge("7", 1, 100), charge("8", 4, 5), charge("7", 2, 30));
        let charges = [&a, &b, &c];
        let columns = Columns::of(&group_by_lease(&charges), &charges, 0);
        assert_eq!(columns.lease_id, [7, 8]);
        assert_eq!(columns.cost, [130, 5]);
        assert_eq!(
            (columns.first_seq, columns.last_seq),
            (vec![1, 4], vec![2, 4])
        );
    }
}
