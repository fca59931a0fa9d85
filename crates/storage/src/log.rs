//! The partition log: a directory of segments (`%020d.log` with `.index` and `.timeindex`), the
//! log start offset, the leader-epoch cache (`leader-epoch-checkpoint`) and producer state.
//! Batches are written as they came (offsets and epoch rewritten in the header) and read back as
//! bytes. After an unclean shutdown, segments from the recovery point on are CRC-checked and the
//! tail is truncated at the first invalid byte.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::{
    check_batch, record_timestamps, set_base_offset, set_log_append_time,
    set_partition_leader_epoch, BatchError, BatchHeader, HEADER_SIZE,
};
use crate::checkpoint::write_atomic;
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

struct Segment {
    base_offset: i64,
    file: File,
    size: u64,
    next_offset: i64,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    max_timestamp: i64,
    bytes_since_index: u64,
    created_ms: i64,
    last_modified_ms: i64,
}

fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

impl Segment {
    fn create(dir: &Path, base: i64) -> std::io::Result<Segment> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(seg_path(dir, base, "log"))?;
        let now = now_ms();
        Ok(Segment {
            base_offset: base,
            file,
            size: 0,
            next_offset: base,
            index: Vec::new(),
            time_index: Vec::new(),
            max_timestamp: -1,
            bytes_since_index: 0,
            created_ms: now,
            last_modified_ms: now,
        })
    }

    fn read_header(&self, pos: u64) -> Option<BatchHeader> {
        if pos + HEADER_SIZE as u64 > self.size {
            return None;
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.file.read_exact_at(&mut buf, pos).ok()?;
        BatchHeader::parse(&buf).ok()
    }

    /// Records an appended batch at `pos` in the in-memory indexes.
    fn index_batch(&mut self, h: &BatchHeader, pos: u64, interval: u64) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if self.index.is_empty() || self.bytes_since_index >= interval {
            self.index.push((rel, pos as u32));
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size_bytes() as u64;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.time_index.push((h.max_timestamp, rel));
        }
        self.next_offset = h.next_offset();
    }

    fn write_indexes(&self, dir: &Path) -> std::io::Result<()> {
        let mut idx = Vec::with_capacity(self.index.len() * 8);
        for (o, p) in &self.index {
            idx.extend_from_slice(&o.to_be_bytes());
            idx.extend_from_slice(&p.to_be_bytes());
        }
        std::fs::write(seg_path(dir, self.base_offset, "index"), idx)?;
        let mut tidx = Vec::with_capacity(self.time_index.len() * 12);
        for (t, o) in &self.time_index {
            tidx.extend_from_slice(&t.to_be_bytes());
            tidx.extend_from_slice(&o.to_be_bytes());
        }
        std::fs::write(seg_path(dir, self.base_offset, "timeindex"), tidx)
    }

    /// Position of the batch containing `offset` (which must be in this segment).
    fn find(&self, offset: i64) -> Option<(u64, BatchHeader)> {
        let rel = (offset - self.base_offset).max(0) as u32;
        let i = self.index.partition_point(|(o, _)| *o <= rel);
        let mut pos = if i == 0 {
            0
        } else {
            self.index[i - 1].1 as u64
        };
        while let Some(h) = self.read_header(pos) {
            if h.last_offset() >= offset {
                return Some((pos, h));
            }
            pos += h.size_bytes() as u64;
        }
        None
    }

    fn remove(self, dir: &Path) {
        let base = self.base_offset;
        drop(self.file);
        for ext in ["log", "index", "timeindex"] {
            let _ = std::fs::remove_file(seg_path(dir, base, ext));
        }
    }
}

/// One partition's log.
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    producers: ProducerState,
    epochs: Vec<(i32, i64)>,
    unflushed_messages: u64,
    last_flush_ms: i64,
    recovery_point: i64,
}

