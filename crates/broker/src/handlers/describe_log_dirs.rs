//! DescribeLogDirs (key 35): this broker's log dirs (`log.dirs`, absolute paths) with the size of
//! each hosted partition's log and its offset lag, Kafka's `max(high watermark - log end, 0)`
//! (0 on a leader, whose log end is never below its high watermark, and on a caught-up
//! follower), and (v4) the file system's total and usable bytes. All partitions when `topics` is
//! null, else those named. Runnel keeps every partition in the first log dir and has no future
//! replicas (no AlterReplicaLogDirs). A dir that cannot be read reports KAFKA_STORAGE_ERROR.

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

/// Handles DescribeLogDirs.
pub fn handle(ctx: &RequestContext, req: DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(topics) => topics
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index)),
    };
    // Topic -> partitions hosted here, in order.
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    for p in broker.replicas.all_partitions() {
        if !wanted(&p.topic, p.index) {
            continue;
        }
        let (size, log_end) = {
            let log = p.log.lock();
            (log.size_bytes(), log.log_end_offset())
        };
        by_topic.entry(p.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(p.index)
                .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                .with_offset_lag((p.high_watermark() - log_end).max(0))
                .with_is_future_key(false),
        );
    }
    let topics: Vec<DescribeLogDirsTopic> = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(TopicName(sb(name)))
                .with_partitions(partitions)
        })
        .collect();
    let mut dirs = broker.config.log_dirs.clone();
    if dirs.is_empty() {
        dirs.push(broker.log_dir.clone());
    }
    let mut topics = Some(topics);
    let results = dirs
        .iter()
        .map(|dir| {
            let path = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let result =
                DescribeLogDirsResult::default().with_log_dir(sb(path.display().to_string()));
            let space = disk_space(dir);
            let Ok((total, usable)) = space else {
                return result.with_error_code(ResponseError::KafkaStorageError.code());
            };
            // Every partition lives in the broker's (first) log dir.
            let here = if *dir == broker.log_dir {
                topics.take().unwrap_or_default()
            } else {
                vec![]
            };
            let result = result.with_error_code(0).with_topics(here);
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
