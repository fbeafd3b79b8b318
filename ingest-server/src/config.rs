//! Command line and environment (CONTRACT §5), parsed once into a typed, validated [`Config`].
//!
//! Every flag is also an environment variable; clap reads both, so tests build a `Config`
//! from an argument list without touching the process environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderName;
use clap::{Args, Parser, Subcommand};

use crate::pipeline::PipelineConfig;

/// Tally's ingest server.
#[derive(Debug, Parser)]
#[command(name = "ingest-server", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub options: Options,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the collector, the stats API and the admin page (the default).
    Serve,
    /// Register or list sites.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Manage stats API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Apply the database migrations and exit.
    Migrate,
    /// Register a site (default `localhost`) and fill it with realistic sample traffic of the
    /// last days, so that the admin page shows full charts. Does nothing if the site already
    /// has events.
    Demo {
        #[arg(long, default_value = "localhost")]
        site: String,
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// Print a site's stored events as JSON lines, oldest first.
    Events {
        #[arg(long)]
        site: String,
        #[arg(long, default_value_t = 10_000)]
        limit: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Register a site by its domain (example.com).
    Add { domain: String },
    /// List the registered sites.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a stats API key and print it (only its hash is stored).
    Create {
        #[arg(long)]
        label: Option<String>,
    },
}

/// Options shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Options {
    /// Address to serve on.
    #[arg(
        long,
        env = "TALLY_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// `sqlite://PATH` (embedded, the default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tally.db",
        global = true
    )]
    pub database_url: String,
    /// Shared secret of the edge worker's signed batches; without it the edge endpoints are off.
    #[arg(long, env = "TALLY_EDGE_SECRET", hide_env_values = true, global = true)]
    pub edge_secret: Option<String>,
    /// Folder with the tracker's built assets (`t.js` and its wasm).
    #[arg(
        long,
        env = "TALLY_TRACKER_DIR",
        default_value = "dist/tracker",
        global = true
    )]
    pub tracker_dir: PathBuf,
    /// Folder of the admin page.
    #[arg(long, env = "TALLY_WWW_DIR", default_value = "www", global = true)]
    pub www_dir: PathBuf,
    /// Trusted request header holding the visitor's country code (e.g. `CF-IPCountry`).
    #[arg(long, env = "TALLY_COUNTRY_HEADER", global = true)]
    pub country_header: Option<String>,
    /// MaxMind / DB-IP country database (`.mmdb`) used when no country header is set.
    #[arg(long, env = "TALLY_GEOIP_DB", global = true)]
    pub geoip_db: Option<PathBuf>,
    /// Trusted request header holding the client IP (e.g. `X-Forwarded-For` behind a proxy);
    /// by default the connection's address is used.
    #[arg(long, env = "TALLY_IP_HEADER", global = true)]
    pub ip_header: Option<String>,
    /// Extra sensitive parameter / prop name words, comma-separated.
    #[arg(long, env = "TALLY_REDACT", value_delimiter = ',', global = true)]
    pub redact: Vec<String>,
    /// Raw events older than this many days are pruned (rollups stay).
    #[arg(
        long,
        env = "TALLY_RETENTION_DAYS",
        default_value_t = 400,
        global = true
    )]
    pub retention_days: u32,
    /// `POST /api/event` requests allowed per client IP per minute (0: no limit).
    #[arg(long, env = "TALLY_RATE_LIMIT", default_value_t = 600, global = true)]
    pub rate_limit: u32,
    /// Events that may wait for the writer before requests get `503`.
    #[arg(
        long,
        env = "TALLY_QUEUE_CAPACITY",
        default_value_t = 50_000,
        global = true
    )]
    pub queue_capacity: usize,
    /// Most events written in one transaction.
    #[arg(long, env = "TALLY_MAX_BATCH", default_value_t = 5_000, global = true)]
    pub max_batch: usize,
    /// Milliseconds the writer waits for more events before a commit. With 0 it commits what
    /// is waiting at once, and what arrives during that commit forms the next batch.
    #[arg(long, env = "TALLY_LINGER_MS", default_value_t = 0, global = true)]
    pub linger_ms: u64,
    /// MiB of decoded day digests kept in memory for the filtered stats queries that follow
    /// (about 15 MiB a million events; unused ones go after 5 minutes).
    #[arg(
        long,
        env = "TALLY_DIGEST_CACHE_MB",
        default_value_t = 256,
        global = true
    )]
    pub digest_cache_mb: usize,
    /// Monitors file (YAML, CONTRACT §7); read at start and on SIGHUP.
    #[arg(long, env = "TALLY_MONITORS", global = true)]
    pub monitors: Option<PathBuf>,
    /// SMTP server for monitor e-mails: `smtp://host:port` (plain), `smtps://…` (TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS).
    #[arg(long, env = "TALLY_SMTP_URL", hide_env_values = true, global = true)]
    pub smtp_url: Option<String>,
    /// Sender address of monitor e-mails.
    #[arg(
        long,
        env = "TALLY_SMTP_FROM",
        default_value = "tally@localhost",
        global = true
    )]
    pub smtp_from: String,
    /// Log filter, in `tracing`'s syntax (`info`, `warn,ingest_server=debug`, …).
    #[arg(long, env = "TALLY_LOG", default_value = "info", global = true)]
    pub log: String,
}

