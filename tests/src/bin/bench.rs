//! The benchmark report: runs every benchmark of the project and prints one table.
//!
//! `cargo run --release -p tally-tests --bin bench` runs them all (tracker, edge, ingest,
//! stats, end to end); `bench tracker`, `bench edge`, `bench ingest`, `bench stats` or
//! `bench e2e` runs one part; `bench soak` (not part of "all") is the long steady load.
//! Figures depend on the machine; the README lists the ones measured on the project's 2-core
//! reference machine.

use clap::{Parser, Subcommand};
use tally_tests::bench::{self, Row};

#[derive(Parser)]
#[command(about = "Tally's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Seconds per throughput phase of the ingest benchmark.
    #[arg(long, default_value_t = 10, global = true)]
    seconds: u64,
    /// Seconds of the ingest benchmark's fixed-rate latency phase.
    #[arg(long, default_value_t = 30, global = true)]
    latency_seconds: u64,
    /// Concurrent clients of the ingest benchmark.
    #[arg(long, default_value_t = 128, global = true)]
    concurrency: usize,
    /// Target rate: requests/s of the ingest latency phase (default 10,000), events/s of the
    /// soak (default 5,000).
    #[arg(long, global = true)]
    rate: Option<u64>,
    /// Skip the PostgreSQL runs.
    #[arg(long, global = true)]
    no_postgres: bool,
    /// Events generated for the stats benchmark.
    #[arg(long, default_value_t = 10_000_000, global = true)]
    stats_events: u64,
}

#[derive(Subcommand)]
enum Cmd {
    /// Everything (the default).
    All,
    /// Ingest throughput, latency and memory.
    Ingest,
    /// Stats query latency.
    Stats,
    /// Tracker size and main-thread time (node tracker-wasm/bench.mjs).
    Tracker,
    /// Edge bundle size and per-request cost (edge-worker/bench.sh).
    Edge,
    /// End-to-end realtime latency through the whole chain (node tests/e2e/latency.mjs).
    E2e,
    /// A steady load for minutes: RSS over time, latency, sent / acknowledged / counted.
    Soak {
        /// How long the load lasts.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Events per request (1: one event per request).
        #[arg(long, default_value_t = 1)]
        batch: usize,
    },
    /// The no-op baseline server the ingest benchmark compares against.
    #[command(hide = true)]
    NoopServer {
        #[arg(long)]
        listen: String,
    },
}

fn print(rows: &[Row]) {
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    println!("\n| {:width$} | figure |", "benchmark");
    println!("|-{}-|--------|", "-".repeat(width));
    for r in rows {
        println!("| {:width$} | {} |", r.what, r.figure);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // As the server's process does (the stats benchmark counts in this one).
    ingest_server::memory::configure();
    let cli = Cli::parse();
    let settings = bench::ingest::Settings {
        seconds: cli.seconds,
        latency_seconds: cli.latency_seconds,
        concurrency: cli.concurrency,
        rate: cli.rate.unwrap_or(10_000),
        postgres: !cli.no_postgres,
    };
    let mut rows = Vec::new();
    match cli.command.unwrap_or(Cmd::All) {
        Cmd::NoopServer { listen } => return bench::ingest::serve_noop(&listen).await,
        Cmd::Ingest => rows.extend(bench::ingest::run(&settings).await?),
        Cmd::Stats => rows.extend(bench::stats::run(cli.stats_events).await?),
        Cmd::Tracker => rows.extend(bench::e2e::tracker().await),
        Cmd::Edge => rows.extend(bench::e2e::edge().await),
        Cmd::E2e => rows.extend(bench::e2e::chain().await),
        Cmd::Soak { minutes, batch } => {
            let soak = bench::soak::Settings {
                minutes,
                rate: cli.rate.unwrap_or(5_000),
                batch,
            };
            rows.extend(bench::soak::run(&soak).await?)
        }
        Cmd::All => {
            rows.extend(bench::e2e::tracker().await);
            rows.extend(bench::e2e::edge().await);
            rows.extend(bench::ingest::run(&settings).await?);
            rows.extend(bench::stats::run(cli.stats_events).await?);
            rows.extend(bench::e2e::chain().await);
        }
    }
    print(&rows);
    Ok(())
}
