//! DeleteAcls (key 31). Without an authorizer Apache Kafka answers every filter with
//! SECURITY_DISABLED and no matching ACLs, in request order; so does Runnel. With one, the
//! principal needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED per filter) and the
//! active controller removes every ACL each filter matches, answering them per filter.

use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::controller::{self, ControllerRequest};
use crate::security::acl::filter::AclFilter;

fn all_failed(req: &DeleteAclsRequest, error: ResponseError, message: &str) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(
        req.filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(sb(message)))
            })
            .collect(),
    )
}

/// Handles DeleteAcls.
pub fn handle(ctx: &RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse {
    if let Some((error, message)) = ctx.acl_change_refused() {
        return all_failed(&req, error, message);
    }
    let filters: Vec<AclFilter> = req
        .filters
        .iter()
        .map(|f| AclFilter {
            resource_type: f.resource_type_filter,
            resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
            pattern_type: f.pattern_type_filter,
            principal: f.principal_filter.as_ref().map(|s| s.to_string()),
            host: f.host_filter.as_ref().map(|s| s.to_string()),
            operation: f.operation,
            permission_type: f.permission_type,
        })
        .collect();
    match controller::submit(&ctx.broker, ControllerRequest::DeleteAcls { filters }) {
        Ok(ok) => DeleteAclsResponse::default().with_filter_results(
            ok.acls
                .into_iter()
                .map(|r| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(r.error_code)
                        .with_error_message(r.message.map(sb))
                        .with_matching_acls(
                            r.acls
                                .into_iter()
                                .map(|a| {
                                    DeleteAclsMatchingAcl::default()
                                        .with_resource_type(a.resource_type)
                                        .with_resource_name(sb(a.resource_name))
                                        .with_pattern_type(a.pattern_type)
                                        .with_principal(sb(a.principal))
                                        .with_host(sb(a.host))
                                        .with_operation(a.operation)
                                        .with_permission_type(a.permission_type)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) => all_failed(&req, e.error, &e.message),
    }
}
