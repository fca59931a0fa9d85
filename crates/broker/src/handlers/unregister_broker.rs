//! UnregisterBroker (key 64, v0): removes a decommissioned broker's registration, through the
//! active controller (`kafka-cluster unregister --id N`). An unknown id gets
//! BROKER_ID_NOT_REGISTERED; a broker still running registers again at its next heartbeat.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::{sb, RequestContext};
use crate::controller;

/// Handles UnregisterBroker.
pub fn handle(ctx: &RequestContext, req: UnregisterBrokerRequest) -> UnregisterBrokerResponse {
    match controller::unregister_broker(&ctx.broker, req.broker_id.0) {
        Ok(()) => UnregisterBrokerResponse::default().with_error_code(0),
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.error.code())
            .with_error_message(Some(sb(e.message))),
    }
}
