//! FindCoordinator (key 10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition (Java's
//! string hash modulo the partition count, as in Kafka), at its address for the listener the
//! request came on. The topics are created on first use; a partition without a live leader
//! answers COORDINATOR_NOT_AVAILABLE.

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::group::records::partition_for;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

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
    let topic = if key_type == KEY_TYPE_TRANSACTION {
        crate::txn::coordinator::TRANSACTION_STATE_TOPIC
    } else {
        crate::group::OFFSETS_TOPIC
    };
    let image = ctx.broker.image();
    let live = ctx.live_brokers(&image);
    let coordinator_of = |key: &str| -> Result<&super::LiveBroker, (ResponseError, &'static str)> {
        let t = image.topic(topic).ok_or((
            ResponseError::CoordinatorNotAvailable,
            "The coordinator is not available.",
        ))?;
        let p = partition_for(key, t.partitions.len() as i32);
        let leader = t
            .partitions
            .iter()
            .find(|x| x.partition == p)
            .map_or(-1, |x| x.leader);
        live.iter().find(|b| b.id == leader).ok_or((
            ResponseError::CoordinatorNotAvailable,
            "The coordinator is not available.",
        ))
    };
    // As Kafka: DESCRIBE on the group or the transactional id.
    let authorized = |key: &str| match key_type {
        KEY_TYPE_GROUP if !ctx.authorize(Op::Describe, Rt::Group, key) => Err((
            ResponseError::GroupAuthorizationFailed,
            "Group authorization failed.",
        )),
        KEY_TYPE_TRANSACTION if !ctx.authorize(Op::Describe, Rt::TransactionalId, key) => Err((
            ResponseError::TransactionalIdAuthorizationFailed,
            "Transactional Id authorization failed.",
        )),
        _ => Ok(()),
    };
    let entry = |key: &str| match authorized(key)
        .and(outcome)
        .and_then(|()| coordinator_of(key))
    {
        Ok(b) => Coordinator::default()
            .with_key(sb(key))
            .with_node_id(BrokerId(b.id))
            .with_host(sb(b.host.clone()))
            .with_port(b.port),
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
