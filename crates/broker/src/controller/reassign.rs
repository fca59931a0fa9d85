//! Partition reassignment (KIP-455), decided as Kafka's controller decides it. A reassignment
//! toward target replicas first widens the replica set to the target followed by the replicas
//! leaving (`adding_replicas` / `removing_replicas` say which); the leader brings the new
//! replicas into the ISR as they catch up, and once every target replica is in the ISR the
//! reassignment ends: the leaving replicas are dropped from the replicas and the ISR, a leader that
//! left is replaced from the new ISR, and the leader epoch is bumped so the removed replicas stop
//! fetching. Cancelling drops the replicas being added. Every change of a partition's record goes
//! through [`settle`], so the ISR change that brings the last target replica in completes it.

use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, PartitionImage, TopicImage};

use super::elr::{Change, ElrRules};
use super::{
    election, elr, propose, submit, ControllerError, ControllerRequest, PartitionElection,
};
use crate::broker::Broker;

/// What AlterPartitionReassignments asks, by topic: each partition's target replicas, or `None`
/// to cancel its reassignment.
pub type Reassignments = Vec<(String, Vec<(i32, Option<Vec<i32>>)>)>;

fn invalid(message: String) -> ControllerError {
    ControllerError::new(ResponseError::InvalidReplicaAssignment, message)
}

/// Kafka's checks of a manual assignment: not empty, every broker registered, none twice.
pub fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), ControllerError> {
    if target.is_empty() {
        return Err(invalid(
            "The manual partition assignment includes an empty replica list.".into(),
        ));
    }
    let mut sorted = target.to_vec();
    sorted.sort_unstable();
    for (i, id) in sorted.iter().enumerate() {
        if !image.brokers.contains_key(id) {
            return Err(invalid(format!(
                "The manual partition assignment includes broker {id}, but no such broker is registered."
            )));
        }
        if i > 0 && sorted[i - 1] == *id {
            return Err(invalid(format!(
                "The manual partition assignment includes the broker {id} more than once."
            )));
        }
    }
    Ok(())
}

/// The partition's next state for a reassignment toward `target`, or its cancellation when
/// `None`; `Ok(None)` when nothing changes. The state is [`settle`]d (it may complete at once:
/// a reorder, or only removals of replicas with in-sync ones left). `unclean` says whether the
/// topic allows unclean leader election (a cancellation that leaves no in-sync replica needs it),
/// `elr` how its ELR is kept.
pub fn plan(
    image: &MetadataImage,
    topic: &TopicImage,
    p: &PartitionImage,
    target: Option<&[i32]>,
    allow_rf_change: bool,
    unclean: bool,
    elr: ElrRules,
) -> Result<Option<PartitionImage>, ControllerError> {
    let mut next = p.clone();
    match target {
        None => {
            if !p.reassigning() {
                return Err(ControllerError::new(
                    ResponseError::NoReassignmentInProgress,
                    "No partition reassignment is in progress.",
                ));
            }
            next.replicas.retain(|r| !p.adding_replicas.contains(r));
            next.isr.retain(|r| !p.adding_replicas.contains(r));
            if next.isr.is_empty() && !unclean {
                return Err(invalid(format!(
                    "Unable to revert partition assignment for {}:{} because it would require an unclean leader election.",
                    topic.name, p.partition
                )));
            }
            next.adding_replicas.clear();
            next.removing_replicas.clear();
        }
        Some(target) => {
            validate_target(image, target)?;
            if !allow_rf_change && target.len() != p.target_replicas().len() {
                return Err(ControllerError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "The replication factor is changed from {} to {}",
                        p.target_replicas().len(),
                        target.len()
                    ),
                ));
            }
            let current = &p.replicas;
            let removing: Vec<i32> = sorted(current.iter().filter(|r| !target.contains(r)));
            let adding: Vec<i32> = sorted(target.iter().filter(|r| !current.contains(r)));
            next.replicas = target.to_vec();
            next.replicas.extend(&removing);
            next.adding_replicas = adding;
            next.removing_replicas = removing;
        }
    }
    let next = settle(image, p, next, elr);
    Ok((next != *p).then_some(next))
}

fn sorted<'a>(ids: impl Iterator<Item = &'a i32>) -> Vec<i32> {
    let mut v: Vec<i32> = ids.copied().collect();
    v.sort_unstable();
    v
}

