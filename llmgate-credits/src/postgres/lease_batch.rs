//! A ledger batch of lease writes on PostgreSQL, with the balance rows locked last, once, for
//! a few statements before the commit.
//!
//! Several replicas share the balance row of a busy account. A lease charge does not move the
//! balance, but its two entries must sit between the row's neighbours (`balance_after` is the
//! running sum in id order), so whoever writes entries of an account locks its balance row
//! until commit. Written a charge at a time, as before, a batch of 512 charges held the row for
//! 512 round trips: the other replica's takes and batches queued behind it for up to a second,
//! and a replica's own take (which locks its lease row first) then stalled its own writer.
//!
//! So a batch of lease writes (charges, returns, usage records; nothing else) is written in
//! three phases, in one transaction:
//! 1. **Lease rows**, in the batch's order: each run of consecutive charges as one `UPDATE`
//!    of all its leases (`lease_charges`), each return as its `UPDATE`/`DELETE`. These rows are
//!    this replica's own; only its takes (lease row, then balance row) and reclaims contend.
//! 2. **Balance rows**, of every account the batch moves, in two statements (`lease_entries`):
//!    lock them in `user_id` order, then move each by what the batch's returns give back and
//!    insert all the entries from arrays, each `balance_after` computed from the locked row.
//! 3. **Usage rows**, in key order as every batch, in one upsert (`usage_rows`); the commit.
//!
//! Every writer so locks lease rows, then balance rows in one order, then usage rows: two
//! replicas' batches cannot deadlock, and another writer waits for a balance row at most three
//! statements and a commit, whatever the size of the batch. Each write answers exactly as when written alone: write numbers,
//! over-drawn and gone leases are decided by the same conditional statements.

use std::collections::HashMap;

use llmgate_core::credits::{LeaseCharge, LeaseReturn, LedgerWrite, Written};
use llmgate_core::{Error, Result};
use sqlx::{Postgres, Transaction};

use super::PostgresCreditStore;
use super::lease_entries::Entries;
use super::lease_step::Step;
use super::usage_rows::add_usage_rows;
use crate::error::database_error;
use crate::sql::lease_runs::{cost_of, lease_charge};
use crate::sql::{UsageTotals, parse_hold_id};

/// Whether this path writes the batch: lease writes and usage records only.
fn only_lease_writes(writes: &[LedgerWrite]) -> bool {
    writes.iter().all(|write| {
        matches!(
            write,
            LedgerWrite::LeaseCharge(_) | LedgerWrite::LeaseReturn(_) | LedgerWrite::Usage(_)
        )
    })
}

impl PostgresCreditStore {
    /// Write `writes` in the three phases above, if they are all lease writes (or usage);
    /// `None`: not such a batch, the general path writes it.
    pub(super) async fn lease_batch(&self, writes: &[LedgerWrite]) -> Result<Option<Vec<Written>>> {
        if writes.is_empty() || !only_lease_writes(writes) {
            return Ok(None);
        }
        let failed = || database_error("write a batch of lease writes");
        let now = llmgate_core::memory::unix_now();
        let mut tx = self.begin_write().await.map_err(failed())?;
        let mut totals = UsageTotals::default();
        let steps = Self::lease_rows(&mut tx, writes, &mut totals, now).await?;
        let spendable = Self::balance_rows(&mut tx, &steps, now).await?;
        add_usage_rows(&mut tx, totals).await?;
        tx.commit().await.map_err(failed())?;
        Ok(Some(answers(steps, &spendable)))
    }

