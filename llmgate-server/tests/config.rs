#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Reading, resolving and validating the YAML config.

use llmgate_core::routing::Strategy;
use llmgate_core::{
    catalog::{LatencyClass, Privacy},
    pricing::Decimal,
};
use llmgate_server::config::{Config, Env, ProviderKind};

const SPEC_EXAMPLE: &str = r#"
server:
  listen: 127.0.0.1:4000
  master_key: os.environ/LLMGATE_MASTER_KEY
  max_body_bytes: 4194304
storage:
  database_url: sqlite://llmgate.db
  redis_url: redis://127.0.0.1:6379
byok:
  encryption_key: os.environ/LLMGATE_BYOK_KEY
billing:
  credits_per_usd: 1000
  packages:
    - { id: credits-1000,  credits: 1000,  price_usd: "1.00" }
    - { id: credits-5000,  credits: 5000,  price_usd: "4.50" }
  stripe:
    secret_key: os.environ/STRIPE_SECRET_KEY
    webhook_secret: os.environ/STRIPE_WEBHOOK_SECRET
    api_base: https://api.stripe.com
    success_url: https://example.com/billing/done
    cancel_url: https://example.com/billing/cancelled
  low_credit_alert:
    threshold_credits: 100
    webhook_url: https://hooks.example.com/llmgate
tiers:
  free:         { markup: 0.0, byok: false, monthly_credits: 1000,  default_power_level: eco, rpm: 20 }
  starter:      { markup: 0.4, byok: true,  monthly_credits: 10000, default_power_level: balanced }
power_levels:
  eco:       { cost_multiplier: 0.1,  max_tokens: 2000,  preferred_providers: [local, groq], quality_threshold: 0.6 }
providers:
  - name: together
    kind: openai
    api_base: https://api.together.xyz/v1
    api_key: os.environ/TOGETHER_API_KEY
    local: false
    timeout_ms: 600000
  - name: groq
    kind: openai
    api_base: https://api.groq.com/openai/v1
models:
  - name: mixtral-8x22b-together
    provider: together
    upstream_model: mistralai/Mixtral-8x22B-Instruct-v0.1
    input_cost_per_1k: 0.002
    output_cost_per_1k: 0.0000000000000000000123456789
    quality: 0.85
    context_window: 65536
    rpm: 600
    tpm: 1000000
    fallbacks: [llama3-70b-groq]
    tags: [chat, code]
    latency: fast
    privacy: low
  - name: llama3-70b-groq
    provider: groq
    upstream_model: llama3-70b-8192
    cost_per_1k: "0.0007"
routing:
  strategy: least_busy
  num_retries: 2
  cooldown_after_failures: 3
  cooldown_ms: 30000
"#;

