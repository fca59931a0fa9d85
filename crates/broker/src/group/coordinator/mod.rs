//! The group coordinator: the classic protocol's membership (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup), its rebalance state machine (Empty → PreparingRebalance → CompletingRebalance →
//! Stable), static membership (KIP-345), and the timers that evict silent members, end
//! rebalances and expire offsets. Every change that must survive a failover is appended to the
//! group's `__consumer_offsets` partition and acknowledged once in the ISR. Beside it:
//! committed offsets ([`offsets`]), KIP-848 groups ([`consumer_group`]) and loading the
//! partitions this broker leads ([`load`]).

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

mod consumer_group;
mod join;
mod load;
mod offsets;
mod timers;

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
    /// Empty, with no members, committed offsets or pending transactional offsets: Kafka
    /// removes such a group.
    fn is_empty_without_offsets(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.members.is_empty()
            && self.pending_txn.is_empty()
    }

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

    fn store_group(&self, broker: &Broker, g: &Group) -> Result<(), ResponseError> {
        let key = encode_key(&RecordKey::Group {
            group: g.id.clone(),
        });
        self.store(broker, &g.id, &[(key, Some(encode_group(&g.to_value())))])
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

    /// Every committed offset of the groups coordinated here: (group, topic, partition, offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let groups = self.groups.lock();
        groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .flat_map(|g| {
                g.offsets
                    .iter()
                    .map(|((t, p), v)| (g.id.clone(), t.clone(), *p, v.offset))
            })
            .collect()
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
