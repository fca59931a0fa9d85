//! WriteTxnMarkers (key 27, v1): writes commit or abort markers to partitions on request. The
//! transaction coordinator writes its own markers directly; this API is what
//! `kafka-transactions abort` uses to close a hanging transaction.

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;
use runnel_storage::log::AppendError;

use super::RequestContext;
use crate::broker::now_ms;
use crate::group::OFFSETS_TOPIC;

/// Handles WriteTxnMarkers.
pub fn handle(ctx: &RequestContext, req: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let now = now_ms();
    let markers = req
        .markers
        .into_iter()
        .map(|m| {
            let commit = m.transaction_result;
            let topics = m
                .topics
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partition_indexes
                        .iter()
                        .map(|p| {
                            let error = match ctx.broker.replicas.partition(&t.name.0, *p) {
                                None => ResponseError::UnknownTopicOrPartition.code(),
                                Some(partition) if !partition.is_leader() => {
                                    ResponseError::NotLeaderOrFollower.code()
                                }
                                Some(partition) => {
                                    let r = partition.log.lock().append_marker(
                                        m.producer_id.0,
                                        m.producer_epoch,
                                        commit,
                                        m.coordinator_epoch,
                                        partition.leader_epoch(),
                                        now,
                                    );
                                    partition.leader_appended();
                                    match r {
                                        Ok(_) => {
                                            if &*t.name.0 == OFFSETS_TOPIC {
                                                ctx.broker
                                                    .groups
                                                    .complete_txn_offsets(m.producer_id.0, commit);
                                            }
                                            0
                                        }
                                        Err(AppendError::InvalidProducerEpoch) => {
                                            ResponseError::InvalidProducerEpoch.code()
                                        }
                                        Err(_) => ResponseError::KafkaStorageError.code(),
                                    }
                                }
                            };
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(*p)
                                .with_error_code(error)
                        })
                        .collect();
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(partitions)
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    ctx.broker.replicas.notify_append();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
