//! The built-in default config: works offline with `demo/echo`, and enables a provider preset
//! for each well-known key or local host found in the environment.

use llmgate_core::keys::Secret;
use llmgate_providers::{Preset, presets};

use super::billing::BillingConfig;
use super::env::Env;
use super::model::Config;
use super::providers::{ModelConfig, ProviderConfig, ProviderKind};
use super::responses::ResponsesConfig;
use super::routing::RoutingConfig;
use super::server::{ByokConfig, ServerConfig, StorageConfig};
use super::telemetry::TelemetryConfig;
use super::tiers::{PowerLevelsConfig, default_tiers};

impl Config {
    /// The built-in default: the demo provider and model, plus a preset provider for
    /// each well-known key or host found in `env`.
    pub fn builtin(env: &Env) -> Self {
        builtin(env)
    }
}

pub(super) fn builtin(env: &Env) -> Config {
    let mut providers = vec![ProviderConfig::new("demo", ProviderKind::Demo)];
    providers.extend(presets().iter().filter_map(|preset| from_env(preset, env)));
    Config {
        server: ServerConfig::default(),
        storage: StorageConfig::default(),
        byok: ByokConfig::default(),
        billing: BillingConfig::default(),
        responses: ResponsesConfig::default(),
        tiers: default_tiers(),
        power_levels: PowerLevelsConfig::default(),
        providers,
        models: demo_echo(),
        routing: RoutingConfig::default(),
        logging: Default::default(),
        telemetry: TelemetryConfig::default(),
    }
}

/// The provider a preset becomes when its key variable (hosted) or host variable (local) is
/// set, else `None`.
fn from_env(preset: &Preset, env: &Env) -> Option<ProviderConfig> {
    let mut provider = ProviderConfig::new(preset.name, ProviderKind::of_family(preset.family));
    if let Some(key) = preset.key_env.and_then(|variable| env.get(variable)) {
        provider.api_key = Some(Secret::new(key));
        provider.api_base = Some(preset.api_base.to_owned());
    } else if let Some(host) = preset.host_env.and_then(|variable| env.get(variable)) {
        provider.api_base = Some(preset.api_base_for_host(&host));
    } else {
        return None;
    }
    provider.from_env = true;
    Some(provider)
}

/// `demo/echo`: free, answers locally. Written as an operator would write it, so that every
/// field left out takes the default the config file gives it.
const DEMO_ECHO: &str = "
name: demo/echo
provider: demo
upstream_model: echo
cost_per_1k: '0'
quality: 0.5
tags: [demo]
latency: ultrafast
privacy: high
";

fn demo_echo() -> Vec<ModelConfig> {
    // The text above is fixed and tested (`builtin_has_demo_and_presets_for_present_keys_only`).
    serde_yaml_ng::from_str(DEMO_ECHO).into_iter().collect()
}

#[cfg(test)]
mod tests {
    use llmgate_core::catalog::{LatencyClass, Privacy};

    use super::*;

    #[test]
    fn builtin_has_demo_and_presets_for_present_keys_only() {
        let env = Env::from_pairs([
            ("GROQ_API_KEY", "gsk-test"),
            ("OLLAMA_HOST", "localhost:11434"),
        ]);
        let config = builtin(&env);
        let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["demo", "groq", "ollama"]);
        assert!(config.providers[0].local, "the demo answers locally");
        let demo = &config.models[0];
        assert_eq!(demo.name, "demo/echo");
        assert_eq!(demo.upstream_model.as_deref(), Some("echo"));
        assert_eq!(demo.cost_per_1k.as_ref().map(|p| p.as_str()), Some("0"));
        assert_eq!(demo.quality, Some(0.5));
        assert_eq!(demo.tags, ["demo"]);
        assert_eq!(demo.latency, Some(LatencyClass::Ultrafast));
        assert_eq!(demo.privacy, Some(Privacy::High));
        assert_eq!(demo.weight, 1, "left out, the weight is the file's default");
        assert!(config.validate().is_empty(), "{:?}", config.validate());
    }

    #[test]
    fn env_providers_take_the_preset_family_base_and_locality() {
        let env = Env::from_pairs([
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("OLLAMA_HOST", "gpu-box"),
            ("VLLM_HOST", "http://10.0.0.5:9000"),
        ]);
        let config = builtin(&env);
        let find = |name: &str| config.providers.iter().find(|p| p.name == name).unwrap();

        let anthropic = find("anthropic");
        assert_eq!(anthropic.kind, ProviderKind::Anthropic);
        assert_eq!(
            anthropic.api_base.as_deref(),
            Some("https://api.anthropic.com")
        );
        assert_eq!(anthropic.api_key.as_ref().unwrap().expose(), "sk-ant-test");
        assert!(!anthropic.local && anthropic.spec().requires_key());

        // Ollama's native API, on its default port; both local presets need no key.
        let ollama = find("ollama");
        assert_eq!(ollama.kind, ProviderKind::Ollama);
        assert_eq!(ollama.api_base.as_deref(), Some("http://gpu-box:11434"));
        let vllm = find("vllm");
        assert_eq!(vllm.kind, ProviderKind::Openai);
        assert_eq!(vllm.api_base.as_deref(), Some("http://10.0.0.5:9000/v1"));
        for local in [ollama, vllm] {
            assert!(local.local && local.api_key.is_none(), "{}", local.name);
            assert!(!local.spec().requires_key(), "{}", local.name);
            assert!(local.from_env);
        }
    }
}
