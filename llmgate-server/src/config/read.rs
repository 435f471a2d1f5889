//! Reading YAML text into a [`Config`]: environment references resolved while reading, the
//! first failure named by its YAML path (`models[2].provider`).

use super::env::{Env, Resolving};
use super::model::{Config, ConfigError};

impl Config {
    /// Parse YAML text, resolving environment references from `env`. Does not validate.
    pub fn from_yaml(text: &str, env: &Env) -> Result<Self, ConfigError> {
        read(text, env).map_err(|(path, message)| ConfigError::one(render(&path), message))
    }
}

/// One step of a path into a YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    Key(String),
    Index(usize),
}

/// The config in `text`, or the first failure's path and message.
pub(super) fn read(text: &str, env: &Env) -> Result<Config, (Vec<Step>, String)> {
    // An empty file is every default, with no providers.
    let text = if text.trim().is_empty() { "{}" } else { text };
    let yaml = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(Resolving::new(yaml, env)).map_err(|error| {
        (
            steps(error.path()),
            without_yaml_path(&error.inner().to_string()),
        )
    })
}

fn steps(path: &serde_path_to_error::Path) -> Vec<Step> {
    path.iter()
        .map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Step::Index(*index),
            serde_path_to_error::Segment::Map { key } => Step::Key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Step::Key(variant.clone()),
            serde_path_to_error::Segment::Unknown => Step::Key("?".to_owned()),
        })
        .collect()
}

/// A path in YAML terms: `models[2].provider`.
pub(super) fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Index(index) => out.push_str(&format!("[{index}]")),
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
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
