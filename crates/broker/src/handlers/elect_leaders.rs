//! ElectLeaders (key 43, v0-2): preferred (0) or unclean (1) leader elections, run by the
//! active controller (forwarded from any node) and committed together; the rules are in
//! `controller::election::elect`. A null topic list means every partition, and then partitions
//! that needed no election are left out of the answer, as Kafka answers. v0 has no election
//! type (preferred) and no top-level error code. A request the controller could not run (an
//! unknown election type, no controller in time) carries its error at the top level and on
//! every partition asked for.

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};
use crate::controller::{self, election::ElectionType};

/// Handles ElectLeaders.
pub fn handle(ctx: &RequestContext, req: ElectLeadersRequest) -> ElectLeadersResponse {
    let asked: Option<Vec<(String, Vec<i32>)>> = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect()
    });
    let outcome = match ElectionType::from_code(req.election_type) {
        // As Kafka: ALTER on the cluster.
        _ if !ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) => Err((
            ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.".to_string(),
        )),
        None => Err((
            ResponseError::InvalidRequest,
            format!("Unknown election type {}", req.election_type),
        )),
        Some(kind) => controller::elect_leaders(&ctx.broker, kind, asked.clone())
            .map_err(|e| (e.error, e.message)),
    };
    match outcome {
        Ok(results) => ElectLeadersResponse::default()
            .with_error_code(0)
            .with_replica_election_results(
                results
                    .into_iter()
                    .map(|(topic, parts)| {
                        ReplicaElectionResult::default()
                            .with_topic(TopicName(sb(topic)))
                            .with_partition_result(
                                parts
                                    .into_iter()
                                    .map(|p| {
                                        PartitionResult::default()
                                            .with_partition_id(p.partition)
                                            .with_error_code(p.error_code)
                                            .with_error_message(p.message.map(sb))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        Err((error, message)) => {
            tracing::info!(error = %message, "ElectLeaders refused");
            let results = asked
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, parts)| {
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(sb(topic)))
                        .with_partition_result(
                            parts
                                .into_iter()
                                .map(|p| {
                                    PartitionResult::default()
                                        .with_partition_id(p)
                                        .with_error_code(error.code())
                                        .with_error_message(Some(sb(message.clone())))
                                })
                                .collect(),
                        )
                })
                .collect();
            // v0 has no top-level error code: the partitions carry it.
            let top = if ctx.api_version >= 1 {
                error.code()
            } else {
                0
            };
            ElectLeadersResponse::default()
                .with_error_code(top)
                .with_replica_election_results(results)
        }
    }
}
