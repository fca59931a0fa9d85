//! The log cleaner's core (log compaction, Kafka's `cleanup.policy=compact`): which part of a
//! log is cleanable and how dirty it is, the bounded key → latest offset map of its dirty part,
//! the rewrite of its closed segments keeping the latest record of every key at its original
//! offset, and the `cleaner-offset-checkpoint` file. No threads and no configuration wiring:
//! a caller picks a log, calls [`clean`] (or [`plan`] under the partition's lock,
//! [`CleanPlan::execute`] without it, [`CleanedLog::commit`] under it again) and checkpoints
//! [`CleanStats::end_offset`]. The swap of cleaned segments and its crash recovery live in the
//! log (`log/clean_swap.rs`).
//!
//! Kafka's rules, kept here:
//!
//! - the map covers `[first dirty offset, first uncleanable offset)`: never the active segment,
//!   never past the last stable offset (the bound passed in), never segments newer than
//!   `min.compaction.lag.ms`; if it fills, cleaning stops where it got;
//! - every closed segment below the map's end is rewritten, in groups that fit one segment: a
//!   record stays iff it is the latest of its key or lies past the map; offsets are kept;
//! - a batch keeps its producer id, epoch, base sequence and last offset delta; an emptied
//!   batch is kept as a bare header when it holds the last data of a live producer (or is the
//!   last batch of a group), so producer state replays right;
//! - tombstones and markers of finished transactions get a delete horizon (KIP-534: the base
//!   timestamp of a batch with attribute bit 0x40) of now + `delete.retention.ms` the first time
//!   they are cleaned, and go once it has passed;
//! - records of aborted transactions go; a marker goes once no batch of its transaction is left
//!   before it and its horizon has passed;
//! - a rewritten batch is recompressed with its codec and gets a new CRC.
//!
//! Runnel stores only v2 batches, so Kafka's legacy horizon (the last-modified time of the last
//! clean segment) has no use here. Beyond Kafka: the map's key hashes are keyed per map (Kafka's
//! MD5 lets a producer craft two keys that collide), a key already in a full map is still
//! updated, and the last batch of every group is kept (Kafka keeps the last of a round), so that
//! a cleaned segment always ends where the segments it replaces ended, which is what the swap's
//! crash recovery relies on. One cleaning of a log at a time.
//!
//! Replicas clean their logs on their own, as on Kafka, so a follower fetches a cleaned log with
//! gaps in its offsets.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};

use crate::batch::{
    control_marker, finish_batch, put_record, read_record, BatchHeader, RecordView, ATTR_CONTROL,
    ATTR_LOG_APPEND_TIME, ATTR_TRANSACTIONAL, CONTROL_ABORT, CONTROL_COMMIT, HEADER_SIZE,
};
use crate::checkpoint::{read_offset_checkpoint, write_offset_checkpoint};
use crate::log::clean_swap::{CleanedSegment, Faults, SegmentView};
use crate::log::{AbortedTxn, Log, LogError};

/// The cleaner's checkpoint file in a log dir's root: the first dirty offset of every
/// compacted partition (Kafka's format: version 0, count, `topic partition offset` lines).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// Kafka's default `log.cleaner.dedupe.buffer.size`: 128 MiB (shared by the cleaner threads).
pub const DEFAULT_DEDUPE_BUFFER_BYTES: usize = 128 << 20;
/// Kafka's default `log.cleaner.io.buffer.load.factor`.
pub const DEFAULT_LOAD_FACTOR: f64 = 0.9;
/// Kafka's default `delete.retention.ms`: one day.
pub const DEFAULT_DELETE_RETENTION_MS: i64 = 86_400_000;
/// Batch attribute bit: the base timestamp is the delete horizon (KIP-534).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// Bytes read from a segment at a time (a larger batch is read whole).
const READ_CHUNK: u64 = 1 << 20;
/// Bytes of one offset map slot: a 128-bit key hash and an offset.
const SLOT_BYTES: usize = 24;

/// Reads `cleaner-offset-checkpoint` in `log_dir`; a missing file is an empty checkpoint.
pub fn read_cleaner_checkpoint(log_dir: &Path) -> std::io::Result<HashMap<(String, i32), i64>> {
    match read_offset_checkpoint(&log_dir.join(CLEANER_CHECKPOINT_FILE)) {
        Ok(entries) => Ok(entries.into_iter().map(|(t, p, o)| ((t, p), o)).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HashMap::new()),
        Err(e) => Err(e),
    }
}

