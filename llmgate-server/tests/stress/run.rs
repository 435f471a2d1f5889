//! One run of a variant: a fresh database, the fake upstream, the replicas, traffic for the
//! plan's duration (with a replica killed and restarted midway where asked), a graceful stop,
//! a reclaim, and the invariants.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmgate_core::CreditStore;
use llmgate_core::memory::unix_now;
use llmgate_credits::{SqlCreditStore, monthly_grant_key};
use llmgate_testkit::FakeUpstream;
use tokio::time::Instant;

use crate::support::databases::{Database, Db};

use super::behaviour::{Order, obey_orders};
use super::config::Storage;
use super::invariants::{Expected, Pool, check};
use super::plan::Plan;
use super::replicas::{Fleet, Process};
use super::traffic::{self, Seen, Targets};

/// How a variant is run.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    pub name: &'static str,
    pub db: Db,
    pub replicas: usize,
    /// Share a Redis (balance cache, limits, cooldowns) between the replicas.
    pub redis: bool,
    /// The real binary, one replica killed with SIGKILL and restarted midway.
    pub binary_with_kill: bool,
    /// Short enough for holds to expire during the run (slow answers outlive them).
    pub hold_ttl_secs: u64,
    /// Concurrent chat clients.
    pub clients: u64,
}

const EDGE_USERS: usize = 3;
const RICH_USERS: usize = 2;

impl Variant {
    fn holds_expire(&self) -> bool {
        self.hold_ttl_secs <= 5
    }

