//! The Redis balance cache: reads go through Redis, writes invalidate, replicas see each
//! other's writes, and a missing Redis costs nothing but the cache.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use llmgate_core::{
    ErrorKind,
    credits::{CreditStore, HoldRequest},
};
use llmgate_credits::{CacheSettings, CachedCreditStore, SqliteCreditStore};
use redis::aio::MultiplexedConnection;

use support::{Outage, TestSqlite, redis_address, redis_connection, redis_url, top_up, unique};

struct Setup {
    _db: TestSqlite,
    url: String,
    prefix: String,
    redis: MultiplexedConnection,
}

async fn setup() -> Option<Setup> {
    let redis = redis_connection().await?;
    let db = TestSqlite::new();
    Some(Setup {
        url: db.url.clone(),
        _db: db,
        prefix: unique("llmgate-test:") + ":",
        redis,
    })
}

impl Setup {
    /// A replica: its own SQLite handle on the shared file, its own cache on the shared Redis.
    async fn replica(&self) -> CachedCreditStore {
        let ledger = Arc::new(SqliteCreditStore::connect(&self.url).await.unwrap());
        let settings = CacheSettings::default().with_key_prefix(self.prefix.clone());
        CachedCreditStore::connect(ledger, &redis_url(), settings)
            .await
            .unwrap()
    }

    async fn get(&mut self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }

    async fn set(&mut self, key: &str, value: &str) {
        redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(value)
            .query_async::<()>(&mut self.redis)
            .await
            .unwrap();
    }

    async fn ttl(&mut self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(format!("{}{key}", self.prefix))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn balance_reads_are_served_from_redis_until_a_write() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let store = setup.replica().await;
    top_up(&store, "ann", 100).await;
    assert_eq!(store.balance("ann").await.unwrap(), 100);
    let cached = setup.get("b:ann").await.expect("balance cached");
    assert!(cached.ends_with(":100"), "{cached}");
    let ttl = setup.ttl("b:ann").await;
    assert!((1..=60).contains(&ttl), "ttl {ttl}");

    // Tamper with the cached number (keeping its tag): the next read must come from Redis.
    let (tag, _) = cached.rsplit_once(':').unwrap();
    setup.set("b:ann", &format!("{tag}:12345")).await;
    assert_eq!(store.balance("ann").await.unwrap(), 12_345);

    // A write drops it; the next read is the ledger's.
    top_up(&store, "ann", 5).await;
    assert_eq!(setup.get("b:ann").await, None);
    assert_eq!(store.balance("ann").await.unwrap(), 105);
}

#[tokio::test]
async fn an_entry_with_an_outdated_tag_is_never_served() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let store = setup.replica().await;
    top_up(&store, "bea", 100).await;
    // What a reader that raced a writer would leave behind: the old generation's tag.
    setup.set("b:bea", "0:0:999").await;
    assert_eq!(store.balance("bea").await.unwrap(), 100);
}

#[tokio::test]
async fn every_write_invalidates_the_users_entry() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let store = setup.replica().await;
    top_up(&store, "cy", 10_000).await;
    let hold_request = |amount| HoldRequest {
        user_id: "cy".into(),
        request_id: unique("req-"),
        amount_micros: amount,
        ttl_secs: 3_600,
        budget: None,
    };

    assert_eq!(store.balance("cy").await.unwrap(), 10_000);
    let hold = store.hold(hold_request(1_000)).await.unwrap();
    assert_eq!(store.balance("cy").await.unwrap(), 9_000);
    let usage = support::usage_record("cy", "r", "m", "p", 400, 1_772_323_200);
    store.settle(&hold, &usage).await.unwrap();
    assert_eq!(store.balance("cy").await.unwrap(), 9_600);
    let hold = store.hold(hold_request(600)).await.unwrap();
    assert_eq!(store.balance("cy").await.unwrap(), 9_000);
    store.release(&hold).await.unwrap();
    assert_eq!(store.balance("cy").await.unwrap(), 9_600);
    assert!(setup.get("b:cy").await.is_some());
}

