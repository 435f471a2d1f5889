//! Where billing keeps its state: the purchases the gateway started, and which users have
//! already been alerted about a low balance. SQL (the ledger's own database, tables from the
//! `0200_billing` migration) or in memory.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use llmgate_core::{Error, Result, sync};
use llmgate_credits::SqlCreditStore;
use sqlx::Row as _;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

/// Where a purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PurchaseStatus {
    /// The Checkout Session exists; nothing paid yet.
    Pending,
    /// Paid and credited.
    Completed,
}

impl PurchaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Pending => "pending",
            PurchaseStatus::Completed => "completed",
        }
    }
}

/// One Checkout Session and what it buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    pub session_id: String,
    pub user_id: String,
    pub package: String,
    pub credits_micros: i64,
    pub amount_cents: i64,
    pub status: PurchaseStatus,
    /// Unix seconds.
    pub created_at: i64,
    pub completed_at: Option<i64>,
}

/// Purchases started through `POST /api/v1/llm/credits/purchase`.
#[async_trait]
pub trait PurchaseStore: Send + Sync + fmt::Debug + 'static {
    /// Remember a new session as pending.
    async fn record_pending(&self, purchase: &Purchase) -> Result<()>;

    async fn find(&self, session_id: &str) -> Result<Option<Purchase>>;

    /// Mark a session completed at `at` (inserting it when it was never recorded). `false`
    /// when it was already completed.
    async fn complete(&self, purchase: &Purchase, at: i64) -> Result<bool>;
}

/// The low-balance alert latch: disarmed once an alert went out, re-armed by a credit.
#[async_trait]
pub trait AlertLatch: Send + Sync + fmt::Debug + 'static {
    /// Disarm the user's alert; `true` for the one caller (across replicas) that did, who then
    /// sends the alert.
    async fn disarm(&self, user_id: &str, at: i64) -> Result<bool>;

    /// Arm it again (the balance is back over the threshold).
    async fn rearm(&self, user_id: &str) -> Result<()>;

    /// Credits the user's requests in flight hold (their open holds); 0 where holds are not
    /// kept in this database.
    async fn held_micros(&self, _user_id: &str) -> Result<i64> {
        Ok(0)
    }
}

const _: Option<Arc<dyn PurchaseStore>> = None;
const _: Option<Arc<dyn AlertLatch>> = None;

/// The ledger's database pool.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Run the same sqlx code on whichever pool it is; the statements are plain SQL both accept.
macro_rules! on_pool {
    ($pool:expr, |$db:ident| $body:expr) => {
        match $pool {
            Pool::Sqlite($db) => $body,
            Pool::Postgres($db) => $body,
        }
    };
}

const INSERT_PENDING: &str = "INSERT INTO billing_purchases \
    (session_id, user_id, package, credits_micros, amount_cents, status, created_at) \
    VALUES ($1, $2, $3, $4, $5, 'pending', $6) ON CONFLICT (session_id) DO NOTHING";

const SELECT_PURCHASE: &str = "SELECT session_id, user_id, package, credits_micros, \
    amount_cents, status, created_at, completed_at FROM billing_purchases WHERE session_id = $1";

/// One statement whichever replica runs it: the pending row flips once; a session the gateway
/// never recorded (created elsewhere with our metadata) is inserted as completed.
const COMPLETE: &str = "INSERT INTO billing_purchases \
    (session_id, user_id, package, credits_micros, amount_cents, status, created_at, completed_at) \
    VALUES ($1, $2, $3, $4, $5, 'completed', $6, $6) \
    ON CONFLICT (session_id) DO UPDATE SET status = 'completed', completed_at = excluded.completed_at \
    WHERE billing_purchases.status = 'pending'";

/// The insert is the test-and-set: only one of any number of racing replicas gets a row in.
const DISARM: &str = "INSERT INTO billing_low_balance_alerts (user_id, alerted_at) VALUES ($1, $2) \
    ON CONFLICT (user_id) DO NOTHING";

const REARM: &str = "DELETE FROM billing_low_balance_alerts WHERE user_id = $1";

