//! The multi-row statements of a run of lease charges on SQLite (see `lease_runs`): every
//! lease of the run charged, every account of the run read and every entry inserted, in a few
//! statements instead of one per lease, per account and per charge. Each statement is a hop
//! to sqlx's SQLite thread, and over a thousand accounts those hops were most of the writer's
//! time.
//!
//! Rows go in chunks whose sizes are powers of two (`lease_runs::insert_sizes`), so a handful
//! of texts serve every run and stay prepared; the parameters are SQLite's anonymous `?`
//! (see `build_lease_entries_sql` for why not numbered ones).

use std::sync::OnceLock;

use llmgate_core::credits::TransactionKind;

use super::kind_name;
use super::lease_runs::MOST_CHARGES_PER_INSERT;

/// The `INSERT` of `charges` charges' entries: per charge, its `release` (`+cost`, the balance
/// plus the cost after it) then its `charge` (`−cost` with the usage, the balance after it).
///
/// The parameters are SQLite's anonymous `?`, bound in order: a numbered one (`$n`) is found
/// by name, a scan of every name for each parameter bound, which made an `INSERT` of 128
/// charges spend 70 % of the writer's time looking its own parameters up. Per charge: user,
/// cost, balance after the release, request, reason, at; then user, −cost, balance after the
/// charge, model, provider, prompt, completion, key source, request, reason, at, cache read,
/// cache write, reasoning tokens.
fn build_lease_entries_sql(charges: usize) -> String {
    let release = format!(
        "(?, '{}', ?, ?, NULL, NULL, NULL, NULL, NULL, ?, ?, ?, NULL, NULL, NULL)",
        kind_name(TransactionKind::Release)
    );
    let charge = format!(
        "(?, '{}', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        kind_name(TransactionKind::Charge)
    );
    let rows = vec![format!("{release}, {charge}"); charges];
    format!(
        "INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, \
         provider, prompt_tokens, completion_tokens, key_source, request_id, reason, created_at, \
         cache_read_tokens, cache_write_tokens, reasoning_tokens) VALUES {}",
        rows.join(", ")
    )
}

/// [`build_lease_entries_sql`] for a chunk of `charges`: the same text each time, so the
/// connection's statement cache keeps it prepared.
pub(crate) fn lease_entries_sql(charges: usize) -> Option<&'static str> {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    by_size(&TEXTS, build_lease_entries_sql, charges)
}

/// `rows` leases charged at once: per row its lease, cost, first and last write number and
/// expiry, applied where the lease has seen none of the numbers and holds the cost (as
/// `CHARGE_LEASE` for one). Each lease charged, with its owner.
fn build_charge_leases_sql(rows: usize) -> String {
    let values = vec!["(?, ?, ?, ?, ?)"; rows].join(", ");
    format!(
        "UPDATE credit_holds SET amount_micros = amount_micros - c.cost, \
         lease_seq = c.last_seq, expires_at = c.expires_at \
         FROM (SELECT column1 AS id, column2 AS cost, column3 AS first_seq, \
         column4 AS last_seq, column5 AS expires_at FROM (VALUES {values})) AS c \
         WHERE credit_holds.id = c.id AND credit_holds.lease_seq < c.first_seq \
         AND credit_holds.amount_micros >= c.cost \
         RETURNING id, user_id"
    )
}

/// `rows` accounts read at once: each with its balance and what it may spend (its open
/// leases counted, as `SELECT_SPENDABLE` counts it).
fn build_accounts_sql(rows: usize) -> String {
    let list = vec!["?"; rows].join(", ");
    format!(
        "SELECT user_id, balance_micros, CAST(balance_micros + COALESCE((SELECT \
         SUM(amount_micros) FROM credit_holds WHERE credit_holds.user_id = \
         credit_balances.user_id AND lease_seq IS NOT NULL), 0) AS BIGINT) \
         FROM credit_balances WHERE user_id IN ({list})"
    )
}

/// The text of `build` for a chunk size `insert_sizes` gives (`None` for any other), built
/// once per size.
fn by_size(
    cache: &'static OnceLock<Vec<String>>,
    build: fn(usize) -> String,
    rows: usize,
) -> Option<&'static str> {
    if !rows.is_power_of_two() {
        return None;
    }
    let texts = cache.get_or_init(|| {
        (0..=MOST_CHARGES_PER_INSERT.ilog2())
            .map(|power| build(1 << power))
            .collect()
    });
    texts
        .get(usize::try_from(rows.ilog2()).ok()?)
        .map(String::as_str)
}

/// [`build_charge_leases_sql`] for a chunk of `rows`.
pub(crate) fn charge_leases_sql(rows: usize) -> Option<&'static str> {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    by_size(&TEXTS, build_charge_leases_sql, rows)
}

/// [`build_accounts_sql`] for a chunk of `rows`.
pub(crate) fn accounts_sql(rows: usize) -> Option<&'static str> {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    by_size(&TEXTS, build_accounts_sql, rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::lease_runs::insert_sizes;

    #[test]
    fn every_chunk_size_has_its_statements_and_no_other_size_does() {
        let sizes: Vec<usize> = insert_sizes(300).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        for size in sizes {
            let charge = charge_leases_sql(size).unwrap();
            assert_eq!(charge.matches('?').count(), 5 * size);
            assert_eq!(accounts_sql(size).unwrap().matches('?').count(), size);
        }
        assert!(charge_leases_sql(3).is_none() && accounts_sql(256).is_none());
    }

    #[test]
    fn the_entries_insert_takes_twenty_anonymous_parameters_per_charge() {
        let sql = lease_entries_sql(2).unwrap();
        assert_eq!(sql.matches("'release'").count(), 2);
        assert_eq!(sql.matches("'charge'").count(), 2);
        assert_eq!(sql.matches('?').count(), 40, "{sql}");
        assert!(!sql.contains('$'), "{sql}");
        assert!(
            std::ptr::eq(sql, lease_entries_sql(2).unwrap()),
            "built once"
        );
        let most = lease_entries_sql(MOST_CHARGES_PER_INSERT).unwrap();
        assert_eq!(most.matches("'charge'").count(), MOST_CHARGES_PER_INSERT);
        assert_eq!(lease_entries_sql(3), None);
        assert_eq!(lease_entries_sql(2 * MOST_CHARGES_PER_INSERT), None);
    }
}