/// Writes `cleaner-offset-checkpoint` in `log_dir` atomically, entries sorted.
pub fn write_cleaner_checkpoint(
    log_dir: &Path,
    entries: &HashMap<(String, i32), i64>,
) -> std::io::Result<()> {
    let mut list: Vec<(String, i32, i64)> = entries
        .iter()
        .map(|((t, p), o)| (t.clone(), *p, *o))
        .collect();
    list.sort();
    write_offset_checkpoint(&log_dir.join(CLEANER_CHECKPOINT_FILE), &list)
}

/// Kafka's SkimpyOffsetMap idea: key → latest offset in a fixed amount of memory, keys kept as
/// 128-bit hashes (keyed per map, so crafted keys cannot collide on purpose) in an
/// open-addressing table; it is full at `load_factor` of its slots.
pub struct OffsetMap {
    /// (hash high, hash low, offset); offset -1 marks an empty slot.
    slots: Vec<(u64, u64, i64)>,
    max_entries: usize,
    entries: usize,
    latest_offset: i64,
    hashers: (RandomState, RandomState),
}

impl OffsetMap {
    /// A map in `memory_bytes` (24 bytes a slot), full at `load_factor` of its slots (at least
    /// one entry, at least one slot left free).
    pub fn new(memory_bytes: usize, load_factor: f64) -> OffsetMap {
        let n = (memory_bytes / SLOT_BYTES).max(2);
        let max_entries = ((n as f64 * load_factor) as usize).clamp(1, n - 1);
        OffsetMap {
            slots: vec![(0, 0, -1); n],
            max_entries,
            entries: 0,
            latest_offset: -1,
            hashers: (RandomState::new(), RandomState::new()),
        }
    }

    /// A map for at most `records` keys (a dirty range's offset span bounds its keys) within
    /// `max_bytes`: the memory a cleaning needs, never more than `log.cleaner.dedupe.buffer.size`
    /// allows, so that a small cleaning does not take the whole buffer.
    pub fn sized_for(records: u64, max_bytes: usize, load_factor: f64) -> OffsetMap {
        let slots = ((records as f64 / load_factor).ceil() as u64).saturating_add(2);
        let needed = usize::try_from(slots.saturating_mul(SLOT_BYTES as u64)).unwrap_or(usize::MAX);
        OffsetMap::new(needed.min(max_bytes), load_factor)
    }

    /// Forgets every entry (the memory is kept).
    pub fn clear(&mut self) {
        if self.entries > 0 {
            self.slots.fill((0, 0, -1));
        }
        self.entries = 0;
        self.latest_offset = -1;
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        (self.hashers.0.hash_one(key), self.hashers.1.hash_one(key))
    }

    /// The slot holding `h`, or the empty one where it would go.
    fn slot_of(&self, h: (u64, u64)) -> usize {
        let n = self.slots.len();
        let mut i = (h.0 % n as u64) as usize;
        loop {
            let (a, b, o) = self.slots[i];
            if o < 0 || (a, b) == h {
                return i;
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
    }

    /// Records `offset` as the latest of `key`; false (nothing recorded) when the key is new
    /// and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        debug_assert!(offset >= 0);
        let h = self.hash(key);
        let i = self.slot_of(h);
        if self.slots[i].2 < 0 {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
        }
        self.slots[i] = (h.0, h.1, offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let o = self.slots[self.slot_of(self.hash(key))].2;
        (o >= 0).then_some(o)
    }

    /// Keys recorded.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Slots in the table.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Share of the usable entries in use (Kafka's buffer utilization).
    pub fn utilization(&self) -> f64 {
        self.entries as f64 / self.max_entries as f64
    }

    /// The last offset the map covers (-1: none).
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    /// Raises the last offset the map covers.
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }
}

/// What part of a log a cleaning may cover and how dirty it is (Kafka's LogToClean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanableRange {
    /// Where the dirty part begins (the checkpoint, or the log start).
    pub first_dirty_offset: i64,
    /// Where cleaning must stop: the base of the first segment that cannot be cleaned.
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments before the dirty part.
    pub clean_bytes: u64,
    /// Bytes of the segments from the dirty part to the first uncleanable offset.
    pub cleanable_bytes: u64,
    /// The checkpoint was below the log start or past its end: checkpoint
    /// `first_dirty_offset` even if nothing is cleaned.
    pub reset_checkpoint: bool,
}

impl CleanableRange {
    /// Dirty bytes over all bytes considered (compare with `min.cleanable.dirty.ratio`).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }
}

