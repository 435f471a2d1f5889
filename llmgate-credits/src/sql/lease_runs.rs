//! Lease charges in runs: the consecutive lease charges of a ledger batch, written with a few
//! statements per run instead of a few per charge (SQLite, whose one writer connection pays a
//! hop to the database thread for every statement; PostgreSQL's batches charge their leases
//! the same way, see `postgres::lease_batch`).
//!
//! A run keeps every rule of a charge written alone:
//! - A lease's charges in the run are combined when their write numbers rise, and every
//!   lease of the run is charged at once (the backend's `charge_combined`) where it has seen
//!   none of them and holds their sum: each would then have applied in turn. Otherwise (a
//!   retry, an over-drawn or gone lease) they are tried one by one, with the one-lease
//!   statement, exactly as alone.
//! - Charges do not move balances, so an account's balance is the same for every charge of the
//!   run: it is read once, after the updates. Each applied charge gets its `release` and its
//!   `charge` entry side by side, in the run's order, so every `balance_after` is the running
//!   sum.
//! - What an account may spend is read in the same statement as its balance, once per
//!   account after the updates (the entries move neither balances nor leases): exact for the
//!   end of the run (the charges after it in the run included), which is what low-balance
//!   alerts want.

use std::collections::HashMap;

use llmgate_core::credits::{LeaseCharge, LedgerWrite};

use crate::sql::parse_hold_id;

/// The most charges one entries `INSERT` takes (20 parameters each, far below SQLite's 32,766).
pub(crate) const MOST_CHARGES_PER_INSERT: usize = 128;

/// The charge a write is, if it is one.
pub(crate) fn lease_charge(write: &LedgerWrite) -> Option<&LeaseCharge> {
    match write {
        LedgerWrite::LeaseCharge(charge) => Some(charge),
        _ => None,
    }
}

/// An account a run charged: its balance (the same for every charge of the run) and what it
/// may spend once the run is written.
#[derive(Debug)]
pub(crate) struct RunAccount {
    pub user_id: String,
    pub balance: i64,
    pub spendable: i64,
}

/// `user_id`'s account among a run's (sorted by `user_id`).
pub(crate) fn account_of<'a>(accounts: &'a [RunAccount], user_id: &str) -> Option<&'a RunAccount> {
    accounts
        .binary_search_by(|account| account.user_id.as_str().cmp(user_id))
        .ok()
        .map(|at| &accounts[at])
}

/// The charges of one lease within a run.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LeaseGroup {
    pub lease_id: i64,
    /// Positions in the run, in order.
    pub members: Vec<usize>,
}

/// A run's charges grouped by lease, in the order of each lease's first charge. A charge that
/// names no lease is in no group (it is written as gone).
pub(crate) fn group_by_lease(charges: &[&LeaseCharge]) -> Vec<LeaseGroup> {
    let mut groups: Vec<LeaseGroup> = Vec::new();
    // A run over one hot account touches a lease or two, one over a thousand accounts a
    // lease per charge: an index keeps the second from scanning every group per charge.
    let mut index: HashMap<i64, usize> = HashMap::new();
    for (position, charge) in charges.iter().enumerate() {
        let Some(lease_id) = parse_hold_id(&charge.lease_id) else {
            continue;
        };
        let at = *index.entry(lease_id).or_insert_with(|| {
            groups.push(LeaseGroup {
                lease_id,
                members: Vec::new(),
            });
            groups.len() - 1
        });
        groups[at].members.push(position);
    }
    groups
}

/// A lease's charges as one write: the cost they take together, the write numbers of the
/// first and the last, and the expiry the last renews to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CombinedCharge {
    pub cost: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    pub expires_at: i64,
}

impl CombinedCharge {
    /// One charge as a write of its own.
    pub(crate) fn alone(charge: &LeaseCharge, now: i64) -> Self {
        Self {
            cost: cost_of(charge),
            first_seq: charge.seq,
            last_seq: charge.seq,
            expires_at: expiry_of(charge, now),
        }
    }
}

/// A charge's cost: what leaves the lease (never negative).
pub(crate) fn cost_of(charge: &LeaseCharge) -> i64 {
    charge.usage.cost_micros.max(0)
}

