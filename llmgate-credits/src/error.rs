//! Database errors as the core's error: the client sees 503 "database unavailable"; the
//! details (which may name tables, constraints or hosts) go to the debug log only.

use llmgate_core::Error;

/// The client-facing error for a failed database step. Logs what failed at `warn` (without
/// details) and the driver's error at `debug`.
pub(crate) fn database_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        tracing::warn!(operation, cause = cause_of(&error), "database step failed");
        tracing::debug!(operation, %error, "database error detail");
        Error::unavailable("database unavailable")
    }
}

/// A short, secret-free label for the kind of failure.
fn cause_of(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Configuration(_) => "configuration",
        sqlx::Error::Database(_) => "database",
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => "connection",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::PoolTimedOut => "pool timed out",
        sqlx::Error::PoolClosed => "pool closed",
        sqlx::Error::Migrate(_) => "migration",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "other",
    }
}

/// A migration failure at start-up.
pub(crate) fn migration_error(error: sqlx::migrate::MigrateError) -> Error {
    tracing::error!(%error, "database migration failed");
    Error::unavailable("database unavailable: migrations failed")
}
