//! Idempotent-producer state (Kafka's ProducerStateManager idea): per producer id, the current
//! epoch and the last five batches' sequences and offsets, used to detect duplicates, gaps and
//! fenced epochs, and the first offset of its open transaction (which holds back the last stable
//! offset), and the epoch of the transaction coordinator that wrote its latest marker (which
//! fences markers from a deposed coordinator). Snapshots (`%020d.snapshot`) keep it across
//! restarts.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use crate::batch::{increment_sequence, BatchHeader};

/// How many recent batches are remembered per producer (as Kafka: max in-flight requests).
pub const CACHED_BATCHES: usize = 5;
/// Kafka's default `producer.id.expiration.ms`: one day.
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;
/// Snapshot format version written (version 1 had no last timestamp, version 2 no open
/// transaction, version 3 no coordinator epoch).
const SNAPSHOT_VERSION: u16 = 4;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence.
    pub first_seq: i32,
    /// Last sequence.
    pub last_seq: i32,
    /// First offset.
    pub first_offset: i64,
    /// Last offset.
    pub last_offset: i64,
}

/// The state of one producer id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Most recent batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Max timestamp of the producer's latest batch (-1: unknown), for expiry.
    pub last_timestamp: i64,
    /// First offset of the producer's open transaction, if one is open.
    pub txn_first_offset: Option<i64>,
    /// Epoch of the transaction coordinator that wrote the producer's latest marker (-1: none).
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 0,
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }
}

/// What a batch is, against the producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Ok,
    /// Already written at these offsets.
    Duplicate(i64, i64),
    /// Sequence gap.
    OutOfOrder,
    /// Epoch older than the producer's.
    FencedEpoch,
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerState {
    /// Entries by producer id.
    pub producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Checks a batch (with a producer id) against the state, without changing it. Control
    /// batches (transaction markers) and batches without a sequence only have their epoch
    /// checked, as Kafka does for markers.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(e) = self.producers.get(&h.producer_id) else {
            return SequenceCheck::Ok;
        };
        if h.producer_epoch < e.epoch {
            return SequenceCheck::FencedEpoch;
        }
        if h.is_control() || h.base_sequence < 0 {
            return SequenceCheck::Ok;
        }
        if h.producer_epoch > e.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Ok
            } else {
                SequenceCheck::OutOfOrder
            };
        }
        if let Some(d) = e
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == h.last_sequence())
        {
            return SequenceCheck::Duplicate(d.first_offset, d.last_offset);
        }
        match e.batches.back() {
            Some(last) if increment_sequence(last.last_seq, 1) != h.base_sequence => {
                SequenceCheck::OutOfOrder
            }
            _ => SequenceCheck::Ok,
        }
    }

    /// Records an appended batch (its offsets already assigned).
    pub fn update(&mut self, h: &BatchHeader) {
        if h.producer_id < 0 {
            return;
        }
        let e = self.producers.entry(h.producer_id).or_default();
        e.last_timestamp = e.last_timestamp.max(h.max_timestamp);
        if h.producer_epoch != e.epoch {
            e.epoch = h.producer_epoch;
            e.batches.clear();
        }
        if h.is_control() {
            return;
        }
        if h.is_transactional() && e.txn_first_offset.is_none() {
            e.txn_first_offset = Some(h.base_offset);
        }
        if h.base_sequence < 0 {
            return;
        }
        e.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
        while e.batches.len() > CACHED_BATCHES {
            e.batches.pop_front();
        }
    }

    /// Closes the producer's open transaction (a marker written by a coordinator of
    /// `coordinator_epoch`); returns its first offset.
    pub fn end_txn(&mut self, producer_id: i64, coordinator_epoch: i32) -> Option<i64> {
        let e = self.producers.get_mut(&producer_id)?;
        e.coordinator_epoch = e.coordinator_epoch.max(coordinator_epoch);
        e.txn_first_offset.take()
    }

    /// Whether a marker for `producer_id` from a coordinator of `coordinator_epoch` is fenced:
    /// a later coordinator already wrote one (Kafka's TRANSACTION_COORDINATOR_FENCED).
    pub fn marker_fenced(&self, producer_id: i64, coordinator_epoch: i32) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.coordinator_epoch > coordinator_epoch)
    }

    /// The first offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Forgets producers whose latest batch is more than `expiration_ms` older than `now_ms`
    /// (Kafka's producer.id.expiration.ms); returns how many went.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some()
                || e.last_timestamp < 0
                || now_ms - e.last_timestamp < expiration_ms
        });
        before - self.producers.len()
    }

    /// Serializes the state with a trailing CRC-32C.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.txn_first_offset.unwrap_or(-1).to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot; None if it is corrupt.
    pub fn from_bytes(buf: &[u8]) -> Option<ProducerState> {
        if buf.len() < 10 {
            return None;
        }
        let (body, crc) = buf.split_at(buf.len() - 4);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc.try_into().ok()?) {
            return None;
        }
        let mut pos = 0;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = body.get(pos..pos + n)?;
            pos += n;
            Some(s)
        };
        let version = u16::from_be_bytes(take(2)?.try_into().ok()?);
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return None;
        }
        let n = u32::from_be_bytes(take(4)?.try_into().ok()?);
        let mut state = ProducerState::default();
        for _ in 0..n {
            let id = i64::from_be_bytes(take(8)?.try_into().ok()?);
            let epoch = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let last_timestamp = if version == 1 {
                -1
            } else {
                i64::from_be_bytes(take(8)?.try_into().ok()?)
            };
            let txn_first_offset = if version >= 3 {
                Some(i64::from_be_bytes(take(8)?.try_into().ok()?)).filter(|o| *o >= 0)
            } else {
                None
            };
            let coordinator_epoch = if version >= 4 {
                i32::from_be_bytes(take(4)?.try_into().ok()?)
            } else {
                -1
            };
            let count = take(1)?[0];
            if count as usize > CACHED_BATCHES {
                return None;
            }
            let mut e = ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_timestamp,
                txn_first_offset,
                coordinator_epoch,
            };
            for _ in 0..count {
                e.batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    last_seq: i32::from_be_bytes(take(4)?.try_into().ok()?),
                    first_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                    last_offset: i64::from_be_bytes(take(8)?.try_into().ok()?),
                });
            }
            state.producers.insert(id, e);
        }
        Some(state)
    }

    /// Writes a snapshot file `<dir>/%020d.snapshot` for `offset`.
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> std::io::Result<()> {
        write_snapshot_bytes(dir, offset, &self.to_bytes())
    }
}

