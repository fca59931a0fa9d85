//! One segment of a log: its `.log` file of batches (shared with reads planned outside the
//! log's lock), its sparse offset and time indexes kept in memory and written to `.index` /
//! `.timeindex` (a sealed segment opened after a clean shutdown reads them only when first
//! looked up), and the lookups, truncation and removal of one segment.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use super::*;

/// A segment's sparse indexes in memory.
#[derive(Default)]
pub(super) struct SegmentIndexes {
    /// Offset index: (offset - base_offset, file position), ascending in both.
    pub(super) index: Vec<(u32, u32)>,
    /// Time index: (largest timestamp so far, offset - base_offset of the batch that has it).
    pub(super) time_index: Vec<(i64, u32)>,
}

/// Where a sealed segment's indexes come from when first looked up: its directory (the
/// `.index` / `.timeindex` files) and the index interval to rebuild them with if those files
/// turn out wrong.
pub(super) struct LazyIndexes {
    pub(super) dir: PathBuf,
    pub(super) interval: u64,
}

/// One segment: a `.log` file of batches and its sparse indexes, kept in memory and written to
/// `.index` / `.timeindex` (only the entries not yet on disk are appended).
pub(super) struct Segment {
    pub(super) base_offset: i64,
    /// Shared with reads planned under the log's lock and done outside it (an unlinked file
    /// stays readable while a read holds it).
    pub(super) file: Arc<File>,
    pub(super) size: u64,
    pub(super) next_offset: i64,
    /// The indexes in memory; unset until first looked up when `lazy` is set (`ix`).
    indexes: OnceLock<SegmentIndexes>,
    /// Set for a sealed segment whose index files are read on first use.
    pub(super) lazy: Option<LazyIndexes>,
    /// How many offset index entries are in the `.index` file.
    pub(super) index_on_disk: usize,
    /// How many time index entries are in the `.timeindex` file.
    pub(super) time_index_on_disk: usize,
    /// Largest batch max timestamp in the segment, -1 if none.
    pub(super) max_timestamp: i64,
    /// Last offset of the first batch holding `max_timestamp`.
    pub(super) offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch (Kafka's rollingBasedTimestamp), -1 if none.
    pub(super) first_batch_timestamp: i64,
    pub(super) bytes_since_index: u64,
    pub(super) created_ms: i64,
    pub(super) last_modified_ms: i64,
}

pub(super) fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}"))
}

impl Segment {
    /// A segment over an open file of `size` bytes, with nothing indexed yet.
    pub(super) fn empty(base: i64, file: File, size: u64, last_modified_ms: i64) -> Segment {
        Segment::over(base, Arc::new(file), size, last_modified_ms)
    }

    fn over(base: i64, file: Arc<File>, size: u64, last_modified_ms: i64) -> Segment {
        Segment {
            base_offset: base,
            file,
            size,
            next_offset: base,
            indexes: OnceLock::from(SegmentIndexes::default()),
            lazy: None,
            index_on_disk: 0,
            time_index_on_disk: 0,
            max_timestamp: -1,
            offset_of_max_timestamp: -1,
            first_batch_timestamp: -1,
            bytes_since_index: 0,
            created_ms: now_ms(),
            last_modified_ms,
        }
    }

    pub(super) fn create(dir: &Path, base: i64) -> std::io::Result<Segment> {
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(seg_path(dir, base, "log"))?;
        file.set_len(0)?;
        // An aborted-transaction index left by a segment that was here before does not apply.
        remove_if_exists(&seg_path(dir, base, "txnindex"))?;
        let seg = Segment::empty(base, file, 0, now_ms());
        seg.write_indexes(dir)?;
        Ok(seg)
    }

    /// The indexes, read from the index files first if this segment was opened lazily (and
    /// rebuilt from the batches if those files do not match them).
    pub(super) fn ix(&self) -> &SegmentIndexes {
        self.indexes.get_or_init(|| self.load_lazy())
    }

    /// The indexes, to change (read first as `ix` does).
    pub(super) fn ix_mut(&mut self) -> &mut SegmentIndexes {
        self.ix();
        self.indexes.get_mut().expect("indexes loaded")
    }

    /// Sets the indexes read or rebuilt at open.
    pub(super) fn set_indexes(&mut self, index: Vec<(u32, u32)>, time_index: Vec<(i64, u32)>) {
        self.indexes = OnceLock::from(SegmentIndexes { index, time_index });
        self.lazy = None;
    }

    /// Marks the segment's indexes as read from its files on first use (a sealed segment after
    /// a clean shutdown).
    pub(super) fn set_lazy(&mut self, dir: &Path, interval: u64) {
        self.indexes = OnceLock::new();
        self.lazy = Some(LazyIndexes {
            dir: dir.to_path_buf(),
            interval,
        });
    }

    /// Whether the indexes are in memory (false for a lazily opened segment not looked up yet).
    #[cfg(test)]
    pub(super) fn indexes_loaded(&self) -> bool {
        self.indexes.get().is_some()
    }

