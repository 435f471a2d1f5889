//! One `model_list` entry: its provider (endpoint, key, timeout, headers), its upstream model,
//! prices and limits, as the `models:` entry it becomes.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml_ng::Value;

use super::emit::{Field, Scalar};
use super::prices::{EntryPrices, Priced, price_fields};
use super::providers::{ProviderKey, ProviderPlan, Providers, Target, target};
use super::reader::{Notes, Table, scalar_text, seconds_to_ms};
use super::unmapped::{Section, report};

/// One `model_list` entry on its way to a `models:` entry.
pub(super) struct ModelPlan {
    pub(super) name: String,
    /// Index into the providers, named once all are known.
    pub(super) provider: usize,
    pub(super) fields: Vec<Field>,
    pub(super) origin: String,
}

/// What every entry needs to see.
pub(super) struct Context<'a> {
    /// Milliseconds, and where they were set, for deployments without a `timeout`.
    pub(super) default_timeout: Option<&'a (u64, String)>,
    pub(super) local: &'a dyn Fn(String) -> String,
}

/// Translate `model_list[i]`: its provider joins `providers`, and the model comes back, or
/// `None` when the entry makes none (refused with an error, or a wildcard).
pub(super) fn model_entry(
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
    let mode = info.text("mode", notes);
    let embedding = mode.as_deref().map(str::trim) == Some("embedding");
    if let Some(mode) = &mode
        && !matches!(mode.trim(), "chat" | "embedding")
    {
        notes.error(
            info.at("mode"),
            format!(
                "`{mode}` models are not served by llmgate (it serves chat completions and \
                 embeddings); clients calling `{name}` would get 404. Remove the entry to migrate \
                 without it"
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
    if embedding {
        plan.fields
            .push(Field::text("mode", "embedding", info.at("mode")));
    }
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
        let priced = Priced {
            target: &target,
            vendor_endpoint,
            embedding,
        };
        price_fields(
            &priced,
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
        None => match context.default_timeout {
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

/// LiteLLM's simple-shuffle picks by `weight`, else by `rpm`, else by `tpm`, when every
/// deployment of a model has one; llmgate's weighted strategy reads `weight` only, so a model
/// whose deployments all give an rpm (or a tpm) and none a weight gets those as weights.
pub(super) fn shuffle_weights(plans: &mut [ModelPlan]) {
    let value = |plan: &ModelPlan, key: &str| -> Option<String> {
        plan.fields
            .iter()
            .find(|f| f.key == key)
            .map(|f| match &f.value {
                Scalar::Plain(text) | Scalar::Text(text) => text.clone(),
                Scalar::List(_) => String::new(),
            })
    };
    let names: BTreeSet<String> = plans.iter().map(|p| p.name.clone()).collect();
    for name in names {
        let group: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].name == name)
            .collect();
        if group.len() < 2 || group.iter().any(|&i| value(&plans[i], "weight").is_some()) {
            continue;
        }
        for key in ["rpm", "tpm"] {
            let weights: Option<Vec<u32>> = group
                .iter()
                .map(|&i| value(&plans[i], key).and_then(|v| v.parse::<u32>().ok()))
                .collect();
            if let Some(weights) = weights {
                for (&i, weight) in group.iter().zip(weights) {
                    let origin = format!("{}.litellm_params.{key}", plans[i].origin);
                    plans[i]
                        .fields
                        .push(Field::plain("weight", weight, origin).note(format!(
                            "simple-shuffle weighs by {key} when no weight is set"
                        )));
                }
                break;
            }
        }
    }
}
