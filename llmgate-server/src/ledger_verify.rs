//! `llmgate ledger verify`: the ledger's invariants, checked in the database (see
//! docs/operations.md). Reads only; safe while replicas serve.

use std::path::Path;
use std::process::ExitCode;

use llmgate_credits::{LedgerReport, SqlCreditStore};

use crate::config::{Config, Env};

/// Run the check: exit 0 when every account adds up, 1 listing those that do not (or when the
/// config or database fails).
pub fn main(config: Option<&Path>, env: &Env) -> ExitCode {
    crate::offline::run(config, env, |config| async move {
        verify(&config).await.map(|report| print_report(&report))
    })
}

async fn verify(config: &Config) -> Result<LedgerReport, String> {
    let ledger = SqlCreditStore::connect(&config.storage.database_url)
        .await
        .map_err(|error| format!("storage.database_url: {}", error.message()))?;
    ledger
        .verify_ledger()
        .await
        .map_err(|error| error.message().to_owned())
}

fn print_report(report: &LedgerReport) -> ExitCode {
    if report.holds_past_expiry > 0 {
        println!(
            "note: {} open hold(s) past their expiry (a running server reclaims them within \
             storage.reclaim_every_secs)",
            report.holds_past_expiry
        );
    }
    if report.is_exact() {
        println!(
            "ledger OK: {} account(s); every balance is its entries' sum and credits - charges - \
             open holds",
            report.accounts_checked
        );
        return ExitCode::SUCCESS;
    }
    if !report.problems.is_empty() {
        println!(
            "{} of {} account(s) do not add up:",
            report.problems.len(),
            report.accounts_checked
        );
    }
    for problem in &report.problems {
        println!("  {problem}");
    }
    if !report.budget_problems.is_empty() {
        println!(
            "{} API key budget period(s) hold what their open holds do not:",
            report.budget_problems.len()
        );
    }
    for problem in &report.budget_problems {
        println!("  {problem}");
    }
    ExitCode::FAILURE
}
