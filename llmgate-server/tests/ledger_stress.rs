#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The ledger's invariants under randomized concurrent traffic, checked in SQL afterwards (see
//! `stress/invariants.rs` for the list): replicas on one PostgreSQL database (in-process, with
//! and without Redis, and the real binary with one replica killed by SIGKILL and restarted),
//! and one SQLite replica. The traffic mixes JSON and streamed requests from users with
//! plenty of credits and users at the edge of their balance, fallbacks, upstream 5xx/429s and
//! cut streams, clients dropping streams, top-ups with repeated idempotency keys sent to
//! several replicas at once, concurrently applied monthly grants, and (where holds live one
//! or two seconds) answers slower than their hold.
//!
//! Each variant runs a few seconds; `LLMGATE_STRESS_SECS=N` runs each for N seconds, and
//! `LLMGATE_STRESS_SEED=S` replays a seed (printed at the start and on any failure);
//! `LLMGATE_STRESS_DEBUG=1` prints the body of every answer that is neither 200 nor 402.

mod stress;
mod support;

use stress::run::Variant;
use support::databases::Db;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_postgres_replicas_keep_the_ledger_invariants() {
    Variant {
        name: "postgres, 2 replicas",
        db: Db::Postgres,
        replicas: 2,
        redis: false,
        binary_with_kill: false,
        hold_ttl_secs: 3600,
        clients: 16,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_postgres_replicas_sharing_redis_with_expiring_holds_keep_the_ledger_invariants() {
    Variant {
        name: "postgres, 3 replicas, redis, 1 s holds",
        db: Db::Postgres,
        replicas: 3,
        redis: true,
        binary_with_kill: false,
        hold_ttl_secs: 1,
        clients: 12,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_binaries_on_postgres_with_one_killed_and_restarted_keep_the_ledger_invariants() {
    Variant {
        name: "postgres, 2 binaries, one SIGKILLed",
        db: Db::Postgres,
        replicas: 2,
        redis: false,
        binary_with_kill: true,
        // Holds outlive the run: the killed replica's come back only because it stopped
        // beating (storage.replica_timeout_secs), which the run checks.
        hold_ttl_secs: 3600,
        clients: 12,
    }
    .run()
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sqlite_replica_with_expiring_holds_keeps_the_ledger_invariants() {
    Variant {
        name: "sqlite, 1 replica, 1 s holds",
        db: Db::Sqlite,
        replicas: 1,
        redis: false,
        binary_with_kill: false,
        hold_ttl_secs: 1,
        clients: 8,
    }
    .run()
    .await;
}
