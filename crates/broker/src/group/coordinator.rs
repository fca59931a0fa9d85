//! The classic group coordinator: membership (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), the
//! rebalance state machine (Empty → PreparingRebalance → CompletingRebalance → Stable), static
//! membership (KIP-345), committed offsets, and the timers that evict silent members, end
//! rebalances and expire offsets. Every change that must survive a restart is appended to the
//! group's `__consumer_offsets` partition before it is acknowledged; [`GroupCoordinator::load`]
//! replays those partitions at start-up.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::consumer::{
    Assignment, ConsumerGroup, ConsumerMember, MemberState, TopicInfo, ASSIGNORS,
};
use super::records::{
    decode_group, decode_key, decode_offset, encode_group, encode_key, encode_offset,
    partition_for, GroupValue, OffsetValue, RecordKey, StoredMember,
};
use crate::broker::{now_ms, Broker};
use crate::internal_topics::{self, Shards};

/// Name of the internal topic holding groups and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// How often the coordinator's timers are checked.
pub const TICK: Duration = Duration::from_millis(100);

/// Error code of "no error".
const NONE: i16 = 0;

/// A classic group's state, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members (offsets only, or a group whose members all left).
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Joined; waiting for the leader's assignment.
    CompletingRebalance,
    /// Assigned and running.
    Stable,
    /// Removed.
    Dead,
}

impl GroupState {
    /// The state's name in DescribeGroups and ListGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The answer to a JoinGroup, before version-specific encoding.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    /// Error code.
    pub error: i16,
    /// Generation.
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// The leader should not compute an assignment (static leader rejoining, v9+).
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// Members and their metadata (for the leader only).
    pub members: Vec<JoinedMember>,
}

/// One member as the leader sees it in a JoinGroup response.
#[derive(Debug, Clone)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Metadata for the selected protocol.
    pub metadata: Bytes,
}

impl JoinResult {
    fn error(error: ResponseError, member_id: &str) -> JoinResult {
        JoinResult {
            error: error.code(),
            generation_id: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    /// Error code.
    pub error: i16,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The selected protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResult {
    /// An answer carrying only an error.
    pub fn error(error: ResponseError) -> SyncResult {
        SyncResult {
            error: error.code(),
            ..Default::default()
        }
    }
}

/// A JoinGroup request, decoded.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Group id.
    pub group_id: String,
    /// Member id ("" for a new member).
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client host ("/ip").
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocols in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+ without an instance id: a new member first gets MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// v9+: the coordinator may tell a static leader to skip the assignment.
    pub supports_skip_assignment: bool,
}

/// One partition's committed offset as a request gives it.
#[derive(Debug, Clone)]
pub struct OffsetCommitEntry {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch or -1.
    pub leader_epoch: i32,
    /// Metadata string.
    pub metadata: Option<String>,
}

/// Committed offsets by topic, then partition.
pub type OffsetsByTopic = Vec<(String, Vec<(i32, CommittedOffset)>)>;

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Offset (-1 when none).
    pub offset: i64,
    /// Leader epoch (-1 when unknown).
    pub leader_epoch: i32,
    /// Metadata string.
    pub metadata: String,
    /// An open transaction holds a newer offset for this partition.
    pub pending: bool,
}

impl CommittedOffset {
    /// No offset committed.
    pub fn none() -> CommittedOffset {
        CommittedOffset {
            offset: -1,
            leader_epoch: -1,
            metadata: String::new(),
            pending: false,
        }
    }
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata of the selected protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State.
    pub state: GroupState,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// Selected protocol ("" unless Stable/CompletingRebalance).
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A ConsumerGroupHeartbeat request, decoded.
#[derive(Debug, Clone)]
pub struct HeartbeatParams {
    /// Request version.
    pub version: i16,
    /// Group id.
    pub group_id: String,
    /// Member id ("" in v0 for a new member).
    pub member_id: String,
    /// Member epoch: 0 to join, -1 to leave, -2 for a static member leaving for a while.
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Rebalance timeout (-1: unchanged).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names (None: unchanged).
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscribed topic regex (None: unchanged; "": none).
    pub subscribed_topic_regex: Option<String>,
    /// Server assignor (None: unchanged).
    pub server_assignor: Option<String>,
    /// Partitions the member owns (None: unchanged).
    pub owned: Option<Assignment>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatOutcome {
    /// Error and message, if any.
    pub error: Option<(ResponseError, String)>,
    /// The member id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the request was a full one.
    pub assignment: Option<Assignment>,
}

/// A consumer-protocol group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone)]
pub struct ConsumerGroupDescription {
    /// State name.
    pub state: &'static str,
    /// Group epoch.
    pub group_epoch: i32,
    /// Assignment epoch.
    pub assignment_epoch: i32,
    /// Assignor name.
    pub assignor: String,
    /// Members.
    pub members: Vec<ConsumerMemberDescription>,
}

/// A member of a consumer-protocol group, described.
#[derive(Debug, Clone)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed topic regex.
    pub subscribed_topic_regex: Option<String>,
    /// Current assignment: (topic id, name, partitions).
    pub assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
    /// Target assignment.
    pub target_assignment: Vec<(uuid::Uuid, String, Vec<i32>)>,
}

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    rebalance_timeout_ms: i32,
    session_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<SyncResult>>,
    deadline: Instant,
    join_order: u64,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn fail_waiters(&mut self, error: ResponseError) {
        if let Some(tx) = self.join_waiter.take() {
            let _ = tx.send(JoinResult::error(error, &self.id));
        }
        if let Some(tx) = self.sync_waiter.take() {
            let _ = tx.send(SyncResult::error(error));
        }
    }
}

struct InitialDelay {
    deadline: Instant,
    remaining_ms: i64,
    new_member_joined: bool,
}

struct Group {
    id: String,
    state: GroupState,
    state_timestamp: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: HashMap<String, Member>,
    static_members: HashMap<String, String>,
    pending: HashMap<String, Instant>,
    rebalance_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
    offsets: BTreeMap<(String, i32), OffsetValue>,
    next_join_order: u64,
    /// Set when the group speaks the consumer protocol (KIP-848) rather than the classic one.
    next_gen: Option<ConsumerGroup>,
    /// Offsets committed in open transactions, by producer id: visible once committed.
    pending_txn: HashMap<i64, BTreeMap<(String, i32), OffsetValue>>,
    /// The consumer group's records as last written to `__consumer_offsets` (key → value).
    stored: BTreeMap<Bytes, Bytes>,
}

impl Group {
    fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            state_timestamp: now_ms(),
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: HashMap::new(),
            static_members: HashMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
            initial_delay: None,
            offsets: BTreeMap::new(),
            next_join_order: 0,
            next_gen: None,
            pending_txn: HashMap::new(),
            stored: BTreeMap::new(),
        }
    }

    fn transition(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp = now_ms();
    }

    /// Whether a joining member's protocols fit the group (Kafka's `supportsProtocols`).
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let mut candidates = self.candidate_protocols();
        candidates.retain(|c| protocols.iter().any(|(n, _)| n == c));
        !candidates.is_empty()
    }

    /// Protocols every member supports, in the oldest member's order of preference.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        let Some(first) = members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    /// Each member votes for its most preferred candidate; the most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        let max = votes.iter().map(|v| v.1).max()?;
        votes.into_iter().find(|v| v.1 == max).map(|v| v.0)
    }

    fn max_rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// FENCED_INSTANCE_ID when a static instance id is owned by another member id.
    fn fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        match instance_id.and_then(|i| self.static_members.get(i)) {
            Some(owner) => owner != member_id,
            None => false,
        }
    }

    fn leader_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        members
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                group_instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    fn current_join_result(&self, member_id: &str, include_members: bool) -> JoinResult {
        JoinResult {
            error: NONE,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if include_members {
                self.leader_members()
            } else {
                Vec::new()
            },
        }
    }

    /// Topics the members subscribe to (consumer protocol only), for OffsetDelete.
    fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(super::consumer_protocol::subscription_topics(
                &m.metadata_for(&protocol),
            )?);
        }
        Some(topics)
    }

    fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

