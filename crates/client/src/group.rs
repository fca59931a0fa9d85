//! Classic consumer-group membership, run as a background task for a subscribed consumer:
//! JoinGroup (with the MEMBER_ID_REQUIRED round), the leader's assignment with the chosen
//! assignor, SyncGroup, then heartbeats until a rebalance; eager revocation for `range`,
//! incremental (revoke, then rejoin) when every assignor is cooperative; LeaveGroup on close.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use runnel_protocol::kafka_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription,
    join_group_request::JoinGroupRequestProtocol, leave_group_request::MemberIdentity,
    sync_group_request::SyncGroupRequestAssignment, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    SyncGroupRequest, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::assignor::{self, MemberSubscription, TopicPartition};
use crate::config::AssignorKind;
use crate::consumer::{Member, Shared};
use crate::error::{Error, Result};

const SUBSCRIPTION_VERSION: i16 = 1;
const ASSIGNMENT_VERSION: i16 = 0;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Encodes a ConsumerProtocolSubscription (version prefix, then the body).
pub fn encode_subscription(topics: &[String], owned: &[TopicPartition]) -> Bytes {
    let by = assignor::by_topic(owned);
    let sub = ConsumerProtocolSubscription::default()
        .with_topics(topics.iter().map(|t| s(t)).collect())
        .with_owned_partitions(
            by.into_iter()
                .map(|(t, ps)| {
                    consumer_protocol_subscription::TopicPartition::default()
                        .with_topic(TopicName(s(t)))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let mut buf = BytesMut::new();
    buf.put_i16(SUBSCRIPTION_VERSION);
    sub.encode(&mut buf, SUBSCRIPTION_VERSION)
        .expect("a subscription always encodes");
    buf.freeze()
}

fn decode_subscription(
    member_id: &str,
    instance: Option<String>,
    mut b: Bytes,
) -> Result<MemberSubscription> {
    if b.len() < 2 {
        return Err(Error::Protocol(format!(
            "member {member_id}: empty subscription"
        )));
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = b.split_to(2);
    let sub = ConsumerProtocolSubscription::decode(&mut b, version.clamp(0, 3))
        .map_err(|e| Error::Protocol(format!("member {member_id}: bad subscription: {e}")))?;
    Ok(MemberSubscription {
        member_id: member_id.to_string(),
        instance_id: instance,
        topics: sub.topics.iter().map(|t| t.to_string()).collect(),
        owned: sub
            .owned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |p| (tp.topic.0.to_string(), *p))
            })
            .collect(),
    })
}

fn encode_assignment(parts: &[TopicPartition]) -> Bytes {
    let by = assignor::by_topic(parts);
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by.into_iter()
            .map(|(t, ps)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(TopicName(s(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(ASSIGNMENT_VERSION);
    a.encode(&mut buf, ASSIGNMENT_VERSION)
        .expect("an assignment always encodes");
    buf.freeze()
}

/// Decodes a ConsumerProtocolAssignment (version prefix, then the body).
pub(crate) fn decode_assignment(mut b: Bytes) -> Result<Vec<TopicPartition>> {
    if b.is_empty() {
        return Ok(Vec::new());
    }
    if b.len() < 2 {
        return Err(Error::Protocol("truncated assignment".into()));
    }
    let version = i16::from_be_bytes([b[0], b[1]]);
    let _ = b.split_to(2);
    let a = ConsumerProtocolAssignment::decode(&mut b, version.clamp(0, 3))
        .map_err(|e| Error::Protocol(format!("bad assignment: {e}")))?;
    Ok(a.assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| (tp.topic.0.to_string(), *p))
        })
        .collect())
}

/// What ended a membership round.
enum Next {
    Rejoin,
    ResetMember,
    /// The application did not poll within `max.poll.interval.ms`: leave, rejoin on its next poll.
    PollTimeout,
    Stop,
}

struct Membership {
    group: String,
    member_id: String,
    generation: i32,
    owned: Vec<TopicPartition>,
    cooperative: bool,
    /// As the leader: the partition counts the assignment was made from, watched so that a
    /// topic that grows triggers a new assignment (as Kafka's leader does).
    assigned_counts: Option<HashMap<String, i32>>,
}

/// The membership task: joins, syncs, heartbeats and rejoins until the consumer closes.
pub(crate) async fn run(shared: Arc<Shared>, topics: Vec<String>) {
    let cfg = &shared.cfg;
    let mut m = Membership {
        group: cfg.group_id.clone().unwrap_or_default(),
        member_id: String::new(),
        generation: -1,
        owned: Vec::new(),
        assigned_counts: None,
        cooperative: cfg
            .assignors
            .iter()
            .all(|a| *a == AssignorKind::CooperativeSticky),
    };
    loop {
        if shared.closed.load(Ordering::Acquire) {
            break;
        }
        if !m.cooperative && !m.owned.is_empty() {
            revoke(&shared, &mut m, None).await;
        }
        match join_and_sync(&shared, &topics, &mut m).await {
            Ok(assigned) => {
                let revoked = apply(&shared, &mut m, assigned).await;
                if revoked {
                    // Cooperative: the partitions given up go to others in the next round.
                    continue;
                }
            }
            Err(e) => {
                if handle_error(&shared, &mut m, &e) {
                    break;
                }
                shared.cluster.backoff().await;
                continue;
            }
        }
        match heartbeat_loop(&shared, &mut m).await {
            Next::Rejoin => continue,
            Next::ResetMember => {
                lose_all(&shared, &mut m);
                m.member_id.clear();
                m.generation = -1;
            }
            Next::PollTimeout => {
                tracing::warn!(
                    "group {}: no poll within max.poll.interval.ms ({} ms): leaving the group; \
                     the next poll rejoins. Poll more often, or raise max.poll.interval.ms",
                    m.group,
                    shared.cfg.max_poll_interval.as_millis()
                );
                leave(&shared, &m).await;
                lose_all(&shared, &mut m);
                if shared.cfg.group_instance_id.is_none() {
                    m.member_id.clear();
                }
                m.generation = -1;
                loop {
                    let polled = shared.polled.notified();
                    if shared.closed.load(Ordering::Acquire)
                        || shared.last_poll.lock().elapsed() < shared.cfg.max_poll_interval
                    {
                        break;
                    }
                    tokio::select! {
                        _ = polled => {}
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    }
                }
            }
            Next::Stop => break,
        }
    }
    if shared.closed.load(Ordering::Acquire) && !m.member_id.is_empty() {
        leave(&shared, &m).await;
    }
}

/// Returns true when the error is fatal for the membership (recorded for `poll`).
fn handle_error(shared: &Shared, m: &mut Membership, e: &Error) -> bool {
    match e.code() {
        // UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION: start over with a new identity.
        Some(25) | Some(22) => {
            lose_all(shared, m);
            m.member_id.clear();
            m.generation = -1;
            false
        }
        // REBALANCE_IN_PROGRESS and the coordinator errors: retry.
        Some(27) | Some(14..=16) => false,
        _ if e.is_retriable() => false,
        _ => {
            tracing::warn!("leaving group {}: {e}", m.group);
            shared.state.lock().error = Some(e.clone());
            true
        }
    }
}

async fn join_and_sync(
    shared: &Shared,
    topics: &[String],
    m: &mut Membership,
) -> Result<Vec<TopicPartition>> {
    let cfg = &shared.cfg;
    let node = shared.cluster.coordinator(&m.group, 0).await?;
    let conn = shared.cluster.node(node).await?;
    let jv = conn.version::<JoinGroupRequest>(9)?;
    let metadata = encode_subscription(topics, if m.cooperative { &m.owned } else { &[] });
    let protocols = cfg
        .assignors
        .iter()
        .map(|a| {
            JoinGroupRequestProtocol::default()
                .with_name(s(a.name()))
                .with_metadata(metadata.clone())
        })
        .collect();
    let mut req = JoinGroupRequest::default()
        .with_group_id(GroupId(s(&m.group)))
        .with_session_timeout_ms(cfg.session_timeout.as_millis() as i32)
        .with_member_id(s(&m.member_id))
        .with_protocol_type(s("consumer"))
        .with_protocols(protocols);
    if jv >= 1 {
        req.rebalance_timeout_ms = cfg.max_poll_interval.as_millis() as i32;
    }
    if jv >= 5 {
        req.group_instance_id = cfg.group_instance_id.as_deref().map(s);
    }
    let wait = cfg.max_poll_interval + Duration::from_secs(5);
    let mut resp = conn.send_timeout(&req, jv, wait).await?;
    if resp.error_code == 79 {
        // MEMBER_ID_REQUIRED: join again with the id the coordinator gave.
        m.member_id = resp.member_id.to_string();
        req.member_id = resp.member_id.clone();
        resp = conn.send_timeout(&req, jv, wait).await?;
    }
    Error::check(resp.error_code, None, || format!("join group {}", m.group))?;
    m.member_id = resp.member_id.to_string();
    m.generation = resp.generation_id;
    let protocol = resp
        .protocol_name
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut assignments = Vec::new();
    m.assigned_counts = None;
    if resp.leader == resp.member_id && !resp.skip_assignment {
        let mut subs = Vec::new();
        for mem in &resp.members {
            subs.push(decode_subscription(
                &mem.member_id,
                mem.group_instance_id.as_ref().map(|i| i.to_string()),
                mem.metadata.clone(),
            )?);
        }
        let all: BTreeSet<String> = subs.iter().flat_map(|s| s.topics.iter().cloned()).collect();
        let mut counts = HashMap::new();
        for t in &all {
            shared.cluster.invalidate(t);
            match shared.cluster.topic(t, false).await {
                Ok(info) => {
                    counts.insert(t.clone(), info.partitions.len() as i32);
                }
                Err(e) => tracing::debug!("group {}: topic {t}: {e}", m.group),
            }
        }
        m.assigned_counts = Some(counts.clone());
        let plan = if protocol == AssignorKind::CooperativeSticky.name() {
            assignor::cooperative_sticky(&subs, &counts)
        } else {
            assignor::range(&subs, &counts)
        };
        assignments = plan
            .into_iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(encode_assignment(&parts))
            })
            .collect();
    }
    let sv = conn.version::<SyncGroupRequest>(5)?;
    let mut sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(&m.group)))
        .with_generation_id(m.generation)
        .with_member_id(s(&m.member_id))
        .with_assignments(assignments);
    if sv >= 3 {
        sync.group_instance_id = cfg.group_instance_id.as_deref().map(s);
    }
    if sv >= 5 {
        sync.protocol_type = Some(s("consumer"));
        sync.protocol_name = Some(s(&protocol));
    }
    let sresp = conn.send_timeout(&sync, sv, wait).await?;
    Error::check(sresp.error_code, None, || format!("sync group {}", m.group))?;
    decode_assignment(sresp.assignment.clone())
}

