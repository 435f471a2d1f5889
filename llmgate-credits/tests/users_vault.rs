//! Users, API keys and the BYOK vault on the real backends: SQLite files and PostgreSQL
//! databases of their own (skipped with a message when PostgreSQL is unreachable, unless
//! `CI=true`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use llmgate_core::{
    ErrorKind,
    credits::CreditStore,
    keys::{KeyVault, Secret},
};
use llmgate_credits::users::{DirectorySettings, UserRole, UserUpdate, key_digest};
use llmgate_credits::vault::VaultSettings;
use llmgate_credits::{
    Keyring, SqlCreditStore, SqlKeyVault, SqlPool, SqlUserStore, UserDirectory, UserStore,
    VaultKey, grant_monthly,
};

use support::unique;

/// A migrated database on one backend, and what keeps it alive.
struct Db {
    name: &'static str,
    ledger: SqlCreditStore,
    pool: SqlPool,
    _keep: Box<dyn Any + Send>,
}

async fn databases() -> Vec<Db> {
    support::sql_ledgers()
        .await
        .into_iter()
        .map(|(name, ledger, keep)| Db {
            name,
            pool: SqlPool::of(&ledger),
            ledger,
            _keep: keep,
        })
        .collect()
}

/// Every byte string stored in the tables this crate's users and vault write.
async fn stored_bytes(pool: &SqlPool) -> Vec<Vec<u8>> {
    const QUERIES: &[&str] = &[
        "SELECT CAST(user_id || tier || role AS TEXT) FROM users",
        "SELECT CAST(id || user_id || key_hint AS TEXT) FROM api_keys",
        "SELECT CAST(user_id || provider || key_id AS TEXT) FROM byok_keys",
    ];
    let mut all = Vec::new();
    for &query in QUERIES {
        let texts: Vec<String> = match pool {
            SqlPool::Sqlite(db) => sqlx::query_scalar(query).fetch_all(db).await.unwrap(),
            SqlPool::Postgres(db) => sqlx::query_scalar(query).fetch_all(db).await.unwrap(),
        };
        all.extend(texts.into_iter().map(String::into_bytes));
    }
    for query in [
        "SELECT key_hash FROM api_keys",
        "SELECT nonce FROM byok_keys",
        "SELECT ciphertext FROM byok_keys",
    ] {
        let blobs: Vec<Vec<u8>> = match pool {
            SqlPool::Sqlite(db) => sqlx::query_scalar(query).fetch_all(db).await.unwrap(),
            SqlPool::Postgres(db) => sqlx::query_scalar(query).fetch_all(db).await.unwrap(),
        };
        all.extend(blobs);
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn execute(pool: &SqlPool, sql: &str) {
    match pool {
        SqlPool::Sqlite(db) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(db)
            .await
            .map(|_| ())
            .unwrap(),
        SqlPool::Postgres(db) => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(db)
            .await
            .map(|_| ())
            .unwrap(),
    }
}

fn vault_key(byte: u8) -> VaultKey {
    VaultKey::from_bytes(&[byte; 32])
}

#[tokio::test]
async fn users_get_keys_that_are_stored_only_as_digests() {
    for db in databases().await {
        let store = SqlUserStore::new(db.pool.clone());
        let (user, issued) = store
            .create("ann", "starter", UserRole::User)
            .await
            .unwrap();
        assert_eq!((user.tier.as_str(), user.role), ("starter", UserRole::User));
        assert!(issued.key.expose().starts_with("lg-"), "{}", db.name);

        let owner = store.owner_of(issued.key.expose()).await.unwrap().unwrap();
        assert_eq!(owner.user, user, "{}", db.name);
        assert_eq!(owner.key_id, issued.id);

        // The key is nowhere in the database; its digest is.
        let stored = stored_bytes(&db.pool).await;
        assert!(
            stored
                .iter()
                .all(|bytes| !contains(bytes, issued.key.expose().as_bytes())),
            "{}",
            db.name
        );
        let digest = key_digest(issued.key.expose());
        assert!(stored.iter().any(|bytes| bytes == &digest), "{}", db.name);

        let keys = store.keys("ann").await.unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_hint, issued.key.hint());
        assert!(keys[0].key_hint.starts_with("lg-..."));
    }
}

#[tokio::test]
async fn duplicate_users_conflict_and_unknown_users_have_nothing() {
    for db in databases().await {
        let store = SqlUserStore::new(db.pool.clone());
        store.create("ann", "free", UserRole::User).await.unwrap();
        let error = store
            .create("ann", "starter", UserRole::Admin)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Conflict, "{}", db.name);
        assert_eq!(error.status(), 409);
        assert_eq!(error.code(), Some("user_exists"));
        // The failed create changed nothing.
        assert_eq!(store.get("ann").await.unwrap().unwrap().tier, "free");
        assert_eq!(store.keys("ann").await.unwrap().len(), 1);

        assert!(store.get("bob").await.unwrap().is_none());
        assert!(store.issue_key("bob").await.unwrap().is_none());
        assert!(
            store
                .update("bob", &UserUpdate::default())
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.revoke_key("bob", "key_x").await.unwrap());
    }
}

