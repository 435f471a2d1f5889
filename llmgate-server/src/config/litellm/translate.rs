//! The translation: a LiteLLM `config.yaml` in, llmgate's config (as fields to render) and the
//! notices about what did not carry over out.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::emit::{Field, Item, Output, Scalar};
use super::prices::{self, EntryPrices, Prices};
use super::providers::{ProviderKey, ProviderPlan, Providers, Target, target};
use super::reader::{Notes, Table, scalar_text};
use super::settings::{self, Settings, seconds_to_ms};
use super::unmapped::{Section, report};
use crate::config::values::DecimalText;

/// What a translation produced.
pub(super) struct Translation {
    pub(super) output: Output,
    pub(super) notes: Notes,
}

/// One `model_list` entry on its way to a `models:` entry.
struct ModelPlan {
    name: String,
    provider: usize,
    fields: Vec<Field>,
    origin: String,
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
                    settings: &settings,
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

    attach_fallbacks(&mut plans, &settings, &mut notes);
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
    output.routing.extend(settings::default_fallbacks_field(
        &settings.default_fallbacks,
    ));
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

/// What every entry needs to see.
struct Context<'a> {
    settings: &'a Settings,
    local: &'a dyn Fn(String) -> String,
}

fn model_entry(
    i: usize,
    value: &Value,
    prices: &EntryPrices,
    context: &Context<'_>,
    providers: &mut Providers,
    notes: &mut Notes,
) -> Option<ModelPlan> {
    let origin = format!("model_list[{i}]");
    let mut entry = Table::new(&origin, Some(value), notes);
    let mut params = Table::new(
        entry.at("litellm_params"),
        entry.get("litellm_params"),
        notes,
    );
    let mut info = Table::new(entry.at("model_info"), entry.get("model_info"), notes);
    let Some(name) = entry.text("model_name", notes) else {
        notes.error(entry.at("model_name"), "is required");
        return None;
    };
    let Some(model) = params.text("model", notes) else {
        notes.error(params.at("model"), "is required");
        return None;
    };
    let target = match target(&model) {
        Ok(target) => target,
        Err(message) => {
            notes.error(
                params.at("model"),
                format!("{message}; clients calling `{name}` would get 404. Remove the entry to migrate without it"),
            );
            return None;
        }
    };
    if let Some(mode) = info.text("mode", notes)
        && mode.trim() != "chat"
    {
        notes.error(
            info.at("mode"),
            format!(
                "`{mode}` models are not served by llmgate (it serves chat completions); clients \
                 calling `{name}` would get 404. Remove the entry to migrate without it"
            ),
        );
        return None;
    }

    let provider =
        providers.provider_for(provider_plan(&target, &mut params, &origin, context, notes));
    let mut plan = ModelPlan {
        name: name.clone(),
        provider,
        fields: vec![Field::text("name", &name, entry.at("model_name"))],
        origin: origin.clone(),
    };
    let wildcard = target.upstream.contains('*');
    if wildcard {
        notes.warn(
            params.at("model"),
            format!(
                "a wildcard: llmgate needs no entry for it, and serves `{}/MODEL` on this provider \
                 as clients name it (unpriced, so for the master key and BYOK callers, unless \
                 llmgate knows the model's list price)",
                target.preset
            ),
        );
    } else {
        let mut upstream = Field::text("upstream_model", &target.upstream, params.at("model"));
        if target.inferred {
            upstream = upstream.note(format!(
                "`{model}` has no prefix: a well-known {} model",
                target.preset
            ));
        }
        plan.fields.push(upstream);
        // A list price says nothing about another endpoint serving a model of that name.
        let vendor_endpoint = params.peek("api_base").is_none();
        price_fields(
            &target,
            vendor_endpoint,
            prices,
            &mut params,
            &mut info,
            &mut plan.fields,
            notes,
        );
        limits(&mut entry, &mut params, &mut info, &mut plan.fields, notes);
    }
    for (table, section) in [
        (&entry, Section::Entry),
        (&params, Section::LitellmParams),
        (&info, Section::ModelInfo),
    ] {
        for (path, key) in table.unread() {
            let value = table.peek(&key).unwrap_or(&Value::Null);
            report(section, &path, &key, value, notes);
        }
    }
    (!wildcard).then_some(plan)
}

