//! Kafka v2 record batches (magic 2): header parsing, validation of a Produce request's records,
//! and the in-place rewrites the broker makes (base offset, leader epoch, LogAppendTime).

/// Size of the v2 batch header in bytes.
pub const HEADER_SIZE: usize = 61;
/// Offset of the CRC field.
const CRC_AT: usize = 17;
/// Offset of the attributes field (the CRC covers from here to the end).
const ATTRIBUTES_AT: usize = 21;

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
        self.attributes & 0x10 != 0
    }

    /// Whether the batch is a control batch (transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    /// Whether timestamps are LogAppendTime.
    pub fn timestamp_type_log_append(&self) -> bool {
        self.attributes & 0x08 != 0
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
    let attrs = be_i16(batch, ATTRIBUTES_AT) | 0x08;
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
pub fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
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
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(
        &(if commit {
            CONTROL_COMMIT
        } else {
            CONTROL_ABORT
        })
        .to_be_bytes(),
    );
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut rec = vec![0u8];
    put_varint(&mut rec, 0);
    put_varint(&mut rec, 0);
    put_varint(&mut rec, key.len() as i64);
    rec.extend_from_slice(&key);
    put_varint(&mut rec, value.len() as i64);
    rec.extend_from_slice(&value);
    put_varint(&mut rec, 0);
    let mut body = Vec::new();
    put_varint(&mut body, rec.len() as i64);
    body.extend_from_slice(&rec);
    let mut b = Vec::with_capacity(HEADER_SIZE + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_SIZE - 12 + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0x30i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c_of(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The control type (CONTROL_ABORT or CONTROL_COMMIT) of a control batch's first record; None
/// when the bytes are not an uncompressed control batch with a readable key.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() || h.compression() != 0 || batch.len() < HEADER_SIZE {
        return None;
    }
    let mut pos = HEADER_SIZE;
    let _len = read_varint(batch, &mut pos)?;
    pos += 1; // attributes
    read_varint(batch, &mut pos)?; // timestamp delta
    read_varint(batch, &mut pos)?; // offset delta
    let key_len = read_varint(batch, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = batch.get(pos..pos + 4)?;
    Some(be_i16(key, 2))
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
            assert_eq!(control_type(&b), Some(want));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::build_batch;

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
}
