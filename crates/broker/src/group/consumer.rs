//! KIP-848 consumer groups ("the new protocol"): the broker owns the assignment. Members send
//! ConsumerGroupHeartbeat with their subscription and the partitions they own; the coordinator
//! keeps a group epoch (bumped by every membership or subscription change), computes a target
//! assignment with a server-side assignor (`uniform` or `range`), and moves each member toward
//! its target one heartbeat at a time: partitions to give up are revoked first (the member keeps
//! its epoch until it confirms), partitions still held by another member are handed over only
//! once released, and a member gets the new epoch once it has nothing left to revoke.
//!
//! Pure state and algorithms live here; locking, persistence of offsets and timers are in
//! [`super::coordinator`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use uuid::Uuid;

/// The server-side assignors, default first.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member is in its reconciliation toward the target assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// Has its whole target at the current assignment epoch.
    Stable,
    /// Must confirm giving up partitions before it can move on.
    UnrevokedPartitions,
    /// Waits for partitions another member has not released yet.
    UnreleasedPartitions,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerMember {
    /// Member id (client-chosen from v1).
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Current member epoch.
    pub member_epoch: i32,
    /// The epoch before the last bump (a lost response may be retried with it).
    pub previous_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Rebalance timeout: how long a revocation may take.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names.
    pub subscribed_names: Vec<String>,
    /// Subscribed topic regex (v1).
    pub subscribed_regex: Option<String>,
    /// Requested server assignor.
    pub server_assignor: Option<String>,
    /// Partitions the member owns now.
    pub assigned: Assignment,
    /// Partitions the member must give up.
    pub pending_revocation: Assignment,
    /// When the session ends without a heartbeat.
    pub session_deadline: Instant,
    /// When an unconfirmed revocation fences the member.
    pub revocation_deadline: Option<Instant>,
    /// A static member that left temporarily (epoch -2): its partitions wait for it.
    pub left_static: bool,
}

/// A topic as the assignors see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Topic id.
    pub id: Uuid,
    /// Partition count.
    pub partitions: i32,
}

/// The group-level state of a consumer group.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    /// Bumped by every change of membership, subscriptions or subscribed topics' metadata.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    /// The assignor used for the target.
    pub assignor: String,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Target assignment by member id.
    pub target: HashMap<String, Assignment>,
    /// Subscribed topics (by name) as of the last target computation.
    pub subscription_metadata: BTreeMap<String, TopicInfo>,
}

impl ConsumerGroup {
    /// The state name Kafka reports for the group.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Topic names some member subscribes to, resolved against the existing topics.
    pub fn subscribed_topics(
        &self,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> BTreeMap<String, TopicInfo> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for (name, info) in member_topics(m, topics) {
                out.insert(name, info);
            }
        }
        out
    }

    /// Computes a new target assignment when the group epoch moved past it.
    pub fn maybe_update_target(&mut self, topics: &BTreeMap<String, TopicInfo>) {
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let assignor = self
            .members
            .values()
            .find_map(|m| m.server_assignor.clone())
            .unwrap_or_else(|| ASSIGNORS[0].to_string());
        let subs: Vec<(String, Vec<(String, TopicInfo)>)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), member_topics(m, topics)))
            .collect();
        self.target = if assignor == "range" {
            assign_range(&subs)
        } else {
            assign_uniform(&subs, &self.target)
        };
        self.assignor = assignor;
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member toward its target. `owned` is what the member reported owning (None:
    /// unchanged since its last heartbeat).
    pub fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<(Uuid, i32)> = self
            .members
            .values()
            .filter(|m| m.id != member_id)
            .flat_map(|m| {
                flatten(&m.assigned)
                    .into_iter()
                    .chain(flatten(&m.pending_revocation))
            })
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if m.state == MemberState::UnrevokedPartitions {
            let released = owned.is_some_and(|o| {
                flatten(o)
                    .intersection(&flatten(&m.pending_revocation))
                    .next()
                    .is_none()
            });
            if !released {
                return;
            }
            m.pending_revocation.clear();
            m.revocation_deadline = None;
        }
        if m.member_epoch == assignment_epoch && m.state == MemberState::Stable {
            return;
        }
        let current = flatten(&m.assigned);
        let wanted = flatten(&target);
        let revoke: BTreeSet<(Uuid, i32)> = current.difference(&wanted).copied().collect();
        if !revoke.is_empty() {
            m.assigned = unflatten(current.intersection(&wanted).copied());
            m.pending_revocation = unflatten(revoke.into_iter());
            m.state = MemberState::UnrevokedPartitions;
            m.revocation_deadline =
                Some(now + std::time::Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            return;
        }
        let granted: BTreeSet<(Uuid, i32)> = wanted
            .iter()
            .filter(|tp| current.contains(tp) || !held_by_others.contains(tp))
            .copied()
            .collect();
        let complete = granted.len() == wanted.len();
        m.assigned = unflatten(granted.into_iter());
        if m.member_epoch != assignment_epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
        m.state = if complete {
            MemberState::Stable
        } else {
            MemberState::UnreleasedPartitions
        };
    }
}

