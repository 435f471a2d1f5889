//! A database per test, for the server's storage: a SQLite file or a fresh PostgreSQL
//! database (the testkit's), kept until the handle is dropped.

use std::any::Any;
use std::path::PathBuf;

use llmgate_testkit::db::{TestPostgres, TestSqlite};

pub use llmgate_testkit::db::unique;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database for one test, removed when dropped.
pub struct Database {
    pub url: String,
    /// The SQLite file, when it is one.
    pub file: Option<PathBuf>,
    _keep: Box<dyn Any + Send>,
}

impl Database {
    /// `None` (after saying why) when PostgreSQL is unreachable, except with `CI=true`, where
    /// that fails the test.
    pub async fn create(db: Db) -> Option<Self> {
        match db {
            Db::Sqlite => Some(sqlite_file()),
            Db::Postgres => postgres().await,
        }
    }
}

impl Database {
    /// Another handle on a database someone else keeps (a second replica's).
    pub fn shared(url: &str) -> Self {
        Database {
            url: url.to_owned(),
            file: None,
            _keep: Box::new(()),
        }
    }
}

/// A SQLite file in a directory of its own.
pub fn sqlite_file() -> Database {
    let db = TestSqlite::new();
    Database {
        url: db.url.clone(),
        file: Some(db.file.clone()),
        _keep: Box::new(db),
    }
}

/// A fresh PostgreSQL database; `None` (after saying why) when PostgreSQL is unreachable,
/// except with `CI=true`, where that fails the test.
pub async fn postgres() -> Option<Database> {
    let db = TestPostgres::create().await?;
    Some(Database {
        url: db.url.clone(),
        file: None,
        _keep: Box::new(db),
    })
}
