//! DescribeAcls (key 29). Without an authorizer Apache Kafka answers SECURITY_DISABLED with its
//! message (clients treat that as "no ACLs here": MirrorMaker 2's topic ACL sync stops quietly,
//! `kafka-acls --list` prints the error); so does Runnel. With one, the principal needs DESCRIBE
//! on the cluster (else CLUSTER_AUTHORIZATION_FAILED) and gets the ACLs of this broker's
//! metadata image that the filter matches, grouped by resource pattern.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::security::acl::filter::AclFilter;
use crate::security::acl::AclOperation;

/// Handles DescribeAcls.
pub fn handle(ctx: &RequestContext, req: DescribeAclsRequest) -> DescribeAclsResponse {
    let failed = |e: ResponseError, m: &str| {
        DescribeAclsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(m)))
    };
    if !ctx.authorizer_on() {
        return failed(
            ResponseError::SecurityDisabled,
            "No Authorizer is configured on the broker",
        );
    }
    if !ctx.authorize_cluster(AclOperation::Describe) {
        return failed(
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        );
    }
    let filter = AclFilter {
        resource_type: req.resource_type_filter,
        resource_name: req.resource_name_filter.as_ref().map(|s| s.to_string()),
        pattern_type: req.pattern_type_filter,
        principal: req.principal_filter.as_ref().map(|s| s.to_string()),
        host: req.host_filter.as_ref().map(|s| s.to_string()),
        operation: req.operation,
        permission_type: req.permission_type,
    };
    if let Err(m) = filter.validate() {
        return failed(ResponseError::InvalidRequest, &m);
    }
    let image = ctx.broker.image();
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in image.acls.by_id.values().filter(|a| filter.matches(a)) {
        by_resource
            .entry((
                acl.resource_type,
                acl.resource_name.clone(),
                acl.pattern_type,
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(sb(acl.principal.clone()))
                    .with_host(sb(acl.host.clone()))
                    .with_operation(acl.operation)
                    .with_permission_type(acl.permission_type),
            );
    }
    DescribeAclsResponse::default().with_resources(
        by_resource
            .into_iter()
            .map(|((rt, name, pt), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(rt)
                    .with_resource_name(sb(name))
                    .with_pattern_type(pt)
                    .with_acls(acls)
            })
            .collect(),
    )
}
