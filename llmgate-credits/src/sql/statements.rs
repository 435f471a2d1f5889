//! The ledger's SQL, shared by both backends: SQLite and PostgreSQL both accept `$n`
//! placeholders, `RETURNING`, `ON CONFLICT` upserts and `CAST(… AS BIGINT)`.

/// Take a hold's amount off a balance, only if the balance covers it. The `WHERE` makes the
/// check and the write one statement, so two requests can never both spend the same credits.
pub(crate) const TAKE_FROM_BALANCE: &str = "\
UPDATE credit_balances SET balance_micros = balance_micros - $2 \
WHERE user_id = $1 AND balance_micros >= $2 \
RETURNING balance_micros";

/// Give credits back to a balance that has an open hold (so the row exists).
pub(crate) const GIVE_BACK_TO_BALANCE: &str = "\
UPDATE credit_balances SET balance_micros = balance_micros + $2 \
WHERE user_id = $1 \
RETURNING balance_micros";

/// Add a credit to a balance, creating it. Refuses (returns no row) when the balance and the
/// account's open holds would pass `$3` (`MAX_BALANCE_MICROS`), so no give-back can overflow.
pub(crate) const ADD_TO_BALANCE: &str = "\
INSERT INTO credit_balances (user_id, balance_micros) SELECT $1, $2 WHERE $2 <= $3 \
ON CONFLICT (user_id) DO UPDATE \
SET balance_micros = credit_balances.balance_micros + excluded.balance_micros \
WHERE credit_balances.balance_micros + (SELECT COALESCE(SUM(amount_micros), 0) \
FROM credit_holds WHERE credit_holds.user_id = $1) <= $3 - excluded.balance_micros \
RETURNING balance_micros";

/// Make sure a balance row exists (a zero hold of a user who never had credits).
pub(crate) const ENSURE_BALANCE: &str = "\
INSERT INTO credit_balances (user_id, balance_micros) VALUES ($1, 0) \
ON CONFLICT (user_id) DO NOTHING";

pub(crate) const SELECT_BALANCE: &str =
    "SELECT balance_micros FROM credit_balances WHERE user_id = $1";

/// What an account may spend: its balance plus what its balance leases hold (a lease only
/// moved it aside; the requests served from it are charged as they settle).
pub(crate) const SELECT_SPENDABLE: &str = "\
SELECT CAST(balance_micros + COALESCE((SELECT SUM(amount_micros) FROM credit_holds \
WHERE credit_holds.user_id = $1 AND lease_seq IS NOT NULL), 0) AS BIGINT) \
FROM credit_balances WHERE user_id = $1";

/// A lease, locked and its expiry renewed to `$2`; no row: it is gone (reclaimed or closed).
pub(crate) const RENEW_LEASE: &str = "\
UPDATE credit_holds SET expires_at = $2 WHERE id = $1 AND lease_seq IS NOT NULL \
RETURNING id";

/// A lease grows by `$2` (taken from the balance in the same transaction).
pub(crate) const GROW_LEASE: &str =
    "UPDATE credit_holds SET amount_micros = amount_micros + $2 WHERE id = $1";

/// A new lease of `$2` for user `$1`, placed at `$3`, expiring at `$4`, by replica `$5`.
pub(crate) const INSERT_LEASE: &str = "\
INSERT INTO credit_holds (user_id, amount_micros, request_id, created_at, expires_at, replica_id, \
lease_seq) VALUES ($1, $2, 'lease', $3, $4, $5, 0) \
RETURNING id";

/// Requests served from lease `$1` are charged `$2` together, their write numbers running from
/// `$3` to `$4` (the same for one request), renewing the expiry to `$5`. No row: the lease is
/// gone, holds less, or applied one of these writes before.
pub(crate) const CHARGE_LEASE: &str = "\
UPDATE credit_holds SET amount_micros = amount_micros - $2, lease_seq = $4, expires_at = $5 \
WHERE id = $1 AND lease_seq < $3 AND amount_micros >= $2 \
RETURNING user_id";

/// `$2` goes back from lease `$1` (write number `$3`). No row: gone, or applied before.
pub(crate) const SHRINK_LEASE: &str = "\
UPDATE credit_holds SET amount_micros = amount_micros - $2, lease_seq = $3 \
WHERE id = $1 AND lease_seq < $3 AND amount_micros >= $2 \
RETURNING user_id";