/// The cleanable range of `log` (Kafka's cleanableOffsets and calculateCleanableBytes):
/// dirty from `checkpoint` (the log start when missing, below the log start or past the log
/// end), up to the smallest of `stable_offset` (the last stable offset, itself at most the high
/// watermark), the active segment's base and, with `min_compaction_lag_ms` > 0, the first dirty
/// closed segment whose largest timestamp is newer than `now_ms - min_compaction_lag_ms`;
/// rounded down to a segment base.
pub fn cleanable_range(
    log: &Log,
    checkpoint: Option<i64>,
    stable_offset: i64,
    min_compaction_lag_ms: i64,
    now_ms: i64,
) -> CleanableRange {
    let segments = log.segment_views();
    let (closed, active) = segments.split_at(segments.len() - 1);
    let start = log.log_start_offset();
    let (first_dirty, reset) = match checkpoint {
        Some(c) if c < start || c > log.log_end_offset() => (start, true),
        Some(c) => (c, false),
        None => (start, false),
    };
    let lag = min_compaction_lag_ms.max(0);
    let too_new = closed
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .find(|s| lag > 0 && s.max_timestamp > now_ms.saturating_sub(lag))
        .map(|s| s.base_offset);
    let uncleanable = [Some(stable_offset), Some(active[0].base_offset), too_new]
        .into_iter()
        .flatten()
        .min()
        .expect("values")
        .max(first_dirty);
    let active_base = active[0].base_offset;
    let first_uncleanable = if uncleanable >= active_base {
        active_base
    } else {
        closed
            .iter()
            .rev()
            .find(|s| s.base_offset <= uncleanable)
            .map_or(uncleanable, |s| s.base_offset)
    };
    let from = first_dirty.min(first_uncleanable);
    let cleanable_bytes = closed
        .iter()
        .filter(|s| s.base_offset < first_uncleanable && s.next_offset > from)
        .map(|s| s.size)
        .sum();
    let clean_bytes = segments
        .iter()
        .filter(|s| s.base_offset < first_dirty)
        .map(|s| s.size)
        .sum();
    CleanableRange {
        first_dirty_offset: first_dirty,
        first_uncleanable_offset: first_uncleanable,
        clean_bytes,
        cleanable_bytes,
        reset_checkpoint: reset,
    }
}

/// How long past `max.compaction.lag.ms` the oldest dirty closed segment is (Kafka's
/// maxCompactionDelay): 0 when none is overdue, else the log must be cleaned whatever its
/// dirty ratio.
pub fn max_compaction_delay_ms(
    log: &Log,
    first_dirty_offset: i64,
    max_compaction_lag_ms: i64,
    now_ms: i64,
) -> i64 {
    let segments = log.segment_views();
    let closed = &segments[..segments.len() - 1];
    let earliest = closed
        .iter()
        .filter(|s| s.next_offset > first_dirty_offset && s.first_batch_timestamp > 0)
        .map(|s| s.first_batch_timestamp)
        .min()
        .unwrap_or(i64::MAX);
    let clean_until = now_ms.saturating_sub(max_compaction_lag_ms.max(0));
    if earliest < clean_until {
        clean_until - earliest
    } else {
        0
    }
}

/// Settings of one cleaning.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions {
    /// How long tombstones and finished transaction markers stay once cleaned
    /// (`delete.retention.ms`).
    pub delete_retention_ms: i64,
    /// The cleaning's clock (delete horizons are set and compared with it).
    pub now_ms: i64,
}

/// What a cleaning did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanStats {
    /// The first offset not cleaned: the next first dirty offset, to checkpoint.
    pub end_offset: i64,
    /// Cleaned segments swapped in.
    pub groups_swapped: usize,
    /// Groups not swapped because the log changed meanwhile.
    pub groups_abandoned: usize,
    /// Segment bytes read while cleaning.
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Records read while cleaning.
    pub records_read: u64,
    /// Records kept.
    pub records_retained: u64,
    /// Keys in the offset map.
    pub map_entries: usize,
    /// Share of the offset map used.
    pub map_utilization: f64,
}

