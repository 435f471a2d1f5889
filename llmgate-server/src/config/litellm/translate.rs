//! The translation: a LiteLLM `config.yaml` in, llmgate's config (as fields to render) and the
//! notices about what did not carry over out.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::deployment::{Context, ModelPlan, model_entry, shuffle_weights};
use super::emit::{Field, Item, Output};
use super::providers::Providers;
use super::reader::{Notes, Table, scalar_text};
use super::unmapped::{Section, report};
use super::{fallbacks, prices, settings};

/// What a translation produced.
pub(super) struct Translation {
    pub(super) output: Output,
    pub(super) notes: Notes,
}

pub(super) fn translate(text: &str) -> Translation {
    let mut notes = Notes::default();
    let mut output = Output::default();
    let mut root_value: Value = match serde_yaml_ng::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            notes.error("", format!("not valid YAML: {error}"));
            return Translation { output, notes };
        }
    };
    if let Err(error) = root_value.apply_merge() {
        notes.error("", format!("a `<<` merge key cannot be applied: {error}"));
    }
    let mut root = Table::new("", Some(&root_value), &mut notes);
    let env = environment(&mut root, &mut notes);
    // LiteLLM exports `environment_variables` before reading the rest, so a reference to one
    // of them is its value.
    let used = RefCell::new(BTreeSet::new());
    let local = |text: String| match text.trim().strip_prefix("os.environ/") {
        Some(name) => match env.get(name.trim()) {
            Some(value) => {
                used.borrow_mut().insert(name.trim().to_owned());
                value.clone()
            }
            None => text,
        },
        None => text,
    };
    let settings = settings::read(&mut root, &local, &mut notes);
    let prices = prices::read(text).unwrap_or_else(|(path, message)| {
        notes.error(path, message);
        Vec::new()
    });

    let mut providers = Providers::default();
    let mut plans = Vec::new();
    match root.get("model_list") {
        Some(Value::Sequence(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                let prices = prices.get(i).cloned().unwrap_or_default();
                let context = Context {
                    default_timeout: settings.default_timeout.as_ref(),
                    local: &local,
                };
                if let Some(plan) =
                    model_entry(i, entry, &prices, &context, &mut providers, &mut notes)
                {
                    plans.push(plan);
                }
            }
        }
        _ => notes.error("model_list", "must be a list of deployments"),
    }
    for name in env.keys().filter(|name| !used.borrow().contains(*name)) {
        notes.warn(
            format!("environment_variables.{name}"),
            "not mapped: llmgate reads such a value only where this file refers to it as \
             `os.environ/NAME`; set it in llmgate's environment if something else needs it",
        );
    }
    for (path, key) in root.unread() {
        let value = root.peek(&key).unwrap_or(&Value::Null);
        report(Section::Root, &path, &key, value, &mut notes);
    }

    if settings.shuffle {
        shuffle_weights(&mut plans);
    }
    let names: Vec<String> = plans.iter().map(|p: &ModelPlan| p.name.clone()).collect();
    let fallbacks = fallbacks::fields(&names, &settings.fallbacks, &mut notes);
    for plan in &mut plans {
        plan.fields.extend(fallbacks.get(&plan.name).cloned());
    }
    let names = providers.names();
    output.providers = providers.items();
    output.models = plans
        .into_iter()
        .map(|mut plan| {
            let provider = names.get(plan.provider).cloned().unwrap_or_default();
            let origin = format!("{}.litellm_params.model", plan.origin);
            plan.fields
                .insert(1, Field::text("provider", provider, origin));
            Item {
                fields: plan.fields,
                note: Some(format!("from {}", plan.origin)),
                origin: plan.origin,
            }
        })
        .collect();
    output.server = settings.server.clone();
    output.storage = settings.storage.clone();
    output.routing = settings.routing.clone();
    output
        .routing
        .extend(fallbacks::default_field(&settings.fallbacks.default));
    Translation { output, notes }
}

