//! The `runnel` binary: `runnel serve` starts a broker (embedded defaults, or Kafka's
//! `server.properties` keys from `--config`, `RUNNEL_*` environment variables and `--override`);
//! the other commands are a client of any Kafka-compatible cluster, built on `runnel-client`:
//! topics, produce, consume, groups, records, cluster, quotas, ACLs, users and perf. Client
//! commands speak TLS and SASL as the `security.protocol`, `ssl.*` and `sasl.*` properties say
//! (`-X` or the profile).
//!
//! Exit codes: 0 success, 1 an error from the cluster, 2 bad usage or settings, 3 a topic,
//! partition, group or user that does not exist, 4 no broker reachable, 5 a timeout, 6 an
//! authentication failure (SASL credentials refused, TLS handshake failed), 7 not authorized
//! (an ACL denies it).

use std::path::PathBuf;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use runnel_config::BrokerConfig;
use tracing::{info, warn};

mod acl;
mod admin;
mod console;
mod consume;
mod notify;
mod output;
mod perf;
mod produce;
mod quota;
mod settings;
mod user;

use output::Format;

/// What `runnel --version` prints after the name: the version, the commit and the build date.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("RUNNEL_COMMIT"),
    ", built ",
    env!("RUNNEL_BUILD_DATE"),
    ")"
);

/// Runnel: a Kafka-compatible event streaming platform in one binary.
#[derive(Parser)]
#[command(name = "runnel", version = VERSION, about)]
struct Cli {
    /// Brokers to bootstrap from, `host:port[,host:port]` (env RUNNEL_BOOTSTRAP_SERVER).
    #[arg(long, short = 'b', global = true, value_name = "HOST:PORT")]
    bootstrap_server: Option<String>,
    /// A named profile of client settings from the profiles file (env RUNNEL_PROFILE).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// The profiles file (env RUNNEL_PROFILES; default ~/.config/runnel/profiles).
    #[arg(long, global = true, value_name = "FILE")]
    profiles_file: Option<PathBuf>,
    /// A Kafka client property, e.g. `-X client.id=ops` (repeatable).
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Text)]
    format: Format,
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
    /// Create, list, describe, delete and configure topics.
    #[command(subcommand)]
    Topic(admin::TopicCmd),
    /// Produce records: one per line from stdin or a file.
    Produce(produce::ProduceArgs),
    /// Consume records and print them.
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    #[command(subcommand)]
    Group(admin::GroupCmd),
    /// Delete records.
    #[command(subcommand)]
    Records(admin::RecordsCmd),
    /// Describe the cluster.
    #[command(subcommand)]
    Cluster(admin::ClusterCmd),
    /// Client quotas of users and client ids.
    #[command(subcommand)]
    Quota(quota::QuotaCmd),
    /// ACLs: who may do what on topics, groups, transactional ids and the cluster.
    #[command(subcommand)]
    Acl(acl::AclCmd),
    /// SCRAM users: list them, set and delete their passwords.
    #[command(subcommand)]
    User(user::UserCmd),
    /// Throughput and latency tests.
    #[command(subcommand)]
    Perf(perf::PerfCmd),
    /// Print a shell completion script: `runnel completions bash > /etc/bash_completion.d/runnel`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The broker's configuration keys.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// The web console: topics, messages and consumer groups of any Kafka-compatible cluster in
    /// a browser (`runnel console -b HOST:PORT --listen 127.0.0.1:8080`).
    Console(console::ConsoleArgs),
}

/// `runnel config ...`
#[derive(Subcommand)]
enum ConfigCmd {
    /// Print the configuration reference (Markdown): every broker key and topic config with its
    /// type, default, valid values and whether it changes at run time.
    Reference,
}

/// What a client command needs: settings and output format.
pub struct Ctx {
    /// Resolved connection settings.
    pub settings: settings::Settings,
    /// `--format`.
    pub format: Format,
}

impl Ctx {
    /// The client configuration with every `-X`/profile property that is a client setting.
    pub fn client_config(&self) -> anyhow::Result<runnel_client::ClientConfig> {
        let mut c = runnel_client::ClientConfig::new(&self.settings.bootstrap);
        c.client_id = "runnel-cli".into();
        for (k, v) in &self.settings.properties {
            c.set(k, v)?;
        }
        Ok(c)
    }
}

