//! Which endpoint a request is for: a plain match on (method, path).
//!
//! Add an endpoint by adding a variant, a path arm here, a dispatch arm in `service.rs`, an
//! entry in [`ROUTES`] and its section in docs/http-api.md (`route_table.rs` checks they agree).
//!
//! Contract: docs/http-api.md, one `### METHOD PATH` section per entry of `ROUTES`.

use http::Method;
use llmgate_core::Error;

/// The endpoints this server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    /// `api/embeddings.rs`.
    Embeddings,
    /// Anthropic's Messages API (`api/messages/`).
    Messages,
    MessagesCountTokens,
    /// OpenAI's Responses API (`api/responses/`).
    Responses,
    /// Stored responses of OpenAI's Responses API, by id (`api/stored_responses.rs`).
    GetResponse(String),
    DeleteResponse(String),
    ListResponseInputItems(String),
    ListModels,
    /// Balances, the ledger, usage, packages and purchases (`api/credits.rs`, `api/usage.rs`,
    /// `api/billing.rs`).
    Credits,
    CreditsAdd,
    CreditsTransactions,
    CreditsPackages,
    CreditsPurchase,
    Usage,
    /// The request log (`api/requests.rs`).
    ListRequests,
    GetRequest(String),
    /// Stripe's signed webhook: no API key.
    StripeWebhook,
    Health,
    Ready,
    /// Prometheus metrics (no auth: bind it privately, or move it to `server.metrics_listen`).
    Metrics,
    /// The admin API (`api/admin.rs`).
    AdminListTiers,
    AdminListUsers,
    AdminCreateUser,
    AdminGetUser(String),
    AdminUpdateUser(String),
    AdminListKeys(String),
    AdminIssueKey(String),
    AdminRevokeKey {
        user_id: String,
        key_id: String,
    },
    /// API keys as governance (`api/keys.rs`).
    ListKeys,
    CreateKey,
    UpdateKey(String),
    RevokeKey(String),
    /// Teams (`api/teams.rs`).
    AdminListTeams,
    AdminCreateTeam,
    AdminAddTeamMember(String),
    AdminRemoveTeamMember {
        team_id: String,
        user_id: String,
    },
    /// BYOK (`api/provider_keys.rs`).
    ListProviders,
    PutProviderKey(String),
    DeleteProviderKey(String),
    /// The LLM Hub's page and files (`/ui`, `/ui/...`).
    Ui,
}

/// A documented `(method, path)`: `("GET", "/api/v1/admin/users/{id}")`.
pub(crate) type Route = (&'static str, &'static str);

