//! Model names the catalog does not list: `provider/upstream-model`, and well-known bare names
//! (`gpt-4o`, `claude-3-5-sonnet-latest`) that belong to one provider.
//!
//! ```
//! use llmgate_providers::resolve_model;
//!
//! let groq = resolve_model("groq/llama3-70b-8192", &["groq"]).unwrap();
//! assert_eq!((groq.provider.as_str(), groq.upstream_model.as_str()), ("groq", "llama3-70b-8192"));
//! assert!(groq.price.is_none()); // unpriced: BYOK only
//!
//! let claude = resolve_model("claude-3-5-haiku-latest", &["anthropic"]).unwrap();
//! assert_eq!(claude.provider, "anthropic");
//! assert!(claude.price.is_some());
//! assert!(resolve_model("claude-3-5-haiku-latest", &["openai"]).is_none());
//! ```

use llmgate_core::{
    catalog::{Deployment, Privacy},
    pricing::{Decimal, ModelPrice},
};

use crate::presets::preset;

/// List prices and limits of one well-known model.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// The model's family name, without `-latest` or a date.
    name: &'static str,
    /// USD per 1K tokens, as `(mantissa, scale)`: `(25, 4)` is 0.0025.
    input: (i64, u32),
    output: (i64, u32),
    context_window: u32,
    max_output_tokens: u32,
}

/// The prices of cached prompt tokens as fractions of the input price, `(mantissa, scale)`.
#[derive(Debug, Clone, Copy)]
struct CacheRatios {
    read: (i64, u32),
    write: (i64, u32),
}

/// No prompt cache (or none priced apart): cached tokens cost the input price.
const NO_CACHE: CacheRatios = CacheRatios {
    read: (1, 0),
    write: (1, 0),
};
/// OpenAI's automatic caching: reads at half the input price, writes free of surcharge.
const OPENAI_HALF: CacheRatios = CacheRatios {
    read: (5, 1),
    write: (1, 0),
};
/// The same at a quarter of the input price (the gpt-4.1 family, o3, o4-mini).
const OPENAI_QUARTER: CacheRatios = CacheRatios {
    read: (25, 2),
    write: (1, 0),
};
/// Anthropic: reads at a tenth of the input price, (five-minute) writes at 1.25 times it.
const ANTHROPIC_CACHE: CacheRatios = CacheRatios {
    read: (1, 1),
    write: (125, 2),
};

const fn known(
    name: &'static str,
    input: (i64, u32),
    output: (i64, u32),
    context_window: u32,
    max_output_tokens: u32,
) -> Known {
    Known {
        name,
        input,
        output,
        context_window,
        max_output_tokens,
    }
}

impl Known {
    /// The list price; cached prompt tokens at the provider's ratios for this model.
    fn price(&self, provider: &str) -> ModelPrice {
        let decimal = |(mantissa, scale)| Decimal::new(mantissa, scale);
        let input = decimal(self.input);
        let cache = cache_ratios(provider, self.name);
        ModelPrice::new(input, decimal(self.output))
            .with_cache_prices(input * decimal(cache.read), input * decimal(cache.write))
    }
}

/// Which cache ratios a well-known model has.
fn cache_ratios(provider: &str, family: &str) -> CacheRatios {
    match (provider, family) {
        // Claude 3 Haiku's are its own: $0.03 reads and $0.30 writes per 1M tokens.
        ("anthropic", "claude-3-haiku") => CacheRatios {
            read: (12, 2),
            write: (12, 1),
        },
        ("anthropic", _) => ANTHROPIC_CACHE,
        ("openai", "gpt-4o" | "gpt-4o-mini" | "o1" | "o1-mini" | "o3-mini") => OPENAI_HALF,
        ("openai", "gpt-4.1" | "gpt-4.1-mini" | "gpt-4.1-nano" | "o3" | "o4-mini") => {
            OPENAI_QUARTER
        }
        // Older snapshots (`gpt-4o-2024-05-13`, `gpt-4-turbo`, …) have no cache discount.
        _ => NO_CACHE,
    }
}

