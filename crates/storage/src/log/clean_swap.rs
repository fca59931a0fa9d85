//! The log's side of compaction ([`crate::cleaner`] owns the rest): a view of the segments for a
//! cleaning to read without the log's lock, a cleaned segment written beside them under
//! `.cleaned` names, the swap that puts it in place of the segments it replaces (Kafka's
//! `.cleaned` → `.swap` → final names), and the completion of an interrupted swap that
//! [`Log::open`] runs before it reads the directory.
//!
//! The swap of one cleaned segment at base `b` replacing segments `b..=last`:
//!
//! 1. `b.log.cleaned` and its `.index`, `.timeindex`, `.txnindex` `.cleaned` files are written and
//!    fsynced (before the log's lock is taken);
//! 2. `b.log.cleaned` is renamed `b.log.swap` (the commit point), then the index files likewise;
//! 3. the replaced segments' files are deleted;
//! 4. the index `.swap` files, then `b.log.swap`, get their final names.
//!
//! A crash before 2 leaves `.cleaned` files, which [`complete_interrupted_swaps`] deletes: the
//! old segments are intact. A crash after it leaves `b.log.swap`, which is completed: every
//! other segment file whose base offset lies in `[b, next offset of the swap file)` is deleted
//! and the `.swap` files are renamed. The cleaner keeps the last batch of every cleaned group
//! (empty if need be), so that range covers exactly the replaced segments.

use super::*;

/// Suffix of a cleaned segment's files while they are written.
pub(crate) const CLEANED_SUFFIX: &str = "cleaned";
/// Suffix of a cleaned segment's files while they replace the old ones.
pub(crate) const SWAP_SUFFIX: &str = "swap";
/// A segment's files, the `.log` first.
const SEGMENT_EXTS: [&str; 4] = ["log", "index", "timeindex", "txnindex"];

fn suffixed(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}.{suffix}"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A segment as a cleaning sees it: its file (shared, so reads work without the log's lock and
/// after the segment is replaced) and what the log knows of it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub(crate) base_offset: i64,
    pub(crate) file: Arc<File>,
    pub(crate) size: u64,
    pub(crate) next_offset: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) first_batch_timestamp: i64,
    pub(crate) last_modified_ms: i64,
    pub(crate) index_bytes: u64,
    pub(crate) time_index_bytes: u64,
}

/// Counts the file operations of a cleaning and fails the chosen one, as a crash there would:
/// the tests stop a cleaning after each step and reopen the log.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// The step that fails (counted from 0); None: none.
    pub(crate) crash_at: Option<usize>,
    /// Steps done so far.
    pub(crate) steps: usize,
    /// Whether the injected failure happened (files are then left as a crash leaves them).
    pub(crate) crashed: bool,
}

impl Faults {
    /// Called after each file operation.
    pub(crate) fn step(&mut self) -> std::io::Result<()> {
        let at = self.steps;
        self.steps += 1;
        if self.crash_at == Some(at) {
            self.crashed = true;
            return Err(std::io::Error::other(format!(
                "crash injected at step {at}"
            )));
        }
        Ok(())
    }
}

/// A cleaned segment being written as `<base>.log.cleaned`, indexed in memory as it grows.
/// Dropped before its swap, its files are deleted (unless a crash is being simulated).
pub(crate) struct CleanedSegment {
    dir: PathBuf,
    base: i64,
    /// Taken by the swap.
    seg: Option<Segment>,
    index_interval: u64,
    pending: Vec<u8>,
    aborted: Vec<AbortedTxn>,
    keep_files: bool,
}

/// Bytes gathered before a write to the cleaned file.
const WRITE_CHUNK: usize = 1 << 20;

impl CleanedSegment {
    /// Creates `<base>.log.cleaned` in `dir` (replacing a stale one).
    pub(crate) fn create(dir: &Path, base: i64, index_interval: u64) -> std::io::Result<Self> {
        // Append mode, as every segment file: should the log be truncated back into this
        // segment after the swap, appends go to its end.
        let path = suffixed(dir, base, "log", CLEANED_SUFFIX);
        remove_if_exists(&path)?;
        let file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .append(true)
            .open(path)?;
        Ok(CleanedSegment {
            dir: dir.to_path_buf(),
            base,
            seg: Some(Segment::empty(base, file, 0, now_ms())),
            index_interval,
            pending: Vec::new(),
            aborted: Vec::new(),
            keep_files: false,
        })
    }

    /// Base offset.
    pub(crate) fn base_offset(&self) -> i64 {
        self.base
    }

    fn seg(&self) -> &Segment {
        self.seg.as_ref().expect("not swapped yet")
    }

    fn seg_mut(&mut self) -> &mut Segment {
        self.seg.as_mut().expect("not swapped yet")
    }

    /// Bytes appended so far.
    pub(crate) fn size(&self) -> u64 {
        self.seg().size
    }

    /// The offset after the last batch appended (the base offset if none was).
    pub(crate) fn next_offset(&self) -> i64 {
        self.seg().next_offset
    }

