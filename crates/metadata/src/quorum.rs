//! The metadata quorum as the rest of Runnel sees it: a replicated log of [`MetadataRecord`]s
//! and the [`MetadataImage`] its committed entries build. The broker proposes records through
//! [`MetadataQuorum`] and reads images from it; how the log is replicated (openraft among the
//! controllers, or a plain local log) stays behind this trait.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;

use crate::image::MetadataImage;
use crate::log::MetadataLog;
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

/// A quorum of one without replication: the local metadata log, appended and fsynced in place.
/// Used where no consensus is wanted (tests of the layers above, tools reading a data dir).
pub struct LocalQuorum {
    node_id: i32,
    log: parking_lot::Mutex<Option<MetadataLog>>,
    images: watch::Sender<Arc<MetadataImage>>,
}

impl LocalQuorum {
    /// Opens the metadata log under `log_dir` (replaying it) as a quorum of one led by `node_id`.
    pub fn open(log_dir: &std::path::Path, node_id: i32) -> Result<LocalQuorum, QuorumError> {
        let log = MetadataLog::open(log_dir).map_err(|e| QuorumError::Storage(e.to_string()))?;
        let images = watch::channel(log.image()).0;
        Ok(LocalQuorum {
            node_id,
            log: parking_lot::Mutex::new(Some(log)),
            images,
        })
    }
}

impl MetadataQuorum for LocalQuorum {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<Arc<MetadataImage>, QuorumError>> {
        let result = self.propose_blocking(records);
        Box::pin(async move { result })
    }

    fn propose_blocking(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, QuorumError> {
        let mut guard = self.log.lock();
        let log = guard.as_mut().ok_or(QuorumError::Stopped)?;
        let image = log
            .append(&records)
            .map_err(|e| QuorumError::Storage(e.to_string()))?;
        self.images.send_replace(image.clone());
        Ok(image)
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    fn leader_id(&self) -> Option<i32> {
        Some(self.node_id)
    }

    fn shutdown(&self) -> Result<(), QuorumError> {
        match self.log.lock().take() {
            Some(log) => log.close().map_err(|e| QuorumError::Storage(e.to_string())),
            None => Ok(()),
        }
    }
}
