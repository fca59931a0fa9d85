//! Heartbeat (key 12): keeps a member's session alive and tells it when to rejoin.

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles Heartbeat.
pub fn handle(ctx: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return HeartbeatResponse::default()
            .with_error_code(kafka_protocol::ResponseError::GroupAuthorizationFailed.code());
    }
    let error = ctx.broker.groups.heartbeat(
        &ctx.broker,
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(error.map_or(0, |e| e.code()))
}
