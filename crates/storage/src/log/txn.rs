//! A log's producers and transactions: the idempotent-producer state (loaded from snapshots and
//! the batches after them), transaction markers (their coordinator epoch, the open transactions
//! they close), the aborted transactions kept in `.txnindex` files, and the last stable offset.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;

use super::*;

/// An aborted transaction: its producer, its first offset and its abort marker's offset (Kafka's
/// AbortedTxn, one `.txnindex` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// Producer id.
    pub producer_id: i64,
    /// First offset of the transaction.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset right after the abort.
    pub last_stable_offset: i64,
}

/// A producer as DescribeProducers shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSummary {
    /// Producer id.
    pub producer_id: i64,
    /// Current epoch.
    pub epoch: i16,
    /// Last sequence written (-1 if none).
    pub last_sequence: i32,
    /// Max timestamp of its latest batch.
    pub last_timestamp: i64,
    /// First offset of its open transaction.
    pub txn_first_offset: Option<i64>,
    /// Epoch of the coordinator that wrote its latest transaction marker (-1: none).
    pub coordinator_epoch: i32,
}

/// Size of a `.txnindex` entry: version, producer id, first, last and last stable offsets.
pub(super) const TXN_ENTRY: usize = 34;

impl AbortedTxn {
    pub(super) fn encode(&self) -> [u8; TXN_ENTRY] {
        let mut b = [0u8; TXN_ENTRY];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    pub(super) fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b.len() < TXN_ENTRY || b[0..2] != [0, 0] {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i(2),
            first_offset: i(10),
            last_offset: i(18),
            last_stable_offset: i(26),
        })
    }
}

impl Log {
    pub(super) fn load_producer_state(&mut self) -> Result<(), LogError> {
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
        // Replay batch headers after the snapshot; markers close (and, aborts, index) their
        // producer's transaction.
        let headers: Vec<BatchHeader> = self.headers_from(from);
        for h in headers {
            if h.has_producer_id() {
                self.producers.update(&h);
                if h.is_control() {
                    let marker = self.read_control_marker(h.base_offset);
                    self.complete_txn(h.producer_id, marker, h.base_offset)?;
                }
            }
        }
        Ok(())
    }

    /// Reads the control record of the marker at `offset`.
    pub(super) fn read_control_marker(&self, offset: i64) -> Option<ControlMarker> {
        let (_, seg) = self.segments.range(..=offset).next_back()?;
        let (pos, h) = seg.find(offset)?;
        let mut buf = vec![0u8; h.size_bytes()];
        seg.file.read_exact_at(&mut buf, pos).ok()?;
        control_marker(&buf)
    }

    /// Loads the aborted transactions of every segment's `.txnindex`, dropping entries past the
    /// log end (a recovered tail) and below the log start.
    pub(super) fn load_aborted_txns(&mut self) {
        let leo = self.log_end_offset();
        let mut all = Vec::new();
        for base in self.segments.keys() {
            let Ok(bytes) = std::fs::read(seg_path(&self.dir, *base, "txnindex")) else {
                continue;
            };
            all.extend(bytes.chunks_exact(TXN_ENTRY).filter_map(AbortedTxn::decode));
        }
        all.retain(|a| a.last_offset < leo && a.last_offset >= self.log_start_offset);
        all.sort_by_key(|a| a.last_offset);
        all.dedup_by_key(|a| a.last_offset);
        self.aborted = all;
    }

