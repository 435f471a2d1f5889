//! Every check a parsed config must pass, each problem reported with its YAML path.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use base64::Engine;
use llmgate_core::{catalog::ModelMode, power::PowerLevel, pricing::Decimal};
use llmgate_providers::{preset, presets};

use super::model::{Config, ConfigError, Problem};
use super::providers::{ModelConfig, ProviderConfig, ProviderKind};
use super::responses::ResponsesConfig;
use super::values::DecimalText;

impl Config {
    /// Every problem of this config, each with its YAML path; empty when it is valid.
    pub fn validate(&self) -> Vec<Problem> {
        problems(self)
    }

    /// [`Config::validate`] as a `Result`.
    pub fn check(&self) -> Result<(), ConfigError> {
        let problems = self.validate();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                source_name: None,
                problems,
            })
        }
    }
}

/// Collects problems as the checks walk the config.
#[derive(Default)]
struct Report {
    problems: Vec<Problem>,
}

impl Report {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    /// A decimal that must parse and be at least zero (or above zero when `positive`).
    fn decimal(&mut self, path: &str, value: &DecimalText, positive: bool) -> Option<Decimal> {
        match value.parse() {
            Ok(n) if positive && n <= Decimal::ZERO => {
                self.push(path, format!("must be greater than 0, got {n}"));
                None
            }
            Ok(n) if n < Decimal::ZERO => {
                self.push(path, format!("must not be negative, got {n}"));
                None
            }
            Ok(n) => Some(n),
            Err(message) => {
                self.push(path, message);
                None
            }
        }
    }

    fn http_url(&mut self, path: &str, url: &str) {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        match rest {
            Some(host) if !host.is_empty() && !host.starts_with('/') => {}
            _ => self.push(path, format!("`{url}` is not an http(s) URL")),
        }
    }

    fn unit_interval(&mut self, path: &str, value: f64) {
        if !(0.0..=1.0).contains(&value) {
            self.push(path, format!("must be between 0 and 1, got {value}"));
        }
    }
}

pub(super) fn problems(config: &Config) -> Vec<Problem> {
    let mut report = Report::default();
    server(config, &mut report);
    billing(config, &mut report);
    responses(config, &mut report);
    tiers(config, &mut report);
    power_levels(config, &mut report);
    providers(config, &mut report);
    models(config, &mut report);
    routing(config, &mut report);
    telemetry(config, &mut report);
    report.problems
}

fn telemetry(config: &Config, report: &mut Report) {
    let telemetry = &config.telemetry;
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        report.http_url("telemetry.otlp_endpoint", endpoint);
        if endpoint.contains(['?', '#']) {
            report.push(
                "telemetry.otlp_endpoint",
                "must be the collector's base URL, without a query or fragment",
            );
        }
    }
    if telemetry.service_name.trim().is_empty() {
        report.push("telemetry.service_name", "must not be empty");
    }
    report.unit_interval("telemetry.sample_ratio", telemetry.sample_ratio);
    for (path, value) in [
        (
            "telemetry.max_queued_spans",
            telemetry.max_queued_spans as u64,
        ),
        (
            "telemetry.max_export_batch",
            telemetry.max_export_batch as u64,
        ),
        ("telemetry.export_timeout_ms", telemetry.export_timeout_ms),
    ] {
        if value == 0 {
            report.push(path, "must be greater than 0");
        }
    }
}

