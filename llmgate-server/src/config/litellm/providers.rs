//! LiteLLM's `provider/model` prefixes and the llmgate providers they become.
//!
//! LiteLLM sets the endpoint, key and timeout on each deployment; llmgate sets them on a
//! provider. Deployments that agree on all of them share one provider, named after its preset
//! (`openai`), further ones `openai-2`, `openai-3`, ... with `preset: openai`.

use std::collections::BTreeMap;

use llmgate_providers::preset;

use super::super::ProviderKind;
use super::emit::{Field, Item, Scalar};

/// One LiteLLM prefix llmgate serves.
struct Prefix {
    litellm: &'static str,
    /// The llmgate preset it maps onto.
    preset: &'static str,
    /// The variable LiteLLM reads the key from when a deployment gives none.
    key_env: Option<&'static str>,
}

const PREFIXES: &[Prefix] = &[
    prefix("openai", "openai", Some("OPENAI_API_KEY")),
    prefix("anthropic", "anthropic", Some("ANTHROPIC_API_KEY")),
    prefix("openrouter", "openrouter", Some("OPENROUTER_API_KEY")),
    prefix("groq", "groq", Some("GROQ_API_KEY")),
    prefix("together_ai", "together", Some("TOGETHERAI_API_KEY")),
    prefix("fireworks_ai", "fireworks", Some("FIREWORKS_AI_API_KEY")),
    prefix("deepinfra", "deepinfra", Some("DEEPINFRA_API_KEY")),
    prefix("huggingface", "huggingface", Some("HUGGINGFACE_API_KEY")),
    prefix("hosted_vllm", "vllm", None),
    prefix("ollama", "ollama", None),
    prefix("ollama_chat", "ollama", None),
];

const fn prefix(
    litellm: &'static str,
    preset: &'static str,
    key_env: Option<&'static str>,
) -> Prefix {
    Prefix {
        litellm,
        preset,
        key_env,
    }
}

/// The prefixes llmgate serves, for messages and docs.
pub(super) fn known_prefixes() -> String {
    let names: Vec<String> = PREFIXES.iter().map(|p| format!("{}/", p.litellm)).collect();
    names.join(", ")
}

/// Where one deployment goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) preset: &'static str,
    pub(super) key_env: Option<&'static str>,
    /// The provider's own id for the model.
    pub(super) upstream: String,
    /// How the provider was found when the model had no prefix.
    pub(super) inferred: bool,
}

/// The provider and upstream model of `litellm_params.model`.
pub(super) fn target(model: &str) -> Result<Target, String> {
    if let Some((head, rest)) = model.split_once('/')
        && let Some(known) = PREFIXES.iter().find(|p| p.litellm == head)
    {
        if rest.is_empty() {
            return Err(format!("`{model}` names no model after the prefix"));
        }
        return Ok(Target {
            preset: known.preset,
            key_env: known.key_env,
            upstream: rest.to_owned(),
            inferred: false,
        });
    }
    // LiteLLM knows the vendor of well-known bare names (`gpt-4o`); so does llmgate.
    let names: Vec<&str> = PREFIXES.iter().map(|p| p.preset).collect();
    if !model.contains('/')
        && let Some(found) = llmgate_providers::resolve_model(model, &names)
        && let Some(known) = PREFIXES.iter().find(|p| p.preset == found.provider)
    {
        return Ok(Target {
            preset: known.preset,
            key_env: known.key_env,
            upstream: model.to_owned(),
            inferred: true,
        });
    }
    let head = model.split_once('/').map_or(model, |(head, _)| head);
    Err(format!(
        "provider `{head}` is not one llmgate serves (it serves {}; an OpenAI-compatible endpoint \
         works as `openai/MODEL` with its `api_base`)",
        known_prefixes()
    ))
}

/// What makes two deployments share a provider.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct ProviderKey {
    pub(super) preset: &'static str,
    pub(super) api_base: Option<String>,
    pub(super) api_key: Option<String>,
    pub(super) timeout_ms: Option<u64>,
    pub(super) headers: BTreeMap<String, String>,
}

/// One provider being built, with the notes that explain its values.
#[derive(Debug, Clone)]
pub(super) struct ProviderPlan {
    pub(super) key: ProviderKey,
    /// The entry the provider's values were first read from.
    pub(super) origin: String,
    pub(super) users: Vec<String>,
    pub(super) key_note: Option<String>,
    pub(super) timeout_note: Option<String>,
}

/// Providers in order of first use, named once all are known.
#[derive(Debug, Default)]
pub(super) struct Providers {
    plans: Vec<ProviderPlan>,
}

impl Providers {
    /// The index of the provider for `key`, creating it on first use.
    pub(super) fn provider_for(&mut self, plan: ProviderPlan) -> usize {
        if let Some(i) = self.plans.iter().position(|p| p.key == plan.key) {
            self.plans[i].users.extend(plan.users);
            return i;
        }
        self.plans.push(plan);
        self.plans.len() - 1
    }

    /// Each provider's name: the preset's for the first of a preset, then `-2`, `-3`, ...
    pub(super) fn names(&self) -> Vec<String> {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        self.plans
            .iter()
            .map(|plan| {
                let count = seen.entry(plan.key.preset).or_default();
                *count += 1;
                if *count == 1 {
                    plan.key.preset.to_owned()
                } else {
                    format!("{}-{count}", plan.key.preset)
                }
            })
            .collect()
    }

