//! The clients of a run: chat requests from several users to random replicas, top-ups with
//! repeated idempotency keys sent to several replicas at once, and what each client saw.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::Rng;
use rand::seq::IndexedRandom;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{MASTER_KEY, create_user};

use super::behaviour::{Behaviour, MAX_TOKENS, Order};
use super::config::{EDGE_GRANT_CREDITS, RICH_GRANT_CREDITS};
use super::plan::Plan;

const MICROS_PER_CREDIT: i64 = 1_000_000;

/// The live replicas' base URLs; a killed replica is taken out until it is back.
#[derive(Debug, Clone, Default)]
pub struct Targets(Arc<Mutex<Vec<String>>>);

impl Targets {
    pub fn new(urls: Vec<String>) -> Targets {
        Targets(Arc::new(Mutex::new(urls)))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pick(&self, rng: &mut impl Rng) -> Option<String> {
        self.lock().choose(rng).cloned()
    }

    pub fn all(&self) -> Vec<String> {
        self.lock().clone()
    }

    pub fn remove(&self, url: &str) {
        self.lock().retain(|u| u != url);
    }

    pub fn add(&self, url: String) {
        self.lock().push(url);
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub key: String,
    /// Funded with a few holds' worth only, so its requests are refused now and then.
    pub edge: bool,
}

/// How a chat request ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// 200 and a whole answer (a stream up to `data: [DONE]`).
    Served,
    /// 402 `insufficient_credits`.
    Refused,
    /// Any other status.
    Failed(u16),
    /// 200, but the stream broke off or carried an error.
    Broken,
    /// The client dropped the stream after its first chunk.
    Abandoned,
    /// No answer at all (a killed replica).
    Unreachable,
}

/// One idempotency key, as the clients used it.
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub user_id: String,
    pub amount_micros: i64,
    /// Sent how many times.
    pub sends: u32,
    /// A 200 was seen: the key is known to be applied.
    pub acknowledged: bool,
    /// How many 200s said `applied: true` (at most one may).
    pub applied_answers: u32,
}

/// What every client saw, for the checks.
#[derive(Debug, Default)]
pub struct Seen {
    /// The request id (= marker) of every chat request and how it ended.
    pub requests: Vec<(String, Outcome)>,
    /// The account of every chat request, by its request id.
    pub accounts: HashMap<String, String>,
    /// Top-up keys (as sent, without the server's namespace) and their use.
    pub keys: BTreeMap<String, KeyUse>,
    /// The same keys in the order they were made, to pick one to repeat.
    pub made_keys: Vec<String>,
    /// Each user's monthly grant, which replicas were asked to apply concurrently.
    pub grants: BTreeMap<String, i64>,
}

impl Seen {
    pub fn served(&self) -> Vec<String> {
        self.of(Outcome::Served)
    }

    pub fn refused(&self) -> Vec<String> {
        self.of(Outcome::Refused)
    }

    fn of(&self, outcome: Outcome) -> Vec<String> {
        self.requests
            .iter()
            .filter(|(_, o)| *o == outcome)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// What each user was credited, each grant and each key once.
    pub fn credits_in(&self) -> BTreeMap<String, i64> {
        let mut credits = self.grants.clone();
        for key in self.keys.values() {
            *credits.entry(key.user_id.clone()).or_default() += key.amount_micros;
        }
        credits
    }

    /// Requests per outcome, for the summary.
    pub fn tally(&self) -> BTreeMap<Outcome, usize> {
        let mut tally = BTreeMap::new();
        for (_, outcome) in &self.requests {
            *tally.entry(*outcome).or_default() += 1;
        }
        tally
    }
}

pub type Shared = Arc<Mutex<Seen>>;

pub fn lock(seen: &Shared) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|p| p.into_inner())
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Create `edge` + `rich` users on the first replica in a tier without a grant, then move
/// each to its funded tier on every replica at once: each replica applies the month's grant,
/// under one idempotency key, so all but one find it used.
pub async fn create_users(
    plan: &Plan,
    tag: &str,
    targets: &Targets,
    edge: usize,
    rich: usize,
    seen: &Shared,
) -> Vec<User> {
    let urls = targets.all();
    let mut users = Vec::new();
    for index in 0..edge + rich {
        let is_edge = index < edge;
        let id = format!("u{index}-{tag}");
        let key = create_user(&urls[0], &id, "newcomer").await;
        let tier = if is_edge { "edge" } else { "rich" };
        let moves = urls.iter().map(|url| {
            client()
                .patch(format!("{url}/api/v1/admin/users/{id}"))
                .bearer_auth(MASTER_KEY)
                .json(&json!({"tier": tier}))
                .send()
        });
        for answer in futures::future::join_all(moves).await {
            let answer = answer.unwrap();
            assert_eq!(
                answer.status(),
                200,
                "[{}] moving {id} to {tier}",
                plan.variant
            );
        }
        let grant = if is_edge {
            EDGE_GRANT_CREDITS
        } else {
            RICH_GRANT_CREDITS
        };
        lock(seen).grants.insert(
            id.clone(),
            i64::try_from(grant).unwrap() * MICROS_PER_CREDIT,
        );
        users.push(User {
            id,
            key,
            edge: is_edge,
        });
    }
    users
}

