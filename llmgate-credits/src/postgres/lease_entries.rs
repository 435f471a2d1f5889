//! Phase 2 of a batch of lease writes (see `lease_batch`): the ledger entries of every account
//! the batch moves, written with their balance rows in two statements whatever the number of
//! accounts — lock the rows in `user_id` order, then move them and insert the entries from
//! arrays — so a batch over a thousand accounts holds their rows for two round trips, not a
//! thousand.

use llmgate_core::credits::{LeaseCharge, TransactionKind, UsageRecord};
use llmgate_core::{Error, Result};
use sqlx::{Postgres, Transaction};

use super::lease_step::Step;
use crate::error::database_error;
use crate::sql::lease_runs::cost_of;
use crate::sql::{kind_name, parse_hold_id, statements as sql, tokens_to_sql};

/// The entries of a batch, column by column (bound as arrays), account by account and in
/// batch order within each. `offset` is an entry's `balance_after` less its account's balance
/// before the batch.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Entries {
    /// The accounts, in `user_id` order, and what the batch's returns give back to each.
    accounts: Vec<String>,
    returned: Vec<i64>,
    user_id: Vec<String>,
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
    /// The entries of every account the steps move, accounts in `user_id` order: a charge's
    /// `release` (+c, the balance as it would be with the charge still held) then its
    /// `charge` (−c); a return's `release` (+r, the balance moves).
    pub(super) fn of(steps: &[Step<'_>]) -> Result<Self> {
        let overflow = || Error::internal("a lease write overflows the balance");
        // Each step's account and position, by account and then in batch order: a batch
        // over a thousand accounts is one sort, not a scan of the batch per account.
        let mut order: Vec<(&str, usize)> = steps
            .iter()
            .enumerate()
            .filter_map(|(at, step)| step.account().map(|user_id| (user_id, at)))
            .collect();
        order.sort_unstable();
        let mut entries = Self::default();
        for run in order.chunk_by(|a, b| a.0 == b.0) {
            let user_id = run[0].0;
            let mut moved = 0_i64;
            for &(_, at) in run {
                match &steps[at] {
                    Step::Charged { charge, .. } => {
                        let cost = cost_of(charge);
                        let lease_id = parse_hold_id(&charge.lease_id).unwrap_or(0);
                        let held = moved.checked_add(cost).ok_or_else(overflow)?;
                        let release = Entry::release(user_id, lease_id).of_request(charge);
                        entries.push(TransactionKind::Release, cost, held, &release);
                        let charged = Entry::charge(user_id, lease_id, charge);
                        entries.push(TransactionKind::Charge, -cost, moved, &charged);
                    }
                    Step::Returned {
                        amount, lease_id, ..
                    } => {
                        moved = moved.checked_add(*amount).ok_or_else(overflow)?;
                        let release = Entry::release(user_id, *lease_id);
                        entries.push(TransactionKind::Release, *amount, moved, &release);
                    }
                    Step::Answered(_) => {}
                }
            }
            entries.accounts.push(user_id.to_owned());
            entries.returned.push(moved);
        }
        Ok(entries)
    }

    /// Whether the batch moves no account.
    pub(super) fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    fn push(&mut self, kind: TransactionKind, amount: i64, offset: i64, entry: &Entry<'_>) {
        let usage = entry.usage;
        let tokens =
            |count: fn(&UsageRecord) -> u64| usage.map(|usage| tokens_to_sql(count(usage)));
        self.user_id.push(entry.user_id.to_owned());
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

    /// Lock the accounts' balance rows in `user_id` order, then move them and insert the
    /// entries. Each account with what it may spend afterwards.
    pub(super) async fn write(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        let failed = || database_error("write a lease's entries");
        let locked: Vec<String> = sqlx::query_scalar::<Postgres, String>(sql::PG_LOCK_BALANCES)
            .bind(&self.accounts)
            .fetch_all(&mut **tx)
            .await
            .map_err(failed())?;
        let spendable: Vec<(String, i64)> =
            sqlx::query_as::<Postgres, (String, i64)>(sql::PG_LEASE_ENTRIES)
                .bind(&self.accounts)
                .bind(&self.returned)
                .bind(now)
                .bind(&self.user_id)
                .bind(&self.kind)
                .bind(&self.amount)
                .bind(&self.offset)
                .bind(&self.model)
                .bind(&self.provider)
                .bind(&self.prompt_tokens)
                .bind(&self.completion_tokens)
                .bind(&self.key_source)
                .bind(&self.request_id)
                .bind(&self.reason)
                .bind(&self.cache_read_tokens)
                .bind(&self.cache_write_tokens)
                .bind(&self.reasoning_tokens)
                .fetch_all(&mut **tx)
                .await
                .map_err(failed())?;
        // A lease was taken from each, so every row is there; were one missing, its entries
        // would be left out (the join): refuse the batch instead.
        if locked.len() != self.accounts.len() || spendable.len() != self.accounts.len() {
            return Err(Error::internal("a held balance is missing"));
        }
        Ok(spendable)
    }
}

/// What an entry carries beyond its kind and amounts: its account, lease and request, and
/// (a `charge` entry only) the usage.
struct Entry<'a> {
    user_id: &'a str,
    lease_id: i64,
    request_id: Option<String>,
    usage: Option<&'a UsageRecord>,
}

impl<'a> Entry<'a> {
    fn release(user_id: &'a str, lease_id: i64) -> Self {
        Self {
            user_id,
            lease_id,
            request_id: None,
            usage: None,
        }
    }

    fn charge(user_id: &'a str, lease_id: i64, charge: &'a LeaseCharge) -> Self {
        Self {
            user_id,
            lease_id,
            request_id: Some(charge.usage.request_id.clone()),
            usage: Some(&charge.usage),
        }
    }

    /// The same entry naming the request of `charge` (a charge's `release`).
    fn of_request(mut self, charge: &LeaseCharge) -> Self {
        self.request_id = Some(charge.usage.request_id.clone());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lease_runs::test_charge as charge;
    use llmgate_core::credits::Written;

    #[test]
    fn entries_run_from_each_balance_before_the_batch_in_batch_order() {
        let (a, b, c) = (charge("7", 1, 100), charge("7", 2, 30), charge("8", 1, 5));
        let steps = [
            Step::charged("bob", &c),
            Step::charged("ann", &a),
            Step::Returned {
                user_id: "ann".into(),
                amount: 500,
                lease_id: 7,
            },
            Step::Answered(Written::LeaseGone),
            Step::charged("ann", &b),
        ];
        let entries = Entries::of(&steps).unwrap();
        assert_eq!(
            (entries.accounts, entries.returned),
            (vec!["ann".to_owned(), "bob".to_owned()], vec![500, 0])
        );
        assert_eq!(
            entries.user_id,
            ["ann", "ann", "ann", "ann", "ann", "bob", "bob"]
        );
        assert_eq!(
            entries.kind,
            [
                "release", "charge", "release", "release", "charge", "release", "charge"
            ]
        );
        assert_eq!(entries.amount, [100, -100, 500, 30, -30, 5, -5]);
        // balance_after = the balance before + offset: a charge's release shows it still held.
        assert_eq!(entries.offset, [100, 0, 500, 530, 500, 5, 0]);
        assert_eq!(
            entries.request_id[..3],
            [Some("r1".into()), Some("r1".into()), None]
        );
        assert_eq!(entries.model[..3], [None, Some("m".into()), None]);
        assert_eq!(entries.completion_tokens[..2], [None, Some(2)]);
        assert_eq!(entries.reason[2], "lease 7");
        assert_eq!(entries.reason[6], "lease 8");
    }
}
