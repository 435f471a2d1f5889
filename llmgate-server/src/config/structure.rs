//! Every problem of a YAML config, the structural ones (unknown keys, wrong types, missing
//! fields) included. serde stops at the first of those, so the text is read as a YAML value,
//! the part that failed is taken out, and the rest read again, until it reads; what is left is
//! then validated like any config. Paths are the file's own, even after list entries were
//! taken out.

use std::collections::HashMap;

use serde_yaml_ng::Value;

use super::env::Env;
use super::model::Problem;
use super::read::{Step, read, render};

/// Enough for any real config; a bound on the work for a pathological one.
const MAX_ROUNDS: usize = 200;

/// Every problem in `text`: the structural ones, then those [`Config::validate`] finds in the
/// parts that could be read. Empty when the config is valid.
pub(super) fn every_problem(text: &str, env: &Env) -> Vec<Problem> {
    let first = match read(text, env) {
        Ok(config) => return config.validate(),
        Err(error) => error,
    };
    let Ok(mut value) = serde_yaml_ng::from_str::<Value>(text) else {
        // Not YAML at all: the reader's one message is all there is.
        return vec![Problem::new(render(&first.0), first.1)];
    };
    let mut problems = Vec::new();
    let mut origins = Origins::default();
    let mut taken_out: Vec<Vec<Step>> = Vec::new();
    let mut failure = first;
    for round in 0..MAX_ROUNDS {
        let (path, message) = failure;
        // Line numbers hold for the file only before anything was taken out.
        let message = if round == 0 {
            message
        } else {
            without_line(&message)
        };
        let missing = missing_field(&message);
        let ours = missing.as_ref().is_some_and(|field| {
            let mut child = path.clone();
            child.push(Step::Key(field.clone()));
            taken_out.contains(&child)
        });
        if !ours {
            problems.push(Problem::new(origins.render(&path), message));
        }
        // A missing field condemns the whole entry it is missing from.
        if path.is_empty() || !origins.take_out(&mut value, &path) {
            return problems;
        }
        taken_out.push(path);
        let Ok(rest) = serde_yaml_ng::to_string(&value) else {
            return problems;
        };
        match read(&rest, env) {
            Ok(config) => {
                for problem in config.validate() {
                    problems.push(Problem::new(
                        origins.render_text(&problem.path),
                        problem.message,
                    ));
                }
                return problems;
            }
            Err(next) => failure = next,
        }
    }
    problems
}

/// Which of a list's original entries are left, by the list's path in the file: the paths of
/// what is read after an entry was taken out are turned back into the file's.
#[derive(Debug, Default)]
struct Origins {
    left: HashMap<String, Vec<usize>>,
}

impl Origins {
    /// `path` (in the value as it is now) in the file's terms.
    fn render(&self, path: &[Step]) -> String {
        render(&self.original(path))
    }

    /// A path that [`Config::validate`] wrote (`models[1].fallbacks[0]`), in the file's terms.
    fn render_text(&self, text: &str) -> String {
        self.render(&parse_text(text))
    }

    fn original(&self, path: &[Step]) -> Vec<Step> {
        let mut out: Vec<Step> = Vec::with_capacity(path.len());
        for step in path {
            let step = match step {
                Step::Index(index) => Step::Index(
                    self.left
                        .get(&render(&out))
                        .and_then(|left| left.get(*index))
                        .copied()
                        .unwrap_or(*index),
                ),
                key => key.clone(),
            };
            out.push(step);
        }
        out
    }

    /// Remove the node at `path` from `value`; `false` when there is none.
    fn take_out(&mut self, value: &mut Value, path: &[Step]) -> bool {
        let Some((last, parent_path)) = path.split_last() else {
            return false;
        };
        let list_path = render(&self.original(parent_path));
        let mut node = value;
        for step in parent_path {
            let next = match (step, node) {
                (Step::Key(key), Value::Mapping(map)) => map.get_mut(key.as_str()),
                (Step::Index(index), Value::Sequence(list)) => list.get_mut(*index),
                _ => None,
            };
            match next {
                Some(next) => node = next,
                None => return false,
            }
        }
        match (last, node) {
            (Step::Key(key), Value::Mapping(map)) => map.remove(key.as_str()).is_some(),
            (Step::Index(index), Value::Sequence(list)) if *index < list.len() => {
                let length = list.len();
                list.remove(*index);
                let left = self
                    .left
                    .entry(list_path)
                    .or_insert_with(|| (0..length).collect());
                if *index < left.len() {
                    left.remove(*index);
                }
                true
            }
            _ => false,
        }
    }
}

/// `models[1].fallbacks[0]` as steps.
fn parse_text(text: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in text.split('.').filter(|part| !part.is_empty()) {
        let (key, mut rest) = part.split_once('[').map_or((part, ""), |(k, r)| (k, r));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_owned()));
        }
        while let Some((index, after)) = rest.split_once(']') {
            match index.parse() {
                Ok(index) => steps.push(Step::Index(index)),
                Err(_) => steps.push(Step::Key(format!("[{index}]"))),
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    steps
}

/// `missing field `name`` names the field.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

/// serde_yaml's ` at line L column C` suffix, dropped.
fn without_line(message: &str) -> String {
    message
        .split_once(" at line ")
        .map_or(message, |(head, _)| head)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::from_pairs([("LLMGATE_TEST", "1")])
    }

    fn paths(text: &str) -> Vec<String> {
        every_problem(text, &env())
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn a_valid_config_has_no_problems() {
        assert!(paths("server: { listen: \"127.0.0.1:4000\" }\n").is_empty());
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_all_listed_with_the_files_paths() {
        let found = paths(
            r#"
server: { listen: "127.0.0.1:4000", master_kee: x }
colour: blue
providers:
  - { name: a, kind: openai, api_base: "https://a.example/v1", api_kee: x }
  - { name: a, kind: anthropic }
models:
  - { name: broken, provider: a, context_window: lots, cost_per_1k: 0 }
  - { name: m, provider: ghost, cost_per_1k: 0 }
"#,
        );
        let text = found.join("\n");
        for expected in [
            "server.master_kee: unknown field `master_kee`",
            "colour: unknown field `colour`",
            "providers[0].api_kee: unknown field `api_kee`",
            "models[0].context_window:",
            "providers[1].name: duplicate provider \"a\"",
            "models[1].provider: unknown provider \"ghost\"",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
    }

    #[test]
    fn a_missing_required_field_is_listed_once_and_later_entries_keep_their_index() {
        let found = paths(
            r#"
providers:
  - { kind: openai, api_base: "https://a.example/v1" }
  - { name: b, kind: openai, api_base: "https://b.example/v1" }
models:
  - { name: m, cost_per_1k: 0 }
  - { name: n, provider: ghost, cost_per_1k: 0 }
"#,
        );
        let text = found.join("\n");
        assert!(
            text.contains("providers[0]: missing field `name`"),
            "{text}"
        );
        assert!(
            text.contains("models[0]: missing field `provider`"),
            "{text}"
        );
        assert!(
            text.contains("models[1].provider: unknown provider \"ghost\""),
            "{text}"
        );
    }

    #[test]
    fn paths_written_by_validate_are_parsed_back() {
        assert_eq!(
            parse_text("models[1].fallbacks[0]"),
            [
                Step::Key("models".into()),
                Step::Index(1),
                Step::Key("fallbacks".into()),
                Step::Index(0)
            ]
        );
    }
}
