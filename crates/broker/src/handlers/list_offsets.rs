//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3), earliest local (-4) and
//! by timestamp, answered from the partition's log and its time index.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// ListOffsets special timestamp: the log end (high watermark).
pub const LATEST_TIMESTAMP: i64 = -1;
/// ListOffsets special timestamp: the log start.
pub const EARLIEST_TIMESTAMP: i64 = -2;
/// ListOffsets special timestamp: the record with the largest timestamp (v7+).
pub const MAX_TIMESTAMP: i64 = -3;
/// ListOffsets special timestamp: the earliest local offset (v8+, same as earliest here).
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
/// ListOffsets special timestamp: the earliest pending upload offset (v9+, none here).
pub const EARLIEST_PENDING_UPLOAD_TIMESTAMP: i64 = -5;

/// Handles ListOffsets.
pub fn handle(ctx: &RequestContext, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let isolation_level = if ctx.api_version >= 2 {
        req.isolation_level
    } else {
        0
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let denied = !ctx.authorize(Op::Describe, Rt::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        ;
                    if denied {
                        return base.with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = ctx.broker.replicas.partition(&name, p.partition_index) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = partition.check_leader(p.current_leader_epoch) {
                        return base.with_error_code(e.code());
                    }
                    let hw = partition.high_watermark();
                    let epoch = if ctx.api_version >= 4 { partition.leader_epoch() } else { -1 };
                    let log = partition.log.lock();
                    let found = match p.timestamp {
                        // read_committed (isolation level 1) sees up to the last stable offset.
                        LATEST_TIMESTAMP if isolation_level == 1 => {
                            Ok(Some((log.last_stable_offset().min(hw), -1)))
                        }
                        // Consumers see committed records only: the latest offset is the high
                        // watermark.
                        LATEST_TIMESTAMP => Ok(Some((hw, -1))),
                        EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => {
                            Ok(Some((log.log_start_offset(), -1)))
                        }
                        EARLIEST_PENDING_UPLOAD_TIMESTAMP => Ok(None),
                        MAX_TIMESTAMP => Ok(log.max_timestamp()),
                        ts if ts < 0 => Err(ResponseError::InvalidRequest),
                        ts => log.offset_for_timestamp(ts).map_err(|e| {
                            tracing::error!(topic = %name, error = %e, "offset_for_timestamp failed");
                            ResponseError::KafkaStorageError
                        }),
                    };
                    match found {
                        Ok(Some((offset, ts))) => base
                            .with_error_code(0)
                            .with_offset(offset)
                            .with_timestamp(ts)
                            .with_leader_epoch(epoch),
                        Ok(None) => base.with_error_code(0),
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