    /// How many offset and time index entries the segment has, without reading them.
    pub(super) fn index_entries(&self) -> (usize, usize) {
        match self.indexes.get() {
            Some(ix) => (ix.index.len(), ix.time_index.len()),
            None => (self.index_on_disk, self.time_index_on_disk),
        }
    }

    fn load_lazy(&self) -> SegmentIndexes {
        let Some(lazy) = &self.lazy else {
            return SegmentIndexes::default();
        };
        if let Some((index, time_index)) = super::load_index(&lazy.dir, self) {
            if index.len() == self.index_on_disk && time_index.len() == self.time_index_on_disk {
                return SegmentIndexes { index, time_index };
            }
        }
        // The files changed or are wrong since the open: rebuilt from the batches in memory.
        // The files are left as they are; lookups use what memory holds.
        tracing::warn!(dir = %lazy.dir.display(), base = self.base_offset, "index files do not match the segment: rebuilt from its batches");
        let (_, batches) = super::scan(&self.file, self.base_offset, 0, self.size, i64::MIN, false);
        let mut fresh = Segment::over(self.base_offset, Arc::clone(&self.file), self.size, 0);
        for (pos, h) in &batches {
            fresh.index_batch(h, *pos, lazy.interval);
        }
        fresh.maybe_append_time_entry();
        fresh.indexes.into_inner().unwrap_or_default()
    }

    /// Forgets everything indexed (before a rebuild).
    pub(super) fn clear_indexes(&mut self) {
        self.next_offset = self.base_offset;
        self.set_indexes(Vec::new(), Vec::new());
        self.index_on_disk = 0;
        self.time_index_on_disk = 0;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = -1;
        self.first_batch_timestamp = -1;
        self.bytes_since_index = 0;
    }

    pub(super) fn read_header(&self, pos: u64) -> Option<BatchHeader> {
        if pos + HEADER_SIZE as u64 > self.size {
            return None;
        }
        let mut buf = [0u8; HEADER_SIZE];
        self.file.read_exact_at(&mut buf, pos).ok()?;
        BatchHeader::parse(&buf).ok()
    }

