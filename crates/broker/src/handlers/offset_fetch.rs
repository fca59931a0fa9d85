//! OffsetFetch (key 9): committed offsets of one group (v1-v7) or of a batch of groups (v8+),
//! for the listed partitions or for all of them.

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};

use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::group::coordinator::CommittedOffset;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

use crate::group::coordinator::OffsetsByTopic as Fetched;

/// The offsets of one group, or the error of the whole group, with the requested partitions
/// (each answered with the error where the version has no group-level error).
fn fetch(
    ctx: &RequestContext,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> (Fetched, i16) {
    // As Kafka: DESCRIBE on the group; a topic asked for without DESCRIBE on it is answered
    // TOPIC_AUTHORIZATION_FAILED (marked here by an offset of DENIED), and left out of an
    // all-topics answer.
    if !ctx.authorize(Op::Describe, Rt::Group, group) {
        return (Vec::new(), ResponseError::GroupAuthorizationFailed.code());
    }
    let (topics, denied): (Option<Vec<_>>, Vec<_>) = match topics {
        None => (None, Vec::new()),
        Some(ts) => {
            let (ok, denied) = ts
                .into_iter()
                .partition(|(t, _)| ctx.authorize(Op::Describe, Rt::Topic, t));
            (Some(ok), denied)
        }
    };
    let denied_entries = denied.into_iter().map(|(t, ps): (String, Vec<i32>)| {
        let parts = ps
            .into_iter()
            .map(|p| {
                let mut c = CommittedOffset::none();
                c.offset = DENIED;
                (p, c)
            })
            .collect();
        (t, parts)
    });
    let asked_all = topics.is_none();
    match ctx
        .broker
        .groups
        .fetch_offsets(&ctx.broker, group, topics.as_deref())
    {
        Ok(mut f) => {
            if asked_all {
                f.retain(|(t, _)| ctx.allowed(Op::Describe, Rt::Topic, t));
            }
            f.extend(denied_entries);
            (f, 0)
        }
        Err(e) => (Vec::new(), e.code()),
    }
}

/// The committed offset that marks a partition of a topic the principal may not describe.
const DENIED: i64 = i64::MIN;

/// A partition's error: TOPIC_AUTHORIZATION_FAILED for a denied topic, else `other`.
fn denied_or(c: &CommittedOffset, other: i16) -> i16 {
    if c.offset == DENIED {
        ResponseError::TopicAuthorizationFailed.code()
    } else {
        other
    }
}

/// The offset to answer: -1 for a denied topic's partition.
fn offset_of(c: &CommittedOffset) -> i64 {
    if c.offset == DENIED {
        -1
    } else {
        c.offset
    }
}

/// Handles OffsetFetch.
pub fn handle(ctx: &RequestContext, req: OffsetFetchRequest) -> OffsetFetchResponse {
    let v = ctx.api_version;
    // v7+: a partition with offsets in an open transaction is UNSTABLE_OFFSET_COMMIT.
    let require_stable = v >= 7 && req.require_stable;
    let unstable = |c: &CommittedOffset| {
        if require_stable && c.pending {
            ResponseError::UnstableOffsetCommit.code()
        } else {
            0
        }
    };
    if v < 8 {
        let topics = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let requested: Vec<(String, Vec<i32>)> = topics.clone().unwrap_or_default();
        let (mut fetched, error) = fetch(ctx, &req.group_id.0, topics);
        if error != 0 && v < 2 {
            // No group-level error before v2: every requested partition carries it.
            fetched = requested
                .into_iter()
                .map(|(t, ps)| {
                    let parts = ps
                        .into_iter()
                        .map(|p| (p, CommittedOffset::none()))
                        .collect();
                    (t, parts)
                })
                .collect();
        }
        let partition_error = |c: &CommittedOffset| {
            if error != 0 && v < 2 {
                error
            } else {
                unstable(c)
            }
        };
        return OffsetFetchResponse::default()
            .with_error_code(if v >= 2 { error } else { 0 })
            .with_topics(
                fetched
                    .into_iter()
                    .map(|(t, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c)| {
                                        OffsetFetchResponsePartition::default()
                                            .with_error_code(denied_or(&c, partition_error(&c)))
                                            .with_partition_index(p)
                                            .with_committed_offset(offset_of(&c))
                                            .with_committed_leader_epoch(if v >= 5 {
                                                c.leader_epoch
                                            } else {
                                                -1
                                            })
                                            .with_metadata(Some(sb(c.metadata)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
    }
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let topics = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let (fetched, error) = fetch(ctx, &g.group_id.0, topics);
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(g.group_id.0))
                .with_error_code(error)
                .with_topics(
                    fetched
                        .into_iter()
                        .map(|(t, parts)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(t)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, c)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_error_code(denied_or(&c, unstable(&c)))
                                                .with_partition_index(p)
                                                .with_committed_offset(offset_of(&c))
                                                .with_committed_leader_epoch(c.leader_epoch)
                                                .with_metadata(Some(sb(c.metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}
