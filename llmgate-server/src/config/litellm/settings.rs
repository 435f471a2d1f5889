//! `litellm_settings`, `router_settings` and `general_settings`: retries, fallbacks, cooldowns,
//! the routing strategy, timeouts, Redis, the database and the master key.

use llmgate_core::Decimal;
use serde_yaml_ng::Value;

use super::emit::{Field, Scalar};
use super::reader::{Notes, Table, scalar_text};
use super::unmapped::{Section, report};

/// Fallbacks of one model, as written.
#[derive(Debug, Clone)]
pub(super) struct Fallback {
    pub(super) model: String,
    pub(super) targets: Vec<String>,
    /// Where they were written, for messages.
    pub(super) path: String,
    /// Tried for a too-long prompt in LiteLLM; on any failure in llmgate.
    pub(super) context_window: bool,
}

/// Everything the settings sections say, ready to be placed.
#[derive(Debug, Default)]
pub(super) struct Settings {
    pub(super) server: Vec<Field>,
    pub(super) storage: Vec<Field>,
    pub(super) routing: Vec<Field>,
    /// In the order to try them: `router_settings`' first, then `litellm_settings`'.
    pub(super) fallbacks: Vec<Fallback>,
    /// `default_fallbacks` or a `"*"` entry, with its path.
    pub(super) default_fallbacks: Vec<(String, String)>,
    /// Milliseconds, with where it came from, for deployments that set no `timeout`.
    pub(super) default_timeout: Option<(u64, String)>,
}

/// Read the three settings sections off `root`.
pub(super) fn read(
    root: &mut Table<'_>,
    local: &dyn Fn(String) -> String,
    notes: &mut Notes,
) -> Settings {
    let mut settings = Settings::default();
    let mut litellm = Table::new("litellm_settings", root.get("litellm_settings"), notes);
    let mut router = Table::new("router_settings", root.get("router_settings"), notes);
    let mut general = Table::new("general_settings", root.get("general_settings"), notes);

    // router_settings wins where both set a value, as the router reads it last.
    let retries = [&mut router, &mut litellm]
        .into_iter()
        .filter_map(|table| Some((table.text("num_retries", notes)?, table.at("num_retries"))))
        .collect::<Vec<_>>();
    overridden(&retries, notes);
    if let Some((value, path)) = retries.first() {
        match value.trim().parse::<u32>() {
            Ok(n) => settings.routing.push(Field::plain("num_retries", n, path)),
            Err(_) => notes.error(path, format!("`{value}` is not a whole number")),
        }
    }
    for table in [&mut router, &mut litellm] {
        for key in ["fallbacks", "context_window_fallbacks"] {
            if let Some(value) = table.get(key) {
                let path = table.at(key);
                fallbacks(
                    value,
                    &path,
                    key == "context_window_fallbacks",
                    &mut settings,
                    notes,
                );
            }
        }
        if let Some(value) = table.get("default_fallbacks") {
            let path = table.at("default_fallbacks");
            for (i, target) in texts(value, &path, notes).into_iter().enumerate() {
                settings
                    .default_fallbacks
                    .push((target, format!("{path}[{i}]")));
            }
        }
    }
    let timeouts = [("timeout", &mut router), ("request_timeout", &mut litellm)]
        .into_iter()
        .filter_map(|(key, table)| Some((table.text(key, notes)?, table.at(key))))
        .collect::<Vec<_>>();
    overridden(&timeouts, notes);
    if let Some((value, path)) = timeouts.first() {
        match seconds_to_ms(value) {
            Ok(ms) => settings.default_timeout = Some((ms, path.clone())),
            Err(message) => notes.error(path, message),
        }
    }
    if let Some(drop) = litellm.text("drop_params", notes)
        && !drop.eq_ignore_ascii_case("true")
    {
        notes.warn(
            litellm.at("drop_params"),
            "not mapped: llmgate never refuses a request for a parameter an upstream does not take; \
             translating adapters leave such parameters out, OpenAI-compatible upstreams get them",
        );
    }

    router_knobs(&mut router, &mut settings, notes);
    redis(&mut router, local, &mut settings, notes);
    general_knobs(&mut general, local, &mut settings, notes);

    for (table, section) in [
        (&litellm, Section::LitellmSettings),
        (&router, Section::RouterSettings),
        (&general, Section::GeneralSettings),
    ] {
        let source = root_value(root, section);
        for (path, key) in table.unread() {
            let value = source
                .and_then(|map| map.get(key.as_str()))
                .unwrap_or(&Value::Null);
            report(section, &path, &key, value, notes);
        }
    }
    settings
}

