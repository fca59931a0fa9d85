//! ConsumerGroupDescribe (key 69, KIP-848): members, epochs and assignments of
//! consumer-protocol groups. A classic or unknown group gets GROUP_ID_NOT_FOUND, which is how
//! Kafka's admin client knows to fall back to DescribeGroups.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

fn assignment(parts: Vec<(uuid::Uuid, String, Vec<i32>)>) -> Assignment {
    Assignment::default().with_topic_partitions(
        parts
            .into_iter()
            .map(|(id, name, ps)| {
                TopicPartitions::default()
                    .with_topic_id(id)
                    .with_topic_name(TopicName(sb(name)))
                    .with_partitions(ps)
            })
            .collect(),
    )
}

/// Handles ConsumerGroupDescribe.
pub fn handle(
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let v = ctx.api_version;
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            // As Kafka: DESCRIBE on the group.
            if !ctx.authorize(Op::Describe, Rt::Group, &id.0) {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            let base = if req.include_authorized_operations {
                base.with_authorized_operations(ctx.authorized_operations(Rt::Group, &id.0))
            } else {
                base
            };
            match ctx
                .broker
                .groups
                .describe_consumer_group(&ctx.broker, &id.0)
            {
                Err(e) => base.with_error_code(e.code()),
                Ok(None) => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(format!(
                        "Group {} not found or not a consumer group.",
                        &*id.0
                    )))),
                Ok(Some(d)) => base
                    .with_group_state(sb(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(sb(d.assignor))
                    .with_members(
                        d.members
                            .into_iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(sb(m.member_id))
                                    .with_instance_id(m.instance_id.map(sb))
                                    .with_rack_id(m.rack_id.map(sb))
                                    .with_member_epoch(m.member_epoch)
                                    .with_client_id(sb(m.client_id))
                                    .with_client_host(sb(m.client_host))
                                    .with_subscribed_topic_names(
                                        m.subscribed_topic_names
                                            .into_iter()
                                            .map(|n| TopicName(sb(n)))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(m.subscribed_topic_regex.map(sb))
                                    .with_assignment(assignment(m.assignment))
                                    .with_target_assignment(assignment(m.target_assignment))
                                    .with_member_type(if v >= 1 { 1 } else { -1 })
                            })
                            .collect(),
                    ),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
