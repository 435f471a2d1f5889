//! The ledger invariants, checked in SQL against the database after a run: one function,
//! [`check`], taking the database's pool, so more checks go in one place.
//!
//! 1. No balance is below zero.
//! 2. Every account's balance is what came in (grants, top-ups, refunds) less its charges and
//!    its open holds.
//! 3. Every request the client saw served has exactly one charge, unless its hold expired and
//!    was reclaimed before the settle (then it went uncharged, as documented); no request has
//!    more than one charge.
//! 4. No refused request reached the upstream.
//! 5. After a reclaim no hold past its expiry is left.
//! 6. Each idempotency key (top-ups, monthly grants) was applied exactly once, and each
//!    account was credited exactly what its keys add up to.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use llmgate_core::memory::unix_now;

/// Balance of every account.
const BALANCES: &str = "SELECT user_id, balance_micros FROM credit_balances";
/// Credits in per account (grant, top-up and refund entries are positive amounts).
const CREDITS_IN: &str = "SELECT user_id, CAST(SUM(amount_micros) AS BIGINT) FROM credit_ledger \
WHERE kind IN ('grant', 'top_up', 'refund') GROUP BY user_id";
/// Charges per account (a charge entry holds minus the charge).
const CHARGES: &str = "SELECT user_id, CAST(-SUM(amount_micros) AS BIGINT) FROM credit_ledger \
WHERE kind = 'charge' GROUP BY user_id";
const OPEN_HOLDS: &str =
    "SELECT user_id, CAST(SUM(amount_micros) AS BIGINT) FROM credit_holds GROUP BY user_id";
const CHARGES_PER_REQUEST: &str = "SELECT request_id, CAST(COUNT(*) AS BIGINT) FROM credit_ledger \
WHERE kind = 'charge' AND request_id IS NOT NULL GROUP BY request_id";
/// Each hold entry's request and time, and each release's time, by the hold they name (their
/// reason reads `hold N`). Joined in Rust: SQLite has no index to join them by.
const HOLD_ENTRIES: &str = "SELECT reason, request_id, created_at FROM credit_ledger \
WHERE kind = 'hold' AND request_id IS NOT NULL";
const RELEASE_ENTRIES: &str = "SELECT reason, created_at FROM credit_ledger WHERE kind = 'release'";
/// Each balance lease take (a hold entry without a request; its reason reads `lease N`) and
/// its account.
const LEASE_TAKES: &str = "SELECT reason, user_id FROM credit_ledger \
WHERE kind = 'hold' AND request_id IS NULL";
const EXPIRED_HOLDS: &str =
    "SELECT CAST(COUNT(*) AS BIGINT) FROM credit_holds WHERE expires_at <= $1";
const KEYED_ENTRIES: &str = "SELECT idempotency_key, user_id FROM credit_ledger \
WHERE idempotency_key IS NOT NULL";

/// The database of a run, on either backend.
pub enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    pub async fn connect(url: &str) -> Pool {
        if url.starts_with("sqlite:") {
            Pool::Sqlite(sqlx::SqlitePool::connect(url).await.unwrap())
        } else {
            Pool::Postgres(sqlx::PgPool::connect(url).await.unwrap())
        }
    }

    async fn pairs(&self, sql: &'static str) -> Vec<(String, i64)> {
        match self {
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }

    async fn texts(&self, sql: &'static str) -> Vec<(String, String)> {
        match self {
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }

    async fn triples(&self, sql: &'static str) -> Vec<(String, String, i64)> {
        match self {
            Pool::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
            Pool::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        }
    }

    pub async fn count(&self, sql: &'static str, bind: i64) -> i64 {
        match self {
            Pool::Sqlite(pool) => sqlx::query_scalar(sql)
                .bind(bind)
                .fetch_one(pool)
                .await
                .unwrap(),
            Pool::Postgres(pool) => sqlx::query_scalar(sql)
                .bind(bind)
                .fetch_one(pool)
                .await
                .unwrap(),
        }
    }

    pub async fn close(self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// What the clients saw, to hold the database against.
#[derive(Debug, Default)]
pub struct Expected {
    /// Request ids of the requests answered in full.
    pub served: Vec<String>,
    /// The account of each request, by request id.
    pub accounts: HashMap<String, String>,
    /// Markers of the requests refused with 402.
    pub refused: Vec<String>,
    /// Markers of every request the upstream received.
    pub upstream_saw: HashSet<String>,
    /// What each account was credited (every key once).
    pub credits_in: BTreeMap<String, i64>,
    /// Idempotency keys as sent (the server may prefix them) and the account of each.
    pub keys: Vec<(String, String)>,
    /// Keys that more than one answer said were applied.
    pub applied_twice: Vec<String>,
    /// How long holds live in this run.
    pub hold_ttl_secs: i64,
    /// A replica was killed: the holds of what it served but had not yet settled (its queued
    /// writes died with it) come back through the others' reclaim, uncharged, before expiry.
    pub replica_killed: bool,
}

/// One broken invariant.
#[derive(Debug)]
pub struct Violation {
    pub invariant: &'static str,
    /// The account, request or key concerned.
    pub subject: String,
    pub expected: String,
    pub actual: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} expected {}, actual {}",
            self.invariant, self.subject, self.expected, self.actual
        )
    }
}

