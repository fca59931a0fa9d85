//! InitProducerId (key 22) for idempotent producers: a fresh producer id with epoch 0, or, when
//! the producer sends its current id and epoch (KIP-360), the same id with the epoch bumped.
//! Transactional ids need the transaction coordinator, which Runnel does not have yet.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;

/// Handles InitProducerId.
pub fn handle(ctx: &RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse {
    let base = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req
        .transactional_id
        .as_ref()
        .is_some_and(|t| t.0.is_empty())
    {
        return base.with_error_code(ResponseError::InvalidRequest.code());
    }
    if req.transactional_id.is_some() {
        return base.with_error_code(ResponseError::CoordinatorNotAvailable.code());
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return base
            .with_error_code(0)
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match ctx.broker.allocate_producer_id() {
        Ok(id) => base
            .with_error_code(0)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::error!(error = %e, "producer id allocation failed");
            base.with_error_code(ResponseError::UnknownServerError.code())
        }
    }
}