/// When a charge's lease expires once the charge renews it.
pub(crate) fn expiry_of(charge: &LeaseCharge, now: i64) -> i64 {
    now.saturating_add(i64::try_from(charge.ttl_secs).unwrap_or(i64::MAX))
}

/// `charges` (one lease's, in order) as one write, or `None` when applying them together could
/// differ from applying them in turn: write numbers that do not rise (a repeat in the run), or
/// a sum that overflows.
pub(crate) fn combine(charges: &[&LeaseCharge], now: i64) -> Option<CombinedCharge> {
    let (first, last) = (charges.first()?, charges.last()?);
    let rising = charges.windows(2).all(|pair| pair[0].seq < pair[1].seq);
    let cost = charges
        .iter()
        .try_fold(0_i64, |sum, charge| sum.checked_add(cost_of(charge)))?;
    rising.then(|| CombinedCharge {
        cost,
        first_seq: first.seq,
        last_seq: last.seq,
        expires_at: expiry_of(last, now),
    })
}

/// A run's charges combined lease by lease, column by column: a row per lease whose charges
/// can be applied together ([`combine`]); the others are left to the one-by-one path.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CombinedRows {
    pub lease_id: Vec<i64>,
    pub cost: Vec<i64>,
    pub first_seq: Vec<i64>,
    pub last_seq: Vec<i64>,
    pub expires_at: Vec<i64>,
}

impl CombinedRows {
    pub(crate) fn of(groups: &[LeaseGroup], charges: &[&LeaseCharge], now: i64) -> Self {
        let mut rows = Self::default();
        for group in groups {
            let members: Vec<&LeaseCharge> = group.members.iter().map(|&at| charges[at]).collect();
            if let Some(together) = combine(&members, now) {
                rows.lease_id.push(group.lease_id);
                rows.cost.push(together.cost);
                rows.first_seq.push(together.first_seq);
                rows.last_seq.push(together.last_seq);
                rows.expires_at.push(together.expires_at);
            }
        }
        rows
    }
}

/// How many charges each entries `INSERT` of a run of `count` takes: powers of two, largest
/// first, so a few prepared statements serve every run length.
pub(crate) fn insert_sizes(count: usize) -> impl Iterator<Item = usize> {
    let mut left = count;
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let size = if left >= MOST_CHARGES_PER_INSERT {
            MOST_CHARGES_PER_INSERT
        } else {
            1 << left.ilog2()
        };
        left -= size;
        Some(size)
    })
}

/// `items` in consecutive chunks of the sizes [`insert_sizes`] gives, so each chunk has a
/// prepared statement of its size.
pub(crate) fn in_chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    insert_sizes(items.len()).map(move |size| {
        let (chunk, after) = rest.split_at(size);
        rest = after;
        chunk
    })
}

