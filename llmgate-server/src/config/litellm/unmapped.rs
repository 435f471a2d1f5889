//! What to say about a LiteLLM key that llmgate has no place for: a warning naming why, or an
//! error when leaving it out would change what clients get (a guardrail that edits requests, a
//! route restriction, an alias clients call, a different auth scheme).

use serde_yaml_ng::Value;

use super::reader::{Notes, scalar_text};

/// The part of the file a key sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Section {
    Root,
    Entry,
    LitellmParams,
    ModelInfo,
    LitellmSettings,
    RouterSettings,
    GeneralSettings,
}

/// Callbacks that only observe (log, trace, alert): leaving them out loses telemetry, not
/// behaviour. Any other callback may edit or block requests.
const OBSERVERS: &[&str] = &[
    "langfuse",
    "langfuse_otel",
    "langsmith",
    "lunary",
    "helicone",
    "otel",
    "opentelemetry",
    "arize",
    "arize_phoenix",
    "braintrust",
    "datadog",
    "datadog_llm_observability",
    "prometheus",
    "sentry",
    "s3",
    "s3_v2",
    "gcs_bucket",
    "gcs_pubsub",
    "azure_storage",
    "dynamodb",
    "supabase",
    "posthog",
    "mlflow",
    "athina",
    "opik",
    "logfire",
    "openmeter",
    "galileo",
    "greenscale",
    "literalai",
    "traceloop",
    "weave",
    "wandb",
    "humanloop",
    "deepeval",
    "argilla",
    "generic_api",
    "custom_callback_api",
    "slack",
    "email",
    "webhook",
    "sqs",
    "cloudzero",
    "agentops",
    "levo",
    "newrelic",
];

/// Report one key nobody read.
pub(super) fn report(section: Section, path: &str, key: &str, value: &Value, notes: &mut Notes) {
    if let Some(message) = fatal(section, key, value) {
        notes.error(path, message);
        return;
    }
    notes.warn(path, format!("not mapped: {}", why(section, key)));
}

/// Why leaving the key out changes what clients get, if it does.
fn fatal(section: Section, key: &str, value: &Value) -> Option<String> {
    use Section::*;
    let message = match (section, key) {
        (Root, "guardrails") | (LitellmSettings, "guardrails") => {
            "guardrails check or rewrite requests and answers; llmgate has none, so clients would \
             get unchecked answers. Remove them to migrate without them"
                .to_owned()
        }
        (Root, "include") => {
            "included files hold more of the config (often models); merge them into this file first"
                .to_owned()
        }
        (LitellmSettings, "callbacks") => {
            let names: Vec<String> = list_texts(value);
            let active: Vec<&String> = names
                .iter()
                .filter(|name| !OBSERVERS.contains(&name.as_str()))
                .collect();
            if active.is_empty() {
                return None;
            }
            format!(
                "callbacks {active:?} may edit or refuse requests (redaction, guardrails, custom \
                 handlers) and llmgate cannot run them, so clients would get answers they did not \
                 get before. Remove them to migrate without them"
            )
        }
        (RouterSettings, "model_group_alias") => {
            "clients call these aliases and would get 404 model_not_found: add a model_list entry \
             per alias instead"
                .to_owned()
        }
        (GeneralSettings, "allowed_routes") | (GeneralSettings, "public_routes") => format!(
            "`{key}` changes which endpoints answer whom; llmgate's routes and auth are fixed, so \
             clients would be let in or kept out differently. Remove it to accept llmgate's"
        ),
        (GeneralSettings, "custom_auth")
        | (GeneralSettings, "enable_jwt_auth")
        | (GeneralSettings, "litellm_jwtauth") => format!(
            "`{key}` changes how clients authenticate; llmgate takes its own API keys only, so \
             these clients would get 401"
        ),
        (ModelInfo, "mode") => return None,
        _ => return None,
    };
    Some(message)
}

