//! Leader election: what happens to partitions when a broker is fenced (its leaderships move
//! to the first live ISR member in replica order, and it leaves the ISRs it shares with others;
//! with no live ISR member left the partition goes offline, unless unclean election is enabled
//! for the topic) and when it is unfenced (offline partitions whose last ISR member it was get
//! it back as leader); and the elections asked for by ElectLeaders and the leader balancer
//! (`auto.leader.rebalance.enable`), decided as Kafka's controller decides them. Every change
//! bumps the partition epoch, a leader change the leader epoch: no two brokers ever lead one
//! partition in the same epoch.

use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The record for partition `p` with a new ISR and leader.
fn changed(topic_id: Uuid, p: &PartitionImage, isr: Vec<i32>, leader: i32) -> MetadataRecord {
    PartitionImage {
        leader_epoch: if leader != p.leader {
            p.leader_epoch + 1
        } else {
            p.leader_epoch
        },
        isr,
        leader,
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    }
    .to_record(topic_id)
}

/// Whether unclean leader election is enabled for a topic (its override, else the broker's).
pub fn unclean_enabled(topic: &TopicImage, broker_default: bool) -> bool {
    match topic.configs.get("unclean.leader.election.enable") {
        Some(v) => v == "true",
        None => broker_default,
    }
}

/// Partition changes once broker `gone` is fenced. `live` says which brokers may lead.
pub fn on_broker_fenced(
    image: &MetadataImage,
    gone: i32,
    unclean_default: bool,
    live: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if !p.replicas.contains(&gone) {
                continue;
            }
            // It leaves the ISR unless it is the last member (the ISR is never emptied, so that
            // the partition knows which replica has every committed record).
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != gone).collect();
            if isr.is_empty() {
                isr = p.isr.clone();
            }
            let mut leader = p.leader;
            if p.leader == gone || p.leader < 0 {
                leader = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| *r != gone && isr.contains(r) && live(*r))
                    .unwrap_or(-1);
                if leader < 0 && unclean_enabled(topic, unclean_default) {
                    if let Some(r) = p.replicas.iter().copied().find(|r| *r != gone && live(*r)) {
                        leader = r;
                        isr = vec![r];
                    }
                }
            }
            if isr != p.isr || leader != p.leader {
                out.push(changed(topic.topic_id, p, isr, leader));
            }
        }
    }
    out
}

/// Partition changes once broker `back` is unfenced: leaderless partitions it is in the ISR of
/// are led by it again.
pub fn on_broker_unfenced(image: &MetadataImage, back: i32) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for topic in image.topics.values() {
        for p in &topic.partitions {
            if p.leader < 0 && p.isr.contains(&back) {
                out.push(changed(topic.topic_id, p, p.isr.clone(), back));
            }
        }
    }
    out
}

/// ElectLeaders' election types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// 0: the first replica (the preferred one) leads, if it is live and in the ISR.
    Preferred,
    /// 1: a partition without a leader gets one: a live ISR member, else any live replica (an
    /// unclean election: what it lacks of the old leader's log is lost).
    Unclean,
}

impl ElectionType {
    /// The type of ElectLeaders' `election_type` code, if it is one.
    pub fn from_code(code: i8) -> Option<ElectionType> {
        match code {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }

    /// The name Kafka's tools print (`PREFERRED`, `UNCLEAN`).
    pub fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// One election asked for on partition `p`, decided as Kafka's controller does: the record
/// with its new leader, or why there is none: ELECTION_NOT_NEEDED (the preferred replica leads
/// already; for an unclean election, there is a leader), PREFERRED_LEADER_NOT_AVAILABLE (the
/// preferred replica is fenced or out of the ISR, and no other change is due), or
/// ELIGIBLE_LEADERS_NOT_AVAILABLE (no replica is live). `live` says which brokers may lead.
pub fn elect(
    topic_id: Uuid,
    p: &PartitionImage,
    kind: ElectionType,
    live: impl Fn(i32) -> bool,
) -> Result<MetadataRecord, ResponseError> {
    let valid = |r: i32| r >= 0 && p.isr.contains(&r) && live(r);
    match kind {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                return Err(ResponseError::ElectionNotNeeded);
            }
            let leader = if valid(preferred) {
                preferred
            } else if valid(p.leader) {
                p.leader
            } else {
                p.replicas
                    .iter()
                    .skip(1)
                    .copied()
                    .find(|r| valid(*r))
                    .unwrap_or(-1)
            };
            if leader == p.leader {
                return Err(ResponseError::PreferredLeaderNotAvailable);
            }
            Ok(changed(topic_id, p, p.isr.clone(), leader))
        }
        ElectionType::Unclean => {
            if p.leader >= 0 {
                return Err(ResponseError::ElectionNotNeeded);
            }
            if let Some(r) = p.replicas.iter().copied().find(|r| valid(*r)) {
                return Ok(changed(topic_id, p, p.isr.clone(), r));
            }
            match p.replicas.iter().copied().find(|r| live(*r)) {
                // The new leader's log is the partition's from now on: it alone is in sync.
                Some(r) => Ok(changed(topic_id, p, vec![r], r)),
                None => Err(ResponseError::EligibleLeadersNotAvailable),
            }
        }
    }
}