    /// A marker at `marker_offset` closed `producer_id`'s transaction: its coordinator epoch is
    /// kept, and an abort (an unreadable marker counts as a commit) is recorded in the aborted list
    /// and (unless it is already there, on replay) the active `.txnindex`.
    pub(super) fn complete_txn(
        &mut self,
        producer_id: i64,
        marker: Option<ControlMarker>,
        marker_offset: i64,
    ) -> Result<(), LogError> {
        let commit = marker.map(|m| m.kind) != Some(CONTROL_ABORT);
        let coordinator_epoch = marker.map_or(-1, |m| m.coordinator_epoch);
        let Some(first_offset) = self.producers.end_txn(producer_id, coordinator_epoch) else {
            return Ok(());
        };
        if commit || self.aborted.iter().any(|a| a.last_offset == marker_offset) {
            return Ok(());
        }
        let entry = AbortedTxn {
            producer_id,
            first_offset,
            last_offset: marker_offset,
            last_stable_offset: self
                .producers
                .first_unstable_offset()
                .unwrap_or(marker_offset + 1),
        };
        let (base, _) = self
            .segments
            .range(..=marker_offset)
            .next_back()
            .expect("a segment holds the marker");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(&self.dir, *base, "txnindex"))?;
        f.write_all(&entry.encode())?;
        self.aborted.push(entry);
        Ok(())
    }

    /// The last stable offset: the first offset of the oldest open transaction, else the log
    /// end (on a single node every appended record is replicated).
    pub fn last_stable_offset(&self) -> i64 {
        self.producers
            .first_unstable_offset()
            .unwrap_or_else(|| self.log_end_offset())
    }

    /// Aborted transactions a read_committed fetch of `[from, upto)` must know about: those
    /// whose range overlaps it, as (producer id, first offset), sorted by first offset.
    pub fn aborted_txns(&self, from: i64, upto: i64) -> Vec<(i64, i64)> {
        let mut out: Vec<(i64, i64)> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < upto)
            .map(|a| (a.producer_id, a.first_offset))
            .collect();
        out.sort_by_key(|a| a.1);
        out
    }

    /// Every producer the log knows, for DescribeProducers.
    pub fn producers(&self) -> Vec<ProducerSummary> {
        let mut out: Vec<ProducerSummary> = self
            .producers
            .producers
            .iter()
            .map(|(id, e)| ProducerSummary {
                producer_id: *id,
                epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: e.last_timestamp,
                txn_first_offset: e.txn_first_offset,
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Producers with an open transaction: (producer id, epoch, first offset).
    pub fn open_txns(&self) -> Vec<(i64, i16, i64)> {
        let mut out: Vec<(i64, i16, i64)> = self
            .producers
            .producers
            .iter()
            .filter_map(|(id, e)| e.txn_first_offset.map(|f| (*id, e.epoch, f)))
            .collect();
        out.sort_by_key(|t| t.2);
        out
    }

    /// Writes a transaction marker for `producer_id` (commit or abort) as the leader; returns
    /// its offset.
    pub fn append_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, AppendError> {
        if self.producers.marker_fenced(producer_id, coordinator_epoch) {
            return Err(AppendError::CoordinatorFenced);
        }
        let mut batch = build_control_batch(
            producer_id,
            producer_epoch,
            commit,
            coordinator_epoch,
            now_ms,
        );
        let info = self.append_as_leader(&mut batch, leader_epoch, now_ms, false)?;
        Ok(info.first_offset)
    }

    /// Rewrites the `.txnindex` of the segment at `base` from the aborted list (after a cut).
    pub(super) fn rewrite_txn_index(&self, base: i64) -> Result<(), LogError> {
        let next_base = self
            .segments
            .range(base + 1..)
            .next()
            .map_or(i64::MAX, |(b, _)| *b);
        let bytes: Vec<u8> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= base && a.last_offset < next_base)
            .flat_map(|a| a.encode())
            .collect();
        let path = seg_path(&self.dir, base, "txnindex");
        if bytes.is_empty() {
            remove_if_exists(&path)?;
        } else {
            std::fs::write(&path, bytes)?;
        }
        Ok(())
    }

    /// Drops aborted transactions that ended below the log start.
    pub(super) fn forget_aborted_below_start(&mut self) {
        let start = self.log_start_offset;
        self.aborted.retain(|a| a.last_offset >= start);
    }

    /// Forgets idempotent producers whose latest batch's timestamp is more than `expiration_ms`
    /// before `now_ms` (Kafka's producer.id.expiration.ms, by default
    /// [`DEFAULT_PRODUCER_ID_EXPIRATION_MS`]); returns how many went. Call it periodically.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Number of producer ids whose state is kept.
    pub fn producer_count(&self) -> usize {
        self.producers.producers.len()
    }
}
