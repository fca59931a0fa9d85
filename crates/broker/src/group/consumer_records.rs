//! KIP-848 consumer groups in `__consumer_offsets`, in Apache Kafka's layout: key version 3
//! holds the group epoch, 5 a member's metadata, 6 the target assignment's epoch, 7 a member's
//! target assignment and 8 a member's current assignment (epochs, state, partitions); values are
//! flexible version 0 (compact strings and arrays, tagged fields). A group's records are derived
//! from its state ([`records_of`]); the coordinator appends only those that changed since the
//! last write, with tombstones for members gone, and rebuilds the group from them
//! ([`GroupBuilder`]) when it loads the partition.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::{Assignment, ConsumerGroup, ConsumerMember, MemberState, ASSIGNORS};
use super::records::{encode_key, Reader, RecordKey};

/// A member's metadata (ConsumerGroupMemberMetadataValue v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_names: Vec<String>,
    /// Subscribed topic regex.
    pub subscribed_regex: Option<String>,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Requested server assignor.
    pub server_assignor: Option<String>,
}

/// A member's current assignment (ConsumerGroupCurrentMemberAssignmentValue v0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    /// Member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump.
    pub previous_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions owned.
    pub assigned: Assignment,
    /// Partitions to give up.
    pub pending_revocation: Assignment,
}

/// Kafka's byte for a member state.
fn state_byte(s: MemberState) -> i8 {
    match s {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

fn state_of(b: i8) -> MemberState {
    match b {
        1 => MemberState::UnrevokedPartitions,
        2 => MemberState::UnreleasedPartitions,
        _ => MemberState::Stable,
    }
}

// ---------------------------------------------------------------- flexible encoding

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: &str) {
    put_uvarint(b, s.len() as u64 + 1);
    b.put_slice(s.as_bytes());
}

fn put_compact_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_compact_str(b, s),
        None => put_uvarint(b, 0),
    }
}

/// No tagged fields.
fn put_no_tags(b: &mut BytesMut) {
    put_uvarint(b, 0);
}

fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    put_uvarint(b, a.len() as u64 + 1);
    for (topic, partitions) in a {
        b.put_slice(topic.as_bytes());
        put_uvarint(b, partitions.len() as u64 + 1);
        for p in partitions {
            b.put_i32(*p);
        }
        put_no_tags(b);
    }
}

/// A value: version 0, the fields, then no tagged fields.
fn value(fields: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    fields(&mut b);
    put_no_tags(&mut b);
    b.freeze()
}

/// The flexible encoding's reads, on the records' reader.
impl Reader<'_> {
    fn i8(&mut self) -> Option<i8> {
        Some(self.take(1)?[0] as i8)
    }
    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    /// A compact length: None for null (0), else the length.
    fn compact_len(&mut self) -> Option<Option<usize>> {
        let n = self.uvarint()?;
        Some(if n == 0 { None } else { Some((n - 1) as usize) })
    }
    fn compact_nullable_str(&mut self) -> Option<Option<String>> {
        match self.compact_len()? {
            None => Some(None),
            Some(n) => Some(Some(String::from_utf8_lossy(self.take(n)?).into_owned())),
        }
    }
    fn compact_str(&mut self) -> Option<String> {
        self.compact_nullable_str().map(Option::unwrap_or_default)
    }
    fn skip_tags(&mut self) -> Option<()> {
        for _ in 0..self.uvarint()? {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Some(())
    }
    fn assignment(&mut self) -> Option<Assignment> {
        let mut out = Assignment::new();
        for _ in 0..self.compact_len()?.unwrap_or(0) {
            let topic = Uuid::from_slice(self.take(16)?).ok()?;
            let mut partitions = BTreeSet::new();
            for _ in 0..self.compact_len()?.unwrap_or(0) {
                partitions.insert(self.i32()?);
            }
            self.skip_tags()?;
            out.insert(topic, partitions);
        }
        Some(out)
    }
    /// The version prefix of a value: only version 0 is known.
    fn version_zero(&mut self) -> Option<()> {
        (self.i16()? == 0).then_some(())
    }
}

// ---------------------------------------------------------------- keys and values

