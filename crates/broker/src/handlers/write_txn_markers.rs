//! WriteTxnMarkers (key 27, v1): writes commit or abort markers to partitions on request, from
//! the transaction coordinators of other brokers and from `kafka-transactions abort` (which
//! closes a hanging transaction). As Kafka's acks=-1 marker appends, a marker is answered only
//! once it is in the partition's in-sync replicas (too few of them: NOT_ENOUGH_REPLICAS before
//! appending, NOT_ENOUGH_REPLICAS_AFTER_APPEND after; a lost leadership: NOT_LEADER_OR_FOLLOWER),
//! so that the coordinator retries a marker a new leader might not have.

use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;
use runnel_storage::log::AppendError;

use super::RequestContext;
use crate::broker::now_ms;
use crate::group::OFFSETS_TOPIC;

/// How long an appended marker may take to reach the in-sync replicas.
const REPLICATION_TIMEOUT: Duration = Duration::from_secs(10);

/// One partition's append: its index, then the end offset and leader epoch to wait for, or the
/// error code.
type Appended = (i32, Result<(i64, i32), i16>);

/// Appends one marker where this broker leads the partition: the end offset and leader epoch
/// to wait for, or the error code.
fn append(
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    marker: (i64, i16, bool, i32),
) -> Result<(i64, i32), i16> {
    let (producer_id, producer_epoch, commit, coordinator_epoch) = marker;
    let partition = match ctx.broker.replicas.partition(topic, index) {
        None => return Err(ResponseError::UnknownTopicOrPartition.code()),
        Some(p) if !p.is_leader() => return Err(ResponseError::NotLeaderOrFollower.code()),
        Some(p) => p,
    };
    if partition.isr_shortfall().is_some() {
        return Err(ResponseError::NotEnoughReplicas.code());
    }
    let epoch = partition.leader_epoch();
    let r = partition.log.lock().append_marker(
        producer_id,
        producer_epoch,
        commit,
        coordinator_epoch,
        epoch,
        now_ms(),
    );
    partition.leader_appended();
    match r {
        Ok(offset) => Ok((offset + 1, epoch)),
        Err(AppendError::InvalidProducerEpoch) => Err(ResponseError::InvalidProducerEpoch.code()),
        Err(AppendError::CoordinatorFenced) => {
            Err(ResponseError::TransactionCoordinatorFenced.code())
        }
        Err(_) => Err(ResponseError::KafkaStorageError.code()),
    }
}

/// Handles WriteTxnMarkers.
pub async fn handle(ctx: &RequestContext, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
    let mut markers = Vec::with_capacity(req.markers.len());
    // As Kafka: only brokers write markers (CLUSTER_ACTION on the cluster).
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::ClusterAction) {
        let code = kafka_protocol::ResponseError::ClusterAuthorizationFailed.code();
        for m in req.markers {
            markers.push(
                WritableTxnMarkerResult::default()
                    .with_producer_id(m.producer_id)
                    .with_topics(
                        m.topics
                            .into_iter()
                            .map(|t| {
                                WritableTxnMarkerTopicResult::default()
                                    .with_partitions(
                                        t.partition_indexes
                                            .iter()
                                            .map(|p| {
                                                WritableTxnMarkerPartitionResult::default()
                                                    .with_partition_index(*p)
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                                    .with_name(t.name)
                            })
                            .collect(),
                    ),
            );
        }
        return WriteTxnMarkersResponse::default().with_markers(markers);
    }
    for m in req.markers {
        let commit = m.transaction_result;
        let marker = (
            m.producer_id.0,
            m.producer_epoch,
            commit,
            m.coordinator_epoch,
        );
        // Every marker of the request is appended before any is waited for.
        let appended: Vec<(String, Vec<Appended>)> = m
            .topics
            .iter()
            .map(|t| {
                let parts = t
                    .partition_indexes
                    .iter()
                    .map(|p| (*p, append(ctx, &t.name.0, *p, marker)))
                    .collect();
                (t.name.0.to_string(), parts)
            })
            .collect();
        let mut topics = Vec::with_capacity(m.topics.len());
        for (name, parts) in appended {
            let mut partitions = Vec::with_capacity(parts.len());
            for (index, outcome) in parts {
                let error = match outcome {
                    Err(code) => code,
                    Ok((end, epoch)) => {
                        match super::produce::wait_for_isr(
                            ctx,
                            &name,
                            index,
                            (end - 1, epoch),
                            deadline,
                        )
                        .await
                        {
                            Ok(()) => {
                                if name == OFFSETS_TOPIC {
                                    ctx.broker
                                        .groups
                                        .complete_txn_offsets(m.producer_id.0, commit);
                                }
                                0
                            }
                            Err((error, message)) => {
                                tracing::info!(topic = %name, partition = index, %message, "transaction marker not replicated");
                                error.code()
                            }
                        }
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(error),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(kafka_protocol::messages::TopicName(super::sb(name)))
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
