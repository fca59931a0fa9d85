//! The partition log: a directory of segments (`%020d.log` with `.index` and `.timeindex`), the
//! log start offset, the leader-epoch cache (`leader-epoch-checkpoint`) and producer state.
//! Batches are written as they came (offsets and epoch rewritten in the header by a leader; a
//! follower writes the leader's batches unchanged) and read back as bytes. A diverged follower
//! truncates by offset. After an unclean shutdown, segments from the recovery point on are
//! CRC-checked and the tail is truncated at the first invalid byte.
//!
//! Here: opening and recovery, appends (leader and follower), rolls, truncation, retention and
//! flushing. Apart: one segment and its indexes (`segment`), reads and timestamp lookups
//! (`read`), the leader-epoch cache (`epochs`), producer state and transactions (`txn`), the
//! swap of cleaned segments (`clean_swap`).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{
    build_control_batch, check_batch, control_marker, record_timestamps, set_base_offset,
    set_log_append_time, set_partition_leader_epoch, BatchError, BatchHeader, ControlMarker,
    CONTROL_ABORT, HEADER_SIZE,
};
use crate::checkpoint::write_atomic;
pub use crate::producer::DEFAULT_PRODUCER_ID_EXPIRATION_MS;
use crate::producer::{list_snapshots, ProducerState, SequenceCheck};

/// Settings of one log (from the topic's configuration).
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Roll a segment at this size.
    pub segment_bytes: u64,
    /// Roll a segment after this long.
    pub segment_ms: i64,
    /// Delete segments older than this (-1: never).
    pub retention_ms: i64,
    /// Delete old segments above this size (-1: no limit).
    pub retention_bytes: i64,
    /// Bytes between offset index entries.
    pub index_interval_bytes: u64,
    /// Largest index file; a full index rolls the segment.
    pub segment_index_bytes: u64,
    /// fsync after this many messages (u64::MAX: leave it to the OS).
    pub flush_interval_messages: u64,
    /// fsync after this long (i64::MAX: leave it to the OS).
    pub flush_interval_ms: i64,
    /// Kafka's delay before deleting files (Runnel deletes at once; kept for the config surface).
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// Errors of log operations.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// File system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// An offset outside the log.
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Offset asked for.
        requested: i64,
        /// Log start offset.
        log_start: i64,
        /// Log end offset.
        log_end: i64,
    },
    /// On-disk data that cannot be right.
    #[error("corrupt log: {0}")]
    Corrupt(String),
    /// A leader-epoch entry with a negative epoch or start offset.
    #[error("invalid leader epoch entry: epoch {epoch} at offset {start_offset}")]
    InvalidEpochEntry {
        /// The epoch given.
        epoch: i32,
        /// The start offset given.
        start_offset: i64,
    },
}

/// Errors of appends.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// File system error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The producer's epoch is older than the one the log knows.
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    /// A gap in the producer's sequence numbers.
    #[error("out of order sequence number")]
    OutOfOrderSequence,
    /// The batch was already written at these offsets.
    #[error("duplicate batch (offsets {first_offset}..={last_offset})")]
    DuplicateSequence {
        /// First offset of the original.
        first_offset: i64,
        /// Last offset of the original.
        last_offset: i64,
    },
    /// Malformed batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A log-level failure while appending.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A transaction marker from a coordinator older than the one that wrote the producer's
    /// latest marker.
    #[error("transaction coordinator fenced")]
    CoordinatorFenced,
    /// A follower append whose batch starts below the log end offset or below the end of the
    /// batch before it (offsets are the leader's; gaps, as a cleaned log has, are fine).
    #[error(
        "batch at offset {got} is below {expected}, where the log or the batch before it ends"
    )]
    OffsetMismatch {
        /// The lowest offset the batch could start at.
        expected: i64,
        /// The base offset it had.
        got: i64,
    },
}

/// What an append did.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    /// First offset assigned.
    pub first_offset: i64,
    /// Last offset assigned.
    pub last_offset: i64,
    /// The broker time written for LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    /// The log start offset after the append.
    pub log_start_offset: i64,
    /// Largest timestamp appended.
    pub max_timestamp: i64,
}

/// What a follower append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerAppendInfo {
    /// Base offset of the first batch written (past the log end offset before the append when
    /// the leader's log has a gap there); that log end offset when nothing was written.
    pub first_offset: i64,
    /// Last offset written; `first_offset - 1` when nothing was.
    pub last_offset: i64,
    /// Bytes of whole batches written: 0 for empty input or only a partial batch.
    pub valid_bytes: usize,
    /// Largest batch max timestamp written, -1 if none.
    pub max_timestamp: i64,
}

