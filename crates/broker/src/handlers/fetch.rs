//! Fetch (key 1): reads whole batches from the batch containing the fetch offset, bounded by the
//! high watermark, `max.bytes` and each partition's limit (always at least one whole batch), and
//! long-polls until `min.bytes` are available or `max.wait.ms` passes, woken by appends. Fetch
//! sessions are not created: session id 0 is answered, which clients accept as "no session".
//! `read_committed` fetches stop at the last stable offset and list the aborted transactions of
//! the range.
//!
//! Only a partition's leader serves fetches. A fetch from a follower replica (a replica id, in
//! `replica_state` from v15) reads up to the log end, not the high watermark; its fetch offset
//! tells the leader how far the follower has the log (which may advance the high watermark and
//! makes it a candidate to rejoin the ISR), and its last fetched epoch is checked against the
//! leader's epoch history: a follower whose log diverged is told where (`diverging_epoch`,
//! KIP-320) and gets no records until it has truncated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::ResponseError;
use runnel_storage::log::{LogError, ReadPlan};

use super::{sb, RequestContext};

pub mod encode;

struct Wanted {
    topic: String,
    topic_id: uuid::Uuid,
    known: bool,
    /// The principal may not read it (TOPIC_AUTHORIZATION_FAILED).
    denied: bool,
    partitions: Vec<Wanted1>,
}