/// A cleaning planned under the partition's lock: the segments it reads (shared file handles,
/// so [`CleanPlan::execute`] needs no lock) and what it must know of the log.
pub struct CleanPlan {
    dir: std::path::PathBuf,
    segments: Vec<SegmentView>,
    first_dirty: i64,
    first_uncleanable: i64,
    aborted: Vec<AbortedTxn>,
    /// Per live producer: the last offset of its latest data batch, or None when its latest
    /// entry is a marker, with its epoch.
    producers_last: HashMap<i64, (Option<i64>, i16)>,
    index_interval: u64,
    max_group_bytes: u64,
    max_index_bytes: u64,
    rewrites: u64,
    options: CleanOptions,
    faults: Faults,
}

/// Plans a cleaning of `log` over `range` (see [`cleanable_range`]); cheap.
pub fn plan(log: &Log, range: &CleanableRange, options: CleanOptions) -> CleanPlan {
    let mut segments = log.segment_views();
    segments.pop(); // the active segment
    segments.retain(|s| s.base_offset < range.first_uncleanable_offset);
    let producers_last = log
        .producer_state()
        .producers
        .iter()
        .map(|(id, e)| (*id, (e.batches.back().map(|b| b.last_offset), e.epoch)))
        .collect();
    let cfg = log.config();
    CleanPlan {
        dir: log.dir().to_path_buf(),
        segments,
        first_dirty: range.first_dirty_offset,
        first_uncleanable: range.first_uncleanable_offset,
        aborted: log.aborted_txn_entries().to_vec(),
        producers_last,
        index_interval: cfg.index_interval_bytes,
        max_group_bytes: cfg.segment_bytes.min(i32::MAX as u64),
        max_index_bytes: cfg.segment_index_bytes,
        rewrites: log.rewrites(),
        options,
        faults: Faults::default(),
    }
}

/// Cleans `log` over `range` in one call (plan, execute, commit) while the caller holds it.
pub fn clean(
    log: &mut Log,
    map: &mut OffsetMap,
    range: &CleanableRange,
    options: CleanOptions,
) -> Result<CleanStats, LogError> {
    plan(log, range, options).execute(map)?.commit(log)
}

/// Cleaned segments written beside the log (`.cleaned` files), waiting for
/// [`CleanedLog::commit`]; dropped uncommitted, their files are deleted.
pub struct CleanedLog {
    groups: Vec<(CleanedSegment, Vec<SegmentView>)>,
    first_dirty: i64,
    rewrites: u64,
    stats: CleanStats,
    faults: Faults,
}

impl CleanPlan {
    /// Builds the offset map over the dirty part and writes the cleaned segments, without the
    /// log's lock (only one cleaning of a log at a time).
    pub fn execute(mut self, map: &mut OffsetMap) -> Result<CleanedLog, LogError> {
        self.run(map)
    }

