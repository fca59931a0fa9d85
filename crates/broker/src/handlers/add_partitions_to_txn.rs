//! AddPartitionsToTxn (key 24, v0-v3 as clients send it): partitions join a producer's open
//! transaction.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// The error a fenced producer gets: PRODUCER_FENCED from `fenced_since`, before that
/// INVALID_PRODUCER_EPOCH (what older clients understand).
pub fn fenced_error(api_version: i16, fenced_since: i16) -> ResponseError {
    if api_version >= fenced_since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

/// Handles AddPartitionsToTxn.
pub async fn handle(
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let partitions: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    // As Kafka: WRITE on the transactional id (else every partition fails), WRITE on each
    // topic (else its partitions fail with TOPIC_AUTHORIZATION_FAILED, the others with
    // OPERATION_NOT_ATTEMPTED, and nothing is added).
    let txn_denied = !ctx.authorize(
        Op::Write,
        Rt::TransactionalId,
        &req.v3_and_below_transactional_id.0,
    );
    let topic_denied: Vec<bool> = if txn_denied {
        Vec::new()
    } else {
        partitions
            .iter()
            .map(|(t, _)| !ctx.allowed(Op::Write, Rt::Topic, t))
            .collect()
    };
    let denied_errors = if txn_denied {
        Some(vec![
            ResponseError::TransactionalIdAuthorizationFailed.code();
            partitions.len()
        ])
    } else if topic_denied.iter().any(|d| *d) {
        Some(
            topic_denied
                .iter()
                .map(|d| {
                    if *d {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else {
                        ResponseError::OperationNotAttempted.code()
                    }
                })
                .collect(),
        )
    } else {
        None
    };
    let errors = match denied_errors {
        Some(e) => e,
        None => ctx.broker.txns.add_partitions(
            &ctx.broker,
            &req.v3_and_below_transactional_id.0,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            &partitions,
            fenced_error(ctx.api_version, 2),
        ),
    };
    // Acknowledged once the transaction's new state is in the in-sync replicas.
    let errors = if errors.iter().all(|c| *c == 0) {
        match ctx
            .broker
            .txns
            .committed(&ctx.broker, &req.v3_and_below_transactional_id.0)
            .await
        {
            Ok(()) => errors,
            Err(e) => vec![e.code(); errors.len()],
        }
    } else {
        errors
    };
    let mut errors = errors.into_iter();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        req.v3_and_below_topics
            .into_iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(errors.next().unwrap_or(0))
                            })
                            .collect(),
                    )
                    .with_name(t.name)
            })
            .collect(),
    )
}
