//! ListPartitionReassignments (key 46, v0): the reassignments in progress, from this broker's
//! metadata image: every one when no topics are given, else those of the partitions listed
//! (unknown topics and partitions, and partitions not being reassigned, are left out, as Kafka
//! answers).

use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{sb, RequestContext};
use crate::controller::reassign;

fn ids(v: Vec<i32>) -> Vec<BrokerId> {
    v.into_iter().map(BrokerId).collect()
}

/// Handles ListPartitionReassignments.
pub fn handle(
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    // As Kafka: DESCRIBE on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(kafka_protocol::ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    let image = ctx.broker.image();
    let asked: Vec<(String, Option<Vec<i32>>)> = match &req.topics {
        None => image.topics.keys().map(|n| (n.clone(), None)).collect(),
        Some(topics) => topics
            .iter()
            .map(|t| (t.name.0.to_string(), Some(t.partition_indexes.clone())))
            .collect(),
    };
    let mut out = Vec::new();
    for (name, indexes) in asked {
        let Some(topic) = image.topic(&name) else {
            continue;
        };
        let partitions: Vec<OngoingPartitionReassignment> = topic
            .partitions
            .iter()
            .filter(|p| indexes.as_ref().is_none_or(|i| i.contains(&p.partition)))
            .filter_map(|p| {
                reassign::ongoing(p).map(|(replicas, adding, removing)| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.partition)
                        .with_replicas(ids(replicas))
                        .with_adding_replicas(ids(adding))
                        .with_removing_replicas(ids(removing))
                })
            })
            .collect();
        if !partitions.is_empty() {
            out.push(
                OngoingTopicReassignment::default()
                    .with_name(sb(name).into())
                    .with_partitions(partitions),
            );
        }
    }
    ListPartitionReassignmentsResponse::default()
        .with_error_code(0)
        .with_topics(out)
}
