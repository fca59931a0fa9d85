//! Client-side partition assignors for the classic group protocol, run by the group leader:
//! `range` (per topic, consecutive partitions to members in order) and `cooperative-sticky`
//! (balanced, keeps what members own, and never hands a partition to a new owner in the same
//! rebalance in which the old owner still holds it: the old owner revokes it first).

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A topic-partition.
pub type TopicPartition = (String, i32);

/// Partition indexes grouped by topic, topics in name order (how requests list them).
pub fn by_topic(parts: &[TopicPartition]) -> BTreeMap<&str, Vec<i32>> {
    let mut by: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by.entry(t.as_str()).or_default().push(*p);
    }
    by
}

/// One member's subscription, as read from its JoinGroup metadata.
#[derive(Clone, Debug, Default)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// The static instance id, if any (orders members in `range`, as Kafka does).
    pub instance_id: Option<String>,
    /// Subscribed topics.
    pub topics: Vec<String>,
    /// Partitions the member owns now (cooperative protocol).
    pub owned: Vec<TopicPartition>,
}

/// An assignment: member id → partitions.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Kafka's RangeAssignor. `partitions` maps topic → partition count.
pub fn range(members: &[MemberSubscription], partitions: &HashMap<String, i32>) -> Assignment {
    let mut out: Assignment = members
        .iter()
        .map(|m| (m.member_id.clone(), Vec::new()))
        .collect();
    let mut topics: BTreeSet<&String> = BTreeSet::new();
    for m in members {
        topics.extend(m.topics.iter());
    }
    for topic in topics {
        let Some(&count) = partitions.get(topic) else {
            continue;
        };
        let mut subs: Vec<&MemberSubscription> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .collect();
        subs.sort_by(|a, b| {
            let ka = a.instance_id.as_ref().unwrap_or(&a.member_id);
            let kb = b.instance_id.as_ref().unwrap_or(&b.member_id);
            ka.cmp(kb)
        });
        let n = subs.len() as i32;
        if n == 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        for (i, m) in subs.iter().enumerate() {
            let i = i as i32;
            let start = each * i + i.min(extra);
            let len = each + i32::from(i < extra);
            let list = out.get_mut(&m.member_id).unwrap();
            list.extend((start..start + len).map(|p| (topic.clone(), p)));
        }
    }
    out
}

