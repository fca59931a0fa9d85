//! The records of `__consumer_offsets`, in Apache Kafka's layout so that its tools can read them:
//! keys of version 0/1 are offset commits (group, topic, partition) and keys of version 2 are
//! group metadata (group); versions 3 to 8 are KIP-848 consumer groups (their values in
//! [`super::consumer_records`]); a record with a null value is a tombstone. Values written here
//! are OffsetCommitValue v3 and GroupMetadataValue v3.

use bytes::{BufMut, Bytes, BytesMut};

/// Key version of an offset commit record (Kafka writes 1).
const OFFSET_KEY_VERSION: i16 = 1;
/// Key version of a group metadata record.
const GROUP_KEY_VERSION: i16 = 2;
/// Value version written for offset commits.
const OFFSET_VALUE_VERSION: i16 = 3;
/// Value version written for group metadata.
const GROUP_VALUE_VERSION: i16 = 3;

/// What a `__consumer_offsets` key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    /// A committed offset of (group, topic, partition).
    Offset {
        /// Group id.
        group: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A group's membership and generation.
    Group {
        /// Group id.
        group: String,
    },
    /// A consumer group's epoch (key version 3).
    ConsumerGroup {
        /// Group id.
        group: String,
    },
    /// A consumer group's subscription metadata (key version 4; read and ignored).
    ConsumerPartitionMetadata {
        /// Group id.
        group: String,
    },
    /// A consumer group member's metadata (key version 5).
    ConsumerMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A consumer group's target assignment epoch (key version 6).
    ConsumerTarget {
        /// Group id.
        group: String,
    },
    /// A member's target assignment (key version 7).
    ConsumerTargetMember {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
    /// A member's current assignment and epochs (key version 8).
    ConsumerAssignment {
        /// Group id.
        group: String,
        /// Member id.
        member: String,
    },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the committed record, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: String,
    /// When the commit was made.
    pub commit_timestamp: i64,
    /// Explicit expiry (OffsetCommit v2-v4 retention), if any.
    pub expire_timestamp: Option<i64>,
}

/// One member in a stored group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Metadata of the selected protocol.
    pub subscription: Bytes,
    /// The member's assignment.
    pub assignment: Bytes,
}

/// A group's state as stored after each rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// Protocol type ("consumer", "connect", ...).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// Selected protocol.
    pub protocol: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state.
    pub current_state_timestamp: i64,
    /// Members.
    pub members: Vec<StoredMember>,
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// Encodes a key.
pub fn encode_key(key: &RecordKey) -> Bytes {
    let mut b = BytesMut::new();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            b.put_i16(OFFSET_KEY_VERSION);
            put_str(&mut b, group);
            put_str(&mut b, topic);
            b.put_i32(*partition);
        }
        RecordKey::Group { group } => {
            b.put_i16(GROUP_KEY_VERSION);
            put_str(&mut b, group);
        }
        RecordKey::ConsumerGroup { group } => {
            b.put_i16(3);
            put_str(&mut b, group);
        }
        RecordKey::ConsumerPartitionMetadata { group } => {
            b.put_i16(4);
            put_str(&mut b, group);
        }
        RecordKey::ConsumerMember { group, member } => {
            b.put_i16(5);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
        RecordKey::ConsumerTarget { group } => {
            b.put_i16(6);
            put_str(&mut b, group);
        }
        RecordKey::ConsumerTargetMember { group, member } => {
            b.put_i16(7);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
        RecordKey::ConsumerAssignment { group, member } => {
            b.put_i16(8);
            put_str(&mut b, group);
            put_str(&mut b, member);
        }
    }
    b.freeze()
}

/// Encodes an offset commit value.
pub fn encode_offset(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    if let Some(expire) = v.expire_timestamp {
        // Version 1 is the only one that carries an explicit expiry.
        b.put_i16(1);
        b.put_i64(v.offset);
        put_str(&mut b, &v.metadata);
        b.put_i64(v.commit_timestamp);
        b.put_i64(expire);
    } else {
        b.put_i16(OFFSET_VALUE_VERSION);
        b.put_i64(v.offset);
        b.put_i32(v.leader_epoch);
        put_str(&mut b, &v.metadata);
        b.put_i64(v.commit_timestamp);
    }
    b.freeze()
}