/// Settings the coordinator takes from the broker configuration.
#[derive(Debug, Clone)]
struct Settings {
    partitions: i32,
    initial_delay_ms: i64,
    min_session_ms: i32,
    max_session_ms: i32,
    max_size: usize,
    metadata_max_bytes: usize,
    retention_ms: i64,
    retention_check_ms: i64,
    consumer_heartbeat_ms: i32,
    consumer_session_ms: i32,
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    settings: Settings,
    groups: Mutex<HashMap<String, Group>>,
    last_expiry_check: Mutex<i64>,
    /// The `__consumer_offsets` partitions this broker leads and has loaded.
    shards: Shards,
}

/// Checked offsets of a commit: per-entry error codes, the records to append, and the values to
/// apply once they are written.
type PreparedOffsets = (
    Vec<i16>,
    Vec<StoreRecord>,
    Vec<((String, i32), OffsetValue)>,
);

/// An offset committed in a transaction, waiting for its marker during a replay:
/// (group, (topic, partition), value).
type PendingOffset = (String, (String, i32), OffsetValue);

/// A record to append to `__consumer_offsets`: key and value (None: tombstone).
type StoreRecord = internal_topics::KeyValue;

impl GroupCoordinator {
    /// A coordinator configured from the broker's settings.
    pub fn new(config: &runnel_config::BrokerConfig) -> GroupCoordinator {
        GroupCoordinator {
            settings: Settings {
                partitions: config.offsets_topic_num_partitions,
                initial_delay_ms: config.group_initial_rebalance_delay_ms,
                min_session_ms: config.group_min_session_timeout_ms,
                max_session_ms: config.group_max_session_timeout_ms,
                max_size: config.group_max_size as usize,
                metadata_max_bytes: config.offset_metadata_max_bytes as usize,
                retention_ms: config.offsets_retention_minutes as i64 * 60_000,
                retention_check_ms: config.offsets_retention_check_interval_ms,
                consumer_heartbeat_ms: config.group_consumer_heartbeat_interval_ms,
                consumer_session_ms: config.group_consumer_session_timeout_ms,
            },
            groups: Mutex::new(HashMap::new()),
            last_expiry_check: Mutex::new(now_ms()),
            shards: Shards::new(OFFSETS_TOPIC),
        }
    }

    /// The `__consumer_offsets` partition count (from the topic when it exists).
    fn partitions(&self, broker: &Broker) -> i32 {
        internal_topics::partition_count(broker, OFFSETS_TOPIC, self.settings.partitions)
    }

    /// The groups, locked, once this broker is checked to coordinate `group_id`: leader of its
    /// `__consumer_offsets` partition, loaded (else NOT_COORDINATOR or
    /// COORDINATOR_LOAD_IN_PROGRESS). Checked under the lock, so that no request changes a
    /// group that an unload has just dropped.
    fn locked_for(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<MutexGuard<'_, HashMap<String, Group>>, ResponseError> {
        let groups = self.groups.lock();
        self.shards.check(self.partition_of(broker, group_id))?;
        Ok(groups)
    }

    /// Waits until this broker's writes to the group's `__consumer_offsets` partition are
    /// committed in the in-sync replicas: what a handler awaits before acknowledging a change.
    pub async fn committed(&self, broker: &Broker, group_id: &str) -> Result<(), ResponseError> {
        internal_topics::committed(broker, OFFSETS_TOPIC, self.partition_of(broker, group_id)).await
    }

