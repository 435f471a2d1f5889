//! A throw-away PostgreSQL database for one load run: `llmgate_bench_<pid>`, dropped after.

use sqlx::Connection;

/// The server the benches use (trust auth, user `postgres`).
pub const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for this run.
#[derive(Debug)]
pub struct BenchDatabase {
    pub name: String,
    pub url: String,
}

impl BenchDatabase {
    /// Create `llmgate_bench_<pid>` (dropping a leftover of the same name first).
    pub async fn create() -> Result<Self, String> {
        let name = format!("llmgate_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .map_err(|e| format!("connecting to {ADMIN_URL}: {e}"))?;
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&mut admin)
                .await
                .map_err(|e| format!("creating the bench database: {e}"))?;
        }
        let _ = admin.close().await;
        Ok(Self {
            url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            name,
        })
    }

    /// Drop it (ending any session the gateway left open).
    pub async fn drop_database(self) -> Result<(), String> {
        let mut admin = sqlx::PgConnection::connect(ADMIN_URL)
            .await
            .map_err(|e| format!("connecting to {ADMIN_URL}: {e}"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .map_err(|e| format!("dropping {}: {e}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}
