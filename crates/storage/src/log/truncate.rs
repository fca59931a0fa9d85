//! Moving a log's ends: truncation (a follower's divergent suffix, or everything when it starts
//! over at a leader's offset), deleting records below an offset (DeleteRecords, KIP-107), and
//! retention by time and size, each with the log start offset persisted.

use super::*;

impl Log {
    /// Removes every batch at or above `offset`: what a follower whose log diverged from the
    /// leader's does (KIP-101/279), and a former leader too. A no-op if `offset` is at or past the
    /// log end; at or below the log start it is [`Log::truncate_fully_and_start_at`]. Batches are
    /// never split: if `offset` falls inside a batch, that whole batch goes and the log end
    /// becomes its base offset (callers pass batch boundaries). Segments above go (newest first:
    /// a crash leaves a prefix of the log), the segment holding `offset` is cut with its indexes,
    /// the leader-epoch cache loses the entries starting at or after the new end (persisted),
    /// aborted transactions whose marker went are forgotten, the producer state is rebuilt from
    /// the latest snapshot at or below the new end plus the batches after it, and the recovery
    /// point moves down to the new end. The caller should persist [`Log::recovery_point`] before
    /// appending again, as Kafka checkpoints it after a truncation. After an I/O error the log
    /// must be reopened.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        if offset >= leo {
            // Nothing to cut, but an epoch that starts at the log end holds no record: a deposed
            // leader that wrote nothing in its epoch drops it here, or it would ask its new
            // leader about that epoch for ever.
            if offset == leo && self.epochs.last().is_some_and(|(_, o)| *o >= leo) {
                self.truncate_epochs_from_end(leo)?;
            }
            return Ok(());
        }
        if offset <= self.log_start_offset {
            return self.truncate_fully_and_start_at(offset);
        }
        // A rolled segment's background flush writes a producer snapshot that may describe
        // offsets about to go: let it finish first.
        self.reap_background_flush(true)?;
        let (&base, seg) = self
            .segments
            .range(..=offset)
            .next_back()
            .expect("the log start offset is in a segment");
        let (cut_pos, new_leo) = match seg.find(offset) {
            Some((0, _)) => (0, base),
            Some((pos, h)) => (pos, h.base_offset),
            None => (seg.size, seg.next_offset),
        };
        if new_leo < self.log_start_offset {
            // The batch holding `offset` begins below the log start: nothing above it stays.
            let start = self.log_start_offset;
            return self.truncate_fully_and_start_at(start);
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset = new_leo, "truncating the log");
        self.rewrites += 1;
        let dir = self.dir.clone();
        let above: Vec<i64> = self.segments.range(base + 1..).map(|(b, _)| *b).collect();
        for b in above.into_iter().rev() {
            self.segments.remove(&b).expect("listed").remove(&dir);
        }
        let seg = self.segments.get_mut(&base).expect("kept");
        seg.truncate_at(&dir, cut_pos, new_leo)?;
        seg.file.sync_all()?;
        File::open(&dir)?.sync_all()?;
        debug_assert_eq!(self.log_end_offset(), new_leo);
        self.truncate_epochs_from_end(new_leo)?;
        self.aborted.retain(|a| a.last_offset < new_leo);
        self.rewrite_txn_index(base)?;
        // Snapshots past the new end are deleted; the latest one below it is replayed from.
        self.producers = ProducerState::default();
        self.load_producer_state()?;
        self.recovery_point = self.recovery_point.min(new_leo);
        Ok(())
    }

    /// Deletes the whole log and starts it again, empty, at `offset` (Kafka's
    /// truncateFullyAndStartAt): log start = log end = recovery point = `offset`, no epoch
    /// entries, no producer state or snapshots, no aborted transactions. What a follower does
    /// when the leader's log starts after its own end. After an I/O error the log must be
    /// reopened.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset(),
            });
        }
        self.reap_background_flush(true)?;
        tracing::info!(dir = %self.dir.display(), offset, "deleting the log to start it at a new offset");
        self.rewrites += 1;
        let dir = self.dir.clone();
        // Snapshots first: one left at a kept offset would describe the old log.
        for (_, path) in list_snapshots(&dir)? {
            remove_if_exists(&path)?;
        }
        // Newest first: a crash leaves a prefix of the log.
        let bases: Vec<i64> = self.segments.keys().rev().copied().collect();
        for b in bases {
            self.segments.remove(&b).expect("listed").remove(&dir);
        }
        File::open(&dir)?.sync_all()?;
        self.epochs.clear();
        self.write_epochs()?;
        self.producers = ProducerState::default();
        self.aborted.clear();
        self.log_start_offset = offset;
        self.persist_log_start()?;
        self.segments.insert(offset, Segment::create(&dir, offset)?);
        self.recovery_point = offset;
        self.unflushed_messages = 0;
        Ok(())
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
        self.truncate_epochs_from_start()?;
        Ok(self.log_start_offset)
    }

    pub(super) fn delete_segments_below(&mut self, offset: i64) {
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
        self.forget_aborted_below_start();
    }

    pub(super) fn persist_log_start(&self) -> Result<(), LogError> {
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
            self.truncate_epochs_from_start()?;
            self.forget_aborted_below_start();
        }
        Ok(deleted)
    }
}