#[tokio::test]
async fn a_write_on_one_replica_is_seen_by_the_others() {
    let Some(setup) = setup().await else {
        return;
    };
    let first = setup.replica().await;
    let second = setup.replica().await;
    top_up(&first, "dee", 1_000).await;
    assert_eq!(first.balance("dee").await.unwrap(), 1_000);
    assert_eq!(second.balance("dee").await.unwrap(), 1_000);

    second
        .hold(HoldRequest {
            user_id: "dee".into(),
            request_id: "r".into(),
            amount_micros: 250,
            ttl_secs: 3_600,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(first.balance("dee").await.unwrap(), 750);
}

#[tokio::test]
async fn a_reclaim_invalidates_every_cached_balance() {
    let Some(setup) = setup().await else {
        return;
    };
    let store = setup.replica().await;
    let other = setup.replica().await;
    top_up(&store, "eli", 1_000).await;
    store
        .hold(HoldRequest {
            user_id: "eli".into(),
            request_id: "r".into(),
            amount_micros: 300,
            ttl_secs: 0,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(store.balance("eli").await.unwrap(), 700);
    assert_eq!(other.balance("eli").await.unwrap(), 700);

    // The reclaim does not know whose holds it released; every entry must go stale.
    assert_eq!(other.reclaim_expired().await.unwrap(), 1);
    assert_eq!(store.balance("eli").await.unwrap(), 1_000);
    assert_eq!(other.balance("eli").await.unwrap(), 1_000);
}

#[tokio::test]
async fn without_redis_the_store_works_uncached() {
    let db = TestSqlite::new();
    let ledger = Arc::new(SqliteCreditStore::connect(&db.url).await.unwrap());
    let settings = CacheSettings {
        timeout: Duration::from_millis(200),
        ..CacheSettings::default()
    };
    // Nothing listens on port 1.
    let store = CachedCreditStore::connect(ledger, "redis://127.0.0.1:1", settings)
        .await
        .unwrap();
    assert!(!store.redis_healthy().await);
    let error = store.ping().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(!error.message().contains("127.0.0.1"));

    top_up(&store, "fin", 500).await;
    assert_eq!(store.balance("fin").await.unwrap(), 500);
    let hold = store
        .hold(HoldRequest {
            user_id: "fin".into(),
            request_id: "r".into(),
            amount_micros: 200,
            ttl_secs: 3_600,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(store.balance("fin").await.unwrap(), 300);
    let usage = support::usage_record("fin", "r", "m", "p", 50, 1_772_323_200);
    assert_eq!(store.settle(&hold, &usage).await.unwrap(), 450);
    assert_eq!(store.balance("fin").await.unwrap(), 450);
}

#[tokio::test]
async fn a_malformed_redis_url_is_a_config_error_without_the_url() {
    let db = TestSqlite::new();
    let ledger = Arc::new(SqliteCreditStore::connect(&db.url).await.unwrap());
    let error = CachedCreditStore::connect(
        ledger,
        "http://user:hunter2@example.invalid",
        CacheSettings::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(!error.message().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_lost_in_an_outage_is_made_up_when_redis_returns() {
    let Some(mut setup) = setup().await else {
        return;
    };
    let mut outage = Outage::proxy(&redis_address()).await;
    let ledger = Arc::new(SqliteCreditStore::connect(&setup.url).await.unwrap());
    let settings = CacheSettings {
        timeout: Duration::from_millis(300),
        retry_after: Duration::from_millis(20),
        ..CacheSettings::default().with_key_prefix(setup.prefix.clone())
    };
    let proxied = format!("redis://127.0.0.1:{}", outage.port);
    let store = CachedCreditStore::connect(ledger, &proxied, settings)
        .await
        .unwrap();
    let other = setup.replica().await;

    top_up(&store, "gil", 1_000).await;
    assert_eq!(store.balance("gil").await.unwrap(), 1_000);
    assert_eq!(other.balance("gil").await.unwrap(), 1_000);

    outage.down().await;
    assert!(!store.redis_healthy().await);
    // Requests go on without Redis.
    store
        .hold(HoldRequest {
            user_id: "gil".into(),
            request_id: "r".into(),
            amount_micros: 400,
            ttl_secs: 3_600,
            budget: None,
        })
        .await
        .unwrap();
    assert_eq!(store.balance("gil").await.unwrap(), 600);
    // The hold's invalidation never arrived: Redis still holds the old balance, and its tag
    // is still current.
    let stale = setup.get("b:gil").await.unwrap();
    assert!(stale.ends_with(":1000"), "{stale}");

    outage.up().await;
    let mut back = false;
    for _ in 0..100 {
        if store.redis_healthy().await {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the store reconnects once Redis is reachable again");
    // Its next read makes up for the lost invalidation, for every replica. The make-up (an
    // epoch bump) is itself a Redis command under the store's timeout: on a loaded machine the
    // first one after the reconnect can time out, and then the store reads the ledger and
    // tries again on its next read. So: each read is right, and the other replica is right
    // once a bump got through.
    let mut made_up = false;
    for _ in 0..100 {
        assert_eq!(store.balance("gil").await.unwrap(), 600);
        if other.balance("gil").await.unwrap() == 600 {
            made_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(made_up, "the other replica still reads the stale balance");
}