/// Every endpoint as docs/http-api.md lists it: one `### METHOD PATH` heading per entry, path
/// parameters written `{name}`. Aliases (another path or method for the same endpoint) are in
/// [`ALIASES`], not here. [`route`] matches paths itself; this table is what the tests in
/// `route_table.rs` hold it and the document to.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "read by the route table's tests only")
)]
pub(crate) const ROUTES: &[Route] = &[
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages/count_tokens"),
    ("POST", "/v1/responses"),
    ("GET", "/v1/responses/{id}"),
    ("DELETE", "/v1/responses/{id}"),
    ("GET", "/v1/responses/{id}/input_items"),
    ("GET", "/v1/models"),
    ("GET", "/api/v1/llm/credits"),
    ("POST", "/api/v1/llm/credits/add"),
    ("GET", "/api/v1/llm/credits/transactions"),
    ("GET", "/api/v1/llm/usage"),
    ("GET", "/api/v1/llm/requests"),
    ("GET", "/api/v1/llm/requests/{id}"),
    ("GET", "/api/v1/llm/credits/packages"),
    ("POST", "/api/v1/llm/credits/purchase"),
    ("POST", "/api/v1/billing/stripe/webhook"),
    ("GET", "/api/v1/llm/providers"),
    ("PUT", "/api/v1/llm/providers/{name}/key"),
    ("DELETE", "/api/v1/llm/providers/{name}/key"),
    ("GET", "/api/v1/admin/tiers"),
    ("GET", "/api/v1/admin/users"),
    ("POST", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{id}"),
    ("PATCH", "/api/v1/admin/users/{id}"),
    ("GET", "/api/v1/admin/users/{id}/keys"),
    ("POST", "/api/v1/admin/users/{id}/keys"),
    ("DELETE", "/api/v1/admin/users/{id}/keys/{key_id}"),
    ("GET", "/api/v1/keys"),
    ("POST", "/api/v1/keys"),
    ("PATCH", "/api/v1/keys/{key_id}"),
    ("DELETE", "/api/v1/keys/{key_id}"),
    ("GET", "/api/v1/admin/teams"),
    ("POST", "/api/v1/admin/teams"),
    ("POST", "/api/v1/admin/teams/{team_id}/members"),
    ("DELETE", "/api/v1/admin/teams/{team_id}/members/{user_id}"),
    ("GET", "/health"),
    ("GET", "/health/ready"),
    ("GET", "/metrics"),
    ("GET", "/ui"),
];

/// Other ways to reach an entry of [`ROUTES`]: `(alias method, alias path)` then the entry.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "read by the route table's tests only")
)]
pub(crate) const ALIASES: &[(Route, Route)] = &[
    (
        ("POST", "/api/v1/llm/chat/completions"),
        ("POST", "/v1/chat/completions"),
    ),
    (
        ("POST", "/api/v1/llm/embeddings"),
        ("POST", "/v1/embeddings"),
    ),
    (("POST", "/anthropic/v1/messages"), ("POST", "/v1/messages")),
    (
        ("POST", "/anthropic/v1/messages/count_tokens"),
        ("POST", "/v1/messages/count_tokens"),
    ),
    (("GET", "/api/v1/llm/models"), ("GET", "/v1/models")),
    (("HEAD", "/ui"), ("GET", "/ui")),
    (("GET", "/ui/{file}"), ("GET", "/ui")),
    (("HEAD", "/ui/{file}"), ("GET", "/ui")),
];

/// Why no endpoint matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No such path (404).
    NotFound,
    /// The path exists with other methods (405).
    MethodNotAllowed { allowed: &'static [Method] },
}

pub(crate) fn route(method: &Method, path: &str) -> Result<Endpoint, Miss> {
    let path = match path.strip_suffix('/') {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => path,
    };
    if let Some(routed) = with_path_parameters(method, path) {
        return routed;
    }
    if let Some(routed) = stored_response_paths(method, path) {
        return routed;
    }
    match path {
        "/v1/chat/completions" | "/api/v1/llm/chat/completions" => {
            only(method, &[Method::POST], Endpoint::ChatCompletions)
        }
        "/v1/embeddings" | "/api/v1/llm/embeddings" => {
            only(method, &[Method::POST], Endpoint::Embeddings)
        }
        "/v1/messages" | "/anthropic/v1/messages" => {
            only(method, &[Method::POST], Endpoint::Messages)
        }
        "/v1/messages/count_tokens" | "/anthropic/v1/messages/count_tokens" => {
            only(method, &[Method::POST], Endpoint::MessagesCountTokens)
        }
        "/v1/responses" => only(method, &[Method::POST], Endpoint::Responses),
        "/v1/models" | "/api/v1/llm/models" => only(method, &[Method::GET], Endpoint::ListModels),
        "/api/v1/llm/credits" => only(method, &[Method::GET], Endpoint::Credits),
        "/api/v1/llm/credits/add" => only(method, &[Method::POST], Endpoint::CreditsAdd),
        "/api/v1/llm/credits/transactions" => {
            only(method, &[Method::GET], Endpoint::CreditsTransactions)
        }
        "/api/v1/llm/credits/packages" => only(method, &[Method::GET], Endpoint::CreditsPackages),
        "/api/v1/llm/credits/purchase" => only(method, &[Method::POST], Endpoint::CreditsPurchase),
        "/api/v1/llm/usage" => only(method, &[Method::GET], Endpoint::Usage),
        "/api/v1/llm/requests" => only(method, &[Method::GET], Endpoint::ListRequests),
        "/api/v1/billing/stripe/webhook" => only(method, &[Method::POST], Endpoint::StripeWebhook),
        "/health" => only(method, &[Method::GET], Endpoint::Health),
        "/health/ready" => only(method, &[Method::GET], Endpoint::Ready),
        "/metrics" => only(method, &[Method::GET], Endpoint::Metrics),
        ui if crate::ui::owns(ui) => only(method, &[Method::GET, Method::HEAD], Endpoint::Ui),
        _ => Err(Miss::NotFound),
    }
}

