//! `litellm_settings`, `router_settings` and `general_settings`: retries, cooldowns, the routing
//! strategy, timeouts, Redis, the database and the master key (fallbacks are read by
//! [`super::fallbacks`]).

use serde_yaml_ng::Value;

use super::emit::Field;
use super::fallbacks::{self, Fallbacks};
use super::reader::{Notes, Table, seconds_to_ms};
use super::unmapped::{Section, report};

/// Everything the settings sections say, ready to be placed.
#[derive(Debug, Default)]
pub(super) struct Settings {
    pub(super) server: Vec<Field>,
    pub(super) storage: Vec<Field>,
    pub(super) routing: Vec<Field>,
    /// In the order to try them: `router_settings`' first, then `litellm_settings`'.
    pub(super) fallbacks: Fallbacks,
    /// Whether the strategy is LiteLLM's simple-shuffle (llmgate's weighted).
    pub(super) shuffle: bool,
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
                fallbacks::read(
                    value,
                    &path,
                    key == "context_window_fallbacks",
                    &mut settings.fallbacks,
                    notes,
                );
            }
        }
        if let Some(value) = table.get("default_fallbacks") {
            let path = table.at("default_fallbacks");
            for (i, target) in fallbacks::texts(value, &path, notes)
                .into_iter()
                .enumerate()
            {
                settings
                    .fallbacks
                    .default
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
    settings.shuffle = name == "weighted";
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
