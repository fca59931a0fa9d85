//! The follower fetcher: one task per leader broker, fetching every partition this node
//! follows from it with the Fetch API as a replica (Kafka's ReplicaFetcherThread). Each round
//! asks from the local log end with the last fetched epoch; the answer is appended verbatim
//! (offsets and epochs as the leader wrote them), or, when the leader reports that the logs
//! diverged (KIP-320), the local log is truncated to where they agree before fetching again.
//! The follower's high watermark follows the leader's. The task ends when it has had nothing to
//! fetch for a while; the replica manager starts it again when needed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_client::conn::Connection;
use tracing::{debug, info, warn};

use crate::broker::{now_ms, Broker};
use crate::partition::Partition;

/// How long the leader may hold a fetch with nothing new (Kafka's replica.fetch.wait.max.ms).
const FETCH_WAIT_MS: i32 = 500;
/// Bytes asked per partition per fetch (Kafka's replica.fetch.max.bytes).
const PARTITION_MAX_BYTES: i32 = 1024 * 1024;
/// Bytes asked per fetch (Kafka's replica.fetch.response.max.bytes).
const RESPONSE_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// Pause after an error before fetching again (Kafka's replica.fetch.backoff.ms).
const BACKOFF: Duration = Duration::from_millis(500);
/// A fetcher with nothing to fetch for this long ends.
const IDLE_EXIT: Duration = Duration::from_secs(10);