/// Close lease `$1` (write number `$2`): everything it holds goes back.
pub(crate) const CLOSE_LEASE: &str = "\
DELETE FROM credit_holds WHERE id = $1 AND lease_seq < $2 \
RETURNING user_id, amount_micros";

/// The last write number a lease applied; no row: it is gone.
pub(crate) const LEASE_SEQ: &str = "SELECT lease_seq FROM credit_holds WHERE id = $1";

/// `$6` is the replica that places the hold (its holds come back early if it stops beating).
pub(crate) const INSERT_HOLD: &str = "\
INSERT INTO credit_holds (user_id, amount_micros, request_id, created_at, expires_at, replica_id) \
VALUES ($1, $2, $3, $4, $5, $6) \
RETURNING id";

/// Close a hold. Only one of several concurrent settles/releases gets the row back.
pub(crate) const TAKE_HOLD: &str = "\
DELETE FROM credit_holds WHERE id = $1 \
RETURNING user_id, amount_micros, budget_key, budget_period";

/// A key budget's row for one period, made on its first hold.
pub(crate) const ENSURE_KEY_SPEND: &str = "\
INSERT INTO key_spend (key_id, period_start, held_micros, spent_micros) VALUES ($1, $2, 0, 0) \
ON CONFLICT (key_id, period_start) DO NOTHING";

/// Count `$3` against a key budget of `$4` for the period, only if it fits (the budget's own
/// conditional `UPDATE`, as for balances). No row: it does not fit.
pub(crate) const TAKE_FROM_BUDGET: &str = "\
UPDATE key_spend SET held_micros = held_micros + $3 \
WHERE key_id = $1 AND period_start = $2 AND held_micros + spent_micros + $3 <= $4 \
RETURNING held_micros";

/// What a key budget's period has spent and holds.
pub(crate) const SELECT_KEY_SPEND: &str = "\
SELECT held_micros + spent_micros FROM key_spend WHERE key_id = $1 AND period_start = $2";

/// A closed hold leaves its key budget: `$3` held goes, `$4` charged stays as spend.
pub(crate) const CLOSE_BUDGET: &str = "\
UPDATE key_spend SET held_micros = held_micros - $3, spent_micros = spent_micros + $4 \
WHERE key_id = $1 AND period_start = $2";

/// Which key budget a hold counts against.
pub(crate) const MARK_HOLD_BUDGET: &str = "\
UPDATE credit_holds SET budget_key = $2, budget_period = $3 WHERE id = $1";

pub(crate) const SELECT_EXPIRED_HOLDS: &str =
    "SELECT id FROM credit_holds WHERE expires_at <= $1 ORDER BY id";

/// A replica's beat: it is alive at `$2` (unix seconds).
pub(crate) const BEAT: &str = "\
INSERT INTO ledger_replicas (replica_id, heartbeat_at) VALUES ($1, $2) \
ON CONFLICT (replica_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";

/// Holds of replicas whose last beat is at or before `$1` (they stopped: killed or cut off).
pub(crate) const SELECT_ORPHANED_HOLDS: &str = "\
SELECT credit_holds.id FROM credit_holds \
JOIN ledger_replicas ON ledger_replicas.replica_id = credit_holds.replica_id \
WHERE ledger_replicas.heartbeat_at <= $1 \
ORDER BY credit_holds.id";

/// Forget stopped replicas that have no hold left.
pub(crate) const FORGET_STOPPED_REPLICAS: &str = "\
DELETE FROM ledger_replicas WHERE heartbeat_at <= $1 \
AND NOT EXISTS (SELECT 1 FROM credit_holds WHERE credit_holds.replica_id = ledger_replicas.replica_id)";

/// A ledger entry without an idempotency key (hold, charge, release).
pub(crate) const INSERT_ENTRY: &str = "\
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, provider, \
prompt_tokens, completion_tokens, key_source, request_id, reason, created_at, cache_read_tokens, \
cache_write_tokens, reasoning_tokens) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";

