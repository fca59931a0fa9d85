//! The raft log and vote on disk. Entries live in `__cluster_metadata-0/` as a Kafka partition
//! log: one v2 batch per entry, offset = raft index, partition leader epoch = term, one record
//! whose key names the payload kind and whose value is the payload as JSON. The vote and the last
//! purged log id live in `quorum-state` (JSON, replaced atomically), with whether the quorum is
//! dynamic.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, CommittedLeaderId, Entry, EntryPayload, LogId, LogState, RaftLogReader, StorageError,
    StorageIOError, Vote,
};
use parking_lot::Mutex;
use runnel_storage::log::{Log, LogConfig};
use serde::{Deserialize, Serialize};

use super::TypeConfig;
use crate::records::MetadataRecord;

/// File (in the metadata log dir) holding the vote and the last purged log id.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

const KEY_BLANK: &[u8] = b"blank";
const KEY_NORMAL: &[u8] = b"normal";
const KEY_MEMBERSHIP: &[u8] = b"membership";

/// What `quorum-state` holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct QuorumState {
    vote: Option<Vote<u64>>,
    last_purged: Option<LogId<u64>>,
    /// The last log id known committed: a restarted node applies its log up to it at once,
    /// before it hears from a leader, so its image is not empty meanwhile.
    #[serde(default)]
    committed: Option<LogId<u64>>,
    /// The quorum's voters may change (KIP-853, `kraft.version` 1): fixed when the log is
    /// first written, by how the node was started (see `RaftQuorumConfig::dynamic`).
    #[serde(default)]
    dynamic: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Settings of the metadata partition log (never expires; purged only behind snapshots).
pub(crate) fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 * 1024 * 1024,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

/// Encodes `(key, value)` records as one uncompressed v2 batch (offsets from 0).
pub(crate) fn encode_batch(
    records: Vec<(Option<Bytes>, Option<Bytes>)>,
    epoch: i32,
) -> Result<BytesMut, String> {
    let ts = now_ms();
    let recs: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: ts,
            key,
            value,
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf)
}

/// Decodes every record of the batches in `bytes`.
pub(crate) fn decode_records(bytes: &Bytes) -> Result<Vec<Record>, String> {
    let mut buf = bytes.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| e.to_string())?;
    Ok(sets.into_iter().flat_map(|s| s.records).collect())
}

/// A raft log id from a term and an index.
pub(crate) fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn encode_entry(entry: &Entry<TypeConfig>) -> Result<BytesMut, String> {
    let json = |r: serde_json::Result<Vec<u8>>| r.map(Bytes::from).map_err(|e| e.to_string());
    let (key, value) = match &entry.payload {
        EntryPayload::Blank => (KEY_BLANK, None),
        EntryPayload::Normal(records) => (KEY_NORMAL, Some(json(serde_json::to_vec(records))?)),
        EntryPayload::Membership(m) => (KEY_MEMBERSHIP, Some(json(serde_json::to_vec(m))?)),
    };
    let term = entry.log_id.leader_id.term;
    encode_batch(
        vec![(Some(Bytes::from_static(key)), value)],
        i32::try_from(term).map_err(|_| format!("term {term} does not fit an epoch"))?,
    )
}

fn decode_entry(rec: &Record) -> Result<Entry<TypeConfig>, String> {
    let value = rec.value.as_deref().unwrap_or_default();
    let payload = match rec.key.as_deref() {
        Some(KEY_BLANK) => EntryPayload::Blank,
        Some(KEY_NORMAL) => EntryPayload::Normal(
            serde_json::from_slice::<Vec<MetadataRecord>>(value).map_err(|e| e.to_string())?,
        ),
        Some(KEY_MEMBERSHIP) => {
            EntryPayload::Membership(serde_json::from_slice(value).map_err(|e| e.to_string())?)
        }
        other => return Err(format!("unknown entry kind {other:?}")),
    };
    Ok(Entry {
        log_id: log_id(rec.partition_leader_epoch as u64, rec.offset as u64),
        payload,
    })
}

/// Reads entries `[start, end)` (clamped to the log) in index order.
fn read_entries(log: &Log, start: i64, end: i64) -> Result<Vec<Entry<TypeConfig>>, String> {
    let end = end.min(log.log_end_offset());
    let mut offset = start.max(log.log_start_offset());
    let mut out = Vec::new();
    while offset < end {
        let read = log
            .read(offset, 1024 * 1024, end)
            .map_err(|e| e.to_string())?;
        if read.records.is_empty() {
            break;
        }
        for rec in decode_records(&read.records)? {
            if rec.offset >= offset && rec.offset < end {
                out.push(decode_entry(&rec).map_err(|e| format!("offset {}: {e}", rec.offset))?);
                offset = rec.offset + 1;
            }
        }
    }
    Ok(out)
}