/// OpenAI's list prices (standard tier), per 1K tokens; cache ratios in [`cache_ratios`].
const OPENAI: &[Known] = &[
    known("gpt-4o", (25, 4), (1, 2), 128_000, 16_384),
    // The first gpt-4o snapshot kept its launch price.
    known("gpt-4o-2024-05-13", (5, 3), (15, 3), 128_000, 4_096),
    known("chatgpt-4o-latest", (5, 3), (15, 3), 128_000, 16_384),
    known("gpt-4o-mini", (15, 5), (6, 4), 128_000, 16_384),
    known("gpt-4.1", (2, 3), (8, 3), 1_047_576, 32_768),
    known("gpt-4.1-mini", (4, 4), (16, 4), 1_047_576, 32_768),
    known("gpt-4.1-nano", (1, 4), (4, 4), 1_047_576, 32_768),
    known("gpt-4-turbo", (1, 2), (3, 2), 128_000, 4_096),
    known("gpt-3.5-turbo", (5, 4), (15, 4), 16_385, 4_096),
    known("o1", (15, 3), (6, 2), 200_000, 100_000),
    known("o1-mini", (11, 4), (44, 4), 128_000, 65_536),
    known("o3", (2, 3), (8, 3), 200_000, 100_000),
    known("o3-mini", (11, 4), (44, 4), 200_000, 100_000),
    known("o4-mini", (11, 4), (44, 4), 200_000, 100_000),
];

/// Anthropic's list prices (base input), per 1K tokens; cache ratios in [`cache_ratios`].
const ANTHROPIC: &[Known] = &[
    known("claude-3-5-sonnet", (3, 3), (15, 3), 200_000, 8_192),
    known("claude-3-5-haiku", (8, 4), (4, 3), 200_000, 8_192),
    known("claude-3-7-sonnet", (3, 3), (15, 3), 200_000, 64_000),
    known("claude-3-opus", (15, 3), (75, 3), 200_000, 4_096),
    known("claude-3-haiku", (25, 5), (125, 5), 200_000, 4_096),
    known("claude-sonnet-4", (3, 3), (15, 3), 200_000, 64_000),
    known("claude-sonnet-4-5", (3, 3), (15, 3), 200_000, 64_000),
    known("claude-opus-4", (15, 3), (75, 3), 200_000, 32_000),
    known("claude-opus-4-1", (15, 3), (75, 3), 200_000, 32_000),
    known("claude-opus-4-5", (5, 3), (25, 3), 200_000, 64_000),
    known("claude-haiku-4-5", (1, 3), (5, 3), 200_000, 64_000),
];

/// The deployment for a model name no `models:` entry lists, or `None`.
///
/// - `provider/upstream-model` resolves when `provider` is one of `configured_providers`; the
///   rest (which may contain more slashes) is the upstream's model id.
/// - A bare well-known name resolves to the provider of its family when a provider of that
///   name is configured: `gpt-*`, `chatgpt-*`, `o1*`, `o3*`, `o4*` → `openai`; `claude-*` →
///   `anthropic`.
///
/// Models of OpenAI and Anthropic get their list price and limits; others are unpriced, which
/// the gateway serves only with the caller's own key.
pub fn resolve_model(name: &str, configured_providers: &[&str]) -> Option<Deployment> {
    let name = name.trim();
    let (provider, upstream) = match name.split_once('/') {
        Some((provider, upstream)) if !upstream.is_empty() => (provider, upstream),
        Some(_) => return None,
        None => (family_of(name)?, name),
    };
    if !configured_providers.contains(&provider) {
        return None;
    }
    let mut deployment = Deployment::new(name, provider, upstream);
    if let Some(known) = lookup(provider, upstream) {
        deployment.price = Some(known.price(provider));
        deployment.context_window = Some(known.context_window);
        deployment.max_output_tokens = Some(known.max_output_tokens);
    }
    if preset(provider).is_some_and(|p| p.local) {
        deployment.local = true;
        deployment.privacy = Privacy::High;
    }
    Some(deployment)
}

