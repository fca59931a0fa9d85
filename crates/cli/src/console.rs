//! `runnel console`: the web console against any Kafka-compatible cluster (`-b`, `-X` client
//! settings), and `runnel console hash-password` for its users file; also the console that
//! `runnel serve` runs beside the broker (`console.listeners`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use runnel_console::auth::{self, AuthMode};
use runnel_console::ConsoleConfig;

use crate::{Ctx, Usage};

/// How the console checks logins.
#[derive(Clone, Copy, ValueEnum)]
pub enum AuthKind {
    /// No login: everyone is an admin (bind it to 127.0.0.1).
    None,
    /// Users from --users-file.
    File,
    /// The login is the cluster's SASL user and password (-X sasl.mechanism=...).
    Sasl,
}

/// `runnel console ...`
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConsoleArgs {
    #[command(subcommand)]
    cmd: Option<ConsoleCmd>,
    /// Where to serve it, host:port (port 0: any free one).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Users allowed to log in: `name:role:hash` lines (role admin or read-only).
    #[arg(long, value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// How logins are checked (default: file with --users-file, else none).
    #[arg(long, value_enum)]
    auth: Option<AuthKind>,
    /// With --auth sasl: the users with the admin role (the others are read-only).
    #[arg(long, value_delimiter = ',')]
    admin_users: Vec<String>,
    /// A session ends after this many seconds without a request.
    #[arg(long, default_value_t = 8 * 3600)]
    session_timeout: u64,
}

/// `runnel console <subcommand>`
#[derive(Subcommand)]
enum ConsoleCmd {
    /// Read a password on stdin, print its hash for the users file.
    HashPassword,
}

/// The console's login checks from its flags.
fn auth_mode(
    kind: Option<AuthKind>,
    users_file: Option<&Path>,
    admins: Vec<String>,
) -> anyhow::Result<AuthMode> {
    Ok(match (kind, users_file) {
        (Some(AuthKind::Sasl), _) => AuthMode::Sasl { admins },
        (Some(AuthKind::None), _) => AuthMode::None,
        (_, Some(f)) => AuthMode::File(auth::load_users(f)?),
        (Some(AuthKind::File), None) => {
            return Err(Usage("--auth file needs --users-file".into()).into())
        }
        (None, None) => AuthMode::None,
    })
}

/// Runs `runnel console`.
pub async fn run(ctx: impl FnOnce() -> anyhow::Result<Ctx>, a: ConsoleArgs) -> anyhow::Result<u8> {
    if let Some(ConsoleCmd::HashPassword) = a.cmd {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']);
        if password.is_empty() {
            return Err(Usage("an empty password: give one on stdin".into()).into());
        }
        println!("{}", auth::hash_password(password));
        return Ok(0);
    }
    let ctx = ctx()?;
    let mut client = ctx.client_config()?;
    client.client_id = "runnel-console".into();
    let cfg = ConsoleConfig {
        client,
        auth: auth_mode(a.auth, a.users_file.as_deref(), a.admin_users)?,
        session_timeout: Duration::from_secs(a.session_timeout.max(60)),
    };
    let listener = runnel_console::bind(&a.listen).await?;
    let addr = listener.local_addr()?;
    println!("console listening on http://{addr}");
    std::io::stdout().flush()?;
    if matches!(cfg.auth, AuthMode::None) && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the console has no login and listens beyond this host: anyone who reaches it can change the cluster (use --users-file)");
    }
    runnel_console::serve(listener, cfg).await?;
    Ok(0)
}

/// Starts the consoles of `console.listeners` beside a started broker: they reach the cluster
/// through `bootstrap` (the broker's own first client listener).
pub async fn start_beside_broker(
    listeners: &[(String, u16)],
    users_file: Option<&Path>,
    bootstrap: &str,
) -> anyhow::Result<()> {
    if listeners.is_empty() {
        return Ok(());
    }
    let mut client = runnel_client::ClientConfig::new(bootstrap);
    client.client_id = "runnel-console".into();
    let cfg = ConsoleConfig {
        client,
        auth: auth_mode(None, users_file, Vec::new())?,
        session_timeout: Duration::from_secs(8 * 3600),
    };
    for (host, port) in listeners {
        let addr = match host.as_str() {
            "" => format!("0.0.0.0:{port}"),
            h if h.contains(':') => format!("[{h}]:{port}"),
            h => format!("{h}:{port}"),
        };
        let listener = runnel_console::bind(&addr).await?;
        tracing::info!(addr = %listener.local_addr()?, bootstrap, "web console listening");
        let cfg = cfg.clone();
        tokio::spawn(async move {
            if let Err(e) = runnel_console::serve(listener, cfg).await {
                tracing::warn!(error = %e, "the web console stopped");
            }
        });
    }
    Ok(())
}
