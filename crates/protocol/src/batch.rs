//! Kafka v2 record batches (magic 2), the one place that knows their layout: header parsing and
//! writing, records and zig-zag varints read and written, validation of a Produce request's
//! records, the in-place rewrites the broker makes (base offset, leader epoch, LogAppendTime) and
//! transaction markers. The broker's log and the client both build on it.

use bytes::BufMut;

/// Size of the v2 batch header in bytes.
pub const HEADER_SIZE: usize = 61;
/// Offset of the CRC field.
pub const CRC_AT: usize = 17;
/// Offset of the attributes field (the CRC covers from here to the end).
pub const ATTRIBUTES_AT: usize = 21;
/// Attribute bit: timestamps are LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit: a control batch (transaction marker).
pub const ATTR_CONTROL: i16 = 0x20;

/// Errors found in record batches.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The bytes end inside a batch.
    #[error("record batch truncated")]
    Truncated,
    /// The CRC-32C does not match.
    #[error("record batch CRC-32C mismatch")]
    CorruptCrc,
    /// Not a v2 batch.
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// A batch length that cannot be right.
    #[error("invalid record batch length {0}")]
    InvalidLength(i32),
    /// Record count inconsistent with the offset delta, or zero.
    #[error("invalid record count")]
    InvalidRecordCount,
}

/// The fixed header of a v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Leader epoch when written.
    pub partition_leader_epoch: i32,
    /// Format version (2).
    pub magic: i8,
    /// CRC-32C of attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Last offset minus base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Producer id, -1 if none.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Sequence of the first record.
    pub base_sequence: i32,
    /// Number of records.
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// The header of a new batch of `records_count` records: base offset 0 (the log assigns
    /// offsets), no leader epoch, no producer, no compression; length and CRC are filled in by
    /// [`finish_batch`].
    pub fn new(records_count: i32, base_timestamp: i64, max_timestamp: i64) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records_count - 1,
            base_timestamp,
            max_timestamp,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records_count,
        }
    }

    /// Writes the header's 61 bytes.
    pub fn put(&self, out: &mut impl BufMut) {
        out.put_i64(self.base_offset);
        out.put_i32(self.batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(self.magic);
        out.put_u32(self.crc);
        out.put_i16(self.attributes);
        out.put_i32(self.last_offset_delta);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.records_count);
    }

    /// Parses the header at the start of `buf` (no CRC check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < 17 {
            return Err(BatchError::Truncated);
        }
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Truncated);
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            partition_leader_epoch: be_i32(buf, 12),
            magic,
            crc: be_i32(buf, CRC_AT) as u32,
            attributes: be_i16(buf, ATTRIBUTES_AT),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, 35),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Last offset in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The offset after the batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Whole size of the batch in bytes.
    pub fn size_bytes(&self) -> usize {
        self.batch_length as usize + 12
    }

    /// Whether the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// Whether the batch is a control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// Whether timestamps are LogAppendTime.
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// Whether the batch carries a producer id (idempotent or transactional producer).
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence of the last record, wrapping at i32::MAX like Kafka.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Adds `n` to a producer sequence, wrapping past i32::MAX to 0.
pub fn increment_sequence(seq: i32, n: i32) -> i32 {
    if seq > i32::MAX - n {
        n - (i32::MAX - seq) - 1
    } else {
        seq + n
    }
}

/// CRC-32C of a whole batch's covered bytes (attributes to the end).
pub fn crc32c_of(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_AT..])
}

/// Fills in the length and the CRC of a batch written whole (header, then records).
pub fn finish_batch(batch: &mut [u8]) {
    let len = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c_of(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Checks one batch at the start of `buf` fully (length, magic, CRC, count); returns its header.
pub fn check_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    if buf.len() < 12 {
        return Err(BatchError::Truncated);
    }
    let len = be_i32(buf, 8);
    if len < (HEADER_SIZE - 12) as i32 {
        return Err(BatchError::InvalidLength(len));
    }
    let h = BatchHeader::parse(buf)?;
    if buf.len() < h.size_bytes() {
        return Err(BatchError::Truncated);
    }
    if crc32c_of(&buf[..h.size_bytes()]) != h.crc {
        return Err(BatchError::CorruptCrc);
    }
    if h.records_count < 0 || h.last_offset_delta < 0 {
        return Err(BatchError::InvalidRecordCount);
    }
    Ok(h)
}

/// Splits a Produce request's records into whole, valid batches.
pub fn validate_batches(records: &[u8]) -> Result<Vec<BatchHeader>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let h = check_batch(&records[pos..])?;
        if h.records_count == 0 || h.records_count != h.last_offset_delta + 1 {
            return Err(BatchError::InvalidRecordCount);
        }
        pos += h.size_bytes();
        out.push(h);
    }
    Ok(out)
}

