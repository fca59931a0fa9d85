//! Who belongs to the metadata quorum: the [`RaftNode`] openraft keeps for each member in the
//! log's membership entries (its address, directory id and controller endpoints), the changes
//! Runnel makes to it ([`MembershipChange`]: a node joining as a learner, KIP-853's AddRaftVoter
//! and RemoveRaftVoter) as the leader applies them, and the join loop a node that is not a voter
//! runs at start-up.
//!
//! A learner is what Kafka calls an observer: it receives every entry and builds images, and
//! never votes. Voter changes are served only by a dynamic quorum (one started from
//! `controller.quorum.bootstrap.servers`, Kafka's `kraft.version` 1); a static quorum
//! (`controller.quorum.voters`) refuses them as Kafka does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::error::{ChangeMembershipError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Raft};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::network::{RaftRpcKind, RaftTransport};
use super::TypeConfig;
use crate::quorum::{MembershipError, QuorumError};

/// One endpoint of a node: a listener name with its host and port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    /// Listener name (e.g. `CONTROLLER`).
    pub name: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

/// A member of the metadata quorum, as the membership entries in the log record it. Its JSON is
/// a superset of openraft's `BasicNode` (`{"addr": ...}`), so logs written before stay readable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftNode {
    /// `host:port` where raft messages reach it: a controller's controller listener, a
    /// broker-only node's inter-broker listener.
    pub addr: String,
    /// Kafka's `directory.id` of its metadata log dir, once it told one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<Uuid>,
    /// Its controller endpoints, as AddRaftVoter (or its own join) gave them; empty for a
    /// broker-only node and for static voters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
}

impl RaftNode {
    /// A node reached at `addr`, with nothing else known.
    pub fn at(addr: impl Into<String>) -> RaftNode {
        RaftNode {
            addr: addr.into(),
            ..RaftNode::default()
        }
    }
}

/// A change of the quorum's membership, applied by the leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// A node asks to follow the log as a learner, or (already a member) tells the leader its
    /// current address and directory id.
    Join {
        /// Its node id.
        node_id: i32,
        /// How it is reached and described.
        node: RaftNode,
    },
    /// KIP-853 AddRaftVoter: a learner that caught up becomes a voter.
    AddVoter {
        /// Node id of the new voter.
        node_id: i32,
        /// Its directory id (must match the one it joined with).
        directory_id: Uuid,
        /// Its controller endpoints.
        endpoints: Vec<Endpoint>,
        /// How long to wait for it to catch up.
        timeout_ms: u64,
    },
    /// KIP-853 RemoveRaftVoter: a voter goes back to being a learner.
    RemoveVoter {
        /// Node id of the voter.
        node_id: i32,
        /// Its directory id.
        directory_id: Uuid,
    },
    /// A decommissioned broker-only node (UnregisterBroker) stops being a learner: the leader
    /// no longer sends it the log. Nothing changes for a voter or an unknown node.
    RemoveLearner {
        /// Node id of the learner.
        node_id: i32,
    },
}

/// A membership change on the wire between nodes: a node that does not lead passes it on to
/// the leader once (`forwarded` then set).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MembershipRpc {
    pub(crate) change: MembershipChange,
    pub(crate) forwarded: bool,
}

/// How long a learner waits for AddRaftVoter's voter to catch up at most.
const MAX_CATCH_UP: Duration = Duration::from_secs(60);

/// How long a leader that removed itself waits for a voter to take over at most.
const MAX_HAND_OVER: Duration = Duration::from_secs(30);

fn refused(error: MembershipError, message: impl Into<String>) -> QuorumError {
    QuorumError::Refused {
        error,
        message: message.into(),
    }
}

fn change_error(e: RaftError<u64, ClientWriteError<u64, RaftNode>>) -> QuorumError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => QuorumError::NotLeader {
            leader: f.leader_id.map(|id| id as i32),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(
            ChangeMembershipError::InProgress(p),
        )) => refused(
            MembershipError::RequestTimedOut,
            format!("another change of the quorum's voters is in progress: {p}"),
        ),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(other)) => {
            refused(MembershipError::InvalidRequest, other.to_string())
        }
        RaftError::Fatal(openraft::error::Fatal::Stopped) => QuorumError::Stopped,
        other => QuorumError::Storage(other.to_string()),
    }
}

