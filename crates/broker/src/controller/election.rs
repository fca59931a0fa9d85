//! Leader election: what happens to partitions when a broker is fenced (its leaderships move
//! to the first live ISR member in replica order, and it leaves the ISRs it shares with others;
//! with no live ISR member left the partition goes offline, unless unclean election is enabled
//! for the topic) and when it is unfenced (offline partitions whose last ISR member it was get
//! it back as leader). Every change bumps the partition epoch, a leader change the leader epoch:
//! no two brokers ever lead one partition in the same epoch.

use runnel_metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage};
use uuid::Uuid;

/// The record for partition `p` with a new ISR and leader.
fn changed(topic_id: Uuid, p: &PartitionImage, isr: Vec<i32>, leader: i32) -> MetadataRecord {
    MetadataRecord::Partition {
        topic_id,
        partition: p.partition,
        replicas: p.replicas.clone(),
        leader_epoch: if leader != p.leader {
            p.leader_epoch + 1
        } else {
            p.leader_epoch
        },
        isr,
        leader,
        partition_epoch: p.partition_epoch + 1,
    }
}

/// Whether unclean leader election is enabled for a topic (its override, else the broker's).
fn unclean_enabled(topic: &TopicImage, broker_default: bool) -> bool {
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
}