/// Send chat requests until `until`, one at a time, from users picked at random (mostly the
/// ones at the edge).
pub async fn chat_client(
    mut rng: impl Rng,
    name: String,
    users: Arc<Vec<User>>,
    targets: Targets,
    seen: Shared,
    slow: bool,
    until: Instant,
) {
    let client = client();
    let edge: Vec<&User> = users.iter().filter(|u| u.edge).collect();
    let rich: Vec<&User> = users.iter().filter(|u| !u.edge).collect();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let user = if rng.random_bool(0.75) {
            edge.choose(&mut rng)
        } else {
            rich.choose(&mut rng)
        }
        .copied()
        .unwrap();
        let order = Order {
            marker: format!("{name}-{n}"),
            behaviour: Behaviour::pick(&mut rng, slow),
            completion_tokens: rng.random_range(1..=MAX_TOKENS),
        };
        let stream = order.behaviour == Behaviour::Disconnect || rng.random_bool(0.5);
        let Some(url) = targets.pick(&mut rng) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let outcome = chat(&client, &url, user, &order, stream).await;
        let mut seen = lock(&seen);
        seen.accounts.insert(order.marker.clone(), user.id.clone());
        seen.requests.push((order.marker, outcome));
    }
}

async fn chat(
    client: &reqwest::Client,
    url: &str,
    user: &User,
    order: &Order,
    stream: bool,
) -> Outcome {
    let body = json!({
        "model": order.behaviour.model(),
        "stream": stream,
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": order.prompt()}],
    });
    let sent = client
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(&user.key)
        .header("x-request-id", &order.marker)
        .json(&body)
        .send()
        .await;
    let Ok(mut response) = sent else {
        return Outcome::Unreachable;
    };
    match response.status().as_u16() {
        200 => {}
        402 => return Outcome::Refused,
        status => {
            if std::env::var_os("LLMGATE_STRESS_DEBUG").is_some() {
                eprintln!(
                    "{} {status}: {}",
                    order.marker,
                    response.text().await.unwrap_or_default()
                );
            }
            return Outcome::Failed(status);
        }
    }
    if !stream {
        return match response.json::<Value>().await {
            Ok(answer) if answer["choices"][0]["message"].is_object() => Outcome::Served,
            _ => Outcome::Broken,
        };
    }
    if order.behaviour == Behaviour::Disconnect {
        let _ = response.chunk().await;
        return Outcome::Abandoned;
    }
    let mut text = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(_) => return Outcome::Broken,
        }
    }
    let text = String::from_utf8_lossy(&text);
    let whole = text.ends_with("data: [DONE]\n\n")
        && !text
            .split("\n\n")
            .any(|event| event.starts_with("data: {\"error\""));
    if whole {
        Outcome::Served
    } else {
        Outcome::Broken
    }
}

/// Top up users until `until`: a new key or one used before, sent to one to three replicas at
/// once.
pub async fn top_up_client(
    mut rng: impl Rng,
    tag: String,
    users: Arc<Vec<User>>,
    targets: Targets,
    seen: Shared,
    until: Instant,
) {
    let client = client();
    let mut n = 0u64;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
        let reuse = match rng.random_bool(0.3) {
            true => lock(&seen).made_keys.choose(&mut rng).cloned(),
            false => None,
        };
        let key = match reuse {
            Some(key) => key,
            None => {
                n += 1;
                let user = users.choose(&mut rng).unwrap();
                // Users at the edge get a fraction of a hold to a few holds.
                let credits = if user.edge {
                    rng.random_range(200..1_500)
                } else {
                    1
                };
                let key = format!("topup-{tag}-{n:07}");
                let mut seen = lock(&seen);
                seen.made_keys.push(key.clone());
                seen.keys.insert(
                    key.clone(),
                    KeyUse {
                        user_id: user.id.clone(),
                        amount_micros: credits * MICROS_PER_CREDIT,
                        sends: 0,
                        acknowledged: false,
                        applied_answers: 0,
                    },
                );
                key
            }
        };
        let copies = rng.random_range(1..=3);
        let urls: Vec<String> = (0..copies).filter_map(|_| targets.pick(&mut rng)).collect();
        send_key(&client, &urls, &key, &seen).await;
    }
}

/// Send the top-up of `key` to every URL at once and note what came back.
pub async fn send_key(client: &reqwest::Client, urls: &[String], key: &str, seen: &Shared) {
    let Some(usage) = lock(seen).keys.get(key).cloned() else {
        return;
    };
    let body = json!({
        "user_id": usage.user_id,
        "amount": usage.amount_micros / MICROS_PER_CREDIT,
        "reason": "stress top-up",
        "idempotency_key": key,
    });
    let sends = urls.iter().map(|url| {
        client
            .post(format!("{url}/api/v1/llm/credits/add"))
            .bearer_auth(MASTER_KEY)
            .json(&body)
            .send()
    });
    let answers = futures::future::join_all(sends).await;
    let mut applied = Vec::new();
    for answer in answers {
        let Ok(answer) = answer else { continue };
        if answer.status() != 200 {
            continue;
        }
        if let Ok(body) = answer.json::<Value>().await {
            applied.push(body["applied"] == Value::Bool(true));
        }
    }
    let mut seen = lock(seen);
    if let Some(usage) = seen.keys.get_mut(key) {
        usage.sends += u32::try_from(urls.len()).unwrap_or(u32::MAX);
        usage.acknowledged |= !applied.is_empty();
        usage.applied_answers += u32::try_from(applied.iter().filter(|a| **a).count()).unwrap_or(0);
    }
}

/// Send every key no replica acknowledged (its replica was killed) again until one does, so
/// that each key is known to be applied.
pub async fn settle_unacknowledged_keys(targets: &Targets, seen: &Shared) {
    let client = client();
    for _ in 0..50 {
        let pending: Vec<String> = lock(seen)
            .keys
            .iter()
            .filter(|(_, k)| !k.acknowledged)
            .map(|(key, _)| key.clone())
            .collect();
        if pending.is_empty() {
            return;
        }
        let urls = targets.all();
        for key in pending {
            send_key(&client, &urls[..1], &key, seen).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("top-ups were never acknowledged");
}