/// Kafka's CooperativeStickyAssignor, in its essentials: owned partitions stay put while the
/// member is within its quota, the rest go to the least-loaded subscribed member, and a
/// partition still owned by another member is left out of this round (it is revoked, the
/// owner rejoins, and the next round places it).
pub fn cooperative_sticky(
    members: &[MemberSubscription],
    partitions: &HashMap<String, i32>,
) -> Assignment {
    let mut all: Vec<TopicPartition> = Vec::new();
    let mut topics: BTreeSet<&String> = BTreeSet::new();
    for m in members {
        topics.extend(m.topics.iter());
    }
    for t in &topics {
        if let Some(&n) = partitions.get(*t) {
            all.extend((0..n).map(|p| ((*t).clone(), p)));
        }
    }
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let total = all.len();
    let m = sorted.len().max(1);
    // Quota: the first `total % m` members (by id) may hold one more.
    let quota: HashMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, s)| (s.member_id.as_str(), total / m + usize::from(i < total % m)))
        .collect();
    let mut owner: HashMap<TopicPartition, &str> = HashMap::new();
    let mut out: Assignment = sorted
        .iter()
        .map(|s| (s.member_id.clone(), Vec::new()))
        .collect();
    let all_set: BTreeSet<&TopicPartition> = all.iter().collect();
    // 1. Keep owned partitions that still exist and are subscribed, up to the larger quota.
    let max_quota = total.div_ceil(m);
    for s in &sorted {
        for tp in &s.owned {
            if !all_set.contains(tp) || !s.topics.contains(&tp.0) || owner.contains_key(tp) {
                continue;
            }
            let list = out.get_mut(&s.member_id).unwrap();
            if list.len() >= max_quota {
                continue;
            }
            list.push(tp.clone());
            owner.insert(tp.clone(), s.member_id.as_str());
        }
    }
    // Members above their quota give up their last partitions while others are below theirs.
    let mut over: usize = sorted
        .iter()
        .map(|s| {
            out[&s.member_id]
                .len()
                .saturating_sub(quota[s.member_id.as_str()])
        })
        .sum();
    let mut under: usize = sorted
        .iter()
        .map(|s| quota[s.member_id.as_str()].saturating_sub(out[&s.member_id].len()))
        .sum();
    let free_now = total - owner.len();
    for s in &sorted {
        while over > 0 && under > free_now && out[&s.member_id].len() > quota[s.member_id.as_str()]
        {
            let tp = out.get_mut(&s.member_id).unwrap().pop().unwrap();
            owner.remove(&tp);
            over -= 1;
            under -= 1;
        }
    }
    // 2. Place the rest on the least-loaded subscribed member.
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        let best = sorted
            .iter()
            .filter(|s| s.topics.contains(&tp.0))
            .min_by_key(|s| (out[&s.member_id].len(), s.member_id.clone()));
        if let Some(s) = best {
            out.get_mut(&s.member_id).unwrap().push(tp.clone());
            owner.insert(tp.clone(), s.member_id.as_str());
        }
    }
    // 3. Cooperative rule: nothing moves straight from one owner to another.
    let previous: HashMap<&TopicPartition, &str> = sorted
        .iter()
        .flat_map(|s| s.owned.iter().map(move |tp| (tp, s.member_id.as_str())))
        .collect();
    for (member, list) in out.iter_mut() {
        list.retain(|tp| previous.get(tp).is_none_or(|prev| *prev == member.as_str()));
        list.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.into(),
            instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
        }
    }

    #[test]
    fn range_gives_consecutive_partitions() {
        let parts = HashMap::from([("a".to_string(), 5), ("b".to_string(), 2)]);
        let a = range(
            &[member("m1", &["a", "b"], &[]), member("m2", &["a"], &[])],
            &parts,
        );
        assert_eq!(
            a["m1"],
            vec![
                ("a".into(), 0),
                ("a".into(), 1),
                ("a".into(), 2),
                ("b".into(), 0),
                ("b".into(), 1)
            ]
        );
        assert_eq!(a["m2"], vec![("a".into(), 3), ("a".into(), 4)]);
    }

    #[test]
    fn cooperative_sticky_balances_and_revokes_first() {
        let parts = HashMap::from([("t".to_string(), 6)]);
        let first = cooperative_sticky(&[member("m1", &["t"], &[])], &parts);
        assert_eq!(first["m1"].len(), 6);
        let owned: Vec<(&str, i32)> = (0..6).map(|p| ("t", p)).collect();
        // m2 joins: m1 keeps 3, gives up 3, and m2 gets none of them yet.
        let second = cooperative_sticky(
            &[member("m1", &["t"], &owned), member("m2", &["t"], &[])],
            &parts,
        );
        assert_eq!(second["m1"].len(), 3);
        assert!(second["m2"].is_empty());
        // After m1 revoked them, m2 gets the 3 freed partitions; m1 keeps its 3.
        let kept: Vec<(&str, i32)> = second["m1"].iter().map(|(t, p)| (t.as_str(), *p)).collect();
        let third = cooperative_sticky(
            &[member("m1", &["t"], &kept), member("m2", &["t"], &[])],
            &parts,
        );
        assert_eq!(third["m1"], second["m1"]);
        assert_eq!(third["m2"].len(), 3);
        let mut every: Vec<_> = third.values().flatten().cloned().collect();
        every.sort();
        assert_eq!(every.len(), 6);
        every.dedup();
        assert_eq!(every.len(), 6);
    }
}