/// A credit's ledger entry: returns no row when its idempotency key was used before.
pub(crate) const INSERT_CREDIT_ENTRY: &str = "\
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, idempotency_key, \
reason, created_at) \
VALUES ($1, $2, $3, $4, $5, $6, $7) \
ON CONFLICT (idempotency_key) DO NOTHING \
RETURNING id";

/// The ledger entry that used an idempotency key, if any.
pub(crate) const CREDIT_KEY_USED: &str = "SELECT id FROM credit_ledger WHERE idempotency_key = $1";

pub(crate) const SELECT_TRANSACTIONS: &str = "\
SELECT id, user_id, kind, amount_micros, balance_after_micros, model, provider, prompt_tokens, \
completion_tokens, key_source, request_id, idempotency_key, reason, created_at, \
cache_read_tokens, cache_write_tokens, reasoning_tokens \
FROM credit_ledger \
WHERE user_id = $1 AND ($2 IS NULL OR id < $2) \
ORDER BY id DESC \
LIMIT $3";

/// What a usage upsert adds to a row that is there (both upserts end with it).
macro_rules! add_to_usage_row {
    ($insert:expr) => {
        concat!(
            $insert,
            "ON CONFLICT (user_id, model, provider, day) DO UPDATE SET ",
            "requests = usage_daily.requests + excluded.requests, ",
            "prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens, ",
            "completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens, ",
            "cost_micros = usage_daily.cost_micros + excluded.cost_micros, ",
            "cache_read_tokens = usage_daily.cache_read_tokens + excluded.cache_read_tokens, ",
            "cache_write_tokens = usage_daily.cache_write_tokens + excluded.cache_write_tokens, ",
            "reasoning_tokens = usage_daily.reasoning_tokens + excluded.reasoning_tokens"
        )
    };
}

/// Count requests (`$5` of them) of one user, model, provider and day into that day's rollup.
pub(crate) const ADD_USAGE: &str = add_to_usage_row!(
    "\
INSERT INTO usage_daily (user_id, model, provider, day, requests, prompt_tokens, \
completion_tokens, cost_micros, cache_read_tokens, cache_write_tokens, reasoning_tokens) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
"
);

/// Usage queries, one per grouping (the group column cannot be a bind parameter). `$1` is the
/// user (NULL: everyone), `$2`/`$3` the inclusive day range (NULL: open).
macro_rules! usage_by {
    ($column:literal) => {
        concat!(
            "SELECT ",
            $column,
            " AS group_key, CAST(SUM(requests) AS BIGINT) AS requests, ",
            "CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, ",
            "CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, ",
            "CAST(SUM(cost_micros) AS BIGINT) AS cost_micros, ",
            "CAST(SUM(cache_read_tokens) AS BIGINT) AS cache_read_tokens, ",
            "CAST(SUM(cache_write_tokens) AS BIGINT) AS cache_write_tokens, ",
            "CAST(SUM(reasoning_tokens) AS BIGINT) AS reasoning_tokens ",
            "FROM usage_daily ",
            "WHERE ($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR day >= $2) ",
            "AND ($3 IS NULL OR day <= $3) ",
            "GROUP BY ",
            $column,
            " ORDER BY ",
            $column
        )
    };
}

pub(crate) const USAGE_BY_MODEL: &str = usage_by!("model");
pub(crate) const USAGE_BY_PROVIDER: &str = usage_by!("provider");
pub(crate) const USAGE_BY_DAY: &str = usage_by!("day");

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const COUNT_ACCOUNTS: &str = "SELECT COUNT(*) FROM credit_balances";

pub(crate) const COUNT_HOLDS_PAST_EXPIRY: &str =
    "SELECT COUNT(*) FROM credit_holds WHERE expires_at <= $1";

/// The key budget periods whose held amount is not the sum of their open holds.
pub(crate) const BUDGETS_THAT_DIFFER: &str = "\
SELECT s.key_id, s.period_start, s.held_micros, \
CAST(COALESCE(h.held, 0) AS BIGINT) AS open_holds \
FROM key_spend s LEFT JOIN (SELECT budget_key, budget_period, SUM(amount_micros) AS held \
FROM credit_holds WHERE budget_key IS NOT NULL GROUP BY budget_key, budget_period) h \
ON h.budget_key = s.key_id AND h.budget_period = s.period_start \
WHERE s.held_micros <> COALESCE(h.held, 0) \
ORDER BY s.key_id, s.period_start";