    /// Records a batch appended at `pos` in the in-memory indexes. As Kafka: an offset index
    /// entry every `interval` bytes (and one for the first batch), and with it a time index
    /// entry when the largest timestamp grew.
    pub(super) fn index_batch(&mut self, h: &BatchHeader, pos: u64, interval: u64) {
        debug_assert!(
            h.base_offset >= self.next_offset,
            "offsets ascend in a segment"
        );
        if pos == 0 {
            self.first_batch_timestamp = h.max_timestamp;
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.ix().index.is_empty() || self.bytes_since_index >= interval {
            let rel = (h.base_offset - self.base_offset) as u32;
            self.ix_mut().index.push((rel, pos as u32));
            self.bytes_since_index = 0;
            self.maybe_append_time_entry();
        }
        self.bytes_since_index += h.size_bytes() as u64;
        self.next_offset = h.next_offset();
    }

    /// Adds a time index entry for the largest timestamp so far if it grew since the last one.
    pub(super) fn maybe_append_time_entry(&mut self) {
        if self.max_timestamp < 0 {
            return;
        }
        let (max_ts, rel) = (
            self.max_timestamp,
            (self.offset_of_max_timestamp - self.base_offset) as u32,
        );
        let times = &mut self.ix_mut().time_index;
        if times.last().is_none_or(|(t, _)| max_ts > *t) {
            times.push((max_ts, rel));
        }
    }

    /// Rewrites both index files from memory.
    pub(super) fn write_indexes(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::write(
            seg_path(dir, self.base_offset, "index"),
            encode_index(&self.ix().index),
        )?;
        std::fs::write(
            seg_path(dir, self.base_offset, "timeindex"),
            encode_time_index(&self.ix().time_index),
        )
    }

    /// Appends the index entries not yet on disk; fsyncs the files when `sync`.
    pub(super) fn persist_indexes(&mut self, dir: &Path, sync: bool) -> std::io::Result<()> {
        let Some(ix) = self.indexes.get() else {
            // Not read since the open: nothing new to write.
            return Ok(());
        };
        let (index_len, time_len) = (ix.index.len(), ix.time_index.len());
        if self.index_on_disk < index_len {
            let mut f = OpenOptions::new().create(true).append(true).open(seg_path(
                dir,
                self.base_offset,
                "index",
            ))?;
            f.write_all(&encode_index(&self.ix().index[self.index_on_disk..]))?;
            if sync {
                f.sync_data()?;
            }
            self.index_on_disk = index_len;
        }
        if self.time_index_on_disk < time_len {
            let mut f = OpenOptions::new().create(true).append(true).open(seg_path(
                dir,
                self.base_offset,
                "timeindex",
            ))?;
            f.write_all(&encode_time_index(
                &self.ix().time_index[self.time_index_on_disk..],
            ))?;
            if sync {
                f.sync_data()?;
            }
            self.time_index_on_disk = time_len;
        }
        Ok(())
    }

    /// Position of the first batch whose last offset is at least `offset`, with its header.
    pub(super) fn find(&self, offset: i64) -> Option<(u64, BatchHeader)> {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        let index = &self.ix().index;
        let i = index.partition_point(|(o, _)| *o <= rel);
        let mut pos = if i == 0 { 0 } else { index[i - 1].1 as u64 };
        while let Some(h) = self.read_header(pos) {
            if h.last_offset() >= offset {
                return Some((pos, h));
            }
            pos += h.size_bytes() as u64;
        }
        None
    }

    /// The end of the last whole batch that starts at or after `start` (a batch boundary) and
    /// ends at or before `limit`; `start` when the batch there does not fit.
    pub(super) fn batch_end_at_or_below(&self, start: u64, limit: u64) -> u64 {
        if limit >= self.size {
            return self.size;
        }
        // From the last indexed batch at or below the limit (index entries are batch starts),
        // walking the few batch headers after it.
        let index = &self.ix().index;
        let i = index.partition_point(|(_, p)| (*p as u64) <= limit);
        let mut pos = if i == 0 {
            start
        } else {
            start.max(index[i - 1].1 as u64)
        };
        while let Some(h) = self.read_header(pos) {
            if pos + h.size_bytes() as u64 > limit {
                break;
            }
            pos += h.size_bytes() as u64;
        }
        pos
    }

    /// Cuts the segment at byte `pos`, a batch boundary where offset `next_offset` would begin
    /// (the base offset of the first batch cut off, or the segment's end): the file, the
    /// in-memory indexes (and their files, rewritten if they held more), the largest timestamp
    /// and what the next index entry waits for. Index entries below the cut are kept as they
    /// are: offset entries below `pos` and time entries for offsets below `next_offset` (a prefix,
    /// since time entries ascend in offset) still describe the batches that remain.
    pub(super) fn truncate_at(
        &mut self,
        dir: &Path,
        pos: u64,
        next_offset: i64,
    ) -> std::io::Result<()> {
        assert!(pos <= self.size, "cutting past the end of a segment");
        let next_offset = if pos == 0 {
            self.base_offset
        } else {
            next_offset
        };
        assert!(next_offset >= self.base_offset && next_offset <= self.next_offset);
        self.file.set_len(pos)?;
        self.size = pos;
        self.next_offset = next_offset;
        let rel_end = next_offset - self.base_offset;
        let ix = self.ix_mut();
        ix.index.retain(|(_, p)| (*p as u64) < pos);
        ix.time_index.retain(|(_, rel)| (*rel as i64) < rel_end);
        // The largest timestamp: the last time entry kept covers every batch up to the last
        // offset index entry; the batches from there to the cut are read.
        let last_time = ix.time_index.last().copied();
        let from = ix.index.last().map_or(0, |(_, p)| *p as u64);
        (self.max_timestamp, self.offset_of_max_timestamp) =
            last_time.map_or((-1, -1), |(t, rel)| (t, self.base_offset + rel as i64));
        let mut at = from;
        while at < pos {
            let Some(h) = self.read_header(at) else {
                break;
            };
            if h.max_timestamp > self.max_timestamp {
                self.max_timestamp = h.max_timestamp;
                self.offset_of_max_timestamp = h.last_offset();
            }
            at += h.size_bytes() as u64;
        }
        self.bytes_since_index = pos - from;
        if pos == 0 {
            self.first_batch_timestamp = -1;
            self.created_ms = now_ms();
        }
        let (index_len, time_len) = self.index_entries();
        if self.index_on_disk > index_len || self.time_index_on_disk > time_len {
            self.write_indexes(dir)?;
            self.index_on_disk = index_len;
            self.time_index_on_disk = time_len;
        }
        Ok(())
    }

    /// Position to start scanning for the first batch with a timestamp at or after `ts`.
    pub(super) fn time_lookup_position(&self, ts: i64) -> u64 {
        let times = &self.ix().time_index;
        let i = times.partition_point(|(t, _)| *t <= ts);
        if i == 0 {
            return 0;
        }
        let offset = self.base_offset + times[i - 1].1 as i64;
        self.find(offset).map(|(p, _)| p).unwrap_or(0)
    }

    pub(super) fn remove(self, dir: &Path) {
        let base = self.base_offset;
        drop(self.file);
        for ext in ["log", "index", "timeindex", "txnindex"] {
            let _ = std::fs::remove_file(seg_path(dir, base, ext));
        }
    }
}

pub(super) fn encode_index(entries: &[(u32, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 8);
    for (o, p) in entries {
        out.extend_from_slice(&o.to_be_bytes());
        out.extend_from_slice(&p.to_be_bytes());
    }
    out
}

pub(super) fn encode_time_index(entries: &[(i64, u32)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 12);
    for (t, o) in entries {
        out.extend_from_slice(&t.to_be_bytes());
        out.extend_from_slice(&o.to_be_bytes());
    }
    out
}
