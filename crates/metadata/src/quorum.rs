//! The metadata quorum as the rest of Runnel sees it: a replicated log of [`MetadataRecord`]s
//! and the [`MetadataImage`] its committed entries build. The broker proposes records through
//! [`MetadataQuorum`] and reads images from it; how the log is replicated (openraft among the
//! controllers) stays behind this trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// A boxed, sendable future (what trait methods that wait return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proposal or a quorum operation failed.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
pub enum QuorumError {
    /// This node is not the quorum leader (the active controller); `leader` is the one it knows.
    #[error("not the active controller (leader: {leader:?})")]
    NotLeader {
        /// Node id of the current leader, if known.
        leader: Option<i32>,
    },
    /// The log could not be written or read.
    #[error("metadata storage: {0}")]
    Storage(String),
    /// The quorum did not commit in time (no leader, or no majority reachable).
    #[error("the metadata quorum did not answer in time")]
    Timeout,
    /// The quorum is shutting down or has stopped.
    #[error("the metadata quorum has stopped")]
    Stopped,
    /// A membership change was refused (what Kafka answers AddRaftVoter / RemoveRaftVoter with).
    #[error("{message}")]
    Refused {
        /// Which refusal.
        error: MembershipError,
        /// Why, in words.
        message: String,
    },
}

/// Why a change of the quorum's membership was refused, by the Kafka error it maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipError {
    /// UNSUPPORTED_VERSION: a static quorum (`kraft.version` 0) cannot change its voters.
    UnsupportedVersion,
    /// DUPLICATE_VOTER: the node is a voter already.
    DuplicateVoter,
    /// VOTER_NOT_FOUND: no such voter (id and directory id).
    VoterNotFound,
    /// REQUEST_TIMED_OUT: the new voter is not following or not caught up, or another change
    /// is in progress.
    RequestTimedOut,
    /// INVALID_REQUEST: the change makes no sense (no endpoints, the last voter, ...).
    InvalidRequest,
}

/// What the quorum leader knows of the metadata log's replication: what DescribeQuorum reports.
///
/// Offsets are Kafka's: the metadata log's offset of an entry is its raft index, so a log end
/// offset is one past the last entry and the high watermark one past the last committed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumStatus {
    /// Node id of the leader (the node that answered).
    pub leader_id: i32,
    /// The leader's epoch: the raft term it leads in.
    pub leader_epoch: i32,
    /// One past the last entry the leader has committed and applied.
    pub high_watermark: i64,
    /// Every voter, the leader included, in id order.
    pub voters: Vec<VoterStatus>,
    /// Every learner (Kafka's observers: nodes that follow the log and do not vote), in id
    /// order.
    #[serde(default)]
    pub observers: Vec<VoterStatus>,
}

/// One voter (or observer) as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterStatus {
    /// Node id.
    pub node_id: i32,
    /// Kafka's `directory.id` of its metadata log dir, if known (static voters have none).
    #[serde(default)]
    pub directory_id: Option<uuid::Uuid>,
    /// Its controller endpoints, if known (voters of a dynamic quorum).
    #[serde(default)]
    pub endpoints: Vec<crate::raft::Endpoint>,
    /// One past the last entry known to be in its log (-1: not known yet in this term).
    pub log_end_offset: i64,
    /// Wall-clock time (ms) of its last successful exchange with the leader in this term: the
    /// answer to an AppendEntries (entries or a heartbeat); -1 if none yet. The leader's own is
    /// the time of the answer.
    pub last_fetch_timestamp_ms: i64,
    /// Wall-clock time (ms) of the last AppendEntries it acknowledged that held every entry the
    /// leader had when sending it; -1 if none yet. The leader's own is the time of the answer.
    pub last_caught_up_timestamp_ms: i64,
}

/// The replicated metadata log and the image it builds.
pub trait MetadataQuorum: Send + Sync + 'static {
    /// Proposes `records` as one atomic entry. Resolves once the entry is committed and applied,
    /// with the image that includes it (and every entry before it).
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<Arc<MetadataImage>, QuorumError>>;

    /// [`MetadataQuorum::propose`] for synchronous callers. Safe to call from any thread,
    /// a tokio worker included: the quorum never needs the caller's thread to make progress.
    fn propose_blocking(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, QuorumError>;

    /// The newest image built from committed entries on this node.
    fn image(&self) -> Arc<MetadataImage>;

    /// A watch that sees every newer image (for publishing to the node's other parts).
    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>>;

    /// Node id of the quorum leader (the active controller), if one is known.
    fn leader_id(&self) -> Option<i32>;

    /// The replication status of the metadata log, as only the leader knows it (what Kafka's
    /// DescribeQuorum reports); `NotLeader` with the leader it knows on any other node.
    fn describe(&self) -> Result<QuorumStatus, QuorumError>;

    /// Stops the quorum and flushes what it holds; later proposals fail with `Stopped`.
    fn shutdown(&self) -> Result<(), QuorumError>;
}