/// Shortest raw-event retention: longer than the edge's longest redelivery (14 days).
pub const MIN_RETENTION_DAYS: u32 = 15;

/// Validated configuration of a running server.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub edge_secret: Option<Vec<u8>>,
    pub tracker_dir: PathBuf,
    pub www_dir: PathBuf,
    pub country_header: Option<HeaderName>,
    pub geoip_db: Option<PathBuf>,
    pub ip_header: Option<HeaderName>,
    pub redact: Vec<String>,
    pub retention_days: u32,
    pub rate_limit: u32,
    pub pipeline: PipelineConfig,
    /// Bytes of decoded day digests kept in memory.
    pub digest_cache_bytes: usize,
    pub monitors: Option<PathBuf>,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
}

impl TryFrom<Options> for Config {
    type Error = anyhow::Error;

    fn try_from(o: Options) -> anyhow::Result<Config> {
        let header = |name: Option<String>, what: &str| -> anyhow::Result<Option<HeaderName>> {
            name.filter(|n| !n.trim().is_empty())
                .map(|n| {
                    HeaderName::try_from(n.trim().to_ascii_lowercase())
                        .map_err(|_| anyhow::anyhow!("{what}: {n:?} is not a valid header name"))
                })
                .transpose()
        };
        let edge_secret = o.edge_secret.filter(|s| !s.is_empty());
        if let Some(secret) = &edge_secret {
            anyhow::ensure!(
                secret.len() >= 16,
                "TALLY_EDGE_SECRET must be at least 16 characters long"
            );
        }
        anyhow::ensure!(
            o.queue_capacity > 0,
            "TALLY_QUEUE_CAPACITY must be positive"
        );
        anyhow::ensure!(o.max_batch > 0, "TALLY_MAX_BATCH must be positive");
        // An event id is remembered as long as its raw event is kept, and the edge may deliver
        // an event again for up to 14 days (its dead-letter queue): a shorter retention would
        // let such a redelivery count twice.
        anyhow::ensure!(
            o.retention_days >= MIN_RETENTION_DAYS,
            "TALLY_RETENTION_DAYS must be at least {MIN_RETENTION_DAYS}: events are deduplicated by id for as long as they are kept, and the edge may redeliver an event for up to 14 days"
        );
        Ok(Config {
            listen: o.listen,
            database_url: o.database_url,
            edge_secret: edge_secret.map(String::into_bytes),
            tracker_dir: o.tracker_dir,
            www_dir: o.www_dir,
            country_header: header(o.country_header, "TALLY_COUNTRY_HEADER")?,
            geoip_db: o.geoip_db,
            ip_header: header(o.ip_header, "TALLY_IP_HEADER")?,
            redact: o
                .redact
                .into_iter()
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
            retention_days: o.retention_days,
            rate_limit: o.rate_limit,
            pipeline: PipelineConfig {
                capacity: o.queue_capacity,
                max_batch: o.max_batch,
                linger: Duration::from_millis(o.linger_ms),
            },
            digest_cache_bytes: o.digest_cache_mb.saturating_mul(1 << 20),
            monitors: o.monitors.filter(|p| !p.as_os_str().is_empty()),
            smtp_url: o.smtp_url.filter(|u| !u.trim().is_empty()),
            smtp_from: o.smtp_from,
        })
    }
}

impl Config {
    /// A configuration for tests: an explicit argument list, no environment.
    pub fn from_args<I, S>(args: I) -> anyhow::Result<Config>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(
            std::iter::once("ingest-server".into()).chain(args.into_iter().map(Into::into)),
        )?;
        Config::try_from(cli.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_contract() {
        let cli = Cli::try_parse_from(["ingest-server"]).expect("parses");
        assert!(cli.command.is_none());
        assert_eq!(cli.options.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cli.options.database_url, "sqlite://tally.db");
    }

    #[test]
    fn values_are_validated() {
        let c = Config::from_args([
            "--country-header",
            "CF-IPCountry",
            "--redact",
            "coupon, Ref",
            "--edge-secret",
            "0123456789abcdef",
        ])
        .expect("valid");
        assert_eq!(c.country_header.expect("set").as_str(), "cf-ipcountry");
        assert_eq!(c.redact, vec!["coupon", "ref"]);
        assert_eq!(c.digest_cache_bytes, 256 << 20);
        let c = Config::from_args(["--digest-cache-mb", "16"]).expect("valid");
        assert_eq!(c.digest_cache_bytes, 16 << 20);
        assert!(Config::from_args(["--edge-secret", "short"]).is_err());
        assert!(Config::from_args(["--country-header", "bad header"]).is_err());
        assert!(Config::from_args(["--listen", "nowhere"]).is_err());
    }

    #[test]
    fn subcommands_parse() {
        let cli =
            Cli::try_parse_from(["ingest-server", "site", "add", "example.com"]).expect("parses");
        assert!(
            matches!(cli.command, Some(Command::Site(SiteCommand::Add { domain })) if domain == "example.com")
        );
        let cli = Cli::try_parse_from([
            "ingest-server",
            "--database-url",
            "sqlite://x.db",
            "key",
            "create",
        ])
        .expect("parses");
        assert!(matches!(
            cli.command,
            Some(Command::Key(KeyCommand::Create { .. }))
        ));
    }
}