/// Every record of a consumer group's state: key → value.
pub fn records_of(group: &str, ng: &ConsumerGroup) -> BTreeMap<Bytes, Bytes> {
    let mut out = BTreeMap::new();
    let g = || group.to_string();
    out.insert(
        encode_key(&RecordKey::ConsumerGroup { group: g() }),
        value(|b| b.put_i32(ng.group_epoch)),
    );
    out.insert(
        encode_key(&RecordKey::ConsumerTarget { group: g() }),
        value(|b| b.put_i32(ng.assignment_epoch)),
    );
    for (id, m) in &ng.members {
        out.insert(
            encode_key(&RecordKey::ConsumerMember {
                group: g(),
                member: id.clone(),
            }),
            value(|b| {
                put_compact_nullable_str(b, m.instance_id.as_deref());
                put_compact_nullable_str(b, m.rack_id.as_deref());
                put_compact_str(b, &m.client_id);
                put_compact_str(b, &m.client_host);
                put_uvarint(b, m.subscribed_names.len() as u64 + 1);
                for n in &m.subscribed_names {
                    put_compact_str(b, n);
                }
                put_compact_nullable_str(b, m.subscribed_regex.as_deref());
                b.put_i32(m.rebalance_timeout_ms);
                put_compact_nullable_str(b, m.server_assignor.as_deref());
            }),
        );
        out.insert(
            encode_key(&RecordKey::ConsumerAssignment {
                group: g(),
                member: id.clone(),
            }),
            value(|b| {
                b.put_i32(m.member_epoch);
                b.put_i32(m.previous_epoch);
                b.put_i8(state_byte(m.state));
                put_assignment(b, &m.assigned);
                put_assignment(b, &m.pending_revocation);
            }),
        );
    }
    for (id, target) in &ng.target {
        out.insert(
            encode_key(&RecordKey::ConsumerTargetMember {
                group: g(),
                member: id.clone(),
            }),
            value(|b| put_assignment(b, target)),
        );
    }
    out
}

fn decode_epoch(buf: &[u8]) -> Option<i32> {
    let mut r = Reader::new(buf);
    r.version_zero()?;
    r.i32()
}

fn decode_member(buf: &[u8]) -> Option<MemberMetadata> {
    let mut r = Reader::new(buf);
    r.version_zero()?;
    let instance_id = r.compact_nullable_str()?;
    let rack_id = r.compact_nullable_str()?;
    let client_id = r.compact_str()?;
    let client_host = r.compact_str()?;
    let mut subscribed_names = Vec::new();
    for _ in 0..r.compact_len()?.unwrap_or(0) {
        subscribed_names.push(r.compact_str()?);
    }
    Some(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_names,
        subscribed_regex: r.compact_nullable_str()?,
        rebalance_timeout_ms: r.i32()?,
        server_assignor: r.compact_nullable_str()?,
    })
}

fn decode_target(buf: &[u8]) -> Option<Assignment> {
    let mut r = Reader::new(buf);
    r.version_zero()?;
    r.assignment()
}

fn decode_current(buf: &[u8]) -> Option<CurrentAssignment> {
    let mut r = Reader::new(buf);
    r.version_zero()?;
    Some(CurrentAssignment {
        member_epoch: r.i32()?,
        previous_epoch: r.i32()?,
        state: state_of(r.i8()?),
        assigned: r.assignment()?,
        pending_revocation: r.assignment()?,
    })
}

/// One consumer group's records as a replay finds them (tombstones applied).
#[derive(Debug, Default)]
struct Replayed {
    epoch: Option<i32>,
    assignment_epoch: i32,
    members: BTreeMap<String, MemberMetadata>,
    targets: HashMap<String, Assignment>,
    current: HashMap<String, CurrentAssignment>,
}

/// Rebuilds consumer groups from the records of a `__consumer_offsets` replay.
#[derive(Debug, Default)]
pub struct GroupBuilder {
    groups: HashMap<String, Replayed>,
}

impl GroupBuilder {
    /// Applies one record; false when the key is not a consumer group's.
    pub fn apply(&mut self, key: &RecordKey, value: Option<&[u8]>) -> bool {
        match key {
            RecordKey::ConsumerGroup { group } => {
                let g = self.groups.entry(group.clone()).or_default();
                g.epoch = value.and_then(decode_epoch);
            }
            RecordKey::ConsumerTarget { group } => {
                let g = self.groups.entry(group.clone()).or_default();
                g.assignment_epoch = value.and_then(decode_epoch).unwrap_or(0);
            }
            RecordKey::ConsumerMember { group, member } => {
                let g = self.groups.entry(group.clone()).or_default();
                match value.and_then(decode_member) {
                    Some(m) => g.members.insert(member.clone(), m),
                    None => g.members.remove(member),
                };
            }
            RecordKey::ConsumerTargetMember { group, member } => {
                let g = self.groups.entry(group.clone()).or_default();
                match value.and_then(decode_target) {
                    Some(t) => g.targets.insert(member.clone(), t),
                    None => g.targets.remove(member),
                };
            }
            RecordKey::ConsumerAssignment { group, member } => {
                let g = self.groups.entry(group.clone()).or_default();
                match value.and_then(decode_current) {
                    Some(c) => g.current.insert(member.clone(), c),
                    None => g.current.remove(member),
                };
            }
            RecordKey::ConsumerPartitionMetadata { .. } => {}
            RecordKey::Offset { .. } | RecordKey::Group { .. } => return false,
        }
        true
    }

