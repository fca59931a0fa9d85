//! EndTxn (key 26, v0-v4): commits or aborts a producer's transaction; the coordinator writes
//! the markers before answering.

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::add_partitions_to_txn::fenced_error;
use super::RequestContext;

/// Handles EndTxn.
pub fn handle(ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
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
