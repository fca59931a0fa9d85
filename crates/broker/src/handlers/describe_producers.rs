//! DescribeProducers (key 61): the producers a partition knows (idempotent and transactional),
//! with their epoch, last sequence and timestamp, and the start of their open transaction.

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DescribeProducers.
pub fn handle(ctx: &RequestContext, req: DescribeProducersRequest) -> DescribeProducersResponse {
    DescribeProducersResponse::default().with_topics(
        req.topics
            .into_iter()
            .map(|t| {
                // As Kafka: READ on the topic.
                let denied = !ctx.authorize(Op::Read, Rt::Topic, &t.name.0);
                let partitions = t
                    .partition_indexes
                    .iter()
                    .map(|p| {
                        let base = PartitionResponse::default().with_partition_index(*p);
                        if denied {
                            return base
                                .with_error_code(ResponseError::TopicAuthorizationFailed.code());
                        }
                        let Some(partition) = ctx.broker.replicas.partition(&t.name.0, *p) else {
                            return base
                                .with_error_code(ResponseError::UnknownTopicOrPartition.code());
                        };
                        let producers = partition.log.lock().producers();
                        base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|s| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(s.producer_id))
                                        .with_producer_epoch(s.epoch as i32)
                                        .with_last_sequence(s.last_sequence)
                                        .with_last_timestamp(s.last_timestamp)
                                        .with_coordinator_epoch(s.coordinator_epoch)
                                        .with_current_txn_start_offset(
                                            s.txn_first_offset.unwrap_or(-1),
                                        )
                                })
                                .collect(),
                        )
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect(),
    )
}
