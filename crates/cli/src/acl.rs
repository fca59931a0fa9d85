//! `runnel acl list|create|delete`: ACLs as Kafka's `kafka-acls` manages them (DescribeAcls,
//! CreateAcls, DeleteAcls): principals allowed or denied operations from hosts on topics,
//! groups, the cluster or transactional ids, by literal or prefixed resource patterns.

use clap::{Args, Subcommand};
use runnel_client::acls::{
    code_of, name_of, AclBinding, AclFilter, CLUSTER_NAME, OPERATIONS, PATTERN_TYPES,
};
use runnel_client::Admin;
use serde_json::json;

use crate::output::{print_json, Format};
use crate::{Ctx, Usage};

/// Which resources: any mix of topics, groups, transactional ids and the cluster.
#[derive(Args, Default)]
pub struct ResourceArgs {
    /// A topic (`*` for every topic) (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// A consumer group (`*` for every group) (repeatable).
    #[arg(long)]
    group: Vec<String>,
    /// The cluster.
    #[arg(long)]
    cluster: bool,
    /// A transactional id (`*` for every one) (repeatable).
    #[arg(long)]
    transactional_id: Vec<String>,
    /// literal or prefixed; listing and deleting also take any (every pattern type, the exact
    /// name) and match (every pattern that applies to the name).
    #[arg(long, default_value = "literal")]
    resource_pattern_type: String,
}

impl ResourceArgs {
    /// [`ResourceArgs::resources`], at least one (create and delete need a resource).
    fn named(&self) -> anyhow::Result<Vec<(i8, String)>> {
        let resources = self.resources();
        if resources.is_empty() {
            return Err(Usage(
                "name a resource: --topic, --group, --cluster or --transactional-id".into(),
            )
            .into());
        }
        Ok(resources)
    }

    /// (resource type code, name) of every resource named.
    fn resources(&self) -> Vec<(i8, String)> {
        let mut out = Vec::new();
        out.extend(self.topic.iter().map(|t| (2, t.clone())));
        out.extend(self.group.iter().map(|g| (3, g.clone())));
        if self.cluster {
            out.push((4, CLUSTER_NAME.to_string()));
        }
        out.extend(self.transactional_id.iter().map(|t| (5, t.clone())));
        out
    }

    fn pattern_type(&self, filter: bool) -> anyhow::Result<i8> {
        let code = code_of(PATTERN_TYPES, &self.resource_pattern_type).ok_or_else(|| {
            Usage(format!(
                "--resource-pattern-type: {:?} is not literal, prefixed, any or match",
                self.resource_pattern_type
            ))
        })?;
        if !filter && !matches!(code, 3 | 4) {
            return Err(Usage(
                "--resource-pattern-type: ACLs are created on literal or prefixed patterns".into(),
            )
            .into());
        }
        Ok(code)
    }
}

/// Who, from where, doing what.
#[derive(Args, Default)]
pub struct EntryArgs {
    /// A principal allowed, e.g. User:alice (repeatable).
    #[arg(long)]
    allow_principal: Vec<String>,
    /// A principal denied (repeatable).
    #[arg(long)]
    deny_principal: Vec<String>,
    /// A host the allowed principals may connect from (repeatable; default *).
    #[arg(long)]
    allow_host: Vec<String>,
    /// A host the denied principals are denied from (repeatable; default *).
    #[arg(long)]
    deny_host: Vec<String>,
    /// Shorthand for both --allow-host and --deny-host (repeatable).
    #[arg(long)]
    host: Vec<String>,
    /// An operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, CreateTokens, DescribeTokens,
    /// TwoPhaseCommit or All (repeatable; default All).
    #[arg(long)]
    operation: Vec<String>,
}

impl EntryArgs {
    fn operations(&self) -> anyhow::Result<Vec<i8>> {
        if self.operation.is_empty() {
            return Ok(vec![2]);
        }
        self.operation
            .iter()
            .map(|o| {
                code_of(OPERATIONS, o)
                    .filter(|c| *c != 1)
                    .ok_or_else(|| Usage(format!("--operation: unknown operation {o:?}")).into())
            })
            .collect()
    }

    /// (principal, host, permission) triples: allowed ones then denied ones.
    fn entries(&self) -> anyhow::Result<Vec<(String, String, i8)>> {
        let mut out = Vec::new();
        for (principals, hosts, perm) in [
            (&self.allow_principal, &self.allow_host, 3),
            (&self.deny_principal, &self.deny_host, 2),
        ] {
            let mut hosts: Vec<String> = hosts.iter().chain(&self.host).cloned().collect();
            if hosts.is_empty() {
                hosts.push("*".into());
            }
            for p in principals {
                if !p.contains(':') {
                    return Err(Usage(format!(
                        "principal {p:?}: expected Type:name, e.g. User:alice"
                    ))
                    .into());
                }
                for h in &hosts {
                    out.push((p.clone(), h.clone(), perm));
                }
            }
        }
        Ok(out)
    }
}

