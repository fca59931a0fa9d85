//! EndTxn (key 26): commits or aborts a producer's transaction; the coordinator writes the
//! markers before answering. From v5 (transactions v2) every end bumps the producer epoch and the
//! answer carries the producer id and epoch to use next.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};

use super::add_partitions_to_txn::fenced_error;
use super::RequestContext;

/// Handles EndTxn.
pub fn handle(ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    if ctx.api_version >= 5 {
        return match ctx.broker.txns.end_txn_v2(
            &ctx.broker,
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
        ) {
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
        &req.transactional_id.0,
        req.producer_id.0,
        req.producer_epoch,
        req.committed,
        fenced_error(ctx.api_version, 2),
    );
    EndTxnResponse::default().with_error_code(result.err().map_or(0, |e| e.code()))
}
