//! What runs against one backend: the direct / bare-proxy / gateway cells of each mode and
//! concurrency (with one load generator or both), the replicas table on PostgreSQL, the memory
//! soak and the open-streams test; and what they produce.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use llmgate_benches::load::client::{Keys, Target};
use llmgate_benches::load::gateway::{
    FREE_MODEL, Gateway, Launch, PAID_MODEL, chat_body, cpu_nanos,
};
use llmgate_benches::load::outside::OutsideClient;
use llmgate_benches::load::proxy::BareProxy;
use llmgate_benches::load::report::{Generator, Row, json_table, side_by_side, stream_table};
use llmgate_benches::load::runner::{Load, Measured, measure_across};
use llmgate_benches::load::upstream::{OpenStreams, UpstreamSettings};

use crate::memory::{MemoryResult, memory};
use crate::options::{Backend, Mode, Options, Plan};

/// What one backend's run produced.
#[derive(Debug, Default)]
pub(crate) struct BackendResult {
    pub(crate) label: &'static str,
    pub(crate) startup: Duration,
    /// With the harness's config, 300 ms after start.
    pub(crate) idle_rss_kib: Option<u64>,
    /// SQLite only: the embedded default (no config, an empty directory), idle 2 s after start.
    pub(crate) embedded_rss_kib: Option<u64>,
    pub(crate) json: Vec<Row>,
    pub(crate) stream: Vec<Row>,
    /// JSON with the load split over several gateways on one database (PostgreSQL).
    pub(crate) replicas: Vec<Row>,
    /// The first paid request of each of the many accounts (64 at a time), before the cells.
    pub(crate) cold_accounts: Option<Measured>,
    pub(crate) memory: Option<MemoryResult>,
}

/// Idle resident memory of `serve` on the embedded default, as a user first starts it: what
/// the idle-memory targets are about (the harness's own config adds models, pools and keys).
async fn embedded_default_rss(launch: &Launch) -> Result<u64, String> {
    let dir = launch.workdir.join("embedded-default");
    let gateway = Gateway::start_embedded_default(&launch.binary, &dir)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = gateway.rss_kib();
    drop(gateway);
    let _ = std::fs::remove_dir_all(&dir);
    rss.ok_or_else(|| "reading the embedded default's RSS".to_owned())
}

/// The bare proxy's rows: the floor of one extra hop on this machine.
pub(crate) const BARE_ROUTE: &str = "bare proxy (floor)";
pub(crate) const FREE_ROUTE: &str = "free (master key)";
pub(crate) const PAID_ROUTE: &str = "paid (user key)";
/// The route of paid requests spread in turn over `count` funded users (`--accounts`).
pub(crate) fn accounts_route(count: usize) -> String {
    let digits = count.to_string();
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("paid, {grouped} accounts")
}

/// The load generators of this run.
pub(crate) struct Generators {
    pub(crate) inner: bool,
    pub(crate) outer: Option<OutsideClient>,
}

impl Generators {
    pub(crate) fn list(&self) -> Vec<Generator> {
        let mut list = Vec::new();
        if self.inner {
            list.push(Generator::Inner);
        }
        if self.outer.is_some() {
            list.push(Generator::Outer);
        }
        list
    }

    async fn measure(
        &self,
        generator: Generator,
        targets: &[Target],
        body: &Bytes,
        load: Load,
    ) -> Measured {
        let outer = match (generator, &self.outer) {
            (Generator::Outer, Some(outer)) => outer,
            _ => return measure_across(targets, body, load).await,
        };
        outer
            .measure(targets, body, load)
            .await
            .unwrap_or_else(|error| Measured {
                errors: 1,
                first_error: Some(error),
                ..Measured::default()
            })
    }
}

/// One route of a cell: where it sends and what.
struct Route {
    name: String,
    targets: Vec<Target>,
    body: Bytes,
    /// Through the gateway (its CPU time per request is measured).
    gateway: bool,
    /// Charged: preloaded before it is measured (see [`run_cells`]).
    paid: bool,
}

/// Everything a backend's cells need.
pub(crate) struct Bench<'a> {
    pub(crate) options: &'a Options,
    pub(crate) plan: &'a Plan,
    pub(crate) generators: &'a Generators,
    pub(crate) upstream: SocketAddr,
    pub(crate) slow_streams: Option<&'a OpenStreams>,
    pub(crate) floor: Option<&'a BareProxy>,
    pub(crate) settings: &'a UpstreamSettings,
}