    pub(super) fn items(&self) -> Vec<Item> {
        self.plans
            .iter()
            .zip(self.names())
            .map(|(plan, name)| item(plan, name))
            .collect()
    }
}

fn item(plan: &ProviderPlan, name: String) -> Item {
    let origin = plan.origin.clone();
    let params = format!("{origin}.litellm_params");
    let kind =
        preset(plan.key.preset).map_or(ProviderKind::Openai, |p| ProviderKind::of_family(p.family));
    let mut fields = vec![
        Field::text("name", &name, format!("{params}.model")),
        Field::text("kind", kind.as_str(), format!("{params}.model")),
    ];
    if name != plan.key.preset {
        fields.push(Field::text(
            "preset",
            plan.key.preset,
            format!("{params}.model"),
        ));
    }
    if let Some(base) = &plan.key.api_base {
        fields.push(Field::text("api_base", base, format!("{params}.api_base")));
    }
    if let Some(key) = &plan.key.api_key {
        let mut field = Field::text("api_key", key, format!("{params}.api_key"));
        if let Some(note) = &plan.key_note {
            field = field.note(note);
        }
        fields.push(field);
    }
    if let Some(timeout) = plan.key.timeout_ms {
        let mut field = Field::plain("timeout_ms", timeout, format!("{params}.timeout"));
        if let Some(note) = &plan.timeout_note {
            field = field.note(note);
        }
        fields.push(field);
    }
    if !plan.key.headers.is_empty() {
        let pairs: Vec<String> = plan
            .key
            .headers
            .iter()
            .map(|(name, value)| {
                format!(
                    "{}: {}",
                    super::emit::quoted(name),
                    super::emit::quoted(value)
                )
            })
            .collect();
        fields.push(Field::new(
            "headers",
            Scalar::Plain(format!("{{ {} }}", pairs.join(", "))),
            format!("{params}.extra_headers"),
        ));
    }
    Item {
        fields,
        note: Some(format!("from {}", plan.users.join(", "))),
        origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_of_the_ten_providers_is_served() {
        let cases = [
            ("openai/gpt-4o", "openai", "gpt-4o"),
            (
                "anthropic/claude-3-5-sonnet-20240620",
                "anthropic",
                "claude-3-5-sonnet-20240620",
            ),
            (
                "openrouter/google/palm-2-chat-bison",
                "openrouter",
                "google/palm-2-chat-bison",
            ),
            ("groq/llama3-8b-8192", "groq", "llama3-8b-8192"),
            (
                "together_ai/meta-llama/Llama-3-8b-chat-hf",
                "together",
                "meta-llama/Llama-3-8b-chat-hf",
            ),
            (
                "fireworks_ai/accounts/fireworks/models/llama-v3-70b-instruct",
                "fireworks",
                "accounts/fireworks/models/llama-v3-70b-instruct",
            ),
            (
                "deepinfra/meta-llama/Llama-2-70b-chat-hf",
                "deepinfra",
                "meta-llama/Llama-2-70b-chat-hf",
            ),
            (
                "huggingface/meta-llama/Meta-Llama-3.1-8B-Instruct",
                "huggingface",
                "meta-llama/Meta-Llama-3.1-8B-Instruct",
            ),
            ("hosted_vllm/facebook/opt-125m", "vllm", "facebook/opt-125m"),
            ("ollama/llama3.1", "ollama", "llama3.1"),
            ("ollama_chat/llama3.1", "ollama", "llama3.1"),
        ];
        for (model, preset, upstream) in cases {
            let found = target(model).unwrap();
            assert_eq!(
                (found.preset, found.upstream.as_str()),
                (preset, upstream),
                "{model}"
            );
            assert!(!found.inferred);
        }
    }

    #[test]
    fn bare_well_known_names_find_their_vendor_and_others_are_refused() {
        let gpt = target("gpt-4o").unwrap();
        assert_eq!((gpt.preset, gpt.inferred), ("openai", true));
        assert_eq!(
            target("claude-3-5-haiku-latest").unwrap().preset,
            "anthropic"
        );
        let azure = target("azure/my-deployment").unwrap_err();
        assert!(
            azure.starts_with("provider `azure` is not one llmgate serves"),
            "{azure}"
        );
        assert!(target("my-private-model").is_err());
        assert!(target("openai/").is_err());
    }

    #[test]
    fn providers_are_shared_by_equal_settings_and_named_per_preset() {
        let plan = |preset: &'static str, base: Option<&str>, user: &str| ProviderPlan {
            key: ProviderKey {
                preset,
                api_base: base.map(str::to_owned),
                api_key: None,
                timeout_ms: None,
                headers: BTreeMap::new(),
            },
            origin: user.to_owned(),
            users: vec![user.to_owned()],
            key_note: None,
            timeout_note: None,
        };
        let mut providers = Providers::default();
        assert_eq!(
            providers.provider_for(plan("openai", None, "model_list[0]")),
            0
        );
        assert_eq!(
            providers.provider_for(plan("openai", Some("http://a/v1"), "model_list[1]")),
            1
        );
        assert_eq!(
            providers.provider_for(plan("openai", None, "model_list[2]")),
            0
        );
        assert_eq!(
            providers.provider_for(plan("groq", None, "model_list[3]")),
            2
        );
        assert_eq!(providers.names(), ["openai", "openai-2", "groq"]);
        let items = providers.items();
        assert_eq!(
            items[0].note.as_deref(),
            Some("from model_list[0], model_list[2]")
        );
        assert!(items[1].fields.iter().any(|f| f.key == "preset"));
    }
}
