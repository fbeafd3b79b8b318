//! Stats query latency at 10 million events (filled in with the stats API).

use super::Row;

/// Runs the stats benchmark.
pub async fn run(_events: u64) -> anyhow::Result<Vec<Row>> {
    Ok(Vec::new())
}
