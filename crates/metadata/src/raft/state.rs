//! The raft state machine: the [`MetadataImage`] built from committed entries, published on a
//! watch, and its snapshots. A snapshot is the image as the records that rebuild it, written as a
//! Kafka v2 batch to `<index %020d>-<term %010d>.checkpoint` (first record: a header with the
//! snapshot meta); only the newest is kept.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::members::RaftNode;
use super::store::{decode_records, encode_batch};
use super::TypeConfig;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

const CHECKPOINT_EXT: &str = "checkpoint";
const KEY_HEADER: &[u8] = b"snapshot-header";

/// The first record of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointHeader {
    meta: SnapshotMeta<u64, RaftNode>,
    /// The image's `last_offset` (the index of the last normal entry in it).
    last_offset: i64,
}

type Membership = StoredMembership<u64, RaftNode>;

fn snap_err(e: impl ToString) -> StorageError<u64> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

fn read_snap_err(e: impl ToString) -> StorageError<u64> {
    StorageIOError::read_snapshot(None, AnyError::error(e.to_string())).into()
}

/// An empty image: no records applied yet.
pub(crate) fn empty_image() -> MetadataImage {
    MetadataImage {
        last_offset: -1,
        ..MetadataImage::default()
    }
}

fn encode_checkpoint(header: &CheckpointHeader, image: &MetadataImage) -> Result<Vec<u8>, String> {
    let mut records = vec![(
        Some(Bytes::from_static(KEY_HEADER)),
        Some(Bytes::from(
            serde_json::to_vec(header).map_err(|e| e.to_string())?,
        )),
    )];
    records.extend(
        image
            .to_records()
            .iter()
            .map(|r| (None, Some(Bytes::from(r.to_bytes())))),
    );
    let term = header.meta.last_log_id.map_or(0, |l| l.leader_id.term);
    Ok(encode_batch(records, term as i32)?.to_vec())
}

fn decode_checkpoint(bytes: &[u8]) -> Result<(CheckpointHeader, MetadataImage), String> {
    let records = decode_records(&Bytes::copy_from_slice(bytes))?;
    let mut records = records.into_iter();
    let first = records.next().ok_or("empty checkpoint")?;
    if first.key.as_deref() != Some(KEY_HEADER) {
        return Err("checkpoint without a header".into());
    }
    let header: CheckpointHeader =
        serde_json::from_slice(first.value.as_deref().unwrap_or_default())
            .map_err(|e| e.to_string())?;
    let mut image = empty_image();
    for rec in records {
        let r = MetadataRecord::from_bytes(rec.value.as_deref().unwrap_or_default())
            .map_err(|e| e.to_string())?;
        image.apply(&r);
    }
    image.last_offset = header.last_offset;
    Ok((header, image))
}

fn checkpoint_name(last: &LogId<u64>) -> String {
    format!(
        "{:020}-{:010}.{CHECKPOINT_EXT}",
        last.index, last.leader_id.term
    )
}