/// The admin and BYOK paths: fixed ones and those with `{id}`, `{key_id}` or `{name}` in them.
/// `None` when the path is none of them.
fn with_path_parameters(method: &Method, path: &str) -> Option<Result<Endpoint, Miss>> {
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    const GET_PATCH: &[Method] = &[Method::GET, Method::PATCH];
    const PUT_DELETE: &[Method] = &[Method::PUT, Method::DELETE];
    if path == "/api/v1/admin/users" {
        return Some(pick(method, GET_POST, |m| match m {
            &Method::GET => Endpoint::AdminListUsers,
            _ => Endpoint::AdminCreateUser,
        }));
    }
    if path == "/api/v1/admin/tiers" {
        return Some(only(method, &[Method::GET], Endpoint::AdminListTiers));
    }
    if let Some(routed) = keys_and_teams(method, path) {
        return Some(routed);
    }
    if path == "/api/v1/llm/providers" {
        return Some(only(method, &[Method::GET], Endpoint::ListProviders));
    }
    if let Some(rest) = path.strip_prefix("/api/v1/admin/users/") {
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Some(Err(Miss::NotFound));
        }
        let user = segments[0].to_owned();
        return Some(match segments[1..] {
            [] => pick(method, GET_PATCH, |m| match m {
                &Method::GET => Endpoint::AdminGetUser(user),
                _ => Endpoint::AdminUpdateUser(user),
            }),
            ["keys"] => pick(method, GET_POST, |m| match m {
                &Method::GET => Endpoint::AdminListKeys(user),
                _ => Endpoint::AdminIssueKey(user),
            }),
            ["keys", key_id] => only(
                method,
                &[Method::DELETE],
                Endpoint::AdminRevokeKey {
                    user_id: user,
                    key_id: key_id.to_owned(),
                },
            ),
            _ => Err(Miss::NotFound),
        });
    }
    if let Some(id) = path.strip_prefix("/api/v1/llm/requests/") {
        if id.is_empty() || id.contains('/') {
            return Some(Err(Miss::NotFound));
        }
        return Some(only(
            method,
            &[Method::GET],
            Endpoint::GetRequest(id.to_owned()),
        ));
    }
    if let Some(rest) = path.strip_prefix("/api/v1/llm/providers/") {
        let name = rest.strip_suffix("/key")?;
        if name.is_empty() || name.contains('/') {
            return Some(Err(Miss::NotFound));
        }
        let name = name.to_owned();
        return Some(pick(method, PUT_DELETE, |m| match m {
            &Method::PUT => Endpoint::PutProviderKey(name),
            _ => Endpoint::DeleteProviderKey(name),
        }));
    }
    None
}

