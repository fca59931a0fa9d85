//! A log's leader-epoch cache: which leader epoch started at which offset, kept in
//! `leader-epoch-checkpoint` (Kafka's format), and the lookups KIP-101 / KIP-320 truncation and
//! OffsetForLeaderEpoch use.

use super::*;

pub(super) const EPOCH_FILE: &str = "leader-epoch-checkpoint";

impl Log {
    /// Loads the leader-epoch cache, dropping entries at or past the log end (Kafka's
    /// truncateFromEnd), which an unclean shutdown can leave, and which an empty log's entry
    /// always is. The file is not rewritten for that (every open drops them again): the next
    /// write of the cache, at the latest before the log grows, persists it.
    pub(super) fn load_epochs(&mut self) -> Result<(), LogError> {
        let leo = self.log_end_offset();
        if let Ok(text) = std::fs::read_to_string(self.dir.join(EPOCH_FILE)) {
            let mut lines = text.lines();
            let count: usize = if lines.next().map(str::trim) == Some("0") {
                lines
                    .next()
                    .and_then(|l| l.trim().parse().ok())
                    .unwrap_or(0)
            } else {
                tracing::warn!(dir = %self.dir.display(), "leader-epoch-checkpoint: unknown version, ignored");
                0
            };
            for line in lines.take(count) {
                let mut p = line.split_whitespace();
                if let (Some(Ok(e)), Some(Ok(o))) = (
                    p.next().map(str::parse::<i32>),
                    p.next().map(str::parse::<i64>),
                ) {
                    // Entries ascend in epoch and offset; anything else is dropped.
                    if self.epochs.last().is_none_or(|&(pe, po)| e > pe && o >= po) {
                        self.epochs.push((e, o));
                    }
                }
            }
        }
        self.epochs_on_disk = self.epochs.clone();
        self.epochs.retain(|(_, o)| *o < leo);
        Ok(())
    }

    /// Drops epoch entries starting at or after `end_offset` (Kafka's truncateFromEnd) and
    /// persists the cache if it changed.
    pub(super) fn truncate_epochs_from_end(&mut self, end_offset: i64) -> Result<(), LogError> {
        let before = self.epochs.len();
        self.epochs.retain(|(_, o)| *o < end_offset);
        if self.epochs.len() != before {
            self.write_epochs()?;
        }
        Ok(())
    }

    pub(super) fn write_epochs(&mut self) -> Result<(), LogError> {
        let mut text = format!("0\n{}\n", self.epochs.len());
        for (e, o) in &self.epochs {
            text.push_str(&format!("{e} {o}\n"));
        }
        write_atomic(&self.dir.join(EPOCH_FILE), &text)?;
        self.epochs_on_disk = self.epochs.clone();
        Ok(())
    }

    /// OffsetForLeaderEpoch, as Kafka's LeaderEpochFileCache.endOffsetFor: for the latest cached
    /// epoch, (it, log end offset); for an older one, the largest cached epoch <= `epoch` and the
    /// start offset of the next higher one; for one older than every cached epoch (their start
    /// was deleted), (`epoch`, the first entry's start offset), so a follower replicates from the
    /// leader's start; (-1, -1) (UNDEFINED) for a negative epoch, an empty cache or an epoch
    /// newer than the latest. A leader records its epoch with [`Log::assign_epoch`] when it
    /// becomes leader, so its current epoch is always the latest.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        let Some(&(latest, _)) = self.epochs.last() else {
            return UNDEFINED;
        };
        if epoch < 0 || epoch > latest {
            return UNDEFINED;
        }
        if epoch == latest {
            return (latest, self.log_end_offset());
        }
        // The first entry of a higher epoch: there is one, `epoch` is below the latest.
        let higher = self.epochs.partition_point(|(e, _)| *e <= epoch);
        let end = self.epochs[higher].1;
        match higher.checked_sub(1) {
            Some(floor) => (self.epochs[floor].0, end),
            None => (epoch, end),
        }
    }

    /// Records that leader epoch `epoch` starts at `start_offset`, as Kafka's
    /// LeaderEpochFileCache.assign: a new leader calls it with its epoch at its log end offset
    /// when it becomes leader, before appending (follower appends assign each batch's epoch).
    /// Nothing changes if `epoch` is the latest epoch and `start_offset` not below its start;
    /// otherwise the entries from the end with an epoch at or above `epoch` or a start offset at
    /// or above `start_offset` are dropped (with a warning unless that was one entry at the same
    /// offset) and the entry is added, persisted. An entry at or past the log end does not
    /// survive a reopen (Kafka's truncateFromEnd at load): assign again after reopening.
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<(), LogError> {
        if epoch < 0 || start_offset < 0 {
            return Err(LogError::InvalidEpochEntry {
                epoch,
                start_offset,
            });
        }
        self.assign_epoch_in_memory(epoch, start_offset);
        if self.epochs != self.epochs_on_disk {
            self.write_epochs()?;
        }
        Ok(())
    }

    /// [`Log::assign_epoch`] without persisting (and without the argument check); true if the
    /// cache changed.
    pub(super) fn assign_epoch_in_memory(&mut self, epoch: i32, start_offset: i64) -> bool {
        if self
            .epochs
            .last()
            .is_some_and(|&(e, o)| e == epoch && start_offset >= o)
        {
            return false;
        }
        // Entries ascend in epoch and offset, so the conflicting ones are a suffix.
        let keep = self
            .epochs
            .iter()
            .take_while(|&&(e, o)| e < epoch && o < start_offset)
            .count();
        let removed: Vec<(i32, i64)> = self.epochs.drain(keep..).collect();
        if removed.len() > 1 || removed.first().is_some_and(|&(_, o)| o != start_offset) {
            tracing::warn!(dir = %self.dir.display(), epoch, start_offset, ?removed, "a new leader epoch entry dropped conflicting entries");
        }
        self.epochs.push((epoch, start_offset));
        true
    }

    /// The leader-epoch cache: (epoch, start offset) ascending in both.
    pub fn epoch_entries(&self) -> &[(i32, i64)] {
        &self.epochs
    }

    /// Drops epoch entries wholly below the log start offset (Kafka's truncateFromStart): the
    /// latest of them is kept, starting at the log start offset.
    pub(super) fn truncate_epochs_from_start(&mut self) -> Result<(), LogError> {
        let start = self.log_start_offset;
        let below = self.epochs.iter().take_while(|(_, o)| *o <= start).count();
        if below == 0 || (below == 1 && self.epochs[0].1 == start) {
            return Ok(());
        }
        let epoch = self.epochs[below - 1].0;
        self.epochs.drain(..below);
        self.epochs.insert(0, (epoch, start));
        self.write_epochs()
    }
}
