//! Records as applications see them ([`ProducerRecord`], [`ConsumerRecord`], [`Header`]) and
//! their translation to and from record batches (v2, with compression, CRC-32C checked; written
//! here, with kafka-protocol's codecs), including the read_committed filtering of aborted
//! transactions and control batches.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use runnel_protocol::batch::{self, crc32c_of, finish_batch, put_record, BatchHeader, HEADER_SIZE};

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
    None = 0,
    /// gzip.
    Gzip = 1,
    /// snappy.
    Snappy = 2,
    /// lz4.
    Lz4 = 3,
    /// zstd.
    Zstd = 4,
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

fn compress(codec: Compression, body: &[u8], out: &mut BytesMut) -> Result<()> {
    use runnel_protocol::kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let write = |b: &mut BytesMut| {
        b.put_slice(body);
        Ok(())
    };
    let r = match codec {
        Compression::None => {
            out.put_slice(body);
            Ok(())
        }
        Compression::Gzip => Gzip::compress(out, write),
        Compression::Snappy => Snappy::compress(out, write),
        Compression::Lz4 => Lz4::compress(out, write),
        Compression::Zstd => Zstd::compress(out, write),
    };
    r.map_err(|e| Error::Protocol(format!("cannot compress a record batch: {e}")))
}

fn decompress(codec: i16, data: Bytes) -> Result<Bytes> {
    use runnel_protocol::kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    use runnel_protocol::kafka_protocol::protocol::buf::ByteBuf;
    let mut data = data;
    fn all<B: ByteBuf>(b: &mut B) -> anyhow::Result<Bytes> {
        Ok(b.copy_to_bytes(b.remaining()))
    }
    let r = match codec {
        0 => return Ok(data),
        1 => Gzip::decompress(&mut data, all),
        2 => Snappy::decompress(&mut data, all),
        3 => Lz4::decompress(&mut data, all),
        4 => Zstd::decompress(&mut data, all),
        c => return Err(Error::Protocol(format!("unknown compression codec {c}"))),
    };
    r.map_err(|e| Error::Protocol(format!("cannot decompress a record batch: {e}")))
}

/// Encodes records into one v2 batch (base offset 0), compressed with `compression`. Headers
/// keep their order, repeated keys included.
pub fn encode_batch(
    recs: &[ProducerRecord],
    id: BatchIdentity,
    compression: Compression,
) -> Result<Bytes> {
    if recs.is_empty() {
        return Err(Error::Protocol("an empty record batch".into()));
    }
    let now = now_ms();
    let ts: Vec<i64> = recs.iter().map(|r| r.timestamp.unwrap_or(now)).collect();
    let base_ts = ts[0];
    let max_ts = ts.iter().copied().max().unwrap_or(base_ts);
    let size: usize = recs.iter().map(|r| r.estimated_size()).sum();
    let mut out = BytesMut::with_capacity(HEADER_SIZE + size);
    BatchHeader {
        attributes: compression as i16,
        producer_id: id.producer_id,
        producer_epoch: id.producer_epoch,
        base_sequence: id.base_sequence,
        ..BatchHeader::new(recs.len() as i32, base_ts, max_ts)
    }
    .put(&mut out);
    let write_records = |buf: &mut BytesMut| {
        let mut hs: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            hs.clear();
            hs.extend(
                r.headers
                    .iter()
                    .map(|h| (h.key.as_bytes(), h.value.as_deref())),
            );
            put_record(
                buf,
                ts[i] - base_ts,
                i as i64,
                r.key.as_deref(),
                r.value.as_deref(),
                &hs,
            );
        }
    };
    if compression == Compression::None {
        // Uncompressed records go straight into the batch: no intermediate copy.
        write_records(&mut out);
    } else {
        let mut body = BytesMut::with_capacity(size);
        write_records(&mut body);
        compress(compression, &body, &mut out)?;
    }
    finish_batch(&mut out);
    Ok(out.freeze())
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
        let batch = data.split_to(total);
        if magic != 2 {
            // Legacy message sets: skip them; their offsets still advance the position.
            out.next_offset = Some(base + 1);
            continue;
        }
        let bad = |what: &str| {
            Error::Protocol(format!(
                "{topic}-{partition}: bad batch at offset {base}: {what}"
            ))
        };
        if batch.len() < HEADER_SIZE {
            return Err(bad("shorter than a batch header"));
        }
        let h = BatchHeader::parse(&batch).map_err(|e| bad(&e.to_string()))?;
        if crc32c_of(&batch) != h.crc {
            return Err(bad("CRC mismatch (CORRUPT_MESSAGE)"));
        }
        let (leader_epoch, last_delta, producer_id) =
            (h.partition_leader_epoch, h.last_offset_delta, h.producer_id);
        let log_append_time = h.timestamp_type_log_append();
        let transactional = h.is_transactional();
        let control = h.is_control();
        out.next_offset = Some(base + last_delta as i64 + 1);
        if aborted.is_some() {
            while next_aborted < pending.len() && pending[next_aborted].first_offset <= base {
                aborting.push(pending[next_aborted].producer_id);
                next_aborted += 1;
            }
        }
        if aborted.is_some() && transactional && !control && aborting.contains(&producer_id) {
            continue;
        }
        let body = decompress(h.compression() as i16, batch.slice(HEADER_SIZE..))?;
        let mut pos = 0;
        for _ in 0..h.records_count.max(0) {
            let r =
                read_record(&body, &mut pos).ok_or_else(|| bad("a record runs past the batch"))?;
            if control {
                // Control record key: version i16, type i16 (0 abort, 1 commit).
                if r.key
                    .as_ref()
                    .is_some_and(|k| k.len() >= 4 && k[2..4] == [0, 0])
                {
                    aborting.retain(|p| *p != producer_id);
                }
                break;
            }
            let offset = base + r.offset_delta;
            if offset < from {
                continue;
            }
            if let Some(f) = filter {
                if !f(&r.headers) {
                    continue;
                }
            }
            out.records.push(ConsumerRecord {
                topic: topic.clone(),
                partition,
                offset,
                timestamp: if log_append_time {
                    h.max_timestamp
                } else {
                    h.base_timestamp + r.ts_delta
                },
                log_append_time,
                key: r.key,
                value: r.value,
                headers: r.headers,
                leader_epoch,
            });
        }
    }
    Ok(out)
}

