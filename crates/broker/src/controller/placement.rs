//! Replica placement: which brokers hold the replicas of new partitions. Replicas are spread
//! over the unfenced brokers, alternating racks when `broker.rack` is set, with successive
//! partitions starting one broker further on so that leaders (the first replica) are balanced.
//! Explicit assignments are checked against the registered brokers.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::ResponseError;
use runnel_metadata::MetadataImage;

use super::ControllerError;

/// The unfenced brokers in placement order: ids interleaved by rack (rack a's first broker,
/// rack b's first, …, then each rack's second), so that consecutive brokers sit in different
/// racks whenever there are several.
pub fn placement_order(image: &MetadataImage) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
    for b in image.brokers.values().filter(|b| !b.fenced) {
        by_rack.entry(b.rack.clone()).or_default().push(b.id);
    }
    let mut out = Vec::new();
    let mut round = 0;
    loop {
        let before = out.len();
        for ids in by_rack.values() {
            if let Some(id) = ids.get(round) {
                out.push(*id);
            }
        }
        if out.len() == before {
            return out;
        }
        round += 1;
    }
}

/// Kafka's refusal of a replication factor larger than the brokers available.
pub fn too_few_brokers(rf: i16, available: usize) -> ControllerError {
    ControllerError::new(
        ResponseError::InvalidReplicationFactor,
        format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {available} broker(s) are registered."),
    )
}

/// Replicas for partitions `first..first + count` with replication factor `rf`, starting the
/// round at `start` (callers pick it at random, as Kafka does).
pub fn place(
    image: &MetadataImage,
    first: i32,
    count: i32,
    rf: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, ControllerError> {
    let order = placement_order(image);
    let rf = rf.max(1) as usize;
    if rf > order.len() {
        return Err(too_few_brokers(rf as i16, order.len()));
    }
    let n = order.len();
    let racks: HashSet<Option<&String>> = order
        .iter()
        .map(|id| image.brokers[id].rack.as_ref())
        .collect();
    Ok((first..first + count)
        .map(|p| {
            let base = start + p as usize;
            // Without racks, followers are shifted by one more for every full round, as Kafka's
            // striping does, so that the same pairs of brokers do not always share partitions;
            // with racks, the next brokers of the rack-alternating order are taken.
            let shift = if racks.len() > 1 {
                1
            } else {
                1 + (p as usize / n) % (n - 1).max(1)
            };
            (0..rf)
                .map(|r| {
                    let i = if r == 0 { base } else { base + shift + r - 1 };
                    order[i % n]
                })
                .collect::<Vec<_>>()
        })
        .map(|mut replicas| {
            // With rf < n the shift keeps replicas distinct; with rf == n fall back to order.
            let unique: HashSet<i32> = replicas.iter().copied().collect();
            if unique.len() != replicas.len() {
                let b = replicas[0];
                let at = order.iter().position(|x| *x == b).unwrap_or(0);
                replicas = (0..rf).map(|r| order[(at + r) % n]).collect();
            }
            replicas
        })
        .collect())
}

/// Checks one explicit replica list: non-empty, no duplicates, every broker registered, at least
/// one of them unfenced.
pub fn check_assignment(
    image: &MetadataImage,
    partition: i32,
    replicas: &[i32],
) -> Result<(), ControllerError> {
    let bad = |m: String| {
        Err(ControllerError::new(
            ResponseError::InvalidReplicaAssignment,
            m,
        ))
    };
    if replicas.is_empty() {
        return bad(format!(
            "The manual partition assignment includes an empty replica list for partition {partition}."
        ));
    }
    let mut seen = HashSet::new();
    for r in replicas {
        if !seen.insert(*r) {
            return bad(format!(
                "The manual partition assignment includes the broker {r} more than once."
            ));
        }
        if !image.brokers.contains_key(r) {
            return bad(format!(
                "The manual partition assignment includes broker {r}, but no broker with that id is registered."
            ));
        }
    }
    if replicas
        .iter()
        .all(|r| image.brokers.get(r).is_none_or(|b| b.fenced))
    {
        return bad(format!(
            "All brokers specified in the manual partition assignment for partition {partition} are fenced or in controlled shutdown."
        ));
    }
    Ok(())
}

/// The ISR and leader a new partition starts with: its unfenced replicas, led by the first.
pub fn initial_isr(image: &MetadataImage, replicas: &[i32]) -> (Vec<i32>, i32) {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| image.brokers.get(r).is_some_and(|b| !b.fenced))
        .collect();
    let leader = isr.first().copied().unwrap_or(-1);
    (isr, leader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::MetadataRecord;

    fn cluster(racks: &[(i32, Option<&str>)]) -> MetadataImage {
        let mut img = MetadataImage::default();
        for (id, rack) in racks {
            img.apply(&MetadataRecord::RegisterBroker {
                broker_id: *id,
                incarnation_id: uuid::Uuid::new_v4(),
                broker_epoch: 1,
                endpoints: vec![],
                rack: rack.map(str::to_string),
            });
            img.apply(&MetadataRecord::UnfenceBroker {
                broker_id: *id,
                broker_epoch: 1,
            });
        }
        img
    }

    #[test]
    fn replicas_are_distinct_and_leaders_balanced() {
        let img = cluster(&[(1, None), (2, None), (3, None)]);
        for rf in 1..=3 {
            let placed = place(&img, 0, 6, rf, 0).unwrap();
            let mut leaders = BTreeMap::new();
            for r in &placed {
                assert_eq!(r.len(), rf as usize);
                assert_eq!(r.iter().collect::<HashSet<_>>().len(), r.len(), "{r:?}");
                *leaders.entry(r[0]).or_insert(0) += 1;
            }
            assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        }
        let e = place(&img, 0, 1, 4, 0).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidReplicationFactor);
        assert!(e.message.contains("only 3 broker(s) are registered"));
    }

    #[test]
    fn racks_alternate() {
        let img = cluster(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
        ]);
        assert_eq!(placement_order(&img), [1, 3, 2, 4]);
        for r in place(&img, 0, 8, 2, 0).unwrap() {
            let racks: HashSet<_> = r.iter().map(|id| img.brokers[id].rack.clone()).collect();
            assert_eq!(racks.len(), 2, "{r:?} should span both racks");
        }
    }

    #[test]
    fn fenced_brokers_are_not_placed_and_manual_assignments_are_checked() {
        let mut img = cluster(&[(1, None), (2, None), (3, None)]);
        img.apply(&MetadataRecord::FenceBroker {
            broker_id: 3,
            broker_epoch: 1,
        });
        assert_eq!(placement_order(&img), [1, 2]);
        assert!(place(&img, 0, 1, 3, 0).is_err());
        assert!(check_assignment(&img, 0, &[1, 3]).is_ok());
        assert_eq!(initial_isr(&img, &[3, 1]), (vec![1], 1));
        for bad in [&[][..], &[1, 1], &[7], &[3]] {
            let e = check_assignment(&img, 0, bad).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidReplicaAssignment, "{bad:?}");
        }
    }
}
