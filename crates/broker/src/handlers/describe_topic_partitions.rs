//! DescribeTopicPartitions (key 75, KIP-966): topics and their partitions from this broker's
//! metadata image, in name order and paged: at most `response_partition_limit` partitions (capped
//! at Kafka's `max.request.partition.size.limit` default, 2000) per response, resumed from the
//! request's cursor, with the next cursor when more remain. Each partition as Metadata reports
//! it (leader, leader epoch, replicas, ISR, offline replicas), with its eligible leader replicas
//! and last known leader (KIP-966, [`crate::controller::elr`]): what `kafka-topics --describe`
//! prints as `Elr:` and `LastKnownElr:` (empty lists with the feature off, as Kafka sends).
//! Without an authorizer every topic operation is allowed, so `topic_authorized_operations`
//! carries them all, as in Kafka.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, TopicImage};
use uuid::Uuid;

use super::{is_live, sb, RequestContext};
use crate::controller;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Kafka's `max.request.partition.size.limit` default: the most partitions one response holds.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Every operation Kafka's ACLs know on a topic (Read 3, Write 4, Create 5, Delete 6, Alter 7,
/// Describe 8, DescribeConfigs 10, AlterConfigs 11) as a bit field: what a broker without an
/// authorizer reports as authorized.
pub const TOPIC_AUTHORIZED_OPERATIONS: i32 =
    1 << 3 | 1 << 4 | 1 << 5 | 1 << 6 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 11;

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&r| BrokerId(r)).collect()
}

/// Partitions `start..` of a topic, at most `max`; and the index of the first one left out.
fn partitions(
    image: &MetadataImage,
    t: &TopicImage,
    start: i32,
    max: i32,
) -> (Vec<DescribeTopicPartitionsResponsePartition>, Option<i32>) {
    let count = t.partitions.len() as i32;
    let upper = count.min(start.saturating_add(max));
    let next = (upper < count).then_some(upper);
    let parts = t
        .partitions
        .iter()
        .filter(|p| p.partition >= start && p.partition < upper)
        .map(|p| {
            let leader = if is_live(image, p.leader) {
                p.leader
            } else {
                -1
            };
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !is_live(image, *r))
                .collect();
            DescribeTopicPartitionsResponsePartition::default()
                .with_error_code(0)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_eligible_leader_replicas(Some(ids(&p.eligible_leader_replicas)))
                .with_last_known_elr(Some(ids(&p.last_known_elr)))
                .with_offline_replicas(ids(&offline))
        })
        .collect();
    (parts, next)
}

fn topic_entry(
    name: &str,
    error: Option<ResponseError>,
    topic_id: Uuid,
    partitions: Vec<DescribeTopicPartitionsResponsePartition>,
) -> DescribeTopicPartitionsResponseTopic {
    DescribeTopicPartitionsResponseTopic::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_name(Some(TopicName(sb(name))))
        .with_topic_id(topic_id)
        .with_is_internal(controller::is_internal_topic(name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS)
}

/// Kafka's answer to a request it refuses as a whole: each topic asked, with the error.
fn refused(req: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    DescribeTopicPartitionsResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_name(Some(t.name.clone()))
                    .with_is_internal(false)
            })
            .collect(),
    )
}

/// Handles DescribeTopicPartitions.
pub fn handle(
    ctx: &RequestContext,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = ctx.broker.image();
    let all = req.topics.is_empty();
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    let from = cursor.as_ref().map_or("", |(name, _)| name.as_str());
    let mut names: Vec<String> = if all {
        image.topics.keys().cloned().collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.retain(|n| n.as_str() >= from);
    names.sort_unstable();
    names.dedup();
    if let Some((name, index)) = &cursor {
        // The cursor's topic must be among those asked, and its partition a real index.
        if (!all && !names.contains(name)) || *index < 0 {
            return refused(&req);
        }
    }
    let mut remaining = req
        .response_partition_limit
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names {
        if remaining == 0 {
            // Every partition of the topics before fitted: resume at this one.
            next_cursor = Some((name, 0));
            break;
        }
        // As Kafka: a topic the principal may not describe is left out of an all-topics
        // answer, and answered TOPIC_AUTHORIZATION_FAILED when named.
        if !ctx.allowed(Op::Describe, Rt::Topic, &name) {
            if !all {
                ctx.authorize(Op::Describe, Rt::Topic, &name);
                topics.push(topic_entry(
                    &name,
                    Some(ResponseError::TopicAuthorizationFailed),
                    Uuid::nil(),
                    vec![],
                ));
            }
            continue;
        }
        match image.topic(&name) {
            Some(t) => {
                let start = match &cursor {
                    Some((c, index)) if *c == name => *index,
                    _ => 0,
                };
                let (parts, next) = partitions(&image, t, start, remaining);
                remaining -= parts.len() as i32;
                let mut entry = topic_entry(&name, None, t.topic_id, parts);
                entry.topic_authorized_operations = ctx.authorized_operations(Rt::Topic, &name);
                topics.push(entry);
                if let Some(next) = next {
                    next_cursor = Some((name, next));
                    break;
                }
            }
            None if !all => {
                let error = match controller::validate_topic_name(&name) {
                    Ok(()) => ResponseError::UnknownTopicOrPartition,
                    Err(e) => e.error,
                };
                topics.push(topic_entry(&name, Some(error), Uuid::nil(), vec![]));
            }
            None => {}
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor.map(|(name, index)| {
            Cursor::default()
                .with_topic_name(TopicName(sb(name)))
                .with_partition_index(index)
        }))
}
