//! A stand-in for raft's pre-vote, which openraft 0.9 lacks. Without it a voter cut off from
//! the others calls election after election, raising its term each time, and once it is back
//! its higher term, seen in an AppendEntries answer, makes the healthy leader step down: the
//! quorum is leaderless for seconds though nothing was wrong with it.
//!
//! Each voter that does not lead asks every other voter for its quorum status (the
//! [`RaftRpcKind::Describe`] query, answered without openraft) every heartbeat interval, and
//! lets openraft call elections (`enable_elect`) only while it can reach a majority of the
//! voters (of each configuration, during a joint one), itself included, and none of them
//! answers as a working leader: one of this node's term or a later one that has heard from a
//! majority of the voters lately (its own view, so a leader whose process answers but whose
//! replication is wedged is challenged as before). A node that cannot reach a majority could
//! not win, and one that reaches a working leader should wait for its AppendEntries; either
//! way its term stays where it is. A node that leads, is not a voter, or is the only voter is
//! left as openraft has it; a probe that gets no answer in time counts as unreachable, so the
//! guard only ever holds elections back while it hears answers that say so.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::{Raft, ServerState};

use super::{RaftRpcKind, RaftTransport, TypeConfig};
use crate::quorum::{QuorumError, QuorumStatus};

/// What a probe of another voter found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Probe {
    /// No answer in time.
    Unreachable,
    /// It answered, and does not lead.
    Reachable,
    /// It answered as the leader of raft term `term`.
    Leader {
        /// Its term.
        term: u64,
        /// Whether a majority of the voters (itself included) exchanged AppendEntries with it
        /// lately, by its own clock.
        replicating: bool,
    },
}

impl Probe {
    /// The probe's finding from the bytes a Describe query to `target` returned; a leader is
    /// replicating if a majority of the voters answered it within `fresh`.
    fn from_answer(target: u64, bytes: &[u8], fresh: Duration) -> Probe {
        match serde_json::from_slice::<Result<QuorumStatus, QuorumError>>(bytes) {
            Ok(Ok(status)) if status.leader_id as u64 == target => {
                // The leader's own entry carries its clock's "now".
                let now = status
                    .voters
                    .iter()
                    .find(|v| v.node_id == status.leader_id)
                    .map_or(i64::MAX, |v| v.last_fetch_timestamp_ms);
                let since = now.saturating_sub(fresh.as_millis() as i64);
                let heard = status
                    .voters
                    .iter()
                    .filter(|v| v.last_fetch_timestamp_ms >= since)
                    .count();
                Probe::Leader {
                    term: status.leader_epoch.max(0) as u64,
                    replicating: heard > status.voters.len() / 2,
                }
            }
            _ => Probe::Reachable,
        }
    }
}

/// Whether voter `me` in term `term` may call an election: `configs` are the voter sets of the
/// membership (two during a joint configuration), `found` what probing the other voters found.
pub(crate) fn may_campaign(
    configs: &[BTreeSet<u64>],
    me: u64,
    term: u64,
    found: &BTreeMap<u64, Probe>,
) -> bool {
    let reachable = |id: &u64| *id == me || found.get(id).is_some_and(|p| *p != Probe::Unreachable);
    let majorities = configs
        .iter()
        .all(|c| c.iter().filter(|id| reachable(id)).count() > c.len() / 2);
    let working_leader = found
        .values()
        .any(|p| matches!(p, Probe::Leader { term: t, replicating: true } if *t >= term));
    majorities && !working_leader
}