/// Finishes a proposed change `next` of partition `old`: completes a reassignment once every
/// target replica is in the ISR (Kafka's rule), keeps the ELR by `elr`'s rules
/// ([`super::elr::Change`]), elects a new leader when the current one is no longer a replica or
/// eligible (the first live eligible replica in replica order, none when there is none), bumps
/// the leader epoch on a leader change or when replicas leave, and the partition epoch whenever
/// anything changed.
pub fn settle(
    image: &MetadataImage,
    old: &PartitionImage,
    mut next: PartitionImage,
    elr: ElrRules,
) -> PartitionImage {
    if next.reassigning() {
        let isr: Vec<i32> = next
            .isr
            .iter()
            .copied()
            .filter(|r| !next.removing_replicas.contains(r))
            .collect();
        let target = next.target_replicas();
        if !isr.is_empty() && target.iter().all(|r| isr.contains(r)) {
            next.replicas = next.target_replicas();
            next.isr = isr;
            next.adding_replicas.clear();
            next.removing_replicas.clear();
        }
    }
    let replicas_changed = next.replicas != old.replicas;
    let mut change = Change::new(old, next, elr, &[]);
    let live = |r: i32| crate::handlers::is_live(image, r);
    let leader = change.next().leader;
    if !(change.eligible(leader) && live(leader)) && (leader >= 0 || replicas_changed) {
        change.elect(live, false);
    }
    change.build()
}

/// A reassignment in progress as ListPartitionReassignments shows it: (replicas, adding,
/// removing).
pub fn ongoing(p: &PartitionImage) -> Option<(Vec<i32>, Vec<i32>, Vec<i32>)> {
    p.reassigning().then(|| {
        (
            p.replicas.clone(),
            p.adding_replicas.clone(),
            p.removing_replicas.clone(),
        )
    })
}

/// Runs AlterPartitionReassignments: each partition's change decided from the newest image
/// ([`reassign::plan`]), the accepted ones committed together; returns each partition's
/// outcome, by topic.
pub(crate) fn exec_alter_reassignments(
    broker: &Broker,
    changes: Reassignments,
    allow_rf_change: bool,
) -> Result<Vec<(String, Vec<PartitionElection>)>, ControllerError> {
    let image = broker.image();
    let mut records = Vec::new();
    let mut results = Vec::new();
    for (name, parts) in changes {
        let mut out = Vec::new();
        for (index, target) in parts {
            let outcome = match image.topic(&name) {
                None => Err(ControllerError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("Unable to find a topic named {name}."),
                )),
                Some(topic) => match topic.partitions.iter().find(|p| p.partition == index) {
                    None => Err(ControllerError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("Unable to find partition {name}:{index}."),
                    )),
                    Some(p) => {
                        let unclean = election::unclean_enabled(
                            topic,
                            broker.config.cluster.unclean_leader_election_enable,
                        );
                        plan(
                            &image,
                            topic,
                            p,
                            target.as_deref(),
                            allow_rf_change,
                            unclean,
                            elr::ElrRules::for_topic(
                                &image,
                                topic,
                                broker.config.min_insync_replicas,
                            ),
                        )
                        .map(|next| {
                            if let Some(next) = next {
                                tracing::info!(topic = %name, partition = index, target = ?target, replicas = ?next.replicas, "reassignment");
                                records.push(next.to_record(topic.topic_id));
                            }
                        })
                    }
                },
            };
            out.push(match outcome {
                Ok(()) => PartitionElection {
                    partition: index,
                    error_code: 0,
                    message: None,
                },
                Err(e) => PartitionElection {
                    partition: index,
                    error_code: e.error.code(),
                    message: Some(e.message),
                },
            });
        }
        results.push((name, out));
    }
    if !records.is_empty() {
        propose(broker, records)?;
    }
    Ok(results)
}

