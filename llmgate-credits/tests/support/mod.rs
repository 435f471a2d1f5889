//! Shared test support: throwaway SQLite files and PostgreSQL databases (from the testkit), the
//! Redis URL, and credit-store fixtures. Include with `mod support;`.
//!
//! PostgreSQL and Redis are the real services (`LLMGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; `LLMGATE_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`). When one is unreachable a test prints why and passes, except
//! with `CI=true`, where it fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::{credits::CreditStore, memory::MemoryCreditStore};
use llmgate_credits::{
    CacheSettings, CachedCreditStore, PostgresCreditStore, SqlCreditStore, SqliteCreditStore,
};

pub use llmgate_testkit::db::{TestPostgres, TestSqlite, service_unavailable, unique};

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn redis_url() -> String {
    std::env::var("LLMGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_owned())
}

/// A Redis connection for poking at keys directly; `None` (after printing why) when Redis is
/// unreachable outside CI.
pub async fn redis_connection() -> Option<redis::aio::MultiplexedConnection> {
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let client = redis::Client::open(redis_url())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        Ok::<_, redis::RedisError>(connection)
    })
    .await;
    match connected {
        Ok(Ok(connection)) => Some(connection),
        Ok(Err(error)) => {
            service_unavailable("Redis", &error);
            None
        }
        Err(_) => {
            service_unavailable("Redis", &"connecting timed out");
            None
        }
    }
}

/// A credit store under test, with whatever keeps its database alive.
pub struct Fixture {
    pub store: Arc<dyn CreditStore>,
    /// Reconnects a new store to the same database (for restart tests); `None` in memory.
    pub reopen: Option<String>,
    _keep: Box<dyn Any + Send>,
}

impl Fixture {
    pub fn new(store: Arc<dyn CreditStore>, reopen: Option<String>, keep: impl Any + Send) -> Self {
        Self {
            store,
            reopen,
            _keep: Box::new(keep),
        }
    }

    /// The store and what keeps its database alive, to drop the store alone.
    pub fn into_parts(self) -> (Arc<dyn CreditStore>, Box<dyn Any + Send>) {
        (self.store, self._keep)
    }
}

/// A migrated SQL ledger on each real backend, named, with what keeps its database alive: a
/// SQLite file, and a PostgreSQL database when one is reachable.
pub async fn sql_ledgers() -> Vec<(&'static str, SqlCreditStore, Box<dyn Any + Send>)> {
    let mut all = Vec::new();
    let sqlite = TestSqlite::new();
    let ledger = SqlCreditStore::connect(&sqlite.url).await.unwrap();
    all.push(("sqlite", ledger, Box::new(sqlite) as Box<dyn Any + Send>));
    if let Some(postgres) = TestPostgres::create().await {
        let ledger = SqlCreditStore::connect(&postgres.url).await.unwrap();
        all.push(("postgres", ledger, Box::new(postgres)));
    }
    all
}

pub async fn memory_fixture() -> Option<Fixture> {
    Some(Fixture::new(Arc::new(MemoryCreditStore::new()), None, ()))
}

pub async fn sqlite_fixture() -> Option<Fixture> {
    let db = TestSqlite::new();
    let store = SqliteCreditStore::connect(&db.url).await.unwrap();
    Some(Fixture::new(Arc::new(store), Some(db.url.clone()), db))
}

pub async fn postgres_fixture() -> Option<Fixture> {
    let db = TestPostgres::create().await?;
    let store = PostgresCreditStore::connect(&db.url).await.unwrap();
    Some(Fixture::new(Arc::new(store), Some(db.url.clone()), db))
}

/// The Redis cache over a SQLite ledger, with a key prefix of its own.
pub async fn cached_sqlite_fixture() -> Option<Fixture> {
    redis_connection().await?;
    let db = TestSqlite::new();
    let inner = Arc::new(SqliteCreditStore::connect(&db.url).await.unwrap());
    let settings = CacheSettings::default().with_key_prefix(unique("llmgate-test:") + ":");
    let store = CachedCreditStore::connect(inner, &redis_url(), settings)
        .await
        .unwrap();
    Some(Fixture::new(Arc::new(store), Some(db.url.clone()), db))
}

