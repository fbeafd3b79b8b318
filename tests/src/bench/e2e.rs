//! The benchmarks that run in a browser or under workerd, driven by their Node scripts; their
//! printed figures become rows of the report.
//!
//! - tracker: `node tracker-wasm/bench.mjs` — `t.js` + wasm size (gzip -9) and the
//!   main-thread time the tracker costs a page in headless Chromium;
//! - edge: `edge-worker/bench.sh` — the deployable bundle's size and the CPU and wall time of
//!   one event request under workerd;
//! - end to end: `node tests/e2e/latency.mjs` — the time from a page view request reaching
//!   the edge until `/api/stats/realtime` counts it, through the edge's queue and the ingest
//!   server (the chain of `tests/e2e/`).
//!
//! A script that fails gives a row saying so; the other parts still run.

use std::process::Stdio;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::ingest::workspace_root;
use super::Row;

/// Runs `program args` in the workspace root, echoing its output to stderr as it comes, and
/// returns its standard output.
async fn run_script(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(workspace_root())
        .env("TALLY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut out = String::new();
    while let Some(line) = lines.next_line().await? {
        eprintln!("  {line}");
        out.push_str(&line);
        out.push('\n');
    }
    let status = child.wait().await?;
    anyhow::ensure!(
        status.success(),
        "{program} {} failed: {status}",
        args.join(" ")
    );
    Ok(out)
}

/// The text after the `:` of the first line containing `label`, trimmed.
fn after_label<'a>(out: &'a str, label: &str) -> Option<&'a str> {
    let line = out.lines().find(|l| l.contains(label))?;
    let rest = &line[line.find(label)? + label.len()..];
    Some(rest.split_once(':').map_or(rest, |(_, v)| v).trim())
}

/// The value of `key=` in the first line starting with `prefix`.
fn key_value<'a>(out: &'a str, prefix: &str, key: &str) -> Option<&'a str> {
    let line = out.lines().find(|l| l.starts_with(prefix))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

fn found(what: &str, figure: Option<impl Into<String>>) -> Row {
    Row::new(
        what,
        figure.map_or_else(
            || "not found in the script's output".to_string(),
            Into::into,
        ),
    )
}

fn failed(what: &str, err: &anyhow::Error) -> Row {
    Row::new(what, format!("failed: {err:#}"))
}

/// The tracker's figures from the lines of `tracker-wasm/bench.mjs`.
fn tracker_rows(out: &str) -> Vec<Row> {
    // `total   3432 gzip -9 (budget 2560)`
    let total = out.lines().find(|l| l.starts_with("total")).and_then(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        let gzip = words.iter().position(|w| *w == "gzip")?;
        let budget = l
            .split_once('(')
            .map_or("", |(_, b)| b.trim_end_matches(')'));
        Some(format!(
            "{} bytes ({budget})",
            words.get(gzip.checked_sub(1)?)?
        ))
    });
    vec![
        found("tracker t.js + wasm, gzip -9", total),
        found(
            "tracker main-thread time: script + wasm compile/instantiate (Chromium, median)",
            after_label(out, "script evaluation + wasm compile/instantiate"),
        ),
        found(
            "tracker main-thread time: all tasks, incl. fetching the wasm and sending",
            after_label(out, "all main-thread tasks"),
        ),
    ]
}

/// The edge worker's figures from the lines of `edge-worker/bench.mjs`.
fn edge_rows(out: &str) -> Vec<Row> {
    vec![
        found(
            "edge bundle (wrangler deploy --dry-run)",
            after_label(out, "bundle (files, gzip -9)"),
        ),
        found(
            "edge CPU per event request (workerd process, incl. forwarding, median)",
            after_label(out, "median workerd CPU time per event request"),
        ),
        found(
            "edge wall time per event request (loopback, median)",
            after_label(out, "median wall time per event request"),
        ),
    ]
}

/// The end-to-end figure from the last line of `tests/e2e/latency.mjs`.
fn e2e_rows(out: &str) -> Vec<Row> {
    const PREFIX: &str = "e2e-realtime-latency-ms";
    let median = key_value(out, PREFIX, "median");
    let max = key_value(out, PREFIX, "max");
    let rounds = key_value(out, PREFIX, "rounds").unwrap_or("?");
    let figure = median
        .zip(max)
        .map(|(median, max)| format!("median {median} ms, max {max} ms"));
    vec![found(
        &format!(
            "end-to-end realtime latency: request at the edge to /api/stats/realtime ({rounds} visitors)"
        ),
        figure,
    )]
}

/// Tracker size and main-thread time.
pub async fn tracker() -> Vec<Row> {
    eprintln!("tracker: node tracker-wasm/bench.mjs");
    match run_script("node", &["tracker-wasm/bench.mjs"]).await {
        Ok(out) => tracker_rows(&out),
        Err(e) => vec![failed("tracker (node tracker-wasm/bench.mjs)", &e)],
    }
}

/// Edge bundle size and per-request cost.
pub async fn edge() -> Vec<Row> {
    eprintln!("edge: edge-worker/bench.sh");
    match run_script("bash", &["edge-worker/bench.sh"]).await {
        Ok(out) => edge_rows(&out),
        Err(e) => vec![failed("edge (edge-worker/bench.sh)", &e)],
    }
}

/// End-to-end realtime latency through the whole chain.
pub async fn chain() -> Vec<Row> {
    eprintln!("end to end: node tests/e2e/latency.mjs");
    match run_script("node", &["tests/e2e/latency.mjs"]).await {
        Ok(out) => e2e_rows(&out),
        Err(e) => vec![failed("end to end (node tests/e2e/latency.mjs)", &e)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.figure.as_str()).collect()
    }

    #[test]
    fn reads_the_tracker_benchmark() {
        let out = "t-81f0b359f216.wasm        4066 bytes   2417 gzip -9\n\
                   t.js                       1678 bytes   1015 gzip -9\n\
                   total                                   3432 gzip -9 (budget 2560)\n\
                   main-thread time of the tracker (median of 2 cold loads, with minus without):\n\
                   \x20 script evaluation + wasm compile/instantiate: 9.60 ms\n\
                   \x20 all main-thread tasks:                         55.56 ms\n";
        assert_eq!(
            figures(&tracker_rows(out)),
            ["3432 bytes (budget 2560)", "9.60 ms", "55.56 ms"]
        );
    }

    #[test]
    fn reads_the_edge_benchmark() {
        let out = "bundle (wrangler): Total Upload: 370.72 KiB / gzip: 145.83 KiB\n\
                   bundle (files, gzip -9): raw 370.7 KiB, gzip 145.8 KiB\n\
                   requests: 500 (one pageview each), all stored by the ingest server\n\
                   median wall time per event request (loopback, wrangler dev): 8.30 ms\n\
                   median workerd CPU time per event request (incl. forwarding): 2.00 ms\n";
        assert_eq!(
            figures(&edge_rows(out)),
            ["raw 370.7 KiB, gzip 145.8 KiB", "2.00 ms", "8.30 ms"]
        );
    }

    #[test]
    fn reads_the_end_to_end_latency() {
        let out = "round 1: 1146 ms\ne2e-realtime-latency-ms median=1078 max=1146 rounds=5\n";
        let rows = e2e_rows(out);
        assert_eq!(figures(&rows), ["median 1078 ms, max 1146 ms"]);
        assert!(rows[0].what.contains("(5 visitors)"));
    }

    #[test]
    fn says_when_a_figure_is_missing() {
        assert!(e2e_rows("nothing")[0].figure.contains("not found"));
        assert!(tracker_rows("")[0].figure.contains("not found"));
    }
}