/// The accounts that break an invariant of the ledger (see `verify.rs`), with their figures.
pub(crate) const ACCOUNTS_THAT_DIFFER: &str = "\
SELECT b.user_id, b.balance_micros, \
CAST(COALESCE(l.total, 0) AS BIGINT) AS entries, \
CAST(COALESCE(l.credits, 0) AS BIGINT) AS credits, \
CAST(COALESCE(l.charges, 0) AS BIGINT) AS charges, \
CAST(COALESCE(h.held, 0) AS BIGINT) AS open_holds, \
CAST(COALESCE(r.breaks, 0) AS BIGINT) AS breaks \
FROM credit_balances b \
LEFT JOIN (SELECT user_id, SUM(amount_micros) AS total, \
SUM(CASE WHEN kind IN ('grant', 'top_up', 'refund') THEN amount_micros ELSE 0 END) AS credits, \
SUM(CASE WHEN kind = 'charge' THEN -amount_micros ELSE 0 END) AS charges \
FROM credit_ledger GROUP BY user_id) l ON l.user_id = b.user_id \
LEFT JOIN (SELECT user_id, SUM(amount_micros) AS held FROM credit_holds GROUP BY user_id) h \
ON h.user_id = b.user_id \
LEFT JOIN (SELECT user_id, COUNT(*) AS breaks FROM (SELECT user_id, balance_after_micros, \
SUM(amount_micros) OVER (PARTITION BY user_id ORDER BY id \
ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running FROM credit_ledger) w \
WHERE running <> balance_after_micros GROUP BY user_id) r ON r.user_id = b.user_id \
WHERE b.balance_micros < 0 \
OR COALESCE(l.total, 0) <> b.balance_micros \
OR COALESCE(l.credits, 0) - COALESCE(l.charges, 0) - COALESCE(h.held, 0) <> b.balance_micros \
OR COALESCE(r.breaks, 0) > 0 \
ORDER BY b.user_id";

/// The migrations sqlx recorded as applied (its default bookkeeping table).
pub(crate) const APPLIED_MIGRATIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";

/// PostgreSQL's statements that take `$2` from balance `$1` first ([`TAKE_FROM_BALANCE`] as
/// the CTE `taken`, the balance after; empty when it does not cover it), then `$rest`.
macro_rules! with_taken {
    ($rest:expr) => {
        concat!(
            "WITH taken AS ( ",
            "UPDATE credit_balances SET balance_micros = balance_micros - $2 ",
            "WHERE user_id = $1 AND balance_micros >= $2 ",
            "RETURNING balance_micros), ",
            $rest
        )
    };
}

/// PostgreSQL only: [`TAKE_FROM_BALANCE`], [`INSERT_HOLD`] and the hold's ledger entry as one
/// statement (data-modifying CTEs, which SQLite lacks), so a hold is one round trip. No row:
/// the balance does not cover it (or has no row), and the general path decides.
pub(crate) const PG_HOLD: &str = with_taken!(
    "\
held AS ( \
INSERT INTO credit_holds (user_id, amount_micros, request_id, created_at, expires_at, replica_id) \
SELECT $1, $2, $3, $4, $5, $6 FROM taken \
RETURNING id), \
entry AS ( \
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, request_id, \
reason, created_at) \
SELECT $1, 'hold', -$2, taken.balance_micros, $3, 'hold ' || held.id, $4 FROM taken, held) \
SELECT held.id, taken.balance_micros FROM taken, held"
);

