//! DescribeGroups (key 15): state, protocol and members (with metadata and assignments) of
//! classic groups. An unknown group is described as "Dead", as Kafka does before v6.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DescribeGroups.
pub fn handle(ctx: &RequestContext, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let v = ctx.api_version;
    let groups = req
        .groups
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            if !ctx.authorize(Op::Describe, Rt::Group, &id.0) {
                return base.with_error_code(
                    kafka_protocol::ResponseError::GroupAuthorizationFailed.code(),
                );
            }
            let base = if v >= 3 && req.include_authorized_operations {
                base.with_authorized_operations(ctx.authorized_operations(Rt::Group, &id.0))
            } else {
                base
            };
            match ctx.broker.groups.describe(&ctx.broker, &id.0) {
                Err(e) => base.with_error_code(e.code()),
                Ok(None) => base
                    .with_group_state(sb("Dead"))
                    .with_protocol_type(sb(""))
                    .with_protocol_data(sb("")),
                Ok(Some(d)) => base
                    .with_group_state(sb(d.state.name()))
                    .with_protocol_type(sb(d.protocol_type))
                    .with_protocol_data(sb(d.protocol))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                DescribedGroupMember::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_group_instance_id(if v >= 4 {
                                        m.group_instance_id.map(sb)
                                    } else {
                                        None
                                    })
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_member_metadata(m.metadata)
                                    .with_member_assignment(m.assignment)
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
