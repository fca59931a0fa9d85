//! `runnel user list|set-password|delete`: SCRAM users (Kafka's DescribeUserScramCredentials /
//! AlterUserScramCredentials, what `kafka-configs --entity-type users --alter --add-config
//! SCRAM-SHA-256=[password=...]` does). The password is salted here and never sent.

use std::io::BufRead;

use clap::Subcommand;
use runnel_client::sasl::scram::ScramMechanism;
use runnel_client::users::DEFAULT_ITERATIONS;
use runnel_client::Admin;
use serde_json::json;

use crate::output::{print_json, Format};
use crate::{Ctx, Usage};

/// `runnel user ...`
#[derive(Subcommand)]
pub enum UserCmd {
    /// The users with SCRAM credentials (or the users named) and their mechanisms.
    List {
        /// Only this user (repeatable).
        #[arg(long)]
        user: Vec<String>,
    },
    /// Set (or create) a user's SCRAM password.
    SetPassword {
        /// The user name.
        #[arg(long)]
        user: String,
        /// The password (visible in the process list: prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// SCRAM-SHA-256 or SCRAM-SHA-512.
        #[arg(long, default_value = "SCRAM-SHA-256")]
        mechanism: String,
        /// PBKDF2 iterations (4096 to 16384).
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: i32,
    },
    /// Delete a user's SCRAM credential (of one mechanism, or of every one it has).
    Delete {
        /// The user name.
        #[arg(long)]
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (default: every mechanism the user has).
        #[arg(long)]
        mechanism: Option<String>,
    },
}

fn mechanism(name: &str) -> anyhow::Result<ScramMechanism> {
    ScramMechanism::from_name(&name.trim().to_ascii_uppercase()).ok_or_else(|| {
        Usage(format!(
            "--mechanism: {name:?} is not SCRAM-SHA-256 or SCRAM-SHA-512"
        ))
        .into()
    })
}

/// Runs a `user` subcommand.
pub async fn run(ctx: &Ctx, cmd: UserCmd) -> anyhow::Result<u8> {
    match cmd {
        UserCmd::List { user } => {
            let admin = Admin::new(ctx.client_config()?).await?;
            let names = (!user.is_empty()).then_some(user.as_slice());
            let users = admin.describe_user_scram_credentials(names).await?;
            match ctx.format {
                Format::Json => print_json(&json!(users
                    .iter()
                    .map(|(u, creds)| json!({
                        "user": u,
                        "credentials": creds.iter().map(|(m, i)| json!({"mechanism": m.name(), "iterations": i})).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>())),
                Format::Text => {
                    for (u, creds) in &users {
                        let c: Vec<String> = creds
                            .iter()
                            .map(|(m, i)| format!("{}=iterations={i}", m.name()))
                            .collect();
                        println!(
                            "SCRAM credential configs for user-principal '{u}' are {}",
                            c.join(", ")
                        );
                    }
                }
            }
            if !user.is_empty() && users.len() < user.len() {
                let missing: Vec<&String> =
                    user.iter().filter(|u| !users.contains_key(*u)).collect();
                eprintln!(
                    "runnel: no SCRAM credentials for {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                return Ok(3);
            }
        }
        UserCmd::SetPassword {
            user,
            password,
            password_stdin,
            mechanism: mech,
            iterations,
        } => {
            let mech = mechanism(&mech)?;
            let password = match (password, password_stdin) {
                (Some(p), _) => p,
                (None, true) => {
                    let mut line = String::new();
                    std::io::stdin().lock().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
                (None, false) => {
                    return Err(Usage("give --password or --password-stdin".into()).into())
                }
            };
            if password.is_empty() {
                return Err(Usage("the password is empty".into()).into());
            }
            let admin = Admin::new(ctx.client_config()?).await?;
            admin
                .set_user_scram_password(&user, mech, &password, iterations)
                .await?;
            match ctx.format {
                Format::Json => print_json(
                    &json!({"user": user, "mechanism": mech.name(), "iterations": iterations}),
                ),
                Format::Text => println!(
                    "Set the {} password of user-principal '{user}' ({iterations} iterations).",
                    mech.name()
                ),
            }
        }
        UserCmd::Delete {
            user,
            mechanism: mech,
        } => {
            let admin = Admin::new(ctx.client_config()?).await?;
            let mechs = match mech {
                Some(m) => vec![mechanism(&m)?],
                None => admin
                    .describe_user_scram_credentials(Some(std::slice::from_ref(&user)))
                    .await?
                    .remove(&user)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(m, _)| m)
                    .collect(),
            };
            if mechs.is_empty() {
                eprintln!("runnel: user-principal '{user}' has no SCRAM credentials");
                return Ok(3);
            }
            for m in &mechs {
                admin.delete_user_scram_credential(&user, *m).await?;
            }
            let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
            match ctx.format {
                Format::Json => print_json(&json!({"user": user, "deleted": names})),
                Format::Text => println!(
                    "Deleted the {} credential(s) of user-principal '{user}'.",
                    names.join(", ")
                ),
            }
        }
    }
    Ok(0)
}
