//! The `runnel` binary: `runnel serve` starts a broker (embedded defaults, or Kafka's
//! `server.properties` keys from `--config`, `RUNNEL_*` environment variables and `--override`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use runnel_config::BrokerConfig;
use tracing::{info, warn};

/// Runnel: a Kafka-compatible event streaming platform in one binary.
#[derive(Parser)]
#[command(name = "runnel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a broker.
    Serve {
        /// A Kafka-style server.properties file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override one setting: `--override key=value` (repeatable; wins over file and env).
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

fn parse_override(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("--override expects key=value, got {s:?}"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNEL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runnel: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, overrides } => {
            let overrides = overrides
                .iter()
                .map(|s| parse_override(s))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let env: Vec<(String, String)> = std::env::vars().collect();
            let loaded = BrokerConfig::load(config.as_deref(), &env, &overrides)?;
            for w in &loaded.warnings {
                warn!("{w}");
            }
            info!("effective configuration:");
            for (k, v, _) in &loaded.effective {
                info!("  {k} = {v}");
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(loaded.config))
        }
    }
}

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    let handle = runnel_broker::Broker::start(config).await?;
    info!(cluster_id = %handle.broker.cluster_id, "Runnel broker started");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received: shutting down"),
        _ = term.recv() => info!("SIGTERM received: shutting down"),
    }
    handle.shutdown().await?;
    info!("shutdown complete");
    Ok(())
}
