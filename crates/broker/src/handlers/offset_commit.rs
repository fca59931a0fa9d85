//! OffsetCommit (key 8): committed offsets of a group's members, or of a standalone consumer or
//! an admin tool (generation -1 on an empty group).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::OffsetCommitEntry;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Per-entry results of a commit once its wait for the in-sync replicas is over: the entries
/// that succeeded take the wait's error, if any.
pub(crate) async fn acknowledged(
    ctx: &RequestContext,
    group_id: &str,
    errors: Vec<i16>,
) -> Vec<i16> {
    if !errors.contains(&0) {
        return errors;
    }
    match ctx.broker.groups.committed(&ctx.broker, group_id).await {
        Ok(()) => errors,
        Err(e) => errors
            .into_iter()
            .map(|c| if c == 0 { e.code() } else { c })
            .collect(),
    }
}

/// Handles OffsetCommit.
pub async fn handle(ctx: &RequestContext, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.api_version;
    // As Kafka: READ on the group (else every partition fails), READ on each topic (else its
    // partitions fail with TOPIC_AUTHORIZATION_FAILED and the others are committed).
    let group_denied = !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0);
    let topic_denied: Vec<bool> = req
        .topics
        .iter()
        .flat_map(|t| {
            let denied = !group_denied && !ctx.authorize(Op::Read, Rt::Topic, &t.name.0);
            t.partitions.iter().map(move |_| denied)
        })
        .collect();
    let entries: Vec<OffsetCommitEntry> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| OffsetCommitEntry {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if v >= 6 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .zip(&topic_denied)
        .filter(|(_, denied)| !**denied)
        .map(|(e, _)| e)
        .collect();
    let retention_ms = if (2..=4).contains(&v) {
        req.retention_time_ms
    } else {
        -1
    };
    let result = if group_denied {
        Err(kafka_protocol::ResponseError::GroupAuthorizationFailed)
    } else if entries.is_empty() {
        Ok(vec![])
    } else {
        ctx.broker.groups.commit_offsets(
            &ctx.broker,
            v,
            &req.group_id.0,
            req.generation_id_or_member_epoch,
            &req.member_id,
            if v >= 7 {
                req.group_instance_id.as_deref()
            } else {
                None
            },
            retention_ms,
            &entries,
        )
    };
    let errors: Vec<i16> = match result {
        Ok(e) => acknowledged(ctx, &req.group_id.0, e).await,
        Err(e) => vec![e.code(); entries.len()],
    };
    let mut errors = errors.into_iter();
    let denied_code = kafka_protocol::ResponseError::TopicAuthorizationFailed.code();
    let mut errors = topic_denied.into_iter().map(move |denied| {
        if denied {
            denied_code
        } else {
            errors.next().unwrap_or(0)
        }
    });
    OffsetCommitResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(errors.next().unwrap_or(0))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}
