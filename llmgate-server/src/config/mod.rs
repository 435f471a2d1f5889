//! The server's YAML configuration: plain serde types with explicit defaults, unknown
//! keys refused, `os.environ/NAME` and `${NAME}` resolved while reading, then [`Config::validate`]
//! reporting every problem with its YAML path.

mod billing;
mod defaults;
mod env;
pub mod litellm;
mod providers;
mod routing;
mod server;
mod structure;
mod tiers;
mod validate;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use billing::{
    BillingConfig, LowCreditAlertConfig, Package, PackageConfig, StripeConfig, package_micros,
    price_cents,
};
pub use env::Env;
pub use providers::{ModelConfig, ProviderConfig, ProviderKind};
pub use routing::RoutingConfig;
pub use server::{ByokConfig, ServerConfig, StorageConfig};
pub use tiers::{PowerLevelConfig, PowerLevelsConfig, TierConfig, default_tiers};
pub use values::DecimalText;

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
    fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            source_name: None,
            problems: vec![Problem::new(path, message)],
        }
    }

    fn in_file(mut self, file: &Path) -> Self {
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
    /// Parse YAML text, resolving environment references from `env`. Does not validate.
    pub fn from_yaml(text: &str, env: &Env) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            // An empty file is every default, with no providers.
            return Self::from_yaml("{}", env);
        }
        let yaml = serde_yaml_ng::Deserializer::from_str(text);
        serde_path_to_error::deserialize(env::Resolving::new(yaml, env)).map_err(|error| {
            let path = yaml_path(error.path());
            ConfigError::one(path, without_yaml_path(&error.inner().to_string()))
        })
    }

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

    /// Every problem of this config, each with its YAML path; empty when it is valid.
    pub fn validate(&self) -> Vec<Problem> {
        validate::problems(self)
    }

    /// [`Config::validate`] as a `Result`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source_name: None,
                problems,
            })
        }
    }

    /// The built-in default: the demo provider and model, plus a preset provider for
    /// each well-known key or host found in `env`.
    pub fn builtin(env: &Env) -> Self {
        defaults::builtin(env)
    }
}

/// `serde_path_to_error`'s path in YAML terms: `models[2].provider`.
fn yaml_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// The YAML reader prefixes its own copy of the path (`models[0]: ...`); we print ours, so drop
/// it. Its ` at line L column C` suffix stays: it helps.
fn without_yaml_path(message: &str) -> String {
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(char::is_whitespace) && !head.contains('`') => {
            rest.trim().to_owned()
        }
        _ => message.trim().to_owned(),
    }
}