/// Runs the guard for node `me` on the quorum's runtime: every `period`, probes the other
/// voters (each probe given `period` to answer) and turns openraft's elections on or off.
pub(crate) async fn run(
    raft: Raft<TypeConfig>,
    transport: Arc<dyn RaftTransport>,
    me: u64,
    period: Duration,
) {
    // A leader that heard from a majority within a few heartbeat intervals is working.
    let fresh = period * 4;
    let mut metrics = raft.metrics();
    let mut allowed = true;
    loop {
        let (state, term, configs, others) = {
            let m = metrics.borrow_and_update();
            let membership = m.membership_config.membership();
            let others: Vec<(u64, String)> = membership
                .voter_ids()
                .filter(|id| *id != me)
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.addr.clone())))
                .collect();
            let voter = membership.voter_ids().any(|id| id == me);
            let configs = voter.then(|| membership.get_joint_config().clone());
            (m.state, m.current_term, configs, others)
        };
        let allow = match configs {
            Some(configs) if !others.is_empty() && state != ServerState::Leader => {
                let probes: Vec<_> = others
                    .into_iter()
                    .map(|(id, addr)| {
                        let sent = transport.send(id as i32, &addr, RaftRpcKind::Describe, vec![]);
                        let probe = tokio::spawn(async move {
                            match tokio::time::timeout(period, sent).await {
                                Ok(Ok(bytes)) => Probe::from_answer(id, &bytes, fresh),
                                _ => Probe::Unreachable,
                            }
                        });
                        (id, probe)
                    })
                    .collect();
                let mut found = BTreeMap::new();
                for (id, probe) in probes {
                    found.insert(id, probe.await.unwrap_or(Probe::Unreachable));
                }
                may_campaign(&configs, me, term, &found)
            }
            _ => true,
        };
        if allow != allowed {
            raft.runtime_config().elect(allow);
            tracing::debug!(
                node = me,
                term,
                "metadata quorum: elections {}",
                if allow { "allowed" } else { "held back" }
            );
            allowed = allow;
        }
        tokio::time::sleep(period).await;
        if metrics.has_changed().is_err() {
            // The raft has stopped.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quorum::VoterStatus;
    use Probe::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    fn found(probes: &[(u64, Probe)]) -> BTreeMap<u64, Probe> {
        probes.iter().copied().collect()
    }

    const WORKING: Probe = Leader {
        term: 4,
        replicating: true,
    };

    #[test]
    fn campaigns_only_with_a_majority_in_reach_and_no_working_leader() {
        let three = [set(&[1, 2, 3])];
        // Itself and one more make a majority of three.
        assert!(may_campaign(
            &three,
            1,
            4,
            &found(&[(2, Reachable), (3, Unreachable)])
        ));
        assert!(!may_campaign(
            &three,
            1,
            4,
            &found(&[(2, Unreachable), (3, Unreachable)])
        ));
        // A working leader of this term or a later one is followed, not challenged.
        assert!(!may_campaign(
            &three,
            1,
            4,
            &found(&[(2, WORKING), (3, Unreachable)])
        ));
        let later = Leader {
            term: 5,
            replicating: true,
        };
        assert!(!may_campaign(
            &three,
            1,
            4,
            &found(&[(2, later), (3, Reachable)])
        ));
        // A leader of an earlier term has been replaced (or will be), and one that has not
        // heard from a majority lately is not working: neither holds an election back.
        let stale = Leader {
            term: 3,
            replicating: true,
        };
        assert!(may_campaign(
            &three,
            1,
            4,
            &found(&[(2, stale), (3, Unreachable)])
        ));
        let wedged = Leader {
            term: 4,
            replicating: false,
        };
        assert!(may_campaign(
            &three,
            1,
            4,
            &found(&[(2, wedged), (3, Unreachable)])
        ));
        // Five voters need three; two voters need both.
        let five = [set(&[1, 2, 3, 4, 5])];
        let some = |n: usize| {
            found(
                &(2..=5)
                    .map(|id| {
                        (
                            id,
                            if id < 2 + n as u64 {
                                Reachable
                            } else {
                                Unreachable
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        assert!(!may_campaign(&five, 1, 1, &some(1)));
        assert!(may_campaign(&five, 1, 1, &some(2)));
        let two = [set(&[1, 2])];
        assert!(!may_campaign(&two, 1, 1, &found(&[(2, Unreachable)])));
        assert!(may_campaign(&two, 1, 1, &found(&[(2, Reachable)])));
    }

    #[test]
    fn a_joint_configuration_needs_a_majority_of_each() {
        // {1, 2, 3} becoming {1, 4, 5}: 2 alone gives the old one a majority, not the new one.
        let joint = [set(&[1, 2, 3]), set(&[1, 4, 5])];
        let probes = |reached: &[u64]| {
            found(
                &[2, 3, 4, 5]
                    .iter()
                    .map(|id| {
                        (
                            *id,
                            if reached.contains(id) {
                                Reachable
                            } else {
                                Unreachable
                            },
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        };
        assert!(!may_campaign(&joint, 1, 1, &probes(&[2])));
        assert!(!may_campaign(&joint, 1, 1, &probes(&[4])));
        assert!(may_campaign(&joint, 1, 1, &probes(&[2, 4])));
    }

    #[test]
    fn a_describe_answer_tells_a_working_leader_from_a_follower() {
        let voter = |node_id: i32, last_fetch_timestamp_ms: i64| VoterStatus {
            node_id,
            directory_id: None,
            endpoints: vec![],
            log_end_offset: 0,
            last_fetch_timestamp_ms,
            last_caught_up_timestamp_ms: last_fetch_timestamp_ms,
        };
        let status = |leader_id: i32, follower_ms: [i64; 2]| QuorumStatus {
            leader_id,
            leader_epoch: 7,
            high_watermark: 0,
            voters: vec![
                voter(2, 100_000),
                voter(1, follower_ms[0]),
                voter(3, follower_ms[1]),
            ],
            observers: vec![],
        };
        let ok = |s: QuorumStatus| serde_json::to_vec(&Ok::<_, QuorumError>(s)).unwrap();
        let fresh = Duration::from_secs(2);
        // Node 2 leads (its own entry is its "now", 100 s); node 3 answered it 1.5 s ago.
        assert_eq!(
            Probe::from_answer(2, &ok(status(2, [-1, 98_500])), fresh),
            Leader {
                term: 7,
                replicating: true
            }
        );
        // No follower answered it for 2.5 s, or ever in this term: not working.
        assert_eq!(
            Probe::from_answer(2, &ok(status(2, [97_500, -1])), fresh),
            Leader {
                term: 7,
                replicating: false
            }
        );
        // An answer about another node, a NotLeader, or garbage: it is there, and follows.
        assert_eq!(
            Probe::from_answer(3, &ok(status(2, [-1, 98_500])), fresh),
            Reachable
        );
        let not_leader = serde_json::to_vec(&Err::<QuorumStatus, _>(QuorumError::NotLeader {
            leader: Some(3),
        }))
        .unwrap();
        assert_eq!(Probe::from_answer(2, &not_leader, fresh), Reachable);
        assert_eq!(Probe::from_answer(2, b"not json", fresh), Reachable);
    }
}