/// The same knob set in both sections: the first (router_settings') wins, the rest are named.
fn overridden(found: &[(String, String)], notes: &mut Notes) {
    if let Some(((_, winner), rest)) = found.split_first() {
        for (_, path) in rest {
            notes.warn(path, format!("not mapped: {winner} is set too, and wins"));
        }
    }
}

fn root_value<'a>(root: &Table<'a>, section: Section) -> Option<&'a Value> {
    let key = match section {
        Section::LitellmSettings => "litellm_settings",
        Section::RouterSettings => "router_settings",
        _ => "general_settings",
    };
    root.peek(key)
}

fn router_knobs(router: &mut Table<'_>, settings: &mut Settings, notes: &mut Notes) {
    let strategy = router.text("routing_strategy", notes);
    let path = router.at("routing_strategy");
    let (name, note) = match strategy.as_deref().map(str::trim) {
        None => ("weighted", "LiteLLM's default routing, simple-shuffle"),
        Some("simple-shuffle") => ("weighted", "simple-shuffle: a random pick by `weight`"),
        Some("least-busy") => ("least_busy", "least-busy"),
        Some("latency-based-routing") => ("latency", "latency-based-routing"),
        Some("cost-based-routing") => ("cost", "cost-based-routing"),
        Some(usage @ ("usage-based-routing" | "usage-based-routing-v2")) => {
            notes.warn(
                &path,
                format!(
                    "`{usage}` picks the deployment with the most tokens left this minute; llmgate \
                     has no such strategy and uses least_busy (fewest requests in flight), still \
                     skipping deployments at their rpm/tpm limits"
                ),
            );
            ("least_busy", "nearest to usage-based-routing")
        }
        Some(other) => {
            notes.warn(
                &path,
                format!(
                    "unknown routing strategy `{other}`: llmgate uses weighted (LiteLLM's default)"
                ),
            );
            ("weighted", "LiteLLM's default routing, simple-shuffle")
        }
    };
    settings
        .routing
        .insert(0, Field::text("strategy", name, &path).note(note));
    if let Some(value) = router.text("allowed_fails", notes) {
        let path = router.at("allowed_fails");
        match value.trim().parse::<u32>() {
            Ok(n) => settings.routing.push(
                Field::plain("cooldown_after_failures", n.saturating_add(1), &path).note(format!(
                    "allowed_fails {n}: cooled down on the failure after those allowed"
                )),
            ),
            Err(_) => notes.error(path, format!("`{value}` is not a whole number")),
        }
    }
    if let Some(value) = router.text("cooldown_time", notes) {
        let path = router.at("cooldown_time");
        match seconds_to_ms(&value) {
            Ok(ms) => settings.routing.push(
                Field::plain("cooldown_ms", ms, &path).note(format!("cooldown_time {value} s")),
            ),
            Err(message) => notes.error(path, message),
        }
    }
}

fn redis(
    router: &mut Table<'_>,
    local: &dyn Fn(String) -> String,
    settings: &mut Settings,
    notes: &mut Notes,
) {
    if let Some(url) = router.text("redis_url", notes) {
        settings
            .storage
            .push(Field::text("redis_url", local(url), router.at("redis_url")));
        for key in ["redis_host", "redis_port", "redis_password"] {
            if router.get(key).is_some() {
                notes.warn(router.at(key), "not mapped: redis_url is given and wins");
            }
        }
        return;
    }
    let host = router.text("redis_host", notes);
    let port = router.text("redis_port", notes);
    let password = router.text("redis_password", notes);
    let Some(host) = host else {
        for key in ["redis_port", "redis_password"] {
            if router.get(key).is_some() {
                notes.warn(router.at(key), "not mapped: no redis_host is given");
            }
        }
        return;
    };
    // Inside a URL a whole-value `os.environ/NAME` becomes `${NAME}`, which llmgate also reads.
    let part = |text: String| {
        let text = local(text);
        match text.trim().strip_prefix("os.environ/") {
            Some(name) => format!("${{{}}}", name.trim()),
            None => text,
        }
    };
    let auth = password
        .map(|p| format!(":{}@", part(p)))
        .unwrap_or_default();
    let port = port.map_or_else(|| "6379".to_owned(), part);
    let url = format!("redis://{auth}{}:{port}", part(host));
    settings.storage.push(
        Field::text("redis_url", url, router.at("redis_host"))
            .note("router_settings.redis_host, redis_port and redis_password"),
    );
}

