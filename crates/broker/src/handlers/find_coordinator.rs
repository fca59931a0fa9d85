//! FindCoordinator (key 10): every group's coordinator is this broker (it leads every
//! `__consumer_offsets` partition on a single node), and so is every transactional id's
//! (`__transaction_state`). The topics are created on first use.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Key type of consumer groups.
const KEY_TYPE_GROUP: i8 = 0;
/// Key type of transactional ids.
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Handles FindCoordinator (one key in v0-v3, a batch in v4+).
pub fn handle(ctx: &RequestContext, req: FindCoordinatorRequest) -> FindCoordinatorResponse {
    let v = ctx.api_version;
    let key_type = if v >= 1 { req.key_type } else { KEY_TYPE_GROUP };
    let keys: Vec<String> = if v >= 4 {
        req.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![req.key.to_string()]
    };
    let (host, port) = ctx.advertised();
    let node = ctx.broker.config.node_id;
    let outcome = match key_type {
        KEY_TYPE_GROUP => ctx
            .broker
            .groups
            .ensure_offsets_topic(&ctx.broker)
            .map_err(|e| (e, "The coordinator is not available.")),
        KEY_TYPE_TRANSACTION => ctx
            .broker
            .txns
            .ensure_topic(&ctx.broker)
            .map_err(|e| (e, "The coordinator is not available.")),
        _ => Err((
            ResponseError::InvalidRequest,
            "Unknown coordinator key type.",
        )),
    };
    let entry = |key: &str| match outcome {
        Ok(()) => Coordinator::default()
            .with_key(sb(key))
            .with_node_id(BrokerId(node))
            .with_host(sb(host.clone()))
            .with_port(port),
        Err((e, msg)) => Coordinator::default()
            .with_key(sb(key))
            .with_node_id(BrokerId(-1))
            .with_host(sb(""))
            .with_port(-1)
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg))),
    };
    if v >= 4 {
        return FindCoordinatorResponse::default()
            .with_coordinators(keys.iter().map(|k| entry(k)).collect());
    }
    let c = entry(&keys[0]);
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if v >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