/// The leader balancer's elections: a preferred election for every partition not led by its
/// first replica where it changes the leader (the preferred replica is live and in the ISR), at
/// most `max` of them, as Kafka 4's controller balances (it has no per-broker threshold).
pub fn balance_leaders(
    image: &MetadataImage,
    live: impl Fn(i32) -> bool,
    max: usize,
) -> Vec<MetadataRecord> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, p)))
        .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
        .filter_map(|(id, p)| elect(id, p, ElectionType::Preferred, &live).ok())
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn image(isr: Vec<i32>, leader: i32, unclean: bool) -> MetadataImage {
        let mut img = MetadataImage::default();
        let mut configs = BTreeMap::new();
        if unclean {
            configs.insert("unclean.leader.election.enable".into(), "true".into());
        }
        img.topics.insert(
            "t".into(),
            Arc::new(TopicImage {
                name: "t".into(),
                topic_id: Uuid::nil(),
                partitions: vec![PartitionImage {
                    partition: 0,
                    replicas: vec![1, 2, 3],
                    isr,
                    leader,
                    leader_epoch: 4,
                    partition_epoch: 9,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![],
                }],
                configs,
            }),
        );
        img
    }

    fn one(recs: Vec<MetadataRecord>) -> (Vec<i32>, i32, i32, i32) {
        assert_eq!(recs.len(), 1, "{recs:?}");
        match &recs[0] {
            MetadataRecord::Partition {
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                ..
            } => (isr.clone(), *leader, *leader_epoch, *partition_epoch),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fenced_leader_is_replaced_from_the_isr() {
        let img = image(vec![1, 2, 3], 1, false);
        assert_eq!(
            one(on_broker_fenced(&img, 1, false, |_| true)),
            (vec![2, 3], 2, 5, 10)
        );
        // A fenced follower only leaves the ISR: same leader epoch, new partition epoch.
        assert_eq!(
            one(on_broker_fenced(&img, 3, false, |_| true)),
            (vec![1, 2], 1, 4, 10)
        );
        // The next ISR member that is alive leads.
        assert_eq!(
            one(on_broker_fenced(&img, 1, false, |r| r != 2)),
            (vec![2, 3], 3, 5, 10)
        );
    }

    #[test]
    fn no_live_isr_member_leaves_the_partition_offline_unless_unclean() {
        let img = image(vec![1], 1, false);
        assert_eq!(
            one(on_broker_fenced(&img, 1, false, |_| true)),
            (vec![1], -1, 5, 10)
        );
        let img = image(vec![1], 1, true);
        assert_eq!(
            one(on_broker_fenced(&img, 1, false, |_| true)),
            (vec![2], 2, 5, 10)
        );
        // The last ISR member comes back and leads again.
        let offline = image(vec![1], -1, false);
        assert_eq!(one(on_broker_unfenced(&offline, 1)), (vec![1], 1, 5, 10));
        assert!(on_broker_unfenced(&offline, 2).is_empty());
    }

    #[test]
    fn preferred_elections_as_kafka_decides_them() {
        // Led by 2 after 1 was away; 1 is back in the ISR: it leads again, a new leader epoch.
        let img = image(vec![1, 2, 3], 2, false);
        let p = &img.topics["t"].partitions[0];
        let rec = elect(Uuid::nil(), p, ElectionType::Preferred, |_| true).unwrap();
        assert_eq!(one(vec![rec]), (vec![1, 2, 3], 1, 5, 10));
        // 1 is not in the ISR, or fenced: the current leader stays.
        let out = image(vec![2, 3], 2, false);
        let p = &out.topics["t"].partitions[0];
        assert_eq!(
            elect(Uuid::nil(), p, ElectionType::Preferred, |_| true).unwrap_err(),
            ResponseError::PreferredLeaderNotAvailable
        );
        let p = &img.topics["t"].partitions[0];
        assert_eq!(
            elect(Uuid::nil(), p, ElectionType::Preferred, |r| r != 1).unwrap_err(),
            ResponseError::PreferredLeaderNotAvailable
        );
        // Already led by the preferred replica.
        let led = image(vec![1, 2, 3], 1, false);
        let p = &led.topics["t"].partitions[0];
        assert_eq!(
            elect(Uuid::nil(), p, ElectionType::Preferred, |_| true).unwrap_err(),
            ResponseError::ElectionNotNeeded
        );
        // The balancer moves exactly the partitions a preferred election would.
        assert_eq!(balance_leaders(&img, |_| true, 10).len(), 1);
        assert!(balance_leaders(&img, |r| r != 1, 10).is_empty());
        assert!(balance_leaders(&led, |_| true, 10).is_empty());
        assert!(balance_leaders(&img, |_| true, 0).is_empty());
    }

    #[test]
    fn unclean_elections_only_for_leaderless_partitions() {
        let led = image(vec![1, 2, 3], 1, false);
        let p = &led.topics["t"].partitions[0];
        assert_eq!(
            elect(Uuid::nil(), p, ElectionType::Unclean, |_| true).unwrap_err(),
            ResponseError::ElectionNotNeeded
        );
        // The last ISR member is down: a live replica outside the ISR leads, alone in the ISR.
        let offline = image(vec![1], -1, false);
        let p = &offline.topics["t"].partitions[0];
        let rec = elect(Uuid::nil(), p, ElectionType::Unclean, |r| r != 1).unwrap();
        assert_eq!(one(vec![rec]), (vec![2], 2, 5, 10));
        // A live ISR member is elected cleanly first.
        let rec = elect(Uuid::nil(), p, ElectionType::Unclean, |_| true).unwrap();
        assert_eq!(one(vec![rec]), (vec![1], 1, 5, 10));
        // Nobody live.
        assert_eq!(
            elect(Uuid::nil(), p, ElectionType::Unclean, |_| false).unwrap_err(),
            ResponseError::EligibleLeadersNotAvailable
        );
        assert_eq!(ElectionType::from_code(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_code(2), None);
    }
}
