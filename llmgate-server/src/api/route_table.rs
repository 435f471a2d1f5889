//! The router, its table and docs/http-api.md agree.
//!
//! - every entry of [`ROUTES`] (and of [`ALIASES`]) reaches an endpoint through [`route`];
//! - every [`Endpoint`] variant names its entry in [`documented`], an exhaustive `match` checked
//!   at compile time against the table, so a new variant without an entry does not compile;
//! - the table's (method, path) pairs are exactly the document's `### METHOD PATH` headings,
//!   apart from [`PENDING_ROUTES`].

use std::collections::BTreeSet;

use http::Method;

use super::router::{ALIASES, Endpoint, ROUTES, Route, route};

/// Documented in docs/http-api.md but not yet routed: endpoints being added on other branches.
/// Remove an entry when its endpoint lands (its variant, path arm and [`ROUTES`] entry); the
/// test fails while an entry is both here and routed.
const PENDING_ROUTES: &[Route] = &[];

/// The [`ROUTES`] entry of each endpoint, as an index into the table.
fn documented(endpoint: &Endpoint) -> usize {
    // Each `const` block is evaluated at compile time: a pair missing from the table fails the
    // build, and so does a variant with no arm.
    match endpoint {
        Endpoint::ChatCompletions => const { entry("POST", "/v1/chat/completions") },
        Endpoint::Embeddings => const { entry("POST", "/v1/embeddings") },
        Endpoint::Messages => const { entry("POST", "/v1/messages") },
        Endpoint::MessagesCountTokens => const { entry("POST", "/v1/messages/count_tokens") },
        Endpoint::Responses => const { entry("POST", "/v1/responses") },
        Endpoint::GetResponse(_) => const { entry("GET", "/v1/responses/{id}") },
        Endpoint::DeleteResponse(_) => const { entry("DELETE", "/v1/responses/{id}") },
        Endpoint::ListResponseInputItems(_) => {
            const { entry("GET", "/v1/responses/{id}/input_items") }
        }
        Endpoint::ListModels => const { entry("GET", "/v1/models") },
        Endpoint::Credits => const { entry("GET", "/api/v1/llm/credits") },
        Endpoint::CreditsAdd => const { entry("POST", "/api/v1/llm/credits/add") },
        Endpoint::CreditsTransactions => const { entry("GET", "/api/v1/llm/credits/transactions") },
        Endpoint::CreditsPackages => const { entry("GET", "/api/v1/llm/credits/packages") },
        Endpoint::CreditsPurchase => const { entry("POST", "/api/v1/llm/credits/purchase") },
        Endpoint::Usage => const { entry("GET", "/api/v1/llm/usage") },
        Endpoint::ListRequests => const { entry("GET", "/api/v1/llm/requests") },
        Endpoint::GetRequest(_) => const { entry("GET", "/api/v1/llm/requests/{id}") },
        Endpoint::StripeWebhook => const { entry("POST", "/api/v1/billing/stripe/webhook") },
        Endpoint::Health => const { entry("GET", "/health") },
        Endpoint::Ready => const { entry("GET", "/health/ready") },
        Endpoint::Metrics => const { entry("GET", "/metrics") },
        Endpoint::AdminListTiers => const { entry("GET", "/api/v1/admin/tiers") },
        Endpoint::AdminListUsers => const { entry("GET", "/api/v1/admin/users") },
        Endpoint::AdminCreateUser => const { entry("POST", "/api/v1/admin/users") },
        Endpoint::AdminGetUser(_) => const { entry("GET", "/api/v1/admin/users/{id}") },
        Endpoint::AdminUpdateUser(_) => const { entry("PATCH", "/api/v1/admin/users/{id}") },
        Endpoint::AdminListKeys(_) => const { entry("GET", "/api/v1/admin/users/{id}/keys") },
        Endpoint::AdminIssueKey(_) => const { entry("POST", "/api/v1/admin/users/{id}/keys") },
        Endpoint::AdminRevokeKey { .. } => {
            const { entry("DELETE", "/api/v1/admin/users/{id}/keys/{key_id}") }
        }
        Endpoint::ListKeys => const { entry("GET", "/api/v1/keys") },
        Endpoint::CreateKey => const { entry("POST", "/api/v1/keys") },
        Endpoint::UpdateKey(_) => const { entry("PATCH", "/api/v1/keys/{key_id}") },
        Endpoint::RevokeKey(_) => const { entry("DELETE", "/api/v1/keys/{key_id}") },
        Endpoint::AdminListTeams => const { entry("GET", "/api/v1/admin/teams") },
        Endpoint::AdminCreateTeam => const { entry("POST", "/api/v1/admin/teams") },
        Endpoint::AdminAddTeamMember(_) => {
            const { entry("POST", "/api/v1/admin/teams/{team_id}/members") }
        }
        Endpoint::AdminRemoveTeamMember { .. } => {
            const { entry("DELETE", "/api/v1/admin/teams/{team_id}/members/{user_id}") }
        }
        Endpoint::ListProviders => const { entry("GET", "/api/v1/llm/providers") },
        Endpoint::PutProviderKey(_) => const { entry("PUT", "/api/v1/llm/providers/{name}/key") },
        Endpoint::DeleteProviderKey(_) => {
            const { entry("DELETE", "/api/v1/llm/providers/{name}/key") }
        }
        Endpoint::Ui => const { entry("GET", "/ui") },
    }
}

