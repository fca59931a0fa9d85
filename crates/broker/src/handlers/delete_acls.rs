//! DeleteAcls (key 31). Without an authorizer (Runnel has none) Apache Kafka answers every filter
//! with SECURITY_DISABLED and no matching ACLs, in request order; so does Runnel.

use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Handles DeleteAcls.
pub fn handle(_ctx: &RequestContext, req: DeleteAclsRequest) -> DeleteAclsResponse {
    DeleteAclsResponse::default().with_filter_results(
        req.filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::SecurityDisabled.code())
                    .with_error_message(Some(sb("No Authorizer is configured.")))
            })
            .collect(),
    )
}