#[tokio::test]
async fn revoked_wrong_and_foreign_keys_find_no_owner() {
    for db in databases().await {
        let store = SqlUserStore::new(db.pool.clone());
        let (_, first) = store
            .create("ann", "starter", UserRole::User)
            .await
            .unwrap();
        let second = store.issue_key("ann").await.unwrap().unwrap();
        let (_, bobs) = store
            .create("bob", "starter", UserRole::User)
            .await
            .unwrap();
        assert_ne!(first.key, second.key);

        // Revoking needs the right owner.
        assert!(!store.revoke_key("bob", &first.id).await.unwrap());
        assert!(store.revoke_key("ann", &first.id).await.unwrap());
        assert!(!store.revoke_key("ann", &first.id).await.unwrap(), "twice");

        assert!(store.owner_of(first.key.expose()).await.unwrap().is_none());
        let still = store.owner_of(second.key.expose()).await.unwrap().unwrap();
        assert_eq!(still.user.user_id, "ann", "{}", db.name);
        assert_eq!(
            store
                .owner_of(bobs.key.expose())
                .await
                .unwrap()
                .unwrap()
                .user
                .user_id,
            "bob"
        );
        let mut wrong = second.key.expose().to_owned();
        wrong.pop();
        wrong.push('!');
        assert!(store.owner_of(&wrong).await.unwrap().is_none());
        assert!(store.owner_of("sk-not-ours").await.unwrap().is_none());
        assert!(store.owner_of("").await.unwrap().is_none());

        let keys = store.keys("ann").await.unwrap();
        assert_eq!(keys.len(), 2);
        assert!(
            keys.iter()
                .any(|k| k.id == first.id && k.revoked_at.is_some())
        );
        assert!(
            keys.iter()
                .any(|k| k.id == second.id && k.revoked_at.is_none())
        );
    }
}

#[tokio::test]
async fn users_list_in_pages_and_updates_change_only_what_is_given() {
    for db in databases().await {
        let store = SqlUserStore::new(db.pool.clone());
        for id in ["carl", "ann", "bob", "dora"] {
            store.create(id, "free", UserRole::User).await.unwrap();
        }
        let first = store.list(None, 3).await.unwrap();
        let ids: Vec<&str> = first.iter().map(|u| u.user_id.as_str()).collect();
        assert_eq!(ids, ["ann", "bob", "carl"], "{}", db.name);
        let rest = store.list(Some("carl"), 3).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].user_id, "dora");

        let promoted = store
            .update(
                "bob",
                &UserUpdate {
                    tier: None,
                    role: Some(UserRole::Admin),
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (promoted.tier.as_str(), promoted.role),
            ("free", UserRole::Admin)
        );
        let moved = store
            .update(
                "bob",
                &UserUpdate {
                    tier: Some("enterprise".into()),
                    role: None,
                },
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (moved.tier.as_str(), moved.role),
            ("enterprise", UserRole::Admin)
        );
    }
}

fn directory(db: &Db, credits: Arc<dyn CreditStore>) -> UserDirectory {
    UserDirectory::new(
        Arc::new(SqlUserStore::new(db.pool.clone())),
        credits,
        HashMap::from([("starter".to_owned(), 10_000_000_000)]),
        DirectorySettings::default(),
    )
}

