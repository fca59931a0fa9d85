//! The leader's view of the metadata log's replication, for DescribeQuorum: openraft's metrics
//! give the term, the log end, what is applied and each voter's matched entry; the times of each
//! follower's last exchange with the leader (openraft keeps none) are recorded here from the
//! AppendEntries answers the leader receives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::{RaftMetrics, ServerState};
use parking_lot::Mutex;

use super::members::RaftNode;
use crate::quorum::{QuorumError, QuorumStatus, VoterStatus};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One follower's last exchanges with a leader in one term.
#[derive(Debug, Clone, Copy)]
struct Contact {
    term: u64,
    last_fetch_ms: i64,
    last_caught_up_ms: i64,
}

/// What this node, while it leads, has heard from each follower: written by the network layer
/// on every AppendEntries answer, read by [`describe`].
#[derive(Debug, Default)]
pub(crate) struct FollowerContacts {
    by_node: Mutex<HashMap<u64, Contact>>,
    /// This node's log end (last index + 1), kept current from the metrics.
    log_end: AtomicU64,
}

impl FollowerContacts {
    /// Records this node's log end (from its metrics).
    pub(crate) fn set_log_end(&self, end: u64) {
        self.log_end.store(end, Ordering::Release);
    }

    /// This node's log end as last recorded: what an AppendEntries sent now can at most hold.
    pub(crate) fn log_end(&self) -> u64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Records a successful AppendEntries answer from `target` in leader term `term`, for a
    /// request sent at `sent_ms` when this node's log ended at `leader_end`, after which the
    /// follower's log ends at `follower_end`: the follower fetched now, and was caught up at
    /// `sent_ms` if it then held everything the leader had.
    pub(crate) fn record(
        &self,
        target: u64,
        term: u64,
        sent_ms: i64,
        leader_end: u64,
        follower_end: u64,
    ) {
        let now = now_ms();
        let mut by_node = self.by_node.lock();
        let c = by_node.entry(target).or_insert(Contact {
            term,
            last_fetch_ms: -1,
            last_caught_up_ms: -1,
        });
        if c.term != term {
            *c = Contact {
                term,
                last_fetch_ms: -1,
                last_caught_up_ms: -1,
            };
        }
        c.last_fetch_ms = c.last_fetch_ms.max(now);
        if follower_end >= leader_end {
            c.last_caught_up_ms = c.last_caught_up_ms.max(sent_ms);
        }
    }

    /// (last fetch, last caught up) of `node` in `term`, -1 for what is not known.
    fn times(&self, node: u64, term: u64) -> (i64, i64) {
        match self.by_node.lock().get(&node) {
            Some(c) if c.term == term => (c.last_fetch_ms, c.last_caught_up_ms),
            _ => (-1, -1),
        }
    }
}

/// The quorum status from this node's metrics, if it leads.
pub(crate) fn describe(
    me: u64,
    m: &RaftMetrics<u64, RaftNode>,
    contacts: &FollowerContacts,
) -> Result<QuorumStatus, QuorumError> {
    let not_leader = || QuorumError::NotLeader {
        leader: super::known_leader(m, me).map(|id| id as i32),
    };
    if m.state != ServerState::Leader || m.current_leader != Some(me) {
        return Err(not_leader());
    }
    let Some(replication) = &m.replication else {
        return Err(not_leader());
    };
    let now = now_ms();
    let end = |index: Option<u64>| index.map_or(0, |i| i as i64 + 1);
    let membership = m.membership_config.membership();
    let status = |id: u64| {
        let node = membership.get_node(&id);
        let (directory_id, endpoints) =
            node.map_or((None, vec![]), |n| (n.directory_id, n.endpoints.clone()));
        if id == me {
            return VoterStatus {
                node_id: id as i32,
                directory_id,
                endpoints,
                log_end_offset: end(m.last_log_index),
                last_fetch_timestamp_ms: now,
                last_caught_up_timestamp_ms: now,
            };
        }
        let (fetch, caught_up) = contacts.times(id, m.current_term);
        VoterStatus {
            node_id: id as i32,
            directory_id,
            endpoints,
            log_end_offset: match replication.get(&id) {
                Some(Some(matched)) => matched.index as i64 + 1,
                _ => -1,
            },
            last_fetch_timestamp_ms: fetch,
            last_caught_up_timestamp_ms: caught_up,
        }
    };
    let mut voters: Vec<u64> = membership.voter_ids().collect();
    voters.sort_unstable();
    let mut learners: Vec<u64> = membership.learner_ids().collect();
    learners.sort_unstable();
    Ok(QuorumStatus {
        leader_id: me as i32,
        leader_epoch: i32::try_from(m.current_term).unwrap_or(i32::MAX),
        high_watermark: end(m.last_applied.map(|l| l.index)),
        voters: voters.into_iter().map(status).collect(),
        observers: learners.into_iter().map(status).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_reset_with_the_term_and_catch_up_only_when_complete() {
        let c = FollowerContacts::default();
        assert_eq!(c.times(2, 1), (-1, -1));
        // Behind: fetched, not caught up.
        c.record(2, 1, 100, 10, 9);
        let (fetch, caught_up) = c.times(2, 1);
        assert!(fetch >= 100);
        assert_eq!(caught_up, -1);
        // Holding everything the leader had when it sent: caught up at the send time.
        c.record(2, 1, 200, 10, 10);
        assert_eq!(c.times(2, 1).1, 200);
        // A later term knows nothing of the earlier one.
        assert_eq!(c.times(2, 2), (-1, -1));
        c.record(2, 2, 300, 12, 11);
        assert_eq!(c.times(2, 2).1, -1);
        assert_eq!(c.times(2, 1), (-1, -1));
    }
}
