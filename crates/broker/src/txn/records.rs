//! The records of `__transaction_state`, in the layout of Kafka's TransactionLogKey (version 0:
//! the transactional id) and TransactionLogValue version 0 (producer id and epoch, timeout,
//! status, partitions, last update and start times). A null value is a tombstone.

use bytes::{BufMut, Bytes, BytesMut};

/// A transaction's status, with Kafka's numeric ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// No transaction open.
    Empty = 0,
    /// Partitions have been added.
    Ongoing = 1,
    /// Commit decided; markers being written.
    PrepareCommit = 2,
    /// Abort decided; markers being written.
    PrepareAbort = 3,
    /// Committed.
    CompleteCommit = 4,
    /// Aborted.
    CompleteAbort = 5,
    /// Expired and removed.
    Dead = 6,
    /// Aborting to fence an older producer.
    PrepareEpochFence = 7,
}

impl TxnStatus {
    /// The status of a numeric id.
    pub fn from_id(id: i8) -> Option<TxnStatus> {
        use TxnStatus::*;
        Some(match id {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }

    /// The state name DescribeTransactions and ListTransactions use.
    pub fn name(self) -> &'static str {
        use TxnStatus::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// A transactional id's stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnValue {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Transaction timeout.
    pub timeout_ms: i32,
    /// Status.
    pub status: TxnStatus,
    /// Partitions of the open transaction.
    pub partitions: Vec<(String, Vec<i32>)>,
    /// Last update time.
    pub last_update_ms: i64,
    /// Start time of the open transaction (-1 when none).
    pub start_ms: i64,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// Encodes the key of a transactional id.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// Encodes a value.
pub fn encode_value(v: &TxnValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(v.producer_id);
    b.put_i16(v.producer_epoch);
    b.put_i32(v.timeout_ms);
    b.put_i8(v.status as i8);
    b.put_i32(v.partitions.len() as i32);
    for (topic, parts) in &v.partitions {
        put_str(&mut b, topic);
        b.put_i32(parts.len() as i32);
        for p in parts {
            b.put_i32(*p);
        }
    }
    b.put_i64(v.last_update_ms);
    b.put_i64(v.start_ms);
    b.freeze()
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.i16()?;
        if n < 0 {
            return Some(String::new());
        }
        Some(String::from_utf8_lossy(self.take(n as usize)?).into_owned())
    }
}

/// Decodes a key: the transactional id.
pub fn decode_key(buf: &[u8]) -> Option<String> {
    let mut r = Reader { buf, pos: 0 };
    (r.i16()? == 0).then_some(())?;
    r.str()
}

/// Decodes a value of version 0.
pub fn decode_value(buf: &[u8]) -> Option<TxnValue> {
    let mut r = Reader { buf, pos: 0 };
    if r.i16()? != 0 {
        return None;
    }
    let producer_id = r.i64()?;
    let producer_epoch = r.i16()?;
    let timeout_ms = r.i32()?;
    let status = TxnStatus::from_id(r.i8()?)?;
    let n = r.i32()?;
    if n < 0 || n as usize > buf.len() {
        return None;
    }
    let mut partitions = Vec::new();
    for _ in 0..n {
        let topic = r.str()?;
        let m = r.i32()?;
        if m < 0 || m as usize > buf.len() {
            return None;
        }
        let mut parts = Vec::new();
        for _ in 0..m {
            parts.push(r.i32()?);
        }
        partitions.push((topic, parts));
    }
    Some(TxnValue {
        producer_id,
        producer_epoch,
        timeout_ms,
        status,
        partitions,
        last_update_ms: r.i64()?,
        start_ms: r.i64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let v = TxnValue {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60000,
            status: TxnStatus::Ongoing,
            partitions: vec![("a".into(), vec![0, 2]), ("b".into(), vec![1])],
            last_update_ms: 10,
            start_ms: 5,
        };
        let enc = encode_value(&v);
        assert_eq!(decode_value(&enc), Some(v));
        for cut in 0..enc.len() {
            assert_eq!(decode_value(&enc[..cut]), None);
        }
        assert_eq!(decode_key(&encode_key("tx-1")).as_deref(), Some("tx-1"));
    }
}