/// Bytes read from the log.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Whole batches.
    pub records: Bytes,
    /// Base offset of the first batch, if any.
    pub first_batch_base_offset: Option<i64>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One partition's log, in `<log.dirs>/<topic>-<partition>/`. Not synchronized: the broker
/// holds it behind a mutex; `read` takes `&self` (positional reads).
///
/// Files: `%020d.log` segments with `.index` (8-byte entries: relative offset u32, position u32;
/// one for the first batch, then every `index_interval_bytes`) and `.timeindex` (12-byte
/// entries: largest timestamp so far i64, relative offset u32 of the batch holding it), both in
/// Kafka's layout, written at their used size and rebuilt from the segment when missing or
/// wrong; `leader-epoch-checkpoint` (Kafka's text format); `%020d.snapshot` producer state
/// (the last two kept); and `log-start-offset`, one decimal line, which this crate owns: the
/// log start offset is persisted here on every change rather than passed in by the broker.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    producers: ProducerState,
    epochs: Vec<(i32, i64)>,
    /// What `leader-epoch-checkpoint` holds: the cache is written whenever it differs, at the
    /// latest before the log grows (entries dropped at open, at or past the log end, differ
    /// until a new leadership assigns the same entry again, which then costs no write).
    epochs_on_disk: Vec<(i32, i64)>,
    unflushed_messages: u64,
    last_flush_ms: i64,
    recovery_point: i64,
    /// The last rolled segment being made durable off the append path.
    background_flush: Option<BackgroundFlush>,
    /// Aborted transactions, by marker offset (kept in `.txnindex` files, one per segment).
    aborted: Vec<AbortedTxn>,
    /// Bumped whenever bytes already written are cut or rewritten (truncation), so that a copy
    /// of the files taken meanwhile ([`crate::relocate`]) knows a grown file is not an append.
    rewrites: u64,
}

/// A rolled segment's fsync (and its producer snapshot) running on its own thread, so that a
/// roll does not stall appends for as long as the disk takes to write a whole segment. The
/// recovery point moves to `base` only once it is done.
struct BackgroundFlush {
    base: i64,
    handle: std::thread::JoinHandle<std::io::Result<()>>,
}

const LOG_START_FILE: &str = "log-start-offset";
/// Largest offset - base offset a segment may hold (Kafka's relative offsets are i32).
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;
/// Producer-state snapshots kept in a partition directory.
const SNAPSHOTS_KEPT: usize = 2;
/// Largest segment file (Kafka's positions are i32).
const MAX_SEGMENT_BYTES: u64 = i32::MAX as u64;

/// Scans a segment file from `from` to `len`; returns the valid length and the batches found.
/// A batch is valid if it is whole, its length sane, its offsets at or above `min_offset` and
/// ascending, within `max_relative` of `base`, and (when `check_crc`) its CRC-32C right.
fn scan(
    file: &File,
    base: i64,
    from: u64,
    len: u64,
    min_offset: i64,
    check_crc: bool,
) -> (u64, Vec<(u64, BatchHeader)>) {
    let mut pos = from;
    let mut out = Vec::new();
    let mut min_offset = min_offset;
    let mut head = [0u8; HEADER_SIZE];
    let mut buf = Vec::new();
    while pos + HEADER_SIZE as u64 <= len {
        if file.read_exact_at(&mut head, pos).is_err() {
            break;
        }
        let Ok(h) = BatchHeader::parse(&head) else {
            break;
        };
        if h.batch_length < (HEADER_SIZE - 12) as i32 || pos + h.size_bytes() as u64 > len {
            break;
        }
        if h.base_offset < min_offset
            || h.last_offset_delta < 0
            || h.last_offset() - base > MAX_RELATIVE_OFFSET
        {
            break;
        }
        if check_crc {
            buf.resize(h.size_bytes(), 0);
            if file.read_exact_at(&mut buf, pos).is_err() || check_batch(&buf).is_err() {
                break;
            }
        }
        out.push((pos, h));
        min_offset = h.next_offset();
        pos += h.size_bytes() as u64;
    }
    (pos, out)
}

/// A segment's offset index entries and time index entries.
type Indexes = (Vec<(u32, u32)>, Vec<(i64, u32)>);