/// Applies `change` on this node, which must lead. `dynamic`: the quorum's voters may change.
pub(crate) async fn apply(
    raft: &Raft<TypeConfig>,
    me: u64,
    dynamic: bool,
    handing_over: &AtomicBool,
    change: MembershipChange,
) -> Result<(), QuorumError> {
    let metrics = raft.metrics().borrow().clone();
    let leader = super::known_leader(&metrics, me);
    if leader != Some(me) {
        return Err(QuorumError::NotLeader {
            leader: leader.map(|id| id as i32),
        });
    }
    let stored = metrics.membership_config.clone();
    let membership = stored.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let static_refusal = || {
        refused(
            MembershipError::UnsupportedVersion,
            "the metadata quorum is static (its voters come from controller.quorum.voters, \
             kraft.version 0): its voters cannot change; a dynamic quorum is started from \
             controller.quorum.bootstrap.servers",
        )
    };
    match change {
        MembershipChange::Join { node_id, node } => {
            let id = node_id as u64;
            if node_id < 0 || node.addr.is_empty() {
                return Err(refused(
                    MembershipError::InvalidRequest,
                    format!("node {node_id} cannot join at '{}'", node.addr),
                ));
            }
            let Some(existing) = membership.get_node(&id) else {
                tracing::info!(node = node_id, addr = %node.addr, "metadata quorum: adding a learner");
                raft.add_learner(id, node, false)
                    .await
                    .map_err(change_error)?;
                return Ok(());
            };
            if voters.contains(&id) {
                if let (Some(have), Some(got)) = (existing.directory_id, node.directory_id) {
                    if have != got {
                        return Err(refused(
                            MembershipError::InvalidRequest,
                            format!(
                                "node {node_id} is a voter with directory id {have}; a node with \
                                 directory id {got} cannot take its place (remove the voter first)"
                            ),
                        ));
                    }
                }
            }
            let merged = RaftNode {
                addr: node.addr,
                directory_id: node.directory_id.or(existing.directory_id),
                endpoints: if node.endpoints.is_empty() {
                    existing.endpoints.clone()
                } else {
                    node.endpoints
                },
            };
            if merged != *existing {
                tracing::info!(node = node_id, addr = %merged.addr, "metadata quorum: a member's address or directory changed");
                raft.change_membership(
                    ChangeMembers::SetNodes(BTreeMap::from([(id, merged)])),
                    true,
                )
                .await
                .map_err(change_error)?;
            }
            Ok(())
        }
        MembershipChange::AddVoter {
            node_id,
            directory_id,
            endpoints,
            timeout_ms,
        } => {
            if !dynamic {
                return Err(static_refusal());
            }
            let id = node_id as u64;
            if voters.contains(&id) {
                return Err(refused(
                    MembershipError::DuplicateVoter,
                    format!("node {node_id} is already a voter"),
                ));
            }
            if endpoints.is_empty() {
                return Err(refused(
                    MembershipError::InvalidRequest,
                    "the new voter has no endpoints",
                ));
            }
            let Some(existing) = membership.get_node(&id) else {
                return Err(refused(
                    MembershipError::RequestTimedOut,
                    format!(
                        "node {node_id} does not follow the metadata log: start it with \
                         controller.quorum.bootstrap.servers first, then add it"
                    ),
                ));
            };
            if existing.directory_id.is_some_and(|d| d != directory_id) {
                return Err(refused(
                    MembershipError::InvalidRequest,
                    format!(
                        "node {node_id} follows the log with directory id {}, not {directory_id}",
                        existing.directory_id.unwrap_or_default()
                    ),
                ));
            }
            let timeout = Duration::from_millis(timeout_ms).min(MAX_CATCH_UP);
            wait_caught_up(raft, id, timeout).await?;
            let node = RaftNode {
                addr: existing.addr.clone(),
                directory_id: Some(directory_id),
                endpoints,
            };
            if node != *existing {
                raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true)
                    .await
                    .map_err(change_error)?;
            }
            tracing::info!(node = node_id, %directory_id, "metadata quorum: adding a voter");
            raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                .await
                .map_err(change_error)?;
            Ok(())
        }
        MembershipChange::RemoveVoter {
            node_id,
            directory_id,
        } => {
            if !dynamic {
                return Err(static_refusal());
            }
            let id = node_id as u64;
            let matches = membership
                .get_node(&id)
                .is_some_and(|n| n.directory_id.is_none_or(|d| d == directory_id));
            if !voters.contains(&id) || !matches {
                return Err(refused(
                    MembershipError::VoterNotFound,
                    format!("no voter {node_id} with directory id {directory_id}"),
                ));
            }
            if voters.len() == 1 {
                return Err(refused(
                    MembershipError::InvalidRequest,
                    format!("node {node_id} is the only voter left"),
                ));
            }
            tracing::info!(node = node_id, %directory_id, "metadata quorum: removing a voter");
            // Kept as a learner: still running, it goes on following the log (an observer, as
            // in Kafka), its broker side included.
            raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([id])), true)
                .await
                .map_err(change_error)?;
            if id == me {
                // openraft lets a learner lead: this node hands leadership over itself.
                hand_over(raft, me, handing_over).await;
            }
            Ok(())
        }
        MembershipChange::RemoveLearner { node_id } => {
            let id = node_id as u64;
            if voters.contains(&id) || membership.get_node(&id).is_none() {
                return Ok(());
            }
            tracing::info!(node = node_id, "metadata quorum: removing a learner");
            raft.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])), true)
                .await
                .map_err(change_error)?;
            Ok(())
        }
    }
}