/// A resolver for `GatewayBuilder::model_resolver` over these configured provider names.
pub fn model_resolver(
    configured_providers: impl IntoIterator<Item = impl Into<String>>,
) -> impl Fn(&str) -> Option<Deployment> + Send + Sync + 'static {
    let providers: Vec<String> = configured_providers.into_iter().map(Into::into).collect();
    move |name| {
        let names: Vec<&str> = providers.iter().map(String::as_str).collect();
        resolve_model(name, &names)
    }
}

/// The provider a bare model name belongs to, by its well-known prefix.
fn family_of(model: &str) -> Option<&'static str> {
    let reasoning = ["o1", "o3", "o4"].iter().any(|p| {
        model
            .strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    });
    if reasoning || model.starts_with("gpt-") || model.starts_with("chatgpt-") {
        Some("openai")
    } else if model.starts_with("claude-") {
        Some("anthropic")
    } else {
        None
    }
}

fn lookup(provider: &str, model: &str) -> Option<Known> {
    let table = match provider {
        "openai" => OPENAI,
        "anthropic" => ANTHROPIC,
        _ => return None,
    };
    let find = |wanted: &str| table.iter().find(|k| k.name == wanted).copied();
    find(model).or_else(|| find(&family_name(model)))
}

/// `claude-3-5-sonnet-20241022`, `claude-3-5-sonnet-latest` → `claude-3-5-sonnet`;
/// `gpt-4o-2024-08-06` → `gpt-4o`; `claude-sonnet-4-0` → `claude-sonnet-4`.
fn family_name(model: &str) -> String {
    let mut name = model.strip_suffix("-latest").unwrap_or(model);
    if let Some(rest) = name.strip_suffix("-0") {
        name = rest;
    }
    let bytes = name.as_bytes();
    let dashed_date = bytes.len() > 11
        && bytes[bytes.len() - 11] == b'-'
        && is_date(&name[name.len() - 10..], true);
    let compact_date = bytes.len() > 9
        && bytes[bytes.len() - 9] == b'-'
        && is_date(&name[name.len() - 8..], false);
    if dashed_date {
        name = &name[..name.len() - 11];
    } else if compact_date {
        name = &name[..name.len() - 9];
    }
    name.to_owned()
}