/// Loads a segment's index files if they look right (sizes, ordering, the last offset entry
/// pointing at a batch with that offset, time entries inside the segment); None: rebuild.
fn load_index(dir: &Path, seg: &Segment) -> Option<Indexes> {
    let base = seg.base_offset;
    let idx = std::fs::read(seg_path(dir, base, "index")).ok()?;
    let tidx = std::fs::read(seg_path(dir, base, "timeindex")).ok()?;
    if idx.len() % 8 != 0 || tidx.len() % 12 != 0 {
        return None;
    }
    let be_u32 = |c: &[u8]| u32::from_be_bytes(c.try_into().expect("4 bytes"));
    let index: Vec<(u32, u32)> = idx
        .chunks(8)
        .map(|c| (be_u32(&c[0..4]), be_u32(&c[4..8])))
        .collect();
    let time_index: Vec<(i64, u32)> = tidx
        .chunks(12)
        .map(|c| {
            (
                i64::from_be_bytes(c[0..8].try_into().expect("8 bytes")),
                be_u32(&c[8..12]),
            )
        })
        .collect();
    let sorted = index.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1)
        && time_index
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    if !sorted || (index.is_empty() && seg.size > 0) {
        return None;
    }
    if let Some(&(rel, pos)) = index.last() {
        let h = seg.read_header(pos as u64)?;
        if h.base_offset != base + rel as i64 {
            return None;
        }
        // The first batch always gets a time entry if it has a timestamp.
        if time_index.is_empty() && seg.read_header(0)?.max_timestamp >= 0 {
            return None;
        }
    } else if !time_index.is_empty() {
        return None;
    }
    Some((index, time_index))
}

/// Opens a sealed segment after a clean shutdown without reading its indexes: only the last
/// entry of each index file is read and the batches after the last offset entry walked (for
/// the segment's next offset and largest timestamp); the rest is read on first lookup
/// (`Segment::ix`), as Kafka maps its index files lazily. False when those tails do not look
/// right: the caller loads or rebuilds the indexes as before.
fn open_lazily(dir: &Path, seg: &mut Segment, min_offset: i64, interval: u64) -> bool {
    let base = seg.base_offset;
    // (entries, last entry) of an index file of `width`-byte entries.
    let tail = |ext: &str, width: u64| -> Option<(u64, Vec<u8>)> {
        let f = File::open(seg_path(dir, base, ext)).ok()?;
        let len = f.metadata().ok()?.len();
        if len % width != 0 {
            return None;
        }
        let mut last = vec![0u8; if len == 0 { 0 } else { width as usize }];
        if len > 0 {
            f.read_exact_at(&mut last, len - width).ok()?;
        }
        Some((len / width, last))
    };
    let (Some((index_n, last)), Some((time_n, last_time))) =
        (tail("index", 8), tail("timeindex", 12))
    else {
        return false;
    };
    let be_u32 = |c: &[u8]| u32::from_be_bytes(c.try_into().expect("4 bytes"));
    if index_n == 0 {
        return false;
    }
    let (rel, pos) = (be_u32(&last[0..4]), be_u32(&last[4..8]) as u64);
    let (Some(at_last), Some(first)) = (seg.read_header(pos), seg.read_header(0)) else {
        return false;
    };
    if at_last.base_offset != base + rel as i64 || (time_n == 0 && first.max_timestamp >= 0) {
        return false;
    }
    if time_n > 0 {
        seg.max_timestamp = i64::from_be_bytes(last_time[0..8].try_into().expect("8 bytes"));
        seg.offset_of_max_timestamp = base + be_u32(&last_time[8..12]) as i64;
    }
    let (valid, batches) = scan(&seg.file, base, pos, seg.size, min_offset, false);
    for (_, h) in &batches {
        seg.next_offset = h.next_offset();
        if h.max_timestamp > seg.max_timestamp {
            seg.max_timestamp = h.max_timestamp;
            seg.offset_of_max_timestamp = h.last_offset();
        }
    }
    if valid < seg.size || batches.is_empty() || seg.offset_of_max_timestamp >= seg.next_offset {
        seg.clear_indexes();
        return false;
    }
    seg.first_batch_timestamp = first.max_timestamp;
    seg.bytes_since_index = valid - pos;
    seg.index_on_disk = index_n as usize;
    seg.time_index_on_disk = time_n as usize;
    seg.set_lazy(dir, interval);
    true
}

