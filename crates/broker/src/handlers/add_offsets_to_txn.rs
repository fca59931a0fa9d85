//! AddOffsetsToTxn (key 25): a consumer group's `__consumer_offsets` partition joins the
//! transaction, so that TxnOffsetCommit offsets commit or abort with it.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::add_partitions_to_txn::fenced_error;
use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles AddOffsetsToTxn.
pub async fn handle(ctx: &RequestContext, req: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let id = &req.transactional_id.0;
    // As Kafka: WRITE on the transactional id, READ on the group.
    if !ctx.authorize(Op::Write, Rt::TransactionalId, id) {
        return AddOffsetsToTxnResponse::default().with_error_code(
            kafka_protocol::ResponseError::TransactionalIdAuthorizationFailed.code(),
        );
    }
    if !ctx.authorize(Op::Read, Rt::Group, &req.group_id.0) {
        return AddOffsetsToTxnResponse::default()
            .with_error_code(kafka_protocol::ResponseError::GroupAuthorizationFailed.code());
    }
    let result = ctx.broker.txns.add_offsets(
        &ctx.broker,
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        &req.group_id.0,
        fenced_error(ctx.api_version, 2),
    );
    // Acknowledged once the transaction's new state is in the in-sync replicas.
    let result = match result {
        Ok(()) => ctx.broker.txns.committed(&ctx.broker, id).await,
        Err(e) => Err(e),
    };
    AddOffsetsToTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
