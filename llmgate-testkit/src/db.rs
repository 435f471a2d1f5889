//! Throwaway databases, one per test: a SQLite file in a directory of its own, or a fresh
//! PostgreSQL database dropped (forcibly) at the end.
//!
//! PostgreSQL is the real service (`LLMGATE_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). When it is unreachable a test prints `SKIPPED`
//! and passes, except with `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;

use sqlx::Connection;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// How long creating a database may take before PostgreSQL counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether a missing service must fail the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skip (print why) or, in CI, fail.
pub fn service_unavailable(service: &str, why: &dyn std::fmt::Display) {
    if in_ci() {
        panic!("{service} is required when CI=true but is unreachable: {why}");
    }
    eprintln!("SKIPPED: {service} is unreachable ({why}); set it up to run this test");
}

/// `prefix` and a random suffix, for database names, key prefixes and user ids.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

/// A SQLite database file in its own temporary directory, removed on drop.
#[derive(Debug)]
pub struct TestSqlite {
    pub url: String,
    pub file: PathBuf,
    dir: PathBuf,
}

impl TestSqlite {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("llmgate-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ledger.db");
        Self {
            url: format!("sqlite://{}", file.display()),
            file,
            dir,
        }
    }
}

impl Default for TestSqlite {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestSqlite {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server the test databases are created on.
pub fn postgres_admin_url() -> String {
    std::env::var("LLMGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A fresh PostgreSQL database (`llmgate_test_<random>`), dropped (forcibly) on drop.
#[derive(Debug)]
pub struct TestPostgres {
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestPostgres {
    /// The database's name on the test server.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `None` (after printing why) when PostgreSQL is unreachable outside CI.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url();
        let name = unique("llmgate_test_");
        let created = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await?;
            admin.close().await
        })
        .await;
        match created {
            Ok(Ok(())) => Some(Self {
                url: with_database(&admin_url, &name),
                name,
                admin_url,
            }),
            Ok(Err(error)) => {
                service_unavailable("PostgreSQL", &error);
                None
            }
            Err(_) => {
                service_unavailable("PostgreSQL", &"connecting timed out");
                None
            }
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself: drop the database
        // from a thread with its own runtime. FORCE ends the pools' sessions still open.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// `url` with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_replaces_the_path_only() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