/// One wanted partition.
struct Wanted1 {
    index: i32,
    offset: i64,
    max_bytes: i32,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

/// What one pass over the wanted partitions found: the response's topics, the bytes of records
/// in them, and the records left in the files (`defer`): (partition's place in the response,
/// its planned read).
struct Found {
    topics: Vec<FetchableTopicResponse>,
    /// Bytes of records found per wanted topic, in `wanted` order.
    per_topic: Vec<usize>,
    total: usize,
    deferred: Vec<(usize, ReadPlan)>,
}

fn read_once(
    ctx: &RequestContext,
    wanted: &[Wanted],
    max_bytes: i32,
    read_committed: bool,
    replica_id: i32,
    defer: bool,
    waiter: &Arc<tokio::sync::Notify>,
) -> Found {
    let now = crate::broker::now_ms();
    let image = ctx.broker.image();
    let node = ctx.broker.config.node_id;
    let quota = &ctx.broker.replicas.leader_quota;
    let mut total: usize = 0;
    let mut budget = max_bytes.max(0) as usize;
    let mut out = Vec::with_capacity(wanted.len());
    let mut deferred = Vec::new();
    let mut place = 0;
    let mut per_topic = Vec::with_capacity(wanted.len());
    for w in wanted {
        per_topic.push(0);
        // Where this topic's first partition is in the whole response.
        let topic_start = place;
        place += w.partitions.len();
        let mut parts = Vec::with_capacity(w.partitions.len());
        for wp in &w.partitions {
            let (index, offset, pmax) = (wp.index, wp.offset, wp.max_bytes);
            let mut pd = PartitionData::default()
                .with_partition_index(index)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_preferred_read_replica(BrokerId(-1))
                .with_records(Some(Bytes::new()));
            if w.denied {
                parts.push(pd.with_error_code(ResponseError::TopicAuthorizationFailed.code()));
                continue;
            }
            let partition = if w.known {
                ctx.broker.replicas.partition(&w.topic, index)
            } else {
                None
            };
            let Some(partition) = partition else {
                let err = if w.known || ctx.api_version < 13 {
                    ResponseError::UnknownTopicOrPartition
                } else {
                    ResponseError::UnknownTopicId
                };
                parts.push(pd.with_error_code(err.code()));
                continue;
            };
            partition.register_reader(waiter);
            if let Err(e) = partition.check_leader(wp.current_leader_epoch) {
                parts.push(pd.with_error_code(e.code()));
                continue;
            }
            if replica_id >= 0 {
                // A follower whose log diverged from ours is told where (KIP-320) and nothing
                // else: its fetch offset is not where it has our log, so, as Kafka, its progress
                // is not recorded (that would count it towards the high watermark and the ISR).
                let diverging = {
                    let log = partition.log.lock();
                    crate::replica::logic::diverging_epoch(&log, wp.last_fetched_epoch, offset)
                        .map(|d| (d, log.log_start_offset()))
                };
                if let Some(((epoch, end), log_start)) = diverging {
                    parts.push(
                        pd.with_error_code(0)
                            .with_high_watermark(partition.high_watermark())
                            .with_log_start_offset(log_start)
                            .with_diverging_epoch(
                                kafka_protocol::messages::fetch_response::EpochEndOffset::default()
                                    .with_epoch(epoch)
                                    .with_end_offset(end),
                            ),
                    );
                    continue;
                }
                // Otherwise it has our log below its fetch offset.
                if partition.record_follower_fetch(replica_id, offset, now) {
                    ctx.broker.replicas.isr_change_wanted();
                }
            }
            let hw = partition.high_watermark();
            let log = partition.log.lock();
            let lso = log.last_stable_offset().min(hw);
            // Followers read to the log end; read_committed consumers stop at the last stable
            // offset and are told which transactions in the range were aborted; other consumers
            // read to the high watermark.
            let upper = if replica_id >= 0 {
                log.log_end_offset()
            } else if read_committed {
                lso
            } else {
                hw
            };
            if read_committed {
                pd = pd.with_aborted_transactions(Some(
                    log.aborted_txns(offset, upper)
                        .into_iter()
                        .map(|(pid, first)| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(pid))
                                .with_first_offset(first)
                        })
                        .collect(),
                ));
            }
            pd = pd
                .with_high_watermark(hw)
                .with_last_stable_offset(lso)
                .with_log_start_offset(if ctx.api_version >= 5 {
                    log.log_start_offset()
                } else {
                    -1
                });
            // A follower outside the ISR of a partition whose replica here is leader-throttled
            // gets nothing while the leader rate is used up (Kafka lists the leader's own
            // replica in `leader.replication.throttled.replicas`).
            let throttled = replica_id >= 0
                && image.topic(&w.topic).is_some_and(|t| {
                    crate::replica::throttle::lists_replica(
                        t,
                        "leader.replication.throttled.replicas",
                        index,
                        node,
                    )
                })
                && !partition.state().isr.contains(&replica_id);
            if throttled && quota.exceeded(&image, node) {
                parts.push(pd.with_error_code(0));
                continue;
            }
            // As Kafka: a partition reads at most min(its limit, what is left of max_bytes), the
            // first partition with data at least one whole batch; later ones stop.
            let limit = if total == 0 {
                (pmax.max(0) as usize).min(budget).max(1)
            } else {
                (pmax.max(0) as usize).min(budget)
            };
            if limit == 0 || (total > 0 && budget == 0) {
                parts.push(pd.with_error_code(0));
                continue;
            }
            // Planned under the log's lock, read without it: a cold read does not hold up the
            // producers and followers appending to this partition.
            let plan = log.plan_read(offset, limit, upper);
            drop(log);
            let plan = match plan {
                // Past the first partition, a batch that does not fit the budget waits.
                Ok(p) if total > 0 && p.len() > budget => {
                    parts.push(pd.with_error_code(0));
                    continue;
                }
                Ok(p) => {
                    let n = p.len();
                    total += n;
                    *per_topic.last_mut().expect("this topic's") += n;
                    budget = budget.saturating_sub(n);
                    if throttled {
                        quota.record(&image, node, n);
                    }
                    if defer {
                        deferred.push((topic_start + parts.len(), p));
                        parts.push(pd.with_error_code(0));
                        continue;
                    }
                    p.execute()
                }
                Err(e) => Err(e),
            };
            match plan {
                Ok(r) => {
                    parts.push(pd.with_error_code(0).with_records(Some(r.records)));
                }
                Err(LogError::OffsetOutOfRange { .. }) => {
                    parts.push(pd.with_error_code(ResponseError::OffsetOutOfRange.code()));
                }
                Err(e) => {
                    tracing::error!(topic = %w.topic, partition = index, error = %e, "fetch read failed");
                    parts.push(pd.with_error_code(ResponseError::KafkaStorageError.code()));
                }
            }
        }
        out.push(
            FetchableTopicResponse::default()
                .with_topic(TopicName(sb(w.topic.clone())))
                .with_topic_id(w.topic_id)
                .with_partitions(parts),
        );
    }
    Found {
        topics: out,
        per_topic,
        total,
        deferred,
    }
}

