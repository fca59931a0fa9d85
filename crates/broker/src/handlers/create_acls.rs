//! CreateAcls (key 30). Without an authorizer Apache Kafka refuses every creation with
//! SECURITY_DISABLED, one result per requested binding, in request order; so does Runnel. With
//! one, the principal needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED for each
//! creation) and the active controller writes the new ACLs to the metadata log
//! (`controller::acls`: INVALID_REQUEST for a binding Kafka refuses, success for one that
//! already exists).

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;
use runnel_metadata::AclEntry;

use super::{sb, RequestContext};
use crate::controller::{self, ControllerRequest};

fn all_failed(req: &CreateAclsRequest, error: ResponseError, message: &str) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(
        req.creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(error.code())
                    .with_error_message(Some(sb(message)))
            })
            .collect(),
    )
}

/// Handles CreateAcls.
pub fn handle(ctx: &RequestContext, req: CreateAclsRequest) -> CreateAclsResponse {
    if let Some((error, message)) = ctx.acl_change_refused() {
        return all_failed(&req, error, message);
    }
    let acls: Vec<AclEntry> = req
        .creations
        .iter()
        .map(|c| AclEntry {
            resource_type: c.resource_type,
            resource_name: c.resource_name.to_string(),
            // v0 has no pattern type: literal.
            pattern_type: c.resource_pattern_type,
            principal: c.principal.to_string(),
            host: c.host.to_string(),
            operation: c.operation,
            permission_type: c.permission_type,
        })
        .collect();
    match controller::submit(&ctx.broker, ControllerRequest::CreateAcls { acls }) {
        Ok(ok) => CreateAclsResponse::default().with_results(
            ok.acls
                .into_iter()
                .map(|r| {
                    AclCreationResult::default()
                        .with_error_code(r.error_code)
                        .with_error_message(r.message.map(sb))
                })
                .collect(),
        ),
        Err(e) => all_failed(&req, e.error, &e.message),
    }
}
