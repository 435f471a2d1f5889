//! One run of a variant: a fresh database, the fake upstream, the replicas, traffic for the
//! plan's duration (with a replica killed and restarted midway where asked), a graceful stop,
//! a reclaim, and the invariants.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmgate_core::credits::CreditStore;
use llmgate_core::memory::unix_now;
use llmgate_credits::{SqlCreditStore, monthly_grant_key};
use llmgate_testkit::FakeUpstream;
use tokio::time::Instant;

use crate::support::databases::{Database, Db, unique};
use crate::support::redis::test_redis;

use super::behaviour::{Order, obey_orders};
use super::config::Storage;
use super::invariants::{Expected, Findings, Pool, Violation, check};
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
        let Some(mut stage) = Stage::set_up(self).await else {
            return;
        };
        let seen = stage.drive(&plan).await;
        let findings = stage.stop_and_check(&seen).await;
        let summary = summary(&plan, &traffic::lock(&seen), &findings);
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
    }
}

/// Everything a run stands on: the database, the fake upstream and the replicas.
struct Stage {
    variant: Variant,
    database: Database,
    storage: Storage,
    upstream: FakeUpstream,
    fleet: Fleet,
    targets: Targets,
    /// Configs and logs of the binaries; removed after a clean run.
    dir: PathBuf,
    /// Invariants found broken during the run (checked again at the end with the others).
    early_violations: Vec<Violation>,
}

impl Stage {
    /// `None` (after saying why) when a service the variant needs is unavailable.
    async fn set_up(variant: Variant) -> Option<Stage> {
        let database = Database::create(variant.db).await?;
        let redis = match variant.redis {
            true => Some((test_redis().await?, format!("{}:", unique("stress-")))),
            false => None,
        };
        let storage = Storage {
            database_url: database.url.clone(),
            redis,
            hold_ttl_secs: variant.hold_ttl_secs,
        };
        let upstream = FakeUpstream::start().await;
        // A slow answer starts well after its hold expired and a reclaim ran.
        obey_orders(&upstream, Duration::from_secs(variant.hold_ttl_secs + 2));
        let dir = std::env::temp_dir().join(unique("llmgate-stress-"));
        std::fs::create_dir_all(&dir).unwrap();
        let fleet = match variant.binary_with_kill {
            true => Fleet::binaries(variant.replicas, &storage, &upstream.url(), &dir).await,
            false => Fleet::in_process(variant.replicas, &storage, &upstream.url()).await,
        };
        let targets = Targets::new(fleet.urls());
        Some(Stage {
            variant,
            database,
            storage,
            upstream,
            fleet,
            targets,
            dir,
            early_violations: Vec::new(),
        })
    }

    /// The users, then the traffic for the plan's duration (killing and restarting a replica
    /// midway where the variant says so), until every client is done and every top-up key
    /// is known to be applied.
    async fn drive(&mut self, plan: &Plan) -> traffic::Shared {
        let seen: traffic::Shared = Arc::new(Mutex::new(Seen::default()));
        let tag = plan.tag();
        let users = traffic::create_users(plan, &tag, &self.targets, EDGE_USERS, RICH_USERS, &seen);
        let users = Arc::new(users.await);
        let until = Instant::now() + plan.traffic;
        let mut clients = Vec::new();
        for index in 0..self.variant.clients {
            clients.push(tokio::spawn(traffic::chat_client(
                plan.rng(index),
                format!("c{index}-{tag}"),
                users.clone(),
                self.targets.clone(),
                seen.clone(),
                self.variant.holds_expire(),
                until,
            )));
        }
        clients.push(tokio::spawn(traffic::top_up_client(
            plan.rng(u64::MAX),
            tag,
            users,
            self.targets.clone(),
            seen.clone(),
            until,
        )));
        if self.variant.binary_with_kill {
            tokio::time::sleep(plan.traffic / 2).await;
            self.kill_and_restart_one().await;
        }
        for client in clients {
            client.await.unwrap();
        }
        traffic::settle_unacknowledged_keys(&self.targets, &seen).await;
        seen
    }

