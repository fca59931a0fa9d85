//! Offset requests shared by the consumer and the admin client: ListOffsets (earliest, latest,
//! by timestamp) to partition leaders, and OffsetFetch / OffsetCommit to a group's coordinator,
//! retried when the coordinator moves or is loading.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use runnel_protocol::kafka_protocol::messages::{
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
    offset_fetch_request::OffsetFetchRequestTopic,
    BrokerId, GroupId, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::assignor::TopicPartition;
use crate::cluster::Cluster;
use crate::error::{Error, Result};

/// ListOffsets timestamp for the log start.
pub const EARLIEST: i64 = -2;
/// ListOffsets timestamp for the log end (the high watermark).
pub const LATEST: i64 = -1;

/// An offset found by ListOffsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset (-1 when no record has a timestamp at or after the one asked for).
    pub offset: i64,
    /// The timestamp of that record (-1 for earliest/latest).
    pub timestamp: i64,
}

/// ListOffsets for each `(partition, timestamp)`, sent to each partition's leader;
/// `read_committed` makes LATEST the last stable offset.
pub async fn list_offsets(
    cluster: &Cluster,
    wanted: &[(TopicPartition, i64)],
    read_committed: bool,
) -> Result<HashMap<TopicPartition, ListedOffset>> {
    let deadline = Instant::now() + cluster.config.request_timeout;
    let mut out = HashMap::new();
    let mut todo: Vec<(TopicPartition, i64)> = wanted.to_vec();
    while !todo.is_empty() {
        let mut by_node: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        let mut retry = Vec::new();
        let mut last_err = None;
        for (tp, ts) in todo {
            match cluster.leader(&tp.0, tp.1).await {
                Ok(n) => by_node.entry(n).or_default().push((tp, ts)),
                Err(e) if e.is_retriable() => {
                    last_err = Some(e);
                    retry.push((tp, ts));
                }
                Err(e) => return Err(e),
            }
        }
        for (node, items) in by_node {
            let conn = match cluster.node(node).await {
                Ok(c) => c,
                Err(e) => {
                    last_err = Some(e);
                    retry.extend(items);
                    continue;
                }
            };
            let v = conn.version::<ListOffsetsRequest>(8)?;
            let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
            for (tp, ts) in &items {
                topics.entry(tp.0.as_str()).or_default().push(
                    ListOffsetsPartition::default()
                        .with_partition_index(tp.1)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(*ts),
                );
            }
            let req = ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(i8::from(read_committed && v >= 2))
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            ListOffsetsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                );
            let resp = match conn.send(&req, v).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    last_err = Some(e);
                    retry.extend(items);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for (tp, ts) in items {
                let p = resp
                    .topics
                    .iter()
                    .filter(|t| *t.name.0 == *tp.0)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == tp.1);
                let Some(p) = p else {
                    return Err(Error::Protocol(format!(
                        "ListOffsets: no answer for {}-{}",
                        tp.0, tp.1
                    )));
                };
                if p.error_code == 0 {
                    out.insert(
                        tp,
                        ListedOffset {
                            offset: p.offset,
                            timestamp: p.timestamp,
                        },
                    );
                    continue;
                }
                let e = Error::kafka(
                    p.error_code,
                    None,
                    format!("list offsets of {}-{}", tp.0, tp.1),
                );
                if !e.is_retriable() {
                    return Err(e);
                }
                cluster.invalidate(&tp.0);
                last_err = Some(e);
                retry.push((tp, ts));
            }
        }
        if !retry.is_empty() {
            if Instant::now() >= deadline {
                return Err(last_err.unwrap_or(Error::Timeout {
                    ms: cluster.config.request_timeout.as_millis() as u64,
                    what: "ListOffsets".into(),
                }));
            }
            cluster.backoff().await;
        }
        todo = retry;
    }
    Ok(out)
}

