//! Leader election: what happens to partitions when a broker is fenced (its leaderships move
//! to the first live ISR member in replica order, and it leaves the ISRs; with no live ISR
//! member left, an eligible leader replica leads, else the partition goes offline unless unclean
//! election is enabled for the topic), when it registers again after an unclean shutdown (it
//! leaves the ISRs and ELRs too), and when it is unfenced (offline partitions it may lead get it
//! back as leader); and the elections asked for by ElectLeaders and the leader balancer
//! (`auto.leader.rebalance.enable`), decided as Kafka's controller decides them. Each change is
//! built by [`super::elr::Change`] (KIP-966's rules). Every change bumps the partition epoch, a
//! leader change the leader epoch: no two brokers ever lead one partition in the same epoch.

use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, MetadataRecord, PartitionImage, TopicImage};
use serde::{Deserialize, Serialize};

use super::elr::{Change, ElrRules};

/// The broker-wide settings an election reads when the topic does not override them (the
/// active controller's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defaults {
    /// `unclean.leader.election.enable`.
    pub unclean: bool,
    /// `min.insync.replicas`.
    pub min_isr: i32,
}

impl Defaults {
    /// This node's settings (the active controller's decide).
    pub fn of(broker: &crate::broker::Broker) -> Defaults {
        Defaults {
            unclean: broker.config.cluster.unclean_leader_election_enable,
            min_isr: broker.config.min_insync_replicas,
        }
    }
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
    defaults: Defaults,
    live: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    remove_broker(image, gone, false, defaults, live)
}

/// Partition changes once broker `id` registers again after an unclean shutdown (KIP-966): it
/// leaves every ISR and ELR, and what it led moves, as when it is fenced. `live` says which
/// brokers may lead.
pub fn on_unclean_restart(
    image: &MetadataImage,
    id: i32,
    defaults: Defaults,
    live: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    remove_broker(image, id, true, defaults, live)
}

/// Takes broker `id` out of the ISRs (and with `unclean_shutdown` out of the ELRs) and
/// elects new leaders where it led or where there was none.
fn remove_broker(
    image: &MetadataImage,
    id: i32,
    unclean_shutdown: bool,
    defaults: Defaults,
    live: impl Fn(i32) -> bool,
) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    let shutdown: &[i32] = if unclean_shutdown { &[id] } else { &[] };
    for topic in image.topics.values() {
        let rules = ElrRules::for_topic(image, topic, defaults.min_isr);
        for p in &topic.partitions {
            if !p.replicas.contains(&id) {
                continue;
            }
            let mut target = p.clone();
            target.isr.retain(|r| *r != id);
            if target.isr.is_empty() && !rules.enabled {
                // Without ELR the ISR is never emptied, so that the partition knows which
                // replica has every committed record.
                target.isr = p.isr.clone();
            }
            let mut change = Change::new(p, target, rules, shutdown);
            let leader = change.next().leader;
            if leader < 0 || leader == id || !change.eligible(leader) {
                change.elect(
                    |r| r != id && live(r),
                    unclean_enabled(topic, defaults.unclean),
                );
            }
            let next = change.build();
            if next != *p {
                out.push(next.to_record(topic.topic_id));
            }
        }
    }
    out
}