/// The provider settings of one deployment.
fn provider_plan(
    target: &Target,
    params: &mut Table<'_>,
    origin: &str,
    context: &Context<'_>,
    notes: &mut Notes,
) -> ProviderPlan {
    let local = context.local;
    let api_base = params.text("api_base", notes).map(local);
    let (api_key, key_note) = match params.text("api_key", notes) {
        Some(key) => (Some(local(key)), None),
        None => match target.key_env {
            Some(var) => (
                Some(local(format!("os.environ/{var}"))),
                Some("no api_key: the variable LiteLLM reads for this provider".to_owned()),
            ),
            None => (None, None),
        },
    };
    let (timeout_ms, timeout_note) = match params.text("timeout", notes) {
        Some(value) => match seconds_to_ms(&value) {
            Ok(ms) => (Some(ms), Some(format!("timeout {value} s"))),
            Err(message) => {
                notes.error(params.at("timeout"), message);
                (None, None)
            }
        },
        None => match &context.settings.default_timeout {
            Some((ms, path)) => (Some(*ms), Some(format!("from {path}"))),
            None => (None, None),
        },
    };
    let mut headers = BTreeMap::new();
    for key in ["extra_headers", "headers"] {
        match params.get(key) {
            Some(Value::Mapping(map)) => {
                for (name, value) in map {
                    match (scalar_text(name), scalar_text(value)) {
                        (Some(name), Some(value)) => {
                            headers.insert(name, local(value));
                        }
                        _ => notes.error(params.at(key), "must map header names to values"),
                    }
                }
            }
            Some(_) => notes.error(params.at(key), "must map header names to values"),
            None => {}
        }
    }
    if let Some(organization) = params.text("organization", notes) {
        headers.insert("OpenAI-Organization".to_owned(), local(organization));
    }
    ProviderPlan {
        key: ProviderKey {
            preset: target.preset,
            api_base,
            api_key,
            timeout_ms,
            headers,
        },
        origin: origin.to_owned(),
        users: vec![origin.to_owned()],
        key_note,
        timeout_note,
    }
}

/// One price: `litellm_params`' (LiteLLM's custom pricing) wins over `model_info`'s.
fn price<'p>(
    field: fn(&Prices) -> &Option<DecimalText>,
    key: &str,
    prices: &'p EntryPrices,
    params: &mut Table<'_>,
    info: &mut Table<'_>,
    notes: &mut Notes,
) -> Option<(&'p DecimalText, String)> {
    let in_params = params.get(key).and(field(&prices.litellm_params).as_ref());
    let in_info = info.get(key).and(field(&prices.model_info).as_ref());
    match (in_params, in_info) {
        (Some(a), Some(b)) => {
            if a != b {
                notes.warn(
                    info.at(key),
                    format!("not mapped: {} sets it too, and wins", params.at(key)),
                );
            }
            Some((a, params.at(key)))
        }
        (Some(a), None) => Some((a, params.at(key))),
        (None, Some(b)) => Some((b, info.at(key))),
        (None, None) => None,
    }
}

fn price_fields(
    target: &Target,
    vendor_endpoint: bool,
    prices: &EntryPrices,
    params: &mut Table<'_>,
    info: &mut Table<'_>,
    fields: &mut Vec<Field>,
    notes: &mut Notes,
) {
    let input = price(
        |p| &p.input_cost_per_token,
        "input_cost_per_token",
        prices,
        params,
        info,
        notes,
    );
    let output = price(
        |p| &p.output_cost_per_token,
        "output_cost_per_token",
        prices,
        params,
        info,
        notes,
    );
    for key in [
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
    ] {
        let read = |p: &Prices| -> bool {
            match key {
                "cache_read_input_token_cost" => p.cache_read_input_token_cost.is_some(),
                _ => p.cache_creation_input_token_cost.is_some(),
            }
        };
        let given = params.get(key).is_some() && read(&prices.litellm_params);
        let given_info = info.get(key).is_some() && read(&prices.model_info);
        if given || given_info {
            let path = if given { params.at(key) } else { info.at(key) };
            notes.warn(
                path,
                "not mapped: this llmgate has no cache price on models yet, so cached prompt \
                 tokens are charged at the input price",
            );
        }
    }
    match (input, output) {
        (Some((input, input_path)), Some((output, output_path))) => {
            for (key, text, path, litellm_key) in [
                (
                    "input_cost_per_1k",
                    input,
                    input_path,
                    "input_cost_per_token",
                ),
                (
                    "output_cost_per_1k",
                    output,
                    output_path,
                    "output_cost_per_token",
                ),
            ] {
                match prices::per_1k(text) {
                    Ok(per_1k) => fields.push(
                        Field::plain(key, per_1k, &path)
                            .note(format!("{litellm_key} {} × 1000", text.as_str().trim())),
                    ),
                    Err(message) => notes.error(path, message),
                }
            }
        }
        (Some((_, path)), None) | (None, Some((_, path))) => notes.error(
            path,
            "give both input_cost_per_token and output_cost_per_token: llmgate does not mix a \
             written price with a looked-up one",
        ),
        (None, None) => unpriced(target, vendor_endpoint, params.at("model"), fields, notes),
    }
}

