//! SyncGroup (key 14): the leader hands in every member's assignment; each member waits for its
//! own.

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles SyncGroup.
pub async fn handle(ctx: &RequestContext, req: SyncGroupRequest) -> SyncGroupResponse {
    let v = ctx.api_version;
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let protocol_type = req.protocol_type.as_ref().map(|s| s.to_string());
    let protocol_name = req.protocol_name.as_ref().map(|s| s.to_string());
    let rx = ctx.broker.groups.sync(
        &ctx.broker,
        &req.group_id.0,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        protocol_type.as_deref(),
        protocol_name.as_deref(),
        req.assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    );
    let group_id = req.group_id.0.clone();
    let mut result = rx.await;
    if let Ok(r) = &mut result {
        // The group's new generation is acknowledged once it is in the in-sync replicas.
        if r.error == 0 {
            if let Err(e) = ctx.broker.groups.committed(&ctx.broker, &group_id).await {
                *r = crate::group::coordinator::SyncResult::error(e);
            }
        }
    }
    match result {
        Ok(r) => SyncGroupResponse::default()
            .with_error_code(r.error)
            .with_protocol_type(if v >= 5 {
                r.protocol_type.map(sb)
            } else {
                None
            })
            .with_protocol_name(if v >= 5 {
                r.protocol_name.map(sb)
            } else {
                None
            })
            .with_assignment(r.assignment),
        Err(_) => SyncGroupResponse::default()
            .with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}