/// Rewrites the base offset (not covered by the CRC).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    batch[0..8].copy_from_slice(&offset.to_be_bytes());
}

/// Rewrites the partition leader epoch (not covered by the CRC).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch LogAppendTime with `ts_ms` as its max timestamp and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], ts_ms: i64) {
    let attrs = be_i16(batch, ATTRIBUTES_AT) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&ts_ms.to_be_bytes());
    let crc = crc32c_of(batch);
    batch[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads a zigzag varint at `pos`, advancing it.
pub fn read_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    None
}

/// Appends a zig-zag varint (the record fields' encoding).
pub fn put_varint(out: &mut impl BufMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.put_u8((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.put_u8(z as u8);
}

/// How many bytes [`put_varint`] writes for `v`.
pub fn varint_len(v: i64) -> usize {
    let z = ((v << 1) ^ (v >> 63)) as u64;
    (64 - (z | 1).leading_zeros() as usize).div_ceil(7)
}

/// Bytes of a varint-length-prefixed field (-1 for null).
fn field_len(b: Option<&[u8]>) -> usize {
    match b {
        None => varint_len(-1),
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

fn put_field(out: &mut impl BufMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i64);
            out.put_slice(b);
        }
    }
}

/// Appends one record (length, attributes, timestamp and offset deltas, key, value, headers
/// in their order, repeated keys kept) without an intermediate buffer.
pub fn put_record<'a>(
    out: &mut impl BufMut,
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&'a [u8], Option<&'a [u8]>)],
) {
    let mut len = 1
        + varint_len(timestamp_delta)
        + varint_len(offset_delta)
        + field_len(key)
        + field_len(value)
        + varint_len(headers.len() as i64);
    for (k, v) in headers {
        len += field_len(Some(k)) + field_len(*v);
    }
    put_varint(out, len as i64);
    out.put_i8(0);
    put_varint(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_field(out, key);
    put_field(out, value);
    put_varint(out, headers.len() as i64);
    for (k, v) in headers {
        put_field(out, Some(k));
        put_field(out, *v);
    }
}

/// One record read from a batch's (decompressed) records; the fields are ranges of the
/// buffer it was read from, so a caller holding shared bytes can slice them without a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    /// Timestamp minus the batch's base timestamp.
    pub timestamp_delta: i64,
    /// Offset minus the batch's base offset.
    pub offset_delta: i64,
    /// The key, `None` when null.
    pub key: Option<std::ops::Range<usize>>,
    /// The value, `None` when null.
    pub value: Option<std::ops::Range<usize>>,
    /// Header keys and values, in order.
    pub headers: Vec<(std::ops::Range<usize>, Option<std::ops::Range<usize>>)>,
}

fn read_field(buf: &[u8], pos: &mut usize, end: usize) -> Option<Option<std::ops::Range<usize>>> {
    let len = read_varint(buf, pos)?;
    if len < 0 {
        return Some(None);
    }
    let start = *pos;
    let stop = start.checked_add(usize::try_from(len).ok()?)?;
    if stop > end {
        return None;
    }
    *pos = stop;
    Some(Some(start..stop))
}

