//! ConsumerGroupHeartbeat (key 68, KIP-848): membership and server-side assignment of
//! consumer-protocol groups, one heartbeat at a time.

use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};

use super::{sb, RequestContext};
use crate::group::consumer::Assignment as Owned;
use crate::group::coordinator::HeartbeatParams;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles ConsumerGroupHeartbeat.
pub async fn handle(
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let v = ctx.api_version;
    // As Kafka: READ on the group, DESCRIBE on every subscribed topic.
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return ConsumerGroupHeartbeatResponse::default()
            .with_error_code(kafka_protocol::ResponseError::GroupAuthorizationFailed.code());
    }
    if let Some(names) = &req.subscribed_topic_names {
        let denied: Vec<&str> = names
            .iter()
            .map(|n| n.0.as_str())
            .filter(|n| !ctx.authorize(Op::Describe, Rt::Topic, n))
            .collect();
        if !denied.is_empty() {
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(kafka_protocol::ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(Some(sb(format!(
                    "The following topics are not authorized: {}",
                    denied.join(", ")
                ))));
        }
    }
    let owned = req.topic_partitions.as_ref().map(|tps| {
        let mut a = Owned::new();
        for tp in tps {
            a.entry(tp.topic_id)
                .or_default()
                .extend(tp.partitions.iter().copied());
        }
        a.retain(|_, ps| !ps.is_empty());
        a
    });
    let params = HeartbeatParams {
        version: v,
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed_topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|ns| ns.iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: if v >= 1 {
            req.subscribed_topic_regex.as_ref().map(|s| s.to_string())
        } else {
            None
        },
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    };
    let group_id = params.group_id.clone();
    let mut out = ctx.broker.groups.consumer_heartbeat(&ctx.broker, params);
    if out.error.is_none() {
        // The member's new epoch and assignment are answered once in the in-sync replicas.
        if let Err(e) = ctx.broker.groups.committed(&ctx.broker, &group_id).await {
            out.error = Some((e, "The group's state is not replicated yet.".to_string()));
        }
    }
    let (error_code, error_message) = match out.error {
        Some((e, m)) => (e.code(), Some(sb(m))),
        None => (0, None),
    };
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(error_code)
        .with_error_message(error_message)
        .with_member_id(Some(sb(out.member_id)))
        .with_member_epoch(out.member_epoch)
        .with_heartbeat_interval_ms(out.heartbeat_interval_ms)
        .with_assignment(out.assignment.map(|a| {
            Assignment::default().with_topic_partitions(
                a.into_iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_partitions(ps.into_iter().collect())
                    })
                    .collect(),
            )
        }))
}