fn io_err(e: impl ToString) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn read_err(e: impl ToString) -> StorageError<u64> {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

fn open_log(dir: &Path) -> Result<Log, String> {
    // Always scan: the metadata log is small.
    Log::open(dir, log_config(), 0, false).map_err(|e| e.to_string())
}

struct Inner {
    dir: PathBuf,
    /// None once closed.
    log: Option<Log>,
    state: QuorumState,
    last_log_id: Option<LogId<u64>>,
}

impl Inner {
    fn log(&self) -> Result<&Log, String> {
        self.log
            .as_ref()
            .ok_or_else(|| "the metadata log is closed".to_string())
    }

    fn log_mut(&mut self) -> Result<&mut Log, String> {
        self.log
            .as_mut()
            .ok_or_else(|| "the metadata log is closed".to_string())
    }

    fn write_state(&self) -> Result<(), String> {
        let text = serde_json::to_string(&self.state).map_err(|e| e.to_string())?;
        runnel_storage::checkpoint::write_atomic(&self.dir.join(QUORUM_STATE_FILE), &text)
            .map_err(|e| e.to_string())
    }

    /// Recomputes the last log id from the log's tail (or the purge point if it is empty).
    fn refresh_last_log_id(&mut self) -> Result<(), String> {
        let log = self.log()?;
        let leo = log.log_end_offset();
        self.last_log_id = if leo > log.log_start_offset() {
            read_entries(log, leo - 1, leo)?.pop().map(|e| e.log_id)
        } else {
            self.state.last_purged
        };
        Ok(())
    }

    /// Drops the entries up to the recorded purge point from the log.
    fn apply_purge(&mut self) -> Result<(), String> {
        let Some(purged) = self.state.last_purged else {
            return Ok(());
        };
        let next = purged.index as i64 + 1;
        let log = self.log()?;
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        if next <= start {
            return Ok(());
        }
        if next <= end {
            self.log_mut()?
                .delete_records_before(next)
                .map_err(|e| e.to_string())?;
        } else {
            // A snapshot overtook the whole local log: start afresh behind it.
            self.log_mut()?
                .truncate_fully_and_start_at(next)
                .map_err(|e| e.to_string())?;
            self.refresh_last_log_id()?;
        }
        Ok(())
    }

    fn append(
        &mut self,
        entries: impl IntoIterator<Item = Entry<TypeConfig>>,
    ) -> Result<(), String> {
        let log = self.log.as_mut().ok_or("the metadata log is closed")?;
        let mut last = None;
        for entry in entries {
            let leo = log.log_end_offset();
            if entry.log_id.index as i64 != leo {
                return Err(format!(
                    "entry {} does not follow the log end {leo}",
                    entry.log_id
                ));
            }
            let mut buf = encode_entry(&entry)?;
            log.append_as_leader(
                &mut buf,
                entry.log_id.leader_id.term as i32,
                now_ms(),
                false,
            )
            .map_err(|e| e.to_string())?;
            last = Some(entry.log_id);
        }
        log.flush().map_err(|e| e.to_string())?;
        if last.is_some() {
            self.last_log_id = last;
        }
        Ok(())
    }
}

/// The raft log store (and, cloned, its reader): a handle on the shared metadata partition log.
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<Inner>>,
}

impl LogStore {
    /// Opens the raft log in `dir` (creating it and its `quorum-state` if missing) and finishes
    /// a purge that a crash may have interrupted.
    pub(crate) fn open(dir: &Path) -> Result<LogStore, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let state_path = dir.join(QUORUM_STATE_FILE);
        let fresh_state = !state_path.exists();
        let state = if fresh_state {
            QuorumState::default()
        } else {
            let text = std::fs::read_to_string(&state_path).map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", state_path.display()))?
        };
        let mut inner = Inner {
            dir: dir.to_path_buf(),
            log: Some(open_log(dir)?),
            state,
            last_log_id: None,
        };
        if fresh_state {
            inner.write_state()?;
        }
        inner.apply_purge()?;
        inner.refresh_last_log_id()?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    /// True if nothing was ever written: no vote, no entry, no purge.
    pub(crate) fn is_pristine(&self) -> bool {
        let inner = self.inner.lock();
        inner.state.vote.is_none() && inner.last_log_id.is_none()
    }

    /// Whether this log belongs to a dynamic quorum (voters may change).
    pub(crate) fn is_dynamic(&self) -> bool {
        self.inner.lock().state.dynamic
    }

    /// Records that this log belongs to a dynamic quorum.
    pub(crate) fn set_dynamic(&self) -> Result<(), String> {
        let mut inner = self.inner.lock();
        if !inner.state.dynamic {
            inner.state.dynamic = true;
            inner.write_state()?;
        }
        Ok(())
    }

    /// The log's start offset (moves forward as entries behind a snapshot are purged).
    #[cfg(test)]
    pub(crate) fn log_start_offset(&self) -> i64 {
        self.bounds().0
    }

