//! What the run prints: the header, the start-up and memory tables, and the targets checked.

use llmgate_benches::load::report::{checks_table, spread};
use llmgate_benches::load::stats::mib;
use llmgate_benches::load::upstream::UpstreamSettings;

use crate::options::{ClientChoice, Options, Plan, UpstreamChoice};
use crate::scenarios::BackendResult;
use crate::targets::{earlier_checks, issue_24_checks};

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
        "- load generators: {}; fake upstream {}; \"paid, N accounts\" spreads requests in turn \
         over {} funded users{}",
        match options.client {
            ClientChoice::Inner => "in-process (the harness's own runtime)",
            ClientChoice::Outer => "outside (`loadgen`, a process of its own, as wrk)",
            ClientChoice::Both =>
                "in-process and outside (`loadgen`, a process of its own), \
                                   one after the other in every cell",
        },
        match options.upstream {
            UpstreamChoice::Inner => "on a thread of the harness",
            UpstreamChoice::Outer => "in a process of its own",
        },
        options.accounts,
        if options.replicas > 1 {
            format!(
                "; PostgreSQL also with {} gateways on one database",
                options.replicas
            )
        } else {
            String::new()
        }
    );
    println!(
        "- added = gateway percentile − direct percentile from the same run; the fake upstream \
         answers at once ({} content chunks per stream); the bare proxy (hyper in, pooled \
         hyper client out, nothing else) shows what one extra loopback hop costs here\n",
        options.stream_chunks
    );
}

pub(crate) fn print_summary(results: &[BackendResult], settings: &UpstreamSettings) {
    println!("## Start-up and memory\n");
    println!(
        "| backend | spawn → /health 200 | RSS idle after start (harness config, 300 ms) | \
         RSS idle, embedded default (no config, 2 s) |\n|---|---:|---:|---:|"
    );
    for result in results {
        println!(
            "| {} | {:.1} ms | {} | {} |",
            result.label,
            result.startup.as_secs_f64() * 1e3,
            result.idle_rss_kib.map_or("–".to_owned(), mib),
            result.embedded_rss_kib.map_or("–".to_owned(), mib)
        );
    }
    for result in results {
        if let Some(cold) = &result.cold_accounts {
            println!(
                "\n{}: the first paid request of each of {} accounts new to the gateway \
                 (64 at a time, before the cells): p50 / p99 / max {}, {:.0} req/s, {} errors",
                result.label,
                cold.ok + cold.errors,
                spread(&cold.total),
                cold.throughput,
                cold.errors
            );
        }
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
    println!("{}", checks_table(&earlier_checks(results)));
    println!(
        "\n## Targets of issue 24 (paid without a database round trip, free path, idle memory)\n"
    );
    println!("{}", checks_table(&issue_24_checks(results)));
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