const LOG_START_FILE: &str = "log-start-offset";
const EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// Scans a segment file from `from` to its end; returns the valid length and the batches found.
fn scan(file: &File, from: u64, len: u64, check_crc: bool) -> (u64, Vec<(u64, BatchHeader)>) {
    let mut pos = from;
    let mut out = Vec::new();
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
        if let Some((_, prev)) = out.last() {
            let prev: &BatchHeader = prev;
            if h.base_offset < prev.next_offset() {
                break;
            }
        }
        if check_crc {
            buf.resize(h.size_bytes(), 0);
            if file.read_exact_at(&mut buf, pos).is_err() || check_batch(&buf).is_err() {
                break;
            }
        }
        out.push((pos, h));
        pos += h.size_bytes() as u64;
    }
    (pos, out)
}

/// A segment's offset index entries and time index entries.
type Indexes = (Vec<(u32, u32)>, Vec<(i64, u32)>);

fn load_index(dir: &Path, base: i64, size: u64) -> Option<Indexes> {
    let idx = std::fs::read(seg_path(dir, base, "index")).ok()?;
    let tidx = std::fs::read(seg_path(dir, base, "timeindex")).ok()?;
    if idx.len() % 8 != 0 || tidx.len() % 12 != 0 {
        return None;
    }
    let index: Vec<(u32, u32)> = idx
        .chunks(8)
        .map(|c| {
            (
                u32::from_be_bytes(c[0..4].try_into().unwrap()),
                u32::from_be_bytes(c[4..8].try_into().unwrap()),
            )
        })
        .collect();
    let time_index: Vec<(i64, u32)> = tidx
        .chunks(12)
        .map(|c| {
            (
                i64::from_be_bytes(c[0..8].try_into().unwrap()),
                u32::from_be_bytes(c[8..12].try_into().unwrap()),
            )
        })
        .collect();
    let sorted = index.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1);
    if !sorted
        || index.last().is_some_and(|(_, p)| *p as u64 >= size)
        || (index.is_empty() && size > 0)
    {
        return None;
    }
    Some((index, time_index))
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
            let mut seg = Segment {
                base_offset: base,
                file,
                size,
                next_offset: base,
                index: Vec::new(),
                time_index: Vec::new(),
                max_timestamp: -1,
                bytes_since_index: 0,
                created_ms: now_ms(),
                last_modified_ms: mtime,
            };
            let recover = !clean_shutdown && base >= recovery_base;
            let loaded = if recover {
                None
            } else {
                load_index(dir, base, size)
            };
            match loaded {
                Some((index, time_index)) => {
                    // Trust the indexes; walk the few batches after the last entry to the end.
                    let from = index.last().map(|(_, p)| *p as u64).unwrap_or(0);
                    let (valid, batches) = scan(&seg.file, from, size, false);
                    seg.index = index;
                    seg.max_timestamp = time_index.last().map(|t| t.0).unwrap_or(-1);
                    seg.time_index = time_index;
                    for (_, h) in &batches {
                        seg.next_offset = h.next_offset();
                        if h.max_timestamp > seg.max_timestamp {
                            seg.max_timestamp = h.max_timestamp;
                        }
                    }
                    if valid < size {
                        tracing::warn!(dir = %dir.display(), base, valid, size, "segment tail invalid: truncating");
                        seg.file.set_len(valid)?;
                        seg.size = valid;
                        truncated = true;
                    }
                }
                None => {
                    let (valid, batches) = scan(&seg.file, 0, size, recover);
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
                    seg.write_indexes(dir)?;
                }
            }
            if seg.size == 0 && i + 1 < bases.len() && !truncated {
                // An empty segment in the middle carries nothing.
                seg.remove(dir);
                continue;
            }
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
            unflushed_messages: 0,
            last_flush_ms: now_ms(),
            recovery_point,
        };
        let leo = log.log_end_offset();
        if log.log_start_offset > leo {
            // Everything up to the start offset was deleted: continue from there.
            let base = log.log_start_offset;
            log.roll_at(base)?;
        }
        log.load_epochs(truncated)?;
        log.load_producer_state()?;
        log.recovery_point = log.log_end_offset();
        Ok(log)
    }

    fn load_epochs(&mut self, truncated: bool) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        if let Ok(text) = std::fs::read_to_string(self.dir.join(EPOCH_FILE)) {
            let mut lines = text.lines().skip(2);
            for line in lines.by_ref() {
                let mut p = line.split_whitespace();
                if let (Some(Ok(e)), Some(Ok(o))) = (
                    p.next().map(str::parse::<i32>),
                    p.next().map(str::parse::<i64>),
                ) {
                    self.epochs.push((e, o));
                }
            }
        }
        let before = self.epochs.len();
        self.epochs
            .retain(|(_, o)| *o < leo || (!truncated && *o == leo));
        if self.epochs.len() != before {
            self.write_epochs()?;
        }
        Ok(())
    }

    fn write_epochs(&self) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.epochs.len());
        for (e, o) in &self.epochs {
            text.push_str(&format!("{e} {o}\n"));
        }
        write_atomic(&self.dir.join(EPOCH_FILE), &text)?;
        Ok(())
    }

    fn load_producer_state(&mut self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        let mut from = self.log_start_offset;
        for (off, path) in list_snapshots(&self.dir)? {
            if off > leo {
                let _ = std::fs::remove_file(path);
                continue;
            }
            if let Some(state) = std::fs::read(&path)
                .ok()
                .and_then(|b| ProducerState::from_bytes(&b))
            {
                self.producers = state;
                from = off.max(self.log_start_offset);
            }
        }
        // Replay batch headers after the snapshot.
        let headers: Vec<BatchHeader> = self.headers_from(from);
        for h in headers {
            if h.has_producer_id() {
                self.producers.update(&h);
            }
        }
        Ok(())
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

    fn roll_at(&mut self, base: i64) -> Result<(), LogError> {
        if let Some(old) = self.segments.values().next_back() {
            old.file.sync_data()?;
            old.write_indexes(&self.dir)?;
            if old.size == 0 && old.base_offset == base {
                return Ok(());
            }
        }
        // Everything before the new segment is on disk now.
        self.recovery_point = self.recovery_point.max(base);
        let seg = Segment::create(&self.dir, base)?;
        self.segments.insert(base, seg);
        self.producers.write_snapshot(&self.dir, base)?;
        let snaps = list_snapshots(&self.dir)?;
        if snaps.len() > 2 {
            for (_, p) in &snaps[..snaps.len() - 2] {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(())
    }

    fn maybe_roll(&mut self, incoming: u64, last_offset: i64, now: i64) -> Result<(), LogError> {
        let cfg = self.config.clone();
        let leo = self.log_end_offset();
        let seg = self.active();
        if seg.size == 0 {
            return Ok(());
        }
        let full = seg.size + incoming > cfg.segment_bytes;
        let old = now - seg.created_ms > cfg.segment_ms;
        let index_full = (seg.index.len() as u64 + 1) * 8 > cfg.segment_index_bytes
            || (seg.time_index.len() as u64 + 1) * 12 > cfg.segment_index_bytes;
        let rel_overflow = last_offset - seg.base_offset > u32::MAX as i64
            || seg.size + incoming > u32::MAX as u64;
        if full || old || index_full || rel_overflow {
            self.roll_at(leo)?;
        }
        Ok(())
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
        self.maybe_roll(records.len() as u64, last_offset, now_ms)?;
        let interval = self.config.index_interval_bytes;
        let seg = self.active();
        seg.file.write_all(records)?;
        let mut at = seg.size;
        for h in &headers {
            seg.index_batch(h, at, interval);
            at += h.size_bytes() as u64;
        }
        seg.size = at;
        seg.last_modified_ms = now_ms;
        if self.epochs.last().is_none_or(|(e, _)| leader_epoch > *e) {
            self.epochs.push((leader_epoch, first_offset));
            self.write_epochs()?;
        }
        for h in &headers {
            self.producers.update(h);
        }
        self.unflushed_messages += (last_offset - first_offset + 1) as u64;
        if self.unflushed_messages >= self.config.flush_interval_messages
            || (self.config.flush_interval_ms != i64::MAX
                && now_ms - self.last_flush_ms >= self.config.flush_interval_ms)
        {
            self.flush()?;
        }
        Ok(AppendInfo {
            first_offset,
            last_offset,
            log_append_time_ms: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            max_timestamp: max_ts,
        })
    }

    /// Reads whole batches from the one containing `start_offset`, up to `max_bytes` (at least
    /// one batch), stopping before `max_offset`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, LogError> {
        let leo = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > leo {
            return Err(LogError::OffsetOutOfRange {
                requested: start_offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        let mut out: Vec<u8> = Vec::new();
        let mut first = None;
        let mut offset = start_offset;
        'segments: for (_, seg) in self
            .segments
            .range(..=start_offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(start_offset + 1..))
        {
            if seg.next_offset <= offset {
                continue;
            }
            let Some((mut pos, _)) = seg.find(offset.max(seg.base_offset)) else {
                continue;
            };
            while let Some(h) = seg.read_header(pos) {
                if h.base_offset >= max_offset {
                    break 'segments;
                }
                let n = h.size_bytes();
                if !out.is_empty() && out.len() + n > max_bytes {
                    break 'segments;
                }
                let start = out.len();
                out.resize(start + n, 0);
                seg.file.read_exact_at(&mut out[start..], pos)?;
                first.get_or_insert(h.base_offset);
                offset = h.next_offset();
                pos += n as u64;
                if out.len() >= max_bytes {
                    break 'segments;
                }
            }
        }
        Ok(ReadResult {
            records: Bytes::from(out),
            first_batch_base_offset: first,
        })
    }

    /// The first (offset, timestamp) whose timestamp is at or after `ts`.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for seg in self.segments.values() {
            if seg.max_timestamp < ts || seg.next_offset <= self.log_start_offset {
                continue;
            }
            let Some((mut pos, _)) = seg.find(self.log_start_offset.max(seg.base_offset)) else {
                continue;
            };
            while let Some(h) = seg.read_header(pos) {
                if h.max_timestamp >= ts {
                    let mut buf = vec![0u8; h.size_bytes()];
                    seg.file.read_exact_at(&mut buf, pos)?;
                    if let Some(records) = record_timestamps(&buf) {
                        if let Some(&(o, t)) = records
                            .iter()
                            .find(|(o, t)| *t >= ts && *o >= self.log_start_offset)
                        {
                            return Ok(Some((o, t)));
                        }
                    } else {
                        return Ok(Some((
                            h.base_offset.max(self.log_start_offset),
                            h.max_timestamp,
                        )));
                    }
                }
                pos += h.size_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// The (offset, timestamp) of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let seg = self
            .segments
            .values()
            .filter(|s| s.next_offset > self.log_start_offset)
            .max_by_key(|s| s.max_timestamp)?;
        if seg.max_timestamp < 0 {
            return None;
        }
        let (mut pos, _) = seg.find(self.log_start_offset.max(seg.base_offset))?;
        let mut best: Option<(i64, i64)> = None;
        while let Some(h) = seg.read_header(pos) {
            if h.max_timestamp == seg.max_timestamp && best.is_none() {
                let mut buf = vec![0u8; h.size_bytes()];
                seg.file.read_exact_at(&mut buf, pos).ok()?;
                best = match record_timestamps(&buf) {
                    Some(r) => r
                        .iter()
                        .find(|(_, t)| *t == h.max_timestamp)
                        .map(|&(o, t)| (o, t)),
                    None => Some((h.last_offset(), h.max_timestamp)),
                };
            }
            pos += h.size_bytes() as u64;
        }
        best
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where it ended.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let Some(i) = self.epochs.iter().rposition(|(e, _)| *e <= epoch) else {
            return match self.epochs.first() {
                // Asked for an epoch older than any known: it ended where the first began.
                Some((_, start)) => (epoch, *start),
                None => (-1, -1),
            };
        };
        let end = self
            .epochs
            .get(i + 1)
            .map(|(_, o)| *o)
            .unwrap_or_else(|| self.log_end_offset());
        (self.epochs[i].0, end)
    }

    /// Moves the log start offset to `offset`, deleting segments entirely below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        let leo = self.log_end_offset();
        if offset > leo || offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        if offset <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = offset;
        if offset == leo && self.active().size > 0 {
            self.roll_at(leo)?;
        }
        self.delete_segments_below(offset);
        self.persist_log_start()?;
        Ok(self.log_start_offset)
    }

    fn delete_segments_below(&mut self, offset: i64) {
        let last_base = *self.segments.keys().next_back().expect("a segment");
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(b, s)| **b != last_base && s.next_offset <= offset)
            .map(|(b, _)| *b)
            .collect();
        for b in doomed {
            if let Some(s) = self.segments.remove(&b) {
                s.remove(&self.dir);
            }
        }
    }

    fn persist_log_start(&self) -> Result<(), LogError> {
        write_atomic(
            &self.dir.join(LOG_START_FILE),
            &format!("{}\n", self.log_start_offset),
        )?;
        Ok(())
    }

    /// Deletes whole old segments by time and size; returns how many went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        loop {
            if self.segments.len() < 2 {
                break;
            }
            let total = self.size_bytes();
            let (&base, seg) = self.segments.iter().next().expect("a segment");
            let ts = if seg.max_timestamp >= 0 {
                seg.max_timestamp
            } else {
                seg.last_modified_ms
            };
            let by_time = self.config.retention_ms >= 0 && now_ms - ts > self.config.retention_ms;
            let by_size = self.config.retention_bytes >= 0
                && total - seg.size >= self.config.retention_bytes as u64;
            if !(by_time || by_size) {
                break;
            }
            let seg = self.segments.remove(&base).expect("present");
            let next = seg.next_offset;
            seg.remove(&self.dir);
            deleted += 1;
            if next > self.log_start_offset {
                self.log_start_offset = next;
            }
        }
        if deleted > 0 {
            self.persist_log_start()?;
        }
        Ok(deleted)
    }

    /// fsyncs the active segment and writes its indexes.
    pub fn flush(&mut self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let seg = self.active();
        seg.file.sync_data()?;
        seg.write_indexes(&dir)?;
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms();
        self.recovery_point = self.log_end_offset();
        Ok(())
    }

    /// Flushes if `flush_interval_ms` has passed since the last flush and something was written.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<bool, LogError> {
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
        self.flush()?;
        let leo = self.log_end_offset();
        self.producers.write_snapshot(&self.dir, leo)?;
        self.persist_log_start()?;
        Ok(())
    }

    /// Flushes and closes the log, leaving a producer-state snapshot.
    pub fn close(mut self) -> Result<(), LogError> {
        self.flush_and_snapshot()
    }
}