/// `YYYY-MM-DD` (dashed) or `YYYYMMDD`.
fn is_date(text: &str, dashed: bool) -> bool {
    if dashed {
        let parts: Vec<&str> = text.split('-').collect();
        parts.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&parts)
                .all(|(len, part)| part.len() == *len && part.bytes().all(|b| b.is_ascii_digit()))
    } else {
        text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn prices_of(model: &str) -> [String; 4] {
        let price = resolve_model(model, ALL).unwrap().price.unwrap();
        [
            price.input_per_1k,
            price.output_per_1k,
            price.cache_read_per_1k,
            price.cache_write_per_1k,
        ]
        .map(|per_1k| per_1k.normalize().to_string())
    }

    const ALL: &[&str] = &["openai", "anthropic", "groq", "ollama", "openrouter"];

    #[test]
    fn provider_prefix_names_the_provider_and_keeps_the_rest() {
        let d = resolve_model("groq/llama3-70b-8192", ALL).unwrap();
        assert_eq!(d.name, "groq/llama3-70b-8192");
        assert_eq!(d.provider, "groq");
        assert_eq!(d.upstream_model, "llama3-70b-8192");
        assert_eq!(d.price, None);
        let nested = resolve_model("openrouter/anthropic/claude-3.5-sonnet", ALL).unwrap();
        assert_eq!(nested.upstream_model, "anthropic/claude-3.5-sonnet");
        assert_eq!(nested.price, None, "OpenRouter prices are its own");
        assert!(resolve_model("together/llama", ALL).is_none());
        assert!(resolve_model("groq/", ALL).is_none());
    }

    #[test]
    fn bare_well_known_names_go_to_their_provider() {
        for (model, provider) in [
            ("gpt-4o", "openai"),
            ("chatgpt-4o-latest", "openai"),
            ("o1", "openai"),
            ("o3-mini", "openai"),
            ("o4-mini-2025-04-16", "openai"),
            ("claude-3-5-sonnet-latest", "anthropic"),
            ("claude-sonnet-4-20250514", "anthropic"),
        ] {
            let d = resolve_model(model, ALL).unwrap();
            assert_eq!(d.provider, provider, "{model}");
            assert_eq!(d.upstream_model, model);
        }
        for model in ["llama3", "o1x", "gemini-pro", "mixtral-8x7b"] {
            assert!(resolve_model(model, ALL).is_none(), "{model}");
        }
        assert!(resolve_model("gpt-4o", &["anthropic"]).is_none());
    }

    #[test]
    fn list_prices_are_exact_decimals_and_follow_snapshots() {
        let cases = [
            ("gpt-4o", "0.0025", "0.01"),
            ("gpt-4o-2024-08-06", "0.0025", "0.01"),
            ("gpt-4o-2024-05-13", "0.005", "0.015"),
            ("gpt-4o-mini", "0.00015", "0.0006"),
            ("openai/gpt-4o-mini-2024-07-18", "0.00015", "0.0006"),
            ("claude-3-5-sonnet-20241022", "0.003", "0.015"),
            ("claude-3-5-sonnet-latest", "0.003", "0.015"),
            ("claude-3-5-haiku-latest", "0.0008", "0.004"),
            ("claude-3-haiku-20240307", "0.00025", "0.00125"),
            ("claude-sonnet-4-0", "0.003", "0.015"),
            ("anthropic/claude-opus-4-1-20250805", "0.015", "0.075"),
        ];
        for (model, input, output) in cases {
            let price = resolve_model(model, ALL).unwrap().price.unwrap();
            assert_eq!(
                (price.input_per_1k, price.output_per_1k),
                (dec(input), dec(output)),
                "{model}"
            );
        }
        let gpt4o = resolve_model("gpt-4o", ALL).unwrap();
        assert_eq!(gpt4o.context_window, Some(128_000));
        assert_eq!(gpt4o.max_output_tokens, Some(16_384));
        let unknown = resolve_model("gpt-99-turbo", ALL).unwrap();
        assert_eq!(unknown.price, None);
        assert_eq!(unknown.context_window, None);
    }

    #[test]
    fn cached_prompt_tokens_carry_the_providers_list_ratios() {
        // (input, output, cache read, cache write) per 1K tokens.
        for (model, prices) in [
            ("claude-sonnet-4-5", ["0.003", "0.015", "0.0003", "0.00375"]),
            (
                "claude-3-5-haiku-latest",
                ["0.0008", "0.004", "0.00008", "0.001"],
            ),
            ("gpt-4o", ["0.0025", "0.01", "0.00125", "0.0025"]),
            ("gpt-4.1", ["0.002", "0.008", "0.0005", "0.002"]),
            (
                "o4-mini-2025-04-16",
                ["0.0011", "0.0044", "0.000275", "0.0011"],
            ),
            (
                "claude-3-haiku-20240307",
                ["0.00025", "0.00125", "0.00003", "0.0003"],
            ),
            // No cache discount on the models that never had one.
            ("gpt-3.5-turbo", ["0.0005", "0.0015", "0.0005", "0.0005"]),
        ] {
            assert_eq!(prices_of(model), prices.map(str::to_owned), "{model}");
        }
    }

    #[test]
    fn local_providers_make_local_private_deployments() {
        let d = resolve_model("ollama/llama3.2:3b", ALL).unwrap();
        assert!(d.local);
        assert_eq!(d.privacy, Privacy::High);
        assert!(!resolve_model("groq/x", ALL).unwrap().local);
    }

    #[test]
    fn resolver_closure_owns_its_provider_list() {
        let resolve = model_resolver(vec!["anthropic".to_owned()]);
        assert!(resolve("claude-3-opus-20240229").is_some());
        assert!(resolve("gpt-4o").is_none());
    }
}
