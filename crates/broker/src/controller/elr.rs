//! Eligible leader replicas (KIP-966), on while `eligible.leader.replicas.version` is 1 (Kafka
//! 4.1+'s default, and Runnel's). Every partition change the controller makes — fencing and
//! unfencing, an unclean restart, ElectLeaders and the leader balancer, AlterPartition and
//! reassignments (through [`super::reassign::settle`]) — is built by one [`Change`], which keeps
//! these rules, decided as Kafka's controller decides them (its `PartitionChangeBuilder`):
//!
//! - The ISR may become empty: the last ISR member fenced leaves it (without ELR it stays, so
//!   that the partition remembers which replica has every committed record).
//! - When the ISR is below the topic's effective `min.insync.replicas` (capped at the replication
//!   factor), the replicas that were in the ISR and are no longer join the ELR; at or above it the
//!   ELR is cleared. The ELR never overlaps the ISR.
//! - A broker that restarts without a clean shutdown (a new incarnation whose previous broker
//!   epoch, read from the clean-shutdown marker, is not its last registration's) leaves every ISR
//!   and ELR: records it had may not have reached its disk.
//! - Leaders are elected from the ISR; when the ISR is empty, from the live ELR members (the one
//!   elected becomes the ISR, alone, and leaves the ELR); when both are empty, the last known
//!   leader if it is live (Kafka 4's "balanced" recovery: as before KIP-966, the last ISR member
//!   comes back as leader); only then, with `unclean.leader.election.enable` or an unclean
//!   ElectLeaders, any live replica — which clears the ELR.
//! - The last known leader (`last_known_elr`) is recorded when the ISR becomes empty, and cleared
//!   once the partition has a leader again.
//! - Changing a topic's `min.insync.replicas` clears its partitions' ELRs (and turning the feature
//!   off clears them all).
//!
//! Why an ELR member may lead without losing an acknowledged write. Invariant: every record below
//! the leader's high watermark is in the log of every ISR member and every ELR member. (1) A
//! leader advances its high watermark only while its ISR has at least the effective min ISR
//! (Kafka's "strict min ISR", [`crate::partition::Partition::maybe_advance_high_watermark`]), and
//! only to the lowest log end among the ISR members it knows (and those it asked to add). While
//! the ISR is that large the ELR is empty, so the invariant holds whenever the mark moves. (2) A
//! replica enters the ELR only by leaving the ISR while the ISR is below min ISR; it was in the
//! ISR, so it holds everything below the mark, and the mark does not move again until the ISR is
//! back at min ISR — when the ELR is cleared. A leader's view of the ISR may lag the controller's,
//! but only by members the controller removed (shrinks go through the controller with the
//! partition epoch; expansions are counted from the moment they are asked), so a stale leader
//! waits for more replicas, never fewer. (3) An ELR member that restarted uncleanly may have lost
//! its unflushed tail, and is removed at registration; one that shut down cleanly flushed its
//! log. (4) A leader elected from the ELR is a log holding every record below the old mark;
//! records above it were never committed, so its log is a valid continuation, and its own high
//! watermark (at most the old one) stays put while its ISR is below min ISR. An acks=all write is
//! acknowledged only once the high watermark passed it with the ISR at min ISR
//! ([`crate::partition::Partition::replication`]), so it is below the mark and in the new
//! leader's log. An unclean election, or electing a last known leader that restarted uncleanly,
//! gives no such promise (as in Kafka).

use runnel_metadata::{MetadataImage, PartitionImage, TopicImage};

use super::features;

/// What the ELR rules need to know of a partition's topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElrRules {
    /// Whether ELRs are kept (`eligible.leader.replicas.version` at 1).
    pub enabled: bool,
    /// The topic's effective min ISR: `min.insync.replicas`, capped at the replication factor.
    pub min_isr: usize,
}

impl ElrRules {
    /// No ELR: the rules of Kafka before KIP-966.
    pub const OFF: ElrRules = ElrRules {
        enabled: false,
        min_isr: 1,
    };