/// Installs a new assignment; returns true when partitions were revoked (cooperative), which
/// calls for another round at once.
async fn apply(shared: &Shared, m: &mut Membership, assigned: Vec<TopicPartition>) -> bool {
    let new: BTreeSet<TopicPartition> = assigned.into_iter().collect();
    let revoked: Vec<TopicPartition> = m
        .owned
        .iter()
        .filter(|tp| !new.contains(*tp))
        .cloned()
        .collect();
    // Commits for revoked partitions go out in the new generation, as Kafka's cooperative
    // protocol has it (the old one is gone once SyncGroup answered).
    shared.state.lock().member = Some(Member {
        generation: m.generation,
        member_id: m.member_id.clone(),
    });
    if !revoked.is_empty() {
        revoke(shared, m, Some(&revoked)).await;
    }
    {
        let mut st = shared.state.lock();
        st.member = Some(Member {
            generation: m.generation,
            member_id: m.member_id.clone(),
        });
        for tp in &new {
            if !st.parts.contains_key(tp) {
                let p = shared.new_part();
                st.parts.insert(tp.clone(), p);
            }
        }
        st.parts.retain(|tp, _| new.contains(tp));
    }
    m.owned = new.into_iter().collect();
    tracing::debug!(
        "group {} generation {}: assigned {:?}",
        m.group,
        m.generation,
        m.owned
    );
    shared.changed.notify_one();
    m.cooperative && !revoked.is_empty()
}

