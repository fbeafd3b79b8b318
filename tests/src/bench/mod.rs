//! The benchmarks. Each returns report rows `(what, figure)`; the `bench` binary prints them
//! as one table.

pub mod e2e;
pub mod ingest;
pub mod soak;
pub mod stats;

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub figure: String,
}

impl Row {
    pub fn new(what: impl Into<String>, figure: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            figure: figure.into(),
        }
    }
}
