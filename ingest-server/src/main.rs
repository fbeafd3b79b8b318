//! The `ingest-server` binary: parses the command line (see `ingest_server::config`) and runs
//! the chosen subcommand. `serve` is the default.

use anyhow::Context;
use clap::Parser;
use ingest_server::config::{Cli, Command, Config, KeyCommand, SiteCommand};
use ingest_server::store::Store;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Large blocks handed back to the system when freed (see `memory::configure`).
    ingest_server::memory::configure();
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.options.log).with_context(|| {
        format!(
            "TALLY_LOG / --log: {:?} is not a log filter",
            cli.options.log
        )
    })?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let config = Config::try_from(cli.options)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("binding {}", config.listen))?;
            ingest_server::serve(config, listener, ingest_server::shutdown_signal()).await?;
        }
        Command::Migrate => {
            Store::open(&config.database_url).await?;
            println!("migrations applied");
        }
        Command::Site(SiteCommand::Add { domain }) => {
            let domain = domain.trim().to_ascii_lowercase();
            tally_core::wire::validate_site(&domain)
                .map_err(|e| anyhow::anyhow!("{domain:?} {e}"))?;
            let store = Store::open(&config.database_url).await?;
            let (site, new) = store.add_site(&domain).await?;
            println!(
                "{} {}",
                if new { "added" } else { "already registered:" },
                site.domain
            );
        }
        Command::Site(SiteCommand::List) => {
            let store = Store::open(&config.database_url).await?;
            for site in store.sites().await? {
                println!("{}", site.domain);
            }
        }
        Command::Key(KeyCommand::Create { label }) => {
            let store = Store::open(&config.database_url).await?;
            println!("{}", store.create_key(label.as_deref()).await?);
        }
        Command::Demo { site, days } => {
            let domain = site.trim().to_ascii_lowercase();
            tally_core::wire::validate_site(&domain)
                .map_err(|e| anyhow::anyhow!("{domain:?} {e}"))?;
            anyhow::ensure!((1..=400).contains(&days), "--days must be from 1 to 400");
            let store = Store::open(&config.database_url).await?;
            let (site, _) = store.add_site(&domain).await?;
            match ingest_server::demo::fill(&store, site.id, days).await? {
                ingest_server::demo::DemoOutcome::Written { events } => {
                    println!("wrote {events} sample events over {days} days for {domain}")
                }
                ingest_server::demo::DemoOutcome::Skipped => {
                    println!("{domain} already has events; no sample traffic written")
                }
            }
        }
        Command::Events { site, limit } => {
            let store = Store::open(&config.database_url).await?;
            let site = store
                .site(&site.trim().to_ascii_lowercase())
                .await?
                .with_context(|| format!("site {site} is not registered"))?;
            for event in store.site_events(site.id, limit).await? {
                println!("{}", serde_json::to_string(&event)?);
            }
        }
    }
    Ok(())
}