    /// The log's start and end offsets: what a start-up replays at most (-1, -1 once closed).
    pub(crate) fn bounds(&self) -> (i64, i64) {
        self.inner
            .lock()
            .log()
            .map_or((-1, -1), |l| (l.log_start_offset(), l.log_end_offset()))
    }

    /// Flushes and closes the log; later calls fail.
    pub(crate) fn close(&self) -> Result<(), String> {
        match self.inner.lock().log.take() {
            Some(log) => log.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

fn index_bounds(range: &impl RangeBounds<u64>) -> (i64, i64) {
    let start = match range.start_bound() {
        Bound::Included(s) => *s as i64,
        Bound::Excluded(s) => *s as i64 + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(e) => *e as i64 + 1,
        Bound::Excluded(e) => *e as i64,
        Bound::Unbounded => i64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let (start, end) = index_bounds(&range);
        let inner = self.inner.lock();
        read_entries(inner.log().map_err(read_err)?, start, end).map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let inner = self.inner.lock();
        Ok(LogState {
            last_purged_log_id: inner.state.last_purged,
            last_log_id: inner.last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.inner.lock();
        inner.state.vote = Some(*vote);
        inner
            .write_state()
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let mut inner = self.inner.lock();
        if inner.state.committed >= committed {
            return Ok(());
        }
        inner.state.committed = committed;
        inner
            .write_state()
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.inner.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let result = self.inner.lock().append(entries);
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.clone())));
                Err(io_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.inner.lock();
        let at = log_id.index as i64;
        let log = inner.log().map_err(io_err)?;
        if at >= log.log_end_offset() {
            return Ok(());
        }
        if at < log.log_start_offset() {
            return Err(io_err(format!(
                "cannot truncate at {at}, below the log start {}",
                log.log_start_offset()
            )));
        }
        tracing::info!(index = at, "metadata log: truncating conflicting entries");
        inner
            .log_mut()
            .and_then(|log| log.truncate_to(at).map_err(|e| e.to_string()))
            .map_err(io_err)?;
        inner.refresh_last_log_id().map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let mut inner = self.inner.lock();
        if inner.state.last_purged.is_some_and(|p| p >= log_id) {
            return Ok(());
        }
        // Record the purge point first: a crash before the files go is finished at open.
        inner.state.last_purged = Some(log_id);
        inner.write_state().map_err(io_err)?;
        inner.apply_purge().map_err(io_err)?;
        if inner.last_log_id < Some(log_id) {
            inner.last_log_id = Some(log_id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::storage::RaftLogStorage;

    fn entry(term: u64, index: u64, n: i64) -> Entry<TypeConfig> {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Normal(vec![MetadataRecord::ProducerIds {
                next_producer_id: n,
            }]),
        }
    }

    fn append_direct(store: &LogStore, entries: Vec<Entry<TypeConfig>>) {
        store.inner.lock().append(entries).unwrap();
    }

    #[tokio::test]
    async fn truncate_and_purge_keep_the_log_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert!(store.is_pristine());
        append_direct(
            &store,
            (0..10).map(|i| entry(1 + i / 5, i, i as i64)).collect(),
        );
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 9)));

        store.truncate(log_id(2, 7)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 6)));
        // The log continues at the cut with a newer term.
        append_direct(&store, vec![entry(3, 7, 70)]);
        let got = store.try_get_log_entries(5..).await.unwrap();
        let ids: Vec<_> = got.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [log_id(2, 5), log_id(2, 6), log_id(3, 7)]);

        store.purge(log_id(1, 3)).await.unwrap();
        assert_eq!(store.log_start_offset(), 4);
        store.close().unwrap();

        // Reopen: the same state comes back.
        let mut store = LogStore::open(dir.path()).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 3)));
        assert_eq!(state.last_log_id, Some(log_id(3, 7)));
        assert_eq!(store.try_get_log_entries(0..).await.unwrap().len(), 4);

        // A purge past the end (a snapshot overtook the log) leaves an empty log after it.
        store.purge(log_id(5, 20)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(5, 20)));
        append_direct(&store, vec![entry(5, 21, 1)]);
        store.close().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        assert_eq!(store.log_start_offset(), 21);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(5, 21)));

        // Truncating at the log start empties the log; it goes on from there with a new term.
        store.truncate(log_id(5, 21)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(5, 20)));
        assert_eq!(store.log_start_offset(), 21);
        append_direct(&store, vec![entry(6, 21, 2), entry(6, 22, 3)]);
        store.truncate(log_id(6, 22)).await.unwrap();
        append_direct(&store, vec![entry(7, 22, 4)]);
        store.close().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let ids: Vec<_> = store
            .try_get_log_entries(0..)
            .await
            .unwrap()
            .iter()
            .map(|e| e.log_id)
            .collect();
        assert_eq!(ids, [log_id(6, 21), log_id(7, 22)]);
    }
}