/// `environment_variables:` as a map.
fn environment(root: &mut Table<'_>, notes: &mut Notes) -> BTreeMap<String, String> {
    let mut table = Table::new(
        "environment_variables",
        root.get("environment_variables"),
        notes,
    );
    let Some(Value::Mapping(map)) = root.peek("environment_variables") else {
        return BTreeMap::new();
    };
    let mut env = BTreeMap::new();
    for (key, _) in map {
        if let Some(name) = scalar_text(key)
            && let Some(value) = table.text(&name, notes)
        {
            env.insert(name, value);
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::super::import;

    /// The import's YAML and its notices as `path: message` (errors marked `!`).
    fn translated(yaml: &str) -> (String, Vec<String>) {
        let import = import(yaml);
        let notices = import
            .notices
            .iter()
            .map(|n| {
                format!(
                    "{}{}: {}",
                    if n.fatal { "!" } else { "" },
                    n.path,
                    n.message
                )
            })
            .collect();
        (import.yaml, notices)
    }

    const KEY: &str = "general_settings:\n  master_key: sk-0123456789abcdefgh\n";

    #[test]
    fn a_wildcard_makes_a_provider_and_no_model() {
        let (yaml, notices) = translated(&format!(
            "model_list:\n  - model_name: \"openai/*\"\n    litellm_params:\n      model: \"openai/*\"\n{KEY}"
        ));
        assert!(
            yaml.contains("  - name: openai\n    kind: openai\n"),
            "{yaml}"
        );
        assert!(!yaml.contains("models:"), "{yaml}");
        assert!(
            notices[0].starts_with("model_list[0].litellm_params.model: a wildcard"),
            "{notices:?}"
        );
    }

    #[test]
    fn environment_variables_fill_the_references_to_them() {
        let (yaml, notices) = translated(&format!(
            "environment_variables:\n  GROQ_KEY: gsk-123\n  UNUSED: x\nmodel_list:\n  - model_name: m\n    \
             litellm_params: {{ model: groq/llama3-8b-8192, api_key: os.environ/GROQ_KEY, \
             input_cost_per_token: 1e-7, output_cost_per_token: 1e-7 }}\n{KEY}"
        ));
        assert!(yaml.contains("api_key: gsk-123\n"), "{yaml}");
        assert_eq!(
            notices,
            [
                "environment_variables.UNUSED: not mapped: llmgate reads such a value only where \
              this file refers to it as `os.environ/NAME`; set it in llmgate's environment if \
              something else needs it"
            ]
        );
    }

    #[test]
    fn list_prices_go_only_to_the_vendors_own_endpoint() {
        let (yaml, notices) = translated(&format!(
            "model_list:\n  - model_name: a\n    litellm_params: {{ model: openai/gpt-4o }}\n  \
             - model_name: b\n    litellm_params: {{ model: openai/gpt-4o, api_base: \"http://proxy.local/v1\" }}\n{KEY}"
        ));
        assert_eq!(
            yaml.matches("input_cost_per_1k: 0.0025").count(),
            1,
            "{yaml}"
        );
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(
            notices[0].starts_with("model_list[1].litellm_params.model: no price"),
            "{notices:?}"
        );
    }

    #[test]
    fn custom_prices_in_litellm_params_win_and_half_a_price_is_refused() {
        let (yaml, notices) = translated(&format!(
            "model_list:\n  - model_name: a\n    litellm_params: {{ model: groq/x, input_cost_per_token: 0.000001, \
             output_cost_per_token: 0.000002 }}\n    model_info: {{ input_cost_per_token: 0.000009, \
             output_cost_per_token: 0.000002 }}\n  - model_name: b\n    litellm_params: {{ model: groq/y }}\n    \
             model_info: {{ input_cost_per_token: 0.000001 }}\n{KEY}"
        ));
        assert!(
            yaml.contains("input_cost_per_1k: 0.001  # input_cost_per_token 0.000001 × 1000\n"),
            "{yaml}"
        );
        assert!(yaml.contains("output_cost_per_1k: 0.002  #"), "{yaml}");
        assert_eq!(
            notices[0],
            "model_list[0].model_info.input_cost_per_token: not mapped: \
             model_list[0].litellm_params.input_cost_per_token sets it too, and wins"
        );
        assert!(
            notices[1].starts_with("!model_list[1].model_info.input_cost_per_token: give both"),
            "{notices:?}"
        );
    }

    #[test]
    fn a_star_fallback_is_the_default_and_unknown_targets_are_refused() {
        let (yaml, notices) = translated(&format!(
            "model_list:\n  - {{ model_name: a, litellm_params: {{ model: ollama/a }} }}\n  \
             - {{ model_name: b, litellm_params: {{ model: ollama/b }} }}\n\
             router_settings:\n  fallbacks: [{{\"*\": [b]}}, {{a: [b, ghost]}}, {{nobody: [a]}}]\n{KEY}"
        ));
        assert!(yaml.contains("    fallbacks: [b]\n"), "{yaml}");
        assert!(yaml.contains("  default_fallbacks: [b]\n"), "{yaml}");
        assert_eq!(
            notices,
            [
                "!router_settings.fallbacks[1].a[1]: no model_list entry is called `ghost`",
                "router_settings.fallbacks[2].nobody: not mapped: no model_list entry is called `nobody`",
            ]
        );
    }

    #[test]
    fn redis_settings_become_one_url_with_placeholders() {
        let (yaml, _) = translated(&format!(
            "model_list: []\nrouter_settings:\n  redis_host: os.environ/REDIS_HOST\n{KEY}"
        ));
        assert!(
            yaml.contains("  redis_url: redis://${REDIS_HOST}:6379  #"),
            "{yaml}"
        );
    }

    #[test]
    fn deployments_differing_in_key_or_timeout_get_their_own_provider() {
        let (yaml, _) = translated(&format!(
            "model_list:\n  - {{ model_name: m, litellm_params: {{ model: ollama/a }} }}\n  \
             - {{ model_name: m, litellm_params: {{ model: ollama/a, timeout: 5 }} }}\n  \
             - {{ model_name: n, litellm_params: {{ model: ollama/b }} }}\n{KEY}"
        ));
        assert!(
            yaml.contains("  # from model_list[0], model_list[2]\n  - name: ollama\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("  - name: ollama-2\n    kind: ollama\n    preset: ollama\n    timeout_ms: 5000  # timeout 5 s\n"),
            "{yaml}"
        );
        assert_eq!(
            yaml.matches("    provider: ollama-2\n").count(),
            1,
            "{yaml}"
        );
    }

    #[test]
    fn simple_shuffle_weighs_by_rpm_when_no_deployment_has_a_weight() {
        let deployments = "model_list:\n  - { model_name: m, litellm_params: { model: ollama/a, rpm: 30 } }\n  \
             - { model_name: m, litellm_params: { model: ollama/b, rpm: 10 } }\n  \
             - { model_name: n, litellm_params: { model: ollama/c, rpm: 5 } }\n  \
             - { model_name: n, litellm_params: { model: ollama/d } }\n";
        let (yaml, _) = translated(&format!("{deployments}{KEY}"));
        assert!(
            yaml.contains("    weight: 30  # simple-shuffle weighs by rpm when no weight is set\n"),
            "{yaml}"
        );
        assert!(yaml.contains("    weight: 10  #"), "{yaml}");
        assert_eq!(
            yaml.matches("weight:").count(),
            2,
            "n has a deployment without rpm: {yaml}"
        );
        let (yaml, _) = translated(&format!(
            "{deployments}router_settings:\n  routing_strategy: least-busy\n{KEY}"
        ));
        assert!(!yaml.contains("weight:"), "{yaml}");
    }

    #[test]
    fn anchors_and_merge_keys_are_followed() {
        let (yaml, notices) = translated(&format!(
            "x-groq: &groq\n  model: groq/llama3-8b-8192\n  api_key: os.environ/GROQ_KEY\n  \
             input_cost_per_token: 1e-7\n  output_cost_per_token: 2e-7\n\
             model_list:\n  - model_name: a\n    litellm_params: *groq\n  \
             - model_name: b\n    litellm_params:\n      <<: *groq\n      rpm: 7\n{KEY}"
        ));
        assert_eq!(
            yaml.matches("    upstream_model: llama3-8b-8192\n").count(),
            2,
            "{yaml}"
        );
        assert!(yaml.contains("    rpm: 7\n"), "{yaml}");
        assert_eq!(
            yaml.matches("input_cost_per_1k: 0.0001  #").count(),
            2,
            "{yaml}"
        );
        assert_eq!(notices, ["x-groq: not mapped: llmgate has no equivalent"]);
    }

    #[test]
    fn a_file_that_is_not_a_list_of_deployments_is_refused() {
        let (_, notices) = translated("model_list: {a: 1}\n");
        assert!(
            notices.contains(&"!model_list: must be a list of deployments".to_owned()),
            "{notices:?}"
        );
        let (_, notices) = translated("model_list: [\n");
        assert!(notices[0].starts_with("!: not valid YAML"), "{notices:?}");
    }
}
