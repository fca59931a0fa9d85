//! The coordinators' internal topics (`__consumer_offsets`, `__transaction_state`): created on
//! first use (compacted, replicated by `offsets.topic.replication.factor` capped at the live
//! brokers), written with key/value records
//! in one uncompressed batch per change, and read back whole at start-up.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use tracing::warn;

use crate::broker::{now_ms, Broker};
use crate::controller;

/// Segment size of internal topics (Kafka's `offsets.topic.segment.bytes` default).
const SEGMENT_BYTES: &str = "104857600";

/// A record to append: key and value (None: a tombstone).
pub type KeyValue = (Bytes, Option<Bytes>);

/// Creates the internal topic `name` with `partitions` partitions unless it exists.
pub fn ensure(broker: &Broker, name: &str, partitions: i32) -> Result<(), ResponseError> {
    if broker.image().topic(name).is_some() {
        return Ok(());
    }
    let configs: BTreeMap<String, String> = [
        ("cleanup.policy", "compact"),
        ("compression.type", "producer"),
        ("segment.bytes", SEGMENT_BYTES),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // Replicated like any topic: offsets.topic.replication.factor, capped by the live brokers.
    let live = controller::placement::placement_order(&broker.image())
        .len()
        .max(1);
    let rf = (broker.config.offsets_topic_replication_factor as usize).min(live) as i16;
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
        Ok(_) => {
            broker.replicas.notify_append();
            Ok(())
        }
        Err(e) => {
            warn!(topic, partition = index, error = %e, "writing to an internal topic failed");
            Err(ResponseError::KafkaStorageError)
        }
    }
}

/// Every record of every partition of an internal topic, in log order per partition, with
/// control records (transaction markers) included: the caller sees `record.control`.
pub fn replay(broker: &Broker, name: &str, mut f: impl FnMut(&Record)) -> anyhow::Result<()> {
    let Some(topic) = broker.image().topic(name).cloned() else {
        return Ok(());
    };
    for p in &topic.partitions {
        let Some(partition) = broker.replicas.partition(name, p.partition) else {
            continue;
        };
        let log = partition.log.lock();
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log.read(offset, 1 << 20, end)?;
            if read.records.is_empty() {
                break;
            }
            let mut bytes = read.records.clone();
            let batches = RecordBatchDecoder::decode_all(&mut bytes)
                .map_err(|e| anyhow::anyhow!("decoding {name}: {e}"))?;
            let mut next = offset;
            for batch in batches {
                for r in &batch.records {
                    next = next.max(r.offset + 1);
                    f(r);
                }
            }
            if next <= offset {
                break;
            }
            offset = next;
        }
    }
    Ok(())
}

/// The control type of a control record (0 abort, 1 commit), from its key.
pub fn control_type(r: &Record) -> Option<i16> {
    let k = r.key.as_deref()?;
    (k.len() >= 4).then(|| i16::from_be_bytes([k[2], k[3]]))
}
