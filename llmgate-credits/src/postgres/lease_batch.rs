//! A ledger batch of lease writes on PostgreSQL, with each account's balance row locked last,
//! once, for one statement before the commit.
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
//! 1. **Lease rows**, in the batch's order: each lease's consecutive charges as one `UPDATE`
//!    (as SQLite's runs, `lease_runs`), each return as its `UPDATE`/`DELETE`. These rows are
//!    this replica's own; only its takes (lease row, then balance row) and reclaims contend.
//! 2. **Balance rows**, one statement per account in `user_id` order: lock the row (moved by
//!    the sum of the batch's returns) and insert every entry of the account, in batch order,
//!    each `balance_after` computed from the row's value (`PG_LEASE_ENTRIES`).
//! 3. **Usage rows** in key order (as every batch), then the commit.
//!
//! Every writer so locks lease rows, then balance rows in one order, then usage rows: two
//! replicas' batches cannot deadlock, and another writer waits for a balance row at most one
//! statement and a commit. Each write answers exactly as when written alone: write numbers,
//! over-drawn and gone leases are decided by the same conditional statements.

use llmgate_core::credits::{
    LeaseCharge, LeaseReturn, LedgerWrite, TransactionKind, UsageRecord, Written,
};
use llmgate_core::{Error, Result};
use sqlx::{Postgres, Transaction};

use super::PostgresCreditStore;
use crate::error::database_error;
use crate::sql::lease_runs::{cost_of, lease_charge};
use crate::sql::{UsageTotals, kind_name, parse_hold_id, statements as sql, tokens_to_sql};

/// What phase 1 made of one write.
#[derive(Debug)]
enum Step<'a> {
    /// Taken out of its lease: the account gets its `release` and `charge` entries.
    Charged {
        user_id: String,
        charge: &'a LeaseCharge,
    },
    /// Taken out of its lease, to go back to the balance (a `release` entry).
    Returned {
        user_id: String,
        amount: i64,
        lease_id: i64,
    },
    /// Nothing more to write; the write's answer.
    Answered(Written),
}

