//! RemoveRaftVoter (key 81, v0): KIP-853's `kafka-metadata-quorum remove-controller`. The voter
//! with that id and directory id stops voting; still running, it goes on following the metadata
//! log as an observer (a learner), as in Kafka. Served by the quorum's leader (which may remove
//! itself: it steps down once the change is committed); any node passes the request on to it.
//! A static quorum refuses with UNSUPPORTED_VERSION; an unknown voter is VOTER_NOT_FOUND.

use kafka_protocol::messages::{RemoveRaftVoterRequest, RemoveRaftVoterResponse};
use kafka_protocol::ResponseError;
use runnel_metadata::MembershipChange;

use super::add_raft_voter::{cluster_id_mismatch, membership_error};
use super::{sb, RequestContext};

/// Handles RemoveRaftVoter.
pub async fn handle(ctx: &RequestContext, req: RemoveRaftVoterRequest) -> RemoveRaftVoterResponse {
    // As Kafka: ALTER on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) {
        return RemoveRaftVoterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    if let Some(message) = cluster_id_mismatch(ctx, &req.cluster_id) {
        return RemoveRaftVoterResponse::default()
            .with_error_code(ResponseError::InconsistentClusterId.code())
            .with_error_message(Some(sb(message)));
    }
    let change = MembershipChange::RemoveVoter {
        node_id: req.voter_id,
        directory_id: req.voter_directory_id,
    };
    match ctx.broker.quorum().change_membership(change).await {
        Ok(()) => RemoveRaftVoterResponse::default().with_error_code(0),
        Err(e) => {
            tracing::info!(voter = req.voter_id, error = %e, "RemoveRaftVoter refused");
            RemoveRaftVoterResponse::default()
                .with_error_code(membership_error(&e).code())
                .with_error_message(Some(sb(e.to_string())))
        }
    }
}