/// Writes snapshot bytes (from [`ProducerState::to_bytes`]) as `<offset>.snapshot`, atomically
/// and fsynced.
pub fn write_snapshot_bytes(dir: &Path, offset: i64, bytes: &[u8]) -> std::io::Result<()> {
    let path = dir.join(format!("{offset:020}.snapshot"));
    let tmp = dir.join(format!("{offset:020}.snapshot.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut f, bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

/// Snapshot files in `dir` as (offset, path), ascending.
pub fn list_snapshots(dir: &Path) -> std::io::Result<Vec<(i64, std::path::PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if let Ok(o) = stem.parse::<i64>() {
                out.push((o, e.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pid: i64, epoch: i16, seq: i32, n: i32, off: i64) -> BatchHeader {
        BatchHeader {
            base_offset: off,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: n - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: n,
        }
    }

    #[test]
    fn rules_and_snapshot_round_trip() {
        let mut s = ProducerState::default();
        assert_eq!(s.check(&h(1, 0, 0, 2, 0)), SequenceCheck::Ok);
        s.update(&h(1, 0, 0, 2, 0));
        assert_eq!(s.check(&h(1, 0, 0, 2, 99)), SequenceCheck::Duplicate(0, 1));
        assert_eq!(s.check(&h(1, 0, 3, 1, 99)), SequenceCheck::OutOfOrder);
        assert_eq!(s.check(&h(1, 0, 2, 1, 99)), SequenceCheck::Ok);
        assert_eq!(s.check(&h(1, 1, 5, 1, 99)), SequenceCheck::OutOfOrder);
        s.update(&h(1, 1, 0, 1, 2));
        assert_eq!(s.check(&h(1, 0, 2, 1, 99)), SequenceCheck::FencedEpoch);
        // A transaction marker: epoch checked, sequence not; it leaves the sequences alone.
        let mut marker = h(1, 1, -1, 1, 3);
        marker.attributes = 0x30;
        assert_eq!(s.check(&marker), SequenceCheck::Ok);
        s.update(&marker);
        assert_eq!(s.check(&h(1, 1, 1, 1, 99)), SequenceCheck::Ok);
        marker.producer_epoch = 0;
        assert_eq!(s.check(&marker), SequenceCheck::FencedEpoch);
        // The marker's coordinator epoch fences markers of older coordinators.
        assert_eq!(s.producers[&1].coordinator_epoch, -1);
        assert_eq!(s.end_txn(1, 5), None);
        assert!(s.marker_fenced(1, 4) && !s.marker_fenced(1, 5) && !s.marker_fenced(9, 0));
        for i in 0..7 {
            s.update(&h(2, 0, i, 1, 10 + i as i64));
        }
        assert_eq!(s.producers[&2].batches.len(), CACHED_BATCHES);
        let back = ProducerState::from_bytes(&s.to_bytes()).unwrap();
        assert_eq!(back, s);
        let mut bad = s.to_bytes();
        bad[7] ^= 1;
        assert!(ProducerState::from_bytes(&bad).is_none());
        // Expiry by the latest batch's timestamp.
        let mut late = h(3, 0, 0, 1, 50);
        late.max_timestamp = 10_000;
        s.update(&late);
        assert_eq!(s.remove_expired(10_000 + 500, 1000), 2);
        assert_eq!(s.producers.keys().collect::<Vec<_>>(), vec![&3]);
    }
}