impl Ctx {
    /// Applies every profile/`-X` property with `set`; a key the role does not know is
    /// reported and skipped (as Kafka's clients warn about unused configs), a bad value fails.
    pub fn apply_properties(
        &self,
        mut set: impl FnMut(&str, &str) -> runnel_client::Result<()>,
    ) -> anyhow::Result<()> {
        for (k, v) in &self.settings.properties {
            match set(k, v) {
                Ok(()) => {}
                Err(e @ runnel_client::Error::UnknownSetting(_)) => {
                    eprintln!("runnel: ignoring {k}: {e}");
                }
                Err(e) => return Err(Usage(format!("{k}={v}: {e}")).into()),
            }
        }
        Ok(())
    }
}

fn parse_override(s: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .with_context(|| format!("--override expects key=value, got {s:?}"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

/// A usage error detected after parsing (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit code and a hint for an error.
fn classify(e: &anyhow::Error, bootstrap: &str) -> (u8, Option<String>) {
    use runnel_client::Error as E;
    if e.downcast_ref::<Usage>().is_some() {
        return (2, None);
    }
    let Some(ce) = e.chain().find_map(|c| c.downcast_ref::<E>()) else {
        return (1, None);
    };
    classify_client(ce, bootstrap)
}

/// The exit code and a hint for a client error.
pub fn classify_client(ce: &runnel_client::Error, bootstrap: &str) -> (u8, Option<String>) {
    use runnel_client::Error as E;
    match ce {
        E::Connect { .. } | E::Disconnected(_) => (
            4,
            Some(format!(
                "is a broker running at {bootstrap}? Pass --bootstrap-server host:port or set RUNNEL_BOOTSTRAP_SERVER"
            )),
        ),
        E::Timeout { .. } => (5, Some("the cluster did not answer in time; check that the brokers are up, or raise -X request.timeout.ms".into())),
        E::Config(_) | E::UnknownSetting(_) => (2, None),
        E::Authentication(_) => (
            6,
            Some("check the credentials (sasl.mechanism, sasl.jaas.config or sasl.username/sasl.password) and the TLS settings (ssl.truststore.location, ssl.keystore.location) against the listener's security.protocol".into()),
        ),
        E::NotFound(_) => (3, None),
        E::Kafka { code, .. } => match code {
            3 => (3, Some("`runnel topic list` shows the topics that exist".into())),
            69 => (3, Some("`runnel group list` shows the groups that exist".into())),
            36 => (1, Some("pass --if-not-exists to accept an existing topic".into())),
            68 => (1, Some("the group still has members: stop its consumers first".into())),
            37 | 38 | 40 | 42 | 44 => (2, None),
            29..=31 | 53 => (
                7,
                Some("the principal is not authorized: an administrator can grant it with `runnel acl create --allow-principal User:<name> --operation <op> ...`; `runnel acl list` shows the ACLs".into()),
            ),
            _ => (1, None),
        },
        _ => (1, None),
    }
}

/// Sets up logging: `runnel serve` logs to stdout, as text or JSON lines (`log.format`), at the
/// levels of `RUNNEL_LOG` (default info), which the broker-logger configs change at run time;
/// client commands keep stdout for data and log warnings to stderr (`runnel console`: info).
fn init_logging(cli: &Cli) {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    let serving = matches!(cli.command, Command::Serve { .. });
    // Client commands log warnings only unless RUNNEL_LOG says otherwise; the console logs what
    // its users change (info, on stderr).
    let console = matches!(cli.command, Command::Console(_));
    let initial = std::env::var("RUNNEL_LOG")
        .unwrap_or_else(|_| if serving || console { "info" } else { "warn" }.to_string());
    let filter = EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match &cli.command {
        // The configuration is loaded again (and its errors reported) when serving starts.
        Command::Serve { config, overrides } => {
            let overrides: Vec<(String, String)> = overrides
                .iter()
                .filter_map(|o| parse_override(o).ok())
                .collect();
            let env: Vec<(String, String)> = std::env::vars().collect();
            BrokerConfig::load(config.as_deref(), &env, &overrides)
                .is_ok_and(|l| l.config.log_format == "json")
        }
        _ => false,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let output = if json {
        fmt::layer().json().with_writer(std::io::stdout).boxed()
    } else if serving {
        fmt::layer()
            .with_target(false)
            .with_writer(std::io::stdout)
            .boxed()
    } else {
        fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    if serving {
        runnel_broker::logging::install(
            &initial,
            Box::new(move |directives| {
                let filter = EnvFilter::try_new(directives).map_err(|e| e.to_string())?;
                handle.reload(filter).map_err(|e| e.to_string())
            }),
        );
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    let bootstrap = cli.bootstrap_server.clone().unwrap_or_default();
    match run(cli) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            let (code, hint) = classify(
                &e,
                if bootstrap.is_empty() {
                    "127.0.0.1:9092"
                } else {
                    &bootstrap
                },
            );
            eprintln!("runnel: {e:#}");
            if let Some(h) = hint {
                eprintln!("hint: {h}");
            }
            std::process::ExitCode::from(code)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let Cli {
        bootstrap_server,
        profile,
        profiles_file,
        property,
        format,
        command,
    } = cli;
    let ctx = || -> anyhow::Result<Ctx> {
        Ok(Ctx {
            settings: settings::resolve(
                bootstrap_server.as_deref(),
                profile.as_deref(),
                profiles_file.as_ref(),
                &property,
            )
            .map_err(|e| Usage(format!("{e:#}")))?,
            format,
        })
    };
    match command {
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
            rt.block_on(serve(loaded.config))?;
            Ok(0)
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "runnel", &mut script);
            // A closed pipe (`| head`) is not an error.
            let _ = output::write_stdout(&script);
            Ok(0)
        }
        Command::Config(ConfigCmd::Reference) => {
            let _ = output::write_stdout(runnel_config::reference::markdown().as_bytes());
            Ok(0)
        }
        Command::Topic(c) => rt.block_on(admin::topic(&ctx()?, c)),
        Command::Produce(a) => rt.block_on(produce::run(&ctx()?, a)),
        Command::Consume(a) => rt.block_on(consume::run(&ctx()?, a)),
        Command::Group(c) => rt.block_on(admin::group(&ctx()?, c)),
        Command::Records(c) => rt.block_on(admin::records(&ctx()?, c)),
        Command::Cluster(c) => rt.block_on(admin::cluster(&ctx()?, c)),
        Command::Perf(c) => rt.block_on(perf::run(&ctx()?, c)),
        Command::Quota(c) => rt.block_on(quota::run(&ctx()?, c)),
        Command::Acl(c) => rt.block_on(acl::run(&ctx()?, c)),
        Command::User(c) => rt.block_on(user::run(&ctx()?, c)),
        Command::Console(a) => rt.block_on(console::run(ctx, a)),
    }
}

async fn serve(config: BrokerConfig) -> anyhow::Result<()> {
    if let Some((before, after)) = runnel_broker::server::raise_open_files_limit() {
        info!(before, after, "open files limit raised to the hard limit");
    }
    // The handlers go in before the start: a SIGTERM while the broker starts (opening and leading
    // thousands of partitions takes seconds) then waits for the start to end and shuts down
    // cleanly, instead of killing the process with the signal's default action.
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let console_listeners = config.console_listeners.clone();
    let console_users = config.console_users_file.clone();
    let controller_listeners = config.cluster.controller_listener_names.clone();
    let handle = runnel_broker::Broker::start(config).await?;
    info!(cluster_id = %handle.broker.cluster_id(), version = VERSION, "Runnel broker started");
    if !console_listeners.is_empty() {
        // The console is a client of this broker's first client listener.
        let own = handle
            .bound
            .iter()
            .find(|(name, _)| !controller_listeners.contains(name))
            .map(|(_, addr)| match addr.ip() {
                ip if ip.is_unspecified() => format!("127.0.0.1:{}", addr.port()),
                _ => addr.to_string(),
            });
        match own {
            Some(bootstrap) => {
                console::start_beside_broker(
                    &console_listeners,
                    console_users.as_deref(),
                    &bootstrap,
                )
                .await?
            }
            None => {
                warn!("console.listeners is set but this node has no client listener: no console")
            }
        }
    }
    notify::notify("READY=1");
    let failure = tokio::select! {
        _ = int.recv() => { info!("SIGINT received: shutting down"); None }
        _ = term.recv() => { info!("SIGTERM received: shutting down"); None }
        reason = handle.failed() => Some(reason),
    };
    notify::notify("STOPPING=1");
    handle.shutdown().await?;
    if let Some(reason) = failure {
        // The broker cannot go on (another live process has its node.id): exit with an error.
        anyhow::bail!("{reason}");
    }
    info!("shutdown complete");
    Ok(())
}
