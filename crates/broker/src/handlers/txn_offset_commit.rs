//! TxnOffsetCommit (key 28): offsets committed inside a transaction, sent to the group
//! coordinator; they become visible when the transaction commits. From v5 (transactions v2) the
//! group's `__consumer_offsets` partition joins the transaction implicitly.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::OffsetCommitEntry;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles TxnOffsetCommit.
pub async fn handle(ctx: &RequestContext, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let v = ctx.api_version;
    // As Kafka: WRITE on the transactional id, READ on the group (else every partition fails),
    // READ on each topic (else its partitions fail and the others are committed).
    let denied_all = if !ctx.authorize(Op::Write, Rt::TransactionalId, &req.transactional_id.0) {
        Some(kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed)
    } else if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        Some(kafka_protocol::ResponseError::GroupAuthorizationFailed)
    } else {
        None
    };
    let topic_denied: Vec<bool> = req
        .topics
        .iter()
        .flat_map(|t| {
            let denied = denied_all.is_none() && !ctx.authorize(Op::Read, Rt::Topic, &t.name.0);
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
                leader_epoch: if v >= 2 { p.committed_leader_epoch } else { -1 },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            })
        })
        .zip(&topic_denied)
        .filter(|(_, denied)| !**denied)
        .map(|(e, _)| e)
        .collect();
    let implicit = if let Some(e) = denied_all {
        Err(e)
    } else if entries.is_empty() {
        Ok(())
    } else if v >= 5 {
        ctx.broker
            .groups
            .ensure_offsets_topic(&ctx.broker)
            .and_then(|()| {
                let p = ctx.broker.groups.partition_of(&ctx.broker, &req.group_id.0);
                ctx.broker.txns.add_partition_implicitly(
                    &ctx.broker,
                    &req.transactional_id.0,
                    req.producer_id.0,
                    req.producer_epoch,
                    crate::group::OFFSETS_TOPIC,
                    p,
                )
            })
    } else {
        Ok(())
    };
    let result = implicit.and_then(|()| {
        if entries.is_empty() {
            return Ok(vec![]);
        }
        ctx.broker.groups.txn_commit_offsets(
            &ctx.broker,
            &req.group_id.0,
            req.producer_id.0,
            req.producer_epoch,
            if v >= 3 { req.generation_id } else { -1 },
            if v >= 3 { &req.member_id } else { "" },
            if v >= 3 {
                req.group_instance_id.as_deref()
            } else {
                None
            },
            &entries,
        )
    });
    let errors = match result {
        Ok(e) => super::offset_commit::acknowledged(ctx, &req.group_id.0, e).await,
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
    TxnOffsetCommitResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(errors.next().unwrap_or(0))
                            })
                            .collect(),
                    )
                    .with_name(t.name)
            })
            .collect(),
    )
}
