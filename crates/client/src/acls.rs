//! ACLs through the admin client: DescribeAcls, CreateAcls and DeleteAcls, with Kafka's codes
//! for resource types, pattern types, operations and permissions, and their names as Kafka
//! prints them (`TOPIC`, `LITERAL`, `DESCRIBE_CONFIGS`, `ALLOW`).

use runnel_protocol::kafka_protocol::messages::{
    create_acls_request::AclCreation, delete_acls_request::DeleteAclsFilter, CreateAclsRequest,
    DeleteAclsRequest, DescribeAclsRequest,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{Error, Result};

/// Resource types: code and Kafka's name.
pub const RESOURCE_TYPES: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "TOPIC"),
    (3, "GROUP"),
    (4, "CLUSTER"),
    (5, "TRANSACTIONAL_ID"),
    (6, "DELEGATION_TOKEN"),
    (7, "USER"),
];

/// Pattern types: code and Kafka's name.
pub const PATTERN_TYPES: &[(i8, &str)] =
    &[(1, "ANY"), (2, "MATCH"), (3, "LITERAL"), (4, "PREFIXED")];

/// Operations: code and Kafka's name.
pub const OPERATIONS: &[(i8, &str)] = &[
    (1, "ANY"),
    (2, "ALL"),
    (3, "READ"),
    (4, "WRITE"),
    (5, "CREATE"),
    (6, "DELETE"),
    (7, "ALTER"),
    (8, "DESCRIBE"),
    (9, "CLUSTER_ACTION"),
    (10, "DESCRIBE_CONFIGS"),
    (11, "ALTER_CONFIGS"),
    (12, "IDEMPOTENT_WRITE"),
    (13, "CREATE_TOKENS"),
    (14, "DESCRIBE_TOKENS"),
    (15, "TWO_PHASE_COMMIT"),
];

/// Permission types: code and Kafka's name.
pub const PERMISSIONS: &[(i8, &str)] = &[(1, "ANY"), (2, "DENY"), (3, "ALLOW")];

/// The resource name of the cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// The name of a code in one of the tables (`UNKNOWN` when absent).
pub fn name_of(table: &[(i8, &'static str)], code: i8) -> &'static str {
    table
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("UNKNOWN", |(_, n)| *n)
}

/// The code of a name in one of the tables, case-insensitive and ignoring `_` and `-`
/// (`DescribeConfigs`, `describe-configs` and `DESCRIBE_CONFIGS` are the same).
pub fn code_of(table: &[(i8, &str)], name: &str) -> Option<i8> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let want = norm(name);
    table.iter().find(|(_, n)| norm(n) == want).map(|(c, _)| *c)
}

/// One ACL: a resource pattern and an access control entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclBinding {
    /// The resource type code.
    pub resource_type: i8,
    /// The resource name (`*` for every resource of the type; `kafka-cluster` for the cluster).
    pub resource_name: String,
    /// The pattern type code (LITERAL or PREFIXED).
    pub pattern_type: i8,
    /// The principal, e.g. `User:alice` (`User:*` for every user).
    pub principal: String,
    /// The host (`*` for any).
    pub host: String,
    /// The operation code.
    pub operation: i8,
    /// The permission code (ALLOW or DENY).
    pub permission: i8,
}

impl AclBinding {
    /// Kafka's printed form of the resource pattern.
    pub fn pattern_text(&self) -> String {
        format!(
            "ResourcePattern(resourceType={}, name={}, patternType={})",
            name_of(RESOURCE_TYPES, self.resource_type),
            self.resource_name,
            name_of(PATTERN_TYPES, self.pattern_type)
        )
    }

    /// Kafka's printed form of the entry.
    pub fn entry_text(&self) -> String {
        format!(
            "(principal={}, host={}, operation={}, permissionType={})",
            self.principal,
            self.host,
            name_of(OPERATIONS, self.operation),
            name_of(PERMISSIONS, self.permission)
        )
    }
}

/// A filter on ACLs: ANY codes and `None` strings match everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type code (1 = ANY).
    pub resource_type: i8,
    /// Resource name (None = any).
    pub resource_name: Option<String>,
    /// Pattern type code (1 = ANY, 2 = MATCH: every pattern that applies to the name).
    pub pattern_type: i8,
    /// Principal (None = any).
    pub principal: Option<String>,
    /// Host (None = any).
    pub host: Option<String>,
    /// Operation code (1 = ANY).
    pub operation: i8,
    /// Permission code (1 = ANY).
    pub permission: i8,
}

impl Default for AclFilter {
    fn default() -> Self {
        AclFilter {
            resource_type: 1,
            resource_name: None,
            pattern_type: 1,
            principal: None,
            host: None,
            operation: 1,
            permission: 1,
        }
    }
}