/// Runs the fetcher of the partitions led by `leader` until the broker stops or there is
/// nothing left to fetch from it.
pub async fn run(owner: Weak<Broker>, leader: i32) {
    let mut conn: Option<Connection> = None;
    let mut idle_since: Option<Instant> = None;
    let mut connect_failing = false;
    loop {
        let Some(broker) = owner.upgrade() else {
            return;
        };
        if broker.is_shutting_down() {
            return;
        }
        let parts = broker.replicas.followed_from(leader);
        if parts.is_empty() {
            if idle_since.get_or_insert_with(Instant::now).elapsed() > IDLE_EXIT {
                return;
            }
            drop(broker);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        idle_since = None;
        let image = broker.image();
        // Throttled replicas outside the ISR sit out while the follower rate is used up.
        let throttled = |p: &Partition| is_throttled(&image, broker.config.node_id, p);
        let parts: Vec<Arc<Partition>> = if broker
            .replicas
            .follower_quota
            .exceeded(&image, broker.config.node_id)
        {
            parts.into_iter().filter(|p| !throttled(p)).collect()
        } else {
            parts
        };
        if parts.is_empty() {
            drop(broker);
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let listener = &broker.config.cluster.inter_broker_listener_name;
        let Some(addr) = image
            .brokers
            .get(&leader)
            .filter(|b| !b.fenced)
            .and_then(|b| b.endpoint(listener))
            .map(|e| format!("{}:{}", e.host, e.port))
        else {
            drop(broker);
            tokio::time::sleep(BACKOFF).await;
            continue;
        };
        if conn
            .as_ref()
            .is_none_or(|c| c.is_closed() || c.addr() != addr)
        {
            let security = broker.outbound.for_brokers();
            match Connection::connect_secure(
                &addr,
                "runnel-replica-fetcher",
                Duration::from_secs(5),
                &security,
            )
            .await
            {
                Ok(c) => {
                    connect_failing = false;
                    conn = Some(c);
                }
                Err(e @ runnel_client::Error::Authentication(_)) => {
                    // As Kafka logs it: a misconfigured credential keeps this node out of the
                    // ISR, and the operator must see why.
                    warn!(leader, %addr, error = %e, "replica fetcher: authentication to another node failed");
                    drop(broker);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Err(e) if !connect_failing => {
                    // The first failure of a streak is worth an operator's eye (a refused login
                    // can also show as a closed connection); the retries are not.
                    connect_failing = true;
                    warn!(leader, %addr, error = %e, "replica fetcher cannot connect");
                    drop(broker);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
                Err(e) => {
                    debug!(leader, %addr, error = %e, "replica fetcher cannot connect");
                    drop(broker);
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let c = conn.as_ref().expect("connected");
        let version = match c.version::<FetchRequest>(16) {
            Ok(v) if v >= 12 => v,
            _ => {
                warn!(
                    leader,
                    "the leader does not serve Fetch v12+; cannot replicate from it"
                );
                drop(broker);
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        let request = build_request(&broker, &parts, version);
        let by_key: HashMap<(uuid::Uuid, i32), Arc<Partition>> = parts
            .iter()
            .map(|p| ((p.topic_id, p.index), p.clone()))
            .collect();
        let by_name: HashMap<String, uuid::Uuid> = parts
            .iter()
            .map(|p| (p.topic.clone(), p.topic_id))
            .collect();
        let response = c
            .send_timeout(&request, version, Duration::from_secs(10))
            .await;
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                drop(broker);
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        if response.error_code != 0 {
            drop(broker);
            tokio::time::sleep(BACKOFF).await;
            continue;
        }
        // Appending and truncating are file I/O: off the async workers.
        let outcome = tokio::task::spawn_blocking(move || {
            let node = broker.config.node_id;
            let mut any_error = false;
            for t in response.responses {
                let topic_id = if version >= 13 {
                    t.topic_id
                } else {
                    by_name.get(t.topic.0.as_str()).copied().unwrap_or_default()
                };
                for pd in t.partitions {
                    let Some(p) = by_key.get(&(topic_id, pd.partition_index)) else {
                        continue;
                    };
                    // Leadership moved while the fetch was out: drop what it brought.
                    if p.state().leader != leader {
                        continue;
                    }
                    let bytes = pd.records.as_ref().map_or(0, |r| r.len());
                    if bytes > 0 && is_throttled(&image, node, p) {
                        broker.replicas.follower_quota.record(&image, node, bytes);
                    }
                    if let Err(e) = apply(&broker, p, &pd) {
                        any_error = true;
                        debug!(topic = %p.topic, partition = p.index, error = %e, "replica fetch not applied");
                    }
                }
            }
            any_error
        })
        .await;
        if !matches!(outcome, Ok(false)) {
            tokio::time::sleep(BACKOFF).await;
        }
    }
}

/// Whether this follower's replica of `p` is throttled: listed in the topic's
/// `follower.replication.throttled.replicas` and outside the ISR.
fn is_throttled(image: &runnel_metadata::MetadataImage, node: i32, p: &Partition) -> bool {
    // The topic's config first: most topics list no throttled replica, and the ISR check
    // copies the partition's state.
    image.topic_by_id(&p.topic_id).is_some_and(|t| {
        super::throttle::lists_replica(t, "follower.replication.throttled.replicas", p.index, node)
    }) && !p.state().isr.contains(&node)
}

/// A Fetch request as a replica, from each partition's log end.
fn build_request(broker: &Broker, parts: &[Arc<Partition>], version: i16) -> FetchRequest {
    let node = broker.config.node_id;
    let broker_epoch = broker.broker_epoch.lock().unwrap_or(-1);
    let mut topics: Vec<FetchTopic> = Vec::new();
    for p in parts {
        let (fetch_offset, last_epoch, log_start) = {
            let log = p.log.lock();
            (
                log.log_end_offset(),
                log.epoch_entries().last().map_or(-1, |e| e.0),
                log.log_start_offset(),
            )
        };
        let fp = FetchPartition::default()
            .with_partition(p.index)
            .with_current_leader_epoch(p.leader_epoch())
            .with_fetch_offset(fetch_offset)
            .with_last_fetched_epoch(last_epoch)
            .with_log_start_offset(log_start)
            .with_partition_max_bytes(PARTITION_MAX_BYTES);
        match topics.iter_mut().find(|t| t.topic_id == p.topic_id) {
            Some(t) => t.partitions.push(fp),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.clone())))
                    .with_topic_id(p.topic_id)
                    .with_partitions(vec![fp]),
            ),
        }
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    if version >= 15 {
        req = req.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(node))
                .with_replica_epoch(broker_epoch),
        );
    } else {
        req = req.with_replica_id(BrokerId(node));
    }
    req
}

/// Applies one partition of a fetch response to the local replica.
fn apply(broker: &Broker, p: &Partition, pd: &PartitionData) -> Result<(), String> {
    let error = pd.error_code;
    if error == ResponseError::OffsetOutOfRange.code() {
        // Our log end is outside the leader's log: below its start (deleted there) we start
        // afresh at its start; above its end (cannot happen once epochs agree) we cut to its
        // high watermark.
        let mut log = p.log.lock();
        let leo = log.log_end_offset();
        if pd.log_start_offset >= 0 && leo < pd.log_start_offset {
            info!(topic = %p.topic, partition = p.index, start = pd.log_start_offset, "follower behind the leader's log start: starting there");
            log.truncate_fully_and_start_at(pd.log_start_offset)
                .map_err(|e| e.to_string())?;
        } else if pd.high_watermark >= 0 && leo > pd.high_watermark {
            log.truncate_to(pd.high_watermark)
                .map_err(|e| e.to_string())?;
        }
        drop(log);
        p.truncated();
        return Ok(());
    }
    if error != 0 {
        return Err(format!("error code {error}"));
    }
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        let mut log = p.log.lock();
        let target = super::logic::truncation_target(
            &log,
            pd.diverging_epoch.epoch,
            pd.diverging_epoch.end_offset,
        );
        info!(
            topic = %p.topic,
            partition = p.index,
            from = log.log_end_offset(),
            to = target,
            leader_epoch = pd.diverging_epoch.epoch,
            "truncating a diverged follower log"
        );
        log.truncate_to(target).map_err(|e| e.to_string())?;
        drop(log);
        p.truncated();
        // The recovery point moved down: checkpoint it before appending again, as Kafka does.
        broker
            .replicas
            .write_checkpoints()
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    let mut log = p.log.lock();
    if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty()) {
        log.append_as_follower(records, now_ms())
            .map_err(|e| e.to_string())?;
        broker.metrics.replicated_in(records.len());
    }
    if pd.log_start_offset > log.log_start_offset() && pd.log_start_offset <= log.log_end_offset() {
        log.delete_records_before(pd.log_start_offset)
            .map_err(|e| e.to_string())?;
    }
    drop(log);
    p.follower_update_high_watermark(pd.high_watermark);
    Ok(())
}
