//! DescribeTransactions (key 65): state, producer, timeout and partitions of transactional ids.

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DescribeTransactions.
pub fn handle(
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    DescribeTransactionsResponse::default().with_transaction_states(
        req.transactional_ids
            .into_iter()
            .map(|id| {
                let base = TransactionState::default().with_transactional_id(id.clone());
                // As Kafka: DESCRIBE on the transactional id; its topics without DESCRIBE
                // are left out.
                if !ctx.authorize(Op::Describe, Rt::TransactionalId, &id.0) {
                    return base
                        .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
                        .with_transaction_state(sb(""))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1);
                }
                match ctx.broker.txns.describe(&ctx.broker, &id.0) {
                    Err(e) => base
                        .with_error_code(e.code())
                        .with_transaction_state(sb(""))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                    Ok(None) => base
                        .with_error_code(ResponseError::TransactionalIdNotFound.code())
                        .with_transaction_state(sb(""))
                        .with_producer_id(ProducerId(-1))
                        .with_producer_epoch(-1),
                    Ok(Some(d)) => base
                        .with_transaction_state(sb(d.state))
                        .with_transaction_timeout_ms(d.timeout_ms)
                        .with_transaction_start_time_ms(d.start_ms)
                        .with_producer_id(ProducerId(d.producer_id))
                        .with_producer_epoch(d.producer_epoch)
                        .with_topics(
                            d.partitions
                                .into_iter()
                                .filter(|(t, _)| ctx.allowed(Op::Describe, Rt::Topic, t))
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(TopicName(sb(t)))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        ),
                }
            })
            .collect(),
    )
}