/// Sums over a user's whole ledger, read page by page through `transactions`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerTotals {
    /// Grants, top-ups and refunds.
    pub credits: i64,
    /// Charges, as a positive number.
    pub charges: i64,
    pub entries: usize,
    /// The balance after the newest entry.
    pub latest_balance_after: Option<i64>,
    /// The sum of every entry's amount (the ledger reads like a bank statement: this is the
    /// balance).
    pub sum: i64,
}

pub async fn ledger_totals(store: &dyn CreditStore, user_id: &str) -> LedgerTotals {
    use llmgate_core::credits::{Page, TransactionKind};
    let mut totals = LedgerTotals::default();
    let mut entries = Vec::new();
    let mut before_id = None;
    loop {
        let page = store
            .transactions(
                user_id,
                Page {
                    limit: 97,
                    before_id,
                },
            )
            .await
            .unwrap();
        let Some(last) = page.last() else {
            assert_eq!(
                totals.latest_balance_after.unwrap_or(0),
                totals.sum,
                "the entries add up to the balance after the newest"
            );
            assert_running_sums(&entries);
            return totals;
        };
        entries.extend(page.iter().cloned());
        before_id = Some(last.id);
        for entry in &page {
            assert_eq!(entry.user_id, user_id);
            if totals.latest_balance_after.is_none() {
                totals.latest_balance_after = Some(entry.balance_after_micros);
            }
            totals.entries += 1;
            totals.sum += entry.amount_micros;
            match entry.kind {
                TransactionKind::Grant | TransactionKind::TopUp | TransactionKind::Refund => {
                    totals.credits += entry.amount_micros;
                }
                TransactionKind::Charge => totals.charges -= entry.amount_micros,
                TransactionKind::Hold | TransactionKind::Release => {}
            }
        }
    }
}

/// Each entry's `balance_after` is the running sum of the entries up to it (`newest_first`, as
/// `transactions` pages them).
fn assert_running_sums(newest_first: &[llmgate_core::credits::Transaction]) {
    let mut running = 0;
    for entry in newest_first.iter().rev() {
        running += entry.amount_micros;
        assert_eq!(
            entry.balance_after_micros, running,
            "entry {} ({:?}) breaks the running sum",
            entry.id, entry.kind
        );
    }
}

/// A usage record for tests.
pub fn usage_record(
    user_id: &str,
    request_id: &str,
    model: &str,
    provider: &str,
    cost_micros: i64,
    at: i64,
) -> llmgate_core::credits::UsageRecord {
    llmgate_core::credits::UsageRecord {
        user_id: user_id.to_owned(),
        request_id: request_id.to_owned(),
        model: model.to_owned(),
        provider: provider.to_owned(),
        key_source: llmgate_core::credits::KeySource::Platform,
        prompt_tokens: 10,
        completion_tokens: 20,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        reasoning_tokens: 0,
        cost_micros,
        at,
    }
}

/// Add `amount_micros` to a user as a top-up with a fresh idempotency key.
pub async fn top_up(store: &dyn CreditStore, user_id: &str, amount_micros: i64) {
    let outcome = store
        .credit(llmgate_core::credits::Credit {
            user_id: user_id.to_owned(),
            kind: llmgate_core::credits::CreditKind::TopUp,
            amount_micros,
            idempotency_key: unique("top-up-"),
            reason: "test".to_owned(),
        })
        .await
        .unwrap();
    assert!(outcome.applied);
}

/// A loopback TCP proxy in front of a real service that a test can take down and bring back
/// on the same port, to simulate an outage.
pub struct Outage {
    pub port: u16,
    target: String,
    running: Option<tokio::task::JoinHandle<()>>,
}

impl Outage {
    /// A proxy to `target` (`host:port`), up.
    pub async fn proxy(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut proxy = Self {
            port,
            target: target.to_owned(),
            running: None,
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        self.running = Some(tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            // Dropping this task drops the set, which aborts every proxied connection.
            while let Ok((mut client, _)) = listener.accept().await {
                let target = target.clone();
                connections.spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
            }
        }));
    }

    /// Close the port and cut every open connection.
    pub async fn down(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listen on the same port again.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        self.serve(listener);
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if let Some(task) = self.running.take() {
            task.abort();
        }
    }
}

/// The `host:port` of the test Redis.
pub fn redis_address() -> String {
    let url = redis_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    host_port.split('/').next().unwrap_or(host_port).to_owned()
}