/// Runs AlterPartitionReassignments on the active controller; returns each partition's
/// outcome, by topic.
pub fn alter_reassignments(
    broker: &Broker,
    changes: Reassignments,
    allow_rf_change: bool,
) -> Result<Vec<(String, Vec<PartitionElection>)>, ControllerError> {
    submit(
        broker,
        ControllerRequest::AlterReassignments {
            changes,
            allow_rf_change,
        },
    )
    .map(|ok| ok.elections)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::BrokerImage;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn image(brokers: &[i32], fenced: &[i32]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in brokers {
            img.brokers.insert(
                *id,
                BrokerImage {
                    id: *id,
                    incarnation_id: Uuid::nil(),
                    epoch: 1,
                    endpoints: vec![],
                    rack: None,
                    fenced: fenced.contains(id),
                },
            );
        }
        img
    }

    fn topic() -> TopicImage {
        TopicImage {
            name: "t".into(),
            topic_id: Uuid::nil(),
            partitions: vec![],
            configs: BTreeMap::new(),
        }
    }

    fn part(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionImage {
        PartitionImage {
            partition: 0,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 10,
            adding_replicas: vec![],
            removing_replicas: vec![],
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
        }
    }

    /// `plan` with the replication factor free to change, no unclean election, ELR off.
    fn move_to(
        img: &MetadataImage,
        p: &PartitionImage,
        target: Option<&[i32]>,
    ) -> Result<Option<PartitionImage>, ControllerError> {
        plan(img, &topic(), p, target, true, false, ElrRules::OFF)
    }

    #[test]
    fn a_move_widens_then_completes_when_the_new_replicas_are_in_sync() {
        let img = image(&[1, 2, 3, 4], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let started = move_to(&img, &p, Some(&[4, 2, 3])).unwrap().unwrap();
        assert_eq!(started.replicas, vec![4, 2, 3, 1]);
        assert_eq!(started.adding_replicas, vec![4]);
        assert_eq!(started.removing_replicas, vec![1]);
        assert_eq!(
            (started.leader, started.leader_epoch),
            (1, 5),
            "nothing left yet"
        );
        assert_eq!(started.partition_epoch, 11);
        // The leader brings 4 into the ISR: the reassignment completes, 1 leaves and a new
        // leader is elected from the target.
        let grown = PartitionImage {
            isr: vec![1, 2, 3, 4],
            ..started.clone()
        };
        let done = settle(&img, &started, grown, ElrRules::OFF);
        assert_eq!(done.replicas, vec![4, 2, 3]);
        assert_eq!(done.isr, vec![2, 3, 4]);
        assert!(!done.reassigning());
        assert_eq!(done.leader, 4);
        assert_eq!((done.leader_epoch, done.partition_epoch), (6, 12));
    }

    #[test]
    fn a_leader_that_stays_keeps_leading_but_the_epoch_moves_when_replicas_leave() {
        let img = image(&[1, 2, 3], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 2);
        let done = move_to(&img, &p, Some(&[1, 2])).unwrap().unwrap();
        assert_eq!(
            (done.replicas.clone(), done.isr.clone()),
            (vec![1, 2], vec![1, 2])
        );
        assert_eq!((done.leader, done.leader_epoch), (2, 6));
        assert!(!done.reassigning());
    }

    #[test]
    fn a_reorder_completes_at_once_and_the_same_target_changes_nothing() {
        let img = image(&[1, 2, 3], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let done = move_to(&img, &p, Some(&[3, 1, 2])).unwrap().unwrap();
        assert_eq!(
            (done.replicas.clone(), done.leader, done.leader_epoch),
            (vec![3, 1, 2], 1, 5)
        );
        assert!(move_to(&img, &p, Some(&[1, 2, 3])).unwrap().is_none());
    }

    #[test]
    fn cancelling_drops_the_adding_replicas() {
        let img = image(&[1, 2, 3, 4], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let started = move_to(&img, &p, Some(&[4, 2, 3])).unwrap().unwrap();
        let back = move_to(&img, &started, None).unwrap().unwrap();
        assert_eq!(
            (back.replicas.clone(), back.isr.clone()),
            (vec![2, 3, 1], vec![1, 2, 3])
        );
        assert!(!back.reassigning());
        let err = move_to(&img, &back, None).unwrap_err();
        assert_eq!(err.error, ResponseError::NoReassignmentInProgress);
    }

    #[test]
    fn bad_targets_are_refused_with_kafka_errors() {
        let img = image(&[1, 2, 3], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        for (target, error) in [
            (vec![], ResponseError::InvalidReplicaAssignment),
            (vec![1, 1, 2], ResponseError::InvalidReplicaAssignment),
            (vec![1, 2, 9], ResponseError::InvalidReplicaAssignment),
        ] {
            let e = move_to(&img, &p, Some(&target)).unwrap_err();
            assert_eq!(e.error, error, "{target:?}: {}", e.message);
        }
        let e = plan(
            &img,
            &topic(),
            &p,
            Some(&[1, 2]),
            false,
            false,
            ElrRules::OFF,
        )
        .unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
    }

    #[test]
    fn a_move_away_from_every_in_sync_replica_waits_for_the_new_ones() {
        let img = image(&[1, 2, 3, 4, 5, 6], &[]);
        let p = part(&[1, 2, 3], &[1, 2, 3], 1);
        let started = move_to(&img, &p, Some(&[4, 5, 6])).unwrap().unwrap();
        assert_eq!(started.leader, 1);
        let partly = settle(
            &img,
            &started,
            PartitionImage {
                isr: vec![1, 2, 3, 4, 5],
                ..started.clone()
            },
            ElrRules::OFF,
        );
        assert!(partly.reassigning(), "6 is not in sync yet");
        // Asking for the same target again keeps the move going (nothing is added any more:
        // every target replica is a replica already) and it completes the same way.
        let again = move_to(&img, &partly, Some(&[4, 5, 6])).unwrap().unwrap();
        assert_eq!(
            (
                again.adding_replicas.clone(),
                again.removing_replicas.clone()
            ),
            (vec![], vec![1, 2, 3])
        );
        let partly = again;
        let done = settle(
            &img,
            &partly,
            PartitionImage {
                isr: vec![1, 2, 3, 4, 5, 6],
                ..partly.clone()
            },
            ElrRules::OFF,
        );
        assert_eq!((done.replicas.clone(), done.leader), (vec![4, 5, 6], 4));
    }
}