    /// Appends one whole batch (offsets above the previous one's, within the relative range).
    pub(crate) fn append(&mut self, batch: &[u8]) -> Result<(), LogError> {
        let h = BatchHeader::parse(batch).map_err(|e| LogError::Corrupt(e.to_string()))?;
        let interval = self.index_interval;
        let seg = self.seg_mut();
        if seg.size + batch.len() as u64 > MAX_SEGMENT_BYTES
            || h.last_offset() - seg.base_offset > MAX_RELATIVE_OFFSET
            || h.base_offset < seg.next_offset
        {
            return Err(LogError::Corrupt(format!(
                "cleaned batch at offset {} does not fit the segment at {}",
                h.base_offset, seg.base_offset
            )));
        }
        let pos = seg.size;
        seg.index_batch(&h, pos, interval);
        seg.size += batch.len() as u64;
        self.pending.extend_from_slice(batch);
        if self.pending.len() >= WRITE_CHUNK {
            self.write_pending()?;
        }
        Ok(())
    }

    fn write_pending(&mut self) -> std::io::Result<()> {
        (&*self.seg().file).write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Records an aborted transaction whose marker the segment keeps (its `.txnindex`).
    pub(crate) fn add_aborted(&mut self, txn: AbortedTxn) {
        self.aborted.push(txn);
    }

    /// Writes the rest, the indexes (a final time entry included) and the transaction index as
    /// `.cleaned` files, all fsynced, and gives the segment the last-modified time of the last
    /// segment it replaces (as Kafka does).
    pub(crate) fn finish(
        &mut self,
        last_modified_ms: i64,
        faults: &mut Faults,
    ) -> Result<(), LogError> {
        self.write_pending()?;
        let modified =
            UNIX_EPOCH + std::time::Duration::from_millis(last_modified_ms.max(0) as u64);
        let base = self.base;
        let seg = self.seg_mut();
        seg.file.set_modified(modified)?;
        seg.file.sync_all()?;
        seg.created_ms = last_modified_ms;
        seg.last_modified_ms = last_modified_ms;
        seg.maybe_append_time_entry();
        faults.step()?;
        let seg = self.seg();
        let mut files: Vec<(&str, Vec<u8>)> = vec![
            ("index", encode_index(&seg.ix().index)),
            ("timeindex", encode_time_index(&seg.ix().time_index)),
        ];
        if !self.aborted.is_empty() {
            files.push((
                "txnindex",
                self.aborted.iter().flat_map(|a| a.encode()).collect(),
            ));
        }
        for (ext, bytes) in files {
            let mut f = File::create(suffixed(&self.dir, base, ext, CLEANED_SUFFIX))?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            faults.step()?;
        }
        let seg = self.seg_mut();
        (seg.index_on_disk, seg.time_index_on_disk) = seg.index_entries();
        sync_dir(&self.dir)?;
        faults.step()?;
        Ok(())
    }

    /// Leaves the files where they are when dropped (a simulated crash).
    pub(crate) fn keep_files(&mut self) {
        self.keep_files = true;
    }
}

impl Drop for CleanedSegment {
    fn drop(&mut self) {
        if self.keep_files {
            return;
        }
        for ext in SEGMENT_EXTS {
            let _ = std::fs::remove_file(suffixed(&self.dir, self.base, ext, CLEANED_SUFFIX));
        }
    }
}

impl Log {
    /// Every segment, oldest first; the last one is the active segment.
    pub(crate) fn segment_views(&self) -> Vec<SegmentView> {
        self.segments
            .values()
            .map(|s| SegmentView {
                base_offset: s.base_offset,
                file: Arc::clone(&s.file),
                size: s.size,
                next_offset: s.next_offset,
                max_timestamp: s.max_timestamp,
                first_batch_timestamp: s.first_batch_timestamp,
                last_modified_ms: s.last_modified_ms,
                index_bytes: s.index_entries().0 as u64 * 8,
                time_index_bytes: s.index_entries().1 as u64 * 12,
            })
            .collect()
    }