    /// Follows the leadership of `__consumer_offsets` partitions: groups of partitions no
    /// longer led here are dropped (their waiting members answered NOT_COORDINATOR); partitions
    /// newly led are read back from the log and served once loaded.
    pub fn sync_leadership(&self, broker: &Broker) {
        let (_transition, t) = self.shards.begin(broker);
        let n = self.partitions(broker);
        if !t.unload.is_empty() {
            let mut groups = self.groups.lock();
            groups.retain(|id, g| {
                if !t.unload.contains(&partition_for(id, n)) {
                    return true;
                }
                for m in g.members.values_mut() {
                    m.fail_waiters(ResponseError::NotCoordinator);
                }
                false
            });
        }
        for (index, epoch) in t.load {
            match self.read_partition(broker, index) {
                Ok(loaded) => {
                    let count = loaded.len();
                    let mut groups = self.groups.lock();
                    groups.retain(|id, _| partition_for(id, n) != index);
                    groups.extend(loaded);
                    self.shards.activate(index, epoch);
                    if count > 0 {
                        info!(partition = index, groups = count, "loaded consumer groups");
                    }
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "loading consumer groups failed");
                    self.shards.abandon(index);
                }
            }
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet.
    pub fn ensure_offsets_topic(&self, broker: &Broker) -> Result<(), ResponseError> {
        internal_topics::ensure(broker, OFFSETS_TOPIC, self.settings.partitions)
    }

    /// Appends records to the group's partition of `__consumer_offsets`.
    fn store(
        &self,
        broker: &Broker,
        group: &str,
        records: &[StoreRecord],
    ) -> Result<(), ResponseError> {
        if records.is_empty() {
            return Ok(());
        }
        self.ensure_offsets_topic(broker)?;
        let index = partition_for(group, self.partitions(broker));
        internal_topics::append(broker, OFFSETS_TOPIC, index, records, None)
    }

    /// Appends what changed in a consumer group's state since its last write (tombstones for
    /// what is gone), so that a new coordinator finds its members and epochs.
    fn persist_consumer_group(&self, broker: &Broker, g: &mut Group) -> Result<(), ResponseError> {
        let Some(ng) = &g.next_gen else {
            return Ok(());
        };
        let now = super::consumer_records::records_of(&g.id, ng);
        let mut records: Vec<StoreRecord> = now
            .iter()
            .filter(|(k, v)| g.stored.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        records.extend(
            g.stored
                .keys()
                .filter(|k| !now.contains_key(*k))
                .map(|k| (k.clone(), None)),
        );
        if records.is_empty() {
            return Ok(());
        }
        self.store(broker, &g.id, &records)?;
        g.stored = now;
        Ok(())
    }

    fn store_group(&self, broker: &Broker, g: &Group) -> Result<(), ResponseError> {
        let key = encode_key(&RecordKey::Group {
            group: g.id.clone(),
        });
        self.store(broker, &g.id, &[(key, Some(encode_group(&g.to_value())))])
    }

    /// Rebuilds the groups of one `__consumer_offsets` partition from its log.
    fn read_partition(
        &self,
        broker: &Broker,
        index: i32,
    ) -> anyhow::Result<HashMap<String, Group>> {
        let mut stored_groups: HashMap<String, Option<GroupValue>> = HashMap::new();
        let mut offsets: HashMap<String, BTreeMap<(String, i32), Option<OffsetValue>>> =
            HashMap::new();
        // Offsets committed in a transaction wait for its marker: (producer id) -> records.
        let mut pending: HashMap<i64, Vec<PendingOffset>> = HashMap::new();
        let mut consumer_groups = super::consumer_records::GroupBuilder::default();
        internal_topics::replay(broker, OFFSETS_TOPIC, index, |r| {
            if r.control {
                let records = pending.remove(&r.producer_id).unwrap_or_default();
                if internal_topics::control_type(r) == Some(1) {
                    for (group, tp, v) in records {
                        offsets.entry(group).or_default().insert(tp, Some(v));
                    }
                }
                return;
            }
            let Some(key) = r.key.as_deref().and_then(decode_key) else {
                return;
            };
            if consumer_groups.apply(&key, r.value.as_deref()) {
                return;
            }
            match key {
                RecordKey::Offset {
                    group,
                    topic,
                    partition,
                } => {
                    let v = r.value.as_deref().and_then(decode_offset);
                    match (r.transactional, v) {
                        (true, Some(v)) => pending.entry(r.producer_id).or_default().push((
                            group,
                            (topic, partition),
                            v,
                        )),
                        (_, v) => {
                            offsets
                                .entry(group)
                                .or_default()
                                .insert((topic, partition), v);
                        }
                    }
                }
                RecordKey::Group { group } => {
                    let v = r.value.as_deref().and_then(decode_group);
                    stored_groups.insert(group, v);
                }
                _ => {}
            }
        })?;
        let now = Instant::now();
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (id, value) in stored_groups {
            let Some(v) = value else { continue };
            let mut g = Group::new(&id);
            g.generation = v.generation;
            g.protocol_type = if v.protocol_type.is_empty() {
                None
            } else {
                Some(v.protocol_type.clone())
            };
            g.protocol = v.protocol.clone();
            g.leader = v.leader.clone();
            if v.current_state_timestamp > 0 {
                g.state_timestamp = v.current_state_timestamp;
            }
            for (i, m) in v.members.into_iter().enumerate() {
                let protocol = v.protocol.clone().unwrap_or_default();
                if let Some(inst) = &m.group_instance_id {
                    g.static_members.insert(inst.clone(), m.member_id.clone());
                }
                g.members.insert(
                    m.member_id.clone(),
                    Member {
                        id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                        client_host: m.client_host,
                        rebalance_timeout_ms: m.rebalance_timeout_ms,
                        session_timeout_ms: m.session_timeout_ms,
                        protocol_type: v.protocol_type.clone(),
                        protocols: vec![(protocol, m.subscription)],
                        assignment: m.assignment,
                        join_waiter: None,
                        sync_waiter: None,
                        deadline: now + Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                        join_order: i as u64,
                    },
                );
            }
            g.next_join_order = g.members.len() as u64;
            g.state = if g.members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            };
            groups.insert(id, g);
        }
        let topics = topic_infos(broker);
        for (id, mut ng) in consumer_groups.build(now, self.settings.consumer_session_ms) {
            // Subscribed topics as they are now: no epoch bump for nothing after a failover.
            ng.subscription_metadata = ng.subscribed_topics(&topics);
            let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            g.protocol_type = Some("consumer".to_string());
            g.stored = super::consumer_records::records_of(&id, &ng);
            g.next_gen = Some(ng);
        }
        for (id, offs) in offsets {
            let g = groups.entry(id.clone()).or_insert_with(|| Group::new(&id));
            for (tp, v) in offs {
                match v {
                    Some(v) => {
                        g.offsets.insert(tp, v);
                    }
                    None => {
                        g.offsets.remove(&tp);
                    }
                }
            }
        }
        for (pid, records) in pending {
            for (group, tp, v) in records {
                let g = groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group));
                g.pending_txn.entry(pid).or_default().insert(tp, v);
            }
        }
        groups.retain(|_, g| {
            !(g.members.is_empty()
                && g.offsets.is_empty()
                && g.pending_txn.is_empty()
                && g.generation == 0
                && g.protocol_type.is_none())
        });
        Ok(groups)
    }

    /// Handles a JoinGroup; the receiver yields the response once the rebalance completes.
    pub fn join(&self, broker: &Broker, p: JoinParams) -> oneshot::Receiver<JoinResult> {
        let (tx, rx) = oneshot::channel();
        if let Err(e) = self.join_inner(broker, p.clone(), tx) {
            // join_inner only returns the sender back when it answered nothing.
            let (error, tx) = e;
            let _ = tx.send(JoinResult::error(error, &p.member_id));
        }
        rx
    }

    fn join_inner(
        &self,
        broker: &Broker,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        if p.group_id.is_empty() {
            return Err((ResponseError::InvalidGroupId, tx));
        }
        if p.session_timeout_ms < self.settings.min_session_ms
            || p.session_timeout_ms > self.settings.max_session_ms
        {
            return Err((ResponseError::InvalidSessionTimeout, tx));
        }
        if let Err(e) = self.ensure_offsets_topic(broker) {
            return Err((e, tx));
        }
        let mut groups = match self.locked_for(broker, &p.group_id) {
            Ok(g) => g,
            Err(e) => return Err((e, tx)),
        };
        if !groups.contains_key(&p.group_id) {
            if !p.member_id.is_empty() {
                return Err((ResponseError::UnknownMemberId, tx));
            }
            groups.insert(p.group_id.clone(), Group::new(&p.group_id));
        }
        let g = groups.get_mut(&p.group_id).expect("inserted above");
        if g.state == GroupState::Dead {
            return Err((ResponseError::CoordinatorNotAvailable, tx));
        }
        if g.next_gen.as_ref().is_some_and(|n| !n.members.is_empty()) {
            // Classic members joining a consumer-protocol group (KIP-848 migration) is not
            // supported.
            return Err((ResponseError::InconsistentGroupProtocol, tx));
        }
        if g.next_gen.is_some() {
            g.next_gen = None;
        }
        if !g.supports(&p.protocol_type, &p.protocols) {
            return Err((ResponseError::InconsistentGroupProtocol, tx));
        }
        if p.member_id.is_empty() {
            self.join_unknown_member(broker, g, p, tx)
        } else {
            self.join_known_member(broker, g, p, tx)
        }
    }

    fn join_unknown_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        let prefix = p.group_instance_id.as_deref().unwrap_or(&p.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(inst) = p.group_instance_id.clone() {
            if let Some(old_id) = g.static_members.get(&inst).cloned() {
                self.replace_static_member(broker, g, &old_id, new_id, p, tx);
                return Ok(());
            }
        } else if p.require_known_member_id {
            if g.members.len() + g.pending.len() >= self.settings.max_size {
                return Err((ResponseError::GroupMaxSizeReached, tx));
            }
            g.pending.insert(
                new_id.clone(),
                Instant::now() + Duration::from_millis(p.session_timeout_ms as u64),
            );
            let _ = tx.send(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
            return Ok(());
        }
        if g.members.len() >= self.settings.max_size {
            return Err((ResponseError::GroupMaxSizeReached, tx));
        }
        self.add_member_and_rebalance(broker, g, new_id, p, tx);
        Ok(())
    }

    fn join_known_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) -> Result<(), (ResponseError, oneshot::Sender<JoinResult>)> {
        if g.pending.contains_key(&p.member_id) {
            let id = p.member_id.clone();
            self.add_member_and_rebalance(broker, g, id, p, tx);
            return Ok(());
        }
        if g.fenced(&p.member_id, p.group_instance_id.as_deref()) {
            return Err((ResponseError::FencedInstanceId, tx));
        }
        if !g.members.contains_key(&p.member_id) {
            return Err((ResponseError::UnknownMemberId, tx));
        }
        let state = g.state;
        let is_leader = g.is_leader(&p.member_id);
        let member = g.members.get_mut(&p.member_id).expect("checked above");
        let same_protocols = member.protocols == p.protocols;
        match state {
            GroupState::PreparingRebalance => {
                update_member(member, &p, tx);
                self.try_complete_join(broker, g, false);
            }
            GroupState::CompletingRebalance if same_protocols => {
                member.deadline = session_deadline(member.session_timeout_ms);
                let _ = tx.send(g.current_join_result(&p.member_id, is_leader));
            }
            GroupState::Stable if same_protocols && !is_leader => {
                member.deadline = session_deadline(member.session_timeout_ms);
                let _ = tx.send(g.current_join_result(&p.member_id, false));
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                update_member(member, &p, tx);
                self.prepare_rebalance(g, "member rejoined with new metadata or as leader");
                self.try_complete_join(broker, g, false);
            }
            GroupState::Empty | GroupState::Dead => {
                return Err((ResponseError::UnknownMemberId, tx));
            }
        }
        Ok(())
    }

    fn add_member_and_rebalance(
        &self,
        broker: &Broker,
        g: &mut Group,
        id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) {
        g.pending.remove(&id);
        if let Some(inst) = &p.group_instance_id {
            g.static_members.insert(inst.clone(), id.clone());
        }
        let order = g.next_join_order;
        g.next_join_order += 1;
        let member = Member {
            id: id.clone(),
            instance_id: p.group_instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            session_timeout_ms: p.session_timeout_ms,
            protocol_type: p.protocol_type.clone(),
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            deadline: session_deadline(p.session_timeout_ms),
            join_order: order,
        };
        if g.members.is_empty() {
            g.protocol_type = Some(p.protocol_type.clone());
        }
        g.members.insert(id.clone(), member);
        if g.leader.is_none() {
            g.leader = Some(id);
        }
        if let Some(d) = g.initial_delay.as_mut() {
            d.new_member_joined = true;
        }
        if matches!(
            g.state,
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(g, "a new member joined");
        }
        self.try_complete_join(broker, g, false);
    }

    fn replace_static_member(
        &self,
        broker: &Broker,
        g: &mut Group,
        old_id: &str,
        new_id: String,
        p: JoinParams,
        tx: oneshot::Sender<JoinResult>,
    ) {
        let Some(mut member) = g.members.remove(old_id) else {
            // The instance map pointed at a member that is gone: treat as new.
            g.static_members
                .remove(p.group_instance_id.as_deref().unwrap_or_default());
            self.add_member_and_rebalance(broker, g, new_id, p, tx);
            return;
        };
        member.fail_waiters(ResponseError::FencedInstanceId);
        let old_protocols = std::mem::replace(&mut member.protocols, p.protocols.clone());
        member.id = new_id.clone();
        member.client_id = p.client_id.clone();
        member.client_host = p.client_host.clone();
        member.session_timeout_ms = p.session_timeout_ms;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.deadline = session_deadline(p.session_timeout_ms);
        let was_leader = g.is_leader(old_id);
        if was_leader {
            g.leader = Some(new_id.clone());
        }
        if let Some(inst) = &p.group_instance_id {
            g.static_members.insert(inst.clone(), new_id.clone());
        }
        g.members.insert(new_id.clone(), member);
        match g.state {
            GroupState::Stable => {
                let selected_unchanged = g.select_protocol() == g.protocol;
                if selected_unchanged && (!was_leader || p.supports_skip_assignment) {
                    // Same subscription protocol: keep the assignment, no rebalance.
                    if let Err(e) = self.store_group(broker, g) {
                        // Undo the replacement so that the old instance keeps working.
                        let mut m = g.members.remove(&new_id).expect("just inserted");
                        m.id = old_id.to_string();
                        m.protocols = old_protocols;
                        if was_leader {
                            g.leader = Some(old_id.to_string());
                        }
                        if let Some(inst) = &p.group_instance_id {
                            g.static_members.insert(inst.clone(), old_id.to_string());
                        }
                        g.members.insert(old_id.to_string(), m);
                        let _ = tx.send(JoinResult::error(e, ""));
                        return;
                    }
                    let mut result = g.current_join_result(&new_id, was_leader);
                    result.skip_assignment = was_leader;
                    let _ = tx.send(result);
                } else {
                    g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                    self.prepare_rebalance(g, "static member rejoined");
                    self.try_complete_join(broker, g, false);
                }
            }
            GroupState::CompletingRebalance => {
                g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                self.prepare_rebalance(g, "static member rejoined during a rebalance");
                self.try_complete_join(broker, g, false);
            }
            _ => {
                g.members.get_mut(&new_id).expect("inserted").join_waiter = Some(tx);
                self.try_complete_join(broker, g, false);
            }
        }
    }

    fn prepare_rebalance(&self, g: &mut Group, reason: &str) {
        if g.state == GroupState::CompletingRebalance {
            for m in g.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync_waiter.take() {
                    let _ = tx.send(SyncResult::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        let timeout = g.max_rebalance_timeout_ms();
        if g.state == GroupState::Empty && self.settings.initial_delay_ms > 0 {
            let delay = self.settings.initial_delay_ms.min(timeout.max(0));
            g.initial_delay = Some(InitialDelay {
                deadline: Instant::now() + Duration::from_millis(delay as u64),
                remaining_ms: (timeout - delay).max(0),
                new_member_joined: false,
            });
            g.rebalance_deadline = None;
        } else {
            g.initial_delay = None;
            g.rebalance_deadline = Some(Instant::now() + Duration::from_millis(timeout as u64));
        }
        info!(group = %g.id, generation = g.generation, reason, "preparing to rebalance");
        g.transition(GroupState::PreparingRebalance);
    }

    /// Completes the join phase when every member has rejoined (or when forced by a timer).
    fn try_complete_join(&self, broker: &Broker, g: &mut Group, force: bool) {
        if g.state != GroupState::PreparingRebalance {
            return;
        }
        if g.initial_delay.is_some() && !force {
            return;
        }
        let all_joined =
            g.members.values().all(|m| m.join_waiter.is_some()) && g.pending.is_empty();
        if !all_joined && !force {
            return;
        }
        // Dynamic members that did not rejoin in time are removed; static ones stay.
        let gone: Vec<String> = g
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            remove_member(g, &id);
        }
        g.initial_delay = None;
        g.rebalance_deadline = None;
        g.generation += 1;
        if g.members.is_empty() {
            g.protocol = None;
            g.leader = None;
            g.transition(GroupState::Empty);
            if let Err(e) = self.store_group(broker, g) {
                warn!(group = %g.id, error = ?e, "could not store the empty group");
            }
            info!(group = %g.id, generation = g.generation, "group is empty");
            return;
        }
        g.protocol = g.select_protocol();
        if g.leader.as_ref().is_none_or(|l| !g.members.contains_key(l)) {
            g.leader = g
                .members
                .values()
                .min_by_key(|m| m.join_order)
                .map(|m| m.id.clone());
        }
        g.transition(GroupState::CompletingRebalance);
        let leader_members = g.leader_members();
        let leader = g.leader.clone().unwrap_or_default();
        for m in g.members.values_mut() {
            m.deadline = session_deadline(m.session_timeout_ms);
            if let Some(tx) = m.join_waiter.take() {
                let _ = tx.send(JoinResult {
                    error: NONE,
                    generation_id: g.generation,
                    protocol_type: g.protocol_type.clone(),
                    protocol_name: g.protocol.clone(),
                    leader: leader.clone(),
                    skip_assignment: false,
                    member_id: m.id.clone(),
                    members: if m.id == leader {
                        leader_members.clone()
                    } else {
                        Vec::new()
                    },
                });
            }
        }
        info!(group = %g.id, generation = g.generation, members = g.members.len(),
            protocol = ?g.protocol, "rebalance: members joined, awaiting assignment");
    }

    /// Handles a SyncGroup; the receiver yields the member's assignment.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &self,
        broker: &Broker,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> oneshot::Receiver<SyncResult> {
        let (tx, rx) = oneshot::channel();
        let mut groups = match self.locked_for(broker, group_id) {
            Ok(g) => g,
            Err(e) => {
                let _ = tx.send(SyncResult::error(e));
                return rx;
            }
        };
        let Some(g) = groups.get_mut(group_id) else {
            let _ = tx.send(SyncResult::error(ResponseError::UnknownMemberId));
            return rx;
        };
        let err = if g.state == GroupState::Dead {
            Some(ResponseError::CoordinatorNotAvailable)
        } else if g.fenced(member_id, instance_id) {
            Some(ResponseError::FencedInstanceId)
        } else if !g.members.contains_key(member_id) {
            Some(ResponseError::UnknownMemberId)
        } else if generation != g.generation {
            Some(ResponseError::IllegalGeneration)
        } else if protocol_type.is_some_and(|t| Some(t) != g.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != g.protocol.as_deref())
        {
            Some(ResponseError::InconsistentGroupProtocol)
        } else {
            match g.state {
                GroupState::Empty => Some(ResponseError::UnknownMemberId),
                GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
                _ => None,
            }
        };
        if let Some(e) = err {
            let _ = tx.send(SyncResult::error(e));
            return rx;
        }
        let protocol_type = g.protocol_type.clone();
        let protocol_name = g.protocol.clone();
        let member = g.members.get_mut(member_id).expect("checked above");
        member.deadline = session_deadline(member.session_timeout_ms);
        if g.state == GroupState::Stable {
            let _ = tx.send(SyncResult {
                error: NONE,
                protocol_type,
                protocol_name,
                assignment: member.assignment.clone(),
            });
            return rx;
        }
        // CompletingRebalance: wait for the leader's assignment.
        member.sync_waiter = Some(tx);
        if g.is_leader(member_id) {
            let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
            for m in g.members.values_mut() {
                m.assignment = by_member.remove(&m.id).unwrap_or_default();
            }
            match self.store_group(broker, g) {
                Ok(()) => {
                    g.transition(GroupState::Stable);
                    for m in g.members.values_mut() {
                        if let Some(tx) = m.sync_waiter.take() {
                            let _ = tx.send(SyncResult {
                                error: NONE,
                                protocol_type: protocol_type.clone(),
                                protocol_name: protocol_name.clone(),
                                assignment: m.assignment.clone(),
                            });
                        }
                    }
                    info!(group = %g.id, generation = g.generation, "group is stable");
                }
                Err(e) => {
                    for m in g.members.values_mut() {
                        m.assignment = Bytes::new();
                        if let Some(tx) = m.sync_waiter.take() {
                            let _ = tx.send(SyncResult::error(e));
                        }
                    }
                    self.prepare_rebalance(g, "storing the assignment failed");
                }
            }
        }
        rx
    }

    /// Handles a Heartbeat: `None` when the member is in good standing.
    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let mut groups = match self.locked_for(broker, group_id) {
            Ok(g) => g,
            Err(e) => return Some(e),
        };
        let Some(g) = groups.get_mut(group_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if g.state == GroupState::Dead {
            return Some(ResponseError::CoordinatorNotAvailable);
        }
        if g.fenced(member_id, instance_id) {
            return Some(ResponseError::FencedInstanceId);
        }
        let state = g.state;
        let current_generation = g.generation;
        let Some(m) = g.members.get_mut(member_id) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if generation != current_generation {
            return Some(ResponseError::IllegalGeneration);
        }
        match state {
            GroupState::Empty | GroupState::Dead => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                m.deadline = session_deadline(m.session_timeout_ms);
                Some(ResponseError::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                m.deadline = session_deadline(m.session_timeout_ms);
                None
            }
        }
    }

    /// Handles a LeaveGroup: one error per (member id, instance id) identity.
    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<i16>, ResponseError> {
        let mut groups = self.locked_for(broker, group_id)?;
        let Some(g) = groups.get_mut(group_id) else {
            return Ok(members
                .iter()
                .map(|_| ResponseError::UnknownMemberId.code())
                .collect());
        };
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let mut errors = Vec::new();
        let mut removed = false;
        for (member_id, instance_id) in members {
            let target = match instance_id {
                Some(inst) => match g.static_members.get(inst) {
                    None => Err(ResponseError::UnknownMemberId),
                    Some(owner) if !member_id.is_empty() && owner != member_id => {
                        Err(ResponseError::FencedInstanceId)
                    }
                    Some(owner) => Ok(owner.clone()),
                },
                None => {
                    if g.pending.remove(member_id).is_some() {
                        errors.push(NONE);
                        removed = true;
                        continue;
                    }
                    if g.members.contains_key(member_id) {
                        Ok(member_id.clone())
                    } else {
                        Err(ResponseError::UnknownMemberId)
                    }
                }
            };
            match target {
                Ok(id) => {
                    remove_member(g, &id);
                    info!(group = %g.id, member = %id, "member left the group");
                    errors.push(NONE);
                    removed = true;
                }
                Err(e) => errors.push(e.code()),
            }
        }
        if removed {
            self.after_member_removed(broker, g, "member left the group");
        }
        Ok(errors)
    }

    fn after_member_removed(&self, broker: &Broker, g: &mut Group, reason: &str) {
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(g, reason);
                self.try_complete_join(broker, g, false);
            }
            GroupState::PreparingRebalance => self.try_complete_join(broker, g, false),
            _ => {}
        }
    }

    /// Handles an OffsetCommit: a whole-request error, or one error per entry.
    #[allow(clippy::too_many_arguments)]
    pub fn commit_offsets(
        &self,
        broker: &Broker,
        api_version: i16,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        retention_ms: i64,
        entries: &[OffsetCommitEntry],
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_offsets_topic(broker)?;
        let mut groups = self.locked_for(broker, group_id)?;
        if !groups.contains_key(group_id) {
            if generation >= 0 {
                return Err(if api_version >= 9 {
                    ResponseError::GroupIdNotFound
                } else {
                    ResponseError::IllegalGeneration
                });
            }
            groups.insert(group_id.to_string(), Group::new(group_id));
        }
        let g = groups.get_mut(group_id).expect("inserted above");
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if let Some(ng) = &g.next_gen {
            if !(generation < 0 && ng.members.is_empty()) {
                let Some(m) = ng.members.get(member_id) else {
                    return Err(ResponseError::UnknownMemberId);
                };
                if api_version < 9 {
                    return Err(ResponseError::UnsupportedVersion);
                }
                if generation > m.member_epoch {
                    return Err(ResponseError::FencedMemberEpoch);
                }
                if generation < m.member_epoch {
                    return Err(ResponseError::StaleMemberEpoch);
                }
            }
        }
        let simple = g.next_gen.is_some() || (generation < 0 && g.state == GroupState::Empty);
        if !simple {
            if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
                if g.fenced(member_id, instance_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
                if !g.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if generation != g.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
            } else {
                return Err(ResponseError::UnknownMemberId);
            }
            // A valid member of a generation whose assignment is not out yet (Kafka's order).
            if g.state == GroupState::CompletingRebalance {
                return Err(ResponseError::RebalanceInProgress);
            }
            // A commit keeps the member's session alive.
            if let Some(m) = g.members.get_mut(member_id) {
                m.deadline = session_deadline(m.session_timeout_ms);
            }
        }
        let (results, records, accepted) =
            self.offset_records(broker, group_id, entries, retention_ms);
        if let Err(err) = self.store(broker, group_id, &records) {
            return Ok(results
                .into_iter()
                .map(|r| if r == NONE { err.code() } else { r })
                .collect());
        }
        g.offsets.extend(accepted);
        Ok(results)
    }

    /// Checks committed offsets (topic exists, metadata size) and encodes the accepted ones:
    /// per-entry error codes, the records to append and the values to apply once written.
    fn offset_records(
        &self,
        broker: &Broker,
        group_id: &str,
        entries: &[OffsetCommitEntry],
        retention_ms: i64,
    ) -> PreparedOffsets {
        let now = now_ms();
        let image = broker.image();
        let mut results = Vec::with_capacity(entries.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for e in entries {
            let exists = image
                .topic(&e.topic)
                .is_some_and(|t| e.partition >= 0 && (e.partition as usize) < t.partitions.len());
            if !exists {
                results.push(ResponseError::UnknownTopicOrPartition.code());
                continue;
            }
            let metadata = e.metadata.clone().unwrap_or_default();
            if metadata.len() > self.settings.metadata_max_bytes {
                results.push(ResponseError::OffsetMetadataTooLarge.code());
                continue;
            }
            let value = OffsetValue {
                offset: e.offset,
                leader_epoch: e.leader_epoch,
                metadata,
                commit_timestamp: now,
                expire_timestamp: (retention_ms >= 0).then(|| now + retention_ms),
            };
            records.push((
                encode_key(&RecordKey::Offset {
                    group: group_id.to_string(),
                    topic: e.topic.clone(),
                    partition: e.partition,
                }),
                Some(encode_offset(&value)),
            ));
            accepted.push(((e.topic.clone(), e.partition), value));
            results.push(NONE);
        }
        (results, records, accepted)
    }

    /// Committed offsets of a group: for the given partitions, or all when `None`.
    pub fn fetch_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: Option<&[(String, Vec<i32>)]>,
    ) -> Result<OffsetsByTopic, ResponseError> {
        let groups = self.locked_for(broker, group_id)?;
        let offsets = groups.get(group_id).map(|g| &g.offsets);
        let pending = |t: &str, p: i32| {
            groups.get(group_id).is_some_and(|g| {
                g.pending_txn
                    .values()
                    .any(|o| o.contains_key(&(t.to_string(), p)))
            })
        };
        let get = |t: &str, p: i32| -> CommittedOffset {
            match offsets.and_then(|o| o.get(&(t.to_string(), p))) {
                Some(v) => CommittedOffset {
                    offset: v.offset,
                    leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    pending: pending(t, p),
                },
                None => CommittedOffset {
                    offset: -1,
                    leader_epoch: -1,
                    metadata: String::new(),
                    pending: pending(t, p),
                },
            }
        };
        Ok(match partitions {
            Some(list) => list
                .iter()
                .map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, get(t, *p))).collect()))
                .collect(),
            None => {
                let mut out: Vec<(String, Vec<(i32, CommittedOffset)>)> = Vec::new();
                for ((t, p), _) in offsets.into_iter().flatten() {
                    match out.last_mut() {
                        Some((lt, v)) if lt == t => v.push((*p, get(t, *p))),
                        _ => out.push((t.clone(), vec![(*p, get(t, *p))])),
                    }
                }
                out
            }
        })
    }

    /// Handles an OffsetDelete: a group-level error, or one error per partition.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, ResponseError> {
        let mut groups = self.locked_for(broker, group_id)?;
        let Some(g) = groups.get_mut(group_id) else {
            return Err(ResponseError::GroupIdNotFound);
        };
        if g.state == GroupState::Dead {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = match &g.next_gen {
            Some(ng) => Some(
                ng.subscribed_topics(&topic_infos(broker))
                    .into_keys()
                    .collect::<HashSet<String>>(),
            ),
            None => g.subscribed_topics(),
        };
        if !g.members.is_empty() && subscribed.is_none() {
            // A running group of a protocol other than "consumer": Kafka refuses.
            return Err(ResponseError::NonEmptyGroup);
        }
        let mut errors = Vec::new();
        let mut records = Vec::new();
        let mut removed = Vec::new();
        for (t, p) in partitions {
            if subscribed.as_ref().is_some_and(|s| s.contains(t)) {
                errors.push(ResponseError::GroupSubscribedToTopic.code());
                continue;
            }
            if g.offsets.contains_key(&(t.clone(), *p)) {
                records.push((
                    encode_key(&RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    }),
                    None,
                ));
                removed.push((t.clone(), *p));
            }
            errors.push(NONE);
        }
        self.store(broker, group_id, &records)?;
        for k in removed {
            g.offsets.remove(&k);
        }
        Ok(errors)
    }

    /// Groups for ListGroups: (id, protocol type, state name, group type).
    pub fn list(&self) -> Vec<(String, String, &'static str, &'static str)> {
        let groups = self.groups.lock();
        let mut out: Vec<_> = groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .map(|g| match &g.next_gen {
                Some(ng) => (
                    g.id.clone(),
                    "consumer".to_string(),
                    ng.state_name(),
                    "consumer",
                ),
                None => (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state.name(),
                    "classic",
                ),
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A group for DescribeGroups; `None` when it does not exist.
    pub fn describe(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<Option<GroupDescription>, ResponseError> {
        let groups = self.locked_for(broker, group_id)?;
        let Some(g) = groups.get(group_id).filter(|g| g.next_gen.is_none()) else {
            return Ok(None);
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let show = matches!(
            g.state,
            GroupState::Stable | GroupState::CompletingRebalance
        );
        let mut members: Vec<&Member> = g.members.values().collect();
        members.sort_by_key(|m| m.join_order);
        Ok(Some(GroupDescription {
            state: g.state,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if show {
                protocol.clone()
            } else {
                String::new()
            },
            members: members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if show {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if g.state == GroupState::Stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }))
    }

    /// Handles one group of DeleteGroups: `None` when it was deleted.
    pub fn delete_group(&self, broker: &Broker, group_id: &str) -> Option<ResponseError> {
        let mut groups = match self.locked_for(broker, group_id) {
            Ok(g) => g,
            Err(e) => return Some(e),
        };
        let Some(g) = groups.get_mut(group_id) else {
            return Some(ResponseError::GroupIdNotFound);
        };
        match g.state {
            GroupState::Dead => return Some(ResponseError::GroupIdNotFound),
            GroupState::Empty => {}
            _ => return Some(ResponseError::NonEmptyGroup),
        }
        if g.next_gen.as_ref().is_some_and(|n| !n.members.is_empty()) {
            return Some(ResponseError::NonEmptyGroup);
        }
        let mut records: Vec<StoreRecord> = g
            .offsets
            .keys()
            .map(|(t, p)| {
                (
                    encode_key(&RecordKey::Offset {
                        group: group_id.to_string(),
                        topic: t.clone(),
                        partition: *p,
                    }),
                    None,
                )
            })
            .collect();
        records.push((
            encode_key(&RecordKey::Group {
                group: group_id.to_string(),
            }),
            None,
        ));
        // A consumer group's own records go too.
        records.extend(g.stored.keys().map(|k| (k.clone(), None)));
        if let Err(e) = self.store(broker, group_id, &records) {
            return Some(e);
        }
        g.transition(GroupState::Dead);
        groups.remove(group_id);
        info!(group = group_id, "deleted group");
        None
    }

    /// Runs the timers: session expiry, pending members, rebalance and initial-delay deadlines,
    /// and offset retention.
    pub fn tick(&self, broker: &Broker) {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let mut topics = None;
        for g in groups.values_mut() {
            let mut fenced_members = false;
            if let Some(ng) = g.next_gen.as_mut() {
                let gone: Vec<String> = ng
                    .members
                    .values()
                    .filter(|m| {
                        m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
                    })
                    .map(|m| m.id.clone())
                    .collect();
                if !gone.is_empty() {
                    fenced_members = true;
                    for id in &gone {
                        info!(group = %g.id, member = %id, "consumer group member fenced: session or revocation timeout");
                        ng.members.remove(id);
                        ng.target.remove(id);
                    }
                    ng.group_epoch += 1;
                    let topics = topics.get_or_insert_with(|| topic_infos(broker));
                    ng.subscription_metadata = ng.subscribed_topics(topics);
                    ng.maybe_update_target(topics);
                }
            }
            if fenced_members {
                if let Err(e) = self.persist_consumer_group(broker, g) {
                    warn!(group = %g.id, error = ?e, "storing a consumer group failed");
                }
            }
            g.pending.retain(|_, deadline| *deadline > now);
            let expired: Vec<String> = g
                .members
                .values()
                .filter(|m| m.join_waiter.is_none() && m.deadline <= now)
                .map(|m| m.id.clone())
                .collect();
            for id in &expired {
                info!(group = %g.id, member = %id, "member session expired: removing it");
                remove_member(g, id);
            }
            if !expired.is_empty() {
                self.after_member_removed(broker, g, "member session expired");
            }
            if let Some(d) = &mut g.initial_delay {
                if d.deadline <= now {
                    if d.new_member_joined && d.remaining_ms > 0 {
                        let delay = self.settings.initial_delay_ms.min(d.remaining_ms);
                        d.deadline = now + Duration::from_millis(delay as u64);
                        d.remaining_ms -= delay;
                        d.new_member_joined = false;
                    } else {
                        self.try_complete_join(broker, g, true);
                    }
                }
            } else if g.rebalance_deadline.is_some_and(|d| d <= now) {
                self.try_complete_join(broker, g, true);
            } else if g.state == GroupState::PreparingRebalance {
                // Pending members may have expired: maybe everyone is in now.
                self.try_complete_join(broker, g, false);
            }
        }
        let wall = now_ms();
        {
            let mut last = self.last_expiry_check.lock();
            if wall - *last < self.settings.retention_check_ms {
                return;
            }
            *last = wall;
        }
        let mut empty_groups = Vec::new();
        for g in groups.values_mut() {
            self.expire_offsets(broker, g, wall);
            if g.state == GroupState::Empty
                && g.offsets.is_empty()
                && g.members.is_empty()
                && g.pending_txn.is_empty()
            {
                empty_groups.push(g.id.clone());
            }
        }
        for id in empty_groups {
            let key = encode_key(&RecordKey::Group { group: id.clone() });
            if self.store(broker, &id, &[(key, None)]).is_ok() {
                groups.remove(&id);
                info!(group = %id, "removed an empty group with no offsets left");
            }
        }
    }

    /// Removes offsets past their retention. Offsets of a group with members are kept; those of
    /// an empty group expire `offsets.retention.minutes` after it became empty (or after the
    /// commit, for groups that never had members), as in Kafka.
    fn expire_offsets(&self, broker: &Broker, g: &mut Group, now: i64) {
        if g.state != GroupState::Empty {
            return;
        }
        let base_is_state = g.protocol_type.is_some();
        let expired: Vec<(String, i32)> = g
            .offsets
            .iter()
            .filter(|(_, v)| match v.expire_timestamp {
                Some(e) => e <= now,
                None => {
                    let base = if base_is_state {
                        g.state_timestamp
                    } else {
                        v.commit_timestamp
                    };
                    base + self.settings.retention_ms <= now
                }
            })
            .map(|(k, _)| k.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        let records: Vec<StoreRecord> = expired
            .iter()
            .map(|(t, p)| {
                (
                    encode_key(&RecordKey::Offset {
                        group: g.id.clone(),
                        topic: t.clone(),
                        partition: *p,
                    }),
                    None,
                )
            })
            .collect();
        if self.store(broker, &g.id, &records).is_ok() {
            for k in &expired {
                g.offsets.remove(k);
            }
            info!(group = %g.id, offsets = expired.len(), "expired committed offsets");
        }
    }

    /// Handles a ConsumerGroupHeartbeat (KIP-848): joins, leaves, subscription changes and the
    /// member's next step toward its target assignment.
    pub fn consumer_heartbeat(&self, broker: &Broker, p: HeartbeatParams) -> HeartbeatOutcome {
        let group_id = p.group_id.clone();
        let mut outcome = self.consumer_heartbeat_inner(broker, p);
        if outcome.error.is_none() {
            let mut groups = self.groups.lock();
            if let Some(g) = groups.get_mut(&group_id) {
                if let Err(e) = self.persist_consumer_group(broker, g) {
                    outcome.error = Some((e, "The group's state could not be stored.".to_string()));
                }
            }
        }
        outcome
    }

    /// ConsumerGroupHeartbeat on the group's state, before it is stored.
    fn consumer_heartbeat_inner(&self, broker: &Broker, p: HeartbeatParams) -> HeartbeatOutcome {
        let fail = |e: ResponseError, msg: &str| HeartbeatOutcome {
            error: Some((e, msg.to_string())),
            member_id: p.member_id.clone(),
            member_epoch: p.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        };
        if p.group_id.is_empty() {
            return fail(ResponseError::InvalidRequest, "GroupId can't be empty.");
        }
        if p.version >= 1 && p.member_id.is_empty() {
            return fail(ResponseError::InvalidRequest, "MemberId can't be empty.");
        }
        if p.member_epoch == 0 {
            if p.rebalance_timeout_ms == -1 {
                return fail(
                    ResponseError::InvalidRequest,
                    "RebalanceTimeoutMs must be provided in first request.",
                );
            }
            if p.subscribed_topic_names.is_none() && p.subscribed_topic_regex.is_none() {
                return fail(
                    ResponseError::InvalidRequest,
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
                );
            }
        }
        if let Some(a) = &p.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return fail(
                    ResponseError::UnsupportedAssignor,
                    &format!(
                        "ServerAssignor {a} is not supported. Supported assignors: uniform, range."
                    ),
                );
            }
        }
        if let Some(re) = &p.subscribed_topic_regex {
            if regex::Regex::new(re).is_err() {
                return fail(
                    ResponseError::InvalidRegularExpression,
                    &format!("SubscribedTopicRegex {re} is not a valid regular expression."),
                );
            }
        }
        if let Err(e) = self.ensure_offsets_topic(broker) {
            return fail(e, "The coordinator is not available.");
        }
        let now = Instant::now();
        let topics = topic_infos(broker);
        let mut groups = match self.locked_for(broker, &p.group_id) {
            Ok(g) => g,
            Err(e) => return fail(e, "This broker does not coordinate the group."),
        };
        if !groups.contains_key(&p.group_id) {
            if p.member_epoch != 0 {
                return fail(
                    ResponseError::UnknownMemberId,
                    &format!("Group {} not found.", p.group_id),
                );
            }
            groups.insert(p.group_id.clone(), Group::new(&p.group_id));
        }
        let g = groups.get_mut(&p.group_id).expect("inserted above");
        if g.next_gen.is_none() {
            if !g.members.is_empty() || !g.pending.is_empty() {
                return fail(
                    ResponseError::GroupIdNotFound,
                    &format!("Group {} is not a consumer group.", p.group_id),
                );
            }
            g.next_gen = Some(ConsumerGroup::default());
            g.protocol_type = Some("consumer".to_string());
        }
        let ng = g.next_gen.as_mut().expect("set above");
        // Leaving (-1), or a static member leaving for a while (-2).
        if p.member_epoch < 0 {
            let Some(m) = ng.members.get_mut(&p.member_id) else {
                return fail(ResponseError::UnknownMemberId, "Unknown member.");
            };
            if p.member_epoch == -2 && m.instance_id.is_some() {
                m.left_static = true;
                m.member_epoch = -2;
            } else {
                ng.members.remove(&p.member_id);
                ng.target.remove(&p.member_id);
                ng.group_epoch += 1;
                ng.subscription_metadata = ng.subscribed_topics(&topics);
                ng.maybe_update_target(&topics);
                info!(group = %g.id, member = %p.member_id, "member left the consumer group");
            }
            return HeartbeatOutcome {
                error: None,
                member_id: p.member_id.clone(),
                member_epoch: p.member_epoch,
                heartbeat_interval_ms: 0,
                assignment: None,
            };
        }
        let member_id = if p.member_id.is_empty() {
            crate::partition::topic_id_base64(&uuid::Uuid::new_v4())
        } else {
            p.member_id.clone()
        };
        let mut bump = false;
        if p.member_epoch == 0 {
            // A static member coming back takes over its previous self's partitions.
            let previous = p.instance_id.as_ref().and_then(|inst| {
                ng.members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(inst) && m.id != member_id)
                    .map(|m| (m.id.clone(), m.left_static))
            });
            let inherited = match previous {
                Some((_, false)) => {
                    return fail(
                        ResponseError::UnreleasedInstanceId,
                        "Static member with this instance id is still in the group.",
                    )
                }
                Some((old, true)) => {
                    let m = ng.members.remove(&old).expect("found above");
                    let target = ng.target.remove(&old);
                    if let Some(t) = target {
                        ng.target.insert(member_id.clone(), t);
                    }
                    Some(m)
                }
                None => None,
            };
            let rejoining = ng.members.remove(&member_id).is_some();
            let member = ConsumerMember {
                id: member_id.clone(),
                instance_id: p.instance_id.clone(),
                rack_id: p.rack_id.clone(),
                client_id: p.client_id.clone(),
                client_host: p.client_host.clone(),
                member_epoch: inherited.as_ref().map_or(0, |m| m.member_epoch.max(0)),
                previous_epoch: 0,
                state: MemberState::Stable,
                rebalance_timeout_ms: p.rebalance_timeout_ms,
                subscribed_names: p.subscribed_topic_names.clone().unwrap_or_default(),
                subscribed_regex: p.subscribed_topic_regex.clone(),
                server_assignor: p.server_assignor.clone(),
                assigned: inherited
                    .as_ref()
                    .map(|m| m.assigned.clone())
                    .unwrap_or_default(),
                pending_revocation: Assignment::new(),
                session_deadline: now,
                revocation_deadline: None,
                left_static: false,
            };
            let same_as_inherited = inherited.as_ref().is_some_and(|m| {
                m.subscribed_names == member.subscribed_names
                    && m.subscribed_regex == member.subscribed_regex
            });
            ng.members.insert(member_id.clone(), member);
            if rejoining {
                ng.target.remove(&member_id);
            }
            if !same_as_inherited {
                bump = true;
            }
            info!(group = %g.id, member = %member_id, static_rejoin = inherited.is_some(), "member joined the consumer group");
        } else {
            let Some(m) = ng.members.get(&member_id) else {
                return fail(ResponseError::UnknownMemberId, "Unknown member.");
            };
            let epoch_ok = p.member_epoch == m.member_epoch
                || (p.member_epoch == m.previous_epoch
                    && p.owned.as_ref().is_some_and(|o| {
                        super::consumer::flatten(o)
                            .is_subset(&super::consumer::flatten(&m.assigned))
                    }));
            if !epoch_ok {
                return fail(
                    ResponseError::FencedMemberEpoch,
                    &format!(
                        "The consumer group member has a smaller member epoch ({}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                        p.member_epoch, m.member_epoch
                    ),
                );
            }
        }
        let m = ng.members.get_mut(&member_id).expect("present");
        let before = m.assigned.clone();
        m.session_deadline =
            now + Duration::from_millis(self.settings.consumer_session_ms.max(0) as u64);
        if p.rebalance_timeout_ms != -1 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        }
        if let Some(names) = &p.subscribed_topic_names {
            if *names != m.subscribed_names {
                m.subscribed_names = names.clone();
                bump = true;
            }
        }
        if let Some(re) = &p.subscribed_topic_regex {
            let re = (!re.is_empty()).then(|| re.clone());
            if re != m.subscribed_regex {
                m.subscribed_regex = re;
                bump = true;
            }
        }
        if p.server_assignor.is_some() && p.server_assignor != m.server_assignor {
            m.server_assignor = p.server_assignor.clone();
            bump = true;
        }
        if p.rack_id.is_some() {
            m.rack_id = p.rack_id.clone();
        }
        let metadata = ng.subscribed_topics(&topics);
        if metadata != ng.subscription_metadata {
            ng.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            ng.group_epoch += 1;
        }
        ng.maybe_update_target(&topics);
        ng.reconcile(&member_id, p.owned.as_ref(), now);
        let m = &ng.members[&member_id];
        let full_request = p.member_epoch == 0
            || (p.rebalance_timeout_ms != -1
                && p.subscribed_topic_names.is_some()
                && p.owned.is_some());
        HeartbeatOutcome {
            error: None,
            member_id: member_id.clone(),
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: self.settings.consumer_heartbeat_ms,
            assignment: (full_request || m.assigned != before).then(|| m.assigned.clone()),
        }
    }

    /// A consumer-protocol group for ConsumerGroupDescribe; `None` when there is no such group
    /// (unknown, or a classic group).
    pub fn describe_consumer_group(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<Option<ConsumerGroupDescription>, ResponseError> {
        let groups = self.locked_for(broker, group_id)?;
        let Some(ng) = groups.get(group_id).and_then(|g| g.next_gen.as_ref()) else {
            return Ok(None);
        };
        let names: HashMap<uuid::Uuid, String> = broker
            .image()
            .topics
            .values()
            .map(|t| (t.topic_id, t.name.clone()))
            .collect();
        let named = |a: &Assignment| -> Vec<(uuid::Uuid, String, Vec<i32>)> {
            a.iter()
                .map(|(id, ps)| {
                    (
                        *id,
                        names.get(id).cloned().unwrap_or_default(),
                        ps.iter().copied().collect(),
                    )
                })
                .collect()
        };
        Ok(Some(ConsumerGroupDescription {
            state: ng.state_name(),
            group_epoch: ng.group_epoch,
            assignment_epoch: ng.assignment_epoch,
            assignor: if ng.assignor.is_empty() {
                ASSIGNORS[0].to_string()
            } else {
                ng.assignor.clone()
            },
            members: ng
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_names.clone(),
                    subscribed_topic_regex: m.subscribed_regex.clone(),
                    assignment: named(&m.assigned),
                    target_assignment: named(&ng.target.get(&m.id).cloned().unwrap_or_default()),
                })
                .collect(),
        }))
    }

    /// Drops every group's committed offsets of a deleted topic (Kafka does the same when a
    /// topic is deleted), with tombstones so that a replay agrees.
    pub fn remove_topic_offsets(&self, broker: &Broker, topic: &str) {
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            let keys: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            if keys.is_empty() {
                continue;
            }
            let records: Vec<StoreRecord> = keys
                .iter()
                .map(|(t, p)| {
                    (
                        encode_key(&RecordKey::Offset {
                            group: g.id.clone(),
                            topic: t.clone(),
                            partition: *p,
                        }),
                        None,
                    )
                })
                .collect();
            match self.store(broker, &g.id, &records) {
                Ok(()) => {
                    for k in &keys {
                        g.offsets.remove(k);
                    }
                }
                Err(e) => {
                    warn!(group = %g.id, topic, error = ?e, "could not drop offsets of a deleted topic")
                }
            }
        }
    }

    /// Handles a TxnOffsetCommit: the offsets are written as part of the producer's
    /// transaction and become visible when its commit marker is written.
    #[allow(clippy::too_many_arguments)]
    pub fn txn_commit_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        entries: &[OffsetCommitEntry],
    ) -> Result<Vec<i16>, ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        self.ensure_offsets_topic(broker)?;
        let mut groups = self.locked_for(broker, group_id)?;
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id));
        if g.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        // With group metadata (KIP-447), the member must be current.
        if generation >= 0 || !member_id.is_empty() {
            if let Some(ng) = &g.next_gen {
                match ng.members.get(member_id) {
                    None => return Err(ResponseError::UnknownMemberId),
                    Some(m) if m.member_epoch != generation => {
                        return Err(ResponseError::IllegalGeneration)
                    }
                    Some(_) => {}
                }
            } else {
                if g.fenced(member_id, instance_id) {
                    return Err(ResponseError::FencedInstanceId);
                }
                if !g.members.contains_key(member_id) {
                    return Err(ResponseError::UnknownMemberId);
                }
                if generation != g.generation {
                    return Err(ResponseError::IllegalGeneration);
                }
            }
        }
        let (results, records, accepted) = self.offset_records(broker, group_id, entries, -1);
        let index = partition_for(group_id, self.partitions(broker));
        if let Err(err) = internal_topics::append(
            broker,
            OFFSETS_TOPIC,
            index,
            &records,
            Some((producer_id, producer_epoch)),
        ) {
            return Ok(results
                .into_iter()
                .map(|r| if r == NONE { err.code() } else { r })
                .collect());
        }
        g.pending_txn
            .entry(producer_id)
            .or_default()
            .extend(accepted);
        Ok(results)
    }

    /// A transaction's marker was written to `__consumer_offsets`: its offsets become visible
    /// (commit) or are dropped (abort).
    pub fn complete_txn_offsets(&self, producer_id: i64, commit: bool) {
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            if let Some(offsets) = g.pending_txn.remove(&producer_id) {
                if commit {
                    g.offsets.extend(offsets);
                }
            }
        }
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_of(&self, broker: &Broker, group_id: &str) -> i32 {
        partition_for(group_id, self.partitions(broker))
    }

    /// Answers every waiting member at shutdown so that their connections can close.
    pub fn shutdown(&self) {
        let mut groups = self.groups.lock();
        for g in groups.values_mut() {
            for m in g.members.values_mut() {
                m.fail_waiters(ResponseError::CoordinatorNotAvailable);
            }
        }
    }
}