const HELD: &str = "SELECT CAST(COALESCE(SUM(amount_micros), 0) AS BIGINT) FROM credit_holds \
    WHERE user_id = $1";

/// Billing tables in the ledger's database.
#[derive(Debug, Clone)]
pub struct SqlBillingStore {
    pool: Pool,
}

impl SqlBillingStore {
    /// On the database of a connected (and so migrated) ledger.
    pub fn new(ledger: &SqlCreditStore) -> Self {
        let pool = match ledger {
            SqlCreditStore::Sqlite(store) => Pool::Sqlite(store.pool().clone()),
            SqlCreditStore::Postgres(store) => Pool::Postgres(store.pool().clone()),
        };
        Self { pool }
    }
}

/// Details go to the debug log; the client sees 503 like every other database failure.
fn database_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        tracing::warn!(operation, "billing database step failed");
        tracing::debug!(operation, %error, "billing database error detail");
        Error::unavailable("database unavailable")
    }
}

fn purchase_from_parts(
    text: (String, String, String, String),
    numbers: (i64, i64, i64, Option<i64>),
) -> Result<Purchase> {
    let (session_id, user_id, package, status) = text;
    let (credits_micros, amount_cents, created_at, completed_at) = numbers;
    let status = match status.as_str() {
        "pending" => PurchaseStatus::Pending,
        "completed" => PurchaseStatus::Completed,
        _ => return Err(Error::internal("unknown purchase status in the database")),
    };
    Ok(Purchase {
        session_id,
        user_id,
        package,
        credits_micros,
        amount_cents,
        status,
        created_at,
        completed_at,
    })
}

#[async_trait]
impl PurchaseStore for SqlBillingStore {
    async fn record_pending(&self, p: &Purchase) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(INSERT_PENDING)
                .bind(&p.session_id)
                .bind(&p.user_id)
                .bind(&p.package)
                .bind(p.credits_micros)
                .bind(p.amount_cents)
                .bind(p.created_at)
                .execute(pool)
                .await
                .map_err(database_error("record purchase"))?;
        });
        Ok(())
    }

    async fn find(&self, session_id: &str) -> Result<Option<Purchase>> {
        on_pool!(&self.pool, |pool| {
            let row = sqlx::query(SELECT_PURCHASE)
                .bind(session_id)
                .fetch_optional(pool)
                .await
                .map_err(database_error("find purchase"))?;
            let Some(row) = row else { return Ok(None) };
            let decode = database_error("decode purchase");
            let parts = (|| {
                Ok::<_, sqlx::Error>((
                    (
                        row.try_get("session_id")?,
                        row.try_get("user_id")?,
                        row.try_get("package")?,
                        row.try_get("status")?,
                    ),
                    (
                        row.try_get("credits_micros")?,
                        row.try_get("amount_cents")?,
                        row.try_get("created_at")?,
                        row.try_get("completed_at")?,
                    ),
                ))
            })()
            .map_err(decode)?;
            purchase_from_parts(parts.0, parts.1).map(Some)
        })
    }

    async fn complete(&self, p: &Purchase, at: i64) -> Result<bool> {
        let done = on_pool!(&self.pool, |pool| {
            sqlx::query(COMPLETE)
                .bind(&p.session_id)
                .bind(&p.user_id)
                .bind(&p.package)
                .bind(p.credits_micros)
                .bind(p.amount_cents)
                .bind(at)
                .execute(pool)
                .await
                .map_err(database_error("complete purchase"))?
                .rows_affected()
        });
        Ok(done > 0)
    }
}

#[async_trait]
impl AlertLatch for SqlBillingStore {
    async fn disarm(&self, user_id: &str, at: i64) -> Result<bool> {
        let inserted = on_pool!(&self.pool, |pool| {
            sqlx::query(DISARM)
                .bind(user_id)
                .bind(at)
                .execute(pool)
                .await
                .map_err(database_error("disarm alert"))?
                .rows_affected()
        });
        Ok(inserted == 1)
    }