fn general_knobs(
    general: &mut Table<'_>,
    local: &dyn Fn(String) -> String,
    settings: &mut Settings,
    notes: &mut Notes,
) {
    match general.text("master_key", notes) {
        Some(key) => settings.server.push(Field::text(
            "master_key",
            local(key),
            general.at("master_key"),
        )),
        None => notes.warn(
            general.at("master_key"),
            "not set: LiteLLM then lets anyone in; llmgate always needs a key and takes \
             $LLMGATE_MASTER_KEY, or generates one and prints it at first start",
        ),
    }
    if let Some(url) = general.text("database_url", notes) {
        let path = general.at("database_url");
        settings.storage.push(Field::text("database_url", local(url), &path).note(
            "llmgate keeps its own tables there; LiteLLM's keys, users and spend are not carried over",
        ));
    }
}

/// `fallbacks: [{model: [a, b]}, ...]` (or one mapping).
fn fallbacks(
    value: &Value,
    path: &str,
    context_window: bool,
    settings: &mut Settings,
    notes: &mut Notes,
) {
    let groups: Vec<(String, &Value)> = match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect(),
        other => vec![(path.to_owned(), other)],
    };
    for (group_path, group) in groups {
        let Value::Mapping(map) = group else {
            notes.error(
                group_path,
                "must map a model_name to the models it falls back to",
            );
            continue;
        };
        for (key, targets) in map {
            let Some(model) = scalar_text(key) else {
                notes.error(&group_path, "a fallback's key must be a model_name");
                continue;
            };
            let entry_path = format!("{group_path}.{model}");
            let targets = texts(targets, &entry_path, notes);
            if model == "*" {
                for (i, target) in targets.into_iter().enumerate() {
                    settings
                        .default_fallbacks
                        .push((target, format!("{entry_path}[{i}]")));
                }
                continue;
            }
            settings.fallbacks.push(Fallback {
                model,
                targets,
                path: entry_path,
                context_window,
            });
        }
    }
}

fn texts(value: &Value, path: &str, notes: &mut Notes) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                let text = scalar_text(item);
                if text.is_none() {
                    notes.error(format!("{path}[{i}]"), "must be a model_name");
                }
                text
            })
            .collect(),
        other => match scalar_text(other) {
            Some(text) => vec![text],
            None => {
                notes.error(path, "must be a list of model_names");
                Vec::new()
            }
        },
    }
}

/// Seconds (possibly fractional) as whole milliseconds, rounded up so a timeout never shrinks.
pub(super) fn seconds_to_ms(text: &str) -> Result<u64, String> {
    let seconds = text
        .trim()
        .parse::<Decimal>()
        .or_else(|_| Decimal::from_scientific(text.trim()))
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds <= Decimal::ZERO {
        return Err(format!("must be greater than 0, got {seconds}"));
    }
    let ms = (seconds * Decimal::from(1000)).ceil();
    u64::try_from(ms).map_err(|_| format!("`{text}` seconds is too long"))
}

/// The fields `routing:` gets for default fallbacks.
pub(super) fn default_fallbacks_field(list: &[(String, String)]) -> Option<Field> {
    let (_, first) = list.first()?;
    let mut names: Vec<String> = Vec::new();
    for (name, _) in list {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Some(Field::new("default_fallbacks", Scalar::List(names), first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_become_whole_milliseconds_rounded_up() {
        assert_eq!(seconds_to_ms("600"), Ok(600_000));
        assert_eq!(seconds_to_ms("0.5"), Ok(500));
        assert_eq!(seconds_to_ms("0.0001"), Ok(1));
        assert!(seconds_to_ms("0").is_err());
        assert!(seconds_to_ms("soon").is_err());
    }
}