/// Runs `f` against the coordinator of `group`, finding it again after NOT_COORDINATOR,
/// COORDINATOR_NOT_AVAILABLE or a lost connection, and waiting out COORDINATOR_LOAD_IN_PROGRESS.
pub async fn with_coordinator<T, F, Fut>(cluster: &Cluster, group: &str, f: F) -> Result<T>
where
    F: Fn(std::sync::Arc<crate::conn::Connection>) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = Instant::now() + cluster.config.request_timeout;
    loop {
        let attempt = async {
            let node = cluster.coordinator(group, 0).await?;
            let conn = cluster.node(node).await?;
            f(conn).await
        };
        match attempt.await {
            Ok(v) => return Ok(v),
            Err(e)
                if matches!(e.code(), Some(14..=16))
                    || matches!(e, Error::Disconnected(_) | Error::Connect { .. }) =>
            {
                if Instant::now() >= deadline {
                    return Err(e);
                }
                cluster.backoff().await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// A committed offset and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The offset.
    pub offset: i64,
    /// The metadata string committed with it.
    pub metadata: Option<String>,
}

/// The committed offsets of `group`: for the given partitions, or all of them (`None`).
pub async fn fetch_committed(
    cluster: &Cluster,
    group: &str,
    partitions: Option<&[TopicPartition]>,
    require_stable: bool,
) -> Result<BTreeMap<TopicPartition, Committed>> {
    with_coordinator(cluster, group, |conn| async move {
        let v = conn.version::<OffsetFetchRequest>(7)?;
        let topics = partitions.map(|ps| {
            crate::assignor::by_topic(ps)
                .into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
        if topics.is_none() && v < 2 {
            return Err(Error::UnsupportedVersion {
                broker: conn.addr().to_string(),
                api: "OffsetFetch (all partitions)",
            });
        }
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(topics)
            .with_require_stable(require_stable && v >= 7);
        let resp = conn.send(&req, v).await?;
        if v >= 2 {
            Error::check(resp.error_code, None, || {
                format!("offsets of group {group}")
            })?;
        }
        let mut out = BTreeMap::new();
        for t in &resp.topics {
            for p in &t.partitions {
                Error::check(p.error_code, None, || {
                    format!(
                        "offset of group {group} on {}-{}",
                        t.name.0, p.partition_index
                    )
                })?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.0.to_string(), p.partition_index),
                        Committed {
                            offset: p.committed_offset,
                            metadata: p.metadata.as_ref().map(|m| m.to_string()),
                        },
                    );
                }
            }
        }
        Ok(out)
    })
    .await
}

/// Who commits: a group member (generation and member id), or a standalone commit
/// (generation -1, empty member id).
#[derive(Clone, Debug)]
pub struct Committer {
    /// The group id.
    pub group: String,
    /// The generation, -1 for a standalone commit.
    pub generation: i32,
    /// The member id, empty for a standalone commit.
    pub member_id: String,
    /// The static instance id.
    pub instance_id: Option<String>,
}

/// Commits `offsets` for the group; a partition-level error fails the whole commit.
pub async fn commit(
    cluster: &Cluster,
    who: &Committer,
    offsets: &BTreeMap<TopicPartition, Committed>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    with_coordinator(cluster, &who.group, |conn| async move {
        let v = conn.version::<OffsetCommitRequest>(8)?;
        let mut by: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for ((t, p), c) in offsets {
            by.entry(t.as_str()).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(c.metadata.clone().map(StrBytes::from_string)),
            );
        }
        let mut req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(who.group.clone())))
            .with_generation_id_or_member_epoch(who.generation)
            .with_member_id(StrBytes::from_string(who.member_id.clone()))
            .with_topics(
                by.into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        if v >= 7 {
            req.group_instance_id = who.instance_id.clone().map(StrBytes::from_string);
        }
        if (2..=4).contains(&v) {
            req.retention_time_ms = -1;
        }
        let resp = conn.send(&req, v).await?;
        for t in &resp.topics {
            for p in &t.partitions {
                Error::check(p.error_code, None, || {
                    format!(
                        "commit for group {} on {}-{}",
                        who.group, t.name.0, p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    })
    .await
}
