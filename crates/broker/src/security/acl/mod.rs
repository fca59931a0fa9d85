//! ACL authorization, as Apache Kafka's `StandardAuthorizer` decides it. On when
//! `authorizer.class.name` names it; the ACLs live in the metadata log (`runnel_metadata::acls`)
//! so that every broker decides alike.
//!
//! The rules (Kafka's `StandardAuthorizerData`):
//! - a principal listed in `super.users` (`User:a;User:b`) may do anything;
//! - the ACLs that apply to a resource are the literal ones on its name, the literal wildcard
//!   `*` of its type and the prefixed ones on any prefix of its name;
//! - an ACL applies to a request when its principal is the request's or `User:*`, its host the
//!   client's address or `*`, and its operation the one asked or ALL; an ALLOW of READ, WRITE,
//!   DELETE or ALTER also allows DESCRIBE, and an ALLOW of ALTER_CONFIGS allows DESCRIBE_CONFIGS
//!   (a DENY implies nothing);
//! - any applying DENY refuses; else any applying ALLOW allows; else, when no ACL at all exists
//!   on the resource, `allow.everyone.if.no.acl.found` (false by default) decides; else refused.

pub mod filter;
mod request;
pub use request::{config_authorization, internode_allowed};
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use runnel_config::BrokerConfig;
use runnel_metadata::acls::{PATTERN_LITERAL, PATTERN_PREFIXED};
use runnel_metadata::AclImage;

use super::KafkaPrincipal;

/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The wildcard resource name, host and principal name.
pub const WILDCARD: &str = "*";
/// `User:*`: every user.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The `authorizer.class.name` values that turn Kafka's standard authorizer on.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// Kafka's `ResourceType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum ResourceType {
    /// Unknown.
    Unknown = 0,
    /// Any (filters only).
    Any = 1,
    /// A topic.
    Topic = 2,
    /// A consumer (or share) group.
    Group = 3,
    /// The cluster (`kafka-cluster`).
    Cluster = 4,
    /// A transactional id.
    TransactionalId = 5,
    /// A delegation token.
    DelegationToken = 6,
    /// A user (delegation tokens for another user).
    User = 7,
}

impl ResourceType {
    /// From Kafka's code (Unknown for a code it does not know).
    pub fn from_code(code: i8) -> ResourceType {
        use ResourceType::*;
        match code {
            1 => Any,
            2 => Topic,
            3 => Group,
            4 => Cluster,
            5 => TransactionalId,
            6 => DelegationToken,
            7 => User,
            _ => Unknown,
        }
    }

    /// Kafka's name (`TOPIC`, `TRANSACTIONAL_ID`, ...).
    pub fn name(self) -> &'static str {
        use ResourceType::*;
        match self {
            Unknown => "UNKNOWN",
            Any => "ANY",
            Topic => "TOPIC",
            Group => "GROUP",
            Cluster => "CLUSTER",
            TransactionalId => "TRANSACTIONAL_ID",
            DelegationToken => "DELEGATION_TOKEN",
            User => "USER",
        }
    }

    /// The operations an ACL on this resource type can grant (Kafka's
    /// `AclEntry.supportedOperations`), what authorized-operations fields report on.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            _ => &[],
        }
    }
}

/// Kafka's `AclOperation` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i8)]
pub enum AclOperation {
    /// Unknown.
    Unknown = 0,
    /// Any (filters only).
    Any = 1,
    /// Every operation.
    All = 2,
    /// READ.
    Read = 3,
    /// WRITE.
    Write = 4,
    /// CREATE.
    Create = 5,
    /// DELETE.
    Delete = 6,
    /// ALTER.
    Alter = 7,
    /// DESCRIBE.
    Describe = 8,
    /// CLUSTER_ACTION (what brokers do to each other).
    ClusterAction = 9,
    /// DESCRIBE_CONFIGS.
    DescribeConfigs = 10,
    /// ALTER_CONFIGS.
    AlterConfigs = 11,
    /// IDEMPOTENT_WRITE.
    IdempotentWrite = 12,
    /// CREATE_TOKENS.
    CreateTokens = 13,
    /// DESCRIBE_TOKENS.
    DescribeTokens = 14,
}

impl AclOperation {
    /// From Kafka's code (Unknown for a code it does not know).
    pub fn from_code(code: i8) -> AclOperation {
        use AclOperation::*;
        match code {
            1 => Any,
            2 => All,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Delete,
            7 => Alter,
            8 => Describe,
            9 => ClusterAction,
            10 => DescribeConfigs,
            11 => AlterConfigs,
            12 => IdempotentWrite,
            13 => CreateTokens,
            14 => DescribeTokens,
            _ => Unknown,
        }
    }