    fn run(&mut self, map: &mut OffsetMap) -> Result<CleanedLog, LogError> {
        let end = self.build_offset_map(map)?;
        let mut stats = CleanStats {
            end_offset: end.max(self.first_dirty),
            map_entries: map.len(),
            map_utilization: map.utilization(),
            ..CleanStats::default()
        };
        let faults = std::mem::take(&mut self.faults);
        let mut cleaned = CleanedLog {
            groups: Vec::new(),
            first_dirty: self.first_dirty,
            rewrites: self.rewrites,
            stats: CleanStats::default(),
            faults,
        };
        if end <= self.first_dirty {
            cleaned.stats = stats;
            return Ok(cleaned);
        }
        let to_clean: Vec<SegmentView> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < end)
            .cloned()
            .collect();
        let mut txns = TxnTracker::new(&self.aborted, to_clean[0].base_offset);
        for group in self.group_segments(&to_clean) {
            let result = self.clean_group(&group, map, &mut txns, &mut stats, &mut cleaned.faults);
            match result {
                Ok(Some(seg)) => cleaned.groups.push((seg, group)),
                Ok(None) => {}
                Err(e) => {
                    if cleaned.faults.crashed {
                        for (seg, _) in &mut cleaned.groups {
                            seg.keep_files();
                        }
                    }
                    return Err(e);
                }
            }
        }
        cleaned.stats = stats;
        Ok(cleaned)
    }

    /// Kafka's buildOffsetMap: maps the keys of the dirty part's committed and non-transactional
    /// records to their latest offsets; returns the first offset not covered (the map's latest
    /// offset + 1). Aborted batches and markers are not mapped.
    fn build_offset_map(&self, map: &mut OffsetMap) -> Result<i64, LogError> {
        map.clear();
        let (start, end) = (self.first_dirty, self.first_uncleanable);
        let dirty: Vec<&SegmentView> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < end && s.next_offset > start)
            .collect();
        if dirty.is_empty() {
            return Ok(start);
        }
        let mut txns = TxnTracker::new(&self.aborted, dirty[0].base_offset);
        for (i, seg) in dirty.iter().enumerate() {
            let next_start = dirty.get(i + 1).map_or(end, |s| s.base_offset);
            let full = for_each_batch(seg, |h, bytes| {
                if h.is_control() {
                    txns.on_control(h, bytes, &mut Vec::new());
                } else if !txns.on_data(h) && h.last_offset() >= start {
                    let (body, records) = decode_records(h, bytes)?;
                    for r in &records {
                        let offset = h.base_offset + r.offset_delta;
                        if let Some(k) = &r.key {
                            if offset >= start && !map.put(&body[k.clone()], offset) {
                                return Ok(false);
                            }
                        }
                    }
                }
                if h.last_offset() >= start {
                    map.update_latest_offset(h.last_offset());
                }
                Ok(true)
            })?;
            if full {
                tracing::debug!(dir = %self.dir.display(), base = seg.base_offset, "offset map full: cleaning up to where it got");
                break;
            }
            map.update_latest_offset(next_start - 1);
        }
        Ok(map.latest_offset() + 1)
    }

    /// Kafka's groupSegmentsBySize: consecutive segments whose log bytes fit one segment,
    /// whose index bytes fit one index, and whose offsets fit the relative offsets of the first.
    fn group_segments(&self, segments: &[SegmentView]) -> Vec<Vec<SegmentView>> {
        let mut groups: Vec<Vec<SegmentView>> = Vec::new();
        let mut i = 0;
        while i < segments.len() {
            let first = &segments[i];
            let (mut bytes, mut index, mut time_index) =
                (first.size, first.index_bytes, first.time_index_bytes);
            let mut group = vec![first.clone()];
            i += 1;
            while i < segments.len() {
                let s = &segments[i];
                let last_offset = segments
                    .get(i + 1)
                    .map_or(self.first_uncleanable, |n| n.base_offset)
                    - 1;
                let fits = bytes + s.size <= self.max_group_bytes
                    && index + s.index_bytes <= self.max_index_bytes
                    && time_index + s.time_index_bytes <= self.max_index_bytes
                    && (s.size == 0 || last_offset - first.base_offset <= i32::MAX as i64);
                if !fits {
                    break;
                }
                bytes += s.size;
                index += s.index_bytes;
                time_index += s.time_index_bytes;
                group.push(s.clone());
                i += 1;
            }
            groups.push(group);
        }
        groups
    }

    /// Cleans one group of segments into one cleaned segment (None: the group holds no batch).
    fn clean_group(
        &self,
        group: &[SegmentView],
        map: &OffsetMap,
        txns: &mut TxnTracker,
        stats: &mut CleanStats,
        faults: &mut Faults,
    ) -> Result<Option<CleanedSegment>, LogError> {
        let mut out = CleanedSegment::create(&self.dir, group[0].base_offset, self.index_interval)?;
        let group_end = group.last().expect("a segment").next_offset;
        let mut kept_aborted = Vec::new();
        let mut scratch = Vec::new();
        let mut any = false;
        for seg in group {
            for_each_batch(seg, |h, bytes| {
                any = true;
                stats.bytes_read += bytes.len() as u64;
                let filter = BatchFilter {
                    map,
                    producers_last: &self.producers_last,
                    options: &self.options,
                    last_of_group: h.next_offset() == group_end,
                };
                let kept = filter.apply(h, bytes, txns, &mut kept_aborted, &mut scratch, stats)?;
                match kept {
                    Kept::Nothing => {}
                    Kept::Original => out.append(bytes)?,
                    Kept::Rewritten => out.append(&scratch)?,
                }
                Ok(true)
            })?;
        }
        if !any {
            return Ok(None);
        }
        for a in kept_aborted {
            out.add_aborted(a);
        }
        stats.bytes_written += out.size();
        if let Err(e) = out.finish(group.last().expect("a segment").last_modified_ms, faults) {
            if faults.crashed {
                out.keep_files();
            }
            return Err(e);
        }
        Ok(Some(out))
    }
}