/// The steps that write a run of lease charges inside a batch's transaction, for a store type
/// (see `sql_credit_store!`, which also needs a backend's `charge_combined`). Whole runs with
/// their entries are for a store whose `LEASE_CHARGE_STATEMENT` is `None`: SQLite, whose `?`
/// parameters the run statements use; a charge alone on PostgreSQL is its one statement, and
/// its batches use `apply_lease_charges` only (their entries are its own, `lease_entries`).
macro_rules! sql_lease_charge_runs {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Charge the consecutive lease charges `charges` inside `tx`: one result each, in
            /// order (usage totals aside). A backend with a one-statement charge takes them one
            /// by one.
            async fn charge_leases_in(
                tx: &mut sqlx::Transaction<'static, $db>,
                charges: &[&llmgate_core::credits::LeaseCharge],
            ) -> llmgate_core::Result<Vec<llmgate_core::credits::Written>> {
                use llmgate_core::credits::Written;
                if let Some(statement) = Self::LEASE_CHARGE_STATEMENT {
                    let mut written = Vec::with_capacity(charges.len());
                    for charge in charges {
                        written.push(Self::charge_lease_in(tx, statement, charge).await?);
                    }
                    return Ok(written);
                }
                let now = llmgate_core::memory::unix_now();
                let outcomes = Self::apply_lease_charges(tx, charges, now).await?;
                let accounts = Self::accounts_of(tx, &outcomes).await?;
                Self::append_lease_entries(tx, charges, &outcomes, &accounts, now).await?;
                Ok(outcomes
                    .iter()
                    .map(|outcome| match outcome {
                        Ok(user_id) => Written::LeaseCharged(
                            $crate::sql::lease_runs::account_of(&accounts, user_id)
                                .map(|account| account.spendable),
                        ),
                        Err(written) => written.clone(),
                    })
                    .collect())
            }

            /// Take the run's charges out of their leases: per charge, `Ok` with the lease's
            /// owner once applied, else what the charge did (as alone). Each lease's charges
            /// are combined and every lease charged at once (the backend's `charge_combined`);
            /// a lease that left them is tried one charge at a time.
            async fn apply_lease_charges(
                tx: &mut sqlx::Transaction<'static, $db>,
                charges: &[&llmgate_core::credits::LeaseCharge],
                now: i64,
            ) -> llmgate_core::Result<Vec<Result<String, llmgate_core::credits::Written>>> {
                use llmgate_core::credits::Written;
                use $crate::sql::lease_runs as run;
                let groups = run::group_by_lease(charges);
                let rows = run::CombinedRows::of(&groups, charges, now);
                let owners = if rows.lease_id.is_empty() {
                    std::collections::HashMap::new()
                } else {
                    Self::charge_combined(tx, &rows).await?
                };
                let mut outcomes: Vec<Result<String, Written>> =
                    vec![Err(Written::LeaseGone); charges.len()];
                for group in &groups {
                    match owners.get(&group.lease_id) {
                        Some(user_id) => {
                            for &at in &group.members {
                                outcomes[at] = Ok(user_id.clone());
                            }
                        }
                        // Not all of them at once: each in turn, as alone.
                        None => {
                            Self::charge_each_alone(tx, group, charges, &mut outcomes, now).await?
                        }
                    }
                }
                Ok(outcomes)
            }

            /// The charges of `group` applied one by one, each exactly as written alone: its
            /// lease's owner, or what the charge did, into `outcomes`.
            async fn charge_each_alone(
                tx: &mut sqlx::Transaction<'static, $db>,
                group: &$crate::sql::lease_runs::LeaseGroup,
                charges: &[&llmgate_core::credits::LeaseCharge],
                outcomes: &mut [Result<String, llmgate_core::credits::Written>],
                now: i64,
            ) -> llmgate_core::Result<()> {
                use llmgate_core::credits::Written;
                for &at in &group.members {
                    let charge = charges[at];
                    let alone = $crate::sql::lease_runs::CombinedCharge::alone(charge, now);
                    outcomes[at] = match Self::charge_lease_row(tx, group.lease_id, &alone).await? {
                        Some(user_id) => Ok(user_id),
                        None => Err(Self::lease_missed(
                            tx,
                            group.lease_id,
                            charge.seq,
                            Written::LeaseCharged(None),
                        )
                        .await?),
                    };
                }
                Ok(())
            }

            /// Take `charge.cost` out of lease `lease_id` if it has seen none of the write
            /// numbers from `charge.first_seq` on and holds the cost; its owner, or `None`.
            async fn charge_lease_row(
                tx: &mut sqlx::Transaction<'static, $db>,
                lease_id: i64,
                charge: &$crate::sql::lease_runs::CombinedCharge,
            ) -> llmgate_core::Result<Option<String>> {
                sqlx::query_scalar::<$db, String>($crate::sql::statements::CHARGE_LEASE)
                    .bind(lease_id)
                    .bind(charge.cost)
                    .bind(charge.first_seq)
                    .bind(charge.last_seq)
                    .bind(charge.expires_at)
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err($crate::error::database_error("charge a lease"))
            }

            /// The balance, and what may be spent, of each account with an applied charge
            /// (its row is there: the lease was taken from it), sorted by `user_id`; a
            /// statement per chunk of accounts (`run_statements`).
            async fn accounts_of(
                tx: &mut sqlx::Transaction<'static, $db>,
                outcomes: &[Result<String, llmgate_core::credits::Written>],
            ) -> llmgate_core::Result<Vec<$crate::sql::lease_runs::RunAccount>> {
                let mut users: Vec<&str> = outcomes
                    .iter()
                    .filter_map(|outcome| outcome.as_ref().ok().map(String::as_str))
                    .collect();
                users.sort_unstable();
                users.dedup();
                let mut accounts: Vec<$crate::sql::lease_runs::RunAccount> =
                    Vec::with_capacity(users.len());
                for these in $crate::sql::lease_runs::in_chunks(&users) {
                    let sql = $crate::sql::run_statements::accounts_sql(these.len()).ok_or_else(
                        || llmgate_core::Error::internal("no accounts statement of that size"),
                    )?;
                    let mut read = sqlx::query_as::<$db, (String, i64, i64)>(sql);
                    for user_id in these {
                        read = read.bind(*user_id);
                    }
                    let rows = read
                        .fetch_all(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("charge a lease"))?;
                    accounts.extend(rows.into_iter().map(|(user_id, balance, spendable)| {
                        $crate::sql::lease_runs::RunAccount {
                            user_id,
                            balance,
                            spendable,
                        }
                    }));
                }
                if accounts.len() != users.len() {
                    return Err(llmgate_core::Error::internal("a held balance is missing"));
                }
                accounts.sort_unstable_by(|a, b| a.user_id.cmp(&b.user_id));
                Ok(accounts)
            }

            /// The `release` and `charge` entries of every applied charge, in the run's order,
            /// a few multi-row `INSERT`s for the lot.
            async fn append_lease_entries(
                tx: &mut sqlx::Transaction<'static, $db>,
                charges: &[&llmgate_core::credits::LeaseCharge],
                outcomes: &[Result<String, llmgate_core::credits::Written>],
                accounts: &[$crate::sql::lease_runs::RunAccount],
                now: i64,
            ) -> llmgate_core::Result<()> {
                use $crate::sql::tokens_to_sql;
                let applied: Vec<(&llmgate_core::credits::LeaseCharge, &str, i64)> = charges
                    .iter()
                    .zip(outcomes)
                    .filter_map(|(charge, outcome)| {
                        let user_id = outcome.as_ref().ok()?;
                        let account = $crate::sql::lease_runs::account_of(accounts, user_id)?;
                        Some((*charge, user_id.as_str(), account.balance))
                    })
                    .collect();
                for these in $crate::sql::lease_runs::in_chunks(&applied) {
                    let sql = $crate::sql::run_statements::lease_entries_sql(these.len())
                        .ok_or_else(|| {
                            llmgate_core::Error::internal("no entries statement of that size")
                        })?;
                    let mut insert = sqlx::query::<$db>(sql);
                    for &(charge, user_id, balance) in these {
                        let usage = &charge.usage;
                        let cost = $crate::sql::lease_runs::cost_of(charge);
                        // A balance pushed to the edge of 64 bits behind the ledger's back:
                        // refused (and parked by the queue) like a settle the database refuses.
                        let before_charge = balance.checked_add(cost).ok_or_else(|| {
                            llmgate_core::Error::internal("a lease charge overflows the balance")
                        })?;
                        let lease_id = $crate::sql::parse_hold_id(&charge.lease_id).unwrap_or(0);
                        let reason = format!("lease {lease_id}");
                        let request_id = usage.request_id.as_str();
                        insert = insert
                            .bind(user_id)
                            .bind(cost)
                            .bind(before_charge)
                            .bind(request_id)
                            .bind(reason.clone())
                            .bind(now)
                            .bind(user_id)
                            .bind(-cost)
                            .bind(balance)
                            .bind(usage.model.as_str())
                            .bind(usage.provider.as_str())
                            .bind(tokens_to_sql(usage.prompt_tokens))
                            .bind(tokens_to_sql(usage.completion_tokens))
                            .bind(usage.key_source.as_str())
                            .bind(request_id)
                            .bind(reason)
                            .bind(now)
                            .bind(tokens_to_sql(usage.cache_read_tokens))
                            .bind(tokens_to_sql(usage.cache_write_tokens))
                            .bind(tokens_to_sql(usage.reasoning_tokens));
                    }
                    insert
                        .execute(&mut **tx)
                        .await
                        .map_err($crate::error::database_error("append to the ledger"))?;
                }
                Ok(())
            }
        }
    };
}