/// `/api/v1/keys[/{key_id}]` and `/api/v1/admin/teams[/{team_id}/members[/{user_id}]]`.
fn keys_and_teams(method: &Method, path: &str) -> Option<Result<Endpoint, Miss>> {
    const GET_POST: &[Method] = &[Method::GET, Method::POST];
    const PATCH_DELETE: &[Method] = &[Method::PATCH, Method::DELETE];
    if path == "/api/v1/keys" {
        return Some(pick(method, GET_POST, |m| match m {
            &Method::GET => Endpoint::ListKeys,
            _ => Endpoint::CreateKey,
        }));
    }
    if let Some(key_id) = path.strip_prefix("/api/v1/keys/") {
        if key_id.is_empty() || key_id.contains('/') {
            return Some(Err(Miss::NotFound));
        }
        let key_id = key_id.to_owned();
        return Some(pick(method, PATCH_DELETE, |m| match m {
            &Method::PATCH => Endpoint::UpdateKey(key_id),
            _ => Endpoint::RevokeKey(key_id),
        }));
    }
    if path == "/api/v1/admin/teams" {
        return Some(pick(method, GET_POST, |m| match m {
            &Method::GET => Endpoint::AdminListTeams,
            _ => Endpoint::AdminCreateTeam,
        }));
    }
    let rest = path.strip_prefix("/api/v1/admin/teams/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Some(Err(Miss::NotFound));
    }
    let team_id = segments[0].to_owned();
    Some(match segments[1..] {
        ["members"] => only(
            method,
            &[Method::POST],
            Endpoint::AdminAddTeamMember(team_id),
        ),
        ["members", user_id] => only(
            method,
            &[Method::DELETE],
            Endpoint::AdminRemoveTeamMember {
                team_id,
                user_id: user_id.to_owned(),
            },
        ),
        _ => Err(Miss::NotFound),
    })
}

/// `/v1/responses/{id}` and `/v1/responses/{id}/input_items`; `None` for any other path
/// (`/v1/responses` itself included).
fn stored_response_paths(method: &Method, path: &str) -> Option<Result<Endpoint, Miss>> {
    const GET_DELETE: &[Method] = &[Method::GET, Method::DELETE];
    let rest = path.strip_prefix("/v1/responses/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Some(Err(Miss::NotFound));
    }
    let id = segments[0].to_owned();
    Some(match segments[1..] {
        [] => pick(method, GET_DELETE, |m| match m {
            &Method::GET => Endpoint::GetResponse(id),
            _ => Endpoint::DeleteResponse(id),
        }),
        ["input_items"] => only(method, &[Method::GET], Endpoint::ListResponseInputItems(id)),
        _ => Err(Miss::NotFound),
    })
}

/// One endpoint per allowed method; `choose` gets only allowed methods.
fn pick(
    method: &Method,
    allowed: &'static [Method],
    choose: impl FnOnce(&Method) -> Endpoint,
) -> Result<Endpoint, Miss> {
    if allowed.contains(method) {
        Ok(choose(method))
    } else {
        Err(Miss::MethodNotAllowed { allowed })
    }
}

fn only(method: &Method, allowed: &'static [Method], endpoint: Endpoint) -> Result<Endpoint, Miss> {
    if allowed.contains(method) {
        Ok(endpoint)
    } else {
        Err(Miss::MethodNotAllowed { allowed })
    }
}