/// Gives up `only` (or every owned partition), committing their positions first when
/// auto-commit is on.
async fn revoke(shared: &Shared, m: &mut Membership, only: Option<&[TopicPartition]>) {
    let list: Vec<TopicPartition> = only.map(|o| o.to_vec()).unwrap_or_else(|| m.owned.clone());
    {
        // From here `poll` hands out nothing more from these partitions, so the commit
        // below covers every record the application was given.
        let mut st = shared.state.lock();
        for tp in &list {
            if let Some(p) = st.parts.get_mut(tp) {
                p.revoking = true;
            }
        }
    }
    if shared.cfg.enable_auto_commit {
        if let Err(e) = shared.commit_positions(Some(&list)).await {
            tracing::warn!("group {}: commit before revoking: {e}", m.group);
        }
    }
    let mut st = shared.state.lock();
    for tp in &list {
        st.parts.remove(tp);
    }
    m.owned.retain(|tp| !list.contains(tp));
    if m.owned.is_empty() {
        st.member = None;
    }
}

/// The membership is gone (fenced or expired): partitions are dropped without a commit.
fn lose_all(shared: &Shared, m: &mut Membership) {
    let mut st = shared.state.lock();
    for tp in &m.owned {
        st.parts.remove(tp);
    }
    st.member = None;
    m.owned.clear();
}