/// PostgreSQL only: [`TAKE_HOLD`], the give-back of what was not charged, the hold's key
/// budget ([`CLOSE_BUDGET`]) and the settle's two ledger entries (the hold's release, then the
/// charge) as one statement. `$2` is the cost,
/// capped at the hold. No row: the hold was closed before. The entries are inserted in the
/// order of `part`, so their ids follow the running balance.
pub(crate) const PG_SETTLE: &str = "\
WITH closed AS ( \
DELETE FROM credit_holds WHERE id = $1 \
RETURNING user_id, amount_micros, budget_key, budget_period), \
charged AS ( \
SELECT user_id, amount_micros AS held, LEAST(GREATEST($2, 0), amount_micros) AS charge, \
budget_key, budget_period FROM closed), \
budget AS ( \
UPDATE key_spend SET held_micros = key_spend.held_micros - charged.held, \
spent_micros = key_spend.spent_micros + charged.charge \
FROM charged WHERE key_spend.key_id = charged.budget_key \
AND key_spend.period_start = charged.budget_period), \
balance AS ( \
UPDATE credit_balances SET balance_micros = credit_balances.balance_micros \
+ (charged.held - charged.charge) \
FROM charged WHERE credit_balances.user_id = charged.user_id \
RETURNING credit_balances.balance_micros), \
entry AS ( \
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, provider, \
prompt_tokens, completion_tokens, key_source, request_id, reason, created_at, cache_read_tokens, \
cache_write_tokens, reasoning_tokens) \
SELECT charged.user_id, \
CASE part.n WHEN 1 THEN 'release' ELSE 'charge' END, \
CASE part.n WHEN 1 THEN charged.held ELSE -charged.charge END, \
CASE part.n WHEN 1 THEN balance.balance_micros + charged.charge ELSE balance.balance_micros END, \
CASE part.n WHEN 2 THEN $3 END, CASE part.n WHEN 2 THEN $4 END, \
CASE part.n WHEN 2 THEN $5 END, CASE part.n WHEN 2 THEN $6 END, \
CASE part.n WHEN 2 THEN $7 END, $8, \
CASE part.n WHEN 1 THEN 'hold ' || $1 ELSE 'hold ' || $1 || ' of ' || charged.held END, $9, \
CASE part.n WHEN 2 THEN $10 END, CASE part.n WHEN 2 THEN $11 END, \
CASE part.n WHEN 2 THEN $12 END \
FROM charged, balance, (VALUES (1), (2)) AS part (n) \
ORDER BY part.n) \
SELECT balance.balance_micros, charged.charge FROM balance, charged";

/// PostgreSQL only: [`CHARGE_LEASE`], the lock of the balance row, the charge's two ledger
/// entries (the release out of the lease, then the charge; the balance does not move) as one
/// statement. `$1` lease, `$2` cost, `$3` write number, `$4` new expiry, `$5` model, `$6`
/// provider, `$7` key source, `$8`, `$9` and `$12`–`$14` the token counts, `$10` the request,
/// `$11` now. Returns the balance and what the
/// account may spend after the charge (the lease sum is read before this statement's own
/// change, hence `− $2`). No row: the lease is gone, or applied this write before.
pub(crate) const PG_CHARGE_LEASE: &str = "\
WITH lease AS ( \
UPDATE credit_holds SET amount_micros = amount_micros - $2, lease_seq = $3, expires_at = $4 \
WHERE id = $1 AND lease_seq < $3 AND amount_micros >= $2 \
RETURNING user_id), \
balance AS ( \
UPDATE credit_balances SET balance_micros = credit_balances.balance_micros \
FROM lease WHERE credit_balances.user_id = lease.user_id \
RETURNING credit_balances.user_id, credit_balances.balance_micros), \
entry AS ( \
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, provider, \
prompt_tokens, completion_tokens, key_source, request_id, reason, created_at, cache_read_tokens, \
cache_write_tokens, reasoning_tokens) \
SELECT balance.user_id, \
CASE part.n WHEN 1 THEN 'release' ELSE 'charge' END, \
CASE part.n WHEN 1 THEN $2 ELSE -$2 END, \
CASE part.n WHEN 1 THEN balance.balance_micros + $2 ELSE balance.balance_micros END, \
CASE part.n WHEN 2 THEN $5 END, CASE part.n WHEN 2 THEN $6 END, \
CASE part.n WHEN 2 THEN $8 END, CASE part.n WHEN 2 THEN $9 END, \
CASE part.n WHEN 2 THEN $7 END, $10, 'lease ' || $1, $11, \
CASE part.n WHEN 2 THEN $12 END, CASE part.n WHEN 2 THEN $13 END, \
CASE part.n WHEN 2 THEN $14 END \
FROM balance, (VALUES (1), (2)) AS part (n) \
ORDER BY part.n) \
SELECT balance.balance_micros, CAST(balance.balance_micros - $2 + COALESCE((SELECT \
SUM(amount_micros) FROM credit_holds WHERE credit_holds.user_id = balance.user_id \
AND lease_seq IS NOT NULL), 0) AS BIGINT) FROM balance";

