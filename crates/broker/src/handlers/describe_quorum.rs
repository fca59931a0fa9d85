//! DescribeQuorum (key 55): the metadata quorum (`__cluster_metadata-0`) as its leader, the
//! active controller, reports it: leader id, leader epoch (the raft term), high watermark, and
//! each voter's log end offset with its last fetch and caught-up times (v1+), and the voters'
//! controller listeners (v2). Any node answers: the leader from its own quorum, others by asking
//! the leader, as Kafka's brokers forward the request to the active controller. A request for
//! another partition gets UNKNOWN_TOPIC_OR_PARTITION, and NOT_LEADER_OR_FOLLOWER comes back
//! while no leader is known (clients retry). Observers are the learners (broker-only nodes, and
//! controllers not yet or no longer voters); each replica carries its directory id when the
//! quorum knows it (the zero UUID for a static quorum's voters, as in Kafka).

use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::ResponseError;
use runnel_metadata::{QuorumError, QuorumStatus};

use super::{sb, RequestContext};

/// The metadata log's topic name, as Kafka calls it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Whether the request names exactly `__cluster_metadata` partition 0, as Kafka requires.
fn names_the_metadata_partition(req: &DescribeQuorumRequest) -> bool {
    matches!(req.topics.as_slice(), [t] if t.topic_name.0.as_str() == METADATA_TOPIC
        && matches!(t.partitions.as_slice(), [p] if p.partition_index == 0))
}

/// An answer for the metadata partition carrying `error`.
fn partition_error(version: i16, index: i32, error: ResponseError) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(error.code())
        .with_error_message((version >= 2).then(|| sb(error.to_string())))
}

/// Every voter with its controller listener, for v2's node list: the endpoints the quorum
/// recorded (a dynamic quorum's), else the configured voter's address.
fn voter_nodes(ctx: &RequestContext, status: &QuorumStatus) -> Vec<Node> {
    let cfg = &ctx.broker.config;
    let listener = cfg.cluster.controller_listener_names.first();
    status
        .voters
        .iter()
        .map(|v| {
            if !v.endpoints.is_empty() {
                let listeners = v
                    .endpoints
                    .iter()
                    .map(|e| {
                        Listener::default()
                            .with_name(sb(e.name.clone()))
                            .with_host(sb(e.host.clone()))
                            .with_port(e.port)
                    })
                    .collect();
                return Node::default()
                    .with_node_id(BrokerId(v.node_id))
                    .with_listeners(listeners);
            }
            // A configured voter's controller listener; a cluster of one without voters has its
            // own controller listener, if any.
            let endpoint = cfg
                .cluster
                .voters
                .iter()
                .find(|x| x.id == v.node_id)
                .map(|x| (x.host.clone(), x.port))
                .or_else(|| {
                    let name = listener?;
                    (v.node_id == cfg.node_id)
                        .then(|| cfg.listeners.iter().find(|l| &l.name == name))
                        .flatten()
                        .map(|l| (l.host.clone(), l.port))
                });
            let listeners = match (listener, endpoint) {
                (Some(name), Some((host, port))) => vec![Listener::default()
                    .with_name(sb(name.clone()))
                    .with_host(sb(host))
                    .with_port(port)],
                _ => vec![],
            };
            Node::default()
                .with_node_id(BrokerId(v.node_id))
                .with_listeners(listeners)
        })
        .collect()
}

/// Handles DescribeQuorum.
pub async fn handle(ctx: &RequestContext, req: DescribeQuorumRequest) -> DescribeQuorumResponse {
    let v = ctx.api_version;
    // As Kafka: DESCRIBE on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(if v >= 2 {
                Some(sb("Cluster authorization failed."))
            } else {
                None
            });
    }
    if !names_the_metadata_partition(&req) {
        // Kafka answers every partition asked with the error.
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TopicData::default()
                    .with_topic_name(t.topic_name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                partition_error(
                                    v,
                                    p.partition_index,
                                    ResponseError::UnknownTopicOrPartition,
                                )
                            })
                            .collect(),
                    )
            })
            .collect();
        return DescribeQuorumResponse::default().with_topics(topics);
    }
    let answer = crate::controller::quorum_status(&ctx.broker).await;
    let (partition, nodes) = match answer {
        Ok(status) => {
            let replica = |r: &runnel_metadata::VoterStatus| {
                let s = ReplicaState::default()
                    .with_replica_id(BrokerId(r.node_id))
                    .with_log_end_offset(r.log_end_offset);
                let s = if v >= 2 {
                    s.with_replica_directory_id(r.directory_id.unwrap_or_default())
                } else {
                    s
                };
                if v >= 1 {
                    s.with_last_fetch_timestamp(r.last_fetch_timestamp_ms)
                        .with_last_caught_up_timestamp(r.last_caught_up_timestamp_ms)
                } else {
                    s
                }
            };
            let p = PartitionData::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(status.leader_id))
                .with_leader_epoch(status.leader_epoch)
                .with_high_watermark(status.high_watermark)
                .with_current_voters(status.voters.iter().map(replica).collect())
                .with_observers(status.observers.iter().map(replica).collect());
            let nodes = if v >= 2 {
                voter_nodes(ctx, &status)
            } else {
                vec![]
            };
            (p, nodes)
        }
        Err(e) => {
            let error = match e {
                QuorumError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
                QuorumError::Timeout => ResponseError::RequestTimedOut,
                QuorumError::Stopped => ResponseError::BrokerNotAvailable,
                QuorumError::Refused { .. } => ResponseError::UnknownServerError,
                QuorumError::Storage(ref m) => {
                    tracing::warn!(error = %m, "DescribeQuorum failed");
                    ResponseError::UnknownServerError
                }
            };
            (partition_error(v, 0, error), vec![])
        }
    };
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(sb(METADATA_TOPIC)))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}