    /// Phase 1: every write's lease row, in the batch's order; applied charges' usage goes
    /// to `totals`.
    async fn lease_rows<'w>(
        tx: &mut Transaction<'static, Postgres>,
        writes: &'w [LedgerWrite],
        totals: &mut UsageTotals,
        now: i64,
    ) -> Result<Vec<Step<'w>>> {
        let mut steps = Vec::with_capacity(writes.len());
        for part in writes.chunk_by(|a, b| lease_charge(a).is_some() && lease_charge(b).is_some()) {
            let charges: Vec<&LeaseCharge> = part.iter().filter_map(lease_charge).collect();
            if charges.len() == part.len() {
                let outcomes = Self::apply_lease_charges(tx, &charges, now).await?;
                for (charge, outcome) in charges.into_iter().zip(outcomes) {
                    steps.push(match outcome {
                        Ok(user_id) => {
                            totals.add(&charge.usage, cost_of(charge));
                            Step::Charged { user_id, charge }
                        }
                        Err(written) => Step::Answered(written),
                    });
                }
                continue;
            }
            for write in part {
                steps.push(match write {
                    LedgerWrite::LeaseReturn(give) => Self::return_step(tx, give).await?,
                    LedgerWrite::Usage(usage) => {
                        if usage.cost_micros < 0 {
                            return Err(Error::internal("negative usage cost"));
                        }
                        totals.add(usage, usage.cost_micros);
                        Step::Answered(Written::Recorded)
                    }
                    _ => return Err(Error::internal("not a lease write")),
                });
            }
        }
        Ok(steps)
    }

    /// A return's lease row, as the step it makes.
    async fn return_step<'w>(
        tx: &mut Transaction<'static, Postgres>,
        give: &LeaseReturn,
    ) -> Result<Step<'w>> {
        let Some(lease_id) = parse_hold_id(&give.lease_id) else {
            return Ok(Step::Answered(Written::LeaseGone));
        };
        Ok(match Self::return_lease_row(tx, lease_id, give).await? {
            Some((user_id, amount)) if amount > 0 => Step::Returned {
                user_id,
                amount,
                lease_id,
            },
            Some(_) => Step::Answered(Written::LeaseReturned),
            None => Step::Answered(
                Self::lease_missed(tx, lease_id, give.seq, Written::LeaseReturned).await?,
            ),
        })
    }

    /// Phase 2: the balance rows of every account the batch moves, locked in `user_id` order,
    /// and all their entries in one statement; what each account may spend afterwards.
    async fn balance_rows(
        tx: &mut Transaction<'static, Postgres>,
        steps: &[Step<'_>],
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        let entries = Entries::of(steps)?;
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        entries.write(tx, now).await
    }
}

/// Each write's answer. A charge reports what its account may spend right after it: the
/// account's figure at the batch's end plus the account's charges after it in the batch.
fn answers(steps: Vec<Step<'_>>, spendable: &[(String, i64)]) -> Vec<Written> {
    let mut later: HashMap<&str, i64> = spendable
        .iter()
        .map(|(user_id, left)| (user_id.as_str(), *left))
        .collect();
    let mut answers: Vec<Written> = steps
        .into_iter()
        .rev()
        .map(|step| match step {
            Step::Charged { user_id, charge } => {
                Written::LeaseCharged(later.get_mut(user_id.as_str()).map(|left| {
                    let now = *left;
                    *left = left.saturating_add(cost_of(charge));
                    now
                }))
            }
            Step::Returned { .. } => Written::LeaseReturned,
            Step::Answered(written) => written,
        })
        .collect();
    answers.reverse();
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lease_runs::test_charge as charge;

    #[test]
    fn each_charge_reports_what_its_account_may_spend_right_after_it() {
        let (a, b, c) = (charge("7", 1, 100), charge("7", 2, 30), charge("8", 1, 5));
        let steps = vec![
            Step::charged("ann", &a),
            Step::charged("bob", &c),
            Step::Answered(Written::LeaseCharged(None)),
            Step::charged("ann", &b),
        ];
        let spendable = [("ann".to_owned(), 1_000), ("bob".to_owned(), 50)];
        assert_eq!(
            answers(steps, &spendable),
            [
                Written::LeaseCharged(Some(1_030)),
                Written::LeaseCharged(Some(50)),
                Written::LeaseCharged(None),
                Written::LeaseCharged(Some(1_000)),
            ]
        );
    }

    #[test]
    fn only_batches_of_lease_writes_take_this_path() {
        let lease = LedgerWrite::LeaseCharge(charge("7", 1, 1));
        assert!(only_lease_writes(std::slice::from_ref(&lease)));
        let hold = LedgerWrite::Release(llmgate_core::credits::Hold {
            id: "1".into(),
            user_id: "ann".into(),
            amount_micros: 1,
        });
        assert!(!only_lease_writes(&[lease, hold]));
    }
}
