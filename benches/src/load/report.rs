//! Markdown tables of direct-vs-gateway measurements, with the added latency as the difference
//! of the two (gateway percentile minus direct percentile, from the same run).

use std::fmt::Write;

use super::runner::Measured;
use super::stats::{Percentiles, human, human_delta};

/// One measured cell: a route at a concurrency.
#[derive(Debug, Clone)]
pub struct Row {
    pub concurrency: usize,
    /// `direct`, `free (master key)`, `paid (user key)`.
    pub route: String,
    pub measured: Measured,
    /// The gateway's CPU time per answered request (all its threads), when measured.
    pub cpu_per_request: Option<u64>,
}

/// The direct row a gateway row compares against.
fn baseline(rows: &[Row], concurrency: usize) -> Option<&Measured> {
    rows.iter()
        .find(|r| r.concurrency == concurrency && r.route == "direct")
        .map(|r| &r.measured)
}

fn delta(gateway: u64, direct: u64) -> i64 {
    gateway as i64 - direct as i64
}

fn share(gateway: &Measured, direct: &Measured) -> String {
    if direct.throughput > 0.0 {
        format!("{:.0} %", 100.0 * gateway.throughput / direct.throughput)
    } else {
        "–".to_owned()
    }
}

fn cpu(row: &Row) -> String {
    row.cpu_per_request.map_or(String::new(), human)
}

fn errors(measured: &Measured) -> String {
    match (&measured.first_error, measured.errors) {
        (_, 0) => String::new(),
        (Some(first), n) => format!(" ⚠ {n} errors ({first})"),
        (None, n) => format!(" ⚠ {n} errors"),
    }
}

/// JSON requests: latency percentiles, throughput, added latency.
pub fn json_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| conc | route | p50 | p99 | p99.9 | req/s | added p50 | added p99 | added p99.9 | throughput vs direct | gateway CPU / req |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let m = &row.measured;
        let t = &m.total;
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {:.0} |",
            row.concurrency,
            row.route,
            human(t.p50),
            human(t.p99),
            human(t.p999),
            m.throughput
        );
        match baseline(rows, row.concurrency) {
            Some(direct) if row.route != "direct" => {
                let d = &direct.total;
                let _ = write!(
                    out,
                    " {} | {} | {} | {} |",
                    human_delta(delta(t.p50, d.p50)),
                    human_delta(delta(t.p99, d.p99)),
                    human_delta(delta(t.p999, d.p999)),
                    share(m, direct)
                );
            }
            _ => out.push_str(" | | | |"),
        }
        let _ = write!(out, " {} |", cpu(row));
        let _ = writeln!(out, "{}", errors(m));
    }
    out
}

/// Streams: time to first byte, per-chunk delay, total, and what the gateway adds to each.
pub fn stream_table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| conc | route | TTFB p50 | TTFB p99 | per chunk p50 | total p50 | total p99 | total p99.9 | req/s | added TTFB p50 | added TTFB p99 | added per chunk p50 | added total p50 | throughput vs direct | gateway CPU / req |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let m = &row.measured;
        let _ = write!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            row.concurrency,
            row.route,
            human(m.first_byte.p50),
            human(m.first_byte.p99),
            human(m.per_chunk.p50),
            human(m.total.p50),
            human(m.total.p99),
            human(m.total.p999),
            m.throughput
        );
        match baseline(rows, row.concurrency) {
            Some(direct) if row.route != "direct" => {
                let _ = write!(
                    out,
                    " {} | {} | {} | {} | {} |",
                    human_delta(delta(m.first_byte.p50, direct.first_byte.p50)),
                    human_delta(delta(m.first_byte.p99, direct.first_byte.p99)),
                    human_delta(delta(m.per_chunk.p50, direct.per_chunk.p50)),
                    human_delta(delta(m.total.p50, direct.total.p50)),
                    share(m, direct)
                );
            }
            _ => out.push_str(" | | | | |"),
        }
        let _ = write!(out, " {} |", cpu(row));
        let _ = writeln!(out, "{}", errors(m));
    }
    out
}

/// One target check for the summary.
#[derive(Debug, Clone)]
pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

pub fn checks_table(checks: &[Check]) -> String {
    let mut out = String::from("| target | goal | measured | met |\n|---|---:|---:|:---:|\n");
    for check in checks {
        let met = match check.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            check.what, check.target, check.measured, met
        );
    }
    out
}

/// Added latency at a percentile of a gateway row over its direct row.
pub fn added(
    rows: &[Row],
    route: &str,
    concurrency: usize,
    pick: fn(&Measured) -> u64,
) -> Option<i64> {
    let direct = baseline(rows, concurrency)?;
    let gateway = rows
        .iter()
        .find(|r| r.concurrency == concurrency && r.route == route)?;
    Some(delta(pick(&gateway.measured), pick(direct)))
}

/// Throughput of a gateway row as a share of its direct row (0–1).
pub fn throughput_share(rows: &[Row], route: &str, concurrency: usize) -> Option<f64> {
    let direct = baseline(rows, concurrency)?;
    let gateway = rows
        .iter()
        .find(|r| r.concurrency == concurrency && r.route == route)?;
    (direct.throughput > 0.0).then(|| gateway.measured.throughput / direct.throughput)
}

/// A percentile summary in one cell (`p50 / p99 / max`).
pub fn spread(p: &Percentiles) -> String {
    format!("{} / {} / {}", human(p.p50), human(p.p99), human(p.max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(route: &str, p50: u64, rps: f64) -> Row {
        let mut measured = Measured::default();
        measured.total.p50 = p50;
        measured.throughput = rps;
        Row {
            concurrency: 1,
            route: route.to_owned(),
            measured,
            cpu_per_request: None,
        }
    }

    #[test]
    fn added_latency_is_gateway_minus_direct() {
        let rows = vec![row("direct", 100_000, 1000.0), row("free", 140_000, 500.0)];
        assert_eq!(added(&rows, "free", 1, |m| m.total.p50), Some(40_000));
        assert_eq!(throughput_share(&rows, "free", 1), Some(0.5));
        let table = json_table(&rows);
        assert!(table.contains("+40µs"), "{table}");
        assert!(table.contains("50 %"), "{table}");
    }
}