fn server(config: &Config, report: &mut Report) {
    let server = &config.server;
    if server.listen.parse::<SocketAddr>().is_err() {
        report.push(
            "server.listen",
            format!("`{}` is not an IP:PORT address", server.listen),
        );
    }
    if server.max_body_bytes == 0 {
        report.push("server.max_body_bytes", "must be greater than 0");
    }
    for (path, value) in [
        (
            "server.header_read_timeout_ms",
            server.header_read_timeout_ms,
        ),
        ("server.idle_timeout_ms", server.idle_timeout_ms),
        ("server.body_read_timeout_ms", server.body_read_timeout_ms),
        ("server.max_connections", server.max_connections as u64),
    ] {
        if value == 0 {
            report.push(path, "must be greater than 0");
        }
    }
    if let Some(metrics) = &server.metrics_listen {
        let same_as_api = |addr: &SocketAddr| {
            addr.port() != 0 && server.listen.parse::<SocketAddr>().ok() == Some(*addr)
        };
        match metrics.parse::<SocketAddr>() {
            Err(_) => report.push(
                "server.metrics_listen",
                format!("`{metrics}` is not an IP:PORT address"),
            ),
            Ok(addr) if same_as_api(&addr) => report.push(
                "server.metrics_listen",
                "must differ from server.listen (leave it out to serve /metrics there)",
            ),
            Ok(_) => {}
        }
    }
    if let Some(key) = &server.master_key
        && key.expose().trim().len() < 16
    {
        report.push("server.master_key", "must be at least 16 characters long");
    }
    let storage = &config.storage;
    if !storage.is_known_backend() {
        report.push(
            "storage.database_url",
            "must start with sqlite:, postgres:// or postgresql://",
        );
    }
    if let Some(url) = &storage.redis_url
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        report.push("storage.redis_url", "must start with redis:// or rediss://");
    }
    if storage.redis_prefix.is_empty() || storage.redis_prefix.contains(char::is_whitespace) {
        report.push(
            "storage.redis_prefix",
            "must be non-empty and contain no spaces",
        );
    }
    for (path, secs) in [
        ("storage.hold_ttl_secs", storage.hold_ttl_secs),
        ("storage.reclaim_every_secs", storage.reclaim_every_secs),
    ] {
        if secs == 0 {
            report.push(path, "must be at least 1");
        }
    }
    if storage.lease_idle_ms == 0 {
        report.push("storage.lease_idle_ms", "must be at least 1");
    }
    // A replica beats every reclaim tick: its peers must not take a beat or two missed for a
    // stop.
    if storage.replica_timeout_secs < storage.reclaim_every_secs.saturating_mul(3) {
        report.push(
            "storage.replica_timeout_secs",
            "must be at least three times storage.reclaim_every_secs",
        );
    }
    if let Some(key) = &config.byok.encryption_key {
        let decoded = base64::engine::general_purpose::STANDARD.decode(key.expose().trim());
        if !matches!(decoded, Ok(bytes) if bytes.len() == 32) {
            report.push(
                "byok.encryption_key",
                "must be the base64 of exactly 32 bytes",
            );
        }
    }
    for (i, key) in config.byok.previous_keys.iter().enumerate() {
        if llmgate_credits::VaultKey::from_base64(key).is_err() {
            report.push(
                format!("byok.previous_keys[{i}]"),
                "must be the base64 of exactly 32 bytes",
            );
        }
    }
    if config.byok.encryption_key.is_none() && !config.byok.previous_keys.is_empty() {
        report.push(
            "byok.encryption_key",
            "is required when byok.previous_keys is set (it seals new keys)",
        );
    }
}

fn responses(config: &Config, report: &mut Report) {
    let responses = &config.responses;
    if responses.retention_days > ResponsesConfig::MAX_RETENTION_DAYS {
        report.push(
            "responses.retention_days",
            format!(
                "must be at most {} (use 0 to keep stored responses until deleted)",
                ResponsesConfig::MAX_RETENTION_DAYS
            ),
        );
    }
    if responses.prune_every_secs == 0 {
        report.push("responses.prune_every_secs", "must be at least 1");
    }
}

fn billing(config: &Config, report: &mut Report) {
    let billing = &config.billing;
    report.decimal("billing.credits_per_usd", &billing.credits_per_usd, true);
    let mut seen = HashSet::new();
    for (i, package) in billing.packages.iter().enumerate() {
        let path = format!("billing.packages[{i}]");
        if package.id.trim().is_empty() {
            report.push(format!("{path}.id"), "must not be empty");
        } else if !seen.insert(package.id.as_str()) {
            report.push(
                format!("{path}.id"),
                format!("duplicate package \"{}\"", package.id),
            );
        }
    }
    // Credits must fit micro-credits and prices whole cents (what Stripe charges).
    if let Err(problems) = billing.typed_packages() {
        for (path, message) in problems {
            report.push(path, message);
        }
    }
    if let Some(stripe) = &billing.stripe {
        report.http_url("billing.stripe.api_base", &stripe.api_base);
        report.http_url("billing.stripe.success_url", &stripe.success_url);
        report.http_url("billing.stripe.cancel_url", &stripe.cancel_url);
        for (field, secret) in [
            ("secret_key", &stripe.secret_key),
            ("webhook_secret", &stripe.webhook_secret),
        ] {
            if secret.expose().trim().is_empty() {
                report.push(format!("billing.stripe.{field}"), "must not be empty");
            }
        }
    }
    if let Some(alert) = &billing.low_credit_alert {
        if let Some(threshold) = report.decimal(
            "billing.low_credit_alert.threshold_credits",
            &alert.threshold_credits,
            false,
        ) && !threshold.is_zero()
            && let Err(message) = super::billing::package_micros(threshold)
        {
            report.push("billing.low_credit_alert.threshold_credits", message);
        }
        report.http_url("billing.low_credit_alert.webhook_url", &alert.webhook_url);
    }
}