    /// The consumer groups that still exist, by id. Sessions start afresh from `now`
    /// (`session_ms`); a revocation in progress gets a new rebalance timeout.
    pub fn build(self, now: Instant, session_ms: i32) -> HashMap<String, ConsumerGroup> {
        let mut out = HashMap::new();
        for (id, g) in self.groups {
            let Some(epoch) = g.epoch else { continue };
            let mut ng = ConsumerGroup {
                group_epoch: epoch,
                assignment_epoch: g.assignment_epoch,
                ..Default::default()
            };
            for (member_id, meta) in g.members {
                let current = g.current.get(&member_id).cloned();
                let current = current.unwrap_or(CurrentAssignment {
                    member_epoch: 0,
                    previous_epoch: 0,
                    state: MemberState::Stable,
                    assigned: Assignment::new(),
                    pending_revocation: Assignment::new(),
                });
                let revocation_deadline = (!current.pending_revocation.is_empty())
                    .then(|| now + Duration::from_millis(meta.rebalance_timeout_ms.max(0) as u64));
                ng.members.insert(
                    member_id.clone(),
                    ConsumerMember {
                        id: member_id,
                        instance_id: meta.instance_id,
                        rack_id: meta.rack_id,
                        client_id: meta.client_id,
                        client_host: meta.client_host,
                        member_epoch: current.member_epoch,
                        previous_epoch: current.previous_epoch,
                        state: current.state,
                        rebalance_timeout_ms: meta.rebalance_timeout_ms,
                        subscribed_names: meta.subscribed_names,
                        subscribed_regex: meta.subscribed_regex,
                        server_assignor: meta.server_assignor,
                        assigned: current.assigned,
                        pending_revocation: current.pending_revocation,
                        session_deadline: now + Duration::from_millis(session_ms.max(0) as u64),
                        revocation_deadline,
                        left_static: current.member_epoch == -2,
                    },
                );
            }
            ng.assignor = ng
                .members
                .values()
                .find_map(|m| m.server_assignor.clone())
                .unwrap_or_else(|| ASSIGNORS[0].to_string());
            ng.target = g
                .targets
                .into_iter()
                .filter(|(m, _)| ng.members.contains_key(m))
                .collect();
            out.insert(id, ng);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::decode_key;
    use super::*;

    #[test]
    fn a_group_survives_its_records() {
        let topic = Uuid::new_v4();
        let mut ng = ConsumerGroup {
            group_epoch: 7,
            assignment_epoch: 6,
            ..Default::default()
        };
        let now = Instant::now();
        let member = ConsumerMember {
            id: "m1".into(),
            instance_id: Some("i1".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            member_epoch: 6,
            previous_epoch: 5,
            state: MemberState::UnrevokedPartitions,
            rebalance_timeout_ms: 30000,
            subscribed_names: vec!["a".into(), "b".into()],
            subscribed_regex: None,
            server_assignor: Some("range".into()),
            assigned: [(topic, [0, 2].into_iter().collect())]
                .into_iter()
                .collect(),
            pending_revocation: [(topic, [1].into_iter().collect())].into_iter().collect(),
            session_deadline: now,
            revocation_deadline: None,
            left_static: false,
        };
        ng.members.insert("m1".into(), member);
        ng.target.insert(
            "m1".into(),
            [(topic, [0, 2].into_iter().collect())]
                .into_iter()
                .collect(),
        );
        let records = records_of("g", &ng);
        assert_eq!(records.len(), 5);
        let mut b = GroupBuilder::default();
        for (k, v) in &records {
            let key = decode_key(k).expect("a known key");
            assert!(b.apply(&key, Some(v)));
        }
        let built = b.build(now, 45000);
        let back = &built["g"];
        assert_eq!(back.group_epoch, 7);
        assert_eq!(back.assignment_epoch, 6);
        assert_eq!(back.assignor, "range");
        let m = &back.members["m1"];
        assert_eq!((m.member_epoch, m.previous_epoch), (6, 5));
        assert_eq!(m.state, MemberState::UnrevokedPartitions);
        assert_eq!(m.assigned, ng.members["m1"].assigned);
        assert_eq!(m.pending_revocation, ng.members["m1"].pending_revocation);
        assert_eq!(m.subscribed_names, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(m.instance_id.as_deref(), Some("i1"));
        assert!(m.revocation_deadline.is_some());
        assert_eq!(back.target, ng.target);
        // Records of the same state are byte for byte the same (only changes are written).
        assert_eq!(records_of("g", back), records);

        // A member's tombstones remove it; the group stays.
        let mut b = GroupBuilder::default();
        for (k, v) in &records {
            b.apply(&decode_key(k).unwrap(), Some(v));
        }
        for k in records.keys() {
            let key = decode_key(k).unwrap();
            if matches!(
                key,
                RecordKey::ConsumerMember { .. }
                    | RecordKey::ConsumerAssignment { .. }
                    | RecordKey::ConsumerTargetMember { .. }
            ) {
                b.apply(&key, None);
            }
        }
        let built = b.build(now, 45000);
        assert!(built["g"].members.is_empty() && built["g"].target.is_empty());
    }
}
