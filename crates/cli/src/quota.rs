//! `runnel quota describe|alter`: client quotas (Kafka's DescribeClientQuotas /
//! AlterClientQuotas) of users, client ids and both, named or the default.

use clap::{Args, Subcommand};
use runnel_client::quotas::QuotaEntity;
use runnel_client::Admin;
use serde_json::json;

use crate::output::{print_json, Format};
use crate::{Ctx, Usage};

/// Which entity: a user and/or a client id, each named or the default.
#[derive(Args)]
pub struct EntityArgs {
    /// A user (principal name, e.g. alice).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default user.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_default")]
    client_id: Option<String>,
    /// The default client id.
    #[arg(long)]
    client_default: bool,
}

impl EntityArgs {
    fn entity(&self) -> QuotaEntity {
        let mut e = QuotaEntity::new();
        if self.user.is_some() || self.user_default {
            e.insert("user".into(), self.user.clone());
        }
        if self.client_id.is_some() || self.client_default {
            e.insert("client-id".into(), self.client_id.clone());
        }
        e
    }
}

/// `runnel quota ...`
#[derive(Subcommand)]
pub enum QuotaCmd {
    /// Show the quotas of the entity given (every user and client-id entity without one).
    Describe {
        #[command(flatten)]
        entity: EntityArgs,
    },
    /// Set or remove quotas (producer_byte_rate, consumer_byte_rate, request_percentage,
    /// controller_mutation_rate) of one entity.
    Alter {
        #[command(flatten)]
        entity: EntityArgs,
        /// key=value to set (repeatable).
        #[arg(long)]
        set: Vec<String>,
        /// A key to remove (repeatable).
        #[arg(long)]
        delete: Vec<String>,
    },
}

/// Kafka's words for an entity, as kafka-configs prints them.
fn entity_text(e: &QuotaEntity) -> String {
    let part = |t: &str, word: &str| {
        e.get(t).map(|n| match n {
            Some(n) => format!("{word} '{n}'"),
            None => format!("the default {word}"),
        })
    };
    [
        part("user", "user-principal"),
        part("client-id", "client-id"),
        part("ip", "ip"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
}

/// Runs a `quota` subcommand.
pub async fn run(ctx: &Ctx, cmd: QuotaCmd) -> anyhow::Result<u8> {
    let admin = Admin::new(ctx.client_config()?).await?;
    match cmd {
        QuotaCmd::Describe { entity } => {
            let found = admin
                .describe_client_quotas(&entity.entity(), false)
                .await?
                .into_iter()
                .filter(|(e, _)| !e.contains_key("ip"))
                .collect::<Vec<_>>();
            match ctx.format {
                Format::Json => print_json(&json!(found
                    .iter()
                    .map(|(e, v)| json!({"entity": e, "quotas": v}))
                    .collect::<Vec<_>>())),
                Format::Text => {
                    for (e, values) in &found {
                        let v: Vec<String> =
                            values.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                        println!("Quota configs for {} are {}", entity_text(e), v.join(", "));
                    }
                }
            }
        }
        QuotaCmd::Alter {
            entity,
            set,
            delete,
        } => {
            let e = entity.entity();
            if e.is_empty() {
                return Err(Usage(
                    "name an entity: --user/--user-default and/or --client-id/--client-default"
                        .into(),
                )
                .into());
            }
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = s
                    .split_once('=')
                    .ok_or_else(|| Usage(format!("--set expects key=value, got {s:?}")))?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| Usage(format!("{k}: {v:?} is not a number")))?;
                ops.push((k.trim().to_string(), Some(v)));
            }
            ops.extend(delete.into_iter().map(|k| (k, None)));
            if ops.is_empty() {
                return Err(Usage("give --set key=value or --delete key".into()).into());
            }
            admin.alter_client_quotas(&e, &ops).await?;
            match ctx.format {
                Format::Json => print_json(&json!({"entity": e, "altered": ops.len()})),
                Format::Text => println!("Updated {} quota(s) of {}.", ops.len(), entity_text(&e)),
            }
        }
    }
    Ok(0)
}