/// PostgreSQL only: the entries of a batch of lease writes, with the balance rows they
/// belong to (locked before, see [`PG_LOCK_BALANCES`]) moved by what the batch's returns give
/// back (see `postgres::lease_entries`); a row nothing is given back to is read, not
/// rewritten (a batch of charges over a thousand accounts moves none of them). `$1`/`$2` each account and what its returns give
/// back; `$3` now; `$4`–`$17` the entries, one array per column in batch order (`$7` each
/// `balance_after` less its account's balance before the batch). Returns each account with
/// its balance and what it may spend (its leases counted) after the batch. The entries are
/// inserted in array order, so their ids follow each account's running balance.
pub(crate) const PG_LEASE_ENTRIES: &str = "\
WITH moved AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS m (user_id, returned)), \
given AS ( \
UPDATE credit_balances SET balance_micros = credit_balances.balance_micros + moved.returned \
FROM moved WHERE credit_balances.user_id = moved.user_id AND moved.returned <> 0 \
RETURNING credit_balances.user_id, credit_balances.balance_micros AS after), \
balance AS ( \
SELECT moved.user_id, COALESCE(given.after, held.balance_micros) AS after, \
COALESCE(given.after, held.balance_micros) - moved.returned AS before \
FROM moved JOIN credit_balances held ON held.user_id = moved.user_id \
LEFT JOIN given ON given.user_id = moved.user_id), \
entry AS ( \
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, model, provider, \
prompt_tokens, completion_tokens, key_source, request_id, reason, created_at, cache_read_tokens, \
cache_write_tokens, reasoning_tokens) \
SELECT e.user_id, e.kind, e.amount, balance.before + e.offset_after, e.model, e.provider, \
e.prompt, e.completion, e.key_source, e.request_id, e.reason, $3, e.cache_read, e.cache_write, \
e.reasoning \
FROM unnest($4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::text[], $9::text[], \
$10::bigint[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::bigint[], \
$16::bigint[], $17::bigint[]) WITH ORDINALITY AS e (user_id, kind, amount, offset_after, model, \
provider, prompt, completion, key_source, request_id, reason, cache_read, cache_write, \
reasoning, n) \
JOIN balance ON balance.user_id = e.user_id \
ORDER BY e.n) \
SELECT balance.user_id, CAST(balance.after + COALESCE((SELECT SUM(h.amount_micros) \
FROM credit_holds h WHERE h.user_id = balance.user_id AND h.lease_seq IS NOT NULL), 0) \
AS BIGINT) FROM balance";

/// PostgreSQL only: lock the balance rows of accounts `$1`, in `user_id` order (the sort runs
/// before the locks are taken), so that writers locking several never deadlock.
pub(crate) const PG_LOCK_BALANCES: &str = "\
SELECT user_id FROM credit_balances WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE";

/// PostgreSQL only: [`CHARGE_LEASE`] for many leases in one statement, one array per column
/// (lease, cost, first and last write number, expiry; each lease once). The lease rows are
/// locked in `id` order first (the sort runs before the locks), so that another writer
/// locking several never deadlocks with this one, and the conditions and new values are
/// computed from those locked rows (see [`PG_TAKE_LEASE`] for why not from the update's own
/// scan). The leases charged, with their owners; a
/// lease not returned was left as it was (gone, holding less, or applied one of these writes
/// before), and its charges are tried one by one.
pub(crate) const PG_CHARGE_LEASES: &str = "\
WITH c AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], \
$5::bigint[]) AS c (id, cost, first_seq, last_seq, expires_at)), \
locked AS (SELECT id, amount_micros, lease_seq FROM credit_holds WHERE id = ANY($1) \
ORDER BY id FOR UPDATE) \
UPDATE credit_holds SET amount_micros = locked.amount_micros - c.cost, \
lease_seq = c.last_seq, expires_at = c.expires_at FROM c JOIN locked ON locked.id = c.id \
WHERE credit_holds.id = c.id AND locked.lease_seq < c.first_seq \
AND locked.amount_micros >= c.cost \
RETURNING credit_holds.id, credit_holds.user_id";

