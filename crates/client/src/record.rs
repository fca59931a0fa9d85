//! Records as applications see them ([`ProducerRecord`], [`ConsumerRecord`], [`Header`]) and
//! their translation to and from record batches (v2, with compression), including the
//! read_committed filtering of aborted transactions and control batches.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use runnel_protocol::kafka_protocol::protocol::StrBytes;
use runnel_protocol::kafka_protocol::records::{
    self, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::error::{Error, Result};

/// A record header. Keys are strings, values optional bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The header's key.
    pub key: String,
    /// The header's value (`None` is a null value).
    pub value: Option<Bytes>,
}

/// `compression.type` of a produced batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// gzip.
    Gzip,
    /// snappy.
    Snappy,
    /// lz4.
    Lz4,
    /// zstd.
    Zstd,
}

impl Compression {
    /// Parses Kafka's names: none, gzip, snappy, lz4, zstd.
    pub fn parse(s: &str) -> Result<Compression> {
        Ok(match s.trim() {
            "none" | "" => Compression::None,
            "gzip" => Compression::Gzip,
            "snappy" => Compression::Snappy,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            other => {
                return Err(Error::Config(format!(
                    "compression.type must be none, gzip, snappy, lz4 or zstd, not {other:?}"
                )))
            }
        })
    }

    fn codec(self) -> records::Compression {
        match self {
            Compression::None => records::Compression::None,
            Compression::Gzip => records::Compression::Gzip,
            Compression::Snappy => records::Compression::Snappy,
            Compression::Lz4 => records::Compression::Lz4,
            Compression::Zstd => records::Compression::Zstd,
        }
    }
}

/// A record to produce. Without a partition, the partitioner picks one from the key.
#[derive(Clone, Debug, Default)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: String,
    /// An explicit partition.
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value (`None` is a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The create time in ms since the epoch; now when absent.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// An empty record for `topic`.
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            ..ProducerRecord::default()
        }
    }

    /// With a key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// With a value.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// With one more header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }

    /// With an explicit partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With an explicit timestamp.
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }

    /// The record's size in a batch, roughly (for batch.size and buffer.memory accounting).
    pub fn estimated_size(&self) -> usize {
        21 + self.key.as_ref().map_or(0, |k| k.len())
            + self.value.as_ref().map_or(0, |v| v.len())
            + self
                .headers
                .iter()
                .map(|h| 10 + h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}

/// A consumed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Whether `timestamp` is the append time (else the create time).
    pub log_append_time: bool,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// The leader epoch the batch was written in (-1 when unknown).
    pub leader_epoch: i32,
}

/// Producer identity written into a batch (idempotence and transactions).
#[derive(Clone, Copy, Debug)]
pub struct BatchIdentity {
    /// Producer id, -1 without idempotence.
    pub producer_id: i64,
    /// Producer epoch, -1 without idempotence.
    pub producer_epoch: i16,
    /// The first record's sequence, -1 without idempotence.
    pub base_sequence: i32,
}

impl BatchIdentity {
    /// No idempotence.
    pub const NONE: BatchIdentity = BatchIdentity {
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };
}

/// Encodes records into one v2 batch, compressed with `compression`.
pub fn encode_batch(
    recs: &[ProducerRecord],
    id: BatchIdentity,
    compression: Compression,
) -> Result<Bytes> {
    let now = now_ms();
    let records: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::with_capacity(r.headers.len());
            for h in &r.headers {
                headers.insert(StrBytes::from_string(h.key.clone()), h.value.clone());
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: id.producer_id,
                producer_epoch: id.producer_epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder keeps records in one batch while offset - sequence is constant,
                // and writes the first record's sequence as the base (-1 without idempotence).
                sequence: id.base_sequence.wrapping_add(i as i32),
                timestamp: r.timestamp.unwrap_or(now),
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: compression.codec(),
        },
    )
    .map_err(|e| Error::Protocol(format!("cannot encode a record batch: {e}")))?;
    Ok(buf.freeze())
}

/// An aborted transaction from a Fetch response: records of `producer_id` from `first_offset`
/// up to its abort marker are dropped under read_committed.
#[derive(Clone, Copy, Debug)]
pub struct AbortedTxn {
    /// The producer.
    pub producer_id: i64,
    /// The transaction's first offset.
    pub first_offset: i64,
}

/// What [`decode_records`] found in a partition's fetched bytes.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Records at or after the fetch offset, filtered.
    pub records: Vec<ConsumerRecord>,
    /// The offset after the last complete batch (where the next fetch starts).
    pub next_offset: Option<i64>,
}

