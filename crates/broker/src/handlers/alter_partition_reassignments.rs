//! AlterPartitionReassignments (key 45, v0-1): starts, changes or cancels (null replicas) the
//! reassignment of each partition listed, decided and committed together by the active
//! controller (forwarded from any node; the rules are in `controller::reassign`). v1's
//! `allow_replication_factor_change` = false refuses a target of another size with
//! INVALID_REPLICATION_FACTOR. A request the controller could not run carries its error at the
//! top level and on every partition.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};

use super::{sb, RequestContext};
use crate::controller::{self, reassign, PartitionElection};

/// Handles AlterPartitionReassignments.
pub fn handle(
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = ctx.api_version < 1 || req.allow_replication_factor_change;
    let changes: reassign::Reassignments = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions
                    .iter()
                    .map(|p| {
                        (
                            p.partition_index,
                            p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    // As Kafka: ALTER on the cluster.
    let outcome = if ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) {
        controller::alter_reassignments(&ctx.broker, changes.clone(), allow_rf_change)
    } else {
        Err(controller::ControllerError::new(
            kafka_protocol::ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    };
    let (top, results) = match outcome {
        Ok(results) => ((0, None), results),
        Err(e) => {
            tracing::info!(error = %e.message, "AlterPartitionReassignments refused");
            let failed = changes
                .into_iter()
                .map(|(name, parts)| {
                    let parts = parts
                        .into_iter()
                        .map(|(partition, _)| PartitionElection {
                            partition,
                            error_code: e.error.code(),
                            message: Some(e.message.clone()),
                        })
                        .collect();
                    (name, parts)
                })
                .collect();
            ((e.error.code(), Some(e.message)), failed)
        }
    };
    AlterPartitionReassignmentsResponse::default()
        .with_error_code(top.0)
        .with_error_message(top.1.map(sb))
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(
            results
                .into_iter()
                .map(|(name, parts)| {
                    ReassignableTopicResponse::default()
                        .with_name(sb(name).into())
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    ReassignablePartitionResponse::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(p.error_code)
                                        .with_error_message(p.message.map(sb))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