pub(crate) async fn run_backend(
    bench: &Bench<'_>,
    launch: &Launch,
    backend: Backend,
) -> Result<BackendResult, String> {
    let options = bench.options;
    let label = launch.storage.label();
    eprintln!("[{label}] starting the gateway");
    let embedded_rss_kib = match backend {
        Backend::Sqlite => Some(embedded_default_rss(launch).await?),
        _ => None,
    };
    let gateway = Gateway::start(launch)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut result = BackendResult {
        label,
        startup: gateway.startup,
        idle_rss_kib: gateway.rss_kib(),
        embedded_rss_kib,
        ..BackendResult::default()
    };
    let user = format!("bench-{}-{label}", std::process::id()).replace('+', "-");
    let user_key = gateway.paid_user(&user).await?;
    if options.accounts > 0 {
        eprintln!("[{label}] funding {} users", options.accounts);
    }
    let many_keys = gateway
        .paid_users(&format!("{user}-many"), options.accounts)
        .await?;
    let accounts = Accounts {
        one: format!("Bearer {user_key}"),
        many: many_keys.iter().map(|k| format!("Bearer {k}")).collect(),
    };
    if !accounts.many.is_empty() {
        eprintln!(
            "[{label}] a first paid request for each of the {} users",
            accounts.many.len()
        );
        let many = routes(bench, &[gateway.addr()], &gateway, &accounts, false, false);
        if let Some(many) = many
            .iter()
            .find(|r| r.name == accounts_route(accounts.many.len()))
        {
            result.cold_accounts = Some(first_requests(many, accounts.many.len()).await);
        }
    }
    for &mode in &options.modes {
        let stream = mode == Mode::Stream;
        let routes = routes(bench, &[gateway.addr()], &gateway, &accounts, stream, true);
        let rows = run_cells(bench, &routes, &[&gateway], &options.concurrency, label).await;
        let title = match mode {
            Mode::Json => "JSON",
            Mode::Stream => "streaming",
        };
        print_rows(&format!("{label}: {title}"), &rows, stream);
        match mode {
            Mode::Json => result.json = rows,
            Mode::Stream => result.stream = rows,
        }
    }
    if backend == Backend::Postgres && options.replicas > 1 {
        result.replicas = replicas(bench, launch, &gateway, &accounts).await?;
    }
    if backend == Backend::Sqlite && !options.skip_memory {
        let free = routes(bench, &[gateway.addr()], &gateway, &accounts, false, false);
        if let Some(free) = free.iter().find(|r| r.name == FREE_ROUTE) {
            result.memory = Some(
                memory(
                    options,
                    bench.plan,
                    &gateway,
                    &free.targets[0],
                    bench.slow_streams,
                    bench.settings,
                )
                .await,
            );
        }
    }
    let status = gateway.stop();
    if status.is_some_and(|s| !s.success()) {
        eprintln!("[{label}] warning: the gateway exited with {status:?}");
    }
    Ok(result)
}

/// The keys of the paid routes: one hot account, and many accounts taken in turn.
struct Accounts {
    one: String,
    many: Vec<String>,
}

/// The routes of a cell. `gateways` are the replicas the gateway routes spread over; `floor`
/// adds the direct and bare-proxy rows.
fn routes(
    bench: &Bench<'_>,
    gateways: &[SocketAddr],
    gateway: &Gateway,
    accounts: &Accounts,
    stream: bool,
    floor: bool,
) -> Vec<Route> {
    let path = "/v1/chat/completions";
    let to = |addrs: &[SocketAddr], keys: Keys| -> Vec<Target> {
        addrs
            .iter()
            .map(|&addr| Target {
                addr,
                path,
                keys: keys.clone(),
            })
            .collect()
    };
    let free_body = chat_body(FREE_MODEL, stream);
    let paid_body = chat_body(PAID_MODEL, stream);
    let mut routes = vec![Route {
        name: "direct".to_owned(),
        targets: to(&[bench.upstream], Keys::none()),
        body: free_body.clone(),
        gateway: false,
        paid: false,
    }];
    if let (true, Some(proxy)) = (floor, bench.floor) {
        routes.push(Route {
            name: BARE_ROUTE.to_owned(),
            targets: to(&[proxy.addr()], Keys::none()),
            body: free_body.clone(),
            gateway: false,
            paid: false,
        });
    }
    routes.push(Route {
        name: FREE_ROUTE.to_owned(),
        targets: to(gateways, Keys::one(gateway.master_authorization())),
        body: free_body,
        gateway: true,
        paid: false,
    });
    routes.push(Route {
        name: PAID_ROUTE.to_owned(),
        targets: to(gateways, Keys::one(accounts.one.clone())),
        body: paid_body.clone(),
        gateway: true,
        paid: true,
    });
    if !accounts.many.is_empty() {
        routes.push(Route {
            name: accounts_route(accounts.many.len()),
            targets: to(gateways, Keys::rotating(accounts.many.clone())),
            body: paid_body,
            gateway: true,
            paid: true,
        });
    }
    routes
}

