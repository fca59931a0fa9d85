//! The coordinators' internal topics (`__consumer_offsets`, `__transaction_state`): created on
//! first use (compacted, replicated by `offsets.topic.replication.factor` /
//! `transaction.state.log.replication.factor` capped at the live brokers), written with
//! key/value records in one uncompressed batch per change, acknowledged once the in-sync replicas
//! hold them ([`committed`]), and read back one partition at a time when this broker becomes its
//! leader. [`Shards`] tracks which partitions a coordinator serves: those it leads and has
//! loaded; every other partition's keys get NOT_COORDINATOR.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, MutexGuard};
use runnel_protocol::batch::BatchHeader;
use tracing::{info, warn};

use crate::broker::{now_ms, Broker};
use crate::controller;
use crate::partition::Replication;

/// A record to append: key and value (None: a tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

/// Creates the internal topic `name` with `partitions` partitions unless it exists.
pub fn ensure(broker: &Broker, name: &str, partitions: i32) -> Result<(), ResponseError> {
    if broker.image().topic(name).is_some() {
        return Ok(());
    }
    let segment_bytes = if name == crate::txn::TRANSACTION_STATE_TOPIC {
        broker.config.transaction_state_log_segment_bytes
    } else {
        broker.config.offsets_topic_segment_bytes
    };
    let mut configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact".to_string()),
        ("compression.type", "producer".to_string()),
        ("segment.bytes", segment_bytes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // Replicated like any topic, capped by the live brokers (so that a single node works with
    // Kafka's defaults); __transaction_state's min.insync.replicas is capped the same way.
    let live = controller::placement::placement_order(&broker.image())
        .len()
        .max(1);
    let wanted_rf = if name == crate::txn::TRANSACTION_STATE_TOPIC {
        broker.config.transaction_state_log_replication_factor
    } else {
        broker.config.offsets_topic_replication_factor
    };
    let rf = (wanted_rf as usize).min(live) as i16;
    if name == crate::txn::TRANSACTION_STATE_TOPIC {
        let min_isr = broker.config.transaction_state_log_min_isr.min(rf as i32);
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
    }
    match controller::create_topic(broker, name, partitions, rf, &[], configs, false) {
        Ok(_) => Ok(()),
        Err(e) if e.error == ResponseError::TopicAlreadyExists => Ok(()),
        Err(e) => {
            warn!(topic = name, error = %e.message, "could not create an internal topic");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Partition count of an internal topic (`default` before it exists).
pub fn partition_count(broker: &Broker, name: &str, default: i32) -> i32 {
    broker
        .image()
        .topic(name)
        .map(|t| t.partitions.len() as i32)
        .unwrap_or(default)
}

/// Appends records to one partition as a single batch; `producer` makes it a transactional
/// batch of that (producer id, epoch), as TxnOffsetCommit writes are.
pub fn append(
    broker: &Broker,
    topic: &str,
    index: i32,
    records: &[KeyValue],
    producer: Option<(i64, i16)>,
) -> Result<(), ResponseError> {
    if records.is_empty() {
        return Ok(());
    }
    let partition = broker
        .replicas
        .partition(topic, index)
        .filter(|p| p.is_leader())
        .ok_or(ResponseError::NotCoordinator)?;
    // Kafka's coordinators write with acks=all: too few in-sync replicas refuse the write.
    if partition.isr_shortfall().is_some() {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    let leader_epoch = partition.leader_epoch();
    let now = now_ms();
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: leader_epoch,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(k.clone()),
            value: v.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|_| ResponseError::UnknownServerError)?;
    let result = partition
        .log
        .lock()
        .append_as_leader(&mut buf, leader_epoch, now, false);
    partition.leader_appended();
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            warn!(topic, partition = index, error = %e, "writing to an internal topic failed");
            // As Kafka's coordinators map a storage error: another broker may serve the key.
            Err(ResponseError::NotCoordinator)
        }
    }
}

/// Waits until everything this leader has appended to `topic`-`index` so far is committed in
/// the in-sync replicas (the high watermark reaches the log end), at most
/// `offsets.commit.timeout.ms`: a coordinator's acknowledgement. NOT_COORDINATOR when the
/// leadership moves first; COORDINATOR_NOT_AVAILABLE on a timeout or too small an ISR.
pub async fn committed(broker: &Broker, topic: &str, index: i32) -> Result<(), ResponseError> {
    let timeout = Duration::from_millis(broker.config.offsets_commit_timeout_ms as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let Some((partition, target, epoch)) = commit_target(broker, topic, index) else {
        return Ok(());
    };
    let mut hw = partition.subscribe_high_watermark();
    loop {
        if let Some(done) = commit_reached(&partition, target, epoch) {
            return done;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // Woken by the high watermark; the short slice notices a lost leadership.
        let slice = (tokio::time::Instant::now() + Duration::from_millis(100)).min(deadline);
        let _ = tokio::time::timeout_at(slice, hw.changed()).await;
    }
}

/// Whether everything this leader has appended to `topic`-`index` is committed in the in-sync
/// replicas right now (true when the partition is not led here: nothing of ours to wait for).
pub fn is_committed(broker: &Broker, topic: &str, index: i32) -> bool {
    match commit_target(broker, topic, index) {
        Some((partition, target, epoch)) => {
            commit_reached(&partition, target, epoch) == Some(Ok(()))
        }
        None => true,
    }
}

/// The partition, its log end offset and leader epoch when this broker leads it (None: there
/// is nothing of ours to wait for, e.g. the topic does not exist yet).
fn commit_target(
    broker: &Broker,
    topic: &str,
    index: i32,
) -> Option<(std::sync::Arc<crate::partition::Partition>, i64, i32)> {
    let partition = broker.replicas.partition(topic, index)?;
    let epoch = partition.leader_epoch();
    let target = partition.log.lock().log_end_offset();
    Some((partition, target, epoch))
}

/// Whether the wait for `target` is over, in a coordinator's errors: Some(Ok) once committed,
/// Some(Err) when it never will be here, None to keep waiting.
fn commit_reached(
    partition: &crate::partition::Partition,
    target: i64,
    epoch: i32,
) -> Option<Result<(), ResponseError>> {
    match partition.replication(target, epoch) {
        Replication::Pending => None,
        Replication::Committed => Some(Ok(())),
        Replication::LeadershipLost => Some(Err(ResponseError::NotCoordinator)),
        Replication::TooFewInSync { .. } => Some(Err(ResponseError::CoordinatorNotAvailable)),
    }
}

/// Every record of one partition of an internal topic hosted here, in log order up to its log
/// end, with control records (transaction markers) included: the caller sees `record.control`.
/// Returns how many records were read. A compacted log has gaps and may hold batches emptied by
/// the cleaner: the read moves on by the batches' offsets, not their records'.
pub fn replay(
    broker: &Broker,
    name: &str,
    index: i32,
    mut f: impl FnMut(&Record),
) -> anyhow::Result<u64> {
    let mut count = 0u64;
    let Some(partition) = broker.replicas.partition(name, index) else {
        return Ok(count);
    };
    let log = partition.log.lock();
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 1 << 20, end)?;
        let next = batches_end(&read.records).max(offset);
        if next == offset {
            break;
        }
        let mut bytes = read.records.clone();
        let batches = RecordBatchDecoder::decode_all(&mut bytes)
            .map_err(|e| anyhow::anyhow!("decoding {name}: {e}"))?;
        for batch in batches {
            for r in batch.records.iter().filter(|r| r.offset >= offset) {
                count += 1;
                f(r);
            }
        }
        offset = next;
    }
    Ok(count)
}

/// The offset after the last whole batch of `records` (0 when there is none).
fn batches_end(records: &[u8]) -> i64 {
    let (mut pos, mut next) = (0, 0);
    while let Ok(h) = BatchHeader::parse(&records[pos..]) {
        if h.batch_length < 0 || pos + h.size_bytes() > records.len() {
            break;
        }
        next = h.next_offset();
        pos += h.size_bytes();
    }
    next
}

/// The control type of a control record (0 abort, 1 commit), from its key.
pub fn control_type(r: &Record) -> Option<i16> {
    let k = r.key.as_deref()?;
    (k.len() >= 4).then(|| i16::from_be_bytes([k[2], k[3]]))
}

/// A coordinator's hold on one partition of its internal topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shard {
    /// Being read back from the log as leader of this epoch.
    Loading(i32),
    /// Loaded; served while this broker leads in this epoch.
    Active(i32),
}

/// What changed in a coordinator's partitions since the last [`Shards::begin`]: partitions to
/// drop (no longer led here, or led in a new epoch) and partitions to load, with their epoch.
#[derive(Debug, Default)]
pub struct Transitions {
    /// Partitions whose state must be dropped.
    pub unload: Vec<i32>,
    /// Partitions to read back from the log: (partition, leader epoch).
    pub load: Vec<(i32, i32)>,
}

/// Which partitions of an internal topic a coordinator serves: those this broker leads, once
/// loaded. Lock order for coordinators: their own state lock, then this one's.
pub struct Shards {
    topic: &'static str,
    held: Mutex<HashMap<i32, Shard>>,
    /// Serializes transitions (publishes may run concurrently).
    transitions: Mutex<()>,
}

impl Shards {
    /// No partition served yet.
    pub fn new(topic: &'static str) -> Shards {
        Shards {
            topic,
            held: Mutex::new(HashMap::new()),
            transitions: Mutex::new(()),
        }
    }

    /// Ok when this broker serves keys of `index`; NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS otherwise.
    pub fn check(&self, index: i32) -> Result<(), ResponseError> {
        match self.held.lock().get(&index) {
            Some(Shard::Active(_)) => Ok(()),
            Some(Shard::Loading(_)) => Err(ResponseError::CoordinatorLoadInProgress),
            None => Err(ResponseError::NotCoordinator),
        }
    }

    /// Compares the partitions held with those this broker leads now: the lost ones are
    /// forgotten (requests get NOT_COORDINATOR at once) and the new ones marked loading. The
    /// guard must be held until the caller has unloaded and loaded what it was told.
    pub fn begin(&self, broker: &Broker) -> (MutexGuard<'_, ()>, Transitions) {
        let guard = self.transitions.lock();
        let mut led: HashMap<i32, i32> = HashMap::new();
        // A broker that has not caught up with the metadata log (just started, or fenced) may
        // hold a stale leadership: it coordinates nothing until it serves.
        let serving = broker.is_serving() && !broker.is_shutting_down();
        if let Some(topic) = broker.image().topic(self.topic).filter(|_| serving) {
            for p in &topic.partitions {
                if let Some(part) = broker.replicas.partition(self.topic, p.partition) {
                    if part.is_leader() {
                        led.insert(p.partition, part.leader_epoch());
                    }
                }
            }
        }
        let mut held = self.held.lock();
        let mut t = Transitions::default();
        held.retain(|index, shard| {
            let epoch = match shard {
                Shard::Loading(e) | Shard::Active(e) => *e,
            };
            let keep = led.get(index) == Some(&epoch);
            if !keep {
                t.unload.push(*index);
            }
            keep
        });
        for (index, epoch) in led {
            if let std::collections::hash_map::Entry::Vacant(v) = held.entry(index) {
                v.insert(Shard::Loading(epoch));
                t.load.push((index, epoch));
            }
        }
        t.unload.sort_unstable();
        t.load.sort_unstable();
        if !t.unload.is_empty() || !t.load.is_empty() {
            info!(topic = self.topic, unload = ?t.unload, load = ?t.load, "coordinator partitions changed");
        }
        (guard, t)
    }

    /// Marks `index` served once loaded, unless it was dropped or reloaded meanwhile. Call with
    /// the coordinator's state lock held, after inserting the loaded state.
    pub fn activate(&self, index: i32, epoch: i32) {
        let mut held = self.held.lock();
        if held.get(&index) == Some(&Shard::Loading(epoch)) {
            held.insert(index, Shard::Active(epoch));
        }
    }

    /// The leader epoch `index` is served in, once loaded (a coordinator's epoch, as Kafka's
    /// transaction markers carry it).
    pub fn epoch(&self, index: i32) -> Option<i32> {
        match self.held.lock().get(&index) {
            Some(Shard::Active(epoch)) => Some(*epoch),
            _ => None,
        }
    }

    /// Gives up a partition whose load failed: the next [`Shards::begin`] tries again.
    pub fn abandon(&self, index: i32) {
        let mut held = self.held.lock();
        if matches!(held.get(&index), Some(Shard::Loading(_))) {
            held.remove(&index);
        }
    }
}