impl CleanedLog {
    /// Swaps the cleaned segments in, oldest first, under the partition's lock. A group whose
    /// segments all went meanwhile (retention) is skipped; at the first group whose segments
    /// changed otherwise (a truncation) the rest is abandoned and the end offset stays the
    /// first dirty offset (nothing more is checkpointed as clean). After an error the log must
    /// be reopened (which completes or undoes an interrupted swap).
    pub fn commit(mut self, log: &mut Log) -> Result<CleanStats, LogError> {
        let groups = std::mem::take(&mut self.groups);
        let mut iter = groups.into_iter();
        let mut stats = self.stats.clone();
        while let Some((seg, replaced)) = iter.next() {
            let bases: HashSet<i64> = log.segment_views().iter().map(|s| s.base_offset).collect();
            let all_gone = replaced.iter().all(|v| !bases.contains(&v.base_offset));
            match log.replace_with_cleaned(seg, &replaced, self.rewrites, &mut self.faults) {
                Ok(true) => {
                    stats.groups_swapped += 1;
                    // The swap counts as a rewrite; later groups expect that.
                    self.rewrites += 1;
                }
                Ok(false) if all_gone => stats.groups_abandoned += 1,
                Ok(false) => {
                    stats.groups_abandoned += 1 + iter.len();
                    stats.end_offset = self.first_dirty;
                    tracing::info!(dir = %log.dir().display(), "the log changed during a cleaning: the rest of it is abandoned");
                    break;
                }
                Err(e) => {
                    if self.faults.crashed {
                        for (mut seg, _) in iter {
                            seg.keep_files();
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(stats)
    }
}

/// Kafka's CleanedTransactionMetadata: which transactions the batches met so far belong to,
/// deciding when a marker may go and which aborted transactions the cleaned index keeps.
struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producer → (its aborted transaction in progress, whether a batch of it was met).
    ongoing_aborted: HashMap<i64, (AbortedTxn, bool)>,
    /// Producers with a committed (or undecided) transaction in progress whose batches were met.
    ongoing_committed: HashSet<i64>,
}

impl TxnTracker {
    /// Over the aborted transactions whose marker is at or after `from`, where reading starts.
    fn new(aborted: &[AbortedTxn], from: i64) -> TxnTracker {
        let mut pending: Vec<AbortedTxn> = aborted
            .iter()
            .filter(|a| a.last_offset >= from)
            .copied()
            .collect();
        pending.sort_by_key(|a| (a.first_offset, a.last_offset));
        TxnTracker {
            pending: pending.into(),
            ongoing_aborted: HashMap::new(),
            ongoing_committed: HashSet::new(),
        }
    }

    fn reach(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.first_offset <= offset)
        {
            let a = self.pending.pop_front().expect("front");
            self.ongoing_aborted
                .entry(a.producer_id)
                .or_insert((a, false));
        }
    }

    /// A data batch: true if it belongs to an aborted transaction.
    fn on_data(&mut self, h: &BatchHeader) -> bool {
        self.reach(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&h.producer_id) {
            Some((_, met)) => {
                *met = true;
                true
            }
            None => {
                self.ongoing_committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch: true if it may be discarded (no batch of its transaction met). A kept
    /// abort marker's transaction goes to `kept_aborted` (the cleaned segment's index).
    fn on_control(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
        kept_aborted: &mut Vec<AbortedTxn>,
    ) -> bool {
        self.reach(h.last_offset());
        if h.records_count == 0 {
            return true; // emptied by an earlier cleaning
        }
        match control_marker(bytes).map(|m| m.kind) {
            Some(CONTROL_ABORT) => match self.ongoing_aborted.remove(&h.producer_id) {
                Some((txn, true)) => {
                    kept_aborted.push(txn);
                    false
                }
                _ => true,
            },
            Some(CONTROL_COMMIT) => !self.ongoing_committed.remove(&h.producer_id),
            _ => false,
        }
    }
}

/// What the filter kept of a batch.
enum Kept {
    Nothing,
    /// The batch as it was.
    Original,
    /// The batch rebuilt in the scratch buffer.
    Rewritten,
}

/// Kafka's cleaner RecordFilter for one batch.
struct BatchFilter<'a> {
    map: &'a OffsetMap,
    producers_last: &'a HashMap<i64, (Option<i64>, i16)>,
    options: &'a CleanOptions,
    last_of_group: bool,
}

impl BatchFilter<'_> {
    fn apply(
        &self,
        h: &BatchHeader,
        bytes: &[u8],
        txns: &mut TxnTracker,
        kept_aborted: &mut Vec<AbortedTxn>,
        scratch: &mut Vec<u8>,
        stats: &mut CleanStats,
    ) -> Result<Kept, LogError> {
        let now = self.options.now_ms;
        let horizon = (h.attributes & ATTR_DELETE_HORIZON != 0).then_some(h.base_timestamp);
        let can_discard = if h.is_control() {
            txns.on_control(h, bytes, kept_aborted)
        } else {
            txns.on_data(h)
        };
        let discard_records = if h.is_control() {
            can_discard && horizon.is_some_and(|t| t <= now)
        } else {
            can_discard
        };
        let last_of_producer = h.has_producer_id()
            && self
                .producers_last
                .get(&h.producer_id)
                .is_some_and(|&(last, epoch)| match last {
                    Some(o) => h.last_offset() == o,
                    None => h.is_control() && h.producer_epoch == epoch,
                });
        let retain_empty = last_of_producer || self.last_of_group;
        if discard_records && !retain_empty {
            return Ok(Kept::Nothing);
        }
        let (body, records) = decode_records(h, bytes)?;
        stats.records_read += records.len() as u64;
        let mut kept: Vec<&RecordView> = Vec::with_capacity(records.len());
        let mut tombstones = false;
        for r in &records {
            let offset = h.base_offset + r.offset_delta;
            let keep = if discard_records {
                false
            } else if h.is_control() || offset > self.map.latest_offset() {
                true
            } else if let Some(k) = &r.key {
                let latest = self.map.get(&body[k.clone()]).is_none_or(|o| offset >= o);
                latest && (r.value.is_some() || horizon.is_none_or(|t| now < t))
            } else {
                false // a keyless record cannot be compacted: Kafka drops it
            };
            if keep {
                tombstones |= r.value.is_none() && !h.is_control();
                kept.push(r);
            }
        }
        stats.records_retained += kept.len() as u64;
        if kept.is_empty() {
            if !retain_empty {
                return Ok(Kept::Nothing);
            }
            empty_batch(h, scratch);
            return Ok(Kept::Rewritten);
        }
        let set_horizon = horizon.is_none() && (tombstones || (can_discard && h.is_control()));
        if kept.len() == records.len() && !set_horizon {
            return Ok(Kept::Original);
        }
        let new_horizon = if set_horizon {
            Some(now.saturating_add(self.options.delete_retention_ms.max(0)))
        } else {
            horizon
        };
        rebuild_batch(h, &body, &kept, new_horizon, scratch)?;
        Ok(Kept::Rewritten)
    }
}

/// A batch header with no records (Kafka's writeEmptyHeader): offsets, producer id, epoch, base
/// sequence, leader epoch, timestamp type, transactional and control bits and max timestamp
/// kept; no compression, no base timestamp.
fn empty_batch(h: &BatchHeader, out: &mut Vec<u8>) {
    out.clear();
    BatchHeader {
        batch_length: 0,
        crc: 0,
        attributes: h.attributes & (ATTR_LOG_APPEND_TIME | ATTR_TRANSACTIONAL | ATTR_CONTROL),
        base_timestamp: -1,
        records_count: 0,
        ..*h
    }
    .put(out);
    finish_batch(out);
}

/// Rebuilds a batch with the records kept (Kafka's buildRetainedRecordsInto): same base offset,
/// last offset delta, producer fields, leader epoch, codec and flags; the base timestamp is the
/// delete horizon when there is one (attribute 0x40), else the first record's timestamp; the
/// max timestamp is the largest kept (the original for LogAppendTime).
fn rebuild_batch(
    h: &BatchHeader,
    body: &[u8],
    kept: &[&RecordView],
    horizon: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<(), LogError> {
    let ts = |r: &RecordView| h.base_timestamp + r.timestamp_delta;
    let base_ts = horizon.unwrap_or_else(|| ts(kept[0]));
    let max_ts = if h.timestamp_type_log_append() {
        h.max_timestamp
    } else {
        kept.iter().map(|&r| ts(r)).max().expect("records")
    };
    let mut attributes = h.attributes & !ATTR_DELETE_HORIZON;
    if horizon.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    let mut records = BytesMut::new();
    let mut headers: Vec<(&[u8], Option<&[u8]>)> = Vec::new();
    for &r in kept {
        headers.clear();
        headers.extend(
            r.headers
                .iter()
                .map(|(k, v)| (&body[k.clone()], v.clone().map(|v| &body[v]))),
        );
        put_record(
            &mut records,
            ts(r) - base_ts,
            r.offset_delta,
            r.key.clone().map(|k| &body[k]),
            r.value.clone().map(|v| &body[v]),
            &headers,
        );
    }
    let mut batch = BytesMut::with_capacity(HEADER_SIZE + records.len());
    BatchHeader {
        batch_length: 0,
        crc: 0,
        attributes,
        base_timestamp: base_ts,
        max_timestamp: max_ts,
        records_count: kept.len() as i32,
        ..*h
    }
    .put(&mut batch);
    compress(h.compression(), &records, &mut batch)?;
    out.clear();
    out.extend_from_slice(&batch);
    finish_batch(out);
    Ok(())
}

fn codec_error(what: &str, e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(format!("cannot {what} a record batch: {e}"))
}

/// Appends `records` compressed with `codec` (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
fn compress(codec: u8, records: &[u8], out: &mut BytesMut) -> Result<(), LogError> {
    use runnel_protocol::kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};
    let write = |b: &mut BytesMut| {
        b.put_slice(records);
        Ok(())
    };
    let r = match codec {
        0 => {
            out.put_slice(records);
            Ok(())
        }
        1 => Gzip::compress(out, write),
        2 => Snappy::compress(out, write),
        3 => Lz4::compress(out, write),
        4 => Zstd::compress(out, write),
        c => return Err(codec_error("compress", format!("unknown codec {c}"))),
    };
    r.map_err(|e| codec_error("compress", e))
}

/// A batch's records as bytes: the batch's own for an uncompressed one, else decompressed.
enum Body<'a> {
    Borrowed(&'a [u8]),
    Owned(Bytes),
}

impl std::ops::Deref for Body<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Body::Borrowed(b) => b,
            Body::Owned(b) => b,
        }
    }
}

/// The records of a batch (decompressed if need be): the bytes they are ranges of, and them.
fn decode_records<'a>(
    h: &BatchHeader,
    batch: &'a [u8],
) -> Result<(Body<'a>, Vec<RecordView>), LogError> {
    use runnel_protocol::kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let raw = &batch[HEADER_SIZE..h.size_bytes()];
    let body = if h.compression() == 0 {
        Body::Borrowed(raw)
    } else {
        let take = |b: &mut Bytes| Ok(std::mem::take(b));
        let mut input = Bytes::copy_from_slice(raw);
        let out = match h.compression() {
            1 => Gzip::decompress(&mut input, take),
            2 => Snappy::decompress(&mut input, take),
            3 => Lz4::decompress(&mut input, take),
            4 => Zstd::decompress(&mut input, take),
            c => return Err(codec_error("decompress", format!("unknown codec {c}"))),
        };
        Body::Owned(out.map_err(|e| codec_error("decompress", e))?)
    };
    let count = h.records_count.max(0) as usize;
    let mut records = Vec::with_capacity(count.min(4096));
    let mut pos = 0;
    for _ in 0..count {
        let r = read_record(&body, &mut pos).ok_or_else(|| {
            LogError::Corrupt(format!(
                "malformed record in the batch at offset {}",
                h.base_offset
            ))
        })?;
        records.push(r);
    }
    Ok((body, records))
}