/// Every topic of the metadata image, as the assignors see it.
fn topic_infos(broker: &Broker) -> BTreeMap<String, TopicInfo> {
    broker
        .image()
        .topics
        .values()
        .map(|t| {
            (
                t.name.clone(),
                TopicInfo {
                    id: t.topic_id,
                    partitions: t.partitions.len() as i32,
                },
            )
        })
        .collect()
}

fn session_deadline(session_timeout_ms: i32) -> Instant {
    Instant::now() + Duration::from_millis(session_timeout_ms.max(0) as u64)
}

fn update_member(member: &mut Member, p: &JoinParams, tx: oneshot::Sender<JoinResult>) {
    member.protocols = p.protocols.clone();
    member.protocol_type = p.protocol_type.clone();
    member.session_timeout_ms = p.session_timeout_ms;
    member.rebalance_timeout_ms = p.rebalance_timeout_ms;
    member.client_id = p.client_id.clone();
    member.client_host = p.client_host.clone();
    member.deadline = session_deadline(p.session_timeout_ms);
    if let Some(old) = member.join_waiter.replace(tx) {
        let _ = old.send(JoinResult::error(
            ResponseError::RebalanceInProgress,
            &member.id,
        ));
    }
}

fn remove_member(g: &mut Group, id: &str) {
    if let Some(mut m) = g.members.remove(id) {
        m.fail_waiters(ResponseError::UnknownMemberId);
        if let Some(inst) = &m.instance_id {
            if g.static_members.get(inst).is_some_and(|o| o == id) {
                g.static_members.remove(inst);
            }
        }
    }
    if g.is_leader(id) {
        g.leader = g
            .members
            .values()
            .min_by_key(|m| m.join_order)
            .map(|m| m.id.clone());
    }
}