fn tiers(config: &Config, report: &mut Report) {
    for (name, tier) in &config.tiers {
        let path = format!("tiers.{name}");
        report.decimal(&format!("{path}.markup"), &tier.markup, false);
        if let Some(monthly) = &tier.monthly_credits {
            report.decimal(&format!("{path}.monthly_credits"), monthly, false);
        }
        if let Err(message) = tier.default_power_level.parse::<PowerLevel>() {
            report.push(format!("{path}.default_power_level"), message);
        }
        if tier.rpm == Some(0) {
            report.push(format!("{path}.rpm"), "must be greater than 0");
        }
    }
}

fn power_levels(config: &Config, report: &mut Report) {
    for level in PowerLevel::ALL {
        let Some(policy) = config.power_levels.get(level) else {
            continue;
        };
        let path = format!("power_levels.{level}");
        if let Some(multiplier) = &policy.cost_multiplier {
            report.decimal(&format!("{path}.cost_multiplier"), multiplier, false);
        }
        if policy.max_tokens == Some(0) {
            report.push(format!("{path}.max_tokens"), "must be greater than 0");
        }
        if let Some(threshold) = policy.quality_threshold {
            report.unit_interval(&format!("{path}.quality_threshold"), threshold);
        }
    }
}

fn providers(config: &Config, report: &mut Report) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, provider) in config.providers.iter().enumerate() {
        let path = format!("providers[{i}]");
        let name = provider.name.as_str();
        if name.trim().is_empty() {
            report.push(format!("{path}.name"), "must not be empty");
        } else if name.contains('/') || name.chars().any(char::is_whitespace) {
            report.push(
                format!("{path}.name"),
                format!("\"{name}\" must not contain `/` or spaces"),
            );
        } else if let Some(first) = seen.insert(name, i) {
            report.push(
                format!("{path}.name"),
                format!("duplicate provider \"{name}\" (first at providers[{first}])"),
            );
        }
        preset_and_base(provider, &path, report);
        if provider.timeout_ms == 0 {
            report.push(format!("{path}.timeout_ms"), "must be greater than 0");
        }
    }
}

/// A `preset:` must name a well-known provider of the same family; `api_base` may be left out
/// only when a preset (by `preset:` or by name) or the family supplies one.
fn preset_and_base(provider: &ProviderConfig, path: &str, report: &mut Report) {
    let spec = provider.spec();
    if let Some(name) = &provider.preset
        && spec.matching_preset().is_none()
    {
        let message = match preset(name) {
            Some(found) => format!(
                "preset \"{name}\" speaks kind {}, not {}",
                ProviderKind::of_family(found.family).as_str(),
                provider.kind.as_str()
            ),
            None => format!("unknown preset \"{name}\" (known: {})", preset_names()),
        };
        report.push(format!("{path}.preset"), message);
        return;
    }
    match &provider.api_base {
        Some(base) => report.http_url(&format!("{path}.api_base"), base),
        None if provider.kind != ProviderKind::Demo && spec.resolved_api_base().is_none() => {
            report.push(
                format!("{path}.api_base"),
                format!(
                    "is required for kind {}: \"{}\" is not a preset name (known: {})",
                    provider.kind.as_str(),
                    provider.name,
                    preset_names()
                ),
            );
        }
        None => {}
    }
}

fn preset_names() -> String {
    let names: Vec<&str> = presets().iter().map(|p| p.name).collect();
    names.join(", ")
}

fn models(config: &Config, report: &mut Report) {
    let providers: HashSet<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
    let names: HashSet<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    for (i, model) in config.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if model.name.trim().is_empty() {
            report.push(format!("{path}.name"), "must not be empty");
        }
        if !providers.contains(model.provider.as_str()) {
            report.push(
                format!("{path}.provider"),
                format!("unknown provider \"{}\"", model.provider),
            );
        }
        if model.upstream().trim().is_empty() {
            report.push(format!("{path}.upstream_model"), "must not be empty");
        }
        prices(model, &path, report);
        embedding_mode(config, model, &path, report);
        if let Some(quality) = model.quality {
            report.unit_interval(&format!("{path}.quality"), quality);
        }
        if model.context_window == Some(0) {
            report.push(format!("{path}.context_window"), "must be greater than 0");
        }
        if model.max_output_tokens == Some(0) {
            report.push(
                format!("{path}.max_output_tokens"),
                "must be greater than 0",
            );
        }
        if model.rpm == Some(0) {
            report.push(format!("{path}.rpm"), "must be greater than 0");
        }
        if model.tpm == Some(0) {
            report.push(format!("{path}.tpm"), "must be greater than 0");
        }
        for (j, fallback) in model.fallbacks.iter().enumerate() {
            if !names.contains(fallback.as_str()) {
                report.push(
                    format!("{path}.fallbacks[{j}]"),
                    format!("unknown model \"{fallback}\""),
                );
            } else if *fallback == model.name {
                report.push(
                    format!("{path}.fallbacks[{j}]"),
                    "a model cannot fall back to itself",
                );
            }
        }
    }
}

