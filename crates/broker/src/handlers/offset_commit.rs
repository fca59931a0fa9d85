//! OffsetCommit (key 8): committed offsets of a group's members, or of a standalone consumer or
//! an admin tool (generation -1 on an empty group).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::OffsetCommitEntry;

/// Handles OffsetCommit.
pub fn handle(ctx: &RequestContext, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let v = ctx.api_version;
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
        .collect();
    let retention_ms = if (2..=4).contains(&v) {
        req.retention_time_ms
    } else {
        -1
    };
    let result = ctx.broker.groups.commit_offsets(
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
    );
    let errors: Vec<i16> = match result {
        Ok(e) => e,
        Err(e) => vec![e.code(); entries.len()],
    };
    let mut errors = errors.into_iter();
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