/// Facts about the run the checks came across, for the summary.
#[derive(Debug, Default)]
pub struct Findings {
    pub violations: Vec<Violation>,
    pub accounts: usize,
    pub charges: usize,
    /// Served requests left uncharged because their hold (or their balance lease) expired
    /// first, or went with a killed replica.
    pub served_after_expiry: usize,
    pub open_holds: usize,
    /// Holds the reclaim after the run released.
    pub reclaimed_at_the_end: u64,
    /// Where the replicas' configs and logs were kept (after a violation).
    pub kept: Option<std::path::PathBuf>,
}

/// Check every invariant against the database.
pub async fn check(pool: &Pool, expected: &Expected) -> Findings {
    let mut found = Findings::default();
    balances_add_up(pool, expected, &mut found).await;
    served_requests_are_charged_once(pool, expected, &mut found).await;
    refusals_never_reached_the_upstream(expected, &mut found);
    no_expired_hold_survives(pool, &mut found).await;
    keys_applied_once(pool, expected, &mut found).await;
    found
}

async fn balances_add_up(pool: &Pool, expected: &Expected, found: &mut Findings) {
    let balances: BTreeMap<String, i64> = pool.pairs(BALANCES).await.into_iter().collect();
    let credits: BTreeMap<String, i64> = pool.pairs(CREDITS_IN).await.into_iter().collect();
    let charges: BTreeMap<String, i64> = pool.pairs(CHARGES).await.into_iter().collect();
    let holds: BTreeMap<String, i64> = pool.pairs(OPEN_HOLDS).await.into_iter().collect();
    found.open_holds = holds.len();
    let accounts: BTreeSet<&String> = balances
        .keys()
        .chain(credits.keys())
        .chain(charges.keys())
        .chain(holds.keys())
        .collect();
    found.accounts = accounts.len();
    for account in accounts {
        let of = |map: &BTreeMap<String, i64>| map.get(account).copied().unwrap_or(0);
        let balance = of(&balances);
        if balance < 0 {
            found.violations.push(Violation {
                invariant: "1 no balance below zero",
                subject: format!("account {account}"),
                expected: ">= 0".to_owned(),
                actual: balance.to_string(),
            });
        }
        let should = of(&credits) - of(&charges) - of(&holds);
        if balance != should {
            found.violations.push(Violation {
                invariant: "2 balance = credits in - charges - open holds",
                subject: format!(
                    "account {account} (in {}, charged {}, held {})",
                    of(&credits),
                    of(&charges),
                    of(&holds)
                ),
                expected: should.to_string(),
                actual: format!("{balance} (off by {:+})", balance - should),
            });
        }
        if let Some(&sent) = expected.credits_in.get(account)
            && sent != of(&credits)
        {
            found.violations.push(Violation {
                invariant: "6 each credit applied once",
                subject: format!("account {account}: credits in"),
                expected: sent.to_string(),
                actual: of(&credits).to_string(),
            });
        }
    }
}