/// Every route at every concurrency with every generator: for one concurrency the first
/// generator runs all routes, then the next, so each gateway figure has its direct figure
/// from the same generator a few seconds apart.
///
/// Each gateway cell starts once the gateways have written the ledger work of the cells
/// before it (a backlog carried over would slow the next cell, whichever it is). A paid cell
/// is measured after a preload of `--paid-preload` requests: paid requests queue their ledger
/// writes (a bounded queue of 16,384) and answer at once until the queue is full; from then
/// on they go as fast as the queue is written. The preload fills the queue first, so the cell
/// shows that sustained rate (what a long outside run such as `wrk -d10s` sees), not the
/// burst of the first few thousand requests.
async fn run_cells(
    bench: &Bench<'_>,
    routes: &[Route],
    gateways: &[&Gateway],
    concurrencies: &[usize],
    label: &str,
) -> Vec<Row> {
    let pids: Vec<u32> = gateways.iter().map(|g| g.pid()).collect();
    let mut rows = Vec::new();
    for &concurrency in concurrencies {
        let load = bench.plan.load(concurrency);
        for generator in bench.generators.list() {
            eprintln!("[{label}] c={concurrency} ({})", generator.label());
            for route in routes {
                if route.gateway {
                    for gateway in gateways {
                        gateway.settle_down(SETTLE_LIMIT).await;
                    }
                }
                if route.paid && bench.options.paid_preload > 0 {
                    let preload = Load {
                        concurrency,
                        warmup: Duration::ZERO,
                        duration: PRELOAD_LIMIT,
                        max_requests: bench.options.paid_preload,
                    };
                    measure_across(&route.targets, &route.body, preload).await;
                }
                let cpu_before = cpu_of(&pids);
                let measured = bench
                    .generators
                    .measure(generator, &route.targets, &route.body, load)
                    .await;
                let cpu_per_request = match (cpu_before, cpu_of(&pids)) {
                    (Some(before), Some(after)) if route.gateway && measured.answered > 0 => {
                        Some(after.saturating_sub(before) / measured.answered)
                    }
                    _ => None,
                };
                rows.push(Row {
                    generator,
                    concurrency,
                    route: route.name.clone(),
                    measured,
                    cpu_per_request,
                });
            }
        }
    }
    rows
}

/// The longest a cell waits for the ledger backlog of the cells before it.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// The longest a paid cell's preload runs.
const PRELOAD_LIMIT: Duration = Duration::from_secs(20);

/// The CPU time of all these processes so far.
fn cpu_of(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| cpu_nanos(pid)).sum()
}

/// A table per generator, and both side by side when there are two.
fn print_rows(title: &str, rows: &[Row], stream: bool) {
    let generators: Vec<Generator> = [Generator::Inner, Generator::Outer]
        .into_iter()
        .filter(|g| rows.iter().any(|r| r.generator == *g))
        .collect();
    for &generator in &generators {
        let own: Vec<Row> = rows
            .iter()
            .filter(|r| r.generator == generator)
            .cloned()
            .collect();
        println!("## {title} ({})\n", generator.label());
        if stream {
            println!("{}", stream_table(&own));
        } else {
            println!("{}", json_table(&own));
        }
    }
    if generators.len() > 1 {
        println!("## {title}: the two clients side by side\n");
        println!("{}", side_by_side(rows));
    }
}

/// JSON cells with the load split over `--replicas` gateways on the one PostgreSQL database
/// (and Redis): the first gateway and more started beside it.
async fn replicas(
    bench: &Bench<'_>,
    launch: &Launch,
    first: &Gateway,
    accounts: &Accounts,
) -> Result<Vec<Row>, String> {
    let count = bench.options.replicas;
    let label = format!("{} ×{count}", launch.storage.label());
    eprintln!("[{label}] starting {} more gateways", count - 1);
    let mut more = Vec::new();
    for replica in 1..count {
        more.push(Gateway::start(&Launch {
            replica,
            ..launch.clone()
        })?);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let addrs: Vec<SocketAddr> = std::iter::once(first.addr())
        .chain(more.iter().map(Gateway::addr))
        .collect();
    let gateways: Vec<&Gateway> = std::iter::once(first).chain(more.iter()).collect();
    let routes = routes(bench, &addrs, first, accounts, false, false);
    let rows = run_cells(
        bench,
        &routes,
        &gateways,
        &bench.options.concurrency,
        &label,
    )
    .await;
    print_rows(
        &format!("{label}: JSON, the load split over {count} gateways on one database"),
        &rows,
        false,
    );
    for gateway in more {
        let status = gateway.stop();
        if status.is_some_and(|s| !s.success()) {
            eprintln!("[{label}] warning: a replica exited with {status:?}");
        }
    }
    Ok(rows)
}

/// One paid request for each of `accounts` users (each new to the gateway), 64 at a time:
/// what the first request of an account costs, and it leaves every account loaded for the
/// cells after it.
async fn first_requests(route: &Route, accounts: usize) -> Measured {
    let load = Load {
        concurrency: accounts.clamp(1, 64),
        warmup: Duration::ZERO,
        duration: Duration::from_secs(300),
        max_requests: accounts as u64,
    };
    measure_across(&route.targets, &route.body, load).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_counts_are_grouped_by_thousands() {
        assert_eq!(accounts_route(1000), "paid, 1,000 accounts");
        assert_eq!(accounts_route(12), "paid, 12 accounts");
        assert_eq!(accounts_route(1234567), "paid, 1,234,567 accounts");
    }
}