    /// SIGKILL the last replica, check that its holds come back while the other replica
    /// lives, and start it again (on a new port).
    async fn kill_and_restart_one(&mut self) {
        let Fleet::Binaries(processes) = &mut self.fleet else {
            return;
        };
        let index = processes.len() - 1;
        let victim = &mut processes[index];
        self.targets.remove(&victim.url());
        victim.kill();
        self.holds_of_the_dead_come_back().await;
        let restarted = Process::start(&self.storage, &self.upstream.url(), &self.dir, index, 1);
        restarted.wait_ready().await;
        self.targets.add(restarted.url());
        if let Fleet::Binaries(processes) = &mut self.fleet {
            processes[index] = restarted;
        }
    }

    /// Once a replica is silent past the timeout (and a reclaim tick of the others has run),
    /// no hold it placed is open any more, though its holds live an hour.
    async fn holds_of_the_dead_come_back(&mut self) {
        const HOLDS_OF_SILENT_REPLICAS: &str = "SELECT CAST(COUNT(*) AS BIGINT) FROM credit_holds \
            JOIN ledger_replicas ON ledger_replicas.replica_id = credit_holds.replica_id \
            WHERE ledger_replicas.heartbeat_at <= $1";
        let timeout = super::config::REPLICA_TIMEOUT_SECS;
        tokio::time::sleep(Duration::from_secs(timeout + 3)).await;
        let pool = Pool::connect(&self.database.url).await;
        let silent_since = unix_now() - i64::try_from(timeout + 2).unwrap();
        let left = pool.count(HOLDS_OF_SILENT_REPLICAS, silent_since).await;
        pool.close().await;
        if left > 0 {
            self.early_violations.push(Violation {
                invariant: "holds of a killed replica come back once it is silent past the timeout",
                subject: format!("replicas silent since {silent_since}"),
                expected: "0 open holds".to_owned(),
                actual: format!("{left} open holds"),
            });
        }
    }

    /// Stop the replicas gracefully, wait until any hold left open (a killed replica's) has
    /// expired, reclaim, and check the invariants.
    async fn stop_and_check(self, seen: &traffic::Shared) -> Findings {
        self.fleet.stop().await;
        let expected = expected(&self.variant, &traffic::lock(seen), &self.upstream);
        if self.variant.holds_expire() {
            tokio::time::sleep(Duration::from_secs(self.variant.hold_ttl_secs + 1)).await;
        }
        let early_violations = self.early_violations;
        let mut findings = {
            let store = SqlCreditStore::connect(&self.database.url).await.unwrap();
            let reclaimed = store.reclaim_expired().await.unwrap();
            let pool = Pool::connect(&self.database.url).await;
            let mut findings = check(&pool, &expected).await;
            pool.close().await;
            findings.reclaimed_at_the_end = reclaimed;
            findings.violations.extend(early_violations);
            findings
        };
        if findings.violations.is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            // Keep the configs and logs, not the copy of the binary.
            let _ = std::fs::remove_file(self.dir.join("llmgate"));
            findings.kept = Some(self.dir.clone());
        }
        findings
    }
}

/// What the database must show, from what the clients and the upstream saw.
fn expected(variant: &Variant, seen: &Seen, upstream: &FakeUpstream) -> Expected {
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
        accounts: seen.accounts.clone(),
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
        hold_ttl_secs: i64::try_from(variant.hold_ttl_secs).unwrap(),
        replica_killed: variant.binary_with_kill,
    }
}

/// One line on what a run did, printed after every run.
fn summary(plan: &Plan, seen: &Seen, findings: &Findings) -> String {
    let mut line = format!(
        "ledger stress [{}] seed {}: {} requests {:?}, {} top-up keys ({} sends), {} accounts, \
         {} charges, {} served after their hold expired, {} holds reclaimed at the end, \
         {} accounts with open holds",
        plan.variant,
        plan.seed,
        seen.requests.len(),
        seen.tally(),
        seen.keys.len(),
        seen.keys.values().map(|k| k.sends).sum::<u32>(),
        findings.accounts,
        findings.charges,
        findings.served_after_expiry,
        findings.reclaimed_at_the_end,
        findings.open_holds,
    );
    if let Some(dir) = &findings.kept {
        line.push_str(&format!(
            "; replica configs and logs kept in {}",
            dir.display()
        ));
    }
    line
}
