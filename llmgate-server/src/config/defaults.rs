//! The built-in default config: works offline with `demo/echo`, and enables a provider preset
//! for each well-known key or local host found in the environment.

use llmgate_core::{LatencyClass, Privacy, Secret};

use super::env::Env;
use super::providers::{ModelConfig, ProviderConfig, ProviderKind};
use super::values::DecimalText;
use super::{
    BillingConfig, ByokConfig, Config, PowerLevelsConfig, RoutingConfig, ServerConfig,
    StorageConfig, default_tiers,
};

/// A hosted provider enabled by its API key variable.
struct KeyPreset {
    variable: &'static str,
    name: &'static str,
    kind: ProviderKind,
    api_base: &'static str,
}

const KEY_PRESETS: &[KeyPreset] = &[
    KeyPreset {
        variable: "OPENAI_API_KEY",
        name: "openai",
        kind: ProviderKind::Openai,
        api_base: "https://api.openai.com/v1",
    },
    KeyPreset {
        variable: "ANTHROPIC_API_KEY",
        name: "anthropic",
        kind: ProviderKind::Anthropic,
        api_base: "https://api.anthropic.com/v1",
    },
    KeyPreset {
        variable: "GROQ_API_KEY",
        name: "groq",
        kind: ProviderKind::Openai,
        api_base: "https://api.groq.com/openai/v1",
    },
    KeyPreset {
        variable: "OPENROUTER_API_KEY",
        name: "openrouter",
        kind: ProviderKind::Openai,
        api_base: "https://openrouter.ai/api/v1",
    },
    KeyPreset {
        variable: "TOGETHER_API_KEY",
        name: "together",
        kind: ProviderKind::Openai,
        api_base: "https://api.together.xyz/v1",
    },
    KeyPreset {
        variable: "FIREWORKS_API_KEY",
        name: "fireworks",
        kind: ProviderKind::Openai,
        api_base: "https://api.fireworks.ai/inference/v1",
    },
    KeyPreset {
        variable: "DEEPINFRA_API_KEY",
        name: "deepinfra",
        kind: ProviderKind::Openai,
        api_base: "https://api.deepinfra.com/v1/openai",
    },
    KeyPreset {
        variable: "HUGGINGFACE_API_KEY",
        name: "huggingface",
        kind: ProviderKind::Huggingface,
        api_base: "https://router.huggingface.co/v1",
    },
];

/// A local OpenAI-compatible server enabled by its host variable.
const HOST_PRESETS: &[(&str, &str)] = &[("OLLAMA_HOST", "ollama"), ("VLLM_HOST", "vllm")];

pub(super) fn builtin(env: &Env) -> Config {
    let mut demo = ProviderConfig::new("demo", ProviderKind::Demo);
    demo.local = true;
    let mut providers = vec![demo];
    for preset in KEY_PRESETS {
        if let Some(key) = env.get(preset.variable) {
            let mut provider = ProviderConfig::new(preset.name, preset.kind);
            provider.api_base = Some(preset.api_base.to_owned());
            provider.api_key = Some(Secret::new(key));
            provider.preset = true;
            providers.push(provider);
        }
    }
    for (variable, name) in HOST_PRESETS {
        if let Some(host) = env.get(variable) {
            // Both speak OpenAI's protocol under /v1.
            let mut provider = ProviderConfig::new(*name, ProviderKind::Openai);
            provider.api_base = Some(openai_base_for_host(&host));
            provider.local = true;
            provider.preset = true;
            providers.push(provider);
        }
    }
    Config {
        server: ServerConfig::default(),
        storage: StorageConfig::default(),
        byok: ByokConfig::default(),
        billing: BillingConfig::default(),
        tiers: default_tiers(),
        power_levels: PowerLevelsConfig::default(),
        providers,
        models: vec![demo_echo()],
        routing: RoutingConfig::default(),
    }
}

/// `demo/echo`: free, answers locally.
fn demo_echo() -> ModelConfig {
    let mut model = ModelConfig::new("demo/echo", "demo", "echo");
    model.cost_per_1k = Some(DecimalText::new("0"));
    model.quality = Some(0.5);
    model.tags = vec!["demo".to_owned()];
    model.latency = Some(LatencyClass::Ultrafast);
    model.privacy = Some(Privacy::High);
    model
}

/// `OLLAMA_HOST` may be `host:port` or a URL, with or without `/v1`.
fn openai_base_for_host(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let with_scheme = if host.starts_with("http://") || host.starts_with("https://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    if with_scheme.ends_with("/v1") {
        with_scheme
    } else {
        format!("{with_scheme}/v1")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_variables_become_openai_bases() {
        assert_eq!(
            openai_base_for_host("127.0.0.1:11434"),
            "http://127.0.0.1:11434/v1"
        );
        assert_eq!(
            openai_base_for_host("http://gpu:8000/v1/"),
            "http://gpu:8000/v1"
        );
    }

    #[test]
    fn builtin_has_demo_and_presets_for_present_keys_only() {
        let env = Env::from_pairs([
            ("GROQ_API_KEY", "gsk-test"),
            ("OLLAMA_HOST", "localhost:11434"),
        ]);
        let config = builtin(&env);
        let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["demo", "groq", "ollama"]);
        assert!(config.providers[2].local);
        assert_eq!(config.models[0].name, "demo/echo");
        assert!(config.validate().is_empty(), "{:?}", config.validate());
    }
}
