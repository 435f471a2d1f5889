//! Markdown tables of direct-vs-gateway measurements, with the added latency as the difference
//! of the two (gateway percentile minus direct percentile, from the same run).

use std::fmt::Write;

use super::runner::Measured;
use super::stats::{Percentiles, human, human_delta};

/// Which load generator measured a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Generator {
    /// In the harness's own process, on its runtime, beside the fake upstream's thread.
    #[default]
    Inner,
    /// The `loadgen` binary, a process of its own (as `wrk` would be).
    Outer,
}

impl Generator {
    pub fn label(self) -> &'static str {
        match self {
            Generator::Inner => "in-process client",
            Generator::Outer => "outside client",
        }
    }
}

/// One measured cell: a route at a concurrency, measured by one generator.
#[derive(Debug, Clone)]
pub struct Row {
    pub generator: Generator,
    pub concurrency: usize,
    /// `direct`, `free (master key)`, `paid (user key)`.
    pub route: String,
    pub measured: Measured,
    /// The gateway's CPU time per answered request (all its threads), when measured.
    pub cpu_per_request: Option<u64>,
}

/// The direct row a gateway row compares against: same concurrency, same generator.
fn baseline(rows: &[Row], generator: Generator, concurrency: usize) -> Option<&Measured> {
    rows.iter()
        .find(|r| r.generator == generator && r.concurrency == concurrency && r.route == "direct")
        .map(|r| &r.measured)
}

/// The row of `route` at `concurrency` measured by `generator`.
pub fn find<'a>(
    rows: &'a [Row],
    generator: Generator,
    route: &str,
    concurrency: usize,
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.generator == generator && r.concurrency == concurrency && r.route == route)
}

fn delta(gateway: u64, direct: u64) -> i64 {
    gateway as i64 - direct as i64
}

fn share(gateway: &Measured, direct: &Measured) -> String {
    if direct.throughput > 0.0 {
        percent(gateway.throughput / direct.throughput)
    } else {
        "–".to_owned()
    }
}

/// A share (0–1) as a percentage: one decimal below 10 %, where a whole number hides a lot.
pub fn percent(share: f64) -> String {
    let percent = share * 100.0;
    if percent < 10.0 {
        format!("{percent:.1} %")
    } else {
        format!("{percent:.0} %")
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
        match baseline(rows, row.generator, row.concurrency) {
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
        match baseline(rows, row.generator, row.concurrency) {
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
    generator: Generator,
    route: &str,
    concurrency: usize,
    pick: fn(&Measured) -> u64,
) -> Option<i64> {
    let direct = baseline(rows, generator, concurrency)?;
    let gateway = find(rows, generator, route, concurrency)?;
    Some(delta(pick(&gateway.measured), pick(direct)))
}

/// Throughput of a gateway row as a share of its direct row (0–1).
pub fn throughput_share(
    rows: &[Row],
    generator: Generator,
    route: &str,
    concurrency: usize,
) -> Option<f64> {
    let direct = baseline(rows, generator, concurrency)?;
    let gateway = find(rows, generator, route, concurrency)?;
    (direct.throughput > 0.0).then(|| gateway.measured.throughput / direct.throughput)
}

/// The two generators' figures of each JSON cell, side by side: throughput, its share of the
/// same generator's direct figure, p50 and p99.
pub fn side_by_side(rows: &[Row]) -> String {
    let mut out = String::from(
        "| conc | route | in-process req/s | vs direct | p50 | p99 | outside req/s | vs direct | p50 | p99 |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let cell = |row: Option<&Row>| match row {
        None => " – | – | – | – |".to_owned(),
        Some(row) => {
            let m = &row.measured;
            let vs = match baseline(rows, row.generator, row.concurrency) {
                Some(direct) if row.route != "direct" => share(m, direct),
                _ => String::new(),
            };
            format!(
                " {:.0} | {vs} | {} | {} |",
                m.throughput,
                human(m.total.p50),
                human(m.total.p99)
            )
        }
    };
    for row in rows.iter().filter(|r| r.generator == Generator::Inner) {
        let outer = find(rows, Generator::Outer, &row.route, row.concurrency);
        let _ = writeln!(
            out,
            "| {} | {} |{}{}",
            row.concurrency,
            row.route,
            cell(Some(row)),
            cell(outer)
        );
    }
    out
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
            generator: Generator::Inner,
            concurrency: 1,
            route: route.to_owned(),
            measured,
            cpu_per_request: None,
        }
    }

    #[test]
    fn added_latency_is_gateway_minus_direct() {
        let rows = vec![row("direct", 100_000, 1000.0), row("free", 140_000, 500.0)];
        let inner = Generator::Inner;
        assert_eq!(
            added(&rows, inner, "free", 1, |m| m.total.p50),
            Some(40_000)
        );
        assert_eq!(throughput_share(&rows, inner, "free", 1), Some(0.5));
        assert_eq!(throughput_share(&rows, Generator::Outer, "free", 1), None);
        let table = json_table(&rows);
        assert!(table.contains("+40µs"), "{table}");
        assert!(table.contains("50 %"), "{table}");
    }

    #[test]
    fn each_generator_is_compared_with_its_own_direct_row() {
        let mut rows = vec![row("direct", 100_000, 1000.0), row("free", 140_000, 500.0)];
        let outer = |mut row: Row| {
            row.generator = Generator::Outer;
            row
        };
        rows.push(outer(row("direct", 100_000, 2000.0)));
        rows.push(outer(row("free", 150_000, 200.0)));
        let outside = Generator::Outer;
        assert_eq!(throughput_share(&rows, outside, "free", 1), Some(0.1));
        assert_eq!(
            added(&rows, outside, "free", 1, |m| m.total.p50),
            Some(50_000)
        );
        let table = side_by_side(&rows);
        assert!(table.contains("| 1 | free | 500 | 50 % |"), "{table}");
        assert!(table.contains("| 200 | 10 % |"), "{table}");
        assert_eq!(percent(0.034), "3.4 %");
        assert_eq!(percent(0.25), "25 %");
    }
}