#[tokio::test]
async fn the_first_request_of_a_month_grants_the_tier_credits_once() {
    for db in databases().await {
        let credits: Arc<dyn CreditStore> = Arc::new(db.ledger.clone());
        // A user who has not had this month's grant (as after a month turns).
        let (_, key) = SqlUserStore::new(db.pool.clone())
            .create("ann", "starter", UserRole::User)
            .await
            .unwrap();
        assert_eq!(credits.balance("ann").await.unwrap(), 0);

        let users = directory(&db, credits.clone());
        for _ in 0..3 {
            users.authenticate(key.key.expose()).await.unwrap().unwrap();
        }
        assert_eq!(
            credits.balance("ann").await.unwrap(),
            10_000_000_000,
            "{}",
            db.name
        );
        // Another replica (a fresh directory) asks the ledger, which applies it once.
        let other = directory(&db, credits.clone());
        other.authenticate(key.key.expose()).await.unwrap().unwrap();
        assert_eq!(credits.balance("ann").await.unwrap(), 10_000_000_000);
        let now = llmgate_core::memory::unix_now();
        assert!(
            !grant_monthly(&*credits, "ann", 10_000_000_000, now)
                .await
                .unwrap()
                .applied
        );

        // Creating through the directory grants at once; a tier without a grant gets none.
        users
            .create("bob", "starter", UserRole::User)
            .await
            .unwrap();
        users.create("carl", "free", UserRole::User).await.unwrap();
        assert_eq!(credits.balance("bob").await.unwrap(), 10_000_000_000);
        assert_eq!(credits.balance("carl").await.unwrap(), 0);
    }
}

#[tokio::test]
async fn revocations_and_changes_through_the_directory_apply_at_once() {
    for db in databases().await {
        let credits: Arc<dyn CreditStore> = Arc::new(db.ledger.clone());
        let users = directory(&db, credits);
        let (_, key) = users.create("ann", "free", UserRole::User).await.unwrap();
        // Cached now.
        let owner = users.authenticate(key.key.expose()).await.unwrap().unwrap();
        assert_eq!(owner.user.tier, "free");

        users
            .update(
                "ann",
                &UserUpdate {
                    tier: Some("starter".into()),
                    role: None,
                },
            )
            .await
            .unwrap();
        let owner = users.authenticate(key.key.expose()).await.unwrap().unwrap();
        assert_eq!(owner.user.tier, "starter", "{}", db.name);

        assert!(users.revoke_key("ann", &key.id).await.unwrap());
        assert!(
            users
                .authenticate(key.key.expose())
                .await
                .unwrap()
                .is_none(),
            "{}",
            db.name
        );
    }
}

#[tokio::test]
async fn vault_round_trips_and_stores_only_ciphertext() {
    for db in databases().await {
        let vault = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(1), []),
            VaultSettings::default(),
        );
        // The tail is not hex, so it cannot turn up in a key id or a hash by chance.
        let secret = Secret::new(format!("{}-zqxw", unique("sk-byok-plaintext-")));
        assert_eq!(vault.get("ann", "openai").await.unwrap(), None);
        vault.put("ann", "openai", &secret).await.unwrap();
        assert_eq!(
            vault.get("ann", "openai").await.unwrap(),
            Some(secret.clone())
        );
        assert_eq!(vault.get("bob", "openai").await.unwrap(), None);
        assert_eq!(vault.get("ann", "groq").await.unwrap(), None);

        let listed = vault.list("ann").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].provider, "openai");
        assert_eq!(listed[0].key_hint, secret.hint());
        assert!(vault.list("bob").await.unwrap().is_empty());

        let stored = stored_bytes(&db.pool).await;
        assert!(
            stored
                .iter()
                .all(|bytes| !contains(bytes, secret.expose().as_bytes())),
            "{}: plaintext in the database",
            db.name
        );
        // Not even the hint's tail is stored in clear.
        let tail = &secret.expose()[secret.expose().len() - 4..];
        assert!(stored.iter().all(|bytes| !contains(bytes, tail.as_bytes())));

        let replaced = Secret::new("sk-replaced-0123456789");
        vault.put("ann", "openai", &replaced).await.unwrap();
        assert_eq!(vault.get("ann", "openai").await.unwrap(), Some(replaced));
        assert!(vault.delete("ann", "openai").await.unwrap());
        assert!(!vault.delete("ann", "openai").await.unwrap());
        assert_eq!(vault.get("ann", "openai").await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_sealed_row_moved_to_another_user_or_provider_does_not_open() {
    for db in databases().await {
        let vault = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(1), []),
            VaultSettings {
                cache_ttl: Duration::ZERO,
                cache_capacity: 1,
            },
        );
        vault
            .put("ann", "openai", &Secret::new("sk-ann-0123456789"))
            .await
            .unwrap();
        // An attacker with write access to the table gives Ann's sealed key to Bob.
        execute(&db.pool, "UPDATE byok_keys SET user_id = 'bob'").await;
        let error = vault.get("bob", "openai").await.unwrap_err();
        assert_eq!(error.code(), Some("byok_key_unreadable"), "{}", db.name);
        assert!(!error.message().contains("sk-ann"));
        // Or to another provider of Ann's.
        execute(
            &db.pool,
            "UPDATE byok_keys SET user_id = 'ann', provider = 'groq'",
        )
        .await;
        assert!(vault.get("ann", "groq").await.is_err(), "{}", db.name);
        // Put back, it opens again.
        execute(&db.pool, "UPDATE byok_keys SET provider = 'openai'").await;
        assert_eq!(
            vault.get("ann", "openai").await.unwrap().unwrap().expose(),
            "sk-ann-0123456789"
        );
    }
}

