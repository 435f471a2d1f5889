//! Fallbacks: read from `router_settings` and `litellm_settings` (`fallbacks`,
//! `context_window_fallbacks`, `default_fallbacks`, a `"*"` entry), then given to the models
//! they name, each target checked against the file's model names.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::emit::{Field, Scalar};
use super::reader::{Notes, scalar_text};

/// Fallbacks of one model, as written.
#[derive(Debug, Clone)]
pub(super) struct Fallback {
    pub(super) model: String,
    pub(super) targets: Vec<String>,
    /// Where they were written, for messages.
    pub(super) path: String,
    /// Tried for a too-long prompt in LiteLLM; on any failure in llmgate.
    pub(super) context_window: bool,
}

/// Every fallback the settings name, in the order to try them, and the default ones (a
/// `default_fallbacks` list or a `"*"` entry) with their paths.
#[derive(Debug, Default)]
pub(super) struct Fallbacks {
    pub(super) per_model: Vec<Fallback>,
    pub(super) default: Vec<(String, String)>,
}

/// `fallbacks: [{model: [a, b]}, ...]` (or one mapping).
pub(super) fn read(
    value: &Value,
    path: &str,
    context_window: bool,
    found: &mut Fallbacks,
    notes: &mut Notes,
) {
    let groups: Vec<(String, &Value)> = match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect(),
        other => vec![(path.to_owned(), other)],
    };
    for (group_path, group) in groups {
        let Value::Mapping(map) = group else {
            notes.error(
                group_path,
                "must map a model_name to the models it falls back to",
            );
            continue;
        };
        for (key, targets) in map {
            let Some(model) = scalar_text(key) else {
                notes.error(&group_path, "a fallback's key must be a model_name");
                continue;
            };
            let entry_path = format!("{group_path}.{model}");
            let targets = texts(targets, &entry_path, notes);
            if model == "*" {
                for (i, target) in targets.into_iter().enumerate() {
                    found.default.push((target, format!("{entry_path}[{i}]")));
                }
                continue;
            }
            found.per_model.push(Fallback {
                model,
                targets,
                path: entry_path,
                context_window,
            });
        }
    }
}

pub(super) fn texts(value: &Value, path: &str, notes: &mut Notes) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let text = scalar_text(item);
                if text.is_none() {
                    notes.error(format!("{path}[{i}]"), "must be a model_name");
                }
                text
            })
            .collect(),
        other => match scalar_text(other) {
            Some(text) => vec![text],
            None => {
                notes.error(path, "must be a list of model_names");
                Vec::new()
            }
        },
    }
}

/// The fields `routing:` gets for default fallbacks.
pub(super) fn default_field(list: &[(String, String)]) -> Option<Field> {
    let (_, first) = list.first()?;
    let mut names: Vec<String> = Vec::new();
    for (name, _) in list {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Some(Field::new("default_fallbacks", Scalar::List(names), first))
}

/// The `fallbacks` field of each model that has some, checking that they name models of the
/// file (`names`).
pub(super) fn fields(
    names: &[String],
    found: &Fallbacks,
    notes: &mut Notes,
) -> BTreeMap<String, Field> {
    // Per model: its targets, where the first were written, and where context window
    // fallbacks were (if any).
    let mut per_model: BTreeMap<&str, (Vec<String>, String, Option<String>)> = BTreeMap::new();
    for fallback in &found.per_model {
        if !names.contains(&fallback.model) {
            notes.warn(
                &fallback.path,
                format!(
                    "not mapped: no model_list entry is called `{}`",
                    fallback.model
                ),
            );
            continue;
        }
        let slot = per_model
            .entry(fallback.model.as_str())
            .or_insert_with(|| (Vec::new(), fallback.path.clone(), None));
        for (i, target) in fallback.targets.iter().enumerate() {
            if !names.contains(target) {
                notes.error(
                    format!("{}[{i}]", fallback.path),
                    format!("no model_list entry is called `{target}`"),
                );
            } else if *target != fallback.model && !slot.0.contains(target) {
                slot.0.push(target.clone());
            }
        }
        if fallback.context_window && slot.2.is_none() {
            slot.2 = Some(fallback.path.clone());
        }
    }
    for (target, path) in &found.default {
        if !names.contains(target) {
            notes.error(path, format!("no model_list entry is called `{target}`"));
        }
    }
    let mut warned = false;
    let mut fields = BTreeMap::new();
    for (model, (targets, path, context_window)) in per_model {
        if targets.is_empty() {
            continue;
        }
        let mut field = Field::new("fallbacks", Scalar::List(targets), path);
        if let Some(context_path) = context_window {
            field = field.note("includes context_window_fallbacks");
            if !warned {
                warned = true;
                notes.warn(
                    context_path,
                    "context_window_fallbacks become ordinary fallbacks: llmgate tries them when \
                     the prompt is longer than the model's context_window (from max_input_tokens) \
                     and on any failure it retries, but not on an upstream's 400 for a long prompt",
                );
            }
        }
        fields.insert(model.to_owned(), field);
    }
    fields
}