impl AclFilter {
    /// The filter that matches exactly this ACL.
    pub fn exact(b: &AclBinding) -> AclFilter {
        AclFilter {
            resource_type: b.resource_type,
            resource_name: Some(b.resource_name.clone()),
            pattern_type: b.pattern_type,
            principal: Some(b.principal.clone()),
            host: Some(b.host.clone()),
            operation: b.operation,
            permission: b.permission,
        }
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn msg(m: &Option<StrBytes>) -> Option<String> {
    m.as_ref().map(|m| m.to_string())
}

impl Admin {
    /// The ACLs that match `filter`, sorted.
    pub async fn describe_acls(&self, filter: &AclFilter) -> Result<Vec<AclBinding>> {
        let conn = self.cluster().any().await?;
        let v = conn.version::<DescribeAclsRequest>(3)?;
        if v == 0 && filter.pattern_type != 3 && filter.pattern_type != 1 {
            return Err(Error::Config(
                "the broker does not know pattern types (DescribeAcls v0)".into(),
            ));
        }
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(filter.resource_type)
            .with_resource_name_filter(filter.resource_name.as_deref().map(s))
            .with_pattern_type_filter(if v == 0 { 3 } else { filter.pattern_type })
            .with_principal_filter(filter.principal.as_deref().map(s))
            .with_host_filter(filter.host.as_deref().map(s))
            .with_operation(filter.operation)
            .with_permission_type(filter.permission);
        let resp = conn.send(&req, v).await?;
        Error::check(resp.error_code, msg(&resp.error_message), || {
            "describe ACLs".into()
        })?;
        let mut out: Vec<AclBinding> = resp
            .resources
            .iter()
            .flat_map(|r| {
                r.acls.iter().map(move |a| AclBinding {
                    resource_type: r.resource_type,
                    resource_name: r.resource_name.to_string(),
                    pattern_type: if v == 0 { 3 } else { r.pattern_type },
                    principal: a.principal.to_string(),
                    host: a.host.to_string(),
                    operation: a.operation,
                    permission: a.permission_type,
                })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Creates ACLs; the first refused one is the error (the others may have been created).
    pub async fn create_acls(&self, acls: &[AclBinding]) -> Result<()> {
        let conn = self.cluster().any().await?;
        let v = conn.version::<CreateAclsRequest>(3)?;
        let creations = acls
            .iter()
            .map(|b| {
                AclCreation::default()
                    .with_resource_type(b.resource_type)
                    .with_resource_name(s(&b.resource_name))
                    .with_resource_pattern_type(b.pattern_type)
                    .with_principal(s(&b.principal))
                    .with_host(s(&b.host))
                    .with_operation(b.operation)
                    .with_permission_type(b.permission)
            })
            .collect();
        let resp = conn
            .send(&CreateAclsRequest::default().with_creations(creations), v)
            .await?;
        for (r, b) in resp.results.iter().zip(acls) {
            Error::check(r.error_code, msg(&r.error_message), || {
                format!("create ACL {} on {}", b.entry_text(), b.pattern_text())
            })?;
        }
        Ok(())
    }

    /// Deletes the ACLs that match any of `filters`; returns those deleted, sorted.
    pub async fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<AclBinding>> {
        let conn = self.cluster().any().await?;
        let v = conn.version::<DeleteAclsRequest>(3)?;
        let fs = filters
            .iter()
            .map(|f| {
                DeleteAclsFilter::default()
                    .with_resource_type_filter(f.resource_type)
                    .with_resource_name_filter(f.resource_name.as_deref().map(s))
                    .with_pattern_type_filter(f.pattern_type)
                    .with_principal_filter(f.principal.as_deref().map(s))
                    .with_host_filter(f.host.as_deref().map(s))
                    .with_operation(f.operation)
                    .with_permission_type(f.permission)
            })
            .collect();
        let resp = conn
            .send(&DeleteAclsRequest::default().with_filters(fs), v)
            .await?;
        let mut out = Vec::new();
        for r in &resp.filter_results {
            Error::check(r.error_code, msg(&r.error_message), || "delete ACLs".into())?;
            for m in &r.matching_acls {
                let b = AclBinding {
                    resource_type: m.resource_type,
                    resource_name: m.resource_name.to_string(),
                    pattern_type: m.pattern_type,
                    principal: m.principal.to_string(),
                    host: m.host.to_string(),
                    operation: m.operation,
                    permission: m.permission_type,
                };
                Error::check(m.error_code, msg(&m.error_message), || {
                    format!("delete ACL {} on {}", b.entry_text(), b.pattern_text())
                })?;
                out.push(b);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        assert_eq!(code_of(OPERATIONS, "DescribeConfigs"), Some(10));
        assert_eq!(code_of(OPERATIONS, "describe-configs"), Some(10));
        assert_eq!(code_of(OPERATIONS, "IDEMPOTENT_WRITE"), Some(12));
        assert_eq!(code_of(PATTERN_TYPES, "prefixed"), Some(4));
        assert_eq!(code_of(RESOURCE_TYPES, "TransactionalId"), Some(5));
        assert_eq!(code_of(OPERATIONS, "Fly"), None);
        assert_eq!(name_of(PERMISSIONS, 3), "ALLOW");
        assert_eq!(name_of(PERMISSIONS, 9), "UNKNOWN");
        let b = AclBinding {
            resource_type: 2,
            resource_name: "t".into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission: 3,
        };
        assert_eq!(
            b.pattern_text(),
            "ResourcePattern(resourceType=TOPIC, name=t, patternType=LITERAL)"
        );
        assert_eq!(
            b.entry_text(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)"
        );
        assert_eq!(AclFilter::exact(&b).operation, 3);
    }
}