    /// Kafka's name (`READ`, `DESCRIBE_CONFIGS`, ...).
    pub fn name(self) -> &'static str {
        use AclOperation::*;
        match self {
            Unknown => "UNKNOWN",
            Any => "ANY",
            All => "ALL",
            Read => "READ",
            Write => "WRITE",
            Create => "CREATE",
            Delete => "DELETE",
            Alter => "ALTER",
            Describe => "DESCRIBE",
            ClusterAction => "CLUSTER_ACTION",
            DescribeConfigs => "DESCRIBE_CONFIGS",
            AlterConfigs => "ALTER_CONFIGS",
            IdempotentWrite => "IDEMPOTENT_WRITE",
            CreateTokens => "CREATE_TOKENS",
            DescribeTokens => "DESCRIBE_TOKENS",
        }
    }
}

/// Kafka's `AclPermissionType.DENY`.
pub const PERMISSION_DENY: i8 = 2;
/// Kafka's `AclPermissionType.ALLOW`.
pub const PERMISSION_ALLOW: i8 = 3;
/// Kafka's `PatternType.ANY` (filters: either type, exact name).
pub const PATTERN_ANY: i8 = 1;
/// Kafka's `PatternType.MATCH` (filters: every pattern that applies to the name).
pub const PATTERN_MATCH: i8 = 2;
pub use runnel_metadata::acls::{PATTERN_LITERAL as LITERAL, PATTERN_PREFIXED as PREFIXED};

/// What the authorizer is configured with.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    /// `super.users`, as `Type:name` strings.
    pub super_users: HashSet<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
}

/// One ACL decision's inputs: who asks, from where.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    /// The principal.
    pub principal: &'a KafkaPrincipal,
    /// The client's IP address as text (`127.0.0.1`).
    pub host: &'a str,
}