/// The index of `(method, path)` in [`ROUTES`]; evaluated in a `const` block, a missing pair is a
/// compile error.
const fn entry(method: &str, path: &str) -> usize {
    let mut index = 0;
    while index < ROUTES.len() {
        if same(ROUTES[index].0, method) && same(ROUTES[index].1, path) {
            return index;
        }
        index += 1;
    }
    panic!("an endpoint's (method, path) is missing from ROUTES in api/router.rs");
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut index = 0;
    while index < a.len() {
        if a[index] != b[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// A concrete path for a pattern: each `{name}` becomes `sample-name`.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => format!("sample-{name}"),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

fn routed(method: &str, pattern: &str) -> Endpoint {
    let parsed: Method = method.parse().unwrap();
    let path = concrete(pattern);
    route(&parsed, &path).unwrap_or_else(|miss| panic!("{method} {path}: {miss:?}"))
}

fn document() -> String {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http-api.md");
    std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The `### METHOD PATH` headings of docs/http-api.md (anything after the path is ignored).
fn document_headings() -> BTreeSet<(String, String)> {
    document()
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .filter_map(|heading| {
            let mut words = heading.split_whitespace();
            let method = words.next()?;
            let path = words.next()?;
            let is_method =
                method.parse::<Method>().is_ok() && method.bytes().all(|b| b.is_ascii_uppercase());
            (is_method && path.starts_with('/')).then(|| (method.to_owned(), path.to_owned()))
        })
        .collect()
}

fn pairs(list: &[Route]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect()
}

#[test]
fn every_table_entry_routes_to_the_endpoint_that_names_it() {
    for (index, (method, pattern)) in ROUTES.iter().enumerate() {
        let endpoint = routed(method, pattern);
        assert_eq!(
            documented(&endpoint),
            index,
            "{method} {pattern} routes to {endpoint:?}, whose entry is {:?}",
            ROUTES[documented(&endpoint)]
        );
    }
    let unique = pairs(ROUTES);
    assert_eq!(unique.len(), ROUTES.len(), "ROUTES has a repeated entry");
}

#[test]
fn every_alias_reaches_its_entry() {
    for ((method, alias), target) in ALIASES {
        let endpoint = routed(method, alias);
        assert_eq!(
            ROUTES[documented(&endpoint)],
            *target,
            "{method} {alias} routes to {endpoint:?}"
        );
    }
}

#[test]
fn the_table_is_the_documents_list_of_endpoints() {
    let headings = document_headings();
    let table = pairs(ROUTES);
    let pending = pairs(PENDING_ROUTES);
    let landed: Vec<_> = pending.intersection(&table).collect();
    assert!(
        landed.is_empty(),
        "routed now, remove from PENDING_ROUTES in api/route_table.rs: {landed:?}"
    );
    let expected: BTreeSet<_> = table.union(&pending).cloned().collect();
    let undocumented: Vec<_> = expected.difference(&headings).collect();
    let unrouted: Vec<_> = headings.difference(&expected).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "docs/http-api.md lacks a `### METHOD PATH` section for {undocumented:?}; \
         it documents {unrouted:?}, which the router's ROUTES does not have"
    );
}

#[test]
fn the_document_names_every_alias() {
    let text = document();
    for ((method, alias), _) in ALIASES {
        let named = format!("`{method} {alias}`");
        assert!(
            text.contains(&named),
            "docs/http-api.md does not name {named}"
        );
    }
}