/// Partition changes once broker `back` is unfenced: leaderless partitions get a leader again
/// (it, if it is eligible: in the ISR, in the ELR with the ISR empty, or the last known leader;
/// any replica if the topic allows unclean elections).
pub fn on_broker_unfenced(
    image: &MetadataImage,
    back: i32,
    defaults: Defaults,
) -> Vec<MetadataRecord> {
    let live = |r: i32| r == back || image.brokers.get(&r).is_some_and(|b| !b.fenced);
    let mut out = Vec::new();
    for topic in image.topics.values() {
        let rules = ElrRules::for_topic(image, topic, defaults.min_isr);
        for p in &topic.partitions {
            if p.leader >= 0 || !p.replicas.contains(&back) {
                continue;
            }
            let mut change = Change::new(p, p.clone(), rules, &[]);
            change.elect(live, unclean_enabled(topic, defaults.unclean));
            let next = change.build();
            if next != *p {
                out.push(next.to_record(topic.topic_id));
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

/// One election asked for on partition `p` of `topic`, decided as Kafka's controller does: the
/// record with its new leader, or why there is none: ELECTION_NOT_NEEDED (the preferred replica
/// leads already; for an unclean election, there is a leader), PREFERRED_LEADER_NOT_AVAILABLE
/// (the preferred replica is fenced or not eligible, and no other change is due), or
/// ELIGIBLE_LEADERS_NOT_AVAILABLE (no replica is live). `live` says which brokers may lead.
pub fn elect(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
    kind: ElectionType,
    defaults: Defaults,
    live: impl Fn(i32) -> bool,
) -> Result<MetadataRecord, ResponseError> {
    let rules = ElrRules::for_topic(image, topic, defaults.min_isr);
    let mut change = Change::new(p, p.clone(), rules, &[]);
    match kind {
        ElectionType::Preferred => {
            let preferred = p.replicas.first().copied().unwrap_or(-1);
            if p.leader == preferred {
                return Err(ResponseError::ElectionNotNeeded);
            }
            let valid = |r: i32| change.eligible(r) && live(r);
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
            change.set_leader(leader);
        }
        ElectionType::Unclean => {
            if p.leader >= 0 {
                return Err(ResponseError::ElectionNotNeeded);
            }
            // A live ISR or ELR member (or the last known leader) first; else any live replica,
            // whose log is the partition's from then on: it alone is in sync.
            if change.elect(&live, true) < 0 {
                return Err(ResponseError::EligibleLeadersNotAvailable);
            }
        }
    }
    Ok(change.build().to_record(topic.topic_id))
}

/// The leader balancer's elections: a preferred election for every partition not led by its
/// first replica where it changes the leader (the preferred replica is live and in the ISR), at
/// most `max` of them, as Kafka 4's controller balances (it has no per-broker threshold).
pub fn balance_leaders(
    image: &MetadataImage,
    defaults: Defaults,
    live: impl Fn(i32) -> bool,
    max: usize,
) -> Vec<MetadataRecord> {
    image
        .topics
        .values()
        .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
        .filter(|(_, p)| p.replicas.first() != Some(&p.leader))
        .filter_map(|(t, p)| elect(image, t, p, ElectionType::Preferred, defaults, &live).ok())
        .take(max)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use uuid::Uuid;

    /// Without ELR (eligible.leader.replicas.version 0): the rules before KIP-966.
    fn image(isr: Vec<i32>, leader: i32, unclean: bool) -> MetadataImage {
        let mut img = elr_image(isr, leader, unclean, &[]);
        img.features.insert(
            super::super::features::ELIGIBLE_LEADER_REPLICAS_VERSION.into(),
            0,
        );
        img
    }

    const D: Defaults = Defaults {
        unclean: false,
        min_isr: 2,
    };

    /// With ELR (the default level), min.insync.replicas 2 (the default `D`), brokers 1-3.
    fn elr_image(isr: Vec<i32>, leader: i32, unclean: bool, elr: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        img.topic_names.insert(Uuid::nil(), "t".into());
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
                    eligible_leader_replicas: elr.to_vec(),
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
            one(on_broker_fenced(&img, 1, D, |_| true)),
            (vec![2, 3], 2, 5, 10)
        );
        // A fenced follower only leaves the ISR: same leader epoch, new partition epoch.
        assert_eq!(
            one(on_broker_fenced(&img, 3, D, |_| true)),
            (vec![1, 2], 1, 4, 10)
        );
        // The next ISR member that is alive leads.
        assert_eq!(
            one(on_broker_fenced(&img, 1, D, |r| r != 2)),
            (vec![2, 3], 3, 5, 10)
        );
    }

    #[test]
    fn no_live_isr_member_leaves_the_partition_offline_unless_unclean() {
        let img = image(vec![1], 1, false);
        assert_eq!(
            one(on_broker_fenced(&img, 1, D, |_| true)),
            (vec![1], -1, 5, 10)
        );
        let img = image(vec![1], 1, true);
        assert_eq!(
            one(on_broker_fenced(&img, 1, D, |_| true)),
            (vec![2], 2, 5, 10)
        );
        // The last ISR member comes back and leads again.
        let offline = image(vec![1], -1, false);
        assert_eq!(one(on_broker_unfenced(&offline, 1, D)), (vec![1], 1, 5, 10));
        assert!(on_broker_unfenced(&offline, 2, D).is_empty());
    }

    #[test]
    fn preferred_elections_as_kafka_decides_them() {
        // Led by 2 after 1 was away; 1 is back in the ISR: it leads again, a new leader epoch.
        let img = image(vec![1, 2, 3], 2, false);
        let p = &img.topics["t"].partitions[0];
        let rec = elect(
            &img,
            &img.topics["t"],
            p,
            ElectionType::Preferred,
            D,
            |_| true,
        )
        .unwrap();
        assert_eq!(one(vec![rec]), (vec![1, 2, 3], 1, 5, 10));
        // 1 is not in the ISR, or fenced: the current leader stays.
        let out = image(vec![2, 3], 2, false);
        let p = &out.topics["t"].partitions[0];
        assert_eq!(
            elect(
                &img,
                &img.topics["t"],
                p,
                ElectionType::Preferred,
                D,
                |_| true
            )
            .unwrap_err(),
            ResponseError::PreferredLeaderNotAvailable
        );
        let p = &img.topics["t"].partitions[0];
        assert_eq!(
            elect(&img, &img.topics["t"], p, ElectionType::Preferred, D, |r| r
                != 1)
            .unwrap_err(),
            ResponseError::PreferredLeaderNotAvailable
        );
        // Already led by the preferred replica.
        let led = image(vec![1, 2, 3], 1, false);
        let p = &led.topics["t"].partitions[0];
        assert_eq!(
            elect(
                &img,
                &img.topics["t"],
                p,
                ElectionType::Preferred,
                D,
                |_| true
            )
            .unwrap_err(),
            ResponseError::ElectionNotNeeded
        );
        // The balancer moves exactly the partitions a preferred election would.
        assert_eq!(balance_leaders(&img, D, |_| true, 10).len(), 1);
        assert!(balance_leaders(&img, D, |r| r != 1, 10).is_empty());
        assert!(balance_leaders(&led, D, |_| true, 10).is_empty());
        assert!(balance_leaders(&img, D, |_| true, 0).is_empty());
    }

    #[test]
    fn unclean_elections_only_for_leaderless_partitions() {
        let img = image(vec![1], -1, false);
        let led = image(vec![1, 2, 3], 1, false);
        let p = &led.topics["t"].partitions[0];
        assert_eq!(
            elect(&img, &img.topics["t"], p, ElectionType::Unclean, D, |_| {
                true
            })
            .unwrap_err(),
            ResponseError::ElectionNotNeeded
        );
        // The last ISR member is down: a live replica outside the ISR leads, alone in the ISR.
        let offline = image(vec![1], -1, false);
        let p = &offline.topics["t"].partitions[0];
        let rec = elect(&img, &img.topics["t"], p, ElectionType::Unclean, D, |r| {
            r != 1
        })
        .unwrap();
        assert_eq!(one(vec![rec]), (vec![2], 2, 5, 10));
        // A live ISR member is elected cleanly first.
        let rec = elect(&img, &img.topics["t"], p, ElectionType::Unclean, D, |_| {
            true
        })
        .unwrap();
        assert_eq!(one(vec![rec]), (vec![1], 1, 5, 10));
        // Nobody live.
        assert_eq!(
            elect(&img, &img.topics["t"], p, ElectionType::Unclean, D, |_| {
                false
            })
            .unwrap_err(),
            ResponseError::EligibleLeadersNotAvailable
        );
        assert_eq!(ElectionType::from_code(1), Some(ElectionType::Unclean));
        assert_eq!(ElectionType::from_code(2), None);
    }

    /// Applies `recs` to `img` and returns the partition: (isr, leader, elr, last known elr).
    fn step(
        img: &mut MetadataImage,
        recs: Vec<MetadataRecord>,
    ) -> (Vec<i32>, i32, Vec<i32>, Vec<i32>) {
        assert_eq!(recs.len(), 1, "{recs:?}");
        img.apply(&recs[0]);
        let p = &img.topics["t"].partitions[0];
        (
            p.isr.clone(),
            p.leader,
            p.eligible_leader_replicas.clone(),
            p.last_known_elr.clone(),
        )
    }

    fn fence(img: &mut MetadataImage, id: i32) -> Vec<MetadataRecord> {
        if let Some(b) = img.brokers.get_mut(&id) {
            b.fenced = true;
        }
        let live = |r: i32| r != id && img.brokers.get(&r).is_none_or(|b| !b.fenced);
        on_broker_fenced(img, id, D, live)
    }

    #[test]
    fn fenced_followers_become_eligible_and_one_leads_when_the_isr_empties() {
        let mut img = elr_image(vec![1, 2, 3], 1, false, &[]);
        for id in 1..=3 {
            img.brokers.insert(
                id,
                runnel_metadata::BrokerImage {
                    id,
                    incarnation_id: Uuid::nil(),
                    epoch: 1,
                    endpoints: vec![],
                    rack: None,
                    fenced: false,
                },
            );
        }
        // Follower 2 goes: the ISR is at min ISR. Follower 3 goes: below it, 3 is eligible.
        let recs = fence(&mut img, 2);
        assert_eq!(step(&mut img, recs), (vec![1, 3], 1, vec![], vec![]));
        let recs = fence(&mut img, 3);
        assert_eq!(step(&mut img, recs), (vec![1], 1, vec![3], vec![]));
        // The leader goes: the ISR empties (no fenced member stays in it), the partition is
        // offline, its last leader known.
        let recs = fence(&mut img, 1);
        assert_eq!(step(&mut img, recs), (vec![], -1, vec![1, 3], vec![1]));
        let p = img.topics["t"].partitions[0].clone();
        assert_eq!((p.leader_epoch, p.partition_epoch), (5, 12));
        // 2 comes back first: not eligible, nothing changes (no unclean election).
        assert!(on_broker_unfenced(&img, 2, D).is_empty());
        // An unclean ElectLeaders would have to pass over 2 as long as 3 or 1 is not back...
        let live2 = |r: i32| r == 2;
        let rec = elect(&img, &img.topics["t"], &p, ElectionType::Unclean, D, live2).unwrap();
        let mut unclean = img.clone();
        assert_eq!(step(&mut unclean, vec![rec]), (vec![2], 2, vec![], vec![]));
        // ...and elects 3 cleanly once it is live.
        let rec = elect(&img, &img.topics["t"], &p, ElectionType::Unclean, D, |r| {
            r != 1
        })
        .unwrap();
        let mut clean = img.clone();
        assert_eq!(step(&mut clean, vec![rec]), (vec![3], 3, vec![1], vec![]));
        // 3 registers after a clean shutdown and is unfenced: it leads, alone in the ISR.
        let recs = on_broker_unfenced(&img, 3, D);
        assert_eq!(step(&mut img, recs), (vec![3], 3, vec![1], vec![]));
        assert_eq!(img.topics["t"].partitions[0].leader_epoch, 6);
    }

    #[test]
    fn an_unclean_restart_leaves_the_isr_and_the_elr() {
        let mut img = elr_image(vec![], -1, false, &[1, 3]);
        {
            let t = std::sync::Arc::make_mut(img.topics.get_mut("t").unwrap());
            t.partitions[0].last_known_elr = vec![1];
        }
        // 3 restarts uncleanly (1 is down): out of the ELR; 1 is still eligible.
        let recs = on_unclean_restart(&img, 3, D, |r| r == 2);
        assert_eq!(step(&mut img, recs), (vec![], -1, vec![1], vec![1]));
        assert!(on_broker_unfenced(&img, 3, D).is_empty());
        // A broker in the ISR restarting uncleanly leaves it (a follower: the leader stays).
        let mut led = elr_image(vec![1, 2], 1, false, &[]);
        let recs = on_unclean_restart(&led, 2, D, |r| r != 2);
        assert_eq!(step(&mut led, recs), (vec![1], 1, vec![], vec![]));
        // Not a member of anything: no change.
        assert!(on_unclean_restart(&led, 2, D, |r| r != 2).is_empty());
    }

    #[test]
    fn unclean_election_on_unfencing_when_the_topic_allows_it_and_nothing_is_eligible() {
        let img = elr_image(vec![], -1, true, &[1]);
        // 1 (ELR) is fenced; 2 comes back: with unclean.leader.election.enable it leads.
        let mut got = img.clone();
        assert_eq!(
            step(&mut got, on_broker_unfenced(&img, 2, D)),
            (vec![2], 2, vec![], vec![])
        );
        let strict = elr_image(vec![], -1, false, &[1]);
        assert!(on_broker_unfenced(&strict, 2, D).is_empty());
    }
}
