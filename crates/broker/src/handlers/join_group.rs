//! JoinGroup (key 11): waits until the group's rebalance completes, then answers with the
//! generation, the selected protocol and, for the leader, every member's metadata.

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::group::coordinator::{JoinParams, JoinResult};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles JoinGroup.
pub async fn handle(ctx: &RequestContext, req: JoinGroupRequest) -> JoinGroupResponse {
    let v = ctx.api_version;
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code())
            .with_generation_id(-1);
    }
    let params = JoinParams {
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if v >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4 && req.group_instance_id.is_none(),
        supports_skip_assignment: v >= 9,
    };
    let member_id = params.member_id.clone();
    let rx = ctx.broker.groups.join(&ctx.broker, params);
    let r = rx.await.unwrap_or_else(|_| JoinResult {
        error: ResponseError::CoordinatorNotAvailable.code(),
        generation_id: -1,
        member_id,
        ..Default::default()
    });
    let protocol_name = if v >= 7 {
        r.protocol_name.map(sb)
    } else {
        Some(sb(r.protocol_name.unwrap_or_default()))
    };
    JoinGroupResponse::default()
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if v >= 7 {
            r.protocol_type.map(sb)
        } else {
            None
        })
        .with_protocol_name(protocol_name)
        .with_leader(sb(r.leader))
        .with_skip_assignment(v >= 9 && r.skip_assignment)
        .with_member_id(sb(r.member_id))
        .with_members(
            r.members
                .into_iter()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_group_instance_id(if v >= 5 {
                            m.group_instance_id.map(sb)
                        } else {
                            None
                        })
                        .with_metadata(m.metadata)
                })
                .collect(),
        )
}
