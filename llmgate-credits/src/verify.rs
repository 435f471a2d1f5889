//! The ledger's invariants as a check an operator can run (`llmgate ledger verify`) and the
//! tests assert after every stress run:
//!
//! - no balance is below zero;
//! - the entries of an account sum to its balance, and each entry's `balance_after` is the
//!   running sum of the entries up to it (the ledger reads like a bank statement);
//! - balance = credits in (grants, top-ups, refunds) − charges − open holds;
//! - what each API key budget's period holds is the sum of its open holds.
//!
//! The check only reads. Holds past their expiry are counted, not failed: a running server
//! reclaims them within seconds.

use std::fmt;

/// One account whose rows break an invariant, with the figures that disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountProblem {
    /// The account's user id.
    pub user_id: String,
    /// The balance row (`credit_balances`).
    pub balance_micros: i64,
    /// The sum of the account's ledger entries.
    pub entries_micros: i64,
    /// Grants, top-ups and refunds.
    pub credits_micros: i64,
    /// Charges, as a positive number.
    pub charges_micros: i64,
    /// What open holds keep off the balance.
    pub open_holds_micros: i64,
    /// Entries whose `balance_after` is not the running sum.
    pub running_sum_breaks: i64,
}

impl AccountProblem {
    /// What credits, charges and open holds say the balance should be.
    pub fn expected_balance_micros(&self) -> i64 {
        self.credits_micros
            .saturating_sub(self.charges_micros)
            .saturating_sub(self.open_holds_micros)
    }
}

impl fmt::Display for AccountProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrong = Vec::new();
        if self.balance_micros < 0 {
            wrong.push("balance below zero".to_owned());
        }
        if self.entries_micros != self.balance_micros {
            wrong.push(format!("entries sum to {}", self.entries_micros));
        }
        if self.expected_balance_micros() != self.balance_micros {
            wrong.push(format!(
                "credits {} - charges {} - open holds {} = {}",
                self.credits_micros,
                self.charges_micros,
                self.open_holds_micros,
                self.expected_balance_micros()
            ));
        }
        if self.running_sum_breaks > 0 {
            wrong.push(format!(
                "{} entries whose balance_after is not the running sum",
                self.running_sum_breaks
            ));
        }
        write!(
            f,
            "{}: balance {} micros, but {}",
            self.user_id,
            self.balance_micros,
            wrong.join("; ")
        )
    }
}

/// A key budget's period whose `held_micros` is not the sum of its open holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetProblem {
    /// The key.
    pub key_id: String,
    /// The period's start (Unix seconds; 0 for a `total` budget).
    pub period_start: i64,
    /// What the budget's row says is held.
    pub held_micros: i64,
    /// What the open holds that count against it add up to.
    pub open_holds_micros: i64,
}

impl fmt::Display for BudgetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {} (period from {}): holds {} micros, but its open holds sum to {}",
            self.key_id, self.period_start, self.held_micros, self.open_holds_micros
        )
    }
}

/// What `SqlCreditStore::verify_ledger` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerReport {
    /// How many accounts were checked.
    pub accounts_checked: i64,
    /// Every account that breaks an invariant; empty when the ledger is exact.
    pub problems: Vec<AccountProblem>,
    /// Open holds past their expiry (reclaimed by a running server within seconds).
    pub holds_past_expiry: i64,
    /// Every key budget whose held amount disagrees with its open holds.
    pub budget_problems: Vec<BudgetProblem>,
}

impl LedgerReport {
    /// Whether no account and no key budget breaks an invariant.
    pub fn is_exact(&self) -> bool {
        self.problems.is_empty() && self.budget_problems.is_empty()
    }
}
