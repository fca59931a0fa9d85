//! CreateAcls (key 30). Without an authorizer (Runnel has none) Apache Kafka refuses every
//! creation with SECURITY_DISABLED, one result per requested binding, in request order; so does
//! Runnel.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Handles CreateAcls.
pub fn handle(_ctx: &RequestContext, req: CreateAclsRequest) -> CreateAclsResponse {
    CreateAclsResponse::default().with_results(
        req.creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(ResponseError::SecurityDisabled.code())
                    .with_error_message(Some(sb("No Authorizer is configured.")))
            })
            .collect(),
    )
}
