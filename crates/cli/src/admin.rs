//! The administrative commands: `runnel topic ...`, `runnel group ...`, `runnel records delete`
//! and `runnel cluster info`, on the client crate's [`Admin`].

use clap::{Args, Subcommand};
use runnel_client::admin::{AlterOp, ConfigResource, NewTopic, ResetTarget};
use runnel_client::Admin;
use serde_json::json;

use crate::output::{parse_time, print_json, table, Format};
use crate::{Ctx, Usage};

/// `runnel topic ...`
#[derive(Subcommand)]
pub enum TopicCmd {
    /// Create a topic.
    Create {
        /// The topic's name.
        name: String,
        /// Partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p')]
        partitions: Option<i32>,
        /// Replication factor (default: the broker's default.replication.factor).
        #[arg(long, short = 'r')]
        replication_factor: Option<i16>,
        /// A topic config, e.g. `--config retention.ms=3600000` (repeatable).
        #[arg(long, short = 'c', value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Succeed when the topic exists already.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets, __transaction_state).
        #[arg(long)]
        internal: bool,
    },
    /// Show a topic's partitions, replicas and the configs that differ from the defaults.
    Describe {
        /// The topic.
        name: String,
    },
    /// Delete topics.
    Delete {
        /// The topics.
        #[arg(required = true)]
        names: Vec<String>,
        /// Succeed when a topic does not exist.
        #[arg(long)]
        if_exists: bool,
    },
    /// Grow a topic to a number of partitions.
    AddPartitions {
        /// The topic.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        total: i32,
    },
    /// Set or remove topic configs.
    AlterConfig {
        /// The topic.
        name: String,
        /// `--set key=value` (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// `--delete key`: back to the default (repeatable).
        #[arg(long, value_name = "KEY")]
        delete: Vec<String>,
    },
}

/// `runnel group ...`
#[derive(Subcommand)]
pub enum GroupCmd {
    /// List consumer groups.
    List,
    /// Show a group's state, members, offsets and lag.
    Describe {
        /// The group id.
        group: String,
    },
    /// Delete groups without members.
    Delete {
        /// The group ids.
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Move a group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetArgs),
}

/// Arguments of `runnel group reset-offsets`.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime"])))]
pub struct ResetArgs {
    /// The group id.
    group: String,
    /// Topics whose partitions move (repeatable).
    #[arg(long, short = 't')]
    topic: Vec<String>,
    /// Every topic the group has offsets for.
    #[arg(long, conflicts_with = "topic")]
    all_topics: bool,
    /// To the log start.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end.
    #[arg(long)]
    to_latest: bool,
    /// To an offset.
    #[arg(long, allow_hyphen_values = true)]
    to_offset: Option<i64>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// To the first record at or after a time (ms or 2026-11-25T09:30:00Z).
    #[arg(long)]
    to_datetime: Option<String>,
    /// Commit the new offsets (without it, only the plan is printed).
    #[arg(long)]
    execute: bool,
}

/// `runnel records ...`
#[derive(Subcommand)]
pub enum RecordsCmd {
    /// Delete the records before an offset.
    Delete {
        /// The topic.
        topic: String,
        /// Partitions (repeatable; default every partition).
        #[arg(long, short = 'p')]
        partition: Vec<i32>,
        /// Delete records before this offset; -1 for everything up to the high watermark.
        #[arg(long, allow_hyphen_values = true)]
        before: i64,
    },
}

/// `runnel cluster ...`
#[derive(Subcommand)]
pub enum ClusterCmd {
    /// The cluster id, the controller and the brokers.
    Info,
}

async fn connect(ctx: &Ctx) -> anyhow::Result<Admin> {
    Ok(Admin::new(ctx.client_config()?).await?)
}

fn kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Usage(format!("{what} expects key=value, got {s:?}")))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