impl Step<'_> {
    fn account(&self) -> Option<&str> {
        match self {
            Step::Charged { user_id, .. } | Step::Returned { user_id, .. } => Some(user_id),
            Step::Answered(_) => None,
        }
    }
}

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
        Self::add_usage_totals(&mut tx, totals).await?;
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
                    LedgerWrite::LeaseReturn(give) => Self::return_lease_row(tx, give).await?,
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

    /// A return's lease row: shrunk, or deleted when it closes.
    async fn return_lease_row<'w>(
        tx: &mut Transaction<'static, Postgres>,
        give: &LeaseReturn,
    ) -> Result<Step<'w>> {
        let Some(lease_id) = parse_hold_id(&give.lease_id) else {
            return Ok(Step::Answered(Written::LeaseGone));
        };
        let failed = || database_error("return a lease");
        let returned: Option<(String, i64)> = if give.close {
            sqlx::query_as::<Postgres, (String, i64)>(sql::CLOSE_LEASE)
                .bind(lease_id)
                .bind(give.seq)
                .fetch_optional(&mut **tx)
                .await
                .map_err(failed())?
        } else {
            sqlx::query_scalar::<Postgres, String>(sql::SHRINK_LEASE)
                .bind(lease_id)
                .bind(give.amount_micros)
                .bind(give.seq)
                .fetch_optional(&mut **tx)
                .await
                .map_err(failed())?
                .map(|user_id| (user_id, give.amount_micros))
        };
        Ok(match returned {
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

    /// Phase 2: each account's balance row, in `user_id` order, with its entries; what each
    /// account may spend once the batch is written.
    async fn balance_rows(
        tx: &mut Transaction<'static, Postgres>,
        steps: &[Step<'_>],
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        let mut accounts: Vec<&str> = steps.iter().filter_map(Step::account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        let mut spendable = Vec::with_capacity(accounts.len());
        for user_id in accounts {
            let entries = Entries::of(user_id, steps)?;
            let (_, left) = sqlx::query_as::<Postgres, (i64, i64)>(sql::PG_LEASE_ENTRIES)
                .bind(user_id)
                .bind(entries.returned)
                .bind(now)
                .bind(&entries.kind)
                .bind(&entries.amount)
                .bind(&entries.offset)
                .bind(&entries.model)
                .bind(&entries.provider)
                .bind(&entries.prompt_tokens)
                .bind(&entries.completion_tokens)
                .bind(&entries.key_source)
                .bind(&entries.request_id)
                .bind(&entries.reason)
                .bind(&entries.cache_read_tokens)
                .bind(&entries.cache_write_tokens)
                .bind(&entries.reasoning_tokens)
                .fetch_optional(&mut **tx)
                .await
                .map_err(database_error("write a lease's entries"))?
                // The lease was taken from it, so the row is there.
                .ok_or_else(|| Error::internal("a held balance is missing"))?;
            spendable.push((user_id.to_owned(), left));
        }
        Ok(spendable)
    }
}

/// One account's entries of a batch, column by column (bound as arrays), in batch order.
/// `offset` is each entry's `balance_after` less the balance before the batch.
#[derive(Debug, Default, PartialEq)]
struct Entries {
    /// What the batch's returns give back to the balance.
    returned: i64,
    kind: Vec<&'static str>,
    amount: Vec<i64>,
    offset: Vec<i64>,
    model: Vec<Option<String>>,
    provider: Vec<Option<String>>,
    prompt_tokens: Vec<Option<i64>>,
    completion_tokens: Vec<Option<i64>>,
    key_source: Vec<Option<&'static str>>,
    request_id: Vec<Option<String>>,
    reason: Vec<String>,
    cache_read_tokens: Vec<Option<i64>>,
    cache_write_tokens: Vec<Option<i64>>,
    reasoning_tokens: Vec<Option<i64>>,
}

impl Entries {
    /// `user_id`'s entries: a charge's `release` (+c, the balance it would be with the charge
    /// still held) then its `charge` (−c); a return's `release` (+r, the balance moves).
    fn of(user_id: &str, steps: &[Step<'_>]) -> Result<Self> {
        let overflow = || Error::internal("a lease write overflows the balance");
        let mut entries = Self::default();
        let mut moved = 0_i64;
        for step in steps.iter().filter(|step| step.account() == Some(user_id)) {
            match step {
                Step::Charged { charge, .. } => {
                    let cost = cost_of(charge);
                    let lease_id = parse_hold_id(&charge.lease_id).unwrap_or(0);
                    let held = moved.checked_add(cost).ok_or_else(overflow)?;
                    let (release, usage) = (Entry::release(lease_id), Some(&charge.usage));
                    entries.push(
                        TransactionKind::Release,
                        cost,
                        held,
                        &release.request(usage),
                    );
                    let charged = Entry::charge(lease_id, &charge.usage);
                    entries.push(TransactionKind::Charge, -cost, moved, &charged);
                }
                Step::Returned {
                    amount, lease_id, ..
                } => {
                    moved = moved.checked_add(*amount).ok_or_else(overflow)?;
                    let release = Entry::release(*lease_id);
                    entries.push(TransactionKind::Release, *amount, moved, &release);
                }
                Step::Answered(_) => {}
            }
        }
        entries.returned = moved;
        Ok(entries)
    }

    fn push(&mut self, kind: TransactionKind, amount: i64, offset: i64, entry: &Entry<'_>) {
        let usage = entry.usage;
        let tokens =
            |count: fn(&UsageRecord) -> u64| usage.map(|usage| tokens_to_sql(count(usage)));
        self.kind.push(kind_name(kind));
        self.amount.push(amount);
        self.offset.push(offset);
        self.model.push(usage.map(|usage| usage.model.clone()));
        self.provider
            .push(usage.map(|usage| usage.provider.clone()));
        self.prompt_tokens.push(tokens(|usage| usage.prompt_tokens));
        self.completion_tokens
            .push(tokens(|usage| usage.completion_tokens));
        self.key_source
            .push(usage.map(|usage| usage.key_source.as_str()));
        self.request_id.push(entry.request_id.clone());
        self.reason.push(format!("lease {}", entry.lease_id));
        self.cache_read_tokens
            .push(tokens(|usage| usage.cache_read_tokens));
        self.cache_write_tokens
            .push(tokens(|usage| usage.cache_write_tokens));
        self.reasoning_tokens
            .push(tokens(|usage| usage.reasoning_tokens));
    }
}

/// What an entry carries beyond its kind and amounts: its lease, its request, and (a `charge`
/// entry only) the usage.
struct Entry<'a> {
    lease_id: i64,
    request_id: Option<String>,
    usage: Option<&'a UsageRecord>,
}

impl<'a> Entry<'a> {
    fn release(lease_id: i64) -> Self {
        Self {
            lease_id,
            request_id: None,
            usage: None,
        }
    }

    fn charge(lease_id: i64, usage: &'a UsageRecord) -> Self {
        Self {
            lease_id,
            request_id: Some(usage.request_id.clone()),
            usage: Some(usage),
        }
    }

    /// The same entry naming the request of `usage` (a charge's `release`).
    fn request(mut self, usage: Option<&UsageRecord>) -> Self {
        self.request_id = usage.map(|usage| usage.request_id.clone());
        self
    }
}

/// Each write's answer. A charge reports what its account may spend right after it: the
/// account's figure at the batch's end plus the account's charges after it in the batch.
fn answers(steps: Vec<Step<'_>>, spendable: &[(String, i64)]) -> Vec<Written> {
    let mut later: Vec<(String, i64)> = spendable.to_vec();
    let mut answers: Vec<Written> = steps
        .into_iter()
        .rev()
        .map(|step| match step {
            Step::Charged { user_id, charge } => {
                let left = later.iter_mut().find(|(user, _)| *user == user_id);
                Written::LeaseCharged(left.map(|(_, left)| {
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
    use llmgate_core::credits::KeySource;

    fn charge(lease_id: &str, seq: i64, cost: i64) -> LeaseCharge {
        LeaseCharge {
            lease_id: lease_id.into(),
            seq,
            usage: UsageRecord {
                user_id: "ann".into(),
                request_id: format!("r{seq}"),
                model: "m".into(),
                provider: "p".into(),
                key_source: KeySource::Platform,
                prompt_tokens: 1,
                completion_tokens: 2,
                cache_read_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 3,
                cost_micros: cost,
                at: 0,
            },
            ttl_secs: 60,
        }
    }

    fn charged<'a>(user: &str, charge: &'a LeaseCharge) -> Step<'a> {
        Step::Charged {
            user_id: user.into(),
            charge,
        }
    }

    #[test]
    fn entries_run_from_the_balance_before_the_batch_in_batch_order() {
        let (a, b) = (charge("7", 1, 100), charge("7", 2, 30));
        let steps = [
            charged("ann", &a),
            charged("bob", &a),
            Step::Returned {
                user_id: "ann".into(),
                amount: 500,
                lease_id: 7,
            },
            Step::Answered(Written::LeaseGone),
            charged("ann", &b),
        ];
        let entries = Entries::of("ann", &steps).unwrap();
        assert_eq!(entries.returned, 500);
        assert_eq!(
            entries.kind,
            ["release", "charge", "release", "release", "charge"]
        );
        assert_eq!(entries.amount, [100, -100, 500, 30, -30]);
        // balance_after = balance before + offset: a charge's release shows it still held.
        assert_eq!(entries.offset, [100, 0, 500, 530, 500]);
        assert_eq!(
            entries.request_id,
            [
                Some("r1".into()),
                Some("r1".into()),
                None,
                Some("r2".into()),
                Some("r2".into())
            ]
        );
        assert_eq!(
            entries.model,
            [None, Some("m".into()), None, None, Some("m".into())]
        );
        assert_eq!(
            entries.reasoning_tokens,
            [None, Some(3), None, None, Some(3)]
        );
        assert!(entries.reason.iter().all(|reason| reason == "lease 7"));
    }

    #[test]
    fn each_charge_reports_what_its_account_may_spend_right_after_it() {
        let (a, b, c) = (charge("7", 1, 100), charge("7", 2, 30), charge("8", 1, 5));
        let steps = vec![
            charged("ann", &a),
            charged("bob", &c),
            Step::Answered(Written::LeaseCharged(None)),
            charged("ann", &b),
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