async fn served_requests_are_charged_once(pool: &Pool, expected: &Expected, found: &mut Findings) {
    let charges: BTreeMap<String, i64> =
        pool.pairs(CHARGES_PER_REQUEST).await.into_iter().collect();
    found.charges = charges
        .values()
        .map(|&n| usize::try_from(n).unwrap_or(0))
        .sum();
    for (request, &count) in &charges {
        if count > 1 {
            found.violations.push(Violation {
                invariant: "3 at most one charge per request",
                subject: format!("request {request}"),
                expected: "<= 1 charge".to_owned(),
                actual: format!("{count} charges"),
            });
        }
    }
    let released: HashMap<String, i64> = pool.pairs(RELEASE_ENTRIES).await.into_iter().collect();
    // Requests whose hold was released once it had lived its whole time (by the reclaimer),
    // or, where a replica was killed, released without a charge at all (reclaimed as a dead
    // replica's: its settle was among the queued writes the kill lost).
    let expired: HashSet<String> = pool
        .triples(HOLD_ENTRIES)
        .await
        .into_iter()
        .filter(|(hold, _, held_at)| {
            released
                .get(hold)
                .is_some_and(|at| expected.replica_killed || at - held_at >= expected.hold_ttl_secs)
        })
        .map(|(_, request, _)| request)
        .collect();
    // Accounts with a balance lease the reclaim released (an expired lease, or a killed
    // replica's: the reclaim's release reads `hold N`, a return `lease N`). Requests served
    // from it and settled after go uncharged, as those of an expired hold.
    let reclaimed_leases: HashSet<String> = pool
        .texts(LEASE_TAKES)
        .await
        .into_iter()
        .filter(|(lease, _)| {
            let id = lease.strip_prefix("lease ").unwrap_or_default();
            released.contains_key(&format!("hold {id}"))
        })
        .map(|(_, account)| account)
        .collect();
    let from_reclaimed_lease = |request: &String| {
        expected
            .accounts
            .get(request)
            .is_some_and(|a| reclaimed_leases.contains(a))
    };
    for request in &expected.served {
        match charges.get(request) {
            Some(_) => {}
            None if expired.contains(request) || from_reclaimed_lease(request) => {
                found.served_after_expiry += 1;
            }
            None => found.violations.push(Violation {
                invariant: "3 every served request is charged once",
                subject: format!("request {request}"),
                expected: "1 charge".to_owned(),
                actual: "none, and its hold did not expire".to_owned(),
            }),
        }
    }
}

fn refusals_never_reached_the_upstream(expected: &Expected, found: &mut Findings) {
    for marker in &expected.refused {
        if expected.upstream_saw.contains(marker) {
            found.violations.push(Violation {
                invariant: "4 a refusal comes before any upstream call",
                subject: format!("request {marker} (402)"),
                expected: "never sent upstream".to_owned(),
                actual: "the upstream received it".to_owned(),
            });
        }
    }
}

async fn no_expired_hold_survives(pool: &Pool, found: &mut Findings) {
    let expired = pool.count(EXPIRED_HOLDS, unix_now()).await;
    if expired > 0 {
        found.violations.push(Violation {
            invariant: "5 no expired hold survives a reclaim",
            subject: "credit_holds".to_owned(),
            expected: "0 holds past their expiry".to_owned(),
            actual: expired.to_string(),
        });
    }
}

async fn keys_applied_once(pool: &Pool, expected: &Expected, found: &mut Findings) {
    // The server may namespace a key (`admin:KEY`): count each stored key under every ending
    // that starts after a `:`, so a key as sent is found in one lookup.
    let mut entries: HashMap<(String, String), usize> = HashMap::new();
    for (stored, account) in pool.texts(KEYED_ENTRIES).await {
        let endings = std::iter::once(0).chain(stored.match_indices(':').map(|(i, _)| i + 1));
        for start in endings {
            *entries
                .entry((account.clone(), stored[start..].to_owned()))
                .or_default() += 1;
        }
    }
    for (key, account) in &expected.keys {
        let rows = entries
            .get(&(account.clone(), key.clone()))
            .copied()
            .unwrap_or(0);
        if rows != 1 {
            found.violations.push(Violation {
                invariant: "6 each idempotency key applied once",
                subject: format!("key {key} of {account}"),
                expected: "1 ledger entry".to_owned(),
                actual: format!("{rows} entries"),
            });
        }
    }
    for key in &expected.applied_twice {
        found.violations.push(Violation {
            invariant: "6 each idempotency key applied once",
            subject: format!("key {key}"),
            expected: "one answer with applied: true".to_owned(),
            actual: "several".to_owned(),
        });
    }
}
