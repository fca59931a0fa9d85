//! The metadata quorum as the rest of Runnel sees it: a replicated log of [`MetadataRecord`]s
//! and the [`MetadataImage`] its committed entries build. The broker proposes records through
//! [`MetadataQuorum`] and reads images from it; how the log is replicated (openraft among the
//! controllers) stays behind this trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// A boxed, sendable future (what trait methods that wait return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a proposal or a quorum operation failed.
#[derive(Debug, Clone, thiserror::Error)]
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

    /// Stops the quorum and flushes what it holds; later proposals fail with `Stopped`.
    fn shutdown(&self) -> Result<(), QuorumError>;
}