/// Reads the record at `pos`, advancing past it; `None` when it is malformed or runs past
/// the buffer.
pub fn read_record(buf: &[u8], pos: &mut usize) -> Option<RecordView> {
    let len = usize::try_from(read_varint(buf, pos)?).ok()?;
    let end = pos.checked_add(len)?;
    if end > buf.len() || len == 0 {
        return None;
    }
    let mut p = *pos + 1; // attributes
    let timestamp_delta = read_varint(&buf[..end], &mut p)?;
    let offset_delta = read_varint(&buf[..end], &mut p)?;
    let key = read_field(buf, &mut p, end)?;
    let value = read_field(buf, &mut p, end)?;
    let n = read_varint(&buf[..end], &mut p)?;
    let mut headers = Vec::with_capacity(n.clamp(0, 64) as usize);
    for _ in 0..n.max(0) {
        let k = read_field(buf, &mut p, end)?.unwrap_or(p..p);
        let v = read_field(buf, &mut p, end)?;
        headers.push((k, v));
    }
    *pos = end;
    Some(RecordView {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// A record for [`build_batch`]: key, value, timestamp.
pub type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Builds an uncompressed batch of records without headers, leader epoch 0, for tests and
/// tools.
pub fn build_batch(
    base_offset: i64,
    records: &[SimpleRecord<'_>],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let base_ts = records.first().map(|r| r.2).unwrap_or(0);
    let max_ts = records.iter().map(|r| r.2).max().unwrap_or(0);
    let mut b = Vec::new();
    BatchHeader {
        base_offset,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        base_sequence,
        ..BatchHeader::new(records.len() as i32, base_ts, max_ts)
    }
    .put(&mut b);
    for (i, (k, v, ts)) in records.iter().enumerate() {
        put_record(&mut b, ts - base_ts, i as i64, *k, *v, &[]);
    }
    finish_batch(&mut b);
    b
}

/// Control record type of a transaction abort marker.
pub const CONTROL_ABORT: i16 = 0;
/// Control record type of a transaction commit marker.
pub const CONTROL_COMMIT: i16 = 1;

/// Builds a transaction marker: a control batch (transactional and control bits set) holding
/// one control record with key (version 0, type) and value (version 0, coordinator epoch), as
/// Kafka's EndTransactionMarker. Its base offset is 0 until the log assigns one.
pub fn build_control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&kind.to_be_bytes());
    let mut value = [0u8; 6];
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    let mut b = Vec::with_capacity(HEADER_SIZE + 24);
    BatchHeader {
        attributes: ATTR_TRANSACTIONAL | ATTR_CONTROL,
        producer_id,
        producer_epoch,
        ..BatchHeader::new(1, timestamp, timestamp)
    }
    .put(&mut b);
    put_record(&mut b, 0, 0, Some(&key), Some(&value), &[]);
    finish_batch(&mut b);
    b
}

/// What a control batch's first record says: its type and, for a transaction marker, the
/// epoch of the coordinator that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMarker {
    /// CONTROL_ABORT, CONTROL_COMMIT, or another control type.
    pub kind: i16,
    /// The value's coordinator epoch (Kafka's EndTransactionMarker); -1 when the value is
    /// missing or too short.
    pub coordinator_epoch: i32,
}

/// Reads the first record of an uncompressed control batch; None when the bytes are not one
/// or its key is unreadable.
pub fn control_marker(batch: &[u8]) -> Option<ControlMarker> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() || h.compression() != 0 || batch.len() < HEADER_SIZE {
        return None;
    }
    let end = h.size_bytes().min(batch.len());
    let mut pos = HEADER_SIZE;
    let r = read_record(&batch[..end], &mut pos)?;
    let key = &batch[r.key?];
    if key.len() < 4 {
        return None;
    }
    let coordinator_epoch = r
        .value
        .map(|v| &batch[v])
        .filter(|v| v.len() >= 6)
        .map_or(-1, |v| i32::from_be_bytes([v[2], v[3], v[4], v[5]]));
    Some(ControlMarker {
        kind: be_i16(key, 2),
        coordinator_epoch,
    })
}

