//! InitProducerId (key 22). Idempotent producers get a fresh producer id with epoch 0 or, when
//! they send their current id and epoch (KIP-360), the same id with the epoch bumped.
//! Transactional producers get theirs from the transaction coordinator, which fences older
//! instances of the same transactional id.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles InitProducerId.
pub async fn handle(ctx: &RequestContext, req: InitProducerIdRequest) -> InitProducerIdResponse {
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
    // As Kafka: WRITE on the transactional id; an idempotent producer needs IDEMPOTENT_WRITE on
    // the cluster or WRITE on some topic.
    match &req.transactional_id {
        Some(id) if !ctx.authorize(Op::Write, Rt::TransactionalId, &id.0) => {
            return base.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
        }
        None if !ctx.allowed(
            Op::IdempotentWrite,
            Rt::Cluster,
            crate::security::acl::CLUSTER_NAME,
        ) && !ctx.authorize_any(Op::Write, Rt::Topic) =>
        {
            return base.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
        }
        _ => {}
    }
    if let Some(id) = &req.transactional_id {
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        let result = ctx.broker.txns.init_producer_id(
            &ctx.broker,
            &id.0,
            req.transaction_timeout_ms,
            expected,
        );
        // Acknowledged once the new epoch is in the in-sync replicas.
        let result = match result {
            Ok(ok) => ctx
                .broker
                .txns
                .committed(&ctx.broker, &id.0)
                .await
                .map(|()| ok),
            Err(e) => Err(e),
        };
        return match result {
            Ok((pid, epoch)) => base
                .with_error_code(0)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            // Before v4 a fenced producer is told INVALID_PRODUCER_EPOCH.
            Err(ResponseError::ProducerFenced) if ctx.api_version < 4 => {
                base.with_error_code(ResponseError::InvalidProducerEpoch.code())
            }
            Err(e) => base.with_error_code(e.code()),
        };
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
