//! EndTxn (key 26): commits or aborts a producer's transaction. The coordinator stores the
//! Prepare state; once it is committed in the in-sync replicas the markers are written, then the
//! answer goes out (markers that cannot be written yet are left to the coordinator's timer).
//! From v5 (transactions v2) every end bumps the producer epoch and the answer carries the
//! producer id and epoch to use next.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use kafka_protocol::ResponseError;

use super::add_partitions_to_txn::fenced_error;
use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Waits for the Prepare state, then writes the markers: the EndTxn's error, if any.
async fn prepared_then_complete(ctx: &RequestContext, id: &str) -> Result<(), ResponseError> {
    ctx.broker.txns.committed(&ctx.broker, id).await?;
    ctx.broker.txns.complete(&ctx.broker, id);
    Ok(())
}

/// Handles EndTxn.
pub async fn handle(ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let id = &req.transactional_id.0;
    // As Kafka: WRITE on the transactional id.
    if !ctx.authorize(Op::Write, Rt::TransactionalId, id) {
        return EndTxnResponse::default()
            .with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    if ctx.api_version >= 5 {
        let result = ctx.broker.txns.end_txn_v2(
            &ctx.broker,
            id,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        );
        let result = match result {
            Ok(answer) => prepared_then_complete(ctx, id).await.map(|()| answer),
            Err(e) => Err(e),
        };
        return match result {
            Ok((pid, epoch)) => EndTxnResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            Err(e) => EndTxnResponse::default()
                .with_error_code(e.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    let result = ctx.broker.txns.end_txn(
        &ctx.broker,
        id,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        fenced_error(ctx.api_version, 2),
    );
    let result = match result {
        Ok(()) => prepared_then_complete(ctx, id).await,
        Err(e) => Err(e),
    };
    EndTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