/// Encodes a group metadata value.
pub fn encode_group(v: &GroupValue) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(GROUP_VALUE_VERSION);
    put_str(&mut b, &v.protocol_type);
    b.put_i32(v.generation);
    put_nullable_str(&mut b, v.protocol.as_deref());
    put_nullable_str(&mut b, v.leader.as_deref());
    b.put_i64(v.current_state_timestamp);
    b.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_str(&mut b, &m.member_id);
        put_nullable_str(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b.freeze()
}

/// A bounds-checked reader over a record key or value (the flexible encoding's reads are added
/// in [`super::consumer_records`]).
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub(super) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }
    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(super) fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    pub(super) fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn nullable_str(&mut self) -> Option<Option<String>> {
        let n = self.i16()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(
            String::from_utf8_lossy(self.take(n as usize)?).into_owned(),
        ))
    }
    fn str(&mut self) -> Option<String> {
        self.nullable_str().map(Option::unwrap_or_default)
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let n = self.i32()?;
        if n < 0 {
            return Some(Bytes::new());
        }
        Some(Bytes::copy_from_slice(self.take(n as usize)?))
    }
}

/// Decodes a key; `None` for a key this version does not know.
pub fn decode_key(buf: &[u8]) -> Option<RecordKey> {
    let mut r = Reader { buf, pos: 0 };
    match r.i16()? {
        0 | 1 => Some(RecordKey::Offset {
            group: r.str()?,
            topic: r.str()?,
            partition: r.i32()?,
        }),
        2 => Some(RecordKey::Group { group: r.str()? }),
        3 => Some(RecordKey::ConsumerGroup { group: r.str()? }),
        4 => Some(RecordKey::ConsumerPartitionMetadata { group: r.str()? }),
        5 => Some(RecordKey::ConsumerMember {
            group: r.str()?,
            member: r.str()?,
        }),
        6 => Some(RecordKey::ConsumerTarget { group: r.str()? }),
        7 => Some(RecordKey::ConsumerTargetMember {
            group: r.str()?,
            member: r.str()?,
        }),
        8 => Some(RecordKey::ConsumerAssignment {
            group: r.str()?,
            member: r.str()?,
        }),
        _ => None,
    }
}

/// Decodes an offset commit value of versions 0 to 3.
pub fn decode_offset(buf: &[u8]) -> Option<OffsetValue> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.str()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { Some(r.i64()?) } else { None };
    if version > 3 {
        return None;
    }
    Some(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

/// Decodes a group metadata value of versions 0 to 3.
pub fn decode_group(buf: &[u8]) -> Option<GroupValue> {
    let mut r = Reader { buf, pos: 0 };
    let version = r.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = r.str()?;
    let generation = r.i32()?;
    let protocol = r.nullable_str()?;
    let leader = r.nullable_str()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let n = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..n.max(0) {
        let member_id = r.str()?;
        let group_instance_id = if version >= 3 {
            r.nullable_str()?
        } else {
            None
        };
        let client_id = r.str()?;
        let client_host = r.str()?;
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Some(GroupValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition that owns a group: `abs(hash) % partitions`, with Kafka's
/// `Utils.abs` (which maps `i32::MIN` to 0).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let h = java_string_hash(group);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_known_values() {
        // "hello".hashCode() == 99162322 and "".hashCode() == 0 in Java.
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash(""), 0);
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE: Utils.abs maps it to 0.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
    }

    #[test]
    fn keys_and_values_round_trip() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
        let k = RecordKey::Group { group: "g".into() };
        assert_eq!(decode_key(&encode_key(&k)), Some(k));
        for expire in [None, Some(99)] {
            let v = OffsetValue {
                offset: 42,
                leader_epoch: if expire.is_some() { -1 } else { 7 },
                metadata: "meta".into(),
                commit_timestamp: 1234,
                expire_timestamp: expire,
            };
            assert_eq!(decode_offset(&encode_offset(&v)), Some(v));
        }
        let g = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 77,
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300000,
                session_timeout_ms: 45000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group(&encode_group(&g)), Some(g));
        // Truncated input is refused, not a panic.
        let enc = encode_group(&GroupValue {
            protocol_type: "consumer".into(),
            generation: 1,
            protocol: None,
            leader: None,
            current_state_timestamp: 0,
            members: vec![],
        });
        for cut in 0..enc.len() {
            assert_eq!(decode_group(&enc[..cut]), None);
        }
    }
}
