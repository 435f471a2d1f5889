//! The database behind a SQL ledger, reused by the users and key-vault tables so that one
//! pool (and one migration run) serves all of them.

use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;

use crate::SqlCreditStore;

/// A connection pool to the ledger's database, SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub enum SqlPool {
    /// A SQLite database.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

impl SqlPool {
    /// The pool of a connected (and migrated) ledger.
    pub fn of(store: &SqlCreditStore) -> Self {
        match store {
            SqlCreditStore::Sqlite(store) => SqlPool::Sqlite(store.pool().clone()),
            SqlCreditStore::Postgres(store) => SqlPool::Postgres(store.pool().clone()),
        }
    }

    /// Where a connected ledger's background writes that are not money go (the request log):
    /// SQLite's one ledger write connection, so they never contend with the ledger for the
    /// database's write lock; PostgreSQL's pool, whose row locks they never touch.
    pub fn background_writes_of(store: &SqlCreditStore) -> Self {
        match store {
            SqlCreditStore::Sqlite(store) => SqlPool::Sqlite(store.background_write_pool()),
            SqlCreditStore::Postgres(store) => SqlPool::Postgres(store.pool().clone()),
        }
    }
}

/// Run the same sqlx code against whichever pool `$pool` holds. The body is type-checked once
/// per backend, so plain SQL with `$n` placeholders (which both accept) is written once.
macro_rules! on_pool {
    ($pool:expr, |$db:ident| $body:expr) => {
        match $pool {
            $crate::users::SqlPool::Sqlite($db) => $body,
            $crate::users::SqlPool::Postgres($db) => $body,
        }
    };
}

pub(crate) use on_pool;