/// `runnel acl ...`
#[derive(Subcommand)]
pub enum AclCmd {
    /// List ACLs: every one, or those of the resources given (and of --principal).
    List {
        #[command(flatten)]
        resource: ResourceArgs,
        /// Only the ACLs of this principal (repeatable).
        #[arg(long)]
        principal: Vec<String>,
    },
    /// Add ACLs: every principal × host × operation on every resource given.
    Create {
        #[command(flatten)]
        resource: ResourceArgs,
        #[command(flatten)]
        entry: EntryArgs,
    },
    /// Remove ACLs of the resources given: those of the principals (hosts, operations) given,
    /// or every ACL of the resources when no principal is given.
    Delete {
        #[command(flatten)]
        resource: ResourceArgs,
        #[command(flatten)]
        entry: EntryArgs,
    },
}

fn print_acls(format: Format, acls: &[AclBinding], json_key: &str) {
    match format {
        Format::Json => {
            print_json(&json!({ json_key: acls.iter().map(acl_json).collect::<Vec<_>>() }))
        }
        Format::Text => {
            let mut last: Option<String> = None;
            for a in acls {
                let pattern = a.pattern_text();
                if last.as_ref() != Some(&pattern) {
                    if last.is_some() {
                        println!();
                    }
                    println!("ACLs for resource `{pattern}`:");
                    last = Some(pattern);
                }
                println!(" \t{}", a.entry_text());
            }
        }
    }
}

fn acl_json(a: &AclBinding) -> serde_json::Value {
    use runnel_client::acls::{PERMISSIONS, RESOURCE_TYPES};
    json!({
        "resource_type": name_of(RESOURCE_TYPES, a.resource_type),
        "resource_name": a.resource_name,
        "pattern_type": name_of(PATTERN_TYPES, a.pattern_type),
        "principal": a.principal,
        "host": a.host,
        "operation": name_of(OPERATIONS, a.operation),
        "permission": name_of(PERMISSIONS, a.permission),
    })
}

/// Runs an `acl` subcommand.
pub async fn run(ctx: &Ctx, cmd: AclCmd) -> anyhow::Result<u8> {
    match cmd {
        AclCmd::List {
            resource,
            principal,
        } => {
            let pattern = resource.pattern_type(true)?;
            let mut filters: Vec<AclFilter> = resource
                .resources()
                .into_iter()
                .map(|(rt, name)| AclFilter {
                    resource_type: rt,
                    resource_name: Some(name),
                    pattern_type: pattern,
                    ..AclFilter::default()
                })
                .collect();
            if filters.is_empty() {
                filters.push(AclFilter::default());
            }
            if !principal.is_empty() {
                filters = filters
                    .into_iter()
                    .flat_map(|f| {
                        principal.iter().map(move |p| AclFilter {
                            principal: Some(p.clone()),
                            ..f.clone()
                        })
                    })
                    .collect();
            }
            let admin = Admin::new(ctx.client_config()?).await?;
            let mut all = Vec::new();
            for f in &filters {
                all.extend(admin.describe_acls(f).await?);
            }
            all.sort();
            all.dedup();
            print_acls(ctx.format, &all, "acls");
        }
        AclCmd::Create { resource, entry } => {
            let pattern = resource.pattern_type(false)?;
            let resources = resource.named()?;
            let entries = entry.entries()?;
            if entries.is_empty() {
                return Err(Usage("give --allow-principal or --deny-principal".into()).into());
            }
            let ops = entry.operations()?;
            let mut acls = Vec::new();
            for (rt, name) in &resources {
                for (principal, host, perm) in &entries {
                    for op in &ops {
                        acls.push(AclBinding {
                            resource_type: *rt,
                            resource_name: name.clone(),
                            pattern_type: pattern,
                            principal: principal.clone(),
                            host: host.clone(),
                            operation: *op,
                            permission: *perm,
                        });
                    }
                }
            }
            let admin = Admin::new(ctx.client_config()?).await?;
            admin.create_acls(&acls).await?;
            acls.sort();
            if ctx.format == Format::Text {
                println!("Added {} ACL(s):", acls.len());
            }
            print_acls(ctx.format, &acls, "created");
        }
        AclCmd::Delete { resource, entry } => {
            let pattern = resource.pattern_type(true)?;
            let resources = resource.named()?;
            let entries = entry.entries()?;
            let ops = if entries.is_empty() && entry.operation.is_empty() {
                vec![1]
            } else {
                entry.operations()?
            };
            let mut filters = Vec::new();
            for (rt, name) in &resources {
                let base = AclFilter {
                    resource_type: *rt,
                    resource_name: Some(name.clone()),
                    pattern_type: pattern,
                    ..AclFilter::default()
                };
                if entries.is_empty() {
                    for op in &ops {
                        filters.push(AclFilter {
                            operation: *op,
                            ..base.clone()
                        });
                    }
                }
                for (principal, host, perm) in &entries {
                    for op in &ops {
                        filters.push(AclFilter {
                            principal: Some(principal.clone()),
                            host: Some(host.clone()),
                            operation: *op,
                            permission: *perm,
                            ..base.clone()
                        });
                    }
                }
            }
            let admin = Admin::new(ctx.client_config()?).await?;
            let deleted = admin.delete_acls(&filters).await?;
            if ctx.format == Format::Text {
                println!("Removed {} ACL(s):", deleted.len());
            }
            print_acls(ctx.format, &deleted, "deleted");
        }
    }
    Ok(0)
}