/// Calls `f` with every batch of a segment, in order, until it returns false; true if it did.
fn for_each_batch(
    seg: &SegmentView,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<bool, LogError>,
) -> Result<bool, LogError> {
    let corrupt = |pos: u64| {
        LogError::Corrupt(format!(
            "unreadable batch at position {pos} of the segment at offset {}",
            seg.base_offset
        ))
    };
    let mut buf = Vec::new();
    let mut pos = 0u64;
    while pos < seg.size {
        let want = READ_CHUNK.min(seg.size - pos) as usize;
        buf.resize(want, 0);
        seg.file.read_exact_at(&mut buf, pos)?;
        let mut at = 0usize;
        while at + HEADER_SIZE <= buf.len() {
            let h = BatchHeader::parse(&buf[at..]).map_err(|_| corrupt(pos + at as u64))?;
            let size = h.size_bytes();
            if size < HEADER_SIZE || pos + (at + size) as u64 > seg.size {
                return Err(corrupt(pos + at as u64));
            }
            if at + size > buf.len() {
                if at == 0 {
                    // One batch larger than the chunk: read it whole.
                    buf.resize(size, 0);
                    seg.file.read_exact_at(&mut buf, pos)?;
                    continue;
                }
                break;
            }
            if !f(&h, &buf[at..at + size])? {
                return Ok(true);
            }
            at += size;
        }
        if at == 0 {
            return Err(corrupt(pos));
        }
        pos += at as u64;
    }
    Ok(false)
}

#[cfg(test)]
mod tests;