/// The (name, topic) pairs a member subscribes to that exist. A regex matches whole names and,
/// as on Kafka, internal topics too (clients that do not want them leave them out).
fn member_topics(
    m: &ConsumerMember,
    topics: &BTreeMap<String, TopicInfo>,
) -> Vec<(String, TopicInfo)> {
    let mut out: BTreeMap<String, TopicInfo> = BTreeMap::new();
    for name in &m.subscribed_names {
        if let Some(t) = topics.get(name) {
            out.insert(name.clone(), t.clone());
        }
    }
    if let Some(re) = m
        .subscribed_regex
        .as_deref()
        .and_then(|r| regex::Regex::new(&format!("^(?:{r})$")).ok())
    {
        for (name, t) in topics {
            if re.is_match(name) {
                out.insert(name.clone(), t.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// Every (topic id, partition) of an assignment.
pub fn flatten(a: &Assignment) -> BTreeSet<(Uuid, i32)> {
    a.iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
        .collect()
}

fn unflatten(tps: impl Iterator<Item = (Uuid, i32)>) -> Assignment {
    let mut a = Assignment::new();
    for (t, p) in tps {
        a.entry(t).or_default().insert(p);
    }
    a
}

/// Subscriptions as the assignors take them: (member id, subscribed topics).
type Subscriptions = [(String, Vec<(String, TopicInfo)>)];

/// Kafka's `range` assignor: per topic, contiguous ranges over the subscribed members in
/// member-id order, the first `partitions % members` getting one more.
pub fn assign_range(subs: &Subscriptions) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = subs
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    let mut by_topic: BTreeMap<String, (TopicInfo, Vec<String>)> = BTreeMap::new();
    for (member, topics) in subs {
        for (name, info) in topics {
            by_topic
                .entry(name.clone())
                .or_insert_with(|| (info.clone(), Vec::new()))
                .1
                .push(member.clone());
        }
    }
    for (_, (info, mut members)) in by_topic {
        members.sort();
        let n = info.partitions.max(0) as usize;
        let per = n / members.len();
        let extra = n % members.len();
        let mut next = 0;
        for (i, member) in members.iter().enumerate() {
            let count = per + usize::from(i < extra);
            let parts: BTreeSet<i32> = (next..next + count).map(|p| p as i32).collect();
            next += count;
            if !parts.is_empty() {
                out.get_mut(member)
                    .expect("every member has an entry")
                    .insert(info.id, parts);
            }
        }
    }
    out
}

/// Kafka's `uniform` assignor: every subscribed partition to exactly one subscribed member,
/// counts differing by at most one where subscriptions allow, keeping partitions where they were.
pub fn assign_uniform(
    subs: &Subscriptions,
    previous: &HashMap<String, Assignment>,
) -> HashMap<String, Assignment> {
    let mut out: HashMap<String, Assignment> = subs
        .iter()
        .map(|(m, _)| (m.clone(), Assignment::new()))
        .collect();
    if subs.is_empty() {
        return out;
    }
    let eligible: HashMap<&str, BTreeSet<Uuid>> = subs
        .iter()
        .map(|(m, ts)| (m.as_str(), ts.iter().map(|(_, t)| t.id).collect()))
        .collect();
    let mut all: BTreeSet<(String, Uuid, i32)> = BTreeSet::new();
    for (_, ts) in subs {
        for (name, t) in ts {
            for p in 0..t.partitions {
                all.insert((name.clone(), t.id, p));
            }
        }
    }
    let total = all.len();
    let members = subs.len();
    let quota = total / members;
    let extra = total % members;
    let mut counts: HashMap<&str, usize> = subs.iter().map(|(m, _)| (m.as_str(), 0)).collect();
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    let mut at_ceiling = 0;
    // Keep previous ownership: members that held most keep theirs first.
    let mut order: Vec<&str> = subs.iter().map(|(m, _)| m.as_str()).collect();
    order.sort_by_key(|m| {
        (
            std::cmp::Reverse(previous.get(*m).map(|a| flatten(a).len()).unwrap_or(0)),
            m.to_string(),
        )
    });
    for m in &order {
        let Some(prev) = previous.get(*m) else {
            continue;
        };
        for (t, p) in flatten(prev) {
            if taken.contains(&(t, p))
                || !eligible[m].contains(&t)
                || !all.iter().any(|(_, id, q)| *id == t && *q == p)
            {
                continue;
            }
            let limit = if at_ceiling < extra { quota + 1 } else { quota };
            if counts[m] >= limit {
                break;
            }
            taken.insert((t, p));
            *counts.get_mut(m).expect("member") += 1;
            out.get_mut(*m)
                .expect("member")
                .entry(t)
                .or_default()
                .insert(p);
            if counts[m] == quota + 1 {
                at_ceiling += 1;
            }
        }
    }
    // Everything else goes to the least loaded eligible member.
    let mut ids: Vec<&str> = subs.iter().map(|(m, _)| m.as_str()).collect();
    ids.sort();
    for (_, t, p) in &all {
        if taken.contains(&(*t, *p)) {
            continue;
        }
        let Some(m) = ids
            .iter()
            .filter(|m| eligible[*m].contains(t))
            .min_by_key(|m| (counts[*m], m.to_string()))
            .copied()
        else {
            continue;
        };
        *counts.get_mut(m).expect("member") += 1;
        out.get_mut(m)
            .expect("member")
            .entry(*t)
            .or_default()
            .insert(*p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8, partitions: i32) -> (String, TopicInfo) {
        (
            format!("t{n}"),
            TopicInfo {
                id: Uuid::from_bytes([n; 16]),
                partitions,
            },
        )
    }

    fn counts(a: &HashMap<String, Assignment>) -> Vec<usize> {
        let mut c: Vec<usize> = a.values().map(|x| flatten(x).len()).collect();
        c.sort();
        c
    }

    fn all_once(a: &HashMap<String, Assignment>, total: usize) {
        let mut seen = BTreeSet::new();
        for x in a.values() {
            for tp in flatten(x) {
                assert!(seen.insert(tp), "{tp:?} assigned twice");
            }
        }
        assert_eq!(seen.len(), total);
    }

    #[test]
    fn range_gives_contiguous_ranges() {
        let subs = vec![
            ("b".to_string(), vec![topic(1, 7)]),
            ("a".to_string(), vec![topic(1, 7)]),
        ];
        let a = assign_range(&subs);
        let id = Uuid::from_bytes([1; 16]);
        assert_eq!(a["a"][&id], (0..4).collect());
        assert_eq!(a["b"][&id], (4..7).collect());
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let t = vec![topic(1, 6), topic(2, 1)];
        let one = vec![("a".to_string(), t.clone())];
        let first = assign_uniform(&one, &HashMap::new());
        assert_eq!(counts(&first), vec![7]);
        let three: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), t.clone()))
            .collect();
        let second = assign_uniform(&three, &first);
        assert_eq!(counts(&second), vec![2, 2, 3]);
        all_once(&second, 7);
        // "a" keeps only partitions it had.
        assert!(flatten(&second["a"]).is_subset(&flatten(&first["a"])));
        // Uneven previous ownership still ends balanced.
        let mut prev = HashMap::new();
        prev.insert("a".to_string(), second["a"].clone());
        let mut b = second["b"].clone();
        for (t, ps) in &second["c"] {
            b.entry(*t).or_default().extend(ps);
        }
        prev.insert("b".to_string(), b);
        let four: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|m| (m.to_string(), t.clone()))
            .collect();
        let third = assign_uniform(&four, &prev);
        assert_eq!(counts(&third), vec![1, 2, 2, 2]);
        all_once(&third, 7);
    }

    #[test]
    fn reconciliation_revokes_before_granting() {
        let now = Instant::now();
        let id = Uuid::from_bytes([1; 16]);
        let member = |name: &str| ConsumerMember {
            id: name.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/h".into(),
            member_epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            rebalance_timeout_ms: 1000,
            subscribed_names: vec!["t1".into()],
            subscribed_regex: None,
            server_assignor: None,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline: now,
            revocation_deadline: None,
            left_static: false,
        };
        let topics: BTreeMap<String, TopicInfo> = [topic(1, 4)].into_iter().collect();
        let mut g = ConsumerGroup::default();
        g.members.insert("a".into(), member("a"));
        g.group_epoch = 1;
        g.maybe_update_target(&topics);
        g.reconcile("a", Some(&Assignment::new()), now);
        assert_eq!(g.members["a"].member_epoch, 1);
        assert_eq!(flatten(&g.members["a"].assigned).len(), 4);
        assert_eq!(g.state_name(), "Stable");
        // "b" joins: "a" must give up two partitions before "b" gets them.
        g.members.insert("b".into(), member("b"));
        g.group_epoch = 2;
        g.maybe_update_target(&topics);
        g.reconcile("b", Some(&Assignment::new()), now);
        assert_eq!(g.members["b"].member_epoch, 2);
        assert!(g.members["b"].assigned.is_empty());
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);
        g.reconcile("a", None, now);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        assert_eq!(g.members["a"].member_epoch, 1);
        assert_eq!(flatten(&g.members["a"].assigned).len(), 2);
        // Still owning the revoked partitions: nothing moves.
        let still = unflatten((0..4).map(|p| (id, p)));
        g.reconcile("a", Some(&still), now);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        // Revocation confirmed: "a" moves to epoch 2, then "b" gets its partitions.
        let kept = g.members["a"].assigned.clone();
        g.reconcile("a", Some(&kept), now);
        assert_eq!(
            (g.members["a"].member_epoch, g.members["a"].state),
            (2, MemberState::Stable)
        );
        g.reconcile("b", None, now);
        assert_eq!(g.members["b"].state, MemberState::Stable);
        assert_eq!(flatten(&g.members["b"].assigned).len(), 2);
        assert_eq!(g.state_name(), "Stable");
    }
}
