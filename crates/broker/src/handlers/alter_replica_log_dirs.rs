//! AlterReplicaLogDirs (key 34): moves replicas hosted here to another of this broker's log dirs
//! (what `kafka-reassign-partitions` sends for a plan with `log_dirs`). Each named partition's
//! move starts in the background and the answer comes at once, as in Kafka: progress shows in
//! DescribeLogDirs (a future replica under the target dir until the switch). Per partition:
//! LOG_DIR_NOT_FOUND for a path that is not one of `log.dirs`, KAFKA_STORAGE_ERROR for a dir that
//! cannot be used, REPLICA_NOT_AVAILABLE for a partition not hosted here (the dir is remembered
//! for when it is, as Kafka's preferred dir). A partition named under several dirs goes to the
//! last one, as Kafka's map of the request does.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use kafka_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::{sb, RequestContext};

/// Handles AlterReplicaLogDirs.
pub fn handle(
    ctx: &RequestContext,
    req: AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    // Topic -> partition -> target dir (the last one named wins).
    let mut wanted: BTreeMap<String, BTreeMap<i32, String>> = BTreeMap::new();
    for dir in &req.dirs {
        for t in &dir.topics {
            for p in &t.partitions {
                wanted
                    .entry(t.name.0.to_string())
                    .or_default()
                    .insert(*p, dir.path.to_string());
            }
        }
    }
    // As Kafka: ALTER on the cluster, else every partition fails.
    let allowed = ctx.authorize_cluster(crate::security::acl::AclOperation::Alter);
    let results = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, dir)| {
                    let outcome = if allowed {
                        ctx.broker.replicas.alter_log_dir(&topic, index, &dir)
                    } else {
                        Err(kafka_protocol::ResponseError::ClusterAuthorizationFailed)
                    };
                    let code = match outcome {
                        Ok(()) => 0,
                        Err(e) => e.code(),
                    };
                    AlterReplicaLogDirPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            AlterReplicaLogDirTopicResult::default()
                .with_topic_name(kafka_protocol::messages::TopicName(sb(topic)))
                .with_partitions(partitions)
        })
        .collect();
    AlterReplicaLogDirsResponse::default().with_results(results)
}