impl Miss {
    pub(crate) fn to_error(&self, method: &Method, path: &str) -> Error {
        match self {
            Miss::NotFound => Error::new(
                llmgate_core::ErrorKind::NotFound,
                format!("No endpoint at {path}."),
            )
            .with_code("unknown_path"),
            Miss::MethodNotAllowed { allowed } => {
                let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                Error::invalid_request(format!(
                    "{method} is not allowed on {path}; use {}.",
                    names.join(" or ")
                ))
                .with_code("method_not_allowed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_has_both_paths_and_only_post() {
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            Ok(Endpoint::ChatCompletions)
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/llm/chat/completions/"),
            Ok(Endpoint::ChatCompletions)
        );
        assert!(matches!(
            route(&Method::GET, "/v1/chat/completions"),
            Err(Miss::MethodNotAllowed { .. })
        ));
    }

    #[test]
    fn ui_paths_take_get_and_head() {
        for path in ["/ui", "/ui/", "/ui/js/app.js"] {
            assert_eq!(route(&Method::GET, path), Ok(Endpoint::Ui), "{path}");
            assert_eq!(route(&Method::HEAD, path), Ok(Endpoint::Ui), "{path}");
        }
        assert!(matches!(
            route(&Method::POST, "/ui"),
            Err(Miss::MethodNotAllowed { .. })
        ));
        assert_eq!(route(&Method::GET, "/uix"), Err(Miss::NotFound));
    }

    #[test]
    fn admin_and_byok_paths_carry_their_parameters() {
        assert_eq!(
            route(&Method::GET, "/api/v1/admin/users"),
            Ok(Endpoint::AdminListUsers)
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/admin/users/"),
            Ok(Endpoint::AdminCreateUser)
        );
        assert_eq!(
            route(&Method::PATCH, "/api/v1/admin/users/ann"),
            Ok(Endpoint::AdminUpdateUser("ann".into()))
        );
        assert_eq!(
            route(&Method::POST, "/api/v1/admin/users/ann/keys"),
            Ok(Endpoint::AdminIssueKey("ann".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/api/v1/admin/users/ann/keys/key_1"),
            Ok(Endpoint::AdminRevokeKey {
                user_id: "ann".into(),
                key_id: "key_1".into()
            })
        );
        assert_eq!(
            route(&Method::PUT, "/api/v1/llm/providers/openai/key"),
            Ok(Endpoint::PutProviderKey("openai".into()))
        );
        assert_eq!(
            route(&Method::GET, "/api/v1/llm/providers"),
            Ok(Endpoint::ListProviders)
        );
        assert!(matches!(
            route(&Method::GET, "/api/v1/llm/providers/openai/key"),
            Err(Miss::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::DELETE, "/api/v1/admin/users/ann"),
            Err(Miss::MethodNotAllowed { .. })
        ));
        for missing in [
            "/api/v1/admin/users//keys",
            "/api/v1/admin/users/ann/keys/k/x",
            "/api/v1/admin/users/ann/other",
            "/api/v1/llm/providers//key",
            "/api/v1/llm/providers/a/b/key",
            "/api/v1/llm/providers/openai",
        ] {
            assert_eq!(
                route(&Method::GET, missing),
                Err(Miss::NotFound),
                "{missing}"
            );
        }
    }

    #[test]
    fn stored_response_paths_carry_the_id() {
        assert_eq!(
            route(&Method::GET, "/v1/responses/resp_1"),
            Ok(Endpoint::GetResponse("resp_1".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/v1/responses/resp_1/"),
            Ok(Endpoint::DeleteResponse("resp_1".into()))
        );
        assert_eq!(
            route(&Method::GET, "/v1/responses/resp_1/input_items"),
            Ok(Endpoint::ListResponseInputItems("resp_1".into()))
        );
        assert!(matches!(
            route(&Method::POST, "/v1/responses/resp_1"),
            Err(Miss::MethodNotAllowed { .. })
        ));
        assert!(matches!(
            route(&Method::DELETE, "/v1/responses/resp_1/input_items"),
            Err(Miss::MethodNotAllowed { .. })
        ));
        for missing in [
            "/v1/responses//input_items",
            "/v1/responses/resp_1/other",
            "/v1/responses/resp_1/input_items/x",
        ] {
            assert_eq!(
                route(&Method::GET, missing),
                Err(Miss::NotFound),
                "{missing}"
            );
        }
    }

    #[test]
    fn key_and_team_paths_carry_their_parameters() {
        assert_eq!(
            route(&Method::POST, "/api/v1/keys"),
            Ok(Endpoint::CreateKey)
        );
        assert_eq!(
            route(&Method::PATCH, "/api/v1/keys/key_1"),
            Ok(Endpoint::UpdateKey("key_1".into()))
        );
        assert_eq!(
            route(&Method::DELETE, "/api/v1/admin/teams/t1/members/ann"),
            Ok(Endpoint::AdminRemoveTeamMember {
                team_id: "t1".into(),
                user_id: "ann".into()
            })
        );
        assert_eq!(route(&Method::GET, "/api/v1/keys/a/b"), Err(Miss::NotFound));
        assert!(matches!(
            route(&Method::GET, "/api/v1/keys/key_1"),
            Err(Miss::MethodNotAllowed { .. })
        ));
    }

    #[test]
    fn unknown_paths_miss() {
        assert_eq!(route(&Method::GET, "/v2/models"), Err(Miss::NotFound));
        assert_eq!(route(&Method::GET, "/"), Err(Miss::NotFound));
    }
}