/// A deployment without prices: free when local, the list price when llmgate knows the model
/// on its vendor's own endpoint, else unpriced (with a warning saying who may use it).
fn unpriced(
    target: &Target,
    vendor_endpoint: bool,
    path: String,
    fields: &mut Vec<Field>,
    notes: &mut Notes,
) {
    let local = llmgate_providers::preset(target.preset).is_some_and(|p| p.local);
    if local {
        fields.push(
            Field::plain("free", true, &path)
                .note("a local model, which LiteLLM counts at no cost"),
        );
        return;
    }
    let known = vendor_endpoint
        .then(|| {
            llmgate_providers::resolve_model(
                &format!("{}/{}", target.preset, target.upstream),
                &[target.preset],
            )
            .and_then(|deployment| deployment.price)
        })
        .flatten();
    match known {
        Some(price) => {
            fields.push(
                Field::plain("input_cost_per_1k", price.input_per_1k.normalize(), &path)
                    .note("list price from llmgate's catalog (LiteLLM prices it from its own)"),
            );
            fields.push(
                Field::plain("output_cost_per_1k", price.output_per_1k.normalize(), &path)
                    .note("list price from llmgate's catalog"),
            );
        }
        None => notes.warn(
            path,
            "no price: llmgate serves an unpriced model only to the master key and to callers \
             with their own provider key; add input_cost_per_token and output_cost_per_token to \
             model_info to charge credits for it",
        ),
    }
}

/// rpm, tpm, weight and the context window.
fn limits(
    entry: &mut Table<'_>,
    params: &mut Table<'_>,
    info: &mut Table<'_>,
    fields: &mut Vec<Field>,
    notes: &mut Notes,
) {
    for key in ["rpm", "tpm"] {
        // LiteLLM reads them in litellm_params, and beside it on the entry.
        let found = match params.text(key, notes) {
            Some(value) => Some((value, params.at(key))),
            None => entry.text(key, notes).map(|value| (value, entry.at(key))),
        };
        if let Some((value, path)) = found {
            match value.trim().parse::<u64>() {
                Ok(n) if n > 0 && (key == "tpm" || u32::try_from(n).is_ok()) => {
                    fields.push(Field::plain(
                        if key == "rpm" { "rpm" } else { "tpm" },
                        n,
                        &path,
                    ));
                }
                _ => notes.error(path, format!("`{value}` is not a whole number above 0")),
            }
        }
    }
    if let Some(value) = params.text("weight", notes) {
        match value.trim().parse::<u32>() {
            Ok(n) => fields.push(Field::plain("weight", n, params.at("weight"))),
            Err(_) => notes.warn(
                params.at("weight"),
                format!("not mapped: llmgate's weights are whole numbers, `{value}` is not"),
            ),
        }
    }
    if let Some(value) = info.text("max_input_tokens", notes) {
        match value.trim().parse::<u32>() {
            Ok(n) if n > 0 => fields.push(
                Field::plain("context_window", n, info.at("max_input_tokens"))
                    .note("max_input_tokens: longer prompts go to the fallbacks"),
            ),
            _ => notes.warn(
                info.at("max_input_tokens"),
                format!("not mapped: `{value}` is not a token count"),
            ),
        }
    }
}

/// Give each model its fallbacks, checking that they name models of the file.
fn attach_fallbacks(plans: &mut [ModelPlan], settings: &Settings, notes: &mut Notes) {
    let names: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
    // Per model: its targets, where the first were written, and where context window
    // fallbacks were (if any).
    let mut per_model: BTreeMap<&str, (Vec<String>, String, Option<String>)> = BTreeMap::new();
    for fallback in &settings.fallbacks {
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
    for (target, path) in &settings.default_fallbacks {
        if !names.contains(target) {
            notes.error(path, format!("no model_list entry is called `{target}`"));
        }
    }
    let mut warned = false;
    for plan in plans.iter_mut() {
        let Some((targets, path, context_window)) = per_model.get(plan.name.as_str()) else {
            continue;
        };
        if targets.is_empty() {
            continue;
        }
        let mut field = Field::new("fallbacks", Scalar::List(targets.clone()), path);
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
        plan.fields.push(field);
    }
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
