//! DescribeLogDirs (key 35): this broker's log dirs (`log.dirs`, absolute paths), each with the
//! partitions it holds: the size of each log and its offset lag, Kafka's `max(high watermark -
//! log end, 0)` (0 on a leader, whose log end is never below its high watermark; on a follower
//! the lag behind the high watermark it knows), and (v4) the file system's total and usable
//! bytes. A replica being moved by AlterReplicaLogDirs is also listed under its target dir as
//! Kafka's future replica (`is_future_key`), with the bytes copied so far and its lag behind the
//! current log's end. All partitions when `topics` is null, else those named. A dir that cannot
//! be read reports KAFKA_STORAGE_ERROR.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::ResponseError;

use super::{sb, RequestContext};

/// Total and usable bytes of the file system holding `dir` (what Java's FileStore reports:
/// blocks and blocks available to unprivileged users, times the fragment size).
pub fn disk_space(dir: &Path) -> std::io::Result<(i64, i64)> {
    let st = rustix::fs::statvfs(dir)?;
    let bytes = |blocks: u64| i64::try_from(blocks.saturating_mul(st.f_frsize)).unwrap_or(i64::MAX);
    Ok((bytes(st.f_blocks), bytes(st.f_bavail)))
}

/// Partitions of one dir: topic -> partitions.
type DirTopics = BTreeMap<String, Vec<DescribeLogDirsPartition>>;

/// Handles DescribeLogDirs.
pub fn handle(ctx: &RequestContext, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    // As Kafka: DESCRIBE on the cluster, else no directories (and, v3+, the error).
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Describe) {
        return DescribeLogDirsResponse::default().with_error_code(if ctx.api_version >= 3 {
            ResponseError::ClusterAuthorizationFailed.code()
        } else {
            0
        });
    }
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index)),
    };
    let dirs = broker.replicas.log_dirs();
    let mut per_dir: Vec<DirTopics> = vec![DirTopics::new(); dirs.len()];
    let mut log_ends = BTreeMap::new();
    for p in broker.replicas.all_partitions() {
        if !wanted(&p.topic, p.index) {
            continue;
        }
        let Some(i) = broker.replicas.log_dir_of(&p) else {
            continue;
        };
        let (size, log_end) = {
            let log = p.log.lock();
            (log.size_bytes(), log.log_end_offset())
        };
        log_ends.insert((p.topic.clone(), p.index), log_end);
        per_dir[i].entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag((p.high_watermark() - log_end).max(0))
                .with_is_future_key(false),
        );
    }
    for f in broker.replicas.future_replicas() {
        let Some(log_end) = log_ends.get(&(f.topic.clone(), f.index)) else {
            continue;
        };
        per_dir[f.target].entry(f.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(f.index)
                .with_partition_size(i64::try_from(f.size_bytes).unwrap_or(i64::MAX))
                .with_offset_lag((log_end - f.end_offset).max(0))
                .with_is_future_key(true),
        );
    }
    let results = dirs
        .iter()
        .zip(per_dir)
        .map(|(dir, topics)| {
            let result =
                DescribeLogDirsResult::default().with_log_dir(sb(dir.path.display().to_string()));
            let Ok((total, usable)) = disk_space(&dir.path) else {
                return result.with_error_code(ResponseError::KafkaStorageError.code());
            };
            let topics = topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| (p.partition_index, p.is_future_key));
                    DescribeLogDirsTopic::default()
                        .with_name(TopicName(sb(name)))
                        .with_partitions(partitions)
                })
                .collect();
            let result = result.with_error_code(0).with_topics(topics);
            if ctx.api_version >= 4 {
                result.with_total_bytes(total).with_usable_bytes(usable)
            } else {
                result
            }
        })
        .collect();
    DescribeLogDirsResponse::default()
        .with_error_code(0)
        .with_results(results)
}
