//! DeleteRecords (key 21): moves a partition's log start offset up (offset -1 means the high
//! watermark); whole segments below it are removed.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;
use runnel_storage::log::LogError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DeleteRecords.
pub fn handle(ctx: &RequestContext, req: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let denied = !ctx.authorize(Op::Delete, Rt::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    if denied {
                        return base
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                    }
                    let Some(partition) = ctx.broker.replicas.partition(&name, p.partition_index)
                    else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = partition.check_leader(-1) {
                        return base.with_error_code(e.code());
                    }
                    // Up to the high watermark, as Kafka; followers follow the leader's log start.
                    let hw = partition.high_watermark();
                    let mut log = partition.log.lock();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        return base.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    match log.delete_records_before(target) {
                        Ok(low) => base.with_error_code(0).with_low_watermark(low),
                        Err(LogError::OffsetOutOfRange { .. }) => {
                            base.with_error_code(ResponseError::OffsetOutOfRange.code())
                        }
                        Err(e) => {
                            tracing::error!(topic = %name, error = %e, "delete records failed");
                            base.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