/// Removes a partition directory and everything in it.
pub fn delete_log_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::build_batch;

    fn batch(n: usize, ts: i64) -> Vec<u8> {
        let vals: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
        let recs: Vec<crate::testing::TestRecord> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| (None, Some(v.as_slice()), ts + i as i64))
            .collect();
        build_batch(0, &recs, -1, -1, -1)
    }

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 1024,
            index_interval_bytes: 100,
            ..LogConfig::default()
        }
    }

    fn offsets_of(records: &[u8]) -> Vec<(i64, i64)> {
        crate::batch::validate_batches(records)
            .unwrap()
            .iter()
            .map(|h| (h.base_offset, h.last_offset()))
            .collect()
    }

    /// Appends batches of 1..=4 records; returns each batch's (first, last) offsets.
    fn fill(log: &mut Log, batches: usize) -> Vec<(i64, i64)> {
        (0..batches)
            .map(|i| {
                let mut b = batch(i % 4 + 1, 1000 + i as i64 * 10);
                let info = log.append_as_leader(&mut b, 0, 5000, false).unwrap();
                (info.first_offset, info.last_offset)
            })
            .collect()
    }

    #[test]
    fn offsets_dense_and_every_offset_reads_its_batch() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::open(d.path(), small(), 0, true).unwrap();
        let spans = fill(&mut log, 60);
        let mut expect = 0;
        for (f, l) in &spans {
            assert_eq!(*f, expect, "dense offsets");
            assert!(l >= f);
            expect = l + 1;
        }
        assert!(log.segment_count() > 3, "rolled by size");
        assert_eq!(log.log_end_offset(), expect);
        for (f, l) in &spans {
            for o in *f..=*l {
                let r = log.read(o, 1, i64::MAX).unwrap();
                assert_eq!(offsets_of(&r.records), vec![(*f, *l)], "offset {o}");
            }
        }
        // A big read crosses segments and returns contiguous batches.
        let all = log.read(0, 1 << 20, i64::MAX).unwrap();
        assert_eq!(offsets_of(&all.records), spans);
        // max_offset bounds the read; the end is empty; beyond is out of range.
        let r = log.read(0, 1 << 20, spans[2].0).unwrap();
        assert_eq!(offsets_of(&r.records), spans[..2].to_vec());
        assert!(log.read(expect, 100, i64::MAX).unwrap().records.is_empty());
        assert!(matches!(
            log.read(expect + 1, 100, i64::MAX),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Reopen after a clean close: same offsets, same reads, indexes loaded.
        log.close().unwrap();
        let log = Log::open(d.path(), small(), expect, true).unwrap();
        assert_eq!(log.log_end_offset(), expect);
        assert_eq!(
            offsets_of(&log.read(0, 1 << 20, i64::MAX).unwrap().records),
            spans
        );
    }

    #[test]
    fn recovery_of_a_tail_cut_at_every_byte() {
        let d = tempfile::tempdir().unwrap();
        let spans = {
            let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
            let s = fill(&mut log, 4);
            log.close().unwrap();
            s
        };
        let seg = d.path().join(format!("{:020}.log", 0));
        let full = std::fs::read(&seg).unwrap();
        let last_len = {
            let h = BatchHeader::parse(&full[full.len() - 200.min(full.len())..]).ok();
            let _ = h;
            let all = crate::batch::validate_batches(&full).unwrap();
            all.last().unwrap().size_bytes()
        };
        let keep = full.len() - last_len;
        for cut in keep..full.len() {
            std::fs::write(&seg, &full[..cut]).unwrap();
            let _ = std::fs::remove_file(d.path().join(format!("{:020}.index", 0)));
            let mut log = Log::open(d.path(), LogConfig::default(), 0, false).unwrap();
            assert_eq!(log.log_end_offset(), spans[2].1 + 1, "cut at {cut}");
            assert_eq!(
                offsets_of(&log.read(0, 1 << 20, i64::MAX).unwrap().records),
                spans[..3].to_vec()
            );
            let mut b = batch(1, 1);
            assert_eq!(
                log.append_as_leader(&mut b, 0, 1, false)
                    .unwrap()
                    .first_offset,
                spans[2].1 + 1
            );
        }
    }

    #[test]
    fn garbage_tail_is_truncated_and_indexes_rebuilt() {
        let d = tempfile::tempdir().unwrap();
        let spans = {
            let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
            let s = fill(&mut log, 10);
            log.close().unwrap();
            s
        };
        let seg = d.path().join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&seg).unwrap();
        let n = bytes.len();
        for b in &mut bytes[n - 20..] {
            *b = 0xAB;
        }
        std::fs::write(&seg, &bytes).unwrap();
        std::fs::remove_file(d.path().join(format!("{:020}.index", 0))).unwrap();
        std::fs::remove_file(d.path().join(format!("{:020}.timeindex", 0))).unwrap();
        let log = Log::open(d.path(), LogConfig::default(), 0, false).unwrap();
        assert_eq!(log.log_end_offset(), spans[8].1 + 1);
        assert!(d.path().join(format!("{:020}.index", 0)).exists());
        for (f, l) in &spans[..9] {
            assert_eq!(
                offsets_of(&log.read(*l, 1, i64::MAX).unwrap().records),
                vec![(*f, *l)]
            );
        }
    }

    #[test]
    fn roll_by_time_retention_and_delete_records() {
        let d = tempfile::tempdir().unwrap();
        let cfg = LogConfig {
            segment_ms: 0,
            retention_ms: 1000,
            ..LogConfig::default()
        };
        let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
        for i in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let mut b = batch(2, 10_000 + i * 1000);
            log.append_as_leader(&mut b, 0, now_ms(), false).unwrap();
        }
        assert_eq!(log.segment_count(), 5, "rolled by time");
        // Segments whose newest record is older than 1 s before now=12_500 go: the first two.
        assert_eq!(log.apply_retention(12_500).unwrap(), 2);
        assert_eq!(log.log_start_offset(), 4);
        assert!(matches!(
            log.read(0, 10, i64::MAX),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // Retention by size keeps at most 2 segments' worth.
        let seg_size = log.segments.values().next().unwrap().size as i64;
        log.set_config(LogConfig {
            retention_ms: -1,
            retention_bytes: seg_size * 2,
            ..LogConfig::default()
        });
        assert_eq!(log.apply_retention(0).unwrap(), 1);
        assert_eq!(log.log_start_offset(), 6);
        // DeleteRecords moves the start inside a segment and survives a reopen.
        assert_eq!(log.delete_records_before(7).unwrap(), 7);
        assert_eq!(log.delete_records_before(5).unwrap(), 7, "never moves back");
        assert!(log.delete_records_before(11).is_err());
        log.close().unwrap();
        let log = Log::open(d.path(), LogConfig::default(), 10, true).unwrap();
        assert_eq!(log.log_start_offset(), 7);
        assert_eq!(log.log_end_offset(), 10);
        let r = log.read(7, 100, i64::MAX).unwrap();
        assert_eq!(offsets_of(&r.records)[0], (6, 7), "the batch containing 7");
    }

    #[test]
    fn producer_state_rules_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let idem = |seq: i32, epoch: i16| {
            build_batch(
                0,
                &[(None, Some(b"v"), 1), (None, Some(b"w"), 2)],
                42,
                epoch,
                seq,
            )
        };
        for clean in [true, false] {
            let _ = std::fs::remove_dir_all(d.path());
            {
                let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
                assert_eq!(
                    log.append_as_leader(&mut idem(0, 0), 0, 1, false)
                        .unwrap()
                        .first_offset,
                    0
                );
                assert_eq!(
                    log.append_as_leader(&mut idem(2, 0), 0, 1, false)
                        .unwrap()
                        .first_offset,
                    2
                );
                if clean {
                    log.close().unwrap();
                }
            }
            let mut log = Log::open(d.path(), LogConfig::default(), 0, clean).unwrap();
            match log.append_as_leader(&mut idem(0, 0), 0, 1, false) {
                Err(AppendError::DuplicateSequence {
                    first_offset,
                    last_offset,
                }) => assert_eq!((first_offset, last_offset), (0, 1)),
                other => panic!("expected a duplicate, got {other:?}"),
            }
            assert!(matches!(
                log.append_as_leader(&mut idem(7, 0), 0, 1, false),
                Err(AppendError::OutOfOrderSequence)
            ));
            assert_eq!(
                log.append_as_leader(&mut idem(4, 0), 0, 1, false)
                    .unwrap()
                    .first_offset,
                4
            );
            assert_eq!(
                log.append_as_leader(&mut idem(0, 1), 0, 1, false)
                    .unwrap()
                    .first_offset,
                6
            );
            assert!(matches!(
                log.append_as_leader(&mut idem(6, 0), 0, 1, false),
                Err(AppendError::InvalidProducerEpoch)
            ));
            assert_eq!(log.log_end_offset(), 8);
        }
    }

    #[test]
    fn timestamps_epochs_and_log_append_time() {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::open(d.path(), small(), 0, true).unwrap();
        for i in 0..10 {
            log.append_as_leader(&mut batch(3, 1000 + i * 100), (i / 4) as i32, 1, false)
                .unwrap();
        }
        assert_eq!(log.offset_for_timestamp(1201).unwrap(), Some((7, 1201)));
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
        assert_eq!(log.max_timestamp(), Some((29, 1902)));
        assert_eq!(log.end_offset_for_epoch(0), (0, 12));
        assert_eq!(log.end_offset_for_epoch(1), (1, 24));
        assert_eq!(log.end_offset_for_epoch(2), (2, 30));
        assert_eq!(log.end_offset_for_epoch(9), (2, 30));
        let mut b = batch(2, 5);
        let info = log.append_as_leader(&mut b, 2, 777_000, true).unwrap();
        assert_eq!(info.log_append_time_ms, 777_000);
        let r = log.read(info.first_offset, 100, i64::MAX).unwrap();
        let h = check_batch(&r.records).expect("CRC still valid");
        assert!(h.timestamp_type_log_append());
        assert_eq!(h.max_timestamp, 777_000);
        log.close().unwrap();
        let log = Log::open(d.path(), small(), 0, true).unwrap();
        assert_eq!(
            log.end_offset_for_epoch(1),
            (1, 24),
            "epoch cache persisted"
        );
    }
}
