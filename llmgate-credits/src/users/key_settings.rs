//! What an API key is allowed: the settings stored on its row (migration 0410) and how they
//! become the gateway's [`KeyLimits`]. A key with every setting `None` is unrestricted, which
//! is what keys made before 0410 are.

use std::sync::Arc;

use llmgate_core::key_limits::{BudgetPeriod, KeyBudget, KeyLimits};
use llmgate_core::{Error, Result};
use serde::Serialize;

/// The most model entries one key may list.
const MAX_MODELS: usize = 100;

/// A key's restrictions and labels; `None` restricts nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct KeySettings {
    /// A label for listings (`"ci"`, `"mobile app"`).
    pub name: Option<String>,
    /// Model names or globs the key may use; `None`: every model.
    pub models: Option<Vec<String>>,
    /// Micro-credits the key may spend per `budget_period`.
    pub max_budget_micros: Option<i64>,
    /// The window `max_budget_micros` covers (`total` when a budget names none).
    pub budget_period: Option<BudgetPeriod>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
    /// Unix seconds after which the key is refused (401 `key_expired`).
    pub expires_at: Option<i64>,
    /// The team whose balance the key spends.
    pub team_id: Option<String>,
}

impl KeySettings {
    /// Refuse settings that could not be enforced as written (400 with the field named).
    pub fn check(&self) -> Result<()> {
        let bad = |param: &str, message: &str| {
            Err(Error::invalid_request(message.to_owned()).with_param(param))
        };
        if let Some(name) = &self.name
            && (name.len() > 100 || name.chars().any(char::is_control))
        {
            return bad("name", "`name` must be at most 100 printable characters.");
        }
        if let Some(models) = &self.models {
            if models.is_empty() || models.len() > MAX_MODELS {
                return bad(
                    "models",
                    "`models` must list 1 to 100 model names or globs (omit it for every model).",
                );
            }
            if models
                .iter()
                .any(|m| m.trim().is_empty() || m.len() > 200 || m.chars().any(char::is_control))
            {
                return bad(
                    "models",
                    "Each entry of `models` must be a non-empty name or glob.",
                );
            }
        }
        if self.max_budget_micros.is_some_and(|b| b < 0) {
            return bad("max_budget", "`max_budget` must not be negative.");
        }
        if self.budget_period.is_some() && self.max_budget_micros.is_none() {
            return bad("budget_period", "`budget_period` needs a `max_budget`.");
        }
        if self.rpm == Some(0) {
            return bad("rpm", "`rpm` must be at least 1.");
        }
        if self.tpm == Some(0) {
            return bad("tpm", "`tpm` must be at least 1.");
        }
        Ok(())
    }

    /// Whether the key has expired at `now` (Unix seconds).
    pub fn expired_at(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The budget's period (`total` when a budget names none).
    pub fn period(&self) -> BudgetPeriod {
        self.budget_period.unwrap_or(BudgetPeriod::Total)
    }

    /// The gateway's view of these settings for the key `key_id`.
    pub fn limits(&self, key_id: &str) -> KeyLimits {
        KeyLimits {
            key_id: Arc::from(key_id),
            models: self.models.clone(),
            budget: self.max_budget_micros.map(|max_micros| KeyBudget {
                max_micros,
                period: self.period(),
            }),
            rpm: self.rpm,
            tpm: self.tpm,
            expires_at: self.expires_at,
        }
    }

    /// `models` as stored: a JSON array, or NULL.
    pub(crate) fn models_to_sql(&self) -> Option<String> {
        self.models
            .as_ref()
            .and_then(|m| serde_json::to_string(m).ok())
    }

    /// `models` as read back; an unreadable value fails closed (no model allowed).
    pub(crate) fn models_from_sql(stored: Option<String>) -> Option<Vec<String>> {
        stored.map(|text| serde_json::from_str(&text).unwrap_or_default())
    }
}

/// Nullable text and integer columns, to keep the row types on one line each.
pub(crate) type Text = Option<String>;
pub(crate) type Int = Option<i64>;

/// The settings columns as read: name, models, budget, period, rpm, tpm, expires, team.
pub(crate) type SettingsRow = (Text, Text, Int, Text, Int, Int, Int, Text);

pub(crate) fn settings_from_row(row: SettingsRow) -> KeySettings {
    let (name, models, max_budget_micros, budget_period, rpm, tpm, expires_at, team_id) = row;
    let per_minute = |n: Option<i64>| n.map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    KeySettings {
        name,
        models: KeySettings::models_from_sql(models),
        max_budget_micros,
        // The column's CHECK admits only the four names.
        budget_period: budget_period.and_then(|p| p.parse().ok()),
        rpm: per_minute(rpm),
        tpm: per_minute(tpm),
        expires_at,
        team_id,
    }
}

/// The refusal of a key past its `expires_at` (401).
pub fn key_expired() -> Error {
    Error::authentication("This API key has expired.").with_code("key_expired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        assert!(KeySettings::default().check().is_ok());
        let period_alone = KeySettings {
            budget_period: Some(BudgetPeriod::Daily),
            ..KeySettings::default()
        };
        assert_eq!(
            period_alone.check().unwrap_err().param(),
            Some("budget_period")
        );
        let empty_list = KeySettings {
            models: Some(vec![]),
            ..KeySettings::default()
        };
        assert_eq!(empty_list.check().unwrap_err().status(), 400);
    }

    #[test]
    fn unreadable_model_lists_allow_nothing() {
        assert_eq!(
            KeySettings::models_from_sql(Some("not json".into())),
            Some(vec![])
        );
        assert_eq!(KeySettings::models_from_sql(None), None);
    }
}
