//! Upgrading a metadata log written before raft (by [`MetadataLog`]: records without keys, no
//! `quorum-state`): its image is replayed, the old directory is moved aside while raft starts
//! afresh, and removed once the image is committed as the first normal entry.

use std::path::{Path, PathBuf};

use runnel_storage::log::Log;

use super::store::{decode_records, log_config, QUORUM_STATE_FILE};
use crate::image::MetadataImage;
use crate::log::{MetadataLog, METADATA_LOG_DIR};

/// Where the old log waits while it is converted (the broker leaves `__cluster_metadata-0*` be).
fn legacy_dir(log_dir: &Path) -> PathBuf {
    log_dir.join(format!("{METADATA_LOG_DIR}.legacy"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Undoes an upgrade a crash interrupted: the half-made raft log goes, the old log comes back.
fn restore_interrupted(log_dir: &Path) -> std::io::Result<()> {
    let old = legacy_dir(log_dir);
    if !old.exists() {
        return Ok(());
    }
    let dir = log_dir.join(METADATA_LOG_DIR);
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::rename(&old, &dir)?;
    sync_dir(log_dir)
}

/// True if `dir` holds a pre-raft metadata log: no `quorum-state`, and a first record without
/// a key (raft entries always have one).
fn is_legacy(dir: &Path) -> Result<bool, String> {
    if !dir.exists() || dir.join(QUORUM_STATE_FILE).exists() {
        return Ok(false);
    }
    let log = Log::open(dir, log_config(), 0, false).map_err(|e| e.to_string())?;
    let (start, end) = (log.log_start_offset(), log.log_end_offset());
    let legacy = if start < end {
        let read = log.read(start, 64 * 1024, end).map_err(|e| e.to_string())?;
        decode_records(&read.records)?
            .first()
            .is_some_and(|r| r.key.is_none())
    } else {
        false
    };
    log.close().map_err(|e| e.to_string())?;
    Ok(legacy)
}

/// If `log_dir` holds a pre-raft metadata log, replays it, moves it aside and returns its image.
/// `may_convert` is false on a voter that will not initialize the quorum: finding one there is an
/// error rather than a silent loss.
pub(crate) fn take_legacy(
    log_dir: &Path,
    may_convert: bool,
) -> Result<Option<MetadataImage>, String> {
    restore_interrupted(log_dir).map_err(|e| e.to_string())?;
    let dir = log_dir.join(METADATA_LOG_DIR);
    if !is_legacy(&dir)? {
        return Ok(None);
    }
    if !may_convert {
        return Err(format!(
            "{} holds a pre-raft metadata log; only the voter that initializes the quorum \
             (the smallest id) can convert it",
            dir.display()
        ));
    }
    let old = MetadataLog::open(log_dir).map_err(|e| e.to_string())?;
    let image = (*old.image()).clone();
    old.close().map_err(|e| e.to_string())?;
    std::fs::rename(&dir, legacy_dir(log_dir)).map_err(|e| e.to_string())?;
    sync_dir(log_dir).map_err(|e| e.to_string())?;
    tracing::info!(
        topics = image.topics.len(),
        last_offset = image.last_offset,
        "metadata log: converting the pre-raft log"
    );
    Ok(Some(image))
}

/// Removes the old log once its image is committed.
pub(crate) fn finish(log_dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(legacy_dir(log_dir))?;
    sync_dir(log_dir)
}