/// Runs a `topic` subcommand.
pub async fn topic(ctx: &Ctx, cmd: TopicCmd) -> anyhow::Result<u8> {
    let admin = connect(ctx).await?;
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            replication_factor,
            config,
            if_not_exists,
        } => {
            let mut t = NewTopic::new(&name, partitions.unwrap_or(-1));
            t.replication_factor = replication_factor.unwrap_or(-1);
            for c in &config {
                t.configs.push(kv(c, "--config")?);
            }
            let created = match admin.create_topic(&t).await {
                Ok(()) => true,
                Err(e) if if_not_exists && e.code() == Some(36) => false,
                Err(e) => return Err(e.into()),
            };
            match ctx.format {
                Format::Json => print_json(&json!({"topic": name, "created": created})),
                Format::Text if created => println!("Created topic {name}."),
                Format::Text => println!("Topic {name} exists already."),
            }
        }
        TopicCmd::List { internal } => {
            let topics = admin.list_topics(internal).await?;
            match ctx.format {
                Format::Json => print_json(&json!(topics
                    .iter()
                    .map(|t| json!({
                        "topic": t.name,
                        "partitions": t.partitions.len(),
                        "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                        "internal": t.internal,
                    }))
                    .collect::<Vec<_>>())),
                Format::Text => {
                    let rows: Vec<Vec<String>> = topics
                        .iter()
                        .map(|t| {
                            vec![
                                t.name.clone(),
                                t.partitions.len().to_string(),
                                t.partitions
                                    .first()
                                    .map_or(0, |p| p.replicas.len())
                                    .to_string(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["TOPIC", "PARTITIONS", "REPLICATION"], &rows));
                }
            }
        }
        TopicCmd::Describe { name } => {
            let t = admin.describe_topic(&name).await?;
            let configs = admin.describe_configs(ConfigResource::Topic, &name).await?;
            let set: Vec<_> = configs
                .iter()
                .filter(|c| c.source != "DEFAULT_CONFIG")
                .collect();
            let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
            let ids = |v: &[i32]| {
                v.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match ctx.format {
                Format::Json => print_json(&json!({
                    "topic": t.name,
                    "topic_id": t.id.to_string(),
                    "internal": t.internal,
                    "replication_factor": rf,
                    "partitions": t.partitions.iter().map(|p| json!({
                        "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas, "isr": p.isr, "offline": p.offline,
                    })).collect::<Vec<_>>(),
                    "configs": set.iter().map(|c| json!({
                        "name": c.name, "value": c.value, "source": c.source,
                    })).collect::<Vec<_>>(),
                })),
                Format::Text => {
                    println!(
                        "Topic: {}  TopicId: {}  PartitionCount: {}  ReplicationFactor: {}",
                        t.name,
                        t.id,
                        t.partitions.len(),
                        rf
                    );
                    let rows: Vec<Vec<String>> = t
                        .partitions
                        .iter()
                        .map(|p| {
                            vec![
                                p.partition.to_string(),
                                p.leader.to_string(),
                                ids(&p.replicas),
                                ids(&p.isr),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(&["PARTITION", "LEADER", "REPLICAS", "ISR"], &rows)
                    );
                    if !set.is_empty() {
                        println!("Configs:");
                        for c in set {
                            println!(
                                "  {}={}",
                                c.name,
                                c.value.as_deref().unwrap_or("(sensitive)")
                            );
                        }
                    }
                }
            }
        }
        TopicCmd::Delete { names, if_exists } => {
            let mut deleted = Vec::new();
            for n in &names {
                match admin.delete_topics(std::slice::from_ref(n)).await {
                    Ok(()) => deleted.push(n.clone()),
                    Err(e) if if_exists && e.code() == Some(3) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            match ctx.format {
                Format::Json => print_json(&json!({"deleted": deleted})),
                Format::Text => {
                    for n in deleted {
                        println!("Deleted topic {n}.");
                    }
                }
            }
        }
        TopicCmd::AddPartitions { name, total } => {
            admin.create_partitions(&name, total).await?;
            match ctx.format {
                Format::Json => print_json(&json!({"topic": name, "partitions": total})),
                Format::Text => println!("Topic {name} now has {total} partitions."),
            }
        }
        TopicCmd::AlterConfig { name, set, delete } => {
            let mut ops = Vec::new();
            for s in &set {
                let (k, v) = kv(s, "--set")?;
                ops.push(AlterOp::Set(k, v));
            }
            ops.extend(delete.into_iter().map(AlterOp::Delete));
            if ops.is_empty() {
                return Err(Usage("give --set key=value or --delete key".into()).into());
            }
            admin
                .alter_configs(ConfigResource::Topic, &name, &ops)
                .await?;
            match ctx.format {
                Format::Json => print_json(&json!({"topic": name, "altered": ops.len()})),
                Format::Text => println!("Updated {} config(s) of topic {name}.", ops.len()),
            }
        }
    }
    Ok(0)
}

/// Runs a `group` subcommand.
pub async fn group(ctx: &Ctx, cmd: GroupCmd) -> anyhow::Result<u8> {
    let admin = connect(ctx).await?;
    match cmd {
        GroupCmd::List => {
            let groups = admin.list_groups().await?;
            match ctx.format {
                Format::Json => print_json(&json!(groups
                    .iter()
                    .map(|g| json!({"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                    .collect::<Vec<_>>())),
                Format::Text => {
                    let rows: Vec<Vec<String>> = groups
                        .iter()
                        .map(|g| vec![g.group_id.clone(), g.state.clone(), g.protocol_type.clone()])
                        .collect();
                    print!("{}", table(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows));
                }
            }
        }
        GroupCmd::Describe { group } => {
            let (desc, rows) = admin.group_lag(&group).await?;
            if desc.state == "Dead" && rows.is_empty() {
                return Err(runnel_client::Error::kafka(
                    69,
                    Some(format!("group {group} does not exist")),
                    "describe group",
                )
                .into());
            }
            let member = |id: &Option<String>| {
                desc.members
                    .iter()
                    .find(|m| Some(&m.member_id) == id.as_ref())
            };
            match ctx.format {
                Format::Json => print_json(&json!({
                    "group": group,
                    "state": desc.state,
                    "protocol": desc.protocol,
                    "members": desc.members.iter().map(|m| json!({
                        "member_id": m.member_id, "instance_id": m.instance_id, "client_id": m.client_id,
                        "host": m.host, "assignment": m.assignment.iter().map(|(t, p)| json!({"topic": t, "partition": p})).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                    "offsets": rows.iter().map(|r| json!({
                        "topic": r.tp.0, "partition": r.tp.1, "current_offset": r.committed,
                        "log_end_offset": r.log_end, "lag": r.lag, "member_id": r.member,
                    })).collect::<Vec<_>>(),
                })),
                Format::Text => {
                    println!(
                        "Group {group} is {} ({} member{}{}).",
                        desc.state,
                        desc.members.len(),
                        if desc.members.len() == 1 { "" } else { "s" },
                        if desc.protocol.is_empty() {
                            String::new()
                        } else {
                            format!(", assignor {}", desc.protocol)
                        }
                    );
                    let dash = || "-".to_string();
                    let table_rows: Vec<Vec<String>> = rows
                        .iter()
                        .map(|r| {
                            let m = member(&r.member);
                            vec![
                                r.tp.0.clone(),
                                r.tp.1.to_string(),
                                r.committed.map_or_else(dash, |c| c.to_string()),
                                r.log_end.to_string(),
                                r.lag.map_or_else(dash, |l| l.to_string()),
                                m.map_or_else(dash, |m| m.member_id.clone()),
                                m.map_or_else(dash, |m| m.host.clone()),
                                m.map_or_else(dash, |m| m.client_id.clone()),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &[
                                "TOPIC",
                                "PARTITION",
                                "CURRENT-OFFSET",
                                "LOG-END-OFFSET",
                                "LAG",
                                "CONSUMER-ID",
                                "HOST",
                                "CLIENT-ID"
                            ],
                            &table_rows
                        )
                    );
                }
            }
        }
        GroupCmd::Delete { groups } => {
            for g in &groups {
                admin.delete_group(g).await?;
                if ctx.format == Format::Text {
                    println!("Deleted group {g}.");
                }
            }
            if ctx.format == Format::Json {
                print_json(&json!({"deleted": groups}));
            }
        }
        GroupCmd::ResetOffsets(a) => {
            let target = if a.to_earliest {
                ResetTarget::Earliest
            } else if a.to_latest {
                ResetTarget::Latest
            } else if let Some(o) = a.to_offset {
                ResetTarget::Offset(o)
            } else if let Some(d) = a.shift_by {
                ResetTarget::ShiftBy(d)
            } else if let Some(t) = &a.to_datetime {
                ResetTarget::Datetime(parse_time(t).map_err(|e| Usage(e.to_string()))?)
            } else {
                return Err(Usage("choose a target: --to-earliest, --to-latest, --to-offset, --shift-by or --to-datetime".into()).into());
            };
            let topics: Vec<String> = if a.all_topics {
                let mut t: Vec<String> = admin
                    .committed_offsets(&a.group)
                    .await?
                    .keys()
                    .map(|tp| tp.0.clone())
                    .collect();
                t.dedup();
                t
            } else {
                a.topic.clone()
            };
            if topics.is_empty() {
                return Err(Usage(
                    "name the topics: --topic T (repeatable) or --all-topics".into(),
                )
                .into());
            }
            let plan = admin
                .reset_offsets(&a.group, &topics, target, a.execute)
                .await?;
            match ctx.format {
                Format::Json => print_json(&json!({
                    "group": a.group,
                    "executed": a.execute,
                    "offsets": plan.iter().map(|p| json!({
                        "topic": p.tp.0, "partition": p.tp.1, "current_offset": p.current, "new_offset": p.target,
                    })).collect::<Vec<_>>(),
                })),
                Format::Text => {
                    let rows: Vec<Vec<String>> = plan
                        .iter()
                        .map(|p| {
                            vec![
                                p.tp.0.clone(),
                                p.tp.1.to_string(),
                                p.current.map_or("-".into(), |c| c.to_string()),
                                p.target.to_string(),
                            ]
                        })
                        .collect();
                    print!(
                        "{}",
                        table(
                            &["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"],
                            &rows
                        )
                    );
                    if a.execute {
                        println!("Offsets of group {} reset.", a.group);
                    } else {
                        eprintln!("Dry run: nothing changed. Add --execute to apply.");
                    }
                }
            }
        }
    }
    Ok(0)
}

/// Runs a `records` subcommand.
pub async fn records(ctx: &Ctx, cmd: RecordsCmd) -> anyhow::Result<u8> {
    let admin = connect(ctx).await?;
    let RecordsCmd::Delete {
        topic,
        partition,
        before,
    } = cmd;
    let info = admin.describe_topic(&topic).await?;
    let parts: Vec<i32> = if partition.is_empty() {
        info.partitions.iter().map(|p| p.partition).collect()
    } else {
        partition
    };
    let wanted: Vec<_> = parts
        .iter()
        .map(|p| ((topic.clone(), *p), before))
        .collect();
    let low = admin.delete_records(&wanted).await?;
    match ctx.format {
        Format::Json => print_json(&json!(low
            .iter()
            .map(|(tp, l)| json!({"topic": tp.0, "partition": tp.1, "low_watermark": l}))
            .collect::<Vec<_>>())),
        Format::Text => {
            let rows: Vec<Vec<String>> = low
                .iter()
                .map(|(tp, l)| vec![tp.0.clone(), tp.1.to_string(), l.to_string()])
                .collect();
            print!("{}", table(&["TOPIC", "PARTITION", "LOW-WATERMARK"], &rows));
        }
    }
    Ok(0)
}

/// Runs a `cluster` subcommand.
pub async fn cluster(ctx: &Ctx, cmd: ClusterCmd) -> anyhow::Result<u8> {
    let admin = connect(ctx).await?;
    let ClusterCmd::Info = cmd;
    let c = admin.describe_cluster().await?;
    match ctx.format {
        Format::Json => print_json(&json!({
            "cluster_id": c.cluster_id,
            "controller": c.controller,
            "brokers": c.brokers.iter().map(|b| json!({"id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack})).collect::<Vec<_>>(),
        })),
        Format::Text => {
            println!("Cluster id: {}", c.cluster_id);
            println!("Controller: {}", c.controller);
            let rows: Vec<Vec<String>> = c
                .brokers
                .iter()
                .map(|b| {
                    vec![
                        b.node_id.to_string(),
                        b.host.clone(),
                        b.port.to_string(),
                        b.rack.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print!("{}", table(&["ID", "HOST", "PORT", "RACK"], &rows));
        }
    }
    Ok(0)
}
