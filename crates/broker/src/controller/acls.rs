//! CreateAcls and DeleteAcls on the active controller, as Kafka's `AclControlManager`: each
//! new binding validated (a concrete resource type, LITERAL or PREFIXED, a concrete operation,
//! ALLOW or DENY, a non-empty name), an identical existing ACL left alone (success), each new
//! one written as an AccessControlEntry record with a fresh id; each delete filter validated and
//! every ACL it matches removed with a RemoveAccessControlEntry record. One request's records
//! commit together.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;
use runnel_metadata::{AclEntry, MetadataRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{propose, ControllerError};
use crate::broker::Broker;
use crate::security::acl::filter::AclFilter;
use crate::security::acl::{
    AclOperation, ResourceType, CLUSTER_NAME, LITERAL, PERMISSION_ALLOW, PERMISSION_DENY, PREFIXED,
};

/// The outcome of one creation or one delete filter: Kafka's error code (0: done) and message,
/// and for a filter the ACLs it deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclResult {
    /// Error code.
    pub error_code: i16,
    /// Error message.
    pub message: Option<String>,
    /// The ACLs deleted (DeleteAcls).
    pub acls: Vec<AclEntry>,
}

impl AclResult {
    fn invalid(message: String) -> AclResult {
        AclResult {
            error_code: ResponseError::InvalidRequest.code(),
            message: Some(message),
            acls: vec![],
        }
    }
}

/// Why a new ACL cannot be created (INVALID_REQUEST), as Kafka's checks word it.
pub fn validate_new(acl: &AclEntry) -> Result<(), String> {
    let rt = ResourceType::from_code(acl.resource_type);
    if matches!(rt, ResourceType::Unknown | ResourceType::Any) {
        return Err(format!("Invalid resourceType {}", rt.name()));
    }
    if acl.pattern_type != LITERAL && acl.pattern_type != PREFIXED {
        return Err(format!("Invalid patternType {}", acl.pattern_type));
    }
    let op = AclOperation::from_code(acl.operation);
    if matches!(op, AclOperation::Unknown | AclOperation::Any) {
        return Err(format!("Invalid operation {}", op.name()));
    }
    if acl.permission_type != PERMISSION_ALLOW && acl.permission_type != PERMISSION_DENY {
        return Err(format!("Invalid permissionType {}", acl.permission_type));
    }
    if rt == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if acl.resource_name.is_empty() {
        return Err("Invalid empty resource name".to_string());
    }
    if crate::security::KafkaPrincipal::parse(&acl.principal).is_none() {
        return Err(format!(
            "Could not parse principal from `{}` (no colon is present separating the principal type from the principal name)",
            acl.principal
        ));
    }
    if acl.host.is_empty() {
        return Err("Invalid empty host".to_string());
    }
    Ok(())
}

/// Creates the ACLs asked for; one result per binding, in order.
pub fn exec_create_acls(
    broker: &Broker,
    acls: Vec<AclEntry>,
) -> Result<Vec<AclResult>, ControllerError> {
    let image = broker.image();
    let mut records = Vec::new();
    let mut adding = BTreeSet::new();
    let mut results = Vec::with_capacity(acls.len());
    for acl in acls {
        if let Err(message) = validate_new(&acl) {
            results.push(AclResult::invalid(message));
            continue;
        }
        if image.acls.find(&acl).is_none() && adding.insert(acl.clone()) {
            records.push(MetadataRecord::AccessControlEntry {
                id: Uuid::new_v4(),
                acl,
            });
        }
        results.push(AclResult::default());
    }
    if !records.is_empty() {
        let n = records.len();
        propose(broker, records)?;
        tracing::info!(acls = n, "ACLs created");
    }
    Ok(results)
}

/// Deletes the ACLs each filter matches; one result per filter, in order, with the ACLs it
/// matched (an ACL matched by two filters is listed by both and removed once).
pub fn exec_delete_acls(
    broker: &Broker,
    filters: Vec<AclFilter>,
) -> Result<Vec<AclResult>, ControllerError> {
    let image = broker.image();
    let mut removed = BTreeSet::new();
    let mut results = Vec::with_capacity(filters.len());
    for filter in filters {
        if let Err(message) = filter.validate() {
            results.push(AclResult::invalid(message));
            continue;
        }
        let mut result = AclResult::default();
        for (id, acl) in &image.acls.by_id {
            if filter.matches(acl) {
                result.acls.push(acl.clone());
                removed.insert(*id);
            }
        }
        results.push(result);
    }
    if !removed.is_empty() {
        let n = removed.len();
        propose(
            broker,
            removed
                .into_iter()
                .map(|id| MetadataRecord::RemoveAccessControlEntry { id })
                .collect(),
        )?;
        tracing::info!(acls = n, "ACLs deleted");
    }
    Ok(results)
}