fn full_env() -> Env {
    Env::from_pairs([
        ("LLMGATE_MASTER_KEY", "lg-master-0123456789abcdef"),
        (
            "LLMGATE_BYOK_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("STRIPE_SECRET_KEY", "sk_test_x"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
        ("TOGETHER_API_KEY", "tg-key"),
    ])
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

#[test]
fn spec_example_parses_with_env_references_and_exact_prices() {
    let config = Config::from_yaml(SPEC_EXAMPLE, &full_env()).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    assert_eq!(
        config.server.master_key.as_ref().unwrap().expose(),
        "lg-master-0123456789abcdef"
    );
    assert_eq!(
        config.providers[0].api_key.as_ref().unwrap().expose(),
        "tg-key"
    );
    assert_eq!(config.providers[0].kind, ProviderKind::Openai);
    let model = &config.models[0];
    let (input, output) = model.prices();
    assert_eq!(input.unwrap().parse().unwrap(), dec("0.002"));
    // More digits than an f64 holds: proves the price never went through a float.
    assert_eq!(
        output.unwrap().parse().unwrap(),
        dec("0.0000000000000000000123456789")
    );
    assert_eq!(model.latency, Some(LatencyClass::Fast));
    assert_eq!(model.privacy, Some(Privacy::Low));
    assert_eq!(config.routing.strategy, Strategy::LeastBusy);
    assert_eq!(
        config.billing.packages[1].price_usd.parse().unwrap(),
        dec("4.50")
    );
    assert_eq!(config.tiers["free"].rpm, Some(20));
}

#[test]
fn cost_per_1k_sets_both_prices() {
    let config = Config::from_yaml(SPEC_EXAMPLE, &full_env()).unwrap();
    let (input, output) = config.models[1].prices();
    assert_eq!(input.unwrap().parse().unwrap(), dec("0.0007"));
    assert_eq!(output.unwrap().parse().unwrap(), dec("0.0007"));
}

#[test]
fn numbers_and_embedded_references_come_from_the_environment() {
    let yaml = "server:\n  listen: 127.0.0.1:${PORT}\n  max_body_bytes: os.environ/MAX_BODY\n";
    let env = Env::from_pairs([("PORT", "4100"), ("MAX_BODY", "1024")]);
    let config = Config::from_yaml(yaml, &env).unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:4100");
    assert_eq!(config.server.max_body_bytes, 1024);
}

#[test]
fn missing_variable_is_an_error_naming_its_path() {
    let error = Config::from_yaml(SPEC_EXAMPLE, &Env::from_pairs([("X", "y")])).unwrap_err();
    let text = error.to_string();
    assert_eq!(error.problems.len(), 1, "{text}");
    assert_eq!(error.problems[0].path, "server.master_key", "{text}");
    assert!(text.contains("LLMGATE_MASTER_KEY"), "{text}");
}

#[test]
fn missing_variable_deep_in_a_list_names_its_index() {
    let yaml = "providers:\n  - name: a\n    kind: openai\n    api_base: https://a.example/v1\n    api_key: os.environ/A_KEY\n";
    let error = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap_err();
    assert_eq!(error.problems[0].path, "providers[0].api_key", "{error}");
    assert!(error.to_string().contains("A_KEY"));
}

#[test]
fn unknown_key_is_an_error_naming_its_path() {
    let yaml = "server:\n  listen: 127.0.0.1:4000\n  lisen: oops\n";
    let error = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap_err();
    let text = error.to_string();
    assert_eq!(error.problems[0].path, "server.lisen", "{text}");
    assert!(text.contains("unknown field `lisen`"), "{text}");

    let yaml = "models:\n  - name: m\n    provider: p\n    colour: blue\n";
    let error = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap_err();
    assert_eq!(error.problems[0].path, "models[0].colour", "{error}");
    assert!(
        error.to_string().contains("unknown field `colour`"),
        "{error}"
    );

    let error = Config::from_yaml("surprise: 1\n", &Env::from_pairs([("X", "y")])).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `surprise`"),
        "{error}"
    );
}

#[test]
fn wrong_type_names_its_path() {
    let yaml = "server:\n  max_body_bytes: lots\n";
    let error = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap_err();
    assert_eq!(error.problems[0].path, "server.max_body_bytes", "{error}");
}

#[test]
fn validate_lists_every_problem_with_its_path() {
    let yaml = r#"
server:
  listen: not-an-address
tiers:
  odd: { markup: "x", default_power_level: turbo }
providers:
  - { name: dup, kind: openai, api_base: https://a.example/v1 }
  - { name: dup, kind: openai }
models:
  - { name: a, provider: foo, cost_per_1k: cheap }
  - { name: b, provider: dup, input_cost_per_1k: 0.1, output_cost_per_1k: 0.1, fallbacks: [a, nope] }
"#;
    let config = Config::from_yaml(yaml, &Env::from_pairs([("X", "y")])).unwrap();
    let problems: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
    let expect = [
        "server.listen:",
        "tiers.odd.markup:",
        "tiers.odd.default_power_level:",
        "providers[1].name: duplicate provider \"dup\"",
        "providers[1].api_base: is required",
        "models[0].provider: unknown provider \"foo\"",
        "models[0].cost_per_1k: `cheap` is not a decimal number",
        "models[1].fallbacks[1]: unknown model \"nope\"",
    ];
    for prefix in expect {
        assert!(
            problems.iter().any(|p| p.starts_with(prefix)),
            "missing {prefix:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expect.len(), "{problems:#?}");
}

#[test]
fn builtin_default_serves_demo_echo_on_port_4000() {
    let config = Config::builtin(&Env::from_pairs([("X", "y")]));
    assert_eq!(config.server.listen, "127.0.0.1:4000");
    assert_eq!(config.storage.sqlite_path(), Some("llmgate.db"));
    assert_eq!(config.providers.len(), 1);
    assert_eq!(config.providers[0].kind, ProviderKind::Demo);
    let echo = &config.models[0];
    assert_eq!((echo.name.as_str(), echo.upstream()), ("demo/echo", "echo"));
    assert_eq!(echo.quality, Some(0.5));
    assert_eq!(echo.privacy, Some(Privacy::High));
    assert_eq!(config.tiers.len(), 4);
    assert_eq!(config.tiers["starter"].markup.parse().unwrap(), dec("0.4"));
    assert!(config.validate().is_empty());
}

#[test]
fn builtin_default_adds_presets_for_keys_in_the_environment() {
    let env = Env::from_pairs([
        ("OPENAI_API_KEY", "sk-a"),
        ("HUGGINGFACE_API_KEY", "hf-b"),
        ("VLLM_HOST", "http://127.0.0.1:8000"),
    ]);
    let config = Config::builtin(&env);
    let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["demo", "openai", "huggingface", "vllm"]);
    assert_eq!(config.providers[2].kind, ProviderKind::Huggingface);
    assert_eq!(
        config.providers[2].api_base.as_deref(),
        Some("https://router.huggingface.co/v1")
    );
    assert_eq!(
        config.providers[3].api_base.as_deref(),
        Some("http://127.0.0.1:8000/v1")
    );
    assert_eq!(
        config.providers[1].api_key.as_ref().unwrap().expose(),
        "sk-a"
    );
}

#[test]
fn empty_file_means_all_defaults() {
    let config = Config::from_yaml("", &Env::from_pairs([("X", "y")])).unwrap();
    assert_eq!(config.server.max_body_bytes, 4_194_304);
    assert_eq!(config.billing.credits_per_usd.parse().unwrap(), dec("1000"));
    assert!(config.providers.is_empty());
}