    /// The aborted transactions the log knows (its `.txnindex` entries), by marker offset.
    pub(crate) fn aborted_txn_entries(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    /// The idempotent-producer state.
    pub(crate) fn producer_state(&self) -> &ProducerState {
        &self.producers
    }

    /// Swaps `cleaned` in for the segments `replaced` (consecutive, closed, oldest first, the
    /// first at the cleaned segment's base), as the module docs describe, and updates the
    /// in-memory segments and aborted-transaction list. Returns false, touching nothing, if the
    /// log changed meanwhile (a truncation since `rewrites` was read, or a replaced segment gone
    /// or different). After an error the directory holds a state [`Log::open`] completes; the
    /// log must be reopened.
    pub(crate) fn replace_with_cleaned(
        &mut self,
        mut cleaned: CleanedSegment,
        replaced: &[SegmentView],
        rewrites: u64,
        faults: &mut Faults,
    ) -> Result<bool, LogError> {
        let base = cleaned.base_offset();
        let active_base = *self.segments.keys().next_back().expect("a segment");
        let unchanged = self.rewrites == rewrites
            && replaced.first().is_some_and(|v| v.base_offset == base)
            && replaced.iter().all(|v| {
                v.base_offset < active_base
                    && self.segments.get(&v.base_offset).is_some_and(|s| {
                        Arc::ptr_eq(&s.file, &v.file)
                            && s.size == v.size
                            && s.next_offset == v.next_offset
                    })
            });
        if !unchanged || cleaned.size() == 0 {
            return Ok(false);
        }
        let last = replaced.last().expect("not empty");
        assert_eq!(
            cleaned.next_offset(),
            last.next_offset,
            "a cleaned group keeps its last batch"
        );
        let end = self
            .segments
            .range(last.base_offset + 1..)
            .next()
            .map_or(i64::MAX, |(b, _)| *b);
        if let Err(e) = swap_files(&self.dir, &cleaned, replaced, faults) {
            if faults.crashed {
                cleaned.keep_files();
            }
            return Err(e.into());
        }
        for v in replaced {
            self.segments.remove(&v.base_offset);
        }
        let seg = cleaned.seg.take().expect("not swapped yet");
        self.segments.insert(base, seg);
        self.aborted
            .retain(|a| a.last_offset < base || a.last_offset >= end);
        self.aborted.append(&mut cleaned.aborted);
        self.aborted.sort_by_key(|a| a.last_offset);
        self.rewrites += 1;
        Ok(true)
    }
}

/// The file operations of a swap (steps 2 to 4 of the module docs).
fn swap_files(
    dir: &Path,
    cleaned: &CleanedSegment,
    replaced: &[SegmentView],
    faults: &mut Faults,
) -> std::io::Result<()> {
    let base = cleaned.base_offset();
    let index_exts: &[&str] = if cleaned.aborted.is_empty() {
        &["index", "timeindex"]
    } else {
        &["index", "timeindex", "txnindex"]
    };
    std::fs::rename(
        suffixed(dir, base, "log", CLEANED_SUFFIX),
        suffixed(dir, base, "log", SWAP_SUFFIX),
    )?;
    faults.step()?;
    sync_dir(dir)?;
    faults.step()?;
    for ext in index_exts {
        std::fs::rename(
            suffixed(dir, base, ext, CLEANED_SUFFIX),
            suffixed(dir, base, ext, SWAP_SUFFIX),
        )?;
        faults.step()?;
    }
    for v in replaced.iter().rev() {
        for ext in SEGMENT_EXTS {
            remove_if_exists(&seg_path(dir, v.base_offset, ext))?;
            faults.step()?;
        }
    }
    for ext in index_exts.iter().chain(["log"].iter()) {
        std::fs::rename(
            suffixed(dir, base, ext, SWAP_SUFFIX),
            seg_path(dir, base, ext),
        )?;
        faults.step()?;
    }
    sync_dir(dir)?;
    faults.step()
}

/// Finishes or undoes a swap interrupted by a crash, before the log is opened (Kafka's
/// LogLoader rules): `.cleaned` files are deleted; for each `<base>.log.swap`, the other segment
/// files whose base offset lies in `[base, next offset of the swap file)` (the segments it
/// replaces) are deleted and the `.swap` files take their final names. An index `.swap` file
/// without its `.log.swap` is deleted (the index is rebuilt).
pub(super) fn complete_interrupted_swaps(dir: &Path) -> Result<(), LogError> {
    let mut swaps = Vec::new();
    let mut index_swaps = Vec::new();
    let mut segment_files = Vec::new();
    let mut changed = false;
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        let mut parts = name.splitn(3, '.');
        let (Some(stem), Some(ext)) = (parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(base), true) = (stem.parse::<i64>(), SEGMENT_EXTS.contains(&ext)) else {
            continue;
        };
        match parts.next() {
            Some(CLEANED_SUFFIX) => {
                std::fs::remove_file(dir.join(&name))?;
                changed = true;
            }
            Some(SWAP_SUFFIX) if ext == "log" => swaps.push(base),
            Some(SWAP_SUFFIX) => index_swaps.push((base, ext.to_string())),
            None => segment_files.push((base, name)),
            Some(_) => {}
        }
    }
    let mut ranges = Vec::new();
    for &base in &swaps {
        let path = suffixed(dir, base, "log", SWAP_SUFFIX);
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        let (_, batches) = scan(&file, base, 0, len, base, true);
        let next = batches.last().map_or(base, |(_, h)| h.next_offset());
        tracing::info!(dir = %dir.display(), base, next, "completing an interrupted swap of a cleaned segment");
        ranges.push((base, next));
    }
    for (base, name) in segment_files {
        if ranges.iter().any(|&(from, to)| base >= from && base < to) {
            std::fs::remove_file(dir.join(name))?;
            changed = true;
        }
    }
    for (base, ext) in index_swaps {
        let swap = suffixed(dir, base, &ext, SWAP_SUFFIX);
        if swaps.contains(&base) {
            std::fs::rename(swap, seg_path(dir, base, &ext))?;
        } else {
            std::fs::remove_file(swap)?;
        }
        changed = true;
    }
    for base in swaps {
        std::fs::rename(
            suffixed(dir, base, "log", SWAP_SUFFIX),
            seg_path(dir, base, "log"),
        )?;
        changed = true;
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}
