//! UnregisterBroker (key 64, v0): removes a decommissioned broker's registration, through the
//! active controller (`kafka-cluster unregister --id N`), and, for a broker-only node, its place
//! as a learner of the metadata quorum (the leader stops sending it the log). An unknown id gets
//! BROKER_ID_NOT_REGISTERED. Meant for a broker that was stopped: a broker-only node still
//! running follows the log again only after a restart.

use kafka_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};

use super::{sb, RequestContext};
use crate::controller;

/// Handles UnregisterBroker.
pub async fn handle(
    ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let id = req.broker_id.0;
    // As Kafka: ALTER on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) {
        return UnregisterBrokerResponse::default()
            .with_error_code(kafka_protocol::ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    match controller::unregister_broker(&ctx.broker, id) {
        Ok(()) => {
            let change = runnel_metadata::MembershipChange::RemoveLearner { node_id: id };
            if let Err(e) = ctx.broker.quorum().change_membership(change).await {
                tracing::warn!(broker = id, error = %e, "unregistered broker still a learner of the metadata quorum");
            }
            UnregisterBrokerResponse::default().with_error_code(0)
        }
        Err(e) => UnregisterBrokerResponse::default()
            .with_error_code(e.error.code())
            .with_error_message(Some(sb(e.message))),
    }
}
