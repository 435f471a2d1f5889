//! `llmgate rotate-keys`: re-seal every stored BYOK key under the newest key.
//!
//! The procedure (docs/security.md): put the new key in `byok.encryption_key` and the old one
//! in `byok.previous_keys` on every replica, run this once, then drop the old key.

use std::path::Path;
use std::process::ExitCode;

use llmgate_credits::vault::{RotationReport, VaultSettings};
use llmgate_credits::{SqlCreditStore, SqlKeyVault, SqlPool};

use crate::config::{Config, Env};
use crate::storage::keyring;

/// Run the command; exit 1 when the config or database fails, or some key could not be opened.
pub fn main(config: Option<&Path>, env: &Env) -> ExitCode {
    crate::offline::run(config, env, |config| async move {
        let report = rotate(&config).await?;
        println!(
            "re-sealed {} key(s); {} already under the newest key; {} unreadable; {} changed by \
             their owner meanwhile",
            report.resealed, report.current, report.unreadable, report.skipped
        );
        if report.unreadable > 0 {
            return Err(format!(
                "{} stored key(s) were sealed under a key that is neither byok.encryption_key \
                 nor in byok.previous_keys (or were tampered with); their owners must store \
                 them again",
                report.unreadable
            ));
        }
        Ok(ExitCode::SUCCESS)
    })
}

async fn rotate(config: &Config) -> Result<RotationReport, String> {
    let keyring = keyring(&config.byok)
        .map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            lines.join("; ")
        })?
        .ok_or("byok.encryption_key is not set: there is no key to re-seal under")?;
    let ledger = SqlCreditStore::connect(&config.storage.database_url)
        .await
        .map_err(|error| format!("storage.database_url: {}", error.message()))?;
    let older = keyring.key_ids()[1..].join(", ");
    if older.is_empty() {
        println!("re-sealing under key id {}", keyring.current_id());
    } else {
        println!(
            "re-sealing under key id {} (opening older keys: {older})",
            keyring.current_id()
        );
    }
    let vault = SqlKeyVault::new(SqlPool::of(&ledger), keyring, VaultSettings::default());
    vault
        .rotate()
        .await
        .map_err(|error| error.message().to_owned())
}
