//! The targets the run checks, met or missed: those of the earlier performance work, and
//! issue 24's table (paid requests without a database round trip each, a thinner free path, a
//! smaller idle footprint), each of the "either client" rows once per load generator.

use std::time::Duration;

use llmgate_benches::load::report::{
    Check, Generator, Row, added, find, percent, throughput_share,
};
use llmgate_benches::load::runner::Measured;
use llmgate_benches::load::stats::{human, human_delta, mib};

use crate::scenarios::{BARE_ROUTE, BackendResult, FREE_ROUTE, PAID_ROUTE, accounts_route};

/// The generator whose rows the earlier targets read: the in-process one when it ran.
fn first_generator(results: &[BackendResult]) -> Generator {
    let ran = |g: Generator| {
        results
            .iter()
            .any(|r| r.json.iter().any(|row| row.generator == g))
    };
    if ran(Generator::Inner) || !ran(Generator::Outer) {
        Generator::Inner
    } else {
        Generator::Outer
    }
}

/// The targets of the earlier performance work, from the first generator of the run.
pub(crate) fn earlier_checks(results: &[BackendResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let backend = |label: &str| results.iter().find(|r| r.label == label);
    let by = first_generator(results);
    let latency = |what: &str, goal_us: u64, value: Option<i64>| Check {
        what: what.to_owned(),
        target: format!("≤ {goal_us} µs"),
        measured: value.map_or("–".to_owned(), human_delta),
        met: value.map(|v| v <= (goal_us * 1000) as i64),
    };
    let share = |what: &str, goal: f64, value: Option<f64>| Check {
        what: what.to_owned(),
        target: format!("≥ {:.0} %", goal * 100.0),
        measured: value.map_or("–".to_owned(), percent),
        met: value.map(|v| v >= goal),
    };
    let p50 = |m: &Measured| m.total.p50;
    let p99 = |m: &Measured| m.total.p99;
    if let Some(sqlite) = backend("sqlite") {
        let (free, paid) = (FREE_ROUTE, PAID_ROUTE);
        checks.push(latency(
            "added p50, JSON, c=1, free (SQLite)",
            50,
            added(&sqlite.json, by, free, 1, p50),
        ));
        checks.push(latency(
            "added p99, JSON, c=1, free (SQLite)",
            150,
            added(&sqlite.json, by, free, 1, p99),
        ));
        checks.push(latency(
            "added p50, JSON, c=1, paid on SQLite",
            150,
            added(&sqlite.json, by, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, free (SQLite)",
            0.40,
            throughput_share(&sqlite.json, by, free, 64),
        ));
        let floor = |what: &str, measured: String| Check {
            what: what.to_owned(),
            target: "(floor)".to_owned(),
            measured,
            met: None,
        };
        if let Some(added) = added(&sqlite.json, by, BARE_ROUTE, 1, p50) {
            checks.push(floor(
                "bare proxy: added p50, JSON, c=1",
                human_delta(added),
            ));
        }
        if let Some(share) = throughput_share(&sqlite.json, by, BARE_ROUTE, 64) {
            checks.push(floor("bare proxy: throughput c=64 JSON", percent(share)));
        }
        checks.push(share(
            "throughput c=64 JSON, paid on SQLite",
            0.25,
            throughput_share(&sqlite.json, by, paid, 64),
        ));
        checks.push(latency(
            "added TTFB p50, stream, c=1, free (SQLite)",
            200,
            added(&sqlite.stream, by, free, 1, |m| m.first_byte.p50),
        ));
        let per_chunk = added(&sqlite.stream, by, free, 1, |m| m.per_chunk.p50);
        checks.push(Check {
            what: "added per chunk p50, stream, c=1, free (SQLite)".to_owned(),
            target: "≤ 2 µs".to_owned(),
            measured: per_chunk.map_or("–".to_owned(), human_delta),
            met: per_chunk.map(|v| v <= 2_000),
        });
        checks.push(Check {
            what: "ready (spawn → /health), embedded SQLite".to_owned(),
            target: "≤ 100 ms".to_owned(),
            measured: format!("{:.1} ms", sqlite.startup.as_secs_f64() * 1e3),
            met: Some(sqlite.startup <= Duration::from_millis(100)),
        });
        if let Some(rss) = sqlite.embedded_rss_kib {
            checks.push(Check {
                what: "RSS idle, embedded default".to_owned(),
                target: "≤ 10 MiB".to_owned(),
                measured: mib(rss),
                met: Some(rss <= 10 * 1024),
            });
        }
        if let Some(memory) = &sqlite.memory {
            if let Some(streams) = &memory.streams {
                checks.push(Check {
                    what: format!("RSS with {} open streams", streams.wanted),
                    target: "≤ 150 MiB".to_owned(),
                    measured: mib(streams.peak_rss_kib),
                    met: Some(streams.peak_rss_kib <= 150 * 1024),
                });
                checks.push(Check {
                    what: format!("{} concurrent streams without stalls", streams.wanted),
                    target: "0 stalls, 0 failures".to_owned(),
                    measured: format!(
                        "{} stalls, {} failed, {} short, {} open at once",
                        streams.stalls, streams.failed, streams.short, streams.peak_open_upstream
                    ),
                    met: Some(
                        streams.stalls == 0
                            && streams.failed == 0
                            && streams.short == 0
                            && streams.peak_open_upstream >= streams.wanted,
                    ),
                });
            }
            if let (Some(first), Some(last)) = (memory.soak.first(), memory.soak.last()) {
                let growth = last.1 as i64 - first.1 as i64;
                checks.push(Check {
                    what: format!("RSS flat from {} to {} requests", first.0, last.0),
                    target: "no growth".to_owned(),
                    measured: format!("{:+.1} MiB", growth as f64 / 1024.0),
                    // Allow allocator noise of 2 MiB.
                    met: Some(growth <= 2048),
                });
            }
        }
    }
    if let Some(postgres) = backend("postgres+redis") {
        let paid = PAID_ROUTE;
        checks.push(latency(
            "added p50, JSON, c=1, paid on PostgreSQL + Redis",
            500,
            added(&postgres.json, by, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, paid on PostgreSQL + Redis",
            0.15,
            throughput_share(&postgres.json, by, paid, 64),
        ));
    }
    if checks.is_empty() {
        checks.push(Check {
            what: "(run with the sqlite backend for the target checks)".to_owned(),
            target: String::new(),
            measured: human(0),
            met: None,
        });
    }
    checks
}

/// Issue 24's targets table, row for row as the issue names them; the rows measured through
/// the load generators once per generator that ran ("with either client").
pub(crate) fn issue_24_checks(results: &[BackendResult]) -> Vec<Check> {
    let backend = |label: &str| results.iter().find(|r| r.label == label);
    let sqlite = backend("sqlite");
    let postgres = backend("postgres+redis");
    let accounts = postgres
        .and_then(|p| p.json.iter().find(|r| r.route.ends_with(" accounts")))
        .map(|r| r.route.clone());
    let mut checks = Vec::new();
    for generator in generators_of(results) {
        let by = |what: &str| format!("{what} — {}", generator.label());
        checks.push(paid_share(
            by("paid c=64 throughput vs direct, SQLite, one hot account"),
            json(sqlite),
            generator,
            PAID_ROUTE,
            (0.25, Some(Duration::from_millis(50))),
        ));
        checks.push(paid_share(
            by("paid c=64 throughput vs direct, PostgreSQL + Redis, one hot account"),
            json(postgres),
            generator,
            PAID_ROUTE,
            (0.20, None),
        ));
        checks.push(paid_share(
            by("paid c=64, PostgreSQL + Redis, 1,000 accounts"),
            json(postgres),
            generator,
            accounts.as_deref().unwrap_or(&accounts_route(1000)),
            (0.25, None),
        ));
        let paid_added = added(json(postgres), generator, PAID_ROUTE, 1, |m| m.total.p50);
        checks.push(Check {
            what: by("paid c=1 added p50, PostgreSQL + Redis"),
            target: "≤ 200 µs".to_owned(),
            measured: paid_added.map_or("–".to_owned(), human_delta),
            met: paid_added.map(|v| v <= 200_000),
        });
        checks.push(free_over_floor(
            json(sqlite),
            generator,
            by("free c=1 added p50"),
        ));
        checks.push(paid_share(
            by("free c=64 throughput vs direct"),
            json(sqlite),
            generator,
            FREE_ROUTE,
            (0.40, None),
        ));
        if let Some(postgres) = postgres.filter(|p| !p.replicas.is_empty()) {
            for route in [PAID_ROUTE, accounts.as_deref().unwrap_or("")] {
                let Some(share) = throughput_share(&postgres.replicas, generator, route, 64) else {
                    continue;
                };
                checks.push(Check {
                    what: by(&format!(
                        "(no target) paid c=64, PostgreSQL + Redis, load split over replicas, {}",
                        route.trim_start_matches("paid, ")
                    )),
                    target: "–".to_owned(),
                    measured: percent(share),
                    met: None,
                });
            }
        }
    }
    let rss = sqlite.and_then(|s| s.embedded_rss_kib);
    checks.push(Check {
        what: "idle RSS, embedded default".to_owned(),
        target: "≤ 10 MiB".to_owned(),
        measured: rss.map_or("–".to_owned(), mib),
        met: rss.map(|kib| kib <= 10 * 1024),
    });
    checks
}

/// A backend's JSON rows; none when it did not run.
fn json(result: Option<&BackendResult>) -> &[Row] {
    result.map_or(&[], |r| &r.json)
}

/// The generators whose rows the run holds, in-process first.
fn generators_of(results: &[BackendResult]) -> Vec<Generator> {
    [Generator::Inner, Generator::Outer]
        .into_iter()
        .filter(|g| {
            results
                .iter()
                .any(|r| r.json.iter().any(|row| row.generator == *g))
        })
        .collect()
}

/// Throughput at c=64 as a share of direct, at least `goal.0`, and (when `goal.1` is set) a
/// p99 within it.
fn paid_share(
    what: String,
    rows: &[Row],
    generator: Generator,
    route: &str,
    goal: (f64, Option<Duration>),
) -> Check {
    let (least, p99_within) = goal;
    let share = throughput_share(rows, generator, route, 64);
    let p99 = find(rows, generator, route, 64).map(|r| r.measured.total.p99);
    let target = match p99_within {
        Some(limit) => format!("≥ {:.0} %, p99 ≤ {} ms", least * 100.0, limit.as_millis()),
        None => format!("≥ {:.0} %", least * 100.0),
    };
    let measured = match (share, p99_within.and(p99)) {
        (None, _) => "–".to_owned(),
        (Some(share), None) => percent(share),
        (Some(share), Some(p99)) => format!("{}, p99 {}", percent(share), human(p99)),
    };
    let p99_met = match (p99_within, p99) {
        (Some(limit), Some(p99)) => Some(u128::from(p99) <= limit.as_nanos()),
        (Some(_), None) => None,
        (None, _) => Some(true),
    };
    Check {
        what,
        target,
        measured,
        met: share.zip(p99_met).map(|(s, p)| s >= least && p),
    }
}

/// Free c=1 added p50 within the bare proxy's added p50 of the same run plus 25 µs.
fn free_over_floor(rows: &[Row], generator: Generator, what: String) -> Check {
    let p50 = |m: &Measured| m.total.p50;
    let free = added(rows, generator, FREE_ROUTE, 1, p50);
    let floor = added(rows, generator, BARE_ROUTE, 1, p50);
    let measured = match (free, floor) {
        (Some(free), Some(floor)) => format!(
            "{} (floor {}, so {} over it)",
            human_delta(free),
            human_delta(floor),
            human_delta(free - floor)
        ),
        (Some(free), None) => format!("{} (no floor: run without --no-floor)", human_delta(free)),
        (None, _) => "–".to_owned(),
    };
    Check {
        what,
        target: "≤ the floor + 25 µs".to_owned(),
        measured,
        met: free.zip(floor).map(|(free, floor)| free - floor <= 25_000),
    }
}