#[tokio::test]
async fn rotation_reseals_every_key_under_the_newest_and_counts() {
    for db in databases().await {
        let old = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(1), []),
            VaultSettings::default(),
        );
        let mut plaintexts = Vec::new();
        // More than one rotation batch would need hundreds; a few users and providers here.
        for user in ["ann", "bob", "carl"] {
            for provider in ["openai", "groq"] {
                let secret = Secret::new(format!("sk-{user}-{provider}-0123456789"));
                old.put(user, provider, &secret).await.unwrap();
                plaintexts.push((user, provider, secret));
            }
        }
        // A row sealed under a key nobody has any more.
        let lost = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(9), []),
            VaultSettings::default(),
        );
        lost.put("dora", "openai", &Secret::new("sk-dora-0123456789"))
            .await
            .unwrap();

        let rotating = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(2), [vault_key(1)]),
            VaultSettings::default(),
        );
        let report = rotating.rotate().await.unwrap();
        assert_eq!(
            (report.resealed, report.current, report.unreadable),
            (6, 0, 1),
            "{}: {report:?}",
            db.name
        );
        let again = rotating.rotate().await.unwrap();
        assert_eq!((again.resealed, again.current, again.unreadable), (0, 6, 1));

        // Only the new key is needed now.
        let new_only = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(2), []),
            VaultSettings::default(),
        );
        for (user, provider, secret) in &plaintexts {
            assert_eq!(
                new_only.get(user, provider).await.unwrap().as_ref(),
                Some(secret),
                "{}",
                db.name
            );
        }
        assert!(old.keyring().key_ids() != new_only.keyring().key_ids());
    }
}

#[tokio::test]
async fn a_put_on_another_replica_is_seen_within_the_cache_ttl_and_at_once_here() {
    for db in databases().await {
        let settings = VaultSettings {
            cache_ttl: Duration::from_secs(3600),
            cache_capacity: 100,
        };
        let here = SqlKeyVault::new(
            db.pool.clone(),
            Keyring::new(vault_key(1), []),
            settings.clone(),
        );
        let there = SqlKeyVault::new(db.pool.clone(), Keyring::new(vault_key(1), []), settings);
        assert_eq!(here.get("ann", "openai").await.unwrap(), None);
        there
            .put("ann", "openai", &Secret::new("sk-there-0123456789"))
            .await
            .unwrap();
        // `here` cached the absence: the other replica's write is not seen yet (bounded by
        // the TTL, 5 s by default) ...
        assert_eq!(
            here.get("ann", "openai").await.unwrap(),
            None,
            "{}",
            db.name
        );
        // ... while a write here is seen at once.
        here.put("ann", "openai", &Secret::new("sk-here-0123456789"))
            .await
            .unwrap();
        assert_eq!(
            here.get("ann", "openai").await.unwrap().unwrap().expose(),
            "sk-here-0123456789"
        );
        here.delete("ann", "openai").await.unwrap();
        assert_eq!(here.get("ann", "openai").await.unwrap(), None);
    }
}

/// Not a check: prints what `KeyVault::get` costs with and without its cache (the numbers in
/// docs/security.md). `cargo test -p llmgate-credits --release --test users_vault -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_vault_get_with_and_without_the_cache() {
    const ROUNDS: u32 = 2000;
    for db in databases().await {
        for (label, ttl) in [
            ("uncached", Duration::ZERO),
            ("cached", Duration::from_secs(5)),
        ] {
            let vault = SqlKeyVault::new(
                db.pool.clone(),
                Keyring::new(vault_key(1), []),
                VaultSettings {
                    cache_ttl: ttl,
                    cache_capacity: 10_000,
                },
            );
            vault
                .put("ann", "openai", &Secret::new("sk-measure-0123456789"))
                .await
                .unwrap();
            for (case, provider) in [("hit", "openai"), ("absent", "groq")] {
                let started = std::time::Instant::now();
                for _ in 0..ROUNDS {
                    vault.get("ann", provider).await.unwrap();
                }
                let per = started.elapsed() / ROUNDS;
                println!("{} {label} {case}: {per:?} per get", db.name);
            }
        }
    }
}