    /// The rules for `topic` in `image`: the feature's level, and the topic's
    /// `min.insync.replicas` (else `default_min_isr`, the active controller's setting) capped at
    /// its replication factor, as Kafka's controller caps it.
    pub fn for_topic(image: &MetadataImage, topic: &TopicImage, default_min_isr: i32) -> ElrRules {
        let configured = topic
            .configs
            .get("min.insync.replicas")
            .and_then(|v| v.trim().parse::<i32>().ok())
            .unwrap_or(default_min_isr)
            .max(1) as usize;
        let rf = topic
            .partitions
            .first()
            .map_or(configured, |p| p.target_replicas().len().max(1));
        ElrRules {
            enabled: features::elr_enabled(image),
            min_isr: configured.min(rf),
        }
    }
}

/// One partition change in the making: the target state a caller wants (its ISR and replicas),
/// the ELR that follows from it, then a leader, then [`Change::build`] for the record.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    old: &'a PartitionImage,
    next: PartitionImage,
    rules: ElrRules,
}

impl<'a> Change<'a> {
    /// Starts changing `old` to `target` (the ISR and replicas the caller wants; the leader as
    /// it is unless the caller elects). With ELR on, a target ISR below min ISR puts the replicas
    /// leaving the ISR into the ELR (with the ELR members still outside it); one at min ISR or
    /// above clears the ELR. `unclean_shutdown` replicas are kept out of the ELR.
    pub fn new(
        old: &'a PartitionImage,
        mut target: PartitionImage,
        rules: ElrRules,
        unclean_shutdown: &[i32],
    ) -> Change<'a> {
        if rules.enabled {
            if target.isr.len() >= rules.min_isr {
                target.eligible_leader_replicas.clear();
            } else {
                let mut elr = Vec::new();
                for r in old.eligible_leader_replicas.iter().chain(&old.isr).copied() {
                    if !elr.contains(&r)
                        && !target.isr.contains(&r)
                        && target.replicas.contains(&r)
                        && !unclean_shutdown.contains(&r)
                    {
                        elr.push(r);
                    }
                }
                elr.sort_unstable();
                target.eligible_leader_replicas = elr;
            }
        }
        Change {
            old,
            next: target,
            rules,
        }
    }

    /// The state so far.
    pub fn next(&self) -> &PartitionImage {
        &self.next
    }

    /// Whether `r` may be elected cleanly: an ISR member, or, with the ISR empty, an ELR member.
    pub fn eligible(&self, r: i32) -> bool {
        r >= 0
            && self.next.replicas.contains(&r)
            && (self.next.isr.contains(&r)
                || (self.next.isr.is_empty() && self.next.eligible_leader_replicas.contains(&r)))
    }

    /// The last known leader, electable when the ISR and the ELR are both empty.
    pub fn last_known_leader(&self) -> Option<i32> {
        match self.next.last_known_elr[..] {
            [r] if self.rules.enabled
                && self.next.isr.is_empty()
                && self.next.eligible_leader_replicas.is_empty()
                && self.next.replicas.contains(&r) =>
            {
                Some(r)
            }
            _ => None,
        }
    }

    /// Elects a leader among replicas that are `live`, in replica order: an [`eligible`] one,
    /// else the [last known leader](Change::last_known_leader), else (with `unclean`) any;
    /// none (-1) otherwise. Returns the leader.
    ///
    /// [`eligible`]: Change::eligible
    pub fn elect(&mut self, live: impl Fn(i32) -> bool, unclean: bool) -> i32 {
        let replicas = self.next.replicas.clone();
        let leader = replicas
            .iter()
            .copied()
            .find(|r| self.eligible(*r) && live(*r))
            .or_else(|| self.last_known_leader().filter(|r| live(*r)))
            .or_else(|| {
                unclean
                    .then(|| replicas.iter().copied().find(|r| live(*r)))
                    .flatten()
            })
            .unwrap_or(-1);
        self.set_leader(leader);
        leader
    }

    /// Makes `r` the leader (-1: none). An ISR member just leads; an ELR member (the ISR
    /// empty) becomes the ISR alone and leaves the ELR; anyone else (the last known leader, or
    /// an unclean choice) becomes the ISR alone and the ELR is cleared: what it lacks is lost.
    pub fn set_leader(&mut self, r: i32) {
        let n = &mut self.next;
        if r >= 0 && !n.isr.contains(&r) {
            if n.isr.is_empty() && n.eligible_leader_replicas.contains(&r) {
                n.eligible_leader_replicas.retain(|x| *x != r);
            } else {
                n.eligible_leader_replicas.clear();
            }
            n.isr = vec![r];
        }
        n.leader = r;
    }

    /// The new partition state: the last known leader recorded when the ISR became empty and
    /// cleared once there is a leader (ELRs cleared when the feature is off); the leader epoch
    /// bumped when the leader changed or replicas left, the partition epoch whenever anything
    /// changed.
    pub fn build(self) -> PartitionImage {
        let Change {
            old,
            mut next,
            rules,
        } = self;
        if !rules.enabled {
            next.eligible_leader_replicas.clear();
            next.last_known_elr.clear();
        } else if next.isr.is_empty() && !old.isr.is_empty() {
            next.last_known_elr = if old.leader >= 0 {
                vec![old.leader]
            } else {
                old.isr.clone()
            };
        } else if next.leader >= 0 {
            next.last_known_elr.clear();
        }
        let replicas_left = old.replicas.iter().any(|r| !next.replicas.contains(r));
        next.leader_epoch = old.leader_epoch;
        next.partition_epoch = old.partition_epoch;
        if next.leader != old.leader || replicas_left {
            next.leader_epoch = old.leader_epoch + 1;
        }
        if next != *old {
            next.partition_epoch = old.partition_epoch + 1;
        }
        next
    }
}