/// (offset, timestamp) of every record in an uncompressed batch; None if compressed or malformed.
pub fn record_timestamps(batch: &[u8]) -> Option<Vec<(i64, i64)>> {
    let h = BatchHeader::parse(batch).ok()?;
    if h.compression() != 0 {
        return None;
    }
    let end = h.size_bytes().min(batch.len());
    let mut pos = HEADER_SIZE;
    let mut out = Vec::with_capacity(h.records_count.max(0) as usize);
    for _ in 0..h.records_count {
        let len = read_varint(batch, &mut pos)?;
        let start = pos;
        pos += 1; // attributes
        let ts_delta = read_varint(batch, &mut pos)?;
        let off_delta = read_varint(batch, &mut pos)?;
        let ts = if h.timestamp_type_log_append() {
            h.max_timestamp
        } else {
            h.base_timestamp + ts_delta
        };
        out.push((h.base_offset + off_delta, ts));
        pos = start.checked_add(usize::try_from(len).ok()?)?;
        if pos > end {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_batches_round_trip() {
        for commit in [true, false] {
            let b = build_control_batch(42, 3, commit, 7, 1000);
            let h = check_batch(&b).expect("valid CRC and sizes");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.records_count),
                (42, 3, 1)
            );
            let want = if commit {
                CONTROL_COMMIT
            } else {
                CONTROL_ABORT
            };
            assert_eq!(
                control_marker(&b),
                Some(ControlMarker {
                    kind: want,
                    coordinator_epoch: 7
                })
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        let b = build_batch(
            5,
            &[(Some(b"k"), Some(b"v"), 10), (None, Some(b"w"), 12)],
            7,
            1,
            3,
        );
        let hs = validate_batches(&b).unwrap();
        assert_eq!(hs.len(), 1);
        let h = hs[0];
        assert_eq!((h.base_offset, h.last_offset(), h.records_count), (5, 6, 2));
        assert_eq!(
            (
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.last_sequence()
            ),
            (7, 1, 3, 4)
        );
        assert_eq!((h.base_timestamp, h.max_timestamp), (10, 12));
        assert_eq!(record_timestamps(&b).unwrap(), vec![(5, 10), (6, 12)]);
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert_eq!(validate_batches(&two).unwrap().len(), 2);
        for cut in 1..b.len() {
            assert!(validate_batches(&b[..cut]).is_err(), "cut {cut}");
        }
        let mut bad = b.clone();
        let n = bad.len() - 1;
        bad[n] ^= 1;
        assert_eq!(validate_batches(&bad), Err(BatchError::CorruptCrc));
        let mut m = b.clone();
        m[16] = 1;
        assert_eq!(validate_batches(&m), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn rewrites_keep_crc_valid() {
        let mut b = build_batch(0, &[(None, Some(b"v"), 10)], -1, -1, -1);
        set_base_offset(&mut b, 99);
        set_partition_leader_epoch(&mut b, 4);
        set_log_append_time(&mut b, 12345);
        let h = check_batch(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.max_timestamp),
            (99, 4, 12345)
        );
        assert!(h.timestamp_type_log_append());
        assert_eq!(record_timestamps(&b).unwrap(), vec![(99, 12345)]);
    }

    #[test]
    fn sequence_wraps() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 2), 7);
    }

    #[test]
    fn varints_round_trip_with_their_length() {
        for v in [
            0,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -301,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            let mut pos = 0;
            assert_eq!(read_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        // Kafka's own vector: 300 zig-zags to 600, encoded as 0xd8 0x04.
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xd8, 0x04]);
        assert_eq!(read_varint(&[0xff; 11], &mut 0), None, "more than 10 bytes");
    }

    #[test]
    fn records_round_trip_with_repeated_headers() {
        let mut b = Vec::new();
        let hs: [(&[u8], Option<&[u8]>); 3] = [(b"a", Some(b"1")), (b"a", None), (b"", Some(b""))];
        put_record(&mut b, 5, 2, None, Some(b"value"), &hs);
        put_record(&mut b, -3, 3, Some(b"k"), None, &[]);
        let mut pos = 0;
        let r = read_record(&b, &mut pos).unwrap();
        assert_eq!(
            (r.timestamp_delta, r.offset_delta, r.key.clone()),
            (5, 2, None)
        );
        assert_eq!(&b[r.value.clone().unwrap()], b"value");
        let got: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (&b[k.clone()], v.clone().map(|v| &b[v])))
            .collect();
        assert_eq!(got, hs.to_vec());
        let r2 = read_record(&b, &mut pos).unwrap();
        assert_eq!(
            (r2.timestamp_delta, r2.offset_delta, r2.value),
            (-3, 3, None)
        );
        assert_eq!(&b[r2.key.unwrap()], b"k");
        assert_eq!(pos, b.len());
        for cut in 0..b.len() - 1 {
            let mut p = 0;
            let first = read_record(&b[..cut], &mut p);
            assert!(first.is_none() || p <= cut, "cut {cut}");
        }
        // A key length that runs past its record is refused.
        let mut bad = Vec::new();
        put_varint(&mut bad, 4);
        bad.extend_from_slice(&[0, 0, 0, 40]);
        assert_eq!(read_record(&bad, &mut 0), None);
    }
}
