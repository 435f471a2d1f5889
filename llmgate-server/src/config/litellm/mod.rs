//! LiteLLM proxy configs: a `config.yaml` written for LiteLLM (recognised by its `model_list`)
//! translated into llmgate's own config, for `llmgate serve` / `check` to use as it is and for
//! `llmgate import litellm` to print.
//!
//! The translation writes llmgate YAML text (with comments where a value was derived), which
//! then goes through the ordinary reader: serving the LiteLLM file and serving what `import`
//! printed are the same thing by construction. Environment references are carried over as
//! they are and resolved only by that reader. Keys that do not carry over are [`Notice`]s:
//! warnings, or errors when leaving them out would change what clients get.

mod deployment;
mod emit;
mod fallbacks;
mod prices;
mod providers;
mod reader;
mod settings;
mod translate;
mod unmapped;

use serde_yaml_ng::Value;

pub use reader::Notice;

use super::env::Env;
use super::model::{Config, ConfigError, Problem};

/// Whether `text` is a LiteLLM config: a mapping with a `model_list` key.
pub fn is_litellm(text: &str) -> bool {
    matches!(
        serde_yaml_ng::from_str::<Value>(text),
        Ok(Value::Mapping(map)) if map.contains_key("model_list")
    )
}

/// The llmgate YAML for a LiteLLM config, and what did not carry over.
#[derive(Debug, Clone)]
pub struct Import {
    pub yaml: String,
    pub notices: Vec<Notice>,
    /// For each llmgate path written, the LiteLLM path it came from.
    origins: Vec<(String, String)>,
}

impl Import {
    /// Whether some notice is an error (the translation does not behave like the file).
    pub fn has_errors(&self) -> bool {
        self.notices.iter().any(|n| n.fatal)
    }

    /// The warnings, as problems.
    pub fn warnings(&self) -> Vec<Problem> {
        self.notices
            .iter()
            .filter(|n| !n.fatal)
            .map(|n| Problem::new(&n.path, &n.message))
            .collect()
    }

    fn errors(&self) -> Vec<Problem> {
        self.notices
            .iter()
            .filter(|n| n.fatal)
            .map(|n| Problem::new(&n.path, &n.message))
            .collect()
    }

    /// A problem llmgate found in the translation, moved to the LiteLLM key it came from.
    fn in_litellm_terms(&self, problem: Problem) -> Problem {
        let origin = self
            .origins
            .iter()
            .filter(|(path, _)| {
                problem.path == *path || problem.path.starts_with(&format!("{path}."))
            })
            .max_by_key(|(path, _)| path.len());
        match origin {
            Some((_, from)) if !from.is_empty() => Problem::new(
                from.clone(),
                format!(
                    "{} (as llmgate's {})",
                    without_position(&problem.message),
                    problem.path
                ),
            ),
            _ => problem,
        }
    }
}

/// A reader's message without its ` at line L column C`, which points into the translated
/// text, not the operator's file.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(at) if message[at + 9..].contains(" column ") => &message[..at],
        _ => message,
    }
}

/// Translate a LiteLLM config.
pub fn import(text: &str) -> Import {
    let translation = translate::translate(text);
    let rendered = translation.output.render();
    Import {
        yaml: rendered.yaml,
        notices: translation.notes.list,
        origins: rendered.origins,
    }
}

/// Translate, read and validate a LiteLLM config; the warnings come back beside the config.
pub(super) fn load(text: &str, env: &Env) -> Result<(Config, Vec<Problem>), ConfigError> {
    let import = import(text);
    if import.has_errors() {
        return Err(ConfigError {
            source_name: None,
            problems: import.errors(),
        });
    }
    let moved = |error: ConfigError| ConfigError {
        source_name: None,
        problems: error
            .problems
            .into_iter()
            .map(|p| import.in_litellm_terms(p))
            .collect(),
    };
    let config = Config::from_yaml(&import.yaml, env).map_err(moved)?;
    config.check().map_err(moved)?;
    Ok((config, import.warnings()))
}