/// The state of `p` with its ELR and last known leader cleared (a changed `min.insync.replicas`,
/// or the feature turned off), if it had any.
pub fn cleared(p: &PartitionImage) -> Option<PartitionImage> {
    if p.eligible_leader_replicas.is_empty() && p.last_known_elr.is_empty() {
        return None;
    }
    Some(PartitionImage {
        eligible_leader_replicas: vec![],
        last_known_elr: vec![],
        partition_epoch: p.partition_epoch + 1,
        ..p.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ON: ElrRules = ElrRules {
        enabled: true,
        min_isr: 2,
    };

    fn part(isr: &[i32], leader: i32, elr: &[i32], lke: &[i32]) -> PartitionImage {
        PartitionImage {
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 8,
            adding_replicas: vec![],
            removing_replicas: vec![],
            eligible_leader_replicas: elr.to_vec(),
            last_known_elr: lke.to_vec(),
        }
    }

    fn with_isr(p: &PartitionImage, isr: &[i32]) -> PartitionImage {
        PartitionImage {
            isr: isr.to_vec(),
            ..p.clone()
        }
    }

    /// (isr, leader, elr, last known elr)
    fn shape(p: &PartitionImage) -> (Vec<i32>, i32, Vec<i32>, Vec<i32>) {
        (
            p.isr.clone(),
            p.leader,
            p.eligible_leader_replicas.clone(),
            p.last_known_elr.clone(),
        )
    }

    #[test]
    fn replicas_leaving_an_isr_below_min_isr_join_the_elr() {
        // 3 leaves: the ISR is still at min ISR, no ELR.
        let p = part(&[1, 2, 3], 1, &[], &[]);
        let next = Change::new(&p, with_isr(&p, &[1, 2]), ON, &[]).build();
        assert_eq!(shape(&next), (vec![1, 2], 1, vec![], vec![]));
        assert_eq!((next.leader_epoch, next.partition_epoch), (5, 9));
        // 2 leaves too: below min ISR, it holds every committed record.
        let after = Change::new(&next, with_isr(&next, &[1]), ON, &[]).build();
        assert_eq!(shape(&after), (vec![1], 1, vec![2], vec![]));
        // Without the feature, nothing is kept.
        let off = Change::new(&next, with_isr(&next, &[1]), ElrRules::OFF, &[]).build();
        assert_eq!(shape(&off), (vec![1], 1, vec![], vec![]));
        // The last member leaves: the ISR is empty, the ELR has both, the last leader is known.
        let empty = Change::new(&after, with_isr(&after, &[]), ON, &[]).build();
        assert_eq!(shape(&empty), (vec![], 1, vec![1, 2], vec![1]));
    }

    #[test]
    fn an_elr_member_leads_when_the_isr_is_empty() {
        let p = part(&[], -1, &[1, 2], &[1]);
        let mut c = Change::new(&p, p.clone(), ON, &[]);
        assert!(c.eligible(2) && !c.eligible(3));
        assert_eq!(c.elect(|r| r == 2, false), 2);
        let next = c.build();
        // It alone is in sync; the other ELR member stays eligible; a leader clears the last
        // known one.
        assert_eq!(shape(&next), (vec![2], 2, vec![1], vec![]));
        assert_eq!((next.leader_epoch, next.partition_epoch), (6, 9));
        // A replica outside the ISR and ELR is not elected cleanly, even live.
        let mut c = Change::new(&p, p.clone(), ON, &[]);
        assert_eq!(c.elect(|r| r == 3, false), -1);
        assert_eq!(c.build(), p);
    }

    #[test]
    fn back_at_min_isr_the_elr_is_cleared() {
        let p = part(&[2], 2, &[1], &[]);
        let next = Change::new(&p, with_isr(&p, &[2, 3]), ON, &[]).build();
        assert_eq!(shape(&next), (vec![2, 3], 2, vec![], vec![]));
    }

    #[test]
    fn an_unclean_shutdown_leaves_the_elr() {
        let p = part(&[], -1, &[1, 2], &[1]);
        let next = Change::new(&p, p.clone(), ON, &[2]).build();
        assert_eq!(shape(&next), (vec![], -1, vec![1], vec![1]));
        // The last ELR member goes: only the last known leader is left to elect.
        let none = Change::new(&next, next.clone(), ON, &[1]).build();
        assert_eq!(shape(&none), (vec![], -1, vec![], vec![1]));
        let mut c = Change::new(&none, none.clone(), ON, &[]);
        assert_eq!(c.last_known_leader(), Some(1));
        assert_eq!(
            c.elect(|r| r != 1, false),
            -1,
            "the last known leader is down"
        );
        let mut c = Change::new(&none, none.clone(), ON, &[]);
        assert_eq!(c.elect(|_| true, false), 1);
        assert_eq!(shape(&c.build()), (vec![1], 1, vec![], vec![]));
    }

    #[test]
    fn unclean_election_only_when_no_isr_or_elr_member_or_last_leader_is_live() {
        let p = part(&[], -1, &[1], &[1]);
        // 1 (ELR) is live: elected cleanly even when unclean elections are allowed.
        let mut c = Change::new(&p, p.clone(), ON, &[]);
        assert_eq!(c.elect(|_| true, true), 1);
        assert_eq!(shape(&c.build()), (vec![1], 1, vec![], vec![]));
        // 1 is down: without unclean election nobody leads; with it, 2 does and the ELR goes.
        let mut c = Change::new(&p, p.clone(), ON, &[]);
        assert_eq!(c.elect(|r| r != 1, false), -1);
        let mut c = Change::new(&p, p.clone(), ON, &[]);
        assert_eq!(c.elect(|r| r != 1, true), 2);
        assert_eq!(shape(&c.build()), (vec![2], 2, vec![], vec![]));
    }

    #[test]
    fn clearing_for_a_min_isr_change() {
        let p = part(&[1], 1, &[2], &[]);
        let c = cleared(&p).unwrap();
        assert_eq!(shape(&c), (vec![1], 1, vec![], vec![]));
        assert_eq!((c.leader_epoch, c.partition_epoch), (5, 9));
        assert!(cleared(&c).is_none());
    }
}
