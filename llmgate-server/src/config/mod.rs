//! The server's YAML configuration: plain serde types with explicit defaults, unknown
//! keys refused, `os.environ/NAME` and `${NAME}` resolved while reading, then [`Config::validate`]
//! reporting every problem with its YAML path.

mod billing;
mod defaults;
mod env;
pub mod litellm;
mod logging;
mod model;
mod providers;
mod read;
mod responses;
mod routing;
mod server;
mod structure;
mod telemetry;
mod tiers;
mod validate;
mod values;

use std::fmt;
use std::path::{Path, PathBuf};

pub use billing::{
    BillingConfig, LowCreditAlertConfig, Package, PackageConfig, StripeConfig, package_micros,
    price_cents,
};
pub use env::Env;
pub use logging::LoggingConfig;
pub use model::{Config, ConfigError, Problem};
pub use providers::{ModelConfig, ProviderConfig, ProviderKind};
pub use responses::ResponsesConfig;
pub use routing::RoutingConfig;
pub use server::{ByokConfig, ServerConfig, StorageConfig};
pub use telemetry::TelemetryConfig;
pub use tiers::{PowerLevelConfig, PowerLevelsConfig, TierConfig, default_tiers};
pub use values::DecimalText;

/// Where a config came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    BuiltIn,
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::BuiltIn => f.write_str("the built-in default"),
        }
    }
}

impl ConfigSource {
    /// `--config`, else `$LLMGATE_CONFIG`, else `./llmgate.yaml` when it exists, else built in.
    pub fn locate(explicit: Option<&Path>, env: &Env) -> Self {
        if let Some(path) = explicit {
            return ConfigSource::File(path.to_owned());
        }
        if let Some(path) = env.get("LLMGATE_CONFIG") {
            return ConfigSource::File(PathBuf::from(path));
        }
        let local = PathBuf::from("llmgate.yaml");
        if local.is_file() {
            return ConfigSource::File(local);
        }
        ConfigSource::BuiltIn
    }
}

impl Config {
    /// Read, parse and validate a config file; warnings (keys of a LiteLLM config that did
    /// not carry over) are logged.
    pub fn load_file(path: &Path, env: &Env) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::load_file_noting(path, env)?;
        for warning in &warnings {
            tracing::warn!(config = %path.display(), "{warning}");
        }
        Ok(config)
    }

    /// Read, parse and validate a config file, llmgate's own or a LiteLLM `config.yaml`
    /// (recognised by its `model_list`); the warnings come back beside the config.
    pub fn load_file_noting(path: &Path, env: &Env) -> Result<(Self, Vec<Problem>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::one("", format!("cannot read the file: {error}")).in_file(path)
        })?;
        if litellm::is_litellm(&text) {
            return litellm::load(&text, env).map_err(|e| e.in_file(path));
        }
        match Self::from_yaml(&text, env) {
            Ok(config) => {
                config.check().map_err(|e| e.in_file(path))?;
                Ok((config, Vec::new()))
            }
            // serde stops at the first structural problem; list them all, and what the rest
            // of the file has wrong besides.
            Err(first) => {
                let problems = structure::every_problem(&text, env);
                let error = if problems.is_empty() {
                    first
                } else {
                    ConfigError {
                        source_name: None,
                        problems,
                    }
                };
                Err(error.in_file(path))
            }
        }
    }

    /// Load from wherever [`ConfigSource::locate`] points.
    pub fn load(source: &ConfigSource, env: &Env) -> Result<Self, ConfigError> {
        match source {
            ConfigSource::File(path) => Self::load_file(path, env),
            ConfigSource::BuiltIn => {
                let config = Self::builtin(env);
                config.check()?;
                Ok(config)
            }
        }
    }
}
