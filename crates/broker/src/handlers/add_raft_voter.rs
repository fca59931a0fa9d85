//! AddRaftVoter (key 80, v0): KIP-853's `kafka-metadata-quorum add-controller`. A controller that
//! follows the metadata log as a learner (started with `controller.quorum.bootstrap.servers`)
//! becomes a voter once it has caught up, with the directory id and controller endpoints the
//! tool read from its configuration. Served by the quorum's leader; any node passes the request
//! on to it. A static quorum (`controller.quorum.voters`) refuses with UNSUPPORTED_VERSION, as
//! Kafka does at `kraft.version` 0; the other refusals are Kafka's: DUPLICATE_VOTER,
//! REQUEST_TIMED_OUT (not following, not caught up, or another change in progress),
//! INCONSISTENT_CLUSTER_ID.

use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_metadata::{Endpoint, MembershipChange, MembershipError, QuorumError};

use super::{sb, RequestContext};

/// The Kafka error of a failed membership change.
pub fn membership_error(e: &QuorumError) -> ResponseError {
    match e {
        QuorumError::Refused { error, .. } => match error {
            MembershipError::UnsupportedVersion => ResponseError::UnsupportedVersion,
            MembershipError::DuplicateVoter => ResponseError::DuplicateVoter,
            MembershipError::VoterNotFound => ResponseError::VoterNotFound,
            MembershipError::RequestTimedOut => ResponseError::RequestTimedOut,
            MembershipError::InvalidRequest => ResponseError::InvalidRequest,
        },
        QuorumError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
        QuorumError::Timeout => ResponseError::RequestTimedOut,
        QuorumError::Stopped => ResponseError::BrokerNotAvailable,
        QuorumError::Storage(_) => ResponseError::UnknownServerError,
    }
}

/// INCONSISTENT_CLUSTER_ID when the request names a cluster id that is not this cluster's.
pub fn cluster_id_mismatch(ctx: &RequestContext, asked: &Option<StrBytes>) -> Option<String> {
    let asked = asked.as_ref()?;
    let ours = ctx.broker.cluster_id();
    (asked.as_str() != ours).then(|| format!("cluster id {asked} is not this cluster's ({ours})"))
}

/// Handles AddRaftVoter.
pub async fn handle(ctx: &RequestContext, req: AddRaftVoterRequest) -> AddRaftVoterResponse {
    // As Kafka: ALTER on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) {
        return AddRaftVoterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    if let Some(message) = cluster_id_mismatch(ctx, &req.cluster_id) {
        return AddRaftVoterResponse::default()
            .with_error_code(ResponseError::InconsistentClusterId.code())
            .with_error_message(Some(sb(message)));
    }
    let change = MembershipChange::AddVoter {
        node_id: req.voter_id,
        directory_id: req.voter_directory_id,
        endpoints: req
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
            })
            .collect(),
        timeout_ms: req.timeout_ms.max(0) as u64,
    };
    match ctx.broker.quorum().change_membership(change).await {
        Ok(()) => AddRaftVoterResponse::default().with_error_code(0),
        Err(e) => {
            tracing::info!(voter = req.voter_id, error = %e, "AddRaftVoter refused");
            AddRaftVoterResponse::default()
                .with_error_code(membership_error(&e).code())
                .with_error_message(Some(sb(e.to_string())))
        }
    }
}