    /// Run it; panics with every violation (and the seed) if an invariant is broken.
    pub async fn run(self) {
        let plan = Plan::from_env(self.name);
        let Some(database) = Database::create(self.db).await else {
            return;
        };
        let redis = if self.redis {
            let Some(url) = redis_url().await else { return };
            Some((url, format!("{}:", llmgate_testkit::db::unique("stress-"))))
        } else {
            None
        };
        let storage = Storage {
            database_url: database.url.clone(),
            redis,
            hold_ttl_secs: self.hold_ttl_secs,
        };
        let upstream = FakeUpstream::start().await;
        // A slow answer starts well after its hold expired and a reclaim ran.
        obey_orders(&upstream, Duration::from_secs(self.hold_ttl_secs + 2));
        let dir = std::env::temp_dir().join(llmgate_testkit::db::unique("llmgate-stress-"));
        std::fs::create_dir_all(&dir).unwrap();

        let fleet = if self.binary_with_kill {
            Fleet::binaries(self.replicas, &storage, &upstream.url(), &dir).await
        } else {
            Fleet::in_process(self.replicas, &storage, &upstream.url()).await
        };
        let targets = Targets::new(fleet.urls());
        let seen: traffic::Shared = Arc::new(Mutex::new(Seen::default()));
        let tag = plan.tag();
        let users = Arc::new(
            traffic::create_users(&plan, &tag, &targets, EDGE_USERS, RICH_USERS, &seen).await,
        );

        let until = Instant::now() + plan.traffic;
        let mut clients = Vec::new();
        for index in 0..self.clients {
            clients.push(tokio::spawn(traffic::chat_client(
                plan.rng(index),
                format!("c{index}-{tag}"),
                users.clone(),
                targets.clone(),
                seen.clone(),
                self.holds_expire(),
                until,
            )));
        }
        clients.push(tokio::spawn(traffic::top_up_client(
            plan.rng(u64::MAX),
            tag.clone(),
            users.clone(),
            targets.clone(),
            seen.clone(),
            until,
        )));
        let fleet = if self.binary_with_kill {
            kill_and_restart_one(fleet, &plan, &storage, &upstream, &dir, &targets).await
        } else {
            fleet
        };
        for client in clients {
            client.await.unwrap();
        }
        traffic::settle_unacknowledged_keys(&targets, &seen).await;
        fleet.stop().await;

        let expected = self.expected(&seen, &upstream);
        let pool = Pool::connect(&database.url).await;
        if self.holds_expire() {
            // Every hold left open (a killed replica's) is past its expiry by then.
            tokio::time::sleep(Duration::from_secs(self.hold_ttl_secs + 1)).await;
        }
        let reclaimed = SqlCreditStore::connect(&database.url)
            .await
            .unwrap()
            .reclaim_expired()
            .await
            .unwrap();
        let findings = check(&pool, &expected).await;
        pool.close().await;

        let seen = traffic::lock(&seen);
        let summary = format!(
            "ledger stress [{}] seed {}: {} requests {:?}, {} top-up keys ({} sends), {} accounts, \
             {} charges, {} served after their hold expired, {} holds reclaimed at the end, \
             {} accounts with open holds",
            self.name,
            plan.seed,
            seen.requests.len(),
            seen.tally(),
            seen.keys.len(),
            seen.keys.values().map(|k| k.sends).sum::<u32>(),
            findings.accounts,
            findings.charges,
            findings.served_after_expiry,
            reclaimed,
            findings.open_holds,
        );
        eprintln!("{summary}");
        if !findings.violations.is_empty() {
            let list: Vec<String> = findings
                .violations
                .iter()
                .map(|v| format!("  {v}"))
                .collect();
            panic!(
                "{} ledger invariant violation(s) in [{}] with seed {} \
                 (replay with LLMGATE_STRESS_SEED={}):\n{}\n{summary}",
                findings.violations.len(),
                self.name,
                plan.seed,
                plan.seed,
                list.join("\n")
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn expected(&self, seen: &traffic::Shared, upstream: &FakeUpstream) -> Expected {
        let seen = traffic::lock(seen);
        let now = unix_now();
        let mut keys: Vec<(String, String)> = seen
            .keys
            .iter()
            .map(|(key, usage)| (key.clone(), usage.user_id.clone()))
            .collect();
        keys.extend(
            seen.grants
                .keys()
                .map(|user| (monthly_grant_key(user, now), user.clone())),
        );
        Expected {
            served: seen.served(),
            refused: seen.refused(),
            upstream_saw: upstream
                .requests()
                .iter()
                .filter_map(Order::of)
                .map(|order| order.marker)
                .collect::<HashSet<_>>(),
            credits_in: seen.credits_in(),
            keys,
            applied_twice: seen
                .keys
                .iter()
                .filter(|(_, k)| k.applied_answers > 1)
                .map(|(key, _)| key.clone())
                .collect(),
            hold_ttl_secs: i64::try_from(self.hold_ttl_secs).unwrap(),
        }
    }
}

/// Midway through the traffic, SIGKILL the last replica, and start it again (on a new port)
/// a moment later.
async fn kill_and_restart_one(
    fleet: Fleet,
    plan: &Plan,
    storage: &Storage,
    upstream: &FakeUpstream,
    dir: &std::path::Path,
    targets: &Targets,
) -> Fleet {
    let Fleet::Binaries(mut processes) = fleet else {
        return fleet;
    };
    tokio::time::sleep(plan.traffic / 2).await;
    let index = processes.len() - 1;
    let victim = &mut processes[index];
    targets.remove(&victim.url());
    victim.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let restarted = Process::start(storage, &upstream.url(), dir, index, 1);
    restarted.wait_ready().await;
    targets.add(restarted.url());
    processes[index] = restarted;
    Fleet::Binaries(processes)
}

/// The test Redis, when it answers; `None` (after saying why) when it does not, except with
/// `CI=true`, where that fails the test.
async fn redis_url() -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = std::env::var("LLMGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let address = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .rsplit('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    let ping = async {
        let mut socket = tokio::net::TcpStream::connect(&address).await.ok()?;
        socket.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        socket.read_exact(&mut reply).await.ok()?;
        Some(reply == *b"+PONG\r\n")
    };
    if matches!(
        tokio::time::timeout(Duration::from_secs(2), ping).await,
        Ok(Some(true))
    ) {
        return Some(url);
    }
    llmgate_testkit::db::service_unavailable("Redis", &url);
    None
}