    async fn rearm(&self, user_id: &str) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(REARM)
                .bind(user_id)
                .execute(pool)
                .await
                .map_err(database_error("re-arm alert"))?;
        });
        Ok(())
    }

    async fn held_micros(&self, user_id: &str) -> Result<i64> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query_scalar::<_, i64>(HELD)
                .bind(user_id)
                .fetch_one(pool)
                .await
                .map_err(database_error("read open holds"))?
        }))
    }
}

/// Billing state in memory, for a gateway without a SQL ledger (one process only).
#[derive(Debug, Default)]
pub struct MemoryBillingStore {
    purchases: Mutex<HashMap<String, Purchase>>,
    disarmed: Mutex<HashSet<String>>,
}

#[async_trait]
impl PurchaseStore for MemoryBillingStore {
    async fn record_pending(&self, purchase: &Purchase) -> Result<()> {
        sync::lock(&self.purchases)
            .entry(purchase.session_id.clone())
            .or_insert_with(|| Purchase {
                status: PurchaseStatus::Pending,
                completed_at: None,
                ..purchase.clone()
            });
        Ok(())
    }

    async fn find(&self, session_id: &str) -> Result<Option<Purchase>> {
        Ok(sync::lock(&self.purchases).get(session_id).cloned())
    }

    async fn complete(&self, purchase: &Purchase, at: i64) -> Result<bool> {
        let mut purchases = sync::lock(&self.purchases);
        let entry = purchases
            .entry(purchase.session_id.clone())
            .or_insert_with(|| Purchase {
                created_at: at,
                ..purchase.clone()
            });
        if entry.status == PurchaseStatus::Completed && entry.completed_at.is_some() {
            return Ok(false);
        }
        entry.status = PurchaseStatus::Completed;
        entry.completed_at = Some(at);
        Ok(true)
    }
}

#[async_trait]
impl AlertLatch for MemoryBillingStore {
    async fn disarm(&self, user_id: &str, _at: i64) -> Result<bool> {
        Ok(sync::lock(&self.disarmed).insert(user_id.to_owned()))
    }

    async fn rearm(&self, user_id: &str) -> Result<()> {
        sync::lock(&self.disarmed).remove(user_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase(session_id: &str) -> Purchase {
        Purchase {
            session_id: session_id.into(),
            user_id: "ann".into(),
            package: "credits-5000".into(),
            credits_micros: 5_000_000_000,
            amount_cents: 450,
            status: PurchaseStatus::Pending,
            created_at: 1,
            completed_at: None,
        }
    }

    async fn contract(purchases: &dyn PurchaseStore, latch: &dyn AlertLatch) {
        purchases.record_pending(&purchase("cs_1")).await.unwrap();
        let found = purchases.find("cs_1").await.unwrap().unwrap();
        assert_eq!(found.status, PurchaseStatus::Pending);
        assert_eq!(found.credits_micros, 5_000_000_000);
        assert!(purchases.find("cs_nope").await.unwrap().is_none());

        assert!(purchases.complete(&found, 7).await.unwrap());
        assert!(!purchases.complete(&found, 8).await.unwrap());
        let done = purchases.find("cs_1").await.unwrap().unwrap();
        assert_eq!(
            (done.status, done.completed_at),
            (PurchaseStatus::Completed, Some(7))
        );
        // A session never recorded here is remembered once completed.
        assert!(purchases.complete(&purchase("cs_2"), 9).await.unwrap());
        let other = purchases.find("cs_2").await.unwrap().unwrap();
        assert_eq!(other.status, PurchaseStatus::Completed);

        assert!(latch.disarm("ann", 1).await.unwrap());
        assert!(!latch.disarm("ann", 2).await.unwrap());
        assert!(latch.disarm("bob", 2).await.unwrap());
        latch.rearm("ann").await.unwrap();
        assert!(latch.disarm("ann", 3).await.unwrap());
    }

    #[tokio::test]
    async fn memory_store_keeps_the_contract() {
        let store = MemoryBillingStore::default();
        contract(&store, &store).await;
    }

    #[tokio::test]
    async fn sqlite_store_keeps_the_contract() {
        let ledger = SqlCreditStore::connect("sqlite::memory:").await.unwrap();
        let store = SqlBillingStore::new(&ledger);
        contract(&store, &store).await;
    }
}