/// Decodes the record batches of one partition in a Fetch response. Skips records before
/// `from`, control batches, aborted transactions (when `aborted` is given, i.e. read_committed)
/// and records the header filter refuses; stops at a truncated trailing batch.
pub fn decode_records(
    topic: &Arc<str>,
    partition: i32,
    mut data: Bytes,
    from: i64,
    aborted: Option<&[AbortedTxn]>,
    filter: Option<&crate::config::HeaderFilter>,
) -> Result<Decoded> {
    let mut out = Decoded::default();
    let mut pending: Vec<AbortedTxn> = aborted.map(|a| a.to_vec()).unwrap_or_default();
    pending.sort_by_key(|a| a.first_offset);
    let mut next_aborted = 0usize;
    let mut aborting: Vec<i64> = Vec::new();
    while data.len() >= 17 {
        let base = i64::from_be_bytes(data[..8].try_into().unwrap());
        let len = i32::from_be_bytes(data[8..12].try_into().unwrap());
        if len < 0 {
            return Err(Error::Protocol(format!(
                "{topic}-{partition}: negative batch length at offset {base}"
            )));
        }
        let total = 12 + len as usize;
        if data.len() < total {
            break;
        }
        let magic = data[16];
        let mut batch = data.split_to(total);
        if magic != 2 {
            // Legacy message sets: skip them; their offsets still advance the position.
            out.next_offset = Some(base + 1);
            continue;
        }
        let last_delta = i32::from_be_bytes(batch[23..27].try_into().unwrap_or([0; 4]));
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            Error::Protocol(format!(
                "{topic}-{partition}: bad batch at offset {base}: {e}"
            ))
        })?;
        out.next_offset = Some(base + last_delta as i64 + 1);
        let Some(first) = set.records.first() else {
            continue;
        };
        if aborted.is_some() {
            while next_aborted < pending.len() && pending[next_aborted].first_offset <= base {
                aborting.push(pending[next_aborted].producer_id);
                next_aborted += 1;
            }
        }
        if first.control {
            if let Some(key) = &first.key {
                // Control record key: version i16, type i16 (0 abort, 1 commit).
                if key.len() >= 4 && key[2..4] == [0, 0] {
                    aborting.retain(|p| *p != first.producer_id);
                }
            }
            continue;
        }
        if aborted.is_some() && first.transactional && aborting.contains(&first.producer_id) {
            continue;
        }
        for r in set.records {
            if r.offset < from {
                continue;
            }
            let headers: Vec<Header> = r
                .headers
                .into_iter()
                .map(|(k, v)| Header {
                    key: k.to_string(),
                    value: v,
                })
                .collect();
            if let Some(f) = filter {
                if !f(&headers) {
                    continue;
                }
            }
            out.records.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                log_append_time: r.timestamp_type == TimestampType::LogAppend,
                key: r.key,
                value: r.value,
                headers,
                leader_epoch: r.partition_leader_epoch,
            });
        }
    }
    Ok(out)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize) -> Vec<ProducerRecord> {
        (0..n)
            .map(|i| {
                ProducerRecord::new("t")
                    .key(format!("k{i}"))
                    .value(format!("v{i}").repeat(20))
                    .header("h", format!("{i}"))
                    .timestamp(1000 + i as i64)
            })
            .collect()
    }

    fn with_base(batch: &Bytes, base: i64) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        b[..8].copy_from_slice(&base.to_be_bytes());
        b.freeze()
    }

    #[test]
    fn batches_round_trip_in_every_codec() {
        let topic: Arc<str> = Arc::from("t");
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = encode_batch(&recs(5), BatchIdentity::NONE, c).unwrap();
            // One batch: last offset delta 4.
            assert_eq!(
                i32::from_be_bytes(b[23..27].try_into().unwrap()),
                4,
                "{c:?}"
            );
            let d = decode_records(&topic, 0, with_base(&b, 10), 12, None, None).unwrap();
            assert_eq!(d.next_offset, Some(15), "{c:?}");
            let offs: Vec<i64> = d.records.iter().map(|r| r.offset).collect();
            assert_eq!(offs, vec![12, 13, 14], "{c:?}");
            assert_eq!(d.records[0].key.as_deref(), Some(&b"k2"[..]));
            assert_eq!(d.records[0].timestamp, 1002);
            assert_eq!(d.records[0].headers[0].value.as_deref(), Some(&b"2"[..]));
        }
    }

    #[test]
    fn truncated_tail_and_header_filter() {
        let topic: Arc<str> = Arc::from("t");
        let a = encode_batch(&recs(3), BatchIdentity::NONE, Compression::None).unwrap();
        let b = with_base(&a, 3);
        let mut both = BytesMut::from(&a[..]);
        both.extend_from_slice(&b[..b.len() - 5]);
        let d = decode_records(&topic, 0, both.freeze(), 0, None, None).unwrap();
        assert_eq!(d.records.len(), 3);
        assert_eq!(d.next_offset, Some(3));
        let f: crate::config::HeaderFilter =
            Arc::new(|h: &[Header]| h.iter().any(|h| h.value.as_deref() == Some(&b"1"[..])));
        let d = decode_records(&topic, 0, a, 0, None, Some(&f)).unwrap();
        assert_eq!(d.records.len(), 1);
        assert_eq!(d.records[0].offset, 1);
    }
}