/// PostgreSQL only: a batch's usage rows in one upsert, in the order given (key order: see
/// `UsageTotals`), one array per column.
pub(crate) const PG_ADD_USAGE_ROWS: &str = add_to_usage_row!(
    "\
INSERT INTO usage_daily (user_id, model, provider, day, requests, prompt_tokens, \
completion_tokens, cost_micros, cache_read_tokens, cache_write_tokens, reasoning_tokens) \
SELECT u.user_id, u.model, u.provider, u.day, u.requests, u.prompt_tokens, u.completion_tokens, \
u.cost_micros, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens \
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], \
$7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[]) WITH ORDINALITY \
AS u (user_id, model, provider, day, requests, prompt_tokens, completion_tokens, cost_micros, \
cache_read_tokens, cache_write_tokens, reasoning_tokens, n) \
ORDER BY u.n \
"
);

/// PostgreSQL only: a whole take as one statement (one round trip, its own transaction). Lock
/// lease `$2` (this replica's; NULL or gone: a new lease is opened), then the balance row of
/// account `$1` (the order every writer locks them in); if the balance covers the need `$3`,
/// move the take sized as `credits::lease_take` sizes it (want `$4`, floor `$5`, floor share
/// `$9`) into the lease, renewed or placed at `$6` to expire at `$7` by replica `$8`, and write
/// the `hold` entry. The lease and the take (both NULL: the balance does not cover the need,
/// nothing changed) and the balance before; no row: the account has no balance row.
///
/// The moves compute the rows they write from the locked rows (`held`, `locked`), never from
/// the row as their own scan reads it: that scan reads the statement's snapshot, taken before
/// the locks were waited for, so a balance that grew meanwhile (a return committed by this
/// replica's writer) would look too small there — a test on it skips the row, and a value
/// computed from it fails the CHECK constraints, which PostgreSQL evaluates before it re-reads
/// the row's latest version.
pub(crate) const PG_TAKE_LEASE: &str = "\
WITH held AS ( \
SELECT id, amount_micros FROM credit_holds WHERE id = $2::bigint AND lease_seq IS NOT NULL \
FOR UPDATE), \
locked AS ( \
SELECT balance_micros AS before FROM credit_balances \
WHERE user_id = $1 AND (SELECT count(*) FROM held) >= 0 FOR UPDATE), \
sized AS ( \
SELECT before, CASE WHEN before >= need THEN spare + LEAST(want, need + beyond / 2 - spare) END \
AS take \
FROM (SELECT before, need, want, beyond, LEAST(GREATEST($5::bigint - want, 0), \
beyond / $9::bigint) AS spare \
FROM (SELECT before, $3::bigint AS need, GREATEST($4::bigint, $3::bigint) AS want, \
GREATEST(before - $3::bigint, 0) AS beyond FROM locked) AS parts) AS sizes), \
taken AS ( \
UPDATE credit_balances SET balance_micros = sized.before - sized.take \
FROM sized WHERE credit_balances.user_id = $1 AND sized.take IS NOT NULL \
RETURNING credit_balances.balance_micros AS after, sized.take), \
grown AS ( \
UPDATE credit_holds SET amount_micros = held.amount_micros + taken.take, expires_at = $7 \
FROM taken, held WHERE credit_holds.id = held.id RETURNING credit_holds.id), \
fresh AS ( \
INSERT INTO credit_holds (user_id, amount_micros, request_id, created_at, expires_at, \
replica_id, lease_seq) \
SELECT $1, taken.take, 'lease', $6, $7, $8, 0 FROM taken WHERE NOT EXISTS (SELECT 1 FROM held) \
RETURNING id), \
lease AS (SELECT id FROM grown UNION ALL SELECT id FROM fresh), \
entry AS ( \
INSERT INTO credit_ledger (user_id, kind, amount_micros, balance_after_micros, reason, \
created_at) \
SELECT $1, 'hold', -taken.take, taken.after, 'lease ' || lease.id, $6 FROM taken, lease) \
SELECT lease.id, taken.take, sized.before FROM sized LEFT JOIN taken ON true \
LEFT JOIN lease ON true";