/// The checkpoints in `dir`, oldest first, by (index, term).
fn list_checkpoints(dir: &Path) -> std::io::Result<Vec<((u64, u64), PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        if path.extension().and_then(|x| x.to_str()) != Some(CHECKPOINT_EXT) {
            continue;
        }
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if let Some((i, t)) = stem.split_once('-') {
            if let (Ok(i), Ok(t)) = (i.parse(), t.parse()) {
                out.push(((i, t), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Writes a checkpoint atomically (temp file, fsync, rename, fsync the dir) and removes every
/// older one.
fn write_checkpoint(dir: &Path, last: &LogId<u64>, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(checkpoint_name(last));
    let tmp = path.with_extension("checkpoint.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    let all = list_checkpoints(dir)?;
    if let Some((_, newest)) = all.last() {
        for (_, p) in &all {
            if p != newest {
                std::fs::remove_file(p)?;
            }
        }
    }
    Ok(())
}

/// Reads the newest checkpoint in `dir`, if any: its bytes, header and image.
fn read_newest_checkpoint(
    dir: &Path,
) -> Result<Option<(Vec<u8>, CheckpointHeader, MetadataImage)>, String> {
    let all = list_checkpoints(dir).map_err(|e| e.to_string())?;
    let Some((_, path)) = all.last() else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let (header, image) =
        decode_checkpoint(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some((bytes, header, image)))
}

/// The state machine: the image of every applied entry and the snapshots of it.
pub(crate) struct StateMachine {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<u64>>,
    membership: Membership,
    images: Arc<watch::Sender<Arc<MetadataImage>>>,
    /// Serializes checkpoint writes (the builder runs beside the state machine).
    files: Arc<Mutex<()>>,
}

impl StateMachine {
    /// Restores the state machine from the newest checkpoint in `dir` (or empty), publishing its
    /// image on `images`.
    pub(crate) fn open(
        dir: &Path,
        images: Arc<watch::Sender<Arc<MetadataImage>>>,
    ) -> Result<StateMachine, String> {
        let (image, last_applied, membership) = match read_newest_checkpoint(dir)? {
            Some((_, header, image)) => {
                (image, header.meta.last_log_id, header.meta.last_membership)
            }
            None => (empty_image(), None, Membership::default()),
        };
        let image = Arc::new(image);
        images.send_replace(image.clone());
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            image,
            last_applied,
            membership,
            images,
            files: Arc::new(Mutex::new(())),
        })
    }

    /// True if a snapshot was restored.
    pub(crate) fn has_snapshot(&self) -> bool {
        self.last_applied.is_some()
    }

    /// The last entry the restored snapshot holds (None without one).
    pub(crate) fn last_applied(&self) -> Option<LogId<u64>> {
        self.last_applied
    }
}

/// Builds a snapshot of the state machine as it was when the builder was made.
pub(crate) struct SnapshotBuilder {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId<u64>>,
    membership: Membership,
    files: Arc<Mutex<()>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let last = self
            .last_applied
            .ok_or_else(|| snap_err("nothing applied to snapshot"))?;
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{}", last.index, last.leader_id.term),
        };
        let header = CheckpointHeader {
            meta: meta.clone(),
            last_offset: self.image.last_offset,
        };
        let bytes = encode_checkpoint(&header, &self.image).map_err(snap_err)?;
        {
            let _guard = self.files.lock();
            write_checkpoint(&self.dir, &last, &bytes).map_err(snap_err)?;
        }
        tracing::info!(
            index = last.index,
            term = last.leader_id.term,
            bytes = bytes.len(),
            "metadata snapshot written"
        );
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut out = Vec::new();
        let mut changed = false;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(records) => {
                    let image = Arc::make_mut(&mut self.image);
                    for r in &records {
                        image.apply(r);
                    }
                    image.last_offset = entry.log_id.index as i64;
                    changed = true;
                }
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                }
            }
            out.push(());
        }
        if changed {
            self.images.send_replace(self.image.clone());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            files: self.files.clone(),
        }
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, RaftNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let bytes = snapshot.into_inner();
        let (_, image) = decode_checkpoint(&bytes).map_err(snap_err)?;
        let last = meta
            .last_log_id
            .ok_or_else(|| snap_err("snapshot without a last log id"))?;
        {
            let _guard = self.files.lock();
            write_checkpoint(&self.dir, &last, &bytes).map_err(snap_err)?;
        }
        tracing::info!(
            index = last.index,
            term = last.leader_id.term,
            "metadata snapshot installed"
        );
        self.image = Arc::new(image);
        self.last_applied = Some(last);
        self.membership = meta.last_membership.clone();
        self.images.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let newest = {
            let _guard = self.files.lock();
            read_newest_checkpoint(&self.dir).map_err(read_snap_err)?
        };
        Ok(newest.map(|(bytes, header, _)| Snapshot {
            meta: header.meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::store::log_id;
    use uuid::Uuid;

    #[test]
    fn checkpoint_round_trips_and_only_the_newest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut image = empty_image();
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::Cluster {
            cluster_id: "c1".into(),
        });
        image.apply(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id: id,
        });
        image.last_offset = 41;
        for (index, term) in [(10, 1), (42, 2)] {
            let last = log_id(term, index);
            let header = CheckpointHeader {
                meta: SnapshotMeta {
                    last_log_id: Some(last),
                    last_membership: Membership::default(),
                    snapshot_id: "s".into(),
                },
                last_offset: image.last_offset,
            };
            let bytes = encode_checkpoint(&header, &image).unwrap();
            write_checkpoint(dir.path(), &last, &bytes).unwrap();
        }
        let names: Vec<_> = list_checkpoints(dir.path())
            .unwrap()
            .into_iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["00000000000000000042-0000000002.checkpoint"]);
        let (_, header, back) = read_newest_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(header.meta.last_log_id, Some(log_id(2, 42)));
        assert_eq!(back, image);
    }
}
