//! Database errors as the core's error: the client sees 503 "database unavailable"; the
//! details (which may name tables, constraints or hosts) go to the debug log only.

use llmgate_core::Error;

/// The client-facing error for a failed database step. Logs what failed at `warn` (without
/// details) and the driver's error at `debug`.
///
/// A statement the database *refused* (a constraint, a value out of range) fails the same way
/// however often it is tried: that is an internal error (500), never "unavailable" (503), so
/// the ledger queue sets it aside instead of retrying it (see `is_transient`).
pub(crate) fn database_error(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |error| {
        tracing::debug!(operation, %error, "database error detail");
        if refused(&error) {
            tracing::error!(operation, "the database refused a statement");
            Error::internal("the database refused a ledger statement")
        } else {
            tracing::warn!(operation, cause = cause_of(&error), "database step failed");
            Error::unavailable("database unavailable")
        }
    }
}

/// Whether the database refused the statement itself (it would fail again), as opposed to
/// failing to run it (connection, lock, overload: worth another try).
fn refused(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(error) = error else {
        return false;
    };
    if !matches!(error.kind(), sqlx::error::ErrorKind::Other) {
        return true; // unique, foreign key, not-null or check violation
    }
    let Some(code) = error.code() else {
        return false;
    };
    if error
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        // SQLSTATE class 22: data exception (a bigint out of range); 23: integrity.
        return code.starts_with("22") || code.starts_with("23");
    }
    // SQLite: the primary result code is the low byte of the extended one. 18 too big, 19
    // constraint (also a STRICT column refusing an overflowed value), 20 type mismatch, 25
    // out of range.
    code.parse::<i32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 18 | 19 | 20 | 25))
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