/// Makes a leader that is no longer a voter give up leading: it stops its heartbeats and takes
/// no writes (`handing_over`) until a voter, not hearing from it, is elected and replaces it
/// (at most [`MAX_HAND_OVER`]).
async fn hand_over(raft: &Raft<TypeConfig>, me: u64, handing_over: &AtomicBool) {
    handing_over.store(true, Ordering::Release);
    raft.runtime_config().heartbeat(false);
    let replaced = raft
        .wait(Some(MAX_HAND_OVER))
        .metrics(|m| m.current_leader != Some(me), "another leader")
        .await;
    raft.runtime_config().heartbeat(true);
    handing_over.store(false, Ordering::Release);
    match replaced {
        Ok(m) => {
            tracing::info!(leader = ?m.current_leader, "metadata quorum: leadership handed over")
        }
        Err(e) => tracing::warn!(error = %e, "metadata quorum: no voter took over in time"),
    }
}

/// Waits until learner `id` holds every entry this leader had when asked.
async fn wait_caught_up(
    raft: &Raft<TypeConfig>,
    id: u64,
    timeout: Duration,
) -> Result<(), QuorumError> {
    let target = raft.metrics().borrow().last_log_index.unwrap_or(0);
    let deadline = Instant::now() + timeout;
    loop {
        let matched = raft
            .metrics()
            .borrow()
            .replication
            .as_ref()
            .and_then(|r| r.get(&id).cloned().flatten())
            .map(|l| l.index);
        if matched.is_some_and(|m| m >= target) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(refused(
                MembershipError::RequestTimedOut,
                format!(
                    "node {id} has not caught up with the metadata log (it holds up to {matched:?}, \
                     the leader {target})"
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks the quorum, through the controllers at `bootstrap`, to take this node in (or to note
/// its current address and directory), until one answers yes. Runs on the quorum runtime for
/// as long as it takes; a refusal is logged and retried more slowly.
pub(crate) async fn join_loop(
    transport: Arc<dyn RaftTransport>,
    bootstrap: Vec<String>,
    node_id: i32,
    node: RaftNode,
) {
    if bootstrap.is_empty() {
        tracing::warn!("no controller to join the metadata quorum through");
        return;
    }
    let body = serde_json::to_vec(&MembershipRpc {
        change: MembershipChange::Join { node_id, node },
        forwarded: false,
    })
    .expect("membership requests serialize");
    let mut attempt = 0usize;
    loop {
        let i = attempt % bootstrap.len();
        attempt += 1;
        let addr = &bootstrap[i];
        // Connections to bootstrap servers are keyed by negative ids (their node ids are not
        // known).
        let target = -1 - i as i32;
        let sent = transport.send(target, addr, RaftRpcKind::Membership, body.clone());
        let pause = match tokio::time::timeout(Duration::from_secs(30), sent).await {
            Ok(Ok(bytes)) => match serde_json::from_slice::<Result<(), QuorumError>>(&bytes) {
                Ok(Ok(())) => {
                    tracing::info!(via = %addr, "metadata quorum: this node is a member");
                    return;
                }
                Ok(Err(e @ QuorumError::Refused { .. })) => {
                    tracing::warn!(via = %addr, error = %e, "metadata quorum: joining refused");
                    Duration::from_secs(5)
                }
                Ok(Err(e)) => {
                    tracing::debug!(via = %addr, error = %e, "metadata quorum: not joined yet");
                    Duration::from_millis(500)
                }
                Err(e) => {
                    tracing::debug!(via = %addr, error = %e, "metadata quorum: malformed answer");
                    Duration::from_millis(500)
                }
            },
            Ok(Err(e)) => {
                tracing::debug!(via = %addr, error = %e, "metadata quorum: controller unreachable");
                Duration::from_millis(500)
            }
            Err(_) => Duration::from_millis(500),
        };
        tokio::time::sleep(pause).await;
    }
}
