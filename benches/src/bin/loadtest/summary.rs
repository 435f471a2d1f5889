//! What the run prints: the header, the start-up and memory tables, and the targets checked.

use std::time::Duration;

use llmgate_benches::load::report::{Check, added, checks_table, spread, throughput_share};
use llmgate_benches::load::runner::Measured;
use llmgate_benches::load::stats::{human, human_delta};
use llmgate_benches::load::upstream::UpstreamSettings;

use crate::options::{Options, Plan};
use crate::scenarios::{BARE_ROUTE, BackendResult};

pub(crate) fn print_header(options: &Options, plan: &Plan, binary: &std::path::Path) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("# llmgate load test\n");
    println!(
        "- machine: {cpus} CPUs ({}), load average at the start: {}",
        cpu_model(),
        load_average()
    );
    println!(
        "- gateway: {} (RUST_LOG={}, traces {})",
        binary.display(),
        options.gateway_log,
        if options.traces {
            "exported over OTLP to a sink collector on loopback"
        } else {
            "off"
        }
    );
    println!(
        "- each cell: {} ms warm-up, then {} ms or {} requests, whichever ends first; closed loop, \
         one HTTP/1.1 keep-alive connection per concurrent client",
        plan.warmup.as_millis(),
        plan.duration.as_millis(),
        plan.max_requests
    );
    println!(
        "- added = gateway percentile − direct percentile from the same run; the fake upstream \
         answers at once ({} content chunks per stream); the bare proxy (hyper in, pooled \
         hyper client out, nothing else) shows what one extra loopback hop costs here\n",
        options.stream_chunks
    );
}

pub(crate) fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn print_summary(results: &[BackendResult], settings: &UpstreamSettings) {
    println!("## Start-up and memory\n");
    println!("| backend | spawn → /health 200 | RSS idle after start |\n|---|---:|---:|");
    for result in results {
        println!(
            "| {} | {:.1} ms | {} |",
            result.label,
            result.startup.as_secs_f64() * 1e3,
            result.idle_rss_kib.map_or("–".to_owned(), mib)
        );
    }
    for result in results {
        let Some(memory) = &result.memory else {
            continue;
        };
        println!(
            "\n### RSS over a soak ({}, JSON, free model, 64 connections)\n",
            result.label
        );
        println!("| requests | RSS | req/s in step |\n|---:|---:|---:|");
        for (requests, rss, rps) in &memory.soak {
            println!("| {requests} | {} | {rps:.0} |", mib(*rss));
        }
        println!("| idle 2 s later | {} | |", mib(memory.after_idle_kib));
        if let Some(streams) = &memory.streams {
            println!(
                "\n### {} slow streams open at once ({} chunks {} ms apart each)\n",
                streams.wanted,
                settings.slow_chunks,
                streams.gap.as_millis()
            );
            println!("| measure | value |\n|---|---:|");
            println!(
                "| streams completed / failed | {} / {}{} |",
                streams.completed,
                streams.failed,
                streams
                    .first_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"))
            );
            println!(
                "| most open at the upstream at once | {} |",
                streams.peak_open_upstream
            );
            println!(
                "| streams missing events (expected {}) | {} |",
                streams.expected_events, streams.short
            );
            println!(
                "| longest pause within a stream, p50 / p99 / max | {} |",
                spread(&streams.longest_gap)
            );
            println!("| stalls (pause > gap + 1 s) | {} |", streams.stalls);
            println!("| peak gateway RSS | {} |", mib(streams.peak_rss_kib));
            println!("| RSS 2 s after they ended | {} |", mib(streams.after_kib));
            println!("| wall time | {:.1} s |", streams.took.as_secs_f64());
        }
    }
    println!("\n## Targets\n");
    println!("{}", checks_table(&checks(results)));
}

pub(crate) fn checks(results: &[BackendResult]) -> Vec<Check> {
    let mut checks = Vec::new();
    let find = |label: &str| results.iter().find(|r| r.label == label);
    let latency = |what: &str, goal_us: u64, value: Option<i64>| Check {
        what: what.to_owned(),
        target: format!("≤ {goal_us} µs"),
        measured: value.map_or("–".to_owned(), human_delta),
        met: value.map(|v| v <= (goal_us * 1000) as i64),
    };
    let share = |what: &str, goal: f64, value: Option<f64>| Check {
        what: what.to_owned(),
        target: format!("≥ {:.0} %", goal * 100.0),
        measured: value.map_or("–".to_owned(), |v| format!("{:.0} %", v * 100.0)),
        met: value.map(|v| v >= goal),
    };
    let p50 = |m: &Measured| m.total.p50;
    let p99 = |m: &Measured| m.total.p99;
    if let Some(sqlite) = find("sqlite") {
        let free = "free (master key)";
        let paid = "paid (user key)";
        checks.push(latency(
            "added p50, JSON, c=1, free (SQLite)",
            50,
            added(&sqlite.json, free, 1, p50),
        ));
        checks.push(latency(
            "added p99, JSON, c=1, free (SQLite)",
            150,
            added(&sqlite.json, free, 1, p99),
        ));
        checks.push(latency(
            "added p50, JSON, c=1, paid on SQLite",
            150,
            added(&sqlite.json, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, free (SQLite)",
            0.40,
            throughput_share(&sqlite.json, free, 64),
        ));
        let floor = |what: &str, measured: String| Check {
            what: what.to_owned(),
            target: "(floor)".to_owned(),
            measured,
            met: None,
        };
        if let Some(added) = added(&sqlite.json, BARE_ROUTE, 1, p50) {
            checks.push(floor(
                "bare proxy: added p50, JSON, c=1",
                human_delta(added),
            ));
        }
        if let Some(share) = throughput_share(&sqlite.json, BARE_ROUTE, 64) {
            checks.push(floor(
                "bare proxy: throughput c=64 JSON",
                format!("{:.0} %", share * 100.0),
            ));
        }
        checks.push(share(
            "throughput c=64 JSON, paid on SQLite",
            0.25,
            throughput_share(&sqlite.json, paid, 64),
        ));
        checks.push(latency(
            "added TTFB p50, stream, c=1, free (SQLite)",
            200,
            added(&sqlite.stream, free, 1, |m| m.first_byte.p50),
        ));
        let per_chunk = added(&sqlite.stream, free, 1, |m| m.per_chunk.p50);
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
        if let Some(rss) = sqlite.idle_rss_kib {
            checks.push(Check {
                what: "RSS idle".to_owned(),
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
    if let Some(postgres) = find("postgres+redis") {
        let paid = "paid (user key)";
        checks.push(latency(
            "added p50, JSON, c=1, paid on PostgreSQL + Redis",
            500,
            added(&postgres.json, paid, 1, p50),
        ));
        checks.push(share(
            "throughput c=64 JSON, paid on PostgreSQL + Redis",
            0.15,
            throughput_share(&postgres.json, paid, 64),
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

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| {
            let parts: Vec<&str> = text.split_whitespace().take(3).collect();
            (parts.len() == 3).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| "?".to_owned())
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
