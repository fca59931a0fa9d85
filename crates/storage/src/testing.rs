//! Builders for tests (here and in the broker's tests): uncompressed v2 record batches with a
//! valid CRC.

use crate::batch::put_varint;

/// A test record: key, value, timestamp.
pub type TestRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>, i64);

/// Builds an uncompressed v2 batch of (key, value, timestamp) records without headers.
pub fn build_batch(
    base_offset: i64,
    records: &[TestRecord<'_>],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Vec<u8> {
    let base_ts = records.first().map(|r| r.2).unwrap_or(0);
    let max_ts = records.iter().map(|r| r.2).max().unwrap_or(0);
    let mut body = Vec::new();
    for (i, (k, v, ts)) in records.iter().enumerate() {
        let mut rec = vec![0u8];
        put_varint(&mut rec, ts - base_ts);
        put_varint(&mut rec, i as i64);
        match k {
            Some(k) => {
                put_varint(&mut rec, k.len() as i64);
                rec.extend_from_slice(k);
            }
            None => put_varint(&mut rec, -1),
        }
        match v {
            Some(v) => {
                put_varint(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => put_varint(&mut rec, -1),
        }
        put_varint(&mut rec, 0);
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut b = Vec::with_capacity(61 + body.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((49 + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crate::batch::crc32c_of(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}