/// A reason for the common keys; a general one for the rest.
fn why(section: Section, key: &str) -> String {
    use Section::*;
    let reason = match (section, key) {
        (_, "success_callback" | "failure_callback" | "callbacks" | "service_callback") => {
            "logging callbacks; llmgate keeps its own usage records and request log and exports \
             OpenTelemetry traces"
        }
        (_, "set_verbose" | "json_logs" | "debug" | "detailed_debug") => {
            "logging switch; use RUST_LOG and `llmgate --log-json`"
        }
        (_, "cache" | "cache_params" | "cache_responses") => "llmgate does not cache responses",
        (
            _,
            "turn_off_message_logging"
            | "redact_messages_in_exceptions"
            | "redact_user_api_key_info",
        ) => "llmgate never logs prompts or answers",
        (
            _,
            "max_budget" | "budget_duration" | "max_end_user_budget" | "max_internal_user_budget",
        ) => "budgets are llmgate's credits and key budgets, set through its API",
        (_, "alerting" | "alerting_threshold" | "alert_types" | "alert_to_webhook_url") => {
            "llmgate's alert is `billing.low_credit_alert`"
        }
        (_, "store_model_in_db") => "llmgate reads its models from this file only",
        (LitellmParams, "stream_timeout") => {
            "llmgate has one timeout per provider (`timeout_ms`), taken from `timeout`"
        }
        (LitellmParams, "max_retries") => "llmgate retries by `routing.num_retries`",
        (LitellmParams, "api_version") => "only Azure uses it, and llmgate has no Azure provider",
        (LitellmParams, "input_cost_per_second" | "output_cost_per_second") => {
            "llmgate prices per token only"
        }
        (LitellmParams, _) => {
            "llmgate does not add default request parameters to a deployment's calls"
        }
        (ModelInfo, _) => "catalog information llmgate does not use",
        (RouterSettings, "enable_pre_call_checks") => {
            "llmgate always skips deployments whose context window the prompt exceeds"
        }
        (RouterSettings, "routing_strategy_args" | "retry_policy" | "allowed_fails_policy") => {
            "llmgate's routing has no such knob"
        }
        (RouterSettings, "retry_after") => "llmgate backs off by `routing.backoff_base_ms`",
        (GeneralSettings, "database_connection_pool_limit" | "database_connection_timeout") => {
            "llmgate sizes its own pool"
        }
        (Root, "environment_variables") => "read, not kept",
        _ => "llmgate has no equivalent",
    };
    reason.to_owned()
}

fn list_texts(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().filter_map(scalar_text).collect(),
        other => scalar_text(other).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(section: Section, key: &str, yaml: &str) -> (bool, String) {
        let value: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut notes = Notes::default();
        report(section, "p", key, &value, &mut notes);
        let notice = notes.list.remove(0);
        (notice.fatal, notice.message)
    }

    #[test]
    fn observing_callbacks_warn_and_editing_ones_refuse() {
        let (fatal, message) = one(Section::LitellmSettings, "callbacks", "[langfuse, otel]");
        assert!(!fatal, "{message}");
        let (fatal, message) = one(Section::LitellmSettings, "callbacks", "[otel, presidio]");
        assert!(fatal);
        assert!(
            message.contains("presidio") && !message.contains("otel"),
            "{message}"
        );
        let (fatal, _) = one(
            Section::LitellmSettings,
            "success_callback",
            "[my_module.handler]",
        );
        assert!(!fatal, "success callbacks only observe");
    }

    #[test]
    fn route_and_auth_changes_refuse_and_the_rest_warn_with_a_reason() {
        assert!(
            one(
                Section::GeneralSettings,
                "allowed_routes",
                "[/chat/completions]"
            )
            .0
        );
        assert!(one(Section::GeneralSettings, "enable_jwt_auth", "true").0);
        assert!(one(Section::RouterSettings, "model_group_alias", "{a: b}").0);
        assert!(one(Section::Root, "guardrails", "[]").0);
        let (fatal, message) = one(Section::LitellmParams, "stream_timeout", "60");
        assert!(!fatal);
        assert!(
            message.starts_with("not mapped: llmgate has one timeout"),
            "{message}"
        );
        assert_eq!(
            one(Section::GeneralSettings, "something_new", "1").1,
            "not mapped: llmgate has no equivalent"
        );
    }
}
