//! DeleteGroups (key 42): removes empty groups and their committed offsets; a group with members
//! is refused with NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::RequestContext;

/// Handles DeleteGroups.
pub fn handle(ctx: &RequestContext, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    DeleteGroupsResponse::default().with_results(
        req.groups_names
            .into_iter()
            .map(|g| {
                let error = ctx.broker.groups.delete_group(&ctx.broker, &g.0);
                DeletableGroupResult::default()
                    .with_group_id(g)
                    .with_error_code(error.map_or(0, |e| e.code()))
            })
            .collect(),
    )
}