impl Authorizer {
    /// The authorizer `config` asks for: None without `authorizer.class.name`; an error for an
    /// authorizer Runnel does not have.
    pub fn from_config(config: &BrokerConfig) -> Result<Option<Authorizer>, String> {
        let get = |k: &str| config.explicit.get(k).map(|v| v.trim().to_string());
        match get("authorizer.class.name").as_deref() {
            None | Some("") => return Ok(None),
            Some(STANDARD_AUTHORIZER) => {}
            Some(other) => {
                return Err(format!(
                    "authorizer.class.name={other}: the only authorizer is {STANDARD_AUTHORIZER}"
                ))
            }
        }
        let super_users = get("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match KafkaPrincipal::parse(s) {
                Some(p) => Ok(p.to_string()),
                None => Err(format!(
                    "super.users: {s:?} is not a principal (Type:name, e.g. User:admin)"
                )),
            })
            .collect::<Result<HashSet<_>, _>>()?;
        let allow_if_no_acl = match get("allow.everyone.if.no.acl.found").as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(format!(
                    "allow.everyone.if.no.acl.found={v}: expected true or false"
                ))
            }
        };
        if !config.cluster.is_single_node(config.node_id) && !allow_if_no_acl {
            // Other nodes must be let in: their requests need CLUSTER_ACTION on the cluster.
            if let Some(node) = crate::security::outbound::node_principal(config)
                .filter(|p| !super_users.contains(p))
            {
                tracing::warn!(
                    "authorizer on in a cluster: other nodes connect as {node}, which is not in \
                     super.users, and allow.everyone.if.no.acl.found is false; inter-node \
                     requests (raft, forwarded controller requests, follower fetches) will be \
                     refused until an ACL grants {node} CLUSTER_ACTION on the cluster"
                );
            }
        }
        Ok(Some(Authorizer {
            super_users,
            allow_if_no_acl,
        }))
    }

    /// Whether `who` is a super user.
    pub fn is_super_user(&self, who: &Requester) -> bool {
        self.super_users.contains(&who.principal.to_string())
    }

    /// Whether `who` may do `op` on the resource (`rt`, `name`).
    pub fn authorize(
        &self,
        acls: &AclImage,
        who: &Requester,
        op: AclOperation,
        rt: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(who) {
            return true;
        }
        let principal = who.principal.to_string();
        let (mut any_acl, mut allowed) = (false, false);
        for acl in acls.matching(rt as i8, name) {
            any_acl = true;
            match applies(acl, &principal, who.host, op) {
                Some(false) => return false,
                Some(true) => allowed = true,
                None => {}
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
    }

    /// Whether `who` may do `op` on some resource of type `rt`: Kafka's
    /// `authorizeByResourceType` (an idempotent producer needs IDEMPOTENT_WRITE on the cluster
    /// or WRITE on some topic). Allowed when an ALLOW (literal or prefixed) applies whose
    /// resources are not all covered by a DENY (the same literal, a prefix of it, or the
    /// literal wildcard).
    pub fn authorize_any(
        &self,
        acls: &AclImage,
        who: &Requester,
        op: AclOperation,
        rt: ResourceType,
    ) -> bool {
        // As Kafka: a hard-coded name first, so super users (and the no-ACL default) pass.
        if self.authorize(acls, who, op, rt, "hardcode") {
            return true;
        }
        let principal = who.principal.to_string();
        let mut deny_literal = HashSet::new();
        let mut deny_prefixed = HashSet::new();
        let mut allow = Vec::new();
        // A wildcard deny wins whatever order the ACLs come in; a wildcard allow then suffices.
        let mut allow_all = false;
        for acl in acls.of_type(rt as i8) {
            if acl.host != WILDCARD && acl.host != who.host {
                continue;
            }
            if acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL {
                continue;
            }
            if acl.operation != op as i8 && acl.operation != AclOperation::All as i8 {
                continue;
            }
            match (acl.permission_type, acl.pattern_type) {
                (PERMISSION_DENY, PATTERN_LITERAL) if acl.resource_name == WILDCARD => {
                    return false
                }
                (PERMISSION_DENY, PATTERN_LITERAL) => {
                    deny_literal.insert(acl.resource_name.as_str());
                }
                (PERMISSION_DENY, PATTERN_PREFIXED) => {
                    deny_prefixed.insert(acl.resource_name.as_str());
                }
                (PERMISSION_ALLOW, PATTERN_LITERAL) if acl.resource_name == WILDCARD => {
                    allow_all = true;
                }
                (PERMISSION_ALLOW, pt @ (PATTERN_LITERAL | PATTERN_PREFIXED)) => {
                    allow.push((pt, acl.resource_name.as_str()))
                }
                _ => {}
            }
        }
        if allow_all {
            return true;
        }
        allow.iter().any(|(pt, name)| {
            if *pt == PATTERN_LITERAL && deny_literal.contains(name) {
                return false;
            }
            !name
                .char_indices()
                .map(|(i, c)| &name[..i + c.len_utf8()])
                .any(|prefix| deny_prefixed.contains(prefix))
        })
    }

    /// The operations `who` may do on (`rt`, `name`) as Kafka's 32-bit field (bit n set for
    /// the operation of code n), over the operations the type supports.
    pub fn authorized_operations(
        &self,
        acls: &AclImage,
        who: &Requester,
        rt: ResourceType,
        name: &str,
    ) -> i32 {
        operations_field(
            rt.supported_operations()
                .iter()
                .copied()
                .filter(|op| self.authorize(acls, who, *op, rt, name)),
        )
    }
}

/// Kafka's bit field of operations (`Utils.to32BitField`).
pub fn operations_field(ops: impl Iterator<Item = AclOperation>) -> i32 {
    ops.fold(0i32, |acc, op| acc | (1i32 << (op as i8)))
}

/// Whether ACL `acl` applies to `principal` at `host` doing `op`: Some(true) allows,
/// Some(false) denies, None says nothing.
fn applies(
    acl: &runnel_metadata::AclEntry,
    principal: &str,
    host: &str,
    op: AclOperation,
) -> Option<bool> {
    if acl.principal != principal && acl.principal != WILDCARD_PRINCIPAL {
        return None;
    }
    if acl.host != WILDCARD && acl.host != host {
        return None;
    }
    let allow = acl.permission_type == PERMISSION_ALLOW;
    let acl_op = AclOperation::from_code(acl.operation);
    if acl_op != AclOperation::All && acl_op != op {
        use AclOperation::*;
        let implied = allow
            && match op {
                Describe => matches!(acl_op, Read | Write | Delete | Alter),
                DescribeConfigs => acl_op == AlterConfigs,
                _ => false,
            };
        if !implied {
            return None;
        }
    }
    match acl.permission_type {
        PERMISSION_ALLOW => Some(true),
        PERMISSION_DENY => Some(false),
        _ => None,
    }
}
