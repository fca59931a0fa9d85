//! LeaveGroup (key 13): one member (v0-v2) or a batch of members by id or instance id (v3+).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles LeaveGroup.
pub fn handle(ctx: &RequestContext, req: LeaveGroupRequest) -> LeaveGroupResponse {
    let v = ctx.api_version;
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return LeaveGroupResponse::default()
            .with_error_code(kafka_protocol::ResponseError::GroupAuthorizationFailed.code());
    }
    let members: Vec<(String, Option<String>)> = if v >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match ctx
        .broker
        .groups
        .leave(&ctx.broker, &req.group_id.0, &members)
    {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(errors) if v < 3 => {
            LeaveGroupResponse::default().with_error_code(errors.first().copied().unwrap_or(0))
        }
        Ok(errors) => LeaveGroupResponse::default().with_members(
            members
                .into_iter()
                .zip(errors)
                .map(|((id, inst), e)| {
                    MemberResponse::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(inst.map(sb))
                        .with_error_code(e)
                })
                .collect(),
        ),
    }
}
