//! The part of a span that is the same for every request on one route, or every attempt on
//! one deployment: its name and first attributes. Encoded once per thread and copied into
//! each new span, instead of being encoded again for every span (counted at 64 clients, about
//! a tenth of what tracing adds to a request).
//!
//! Each thread keeps the openings of the first routes and deployments it sees, up to a bound;
//! spans of any others are encoded in full, as before.

use std::cell::RefCell;

use llmgate_core::catalog::Deployment;

use super::context::{SpanId, TraceId};
use super::record::{Attr, Kind, Opening, SpanRecord};

/// Openings one thread keeps, per kind of span.
const KEPT: usize = 32;

/// A route's server spans: method, path and operation.
#[derive(Debug)]
struct RouteKey {
    method: Box<str>,
    path: Box<str>,
    operation: &'static str,
}

/// A deployment's client spans: operation, provider, upstream model and deployment name.
#[derive(Debug)]
struct DeploymentKey {
    operation: &'static str,
    provider: Box<str>,
    upstream_model: Box<str>,
    name: Box<str>,
}

/// Openings by key, searched in order (a thread sees a handful of routes and deployments).
#[derive(Debug)]
struct Kept<K>(Vec<(K, Opening)>);

impl<K> Kept<K> {
    /// The opening whose key `matches`, made (and kept while there is room) when missing.
    fn open(
        &mut self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, Opening),
        ids: (TraceId, SpanId),
    ) -> SpanRecord {
        let (trace_id, span_id) = ids;
        if let Some((_, opening)) = self.0.iter().find(|(key, _)| matches(key)) {
            return SpanRecord::open(trace_id, span_id, opening);
        }
        let (key, opening) = make();
        let span = SpanRecord::open(trace_id, span_id, &opening);
        if self.0.len() < KEPT {
            self.0.push((key, opening));
        }
        span
    }
}

thread_local! {
    static ROUTES: RefCell<Kept<RouteKey>> = const { RefCell::new(Kept(Vec::new())) };
    static DEPLOYMENTS: RefCell<Kept<DeploymentKey>> = const { RefCell::new(Kept(Vec::new())) };
}

/// A request's server span, named `METHOD path`, with its operation, method and path set.
pub(super) fn server_span(
    ids: (TraceId, SpanId),
    method: &str,
    path: &str,
    operation: &'static str,
) -> SpanRecord {
    let make = || {
        let opening = Opening::new(
            Kind::Server,
            [method, path],
            &[
                (Attr::OperationName, operation.into()),
                (Attr::RequestMethod, method.into()),
                (Attr::UrlPath, path.into()),
            ],
        );
        let key = RouteKey {
            method: method.into(),
            path: path.into(),
            operation,
        };
        (key, opening)
    };
    let matches =
        |key: &RouteKey| *key.path == *path && *key.method == *method && key.operation == operation;
    ROUTES
        .try_with(|kept| match kept.try_borrow_mut() {
            Ok(mut kept) => kept.open(matches, make, ids),
            Err(_) => SpanRecord::open(ids.0, ids.1, &make().1),
        })
        .unwrap_or_else(|_| SpanRecord::open(ids.0, ids.1, &make().1))
}

/// An attempt's client span, named `operation upstream-model`, with its operation, provider,
/// upstream model and deployment set.
pub(super) fn client_span(
    ids: (TraceId, SpanId),
    operation: &'static str,
    deployment: &Deployment,
) -> SpanRecord {
    let model = deployment.upstream_model.as_str();
    let make = || {
        let opening = Opening::new(
            Kind::Client,
            [operation, model],
            &[
                (Attr::OperationName, operation.into()),
                (Attr::ProviderName, deployment.provider.as_str().into()),
                (Attr::RequestModel, model.into()),
                (Attr::Model, deployment.name.as_str().into()),
            ],
        );
        let key = DeploymentKey {
            operation,
            provider: deployment.provider.as_str().into(),
            upstream_model: model.into(),
            name: deployment.name.as_str().into(),
        };
        (key, opening)
    };
    let matches = |key: &DeploymentKey| {
        *key.upstream_model == *model
            && *key.name == *deployment.name
            && *key.provider == *deployment.provider
            && key.operation == operation
    };
    DEPLOYMENTS
        .try_with(|kept| match kept.try_borrow_mut() {
            Ok(mut kept) => kept.open(matches, make, ids),
            Err(_) => SpanRecord::open(ids.0, ids.1, &make().1),
        })
        .unwrap_or_else(|_| SpanRecord::open(ids.0, ids.1, &make().1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_opening_starts_the_same_span_as_a_new_one() {
        let deployment = Deployment::new("fast", "openai", "gpt-4o-mini");
        let first = client_span(([1; 16], [2; 8]), "chat", &deployment);
        let again = client_span(([1; 16], [3; 8]), "chat", &deployment);
        assert_eq!(first.body(), again.body());
        assert_eq!(again.span_id, [3; 8]);
        let mut expected =
            SpanRecord::start([1; 16], [2; 8], Kind::Client, ["chat", "gpt-4o-mini"]);
        expected.set(Attr::OperationName, "chat");
        expected.set(Attr::ProviderName, "openai");
        expected.set(Attr::RequestModel, "gpt-4o-mini");
        expected.set(Attr::Model, "fast");
        assert_eq!(again.body(), expected.body());
        // Another deployment of the same upstream model is another opening.
        let other = Deployment::new("slow", "openai", "gpt-4o-mini");
        let other = client_span(([1; 16], [4; 8]), "chat", &other);
        assert_ne!(other.body(), again.body());
    }

    #[test]
    fn routes_past_the_bound_are_still_spanned_in_full() {
        let spans: Vec<_> = (0..KEPT + 3)
            .map(|i| server_span(([1; 16], [1; 8]), "POST", &format!("/p{i}"), "chat"))
            .collect();
        let last = spans.last().unwrap();
        let path = format!("/p{}", KEPT + 2);
        let mut expected = SpanRecord::start([1; 16], [1; 8], Kind::Server, ["POST", &path]);
        expected.set(Attr::OperationName, "chat");
        expected.set(Attr::RequestMethod, "POST");
        expected.set(Attr::UrlPath, &*path);
        assert_eq!(last.body(), expected.body());
        assert_eq!(ROUTES.with(|kept| kept.borrow().0.len()), KEPT);
    }
}
