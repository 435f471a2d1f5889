//! The configuration's types: the whole file, and what is wrong with one. A leaf: the config's
//! readers, validation and defaults build on it, and it on the sections' own types only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use super::billing::BillingConfig;
use super::logging::LoggingConfig;
use super::providers::{ModelConfig, ProviderConfig};
use super::responses::ResponsesConfig;
use super::routing::RoutingConfig;
use super::server::{ByokConfig, ServerConfig, StorageConfig};
use super::telemetry::TelemetryConfig;
use super::tiers::{PowerLevelsConfig, TierConfig, default_tiers};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub byok: ByokConfig,
    #[serde(default)]
    pub billing: BillingConfig,
    #[serde(default)]
    pub responses: ResponsesConfig,
    #[serde(default = "default_tiers")]
    pub tiers: BTreeMap<String, TierConfig>,
    #[serde(default)]
    pub power_levels: PowerLevelsConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// One thing wrong with a config, at a YAML path such as `models[2].provider`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A config that could not be read or is not valid; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub source_name: Option<String>,
    pub problems: Vec<Problem>,
}

impl ConfigError {
    pub(super) fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_name: None,
            problems: vec![Problem::new(path, message)],
        }
    }

    pub(super) fn in_file(mut self, file: &Path) -> Self {
        self.source_name = Some(file.display().to_string());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source_name {
            Some(name) => write!(f, "invalid config {name}:")?,
            None => f.write_str("invalid config:")?,
        }
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