/// Handles Fetch, long-polling as asked. With `defer`, the records found stay in the segment
/// files: the response's partitions carry none, and the second value holds, for the i-th
/// partition of the response, the read that [`encode::encode`] sends as its records.
pub async fn handle(
    ctx: &RequestContext,
    req: FetchRequest,
    defer: bool,
) -> (FetchResponse, Vec<Option<ReadPlan>>) {
    if req.session_id != 0 {
        let resp = FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code())
            .with_session_id(0);
        return (resp, Vec::new());
    }
    let image = ctx.broker.image();
    let replica_id = if ctx.api_version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    // As Kafka: a follower needs CLUSTER_ACTION on the cluster, a consumer READ on each topic;
    // what is refused is TOPIC_AUTHORIZATION_FAILED per partition.
    let follower_denied = replica_id >= 0
        && !ctx.authorize_cluster(crate::security::acl::AclOperation::ClusterAction);
    let wanted: Vec<Wanted> = req
        .topics
        .iter()
        .map(|t| {
            let (name, id, known) = if ctx.api_version >= 13 {
                match image.topic_by_id(&t.topic_id) {
                    Some(ti) => (ti.name.clone(), t.topic_id, true),
                    None => (String::new(), t.topic_id, false),
                }
            } else {
                let name = t.topic.0.to_string();
                let id = image.topic(&name).map(|ti| ti.topic_id).unwrap_or_default();
                let known = image.topic(&name).is_some();
                (name, id, known)
            };
            let denied = known
                && (follower_denied
                    || (replica_id < 0
                        && !ctx.authorize(
                            crate::security::acl::AclOperation::Read,
                            crate::security::acl::ResourceType::Topic,
                            &name,
                        )));
            Wanted {
                topic: name,
                topic_id: id,
                known,
                denied,
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| Wanted1 {
                        index: p.partition,
                        offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                        current_leader_epoch: p.current_leader_epoch,
                        last_fetched_epoch: if ctx.api_version >= 12 {
                            p.last_fetched_epoch
                        } else {
                            -1
                        },
                    })
                    .collect(),
            }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let read_committed = req.isolation_level == 1;
    // A consumer fetches at most what a window of its consumer_byte_rate allows (Kafka's cap).
    let max_bytes = if replica_id < 0 {
        crate::security::quota::throttle::fetch_max_bytes(ctx, req.max_bytes)
    } else {
        req.max_bytes
    };
    let min_bytes = min_bytes.min(max_bytes.max(0) as usize);
    // Woken by the wanted partitions only (each pass registers it again before reading).
    let waiter = Arc::new(tokio::sync::Notify::new());
    loop {
        let found = read_once(
            ctx,
            &wanted,
            max_bytes,
            read_committed,
            replica_id,
            defer,
            &waiter,
        );
        let any_error = found
            .topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| p.error_code != 0));
        if found.total >= min_bytes
            || any_error
            || Instant::now() >= deadline
            || ctx.broker.is_shutting_down()
        {
            ctx.broker.metrics.fetched(
                wanted
                    .iter()
                    .zip(&found.per_topic)
                    .map(|(w, n)| (w.topic.as_str(), *n)),
                replica_id >= 0,
            );
            let count = found.topics.iter().map(|t| t.partitions.len()).sum();
            let mut plans: Vec<Option<ReadPlan>> = (0..count).map(|_| None).collect();
            for (i, plan) in found.deferred {
                plans[i] = Some(plan);
            }
            let resp = FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(found.topics);
            return (resp, plans);
        }
        let _ = tokio::time::timeout_at(deadline.into(), waiter.notified()).await;
    }
}