impl Log {
    /// Opens or creates the log in `dir`, recovering segments from `recovery_point` on when the
    /// last shutdown was not clean.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        recovery_point: i64,
        clean_shutdown: bool,
    ) -> Result<Log, LogError> {
        std::fs::create_dir_all(dir)?;
        clean_swap::complete_interrupted_swaps(dir)?;
        let mut bases = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(b) = stem.parse::<i64>() {
                    bases.push(b);
                }
            }
        }
        bases.sort();
        let recovery_base = bases
            .iter()
            .copied()
            .filter(|b| *b <= recovery_point)
            .max()
            .unwrap_or(i64::MIN);
        let mut segments = BTreeMap::new();
        let mut truncated = false;
        let mut prev_next_offset = i64::MIN;
        for (i, &base) in bases.iter().enumerate() {
            if truncated {
                for ext in ["log", "index", "timeindex"] {
                    let _ = std::fs::remove_file(seg_path(dir, base, ext));
                }
                continue;
            }
            let file = OpenOptions::new()
                .read(true)
                .append(true)
                .open(seg_path(dir, base, "log"))?;
            let size = file.metadata()?.len();
            let mtime = file
                .metadata()?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or_else(now_ms);
            let mut seg = Segment::empty(base, file, size, mtime);
            let min_offset = prev_next_offset.max(base);
            let mut recover = !clean_shutdown && base >= recovery_base;
            // A sealed segment after a clean shutdown: its indexes are read on first lookup.
            if !recover
                && i + 1 < bases.len()
                && open_lazily(dir, &mut seg, min_offset, config.index_interval_bytes)
            {
                prev_next_offset = seg.next_offset;
                segments.insert(base, seg);
                continue;
            }
            let loaded = if recover { None } else { load_index(dir, &seg) };
            let mut rebuild = true;
            if let Some((index, time_index)) = loaded {
                // Trust the indexes; walk the batches from the last entry to the end.
                let from = index.last().map(|(_, p)| *p as u64).unwrap_or(0);
                let (valid, batches) = scan(&seg.file, base, from, size, min_offset, false);
                seg.index_on_disk = index.len();
                seg.time_index_on_disk = time_index.len();
                if let Some(&(t, rel)) = time_index.last() {
                    seg.max_timestamp = t;
                    seg.offset_of_max_timestamp = base + rel as i64;
                }
                seg.set_indexes(index, time_index);
                seg.first_batch_timestamp = seg.read_header(0).map_or(-1, |h| h.max_timestamp);
                for (_, h) in &batches {
                    seg.next_offset = h.next_offset();
                    if h.max_timestamp > seg.max_timestamp {
                        seg.max_timestamp = h.max_timestamp;
                        seg.offset_of_max_timestamp = h.last_offset();
                    }
                }
                seg.bytes_since_index = valid - from;
                if seg.offset_of_max_timestamp >= seg.next_offset || valid < size {
                    // The time index points past the data, or the tail is invalid even though
                    // the shutdown was called clean: check the whole segment, rebuild both.
                    seg.clear_indexes();
                    recover = true;
                } else {
                    rebuild = false;
                }
            }
            if rebuild {
                let (valid, batches) = scan(&seg.file, base, 0, size, min_offset, recover);
                if valid < size {
                    tracing::warn!(dir = %dir.display(), base, valid, size, "recovery: truncating the segment at the first invalid byte");
                    seg.file.set_len(valid)?;
                    seg.file.sync_all()?;
                    seg.size = valid;
                    truncated = true;
                }
                for (pos, h) in &batches {
                    seg.index_batch(h, *pos, config.index_interval_bytes);
                }
            }
            if seg.size == 0 && i + 1 < bases.len() && !truncated {
                // An empty segment in the middle carries nothing.
                seg.remove(dir);
                continue;
            }
            if rebuild {
                seg.maybe_append_time_entry();
                seg.write_indexes(dir)?;
                (seg.index_on_disk, seg.time_index_on_disk) = seg.index_entries();
            }
            prev_next_offset = seg.next_offset;
            segments.insert(base, seg);
        }
        let persisted_start = std::fs::read_to_string(dir.join(LOG_START_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        let first_base = segments.keys().next().copied().unwrap_or(0);
        let mut log_start_offset = persisted_start.unwrap_or(first_base).max(first_base);
        if segments.is_empty() {
            let base = persisted_start.unwrap_or(0);
            segments.insert(base, Segment::create(dir, base)?);
            log_start_offset = base;
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            producers: ProducerState::default(),
            epochs: Vec::new(),
            epochs_on_disk: Vec::new(),
            unflushed_messages: 0,
            last_flush_ms: now_ms(),
            recovery_point,
            background_flush: None,
            aborted: Vec::new(),
            rewrites: 0,
        };
        let leo = log.log_end_offset();
        if log.log_start_offset > leo {
            // Everything up to the start offset was deleted: continue from there.
            let base = log.log_start_offset;
            log.roll_at(base)?;
        }
        log.load_epochs()?;
        log.truncate_epochs_from_start()?;
        log.load_aborted_txns();
        log.load_producer_state()?;
        log.recovery_point = log.log_end_offset();
        Ok(log)
    }

    fn headers_from(&self, from: i64) -> Vec<BatchHeader> {
        let mut out = Vec::new();
        for seg in self.segments.values() {
            if seg.next_offset <= from {
                continue;
            }
            let mut pos = match seg.find(from.max(seg.base_offset)) {
                Some((p, _)) => p,
                None => continue,
            };
            while let Some(h) = seg.read_header(pos) {
                out.push(h);
                pos += h.size_bytes() as u64;
            }
        }
        out
    }

    /// Applies a new configuration.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// How many times bytes already written were cut or rewritten (truncations) since the log
    /// was opened: between two equal values the files only grew at their ends or were added or
    /// deleted whole.
    pub fn rewrites(&self) -> u64 {
        self.rewrites
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.segments
            .values()
            .next_back()
            .map(|s| s.next_offset)
            .unwrap_or(0)
    }

    /// Offset below which data was flushed when the log was opened or last flushed.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Total bytes in segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    fn active(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// Closes the active segment (final time index entry, fsync) and starts one at `base`,
    /// with a producer-state snapshot there (the last two snapshots are kept).
    fn roll_at(&mut self, base: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let old = self.segments.values_mut().next_back().expect("a segment");
        assert!(base >= old.next_offset, "rolling below the log end");
        let mut to_sync = Vec::new();
        if old.size == 0 {
            if old.base_offset == base {
                return Ok(());
            }
            // An empty active segment is replaced, not kept in the middle.
            let b = old.base_offset;
            self.segments.remove(&b).expect("present").remove(&dir);
        } else {
            old.maybe_append_time_entry();
            old.persist_indexes(&dir, false)?;
            to_sync.push(old.file.try_clone()?);
            for ext in ["index", "timeindex"] {
                if let Ok(f) = File::open(seg_path(&dir, old.base_offset, ext)) {
                    to_sync.push(f);
                }
            }
        }
        // One background flush at a time (a segment's worth of appends apart, so the previous
        // one has long finished).
        self.reap_background_flush(true)?;
        let seg = Segment::create(&dir, base)?;
        self.segments.insert(base, seg);
        let snapshot = self.producers.to_bytes();
        let handle = std::thread::Builder::new()
            .name("runnel-segment-flush".into())
            .spawn(move || {
                for f in &to_sync {
                    f.sync_data()?;
                }
                crate::producer::write_snapshot_bytes(&dir, base, &snapshot)?;
                File::open(&dir)?.sync_all()?;
                prune_snapshots_in(&dir)
            })?;
        self.background_flush = Some(BackgroundFlush { base, handle });
        Ok(())
    }

    /// Collects the rolled segment's background flush: waits for it when `wait`, else only if
    /// it is done. Everything below its base is on disk afterwards.
    fn reap_background_flush(&mut self, wait: bool) -> Result<(), LogError> {
        let Some(bf) = self.background_flush.take() else {
            return Ok(());
        };
        if !wait && !bf.handle.is_finished() {
            self.background_flush = Some(bf);
            return Ok(());
        }
        match bf.handle.join() {
            Ok(Ok(())) => {
                self.recovery_point = self.recovery_point.max(bf.base);
                Ok(())
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(LogError::Corrupt(
                "the segment flush thread panicked".to_string(),
            )),
        }
    }

    /// Deletes all but the two newest producer-state snapshots.
    fn prune_snapshots(&self) -> Result<(), LogError> {
        Ok(prune_snapshots_in(&self.dir)?)
    }

    /// Kafka's LogSegment.shouldRoll (without jitter): the active segment is rolled before an
    /// append of `incoming` bytes up to `last_offset` with largest timestamp `max_ts` if it would
    /// grow past segment.bytes, has waited segment.ms (by record timestamps: the incoming max
    /// timestamp against the first batch's; by wall clock if it has none), its indexes are full
    /// or the offsets would not fit its relative offsets.
    fn maybe_roll(
        &mut self,
        incoming: u64,
        last_offset: i64,
        max_ts: i64,
        now: i64,
    ) -> Result<(), LogError> {
        if self.should_roll(incoming, last_offset, max_ts, now) {
            let leo = self.log_end_offset();
            self.roll_at(leo)?;
        }
        Ok(())
    }

    /// The test of [`Log::maybe_roll`], against the active segment as it is in memory.
    fn should_roll(&self, incoming: u64, last_offset: i64, max_ts: i64, now: i64) -> bool {
        let cfg = &self.config;
        let seg = self
            .segments
            .values()
            .next_back()
            .expect("a log always has a segment");
        if seg.size == 0 {
            return false;
        }
        let full = seg.size + incoming > cfg.segment_bytes.min(MAX_SEGMENT_BYTES);
        let waited_ms = if seg.first_batch_timestamp >= 0 {
            max_ts.saturating_sub(seg.first_batch_timestamp)
        } else {
            now.saturating_sub(seg.created_ms)
        };
        let old = waited_ms > cfg.segment_ms;
        let new_entries = incoming / cfg.index_interval_bytes.max(1) + 1;
        let (index_len, time_len) = seg.index_entries();
        let index_full = (index_len as u64 + new_entries) * 8 > cfg.segment_index_bytes
            || (time_len as u64 + new_entries + 1) * 12 > cfg.segment_index_bytes;
        let rel_overflow = last_offset - seg.base_offset > MAX_RELATIVE_OFFSET;
        full || old || index_full || rel_overflow
    }

    /// Appends batches as the partition leader: checks producer sequences, assigns offsets,
    /// stamps the leader epoch (and LogAppendTime when asked) and writes the bytes.
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<AppendInfo, AppendError> {
        let mut headers = Vec::new();
        let mut pos = 0;
        while pos < records.len() {
            let h = BatchHeader::parse(&records[pos..])?;
            if h.batch_length < (HEADER_SIZE - 12) as i32 || pos + h.size_bytes() > records.len() {
                return Err(AppendError::Batch(BatchError::Truncated));
            }
            if h.last_offset_delta < 0 || h.records_count < 0 {
                return Err(AppendError::Batch(BatchError::InvalidRecordCount));
            }
            headers.push(h);
            pos += h.size_bytes();
        }
        if headers.is_empty() {
            return Err(AppendError::Batch(BatchError::InvalidRecordCount));
        }
        // Producer checks before anything is written.
        let mut scratch: Option<ProducerState> = None;
        for (i, h) in headers.iter().enumerate() {
            if !h.has_producer_id() {
                continue;
            }
            let state = scratch.as_ref().unwrap_or(&self.producers);
            match state.check(h) {
                SequenceCheck::Ok => {}
                SequenceCheck::Duplicate(first_offset, last_offset) => {
                    return Err(AppendError::DuplicateSequence {
                        first_offset,
                        last_offset,
                    })
                }
                SequenceCheck::OutOfOrder => return Err(AppendError::OutOfOrderSequence),
                SequenceCheck::FencedEpoch => return Err(AppendError::InvalidProducerEpoch),
            }
            if headers.len() > 1 && i + 1 < headers.len() {
                let s = scratch.get_or_insert_with(|| self.producers.clone());
                s.update(h);
            }
        }
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut pos = 0;
        let mut max_ts = -1;
        for h in headers.iter_mut() {
            let b = &mut records[pos..pos + h.size_bytes()];
            set_base_offset(b, next);
            set_partition_leader_epoch(b, leader_epoch);
            if log_append_time {
                set_log_append_time(b, now_ms);
                h.max_timestamp = now_ms;
                h.attributes |= 0x08;
            }
            h.base_offset = next;
            h.partition_leader_epoch = leader_epoch;
            next = h.next_offset();
            max_ts = max_ts.max(h.max_timestamp);
            pos += h.size_bytes();
        }
        let last_offset = next - 1;
        self.maybe_roll(records.len() as u64, last_offset, max_ts, now_ms)?;
        let interval = self.config.index_interval_bytes;
        let seg = self.active();
        if let Err(e) = (&*seg.file).write_all(records) {
            // Leave no partial batch behind: the file must end where the segment says it does.
            let _ = seg.file.set_len(seg.size);
            return Err(e.into());
        }
        let mut at = seg.size;
        for h in &headers {
            seg.index_batch(h, at, interval);
            at += h.size_bytes() as u64;
        }
        seg.size = at;
        seg.last_modified_ms = now_ms;
        let new_epoch = self.epochs.last().is_none_or(|(e, _)| leader_epoch > *e);
        if new_epoch {
            self.epochs.push((leader_epoch, first_offset));
        }
        if self.epochs != self.epochs_on_disk {
            self.write_epochs()?;
        }
        let mut pos = 0;
        for h in &headers {
            self.producers.update(h);
            if h.is_control() && h.has_producer_id() {
                let marker = control_marker(&records[pos..pos + h.size_bytes()]);
                self.complete_txn(h.producer_id, marker, h.base_offset)?;
            }
            pos += h.size_bytes();
        }
        let messages = (last_offset - first_offset + 1) as u64;
        if self.syncs_every_append() {
            // The caller syncs through `unsynced_files` outside the partition's lock, one fsync
            // covering every append made while the previous one ran (group commit).
            self.unflushed_messages += messages;
        } else {
            self.apply_flush_policy(messages, now_ms)?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            max_timestamp: max_ts,
        })
    }

    /// The flush policy after an append of `messages` offsets: fsync after
    /// `flush_interval_messages` of them or `flush_interval_ms` since the last flush.
    fn apply_flush_policy(&mut self, messages: u64, now_ms: i64) -> Result<(), LogError> {
        self.unflushed_messages += messages;
        if self.unflushed_messages >= self.config.flush_interval_messages
            || (self.config.flush_interval_ms != i64::MAX
                && now_ms - self.last_flush_ms >= self.config.flush_interval_ms)
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends batches as a follower replica: `records` are the leader's batches as a fetch
    /// returned them, offsets and partition leader epochs set, and are written unchanged.
    ///
    /// Every whole batch is checked (length, magic, CRC-32C) and must not go back: the first
    /// at or past the log end offset, each next one at or past where the previous ended
    /// ([`AppendError::OffsetMismatch`] otherwise; gaps are kept, as Kafka keeps those of a
    /// cleaned leader log, and the log end offset becomes the end of the last batch); nothing is
    /// written unless all pass. A partial
    /// batch at the end (a fetch cut at its size limit) is ignored; empty input is a no-op. The
    /// leader-epoch cache takes each batch's epoch as [`Log::assign_epoch`] does; the producer
    /// state (sequences, producer epochs, open transactions, aborted-transaction index) is
    /// updated as the leader's append updated it, without its checks, which the leader made.
    /// Segments roll between batches by the same rules as on the leader, and the flush policy
    /// applies. After an I/O error a prefix of whole batches may be in the log:
    /// [`Log::log_end_offset`] says where to continue.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<FollowerAppendInfo, AppendError> {
        let first_offset = self.log_end_offset();
        let mut headers = Vec::new();
        let mut expected = first_offset;
        let mut pos = 0;
        while records.len() - pos >= 12 {
            let rest = &records[pos..];
            let len = i32::from_be_bytes(rest[8..12].try_into().expect("4 bytes"));
            if len < (HEADER_SIZE - 12) as i32 {
                return Err(BatchError::InvalidLength(len).into());
            }
            let size = 12 + len as usize;
            if rest.len() < size {
                break; // a partial trailing batch
            }
            let h = check_batch(&rest[..size])?;
            if h.base_offset < expected {
                return Err(AppendError::OffsetMismatch {
                    expected,
                    got: h.base_offset,
                });
            }
            expected = h.next_offset();
            headers.push(h);
            pos += size;
        }
        let mut info = FollowerAppendInfo {
            first_offset,
            last_offset: first_offset - 1,
            valid_bytes: pos,
            max_timestamp: -1,
        };
        if headers.is_empty() {
            return Ok(info);
        }
        // The epoch cache before the data, as Kafka: an entry past the data is dropped at open,
        // while data without its entry would answer OffsetsForLeaderEpoch wrongly.
        for h in &headers {
            if h.partition_leader_epoch >= 0 {
                self.assign_epoch_in_memory(h.partition_leader_epoch, h.base_offset);
            }
        }
        if self.epochs != self.epochs_on_disk {
            self.write_epochs()?;
        }
        if let Err(e) = self.write_follower_batches(&records[..pos], &headers, now_ms) {
            // Entries for batches that did not make it go again.
            let leo = self.log_end_offset();
            if let Err(e2) = self.truncate_epochs_from_end(leo) {
                tracing::warn!(dir = %self.dir.display(), error = %e2, "could not drop epoch entries after a failed append");
            }
            return Err(e);
        }
        info.first_offset = headers[0].base_offset;
        info.last_offset = expected - 1;
        info.max_timestamp = headers.iter().map(|h| h.max_timestamp).max().unwrap_or(-1);
        let messages: i64 = headers
            .iter()
            .map(|h| h.next_offset() - h.base_offset)
            .sum();
        self.apply_flush_policy(messages as u64, now_ms)?;
        Ok(info)
    }

    /// Writes a follower's checked batches, rolling the active segment before a batch when
    /// [`Log::maybe_roll`] would: each run of batches that share a segment is first indexed in
    /// memory (so the roll test sees it), then written with one call.
    fn write_follower_batches(
        &mut self,
        records: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let interval = self.config.index_interval_bytes;
        let (mut run_first, mut run_pos, mut pos) = (0, 0, 0);
        for (i, h) in headers.iter().enumerate() {
            let size = h.size_bytes();
            if self.should_roll(size as u64, h.last_offset(), h.max_timestamp, now_ms) {
                self.write_run(&records[run_pos..pos], &headers[run_first..i], now_ms)?;
                (run_first, run_pos) = (i, pos);
                self.roll_at(h.base_offset)?;
            }
            let seg = self.active();
            let at = seg.size;
            seg.index_batch(h, at, interval);
            seg.size += size as u64;
            pos += size;
        }
        self.write_run(&records[run_pos..pos], &headers[run_first..], now_ms)
    }

    /// Writes `bytes`, batches already indexed in memory at the end of the active segment, then
    /// records them in the producer state; a failed write cuts the segment back to before them.
    fn write_run(
        &mut self,
        bytes: &[u8],
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<(), AppendError> {
        let Some(first) = headers.first() else {
            return Ok(());
        };
        let dir = self.dir.clone();
        let seg = self.active();
        let start = seg.size - bytes.len() as u64;
        if let Err(e) = (&*seg.file).write_all(bytes) {
            // Leave no partial batch behind: the file must end where the segment says it does.
            if let Err(e2) = seg.truncate_at(&dir, start, first.base_offset) {
                tracing::warn!(dir = %dir.display(), error = %e2, "could not cut a failed append");
            }
            return Err(e.into());
        }
        seg.last_modified_ms = now_ms;
        let mut pos = 0;
        for h in headers {
            self.producers.update(h);
            if h.is_control() && h.has_producer_id() {
                let marker = control_marker(&bytes[pos..pos + h.size_bytes()]);
                self.complete_txn(h.producer_id, marker, h.base_offset)?;
            }
            pos += h.size_bytes();
        }
        Ok(())
    }

    /// Whether every leader append is to be on disk before it is acknowledged
    /// (`flush.messages=1`): [`Log::append_as_leader`] then leaves the fsync to its caller.
    pub fn syncs_every_append(&self) -> bool {
        self.config.flush_interval_messages == 1
    }

    /// The segment files that may hold data at or above offset `from` not yet on disk, for a
    /// caller that fsyncs them outside the partition's lock (the data, not the indexes, which
    /// recovery rebuilds; the recovery point does not move).
    pub fn unsynced_files(&self, from: i64) -> Vec<Arc<std::fs::File>> {
        let from = from.max(self.recovery_point);
        self.segments
            .range(..)
            .rev()
            .take_while(|(_, s)| s.next_offset > from)
            .map(|(_, s)| Arc::clone(&s.file))
            .collect()
    }

    /// fsyncs the active segment and writes its indexes.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.reap_background_flush(true)?;
        let dir = self.dir.clone();
        let seg = self.active();
        seg.file.sync_data()?;
        seg.persist_indexes(&dir, true)?;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms();
        self.recovery_point = self.log_end_offset();
        Ok(())
    }

    /// Flushes if `flush_interval_ms` has passed since the last flush and something was written.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool, LogError> {
        self.reap_background_flush(false)?;
        let due = self.config.flush_interval_ms != i64::MAX
            && self.unflushed_messages > 0
            && now_ms - self.last_flush_ms >= self.config.flush_interval_ms;
        if due {
            self.flush()?;
        }
        Ok(due)
    }

    /// Flushes, then writes a producer-state snapshot at the log end and the log start offset:
    /// what a clean shutdown leaves behind.
    pub fn flush_and_snapshot(&mut self) -> Result<(), LogError> {
        if self.snapshot_on_disk() {
            // Nothing written since the last one (an idle partition at shutdown): no fsyncs.
            return Ok(());
        }
        self.active().maybe_append_time_entry();
        self.flush()?;
        let leo = self.log_end_offset();
        self.producers.write_snapshot(&self.dir, leo)?;
        self.prune_snapshots()?;
        self.persist_log_start()?;
        Ok(())
    }

    /// Whether what [`Log::flush_and_snapshot`] would write is on disk already: everything
    /// flushed to the log end, the producer snapshot at the log end and the log start offset.
    fn snapshot_on_disk(&self) -> bool {
        let leo = self.log_end_offset();
        self.recovery_point == leo
            && self.background_flush.is_none()
            && self.unflushed_messages == 0
            && self.dir.join(format!("{leo:020}.snapshot")).exists()
            && std::fs::read_to_string(self.dir.join(LOG_START_FILE))
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                == Some(self.log_start_offset)
    }

    /// Flushes and closes the log, leaving a producer-state snapshot. Index files are written
    /// at their used size (never preallocated), so there is nothing to trim.
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush_and_snapshot()
    }
}

/// Deletes all but the newest producer-state snapshots in a partition directory.
fn prune_snapshots_in(dir: &Path) -> std::io::Result<()> {
    let snaps = list_snapshots(dir)?;
    if snaps.len() > SNAPSHOTS_KEPT {
        for (_, p) in &snaps[..snaps.len() - SNAPSHOTS_KEPT] {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(())
}

/// Removes a file; one already gone is fine.
fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes a partition directory and everything in it.
pub fn delete_log_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)
}

/// The cleaner's side of the log: segment views, cleaned segments and their swap.
pub(crate) mod clean_swap;
mod epochs;
mod read;
mod segment;
mod truncate;
mod txn;

use segment::{encode_index, encode_time_index, seg_path, Segment};

pub use read::ReadPlan;
pub use txn::{AbortedTxn, ProducerSummary};

#[cfg(test)]
mod tests;

#[cfg(test)]
mod replication_tests;
