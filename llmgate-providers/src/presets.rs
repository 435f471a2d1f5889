//! Well-known providers: their wire family, base URL, auth style and quirks, so a config can
//! say `name: groq, kind: openai` and nothing else.

use crate::family::{ANTHROPIC_API_BASE, OLLAMA_API_BASE, WireFamily};

/// How a provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer KEY`; a key is required.
    Bearer,
    /// `Authorization: Bearer KEY` when a key is configured; none needed (local servers).
    OptionalBearer,
    /// `x-api-key: KEY` (Anthropic).
    XApiKey,
}

impl AuthStyle {
    /// Whether requests need a key at all.
    pub fn requires_key(self) -> bool {
        !matches!(self, AuthStyle::OptionalBearer)
    }
}

/// Differences between OpenAI-compatible servers that an adapter has to respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Quirks {
    /// Send the output cap as `max_completion_tokens` (never `max_tokens`) to reasoning models
    /// (`o1*`, `o3*`, `o4*`, `gpt-5*`), which reject `max_tokens`.
    pub reasoning_models_take_max_completion_tokens: bool,
    /// Leave `temperature` and `top_p` out for those reasoning models, which accept only the
    /// default sampling.
    pub reasoning_models_reject_sampling: bool,
    /// Understands `stream_options.include_usage`, so streams can report token counts.
    pub stream_usage: bool,
    /// Has no `cache_control` (its prompt cache is automatic): leave the breakpoints clients
    /// set for Anthropic-style caches out of content parts and tools. Other OpenAI-compatible
    /// servers get them, since proxies in front of Anthropic models use them.
    pub rejects_cache_control: bool,
}

/// One well-known provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Preset {
    /// The name a config uses (`groq`).
    pub name: &'static str,
    /// The wire family its API speaks.
    pub family: WireFamily,
    /// Base URL as the family's adapter expects it (OpenAI family: up to and including `/v1`).
    pub api_base: &'static str,
    /// How the key is sent, and whether one is needed.
    pub auth: AuthStyle,
    /// Runs on the operator's machines; matches `local` in a power level's preferences.
    pub local: bool,
    /// The environment variable the server reads the platform key from.
    pub key_env: Option<&'static str>,
    /// The environment variable that holds the host (`OLLAMA_HOST`, `VLLM_HOST`).
    pub host_env: Option<&'static str>,
    /// Optional headers this provider understands, e.g. OpenRouter's attribution headers.
    pub optional_headers: &'static [&'static str],
    /// How its API differs from OpenAI's.
    pub quirks: Quirks,
}

impl Preset {
    /// Whether a key must be configured (or brought by the caller) to use it.
    pub fn requires_key(&self) -> bool {
        self.auth.requires_key()
    }

    /// The base URL for a host given as `host`, `host:port` or a URL (`OLLAMA_HOST` style).
    /// A bare host gets this preset's default port; as in Ollama's own parsing, a host with a
    /// scheme keeps that scheme's standard port. The preset's path is kept unless one is given.
    pub fn api_base_for_host(&self, host: &str) -> String {
        let host = host.trim().trim_end_matches('/');
        let (scheme, rest, bare) = match host.split_once("://") {
            Some((scheme, rest)) => (scheme, rest, false),
            None => ("http", host, true),
        };
        let default = self
            .api_base
            .split_once("://")
            .map_or(self.api_base, |(_, r)| r);
        let (default_authority, path) = default.split_once('/').unwrap_or((default, ""));
        let default_port = default_authority.rsplit_once(':').map(|(_, port)| port);
        let (authority, given_path) = rest.split_once('/').unwrap_or((rest, ""));
        let authority = match (bare && !authority.contains(':'), default_port) {
            (true, Some(port)) => format!("{authority}:{port}"),
            _ => authority.to_owned(),
        };
        let path = if given_path.is_empty() {
            path
        } else {
            given_path
        };
        if path.is_empty() {
            format!("{scheme}://{authority}")
        } else {
            format!("{scheme}://{authority}/{path}")
        }
    }
}

const OPENAI_STYLE: Quirks = Quirks {
    reasoning_models_take_max_completion_tokens: false,
    reasoning_models_reject_sampling: false,
    stream_usage: true,
    rejects_cache_control: false,
};