pub(crate) use sql_lease_charge_runs;

/// A charge of `cost` from lease `lease_id`, write number `seq`, for the tests of the
/// lease batch code (user `ann`, request `r{seq}`, 1 prompt and 2 completion tokens).
#[cfg(test)]
pub(crate) fn test_charge(lease_id: &str, seq: i64, cost: i64) -> LeaseCharge {
    use llmgate_core::credits::{KeySource, UsageRecord};
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
            reasoning_tokens: 0,
            cost_micros: cost,
            at: 0,
        },
        ttl_secs: 60,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(lease_id: &str, seq: i64, cost: i64) -> LeaseCharge {
        test_charge(lease_id, seq, cost)
    }

    #[test]
    fn charges_group_by_lease_in_order_of_first_charge() {
        let charges = [
            charge("7", 1, 5),
            charge("3", 1, 5),
            charge("x", 1, 5),
            charge("7", 2, 5),
        ];
        let refs: Vec<&LeaseCharge> = charges.iter().collect();
        let groups = group_by_lease(&refs);
        assert_eq!(
            groups,
            [
                LeaseGroup {
                    lease_id: 7,
                    members: vec![0, 3]
                },
                LeaseGroup {
                    lease_id: 3,
                    members: vec![1]
                },
            ]
        );
    }

    #[test]
    fn charges_combine_only_when_applying_them_together_is_applying_them_in_turn() {
        let (a, b, c) = (charge("1", 4, 10), charge("1", 6, -3), charge("1", 9, 7));
        assert_eq!(
            combine(&[&a, &b, &c], 100),
            Some(CombinedCharge {
                cost: 17,
                first_seq: 4,
                last_seq: 9,
                expires_at: 160
            })
        );
        // A repeated write number: the second would be skipped in turn.
        assert_eq!(combine(&[&a, &a], 100), None);
        assert_eq!(combine(&[&c, &a], 100), None);
        let huge = charge("1", 10, i64::MAX);
        assert_eq!(combine(&[&a, &huge], 100), None);
        assert_eq!(combine(&[], 100), None);
    }

    #[test]
    fn each_lease_is_one_combined_row() {
        let (a, b, c) = (charge("7", 1, 100), charge("8", 4, 5), charge("7", 2, 30));
        let charges = [&a, &b, &c];
        let rows = CombinedRows::of(&group_by_lease(&charges), &charges, 0);
        assert_eq!(rows.lease_id, [7, 8]);
        assert_eq!(rows.cost, [130, 5]);
        assert_eq!((rows.first_seq, rows.last_seq), (vec![1, 4], vec![2, 4]));
    }

    #[test]
    fn a_lease_whose_charges_repeat_a_write_number_gets_no_combined_row() {
        let (a, b) = (charge("7", 2, 100), charge("7", 2, 100));
        let charges = [&a, &b];
        let rows = CombinedRows::of(&group_by_lease(&charges), &charges, 0);
        assert!(rows.lease_id.is_empty());
    }

    #[test]
    fn chunks_cover_the_items_in_order() {
        let items: Vec<usize> = (0..300).collect();
        let chunks: Vec<&[usize]> = in_chunks(&items).collect();
        let sizes: Vec<usize> = chunks.iter().map(|chunk| chunk.len()).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        assert_eq!(chunks.concat(), items);
    }

    #[test]
    fn inserts_take_powers_of_two_up_to_the_cap() {
        let sizes = |n| insert_sizes(n).collect::<Vec<_>>();
        assert_eq!(sizes(0), Vec::<usize>::new());
        assert_eq!(sizes(1), [1]);
        assert_eq!(sizes(7), [4, 2, 1]);
        assert_eq!(sizes(300), [128, 128, 32, 8, 4]);
        for n in 0..600 {
            assert_eq!(insert_sizes(n).sum::<usize>(), n);
        }
    }
}
