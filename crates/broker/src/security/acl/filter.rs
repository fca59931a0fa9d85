//! ACL binding filters (DescribeAcls, DeleteAcls), as Kafka's `AclBindingFilter` matches them:
//! each field is either "any" or must be equal; a MATCH pattern filter with a name selects every
//! ACL that applies to that resource (the literal name, the literal wildcard, prefixes).

use runnel_metadata::AclEntry;

use super::{AclOperation, ResourceType, PATTERN_ANY, PATTERN_MATCH, WILDCARD};
use super::{LITERAL, PREFIXED};

/// Kafka's `AclPermissionType.ANY`.
const PERMISSION_ANY: i8 = 1;

/// One filter of a DescribeAcls or DeleteAcls request.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclFilter {
    /// Resource type code (1 any).
    pub resource_type: i8,
    /// Resource name, None for any.
    pub resource_name: Option<String>,
    /// Pattern type code (1 any, 2 match, 3 literal, 4 prefixed).
    pub pattern_type: i8,
    /// Principal, None for any.
    pub principal: Option<String>,
    /// Host, None for any.
    pub host: Option<String>,
    /// Operation code (1 any).
    pub operation: i8,
    /// Permission type code (1 any).
    pub permission_type: i8,
}

impl AclFilter {
    /// Kafka's refusal of a filter with an unknown field (INVALID_REQUEST), if any.
    pub fn validate(&self) -> Result<(), String> {
        if ResourceType::from_code(self.resource_type) == ResourceType::Unknown
            || !(PATTERN_ANY..=PREFIXED).contains(&self.pattern_type)
        {
            return Err("Unknown patternFilter.".to_string());
        }
        if AclOperation::from_code(self.operation) == AclOperation::Unknown
            || !(PERMISSION_ANY..=super::PERMISSION_ALLOW).contains(&self.permission_type)
        {
            return Err("Unknown entryFilter.".to_string());
        }
        Ok(())
    }

    /// Whether the filter selects `acl`.
    pub fn matches(&self, acl: &AclEntry) -> bool {
        if self.resource_type != ResourceType::Any as i8 && self.resource_type != acl.resource_type
        {
            return false;
        }
        let pattern_ok = match (&self.resource_name, self.pattern_type) {
            (_, pt) if pt != PATTERN_ANY && pt != PATTERN_MATCH && pt != acl.pattern_type => false,
            (None, _) => true,
            (Some(n), pt) if pt == PATTERN_ANY || pt == acl.pattern_type => *n == acl.resource_name,
            (Some(n), _) => match acl.pattern_type {
                LITERAL => *n == acl.resource_name || acl.resource_name == WILDCARD,
                PREFIXED => n.starts_with(&acl.resource_name),
                _ => false,
            },
        };
        pattern_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any as i8 || self.operation == acl.operation)
            && (self.permission_type == PERMISSION_ANY
                || self.permission_type == acl.permission_type)
    }
}
