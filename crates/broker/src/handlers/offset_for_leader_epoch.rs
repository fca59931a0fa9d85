//! OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, from the partition's
//! leader-epoch cache, so clients can detect log truncation (KIP-101, KIP-320).

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt, CLUSTER_NAME};

/// Handles OffsetForLeaderEpoch.
pub fn handle(
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    // As Kafka: CLUSTER_ACTION on the cluster (a follower), else DESCRIBE on each topic.
    let cluster_action = ctx.allowed(Op::ClusterAction, Rt::Cluster, CLUSTER_NAME);
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let denied = !cluster_action && !ctx.authorize(Op::Describe, Rt::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if denied {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = ctx.broker.replicas.partition(&name, p.partition) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = partition.check_leader(p.current_leader_epoch) {
                        return base.with_error_code(e.code());
                    }
                    let leader_epoch = partition.leader_epoch();
                    let log = partition.log.lock();
                    let (epoch, end) = log.end_offset_for_epoch(p.leader_epoch);
                    let (epoch, end) =
                        if epoch < 0 && log.log_end_offset() == log.log_start_offset() {
                            // An empty log: the current epoch ends at the log end.
                            if p.leader_epoch >= leader_epoch {
                                (leader_epoch, log.log_end_offset())
                            } else {
                                (epoch, end)
                            }
                        } else {
                            (epoch, end)
                        };
                    base.with_error_code(0)
                        .with_leader_epoch(epoch)
                        .with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