struct RawRecord {
    ts_delta: i64,
    offset_delta: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<Header>,
}

/// The record at `pos` of decompressed `body`, its fields sliced from `body` without a copy.
fn read_record(body: &Bytes, pos: &mut usize) -> Option<RawRecord> {
    let r = batch::read_record(body, pos)?;
    let headers = r
        .headers
        .into_iter()
        .map(|(k, v)| Header {
            key: String::from_utf8_lossy(&body[k]).into_owned(),
            value: v.map(|v| body.slice(v)),
        })
        .collect();
    Some(RawRecord {
        ts_delta: r.timestamp_delta,
        offset_delta: r.offset_delta,
        key: r.key.map(|k| body.slice(k)),
        value: r.value.map(|v| body.slice(v)),
        headers,
    })
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

    /// A batch re-based at `base` with extra attribute bits and a producer id, CRC redone.
    fn patch(batch: &Bytes, base: i64, attrs: i16, pid: i64) -> Bytes {
        let mut b = BytesMut::from(&batch[..]);
        b[..8].copy_from_slice(&base.to_be_bytes());
        let a = i16::from_be_bytes([b[21], b[22]]) | attrs;
        b[21..23].copy_from_slice(&a.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        finish_batch(&mut b);
        b.freeze()
    }

    #[test]
    fn repeated_header_keys_survive_and_a_bad_crc_is_refused() {
        let topic: Arc<str> = Arc::from("t");
        let r = ProducerRecord::new("t")
            .value("v")
            .header("h", "1")
            .header("h", "2");
        let b = encode_batch(&[r], BatchIdentity::NONE, Compression::Lz4).unwrap();
        let d = decode_records(&topic, 0, b.clone(), 0, None, None).unwrap();
        let hs: Vec<_> = d.records[0]
            .headers
            .iter()
            .map(|h| h.value.clone().unwrap())
            .collect();
        assert_eq!(hs, vec![Bytes::from("1"), Bytes::from("2")]);
        let mut bad = BytesMut::from(&b[..]);
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let e = decode_records(&topic, 0, bad.freeze(), 0, None, None).unwrap_err();
        assert!(e.to_string().contains("CRC mismatch"), "{e}");
    }

    #[test]
    fn read_committed_drops_aborted_transactions_and_markers() {
        let topic: Arc<str> = Arc::from("t");
        let two = encode_batch(&recs(2), BatchIdentity::NONE, Compression::None).unwrap();
        let marker = ProducerRecord::new("t")
            .key(Bytes::from_static(&[0, 0, 0, 0]))
            .value("");
        let abort = encode_batch(&[marker], BatchIdentity::NONE, Compression::None).unwrap();
        let mut all = BytesMut::new();
        all.extend_from_slice(&patch(&two, 0, 0x10, 7)); // 0-1: aborted
        all.extend_from_slice(&patch(&two, 2, 0x10, 8)); // 2-3: committed
        all.extend_from_slice(&patch(&abort, 4, 0x30, 7)); // 4: abort marker of 7
        all.extend_from_slice(&patch(&two, 5, 0x10, 7)); // 5-6: 7's next transaction
        let all = all.freeze();
        let aborted = [AbortedTxn {
            producer_id: 7,
            first_offset: 0,
        }];
        let d = decode_records(&topic, 0, all.clone(), 0, Some(&aborted), None).unwrap();
        let offs: Vec<i64> = d.records.iter().map(|r| r.offset).collect();
        assert_eq!(offs, vec![2, 3, 5, 6]);
        assert_eq!(d.next_offset, Some(7));
        // read_uncommitted: everything but the marker.
        let d = decode_records(&topic, 0, all, 0, None, None).unwrap();
        assert_eq!(d.records.len(), 6);
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
