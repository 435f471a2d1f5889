//! In-process backends: a credit store and a key vault that live in memory. For embedding,
//! tests and benchmarks; nothing survives the process.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::credits::key_budget_exceeded;
use crate::credits::{
    Credit, CreditKind, CreditOutcome, CreditStore, Hold, HoldRequest, LeaseCharge, LeaseOutcome,
    LeaseRequest, LeaseReturn, Page, Transaction, TransactionKind, UsageGroup, UsageQuery,
    UsageRecord, UsageRow, Written,
};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::vault::{KeyVault, StoredKey};

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The calendar day (UTC) of a Unix time, as `YYYY-MM-DD`.
pub fn day_of(unix_secs: i64) -> String {
    let (year, month, day) = crate::key_limits::civil_from_days(unix_secs.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

mod leases;

#[derive(Debug, Default)]
struct LedgerState {
    balances: HashMap<String, i64>,
    holds: HashMap<String, OpenHold>,
    ledger: Vec<Transaction>,
    idempotency_keys: HashSet<String>,
    usage: Vec<UsageRecord>,
    next_hold: u64,
    /// Per key budget and period: (held, spent) micro-credits.
    budgets: HashMap<(String, i64), (i64, i64)>,
}

#[derive(Debug)]
struct OpenHold {
    user_id: String,
    amount_micros: i64,
    expires_at: i64,
    budget: Option<(String, i64)>,
    /// A lease: the last write number it applied (see [`crate::credits::LeaseCharge::seq`]).
    lease_seq: Option<i64>,
}

/// A `CreditStore` in memory: one mutex around the whole state, so every step is atomic.
#[derive(Debug, Default)]
pub struct MemoryCreditStore {
    state: Mutex<LedgerState>,
}

impl MemoryCreditStore {
    /// An empty store: every balance 0.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        // A panic while holding the lock cannot leave a half-applied step (each step mutates
        // only after its checks), so a poisoned lock is safe to keep using.
        crate::sync::lock(&self.state)
    }
}

impl LedgerState {
    /// Open `hold` under the next hold id (`h1`, `h2`, …; never reused) and return the id.
    fn open_hold(&mut self, hold: OpenHold) -> String {
        self.next_hold += 1;
        let id = format!("h{}", self.next_hold);
        self.holds.insert(id.clone(), hold);
        id
    }

    fn append(&mut self, mut entry: Transaction) {
        entry.id = self.ledger.len() as i64 + 1;
        self.ledger.push(entry);
    }

    fn entry(&self, user_id: &str, kind: TransactionKind, amount: i64) -> Transaction {
        Transaction {
            id: 0,
            user_id: user_id.to_owned(),
            kind,
            amount_micros: amount,
            balance_after_micros: self.balances.get(user_id).copied().unwrap_or(0),
            model: None,
            provider: None,
            prompt_tokens: None,
            completion_tokens: None,
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            key_source: None,
            request_id: None,
            idempotency_key: None,
            reason: None,
            at: unix_now(),
        }
    }

    /// Close a hold's part of its key budget: `charge` moves from held to spent.
    fn close_budget(&mut self, hold: &OpenHold, charge: i64) {
        if let Some(budget) = &hold.budget
            && let Some((held, spent)) = self.budgets.get_mut(budget)
        {
            *held -= hold.amount_micros;
            *spent += charge;
        }
    }

    /// Append a settled request's `charge` entry (the balance already moved) and count it
    /// into usage.
    fn charge(&mut self, usage: &UsageRecord, charge: i64, reason: String) {
        let mut entry = self.entry(&usage.user_id, TransactionKind::Charge, -charge);
        entry.model = Some(usage.model.clone());
        entry.provider = Some(usage.provider.clone());
        entry.prompt_tokens = Some(usage.prompt_tokens);
        entry.completion_tokens = Some(usage.completion_tokens);
        entry.cache_read_tokens = Some(usage.cache_read_tokens);
        entry.cache_write_tokens = Some(usage.cache_write_tokens);
        entry.reasoning_tokens = Some(usage.reasoning_tokens);
        entry.key_source = Some(usage.key_source);
        entry.request_id = Some(usage.request_id.clone());
        entry.reason = Some(reason);
        self.append(entry);
        let mut recorded = usage.clone();
        recorded.cost_micros = charge;
        self.usage.push(recorded);
    }

    fn release_hold(&mut self, hold_id: &str) -> bool {
        let Some(hold) = self.holds.remove(hold_id) else {
            return false;
        };
        self.close_budget(&hold, 0);
        *self.balances.entry(hold.user_id.clone()).or_default() += hold.amount_micros;
        let mut entry = self.entry(&hold.user_id, TransactionKind::Release, hold.amount_micros);
        entry.reason = Some(format!("hold {hold_id}"));
        self.append(entry);
        true
    }
}

#[async_trait]
impl CreditStore for MemoryCreditStore {
    async fn hold(&self, request: HoldRequest) -> Result<Hold> {
        if request.amount_micros < 0 {
            return Err(Error::internal("negative hold"));
        }
        let mut state = self.lock();
        let balance = state.balances.get(&request.user_id).copied().unwrap_or(0);
        if balance < request.amount_micros {
            return Err(Error::insufficient_credits(request.amount_micros, balance));
        }
        let budget = request
            .budget
            .as_ref()
            .map(|b| (b.key_id.clone(), b.period_start));
        if let (Some(limit), Some(slot)) = (&request.budget, &budget) {
            let (held, spent) = state.budgets.entry(slot.clone()).or_default();
            let remaining = limit.max_micros - *held - *spent;
            if remaining < request.amount_micros {
                return Err(key_budget_exceeded(request.amount_micros, remaining.max(0)));
            }
            *held += request.amount_micros;
        }
        *state.balances.entry(request.user_id.clone()).or_default() -= request.amount_micros;
        let id = state.open_hold(OpenHold {
            user_id: request.user_id.clone(),
            amount_micros: request.amount_micros,
            expires_at: unix_now() + request.ttl_secs as i64,
            budget,
            lease_seq: None,
        });
        let mut entry = state.entry(
            &request.user_id,
            TransactionKind::Hold,
            -request.amount_micros,
        );
        entry.request_id = Some(request.request_id);
        entry.reason = Some(format!("hold {id}"));
        state.append(entry);
        Ok(Hold {
            id,
            user_id: request.user_id,
            amount_micros: request.amount_micros,
        })
    }

    async fn settle(&self, hold: &Hold, usage: &UsageRecord) -> Result<i64> {
        let mut state = self.lock();
        let Some(open) = state.holds.remove(&hold.id) else {
            return Ok(state.balances.get(&hold.user_id).copied().unwrap_or(0));
        };
        let charge = usage.cost_micros.clamp(0, open.amount_micros);
        state.close_budget(&open, charge);
        // The hold's release, then the charge: the entries add up to the balance.
        *state.balances.entry(open.user_id.clone()).or_default() += open.amount_micros;
        let mut release = state.entry(&open.user_id, TransactionKind::Release, open.amount_micros);
        release.request_id = Some(usage.request_id.clone());
        release.reason = Some(format!("hold {}", hold.id));
        state.append(release);
        *state.balances.entry(open.user_id.clone()).or_default() -= charge;
        let reason = format!("hold {} of {}", hold.id, open.amount_micros);
        state.charge(usage, charge, reason);
        Ok(state.balances.get(&open.user_id).copied().unwrap_or(0))
    }

    async fn release(&self, hold: &Hold) -> Result<()> {
        self.lock().release_hold(&hold.id);
        Ok(())
    }

    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.lock().usage.push(usage.clone());
        Ok(())
    }

    async fn credit(&self, credit: Credit) -> Result<CreditOutcome> {
        if credit.amount_micros <= 0 {
            return Err(Error::invalid_request("a credit must be positive"));
        }
        let mut state = self.lock();
        if state.idempotency_keys.contains(&credit.idempotency_key) {
            let balance = state.balances.get(&credit.user_id).copied().unwrap_or(0);
            return Ok(CreditOutcome {
                applied: false,
                balance_micros: balance,
            });
        }
        let held: i64 = state
            .holds
            .values()
            .filter(|hold| hold.user_id == credit.user_id)
            .map(|hold| hold.amount_micros)
            .sum();
        let balance = state.balances.entry(credit.user_id.clone()).or_default();
        let after = balance
            .checked_add(credit.amount_micros)
            .filter(|after| after.saturating_add(held) <= crate::credits::MAX_BALANCE_MICROS)
            .ok_or_else(crate::credits::balance_limit_exceeded)?;
        *balance = after;
        state
            .idempotency_keys
            .insert(credit.idempotency_key.clone());
        let kind = match credit.kind {
            CreditKind::Grant => TransactionKind::Grant,
            CreditKind::TopUp => TransactionKind::TopUp,
            CreditKind::Refund => TransactionKind::Refund,
        };
        let mut entry = state.entry(&credit.user_id, kind, credit.amount_micros);
        entry.idempotency_key = Some(credit.idempotency_key);
        entry.reason = Some(credit.reason);
        let balance_micros = entry.balance_after_micros;
        state.append(entry);
        Ok(CreditOutcome {
            applied: true,
            balance_micros,
        })
    }

    async fn balance(&self, user_id: &str) -> Result<i64> {
        Ok(self.lock().spendable(user_id))
    }

    async fn transactions(&self, user_id: &str, page: Page) -> Result<Vec<Transaction>> {
        let state = self.lock();
        Ok(state
            .ledger
            .iter()
            .rev()
            .filter(|t| t.user_id == user_id)
            .filter(|t| page.before_id.is_none_or(|before| t.id < before))
            .take(page.limit as usize)
            .cloned()
            .collect())
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>> {
        let state = self.lock();
        let mut rows: Vec<UsageRow> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for record in &state.usage {
            if query
                .user_id
                .as_deref()
                .is_some_and(|u| u != record.user_id)
            {
                continue;
            }
            let day = day_of(record.at);
            if query
                .from_day
                .as_deref()
                .is_some_and(|from| day.as_str() < from)
                || query.to_day.as_deref().is_some_and(|to| day.as_str() > to)
            {
                continue;
            }
            let key = match query.group_by {
                UsageGroup::Model => record.model.clone(),
                UsageGroup::Provider => record.provider.clone(),
                UsageGroup::Day => day,
            };
            let at = *index.entry(key.clone()).or_insert_with(|| {
                rows.push(UsageRow {
                    key,
                    requests: 0,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    reasoning_tokens: 0,
                    cost_micros: 0,
                });
                rows.len() - 1
            });
            let row = &mut rows[at];
            row.requests += 1;
            row.prompt_tokens += record.prompt_tokens;
            row.completion_tokens += record.completion_tokens;
            row.cache_read_tokens += record.cache_read_tokens;
            row.cache_write_tokens += record.cache_write_tokens;
            row.reasoning_tokens += record.reasoning_tokens;
            row.cost_micros += record.cost_micros;
        }
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(rows)
    }

    fn leases(&self) -> bool {
        true
    }

    async fn take_lease(&self, request: LeaseRequest) -> Result<LeaseOutcome> {
        Ok(self.lock().take_lease(&request))
    }

    async fn charge_lease(&self, charge: &LeaseCharge) -> Result<Written> {
        Ok(self.lock().charge_lease(charge))
    }

    async fn return_lease(&self, give: &LeaseReturn) -> Result<Written> {
        Ok(self.lock().return_lease(give))
    }

    async fn reclaim_expired(&self) -> Result<u64> {
        let mut state = self.lock();
        let now = unix_now();
        let expired: Vec<String> = state
            .holds
            .iter()
            .filter(|(_, h)| h.expires_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            state.release_hold(id);
        }
        Ok(expired.len() as u64)
    }
}

/// A `KeyVault` in memory, unencrypted: for embedding and tests only.
#[derive(Debug, Default)]
pub struct MemoryKeyVault {
    keys: Mutex<HashMap<(String, String), (Secret, i64)>>,
}

impl MemoryKeyVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), (Secret, i64)>> {
        crate::sync::lock(&self.keys)
    }
}