fn routing(config: &Config, report: &mut Report) {
    let routing = &config.routing;
    if routing.max_attempts == 0 {
        report.push("routing.max_attempts", "must be greater than 0");
    }
    if routing.backoff_max_ms < routing.backoff_base_ms {
        report.push(
            "routing.backoff_max_ms",
            format!(
                "must be at least routing.backoff_base_ms ({})",
                routing.backoff_base_ms
            ),
        );
    }
    let names: HashSet<&str> = config.models.iter().map(|m| m.name.as_str()).collect();
    let mut seen = HashSet::new();
    for (i, fallback) in routing.default_fallbacks.iter().enumerate() {
        let path = format!("routing.default_fallbacks[{i}]");
        if !names.contains(fallback.as_str()) {
            report.push(path, format!("unknown model \"{fallback}\""));
        } else if !seen.insert(fallback.as_str()) {
            report.push(path, format!("\"{fallback}\" is listed twice"));
        }
    }
}

/// An embedding model needs a provider with embeddings; `max_inputs` is for embedding models.
fn embedding_mode(config: &Config, model: &ModelConfig, path: &str, report: &mut Report) {
    let kind = config
        .providers
        .iter()
        .find(|p| p.name == model.provider)
        .map(|p| p.kind);
    if model.mode == ModelMode::Embedding
        && matches!(kind, Some(ProviderKind::Anthropic | ProviderKind::Demo))
    {
        report.push(
            format!("{path}.mode"),
            format!("provider \"{}\" has no embeddings endpoint", model.provider),
        );
    }
    match model.max_inputs {
        Some(0) => report.push(format!("{path}.max_inputs"), "must be greater than 0"),
        Some(_) if model.mode != ModelMode::Embedding => report.push(
            format!("{path}.max_inputs"),
            "applies to embedding models only (mode: embedding)",
        ),
        _ => {}
    }
}

fn prices(model: &ModelConfig, path: &str, report: &mut Report) {
    if model.cost_per_1k.is_some()
        && (model.input_cost_per_1k.is_some() || model.output_cost_per_1k.is_some())
    {
        report.push(
            format!("{path}.cost_per_1k"),
            "give either cost_per_1k or input_cost_per_1k/output_cost_per_1k, not both",
        );
    }
    let fields = [
        ("input_cost_per_1k", &model.input_cost_per_1k),
        ("output_cost_per_1k", &model.output_cost_per_1k),
        ("cost_per_1k", &model.cost_per_1k),
        ("cache_read_cost_per_1k", &model.cache_read_cost_per_1k),
        ("cache_write_cost_per_1k", &model.cache_write_cost_per_1k),
    ];
    let mut nonzero = false;
    for (field, value) in fields {
        if let Some(value) = value
            && let Some(n) = report.decimal(&format!("{path}.{field}"), value, false)
        {
            nonzero |= !n.is_zero();
        }
    }
    match model.prices() {
        // An embedding model has no output price: the input price alone prices it.
        (Some(_), None) if model.mode == ModelMode::Embedding => {}
        (Some(_), None) => report.push(
            format!("{path}.output_cost_per_1k"),
            "is required when input_cost_per_1k is given",
        ),
        (None, Some(_)) => report.push(
            format!("{path}.input_cost_per_1k"),
            "is required when output_cost_per_1k is given",
        ),
        (None, None) => {
            for (field, value) in [
                ("cache_read_cost_per_1k", &model.cache_read_cost_per_1k),
                ("cache_write_cost_per_1k", &model.cache_write_cost_per_1k),
            ] {
                if value.is_some() {
                    report.push(
                        format!("{path}.{field}"),
                        "needs the model's input and output prices too",
                    );
                }
            }
        }
        _ => {}
    }
    if model.free && nonzero {
        report.push(format!("{path}.free"), "a free model cannot have a price");
    }
}
