//! DeleteGroups (key 42): removes empty groups and their committed offsets; a group with members
//! is refused with NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DeleteGroups.
pub async fn handle(ctx: &RequestContext, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        // As Kafka: DELETE on each group.
        if !ctx.authorize(Op::Delete, Rt::Group, &g.0) {
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(
                        kafka_protocol::ResponseError::GroupAuthorizationFailed.code(),
                    ),
            );
            continue;
        }
        let mut error = ctx.broker.groups.delete_group(&ctx.broker, &g.0);
        if error.is_none() {
            // Acknowledged once the tombstones are in the in-sync replicas.
            error = ctx.broker.groups.committed(&ctx.broker, &g.0).await.err();
        }
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(error.map_or(0, |e| e.code())),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