/// Whether a topic the group's assignment was made from now has another partition count.
async fn partitions_changed(shared: &Shared, counts: &HashMap<String, i32>) -> bool {
    for (t, n) in counts {
        shared.cluster.invalidate(t);
        match shared.cluster.topic(t, false).await {
            Ok(info) if info.partitions.len() as i32 != *n => return true,
            Ok(_) => {}
            // Deleted: the members lose its partitions.
            Err(e) if e.code() == Some(3) => return true,
            Err(_) => {}
        }
    }
    false
}

async fn heartbeat_loop(shared: &Shared, m: &mut Membership) -> Next {
    let cfg = &shared.cfg;
    let mut metadata_checked = tokio::time::Instant::now();
    loop {
        if let Some(counts) = &m.assigned_counts {
            if metadata_checked.elapsed() >= cfg.client.metadata_max_age {
                metadata_checked = tokio::time::Instant::now();
                if partitions_changed(shared, counts).await {
                    tracing::debug!("group {}: partitions changed, rebalancing", m.group);
                    return Next::Rejoin;
                }
            }
        }
        // Short ticks, so that a close is noticed quickly.
        let due = tokio::time::Instant::now() + cfg.heartbeat_interval;
        while tokio::time::Instant::now() < due {
            if shared.closed.load(Ordering::Acquire) {
                return Next::Stop;
            }
            tokio::time::sleep(Duration::from_millis(100).min(cfg.heartbeat_interval)).await;
        }
        if shared.closed.load(Ordering::Acquire) {
            return Next::Stop;
        }
        if shared.last_poll.lock().elapsed() > cfg.max_poll_interval {
            return Next::PollTimeout;
        }
        let attempt = async {
            let node = shared.cluster.coordinator(&m.group, 0).await?;
            let conn = shared.cluster.node(node).await?;
            let v = conn.version::<HeartbeatRequest>(4)?;
            let mut req = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&m.group)))
                .with_generation_id(m.generation)
                .with_member_id(s(&m.member_id));
            if v >= 3 {
                req.group_instance_id = cfg.group_instance_id.as_deref().map(s);
            }
            let resp = conn.send(&req, v).await?;
            Error::check(resp.error_code, None, || {
                format!("heartbeat to group {}", m.group)
            })
        };
        match attempt.await {
            Ok(()) => {}
            Err(e) => match e.code() {
                Some(27) => return Next::Rejoin,
                Some(25) | Some(22) => return Next::ResetMember,
                Some(82) => {
                    shared.state.lock().error = Some(e);
                    return Next::Stop;
                }
                _ if e.is_retriable() => {
                    tracing::debug!("{e}");
                }
                _ => {
                    shared.state.lock().error = Some(e);
                    return Next::Stop;
                }
            },
        }
    }
}

async fn leave(shared: &Shared, m: &Membership) {
    // Static members keep their place for the session timeout, as in Kafka.
    if shared.cfg.group_instance_id.is_some() {
        return;
    }
    let attempt = async {
        let node = shared.cluster.coordinator(&m.group, 0).await?;
        let conn = shared.cluster.node(node).await?;
        let v = conn.version::<LeaveGroupRequest>(5)?;
        let mut req = LeaveGroupRequest::default().with_group_id(GroupId(s(&m.group)));
        if v >= 3 {
            req.members = vec![MemberIdentity::default().with_member_id(s(&m.member_id))];
        } else {
            req.member_id = s(&m.member_id);
        }
        let resp = conn.send(&req, v).await?;
        Error::check(resp.error_code, None, || format!("leave group {}", m.group))
    };
    if let Err(e) = attempt.await {
        tracing::debug!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_protocol_round_trips() {
        let sub = encode_subscription(&["a".into(), "b".into()], &[("a".into(), 2)]);
        let d = decode_subscription("m", None, sub).unwrap();
        assert_eq!(d.topics, vec!["a", "b"]);
        assert_eq!(d.owned, vec![("a".to_string(), 2)]);
        let a = encode_assignment(&[("a".into(), 1), ("a".into(), 0), ("b".into(), 3)]);
        let mut got = decode_assignment(a).unwrap();
        got.sort();
        assert_eq!(got, vec![("a".into(), 0), ("a".into(), 1), ("b".into(), 3)]);
    }
}
