//! The dependency budget of `llmgate-core`: an application that embeds the gateway must not
//! link an HTTP stack or a database driver just by depending on the core. Those belong to
//! `llmgate-providers`, `llmgate-credits` and the server. See docs/architecture.md.
//!
//! The closure is read from `cargo metadata`, whose resolve unifies features over the whole
//! workspace: it is an upper bound on what the core pulls on its own, so a crate that shows up
//! here may be there only because another member turned a feature on. Either way it is caught.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Crates that make the core an HTTP client or server, a TLS stack, or a database client.
/// Names ending in `*` match every crate with that prefix.
const FORBIDDEN: &[&str] = &[
    // HTTP clients and servers
    "reqwest",
    "hyper",
    "hyper-util",
    "hyper-rustls",
    "h2",
    "axum",
    "tower-http",
    "actix-web",
    "warp",
    "ureq",
    "isahc",
    "curl",
    "sse-stream",
    // TLS
    "rustls",
    "native-tls",
    "openssl",
    // databases and caches
    "sqlx*",
    "redis",
    "tokio-postgres",
    "postgres",
    "rusqlite",
    "libsqlite3-sys",
    "diesel",
    "sea-orm",
    "mongodb",
];

/// How many crates the core's normal closure may hold, the core itself included (it held 79
/// when this budget was written down). Raising it is a decision to make in review, with
/// docs/architecture.md updated to match.
const MAX_CLOSURE: usize = 90;

fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Whether an edge of the resolve graph is a normal or build dependency (not dev-only).
fn is_linked(dep: &Value) -> bool {
    dep["dep_kinds"].as_array().is_some_and(|kinds| {
        kinds
            .iter()
            .any(|kind| kind["kind"].is_null() || kind["kind"] == "build")
    })
}

/// The names of every package the root reaches through normal and build dependencies.
fn closure(metadata: &Value, root_name: &str) -> BTreeSet<String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of: HashMap<&str, &str> = packages
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|node| (node["id"].as_str().unwrap(), node))
        .collect();
    let root = packages
        .iter()
        .find(|p| p["name"] == root_name)
        .and_then(|p| p["id"].as_str())
        .expect("the root package is in the workspace");

    let mut seen = BTreeSet::from([root]);
    let mut todo = vec![root];
    while let Some(id) = todo.pop() {
        for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
            let dep_id = dep["pkg"].as_str().unwrap();
            if is_linked(dep) && seen.insert(dep_id) {
                todo.push(dep_id);
            }
        }
    }
    seen.into_iter().map(|id| name_of[id].to_owned()).collect()
}

fn forbidden_in(names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|name| {
            FORBIDDEN.iter().any(|rule| match rule.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name.as_str() == *rule,
            })
        })
        .cloned()
        .collect()
}

#[test]
fn core_links_no_http_stack_tls_or_database() {
    let names = closure(&metadata(), "llmgate-core");
    assert!(names.contains("serde_json") && names.contains("tokio"));
    let found = forbidden_in(&names);
    assert!(
        found.is_empty(),
        "llmgate-core's dependencies pull {found:?}; move that code to a provider, backend or \
         the server crate"
    );
}

#[test]
fn core_stays_within_its_crate_count() {
    let names = closure(&metadata(), "llmgate-core");
    assert!(
        names.len() <= MAX_CLOSURE,
        "llmgate-core's normal dependencies grew to {} crates (budget {MAX_CLOSURE}): {names:?}",
        names.len()
    );
}

#[test]
fn the_budget_check_sees_what_providers_and_credits_pull() {
    // The same walk finds the HTTP client in the providers and the drivers in the ledgers, so
    // a forbidden crate in the core could not hide from it.
    let metadata = metadata();
    let providers = forbidden_in(&closure(&metadata, "llmgate-providers"));
    assert!(
        providers.iter().any(|name| name == "reqwest"),
        "{providers:?}"
    );
    let credits = forbidden_in(&closure(&metadata, "llmgate-credits"));
    assert!(
        credits.iter().any(|name| name.starts_with("sqlx")),
        "{credits:?}"
    );
    assert!(credits.iter().any(|name| name == "redis"), "{credits:?}");
}
