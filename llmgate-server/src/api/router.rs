//! Which endpoint a request is for: a plain match on (method, path).
//!
//! Add an endpoint by adding a variant, a path arm here and a dispatch arm in `service.rs`.

use http::Method;
use llmgate_core::Error;

/// The endpoints this server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    ListModels,
    /// Balances, the ledger, usage, packages and purchases (`api/credits.rs`, `api/usage.rs`,
    /// `api/billing.rs`).
    Credits,
    CreditsAdd,
    CreditsTransactions,
    CreditsPackages,
    CreditsPurchase,
    Usage,
    /// Stripe's signed webhook: no API key.
    StripeWebhook,
    Health,
    Ready,
    /// The LLM Hub's page and files (`/ui`, `/ui/...`).
    Ui,
}

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
    match path {
        "/v1/chat/completions" | "/api/v1/llm/chat/completions" => {
            only(method, &[Method::POST], Endpoint::ChatCompletions)
        }
        "/v1/models" | "/api/v1/llm/models" => only(method, &[Method::GET], Endpoint::ListModels),
        "/api/v1/llm/credits" => only(method, &[Method::GET], Endpoint::Credits),
        "/api/v1/llm/credits/add" => only(method, &[Method::POST], Endpoint::CreditsAdd),
        "/api/v1/llm/credits/transactions" => {
            only(method, &[Method::GET], Endpoint::CreditsTransactions)
        }
        "/api/v1/llm/credits/packages" => only(method, &[Method::GET], Endpoint::CreditsPackages),
        "/api/v1/llm/credits/purchase" => only(method, &[Method::POST], Endpoint::CreditsPurchase),
        "/api/v1/llm/usage" => only(method, &[Method::GET], Endpoint::Usage),
        "/api/v1/billing/stripe/webhook" => only(method, &[Method::POST], Endpoint::StripeWebhook),
        "/health" => only(method, &[Method::GET], Endpoint::Health),
        "/health/ready" => only(method, &[Method::GET], Endpoint::Ready),
        ui if crate::ui::owns(ui) => only(method, &[Method::GET, Method::HEAD], Endpoint::Ui),
        _ => Err(Miss::NotFound),
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
    fn unknown_paths_miss() {
        assert_eq!(route(&Method::GET, "/v2/models"), Err(Miss::NotFound));
        assert_eq!(route(&Method::GET, "/"), Err(Miss::NotFound));
    }
}