const PRESETS: &[Preset] = &[
    Preset {
        name: "openai",
        family: WireFamily::OpenAi,
        api_base: "https://api.openai.com/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("OPENAI_API_KEY"),
        host_env: None,
        optional_headers: &["OpenAI-Organization", "OpenAI-Project"],
        quirks: Quirks {
            reasoning_models_take_max_completion_tokens: true,
            reasoning_models_reject_sampling: true,
            stream_usage: true,
            rejects_cache_control: true,
        },
    },
    Preset {
        name: "anthropic",
        family: WireFamily::Anthropic,
        api_base: ANTHROPIC_API_BASE,
        auth: AuthStyle::XApiKey,
        local: false,
        key_env: Some("ANTHROPIC_API_KEY"),
        host_env: None,
        optional_headers: &["anthropic-beta"],
        quirks: Quirks {
            reasoning_models_take_max_completion_tokens: false,
            reasoning_models_reject_sampling: false,
            stream_usage: false,
            rejects_cache_control: false,
        },
    },
    Preset {
        name: "openrouter",
        family: WireFamily::OpenAi,
        api_base: "https://openrouter.ai/api/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("OPENROUTER_API_KEY"),
        host_env: None,
        optional_headers: &["HTTP-Referer", "X-Title"],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "groq",
        family: WireFamily::OpenAi,
        api_base: "https://api.groq.com/openai/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("GROQ_API_KEY"),
        host_env: None,
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "together",
        family: WireFamily::OpenAi,
        api_base: "https://api.together.xyz/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("TOGETHER_API_KEY"),
        host_env: None,
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "fireworks",
        family: WireFamily::OpenAi,
        api_base: "https://api.fireworks.ai/inference/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("FIREWORKS_API_KEY"),
        host_env: None,
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "deepinfra",
        family: WireFamily::OpenAi,
        api_base: "https://api.deepinfra.com/v1/openai",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("DEEPINFRA_API_KEY"),
        host_env: None,
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "huggingface",
        family: WireFamily::HuggingFace,
        api_base: "https://router.huggingface.co/v1",
        auth: AuthStyle::Bearer,
        local: false,
        key_env: Some("HUGGINGFACE_API_KEY"),
        host_env: None,
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "vllm",
        family: WireFamily::OpenAi,
        api_base: "http://127.0.0.1:8000/v1",
        auth: AuthStyle::OptionalBearer,
        local: true,
        key_env: None,
        host_env: Some("VLLM_HOST"),
        optional_headers: &[],
        quirks: OPENAI_STYLE,
    },
    Preset {
        name: "ollama",
        family: WireFamily::Ollama,
        api_base: OLLAMA_API_BASE,
        auth: AuthStyle::OptionalBearer,
        local: true,
        key_env: None,
        host_env: Some("OLLAMA_HOST"),
        optional_headers: &[],
        quirks: Quirks {
            reasoning_models_take_max_completion_tokens: false,
            reasoning_models_reject_sampling: false,
            stream_usage: false,
            rejects_cache_control: false,
        },
    },
];

/// The preset called `name` (case-insensitive), if it is a well-known provider.
pub fn preset(name: &str) -> Option<Preset> {
    PRESETS
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name.trim()))
        .copied()
}

/// Every well-known provider, in a stable order.
pub fn presets() -> &'static [Preset] {
    PRESETS
}

/// Whether an OpenAI model id is a reasoning model that accepts only `max_completion_tokens`.
pub fn is_openai_reasoning_model(model: &str) -> bool {
    let model = model.rsplit('/').next().unwrap_or(model);
    // Asked on every OpenAI request: compared in place, without a `format!` per prefix.
    ["o1", "o3", "o4", "gpt-5"].iter().any(|family| {
        model
            .strip_prefix(family)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_provider_has_a_preset_with_its_documented_base() {
        let expected = [
            ("openai", "https://api.openai.com/v1"),
            ("anthropic", "https://api.anthropic.com"),
            ("openrouter", "https://openrouter.ai/api/v1"),
            ("groq", "https://api.groq.com/openai/v1"),
            ("together", "https://api.together.xyz/v1"),
            ("fireworks", "https://api.fireworks.ai/inference/v1"),
            ("deepinfra", "https://api.deepinfra.com/v1/openai"),
            ("huggingface", "https://router.huggingface.co/v1"),
            ("vllm", "http://127.0.0.1:8000/v1"),
            ("ollama", "http://127.0.0.1:11434"),
        ];
        for (name, base) in expected {
            assert_eq!(preset(name).unwrap().api_base, base, "{name}");
        }
        assert_eq!(presets().len(), expected.len());
        assert!(preset("GROQ").is_some());
        assert!(preset("nope").is_none());
    }

    #[test]
    fn local_presets_need_no_key_and_remote_ones_do() {
        for preset in presets() {
            assert_eq!(preset.local, !preset.requires_key(), "{}", preset.name);
            assert_eq!(preset.local, preset.host_env.is_some(), "{}", preset.name);
            assert_eq!(preset.local, preset.key_env.is_none(), "{}", preset.name);
        }
        assert_eq!(preset("ollama").unwrap().family, WireFamily::Ollama);
        assert_eq!(
            preset("huggingface").unwrap().family,
            WireFamily::HuggingFace
        );
        assert_eq!(
            preset("openrouter").unwrap().optional_headers,
            &["HTTP-Referer", "X-Title"]
        );
    }

    #[test]
    fn host_variables_keep_the_default_port_and_path() {
        let ollama = preset("ollama").unwrap();
        assert_eq!(ollama.api_base_for_host("gpu-box"), "http://gpu-box:11434");
        assert_eq!(
            ollama.api_base_for_host("0.0.0.0:9999"),
            "http://0.0.0.0:9999"
        );
        assert_eq!(
            ollama.api_base_for_host("https://ollama.internal/"),
            "https://ollama.internal"
        );
        let vllm = preset("vllm").unwrap();
        assert_eq!(
            vllm.api_base_for_host("10.0.0.5"),
            "http://10.0.0.5:8000/v1"
        );
        assert_eq!(
            vllm.api_base_for_host("http://10.0.0.5:9000/v1"),
            "http://10.0.0.5:9000/v1"
        );
        assert_eq!(
            vllm.api_base_for_host("http://10.0.0.5:9000"),
            "http://10.0.0.5:9000/v1"
        );
    }

    #[test]
    fn reasoning_models_are_recognised_by_prefix() {
        for model in [
            "o1",
            "o1-mini",
            "o3-mini-2025-01-31",
            "o4-mini",
            "gpt-5",
            "openai/o3",
        ] {
            assert!(is_openai_reasoning_model(model), "{model}");
        }
        for model in ["gpt-4o", "gpt-4o-mini", "o1x", "llama-o1"] {
            assert!(!is_openai_reasoning_model(model), "{model}");
        }
        assert!(
            preset("openai")
                .unwrap()
                .quirks
                .reasoning_models_take_max_completion_tokens
        );
    }
}