#[async_trait]
impl KeyVault for MemoryKeyVault {
    async fn get(&self, user_id: &str, provider: &str) -> Result<Option<Secret>> {
        let key = (user_id.to_owned(), provider.to_owned());
        Ok(self.lock().get(&key).map(|(secret, _)| secret.clone()))
    }

    async fn put(&self, user_id: &str, provider: &str, key: &Secret) -> Result<()> {
        self.lock().insert(
            (user_id.to_owned(), provider.to_owned()),
            (key.clone(), unix_now()),
        );
        Ok(())
    }

    async fn delete(&self, user_id: &str, provider: &str) -> Result<bool> {
        Ok(self
            .lock()
            .remove(&(user_id.to_owned(), provider.to_owned()))
            .is_some())
    }

    async fn list(&self, user_id: &str) -> Result<Vec<StoredKey>> {
        let mut keys: Vec<StoredKey> = self
            .lock()
            .iter()
            .filter(|((user, _), _)| user == user_id)
            .map(|((_, provider), (secret, at))| StoredKey {
                provider: provider.clone(),
                key_hint: secret.hint(),
                updated_at: *at,
            })
            .collect();
        keys.sort_by(|a, b| a.provider.cmp(&b.provider));
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_converts_unix_time_to_utc_date() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(951_782_400), "2000-02-29");
        assert_eq!(day_of(1_798_675_200), "2026-12-31");
    }
}
