//! ListGroups (key 16): every group this coordinator owns, optionally filtered by state (v4+)
//! and type (v5+: "classic" or "consumer").

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt, CLUSTER_NAME};

/// Handles ListGroups.
pub fn handle(ctx: &RequestContext, req: ListGroupsRequest) -> ListGroupsResponse {
    let v = ctx.api_version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    // As Kafka: every group with DESCRIBE on the cluster, else those the principal may describe.
    let cluster_describe = ctx.allowed(Op::Describe, Rt::Cluster, CLUSTER_NAME);
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|(id, _, _, _)| cluster_describe || ctx.allowed(Op::Describe, Rt::Group, id))
        .filter(|(_, _, state, _)| states.is_empty() || states.contains(&state.to_lowercase()))
        .filter(|(_, _, _, kind)| types.is_empty() || types.iter().any(|t| t == kind))
        .map(|(id, protocol_type, state, kind)| {
            let mut g = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type));
            if v >= 4 {
                g = g.with_group_state(sb(state));
            }
            if v >= 5 {
                g = g.with_group_type(sb(kind));
            }
            g
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
