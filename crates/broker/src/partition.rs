//! A partition replica on this broker: its log (one owner, behind a mutex held only for the
//! duration of an append or a read), its resolved topic configuration, and its replica state:
//! leader or follower in which leader epoch, the ISR it was told, the high watermark, and (while
//! leading) what each follower has fetched.
//!
//! Invariants: the high watermark never moves backwards except when the log is truncated below
//! it; a leader's high watermark is the lowest log end offset in the ISR, and does not move while
//! the ISR is below `min.insync.replicas`; a follower's is the leader's, capped at its own log end.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, RwLock};
use runnel_config::TopicConfig;
use runnel_metadata::PartitionImage;
use runnel_storage::log::{Log, LogConfig};
use tokio::sync::watch;
use uuid::Uuid;

/// Where a replica stands, as the newest metadata image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// Leader node id (-1: no leader).
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch of the record this state comes from.
    pub partition_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
}

impl ReplicaState {
    /// The state a partition image describes.
    pub fn from_image(p: &PartitionImage) -> ReplicaState {
        ReplicaState {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
        }
    }
}

/// What a leader knows of one follower.
#[derive(Debug, Clone, Copy)]
pub struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset); -1 before its first fetch.
    pub log_end_offset: i64,
    /// The last time (ms) the follower was caught up with the leader's log end.
    pub last_caught_up_ms: i64,
    /// Time (ms) and leader log end offset of its previous fetch.
    last_fetch: (i64, i64),
}

/// How far an acks=all write has got ([`Partition::replication`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// Not in every ISR member yet.
    Pending,
    /// In the ISR, and the ISR is large enough.
    Committed,
    /// This broker no longer leads in the write's epoch: it may have been truncated away.
    LeadershipLost,
    /// Replicated, but the ISR shrank below `min.insync.replicas`.
    TooFewInSync {
        /// ISR size.
        isr: i32,
        /// `min.insync.replicas`.
        min: i32,
    },
}

/// One partition hosted by this broker.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// The partition's log.
    pub log: Mutex<Log>,
    /// Resolved topic configuration (changes with AlterConfigs).
    pub config: RwLock<Arc<TopicConfig>>,
    /// This node's id.
    node_id: i32,
    state: RwLock<ReplicaState>,
    high_watermark: AtomicI64,
    /// Watches the high watermark (acks=all produce waits on it).
    hw_changed: watch::Sender<i64>,
    /// Long-polling fetches waiting for this partition's data (Kafka's fetch purgatory, keyed
    /// by partition): woken, and forgotten, when data becomes readable here.
    readers: Mutex<Vec<std::sync::Weak<tokio::sync::Notify>>>,
    /// (leader epoch, offset): this leader's appends below the offset are on disk. One group
    /// commit at a time holds it; the appends made meanwhile wait and share the next fsync.
    synced: tokio::sync::Mutex<(i32, i64)>,
    /// How many group-commit fsyncs ran.
    syncs: std::sync::atomic::AtomicU64,
    followers: Mutex<HashMap<i32, FollowerProgress>>,
    /// Replicas an ISR change asked for but not yet applied (Kafka's "maximal ISR"): counted in
    /// the high watermark until the change is applied or refused, so that a replica the
    /// controller has already put in the ISR is never left behind by acknowledged records.
    pending_isr: Mutex<Vec<i32>>,
    /// Where group-commit fsyncs are timed (the broker's metrics), once set.
    flush_time: std::sync::OnceLock<prometheus::Histogram>,
}

/// The storage settings derived from a topic's configuration. Retention by time and size applies
/// only when `cleanup.policy` includes `delete`, as on Kafka.
pub fn log_config(tc: &TopicConfig) -> LogConfig {
    let delete = tc.delete();
    LogConfig {
        segment_bytes: tc.segment_bytes.max(1) as u64,
        segment_ms: tc.segment_ms,
        retention_ms: if delete { tc.retention_ms } else { -1 },
        retention_bytes: if delete { tc.retention_bytes } else { -1 },
        index_interval_bytes: tc.index_interval_bytes.max(1) as u64,
        segment_index_bytes: tc.segment_index_bytes.max(64) as u64,
        flush_interval_messages: if tc.flush_messages <= 0 || tc.flush_messages == i64::MAX {
            u64::MAX
        } else {
            tc.flush_messages as u64
        },
        flush_interval_ms: tc.flush_ms,
        file_delete_delay_ms: tc.file_delete_delay_ms,
    }
}

/// Directory of a partition's log: `<log.dirs>/<topic>-<partition>`.
pub fn partition_dir(log_dir: &Path, topic: &str, index: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{index}"))
}

/// Contents of Kafka's `partition.metadata` file for a topic id.
pub fn partition_metadata_text(topic_id: &Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", topic_id_base64(topic_id))
}

/// Kafka's printed form of a topic id: URL-safe base64 of its 16 bytes, no padding.
pub fn topic_id_base64(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl Partition {
    /// A replica with the given log and state; the high watermark starts at `high_watermark`
    /// (the checkpointed one), capped at the log end.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topic: String,
        topic_id: Uuid,
        index: i32,
        node_id: i32,
        log: Log,
        config: Arc<TopicConfig>,
        high_watermark: i64,
    ) -> Partition {
        let hw = high_watermark.clamp(log.log_start_offset(), log.log_end_offset());
        Partition {
            topic,
            topic_id,
            index,
            log: Mutex::new(log),
            config: RwLock::new(config),
            node_id,
            state: RwLock::new(ReplicaState {
                leader: -1,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: vec![],
                isr: vec![],
            }),
            high_watermark: AtomicI64::new(hw),
            hw_changed: watch::channel(hw).0,
            readers: Mutex::new(Vec::new()),
            synced: tokio::sync::Mutex::new((-1, 0)),
            syncs: std::sync::atomic::AtomicU64::new(0),
            followers: Mutex::new(HashMap::new()),
            pending_isr: Mutex::new(Vec::new()),
            flush_time: std::sync::OnceLock::new(),
        }
    }

    /// Times this partition's group-commit fsyncs into `histogram` (milliseconds).
    pub fn time_flushes(&self, histogram: prometheus::Histogram) {
        let _ = self.flush_time.set(histogram);
    }

    /// The replica state.
    pub fn state(&self) -> ReplicaState {
        self.state.read().clone()
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.state.read().leader_epoch
    }

    /// Whether this node leads the partition.
    pub fn is_leader(&self) -> bool {
        self.state.read().leader == self.node_id
    }

    /// Kafka's check of a request's current leader epoch against ours (-1: not checked).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), ResponseError> {
        let ours = self.leader_epoch();
        if requested > ours {
            Err(ResponseError::UnknownLeaderEpoch)
        } else if requested >= 0 && requested < ours {
            Err(ResponseError::FencedLeaderEpoch)
        } else {
            Ok(())
        }
    }

    /// The leader epoch check, then that this node leads: what produce and consumer fetches,
    /// list-offsets and the like need.
    pub fn check_leader(&self, requested_epoch: i32) -> Result<(), ResponseError> {
        self.check_leader_epoch(requested_epoch)?;
        if self.is_leader() {
            Ok(())
        } else {
            Err(ResponseError::NotLeaderOrFollower)
        }
    }

    /// `(isr size, min.insync.replicas)` when the ISR is smaller than the topic requires of an
    /// acks=all write.
    pub fn isr_shortfall(&self) -> Option<(i32, i32)> {
        let min = self.config.read().min_insync_replicas;
        let isr = self.state.read().isr.len() as i32;
        (isr < min).then_some((isr, min))
    }

    /// How far an acks=all write ending before `end` (exclusive), appended in `leader_epoch`,
    /// has got: what a producer and a coordinator wait on.
    pub fn replication(&self, end: i64, leader_epoch: i32) -> Replication {
        // Leadership first: a deposed leader may have truncated the write away and later see
        // its high watermark pass the offsets that now hold other records.
        if !self.is_leader() || self.leader_epoch() != leader_epoch {
            return Replication::LeadershipLost;
        }
        if self.high_watermark() < end {
            return Replication::Pending;
        }
        match self.isr_shortfall() {
            Some((isr, min)) => Replication::TooFewInSync { isr, min },
            None => Replication::Committed,
        }
    }

    /// [`Partition::replication`] waited for off the async workers: returns once the write is
    /// no longer pending, or pending after `timeout`.
    pub fn wait_replication_blocking(
        &self,
        end: i64,
        leader_epoch: i32,
        timeout: std::time::Duration,
    ) -> Replication {
        let deadline = std::time::Instant::now() + timeout;
        crate::internode::blocking(|| loop {
            let r = self.replication(end, leader_epoch);
            if r != Replication::Pending || std::time::Instant::now() >= deadline {
                return r;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        })
    }

    /// The high watermark: the offset below which records are committed (in the ISR).
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// A receiver of high watermark changes.
    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.hw_changed.subscribe()
    }

    fn set_high_watermark(&self, hw: i64) {
        self.high_watermark.store(hw, Ordering::Release);
        self.hw_changed.send_replace(hw);
        self.wake_readers();
    }

    /// Applies a new state from the metadata image. Returns true when this node has just become
    /// the leader (a new leader epoch that names it): the epoch is recorded at the log end and
    /// follower progress starts afresh, every follower given a full lag window from `now_ms`.
    pub fn apply_state(&self, next: ReplicaState, now_ms: i64) -> anyhow::Result<bool> {
        let mut state = self.state.write();
        if *state == next {
            return Ok(false);
        }
        let new_leadership = next.leader == self.node_id
            && (state.leader != next.leader || state.leader_epoch != next.leader_epoch);
        if new_leadership {
            let mut log = self.log.lock();
            let leo = log.log_end_offset();
            log.assign_epoch(next.leader_epoch, leo)?;
            let mut followers = self.followers.lock();
            followers.clear();
            for r in next.replicas.iter().filter(|r| **r != self.node_id) {
                followers.insert(
                    *r,
                    FollowerProgress {
                        log_end_offset: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch: (now_ms, leo),
                    },
                );
            }
        } else if next.leader == self.node_id && state.replicas != next.replicas {
            // A reassignment changed the replicas under this leader: new ones start with a
            // full lag window, leaving ones are forgotten.
            let leo = self.log.lock().log_end_offset();
            let mut followers = self.followers.lock();
            followers.retain(|r, _| next.replicas.contains(r));
            for r in next.replicas.iter().filter(|r| **r != self.node_id) {
                followers.entry(*r).or_insert(FollowerProgress {
                    log_end_offset: -1,
                    last_caught_up_ms: now_ms,
                    last_fetch: (now_ms, leo),
                });
            }
        }
        if state.partition_epoch != next.partition_epoch {
            self.pending_isr.lock().clear();
        }
        *state = next;
        drop(state);
        self.maybe_advance_high_watermark();
        Ok(new_leadership)
    }

    /// After a local append as leader: with no follower in the ISR the records are committed at
    /// once. Wakes waiting fetches either way.
    pub fn leader_appended(&self) {
        self.maybe_advance_high_watermark();
        self.wake_readers();
    }

    /// Returns once this leader's appends below `end` are on disk (`runnel.fsync.on.ack`,
    /// `flush.messages=1`): group commit. Only one fsync runs at a time, outside the log's lock,
    /// covering everything appended when it started; an append that arrives meanwhile waits for
    /// it, then finds itself covered or starts the next one for all who waited.
    pub async fn sync_to(&self, end: i64) -> std::io::Result<()> {
        let epoch = self.leader_epoch();
        let mut synced = self.synced.lock().await;
        if synced.0 == epoch && synced.1 >= end {
            return Ok(());
        }
        // What is known synced holds for this leader epoch only (a log cut and written again
        // under another epoch starts from the recovery point, which `unsynced_files` floors).
        let from = if synced.0 == epoch { synced.1 } else { 0 };
        let (files, target) = {
            let log = self.log.lock();
            (log.unsynced_files(from), log.log_end_offset())
        };
        let started = std::time::Instant::now();
        tokio::task::spawn_blocking(move || files.iter().try_for_each(|f| f.sync_data()))
            .await
            .map_err(std::io::Error::other)??;
        if let Some(h) = self.flush_time.get() {
            h.observe(started.elapsed().as_secs_f64() * 1e3);
        }
        *synced = (epoch, target);
        self.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Holds this partition's group commit until the guard drops: every [`Partition::sync_to`]
    /// waits meanwhile. For tests that need an answer to wait on its fsync.
    #[doc(hidden)]
    pub async fn hold_syncs(&self) -> tokio::sync::MutexGuard<'_, (i32, i64)> {
        self.synced.lock().await
    }

    /// How many group-commit fsyncs [`Partition::sync_to`] ran.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Registers a waiting fetch, to be woken (its `Notify` given a permit) the next time data
    /// becomes readable here: an append (followers read to the log end) or a high watermark
    /// move (consumers read to it). Register before reading, so that nothing appended in
    /// between goes unseen.
    pub fn register_reader(&self, waiter: &Arc<tokio::sync::Notify>) {
        let mut readers = self.readers.lock();
        if readers.len() >= 64 {
            // Fetches that ended without a wake (their max wait passed) leave dead entries.
            readers.retain(|w| w.strong_count() > 0);
        }
        readers.push(Arc::downgrade(waiter));
    }

    /// Wakes the fetches waiting for this partition.
    fn wake_readers(&self) {
        let readers = std::mem::take(&mut *self.readers.lock());
        for r in readers {
            if let Some(n) = r.upgrade() {
                n.notify_one();
            }
        }
    }

    /// The leader's high watermark rule: the lowest log end offset in the ISR (never lower than
    /// before), and only while the ISR has at least `min.insync.replicas` members (capped at the
    /// replication factor): Kafka's "strict min ISR", which lets an eligible leader replica
    /// (KIP-966, see `controller::elr`) lead without losing a committed record. Returns whether
    /// it moved.
    pub fn maybe_advance_high_watermark(&self) -> bool {
        let state = self.state.read();
        if state.leader != self.node_id {
            return false;
        }
        let min_isr = (self.config.read().min_insync_replicas.max(1) as usize)
            .min(state.replicas.len().max(1));
        if state.isr.len() < min_isr {
            return false;
        }
        let mut hw = self.log.lock().log_end_offset();
        let followers = self.followers.lock();
        let pending = self.pending_isr.lock().clone();
        let members = state
            .isr
            .iter()
            .chain(pending.iter().filter(|r| !state.isr.contains(r)));
        for r in members.filter(|r| **r != self.node_id) {
            match followers.get(r) {
                Some(f) if f.log_end_offset >= 0 => hw = hw.min(f.log_end_offset),
                // A member not heard from since this leadership began holds the mark where it is.
                _ => hw = hw.min(self.high_watermark()),
            }
        }
        drop(followers);
        drop(state);
        if hw > self.high_watermark() {
            self.set_high_watermark(hw);
            return true;
        }
        false
    }

    /// Records a follower's fetch at `fetch_offset` (it has everything below it). Returns true
    /// when the follower is outside the ISR but has caught up to the high watermark, so that the
    /// ISR may be expanded.
    pub fn record_follower_fetch(&self, replica: i32, fetch_offset: i64, now_ms: i64) -> bool {
        let leo = self.log.lock().log_end_offset();
        {
            let mut followers = self.followers.lock();
            let Some(f) = followers.get_mut(&replica) else {
                return false;
            };
            f.log_end_offset = fetch_offset;
            // Caught up now if it has our whole log; caught up at its previous fetch if it has
            // everything we had then (Kafka's rule).
            if fetch_offset >= leo {
                f.last_caught_up_ms = now_ms;
            } else if fetch_offset >= f.last_fetch.1 {
                f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch.0);
            }
            f.last_fetch = (now_ms, leo);
        }
        self.maybe_advance_high_watermark();
        let state = self.state.read();
        !state.isr.contains(&replica) && fetch_offset >= self.high_watermark()
    }

    /// ISR members (other than the leader) whose last catch-up is older than `lag_ms`.
    pub fn lagging_followers(&self, now_ms: i64, lag_ms: i64) -> Vec<i32> {
        let state = self.state.read();
        let followers = self.followers.lock();
        state
            .isr
            .iter()
            .filter(|r| **r != self.node_id)
            .filter(|r| {
                followers
                    .get(r)
                    .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_ms)
            })
            .copied()
            .collect()
    }

    /// Followers outside the ISR that have caught up to the high watermark (fenced ones too:
    /// [`Partition::isr_change`] leaves out those not eligible).
    pub fn caught_up_outside_isr(&self) -> Vec<i32> {
        let state = self.state.read();
        let hw = self.high_watermark();
        let followers = self.followers.lock();
        state
            .replicas
            .iter()
            .filter(|r| **r != self.node_id && !state.isr.contains(r))
            .filter(|r| followers.get(r).is_some_and(|f| f.log_end_offset >= hw))
            .copied()
            .collect()
    }

    /// The ISR change this leader should ask for now, if any: followers not caught up for
    /// `lag_ms` leave, followers caught up to the high watermark join (in replica order) if
    /// `eligible` (as Kafka's leader, it does not propose a fenced broker or one shutting down:
    /// the controller would refuse it, and meanwhile the maximal ISR would hold the high
    /// watermark at that broker's log end). Returns the state it was computed from, the new ISR,
    /// and the maximal ISR (current members and joining ones) to count in the high watermark
    /// until the change is applied.
    pub fn isr_change(
        &self,
        now_ms: i64,
        lag_ms: i64,
        eligible: impl Fn(i32) -> bool,
    ) -> Option<(ReplicaState, Vec<i32>, Vec<i32>)> {
        let shrink = self.lagging_followers(now_ms, lag_ms);
        let mut expand = self.caught_up_outside_isr();
        expand.retain(|r| eligible(*r));
        if shrink.is_empty() && expand.is_empty() {
            return None;
        }
        let state = self.state();
        let mut isr: Vec<i32> = state
            .isr
            .iter()
            .copied()
            .filter(|r| !shrink.contains(r))
            .chain(expand.iter().copied())
            .collect();
        isr.sort_by_key(|r| state.replicas.iter().position(|x| x == r));
        let maximal = state.isr.iter().chain(expand.iter()).copied().collect();
        Some((state, isr, maximal))
    }

    /// Before asking for an ISR change: its members count in the high watermark (with the
    /// current ISR's) until the change is applied or refused.
    pub fn isr_change_pending(&self, requested: &[i32]) {
        *self.pending_isr.lock() = requested.to_vec();
    }

    /// The ISR change was refused: only the applied ISR counts again.
    pub fn isr_change_refused(&self) {
        self.pending_isr.lock().clear();
    }

    /// What the leader knows of each follower (for tests and diagnostics).
    pub fn follower_progress(&self) -> HashMap<i32, FollowerProgress> {
        self.followers.lock().clone()
    }

    /// As a follower: takes the leader's high watermark, capped at the local log end.
    pub fn follower_update_high_watermark(&self, leader_hw: i64) {
        let hw = leader_hw.min(self.log.lock().log_end_offset());
        if hw > self.high_watermark() {
            self.set_high_watermark(hw);
        }
    }

    /// After the local log was truncated: the high watermark comes down to the new log end if it
    /// was above it.
    pub fn truncated(&self) {
        let leo = self.log.lock().log_end_offset();
        if self.high_watermark() > leo {
            self.high_watermark.store(leo, Ordering::Release);
            self.hw_changed.send_replace(leo);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_base64_is_22_chars() {
        let id = Uuid::from_bytes([0xff; 16]);
        let s = topic_id_base64(&id);
        assert_eq!(s.len(), 22);
        assert_eq!(s, "_____________________w");
        assert_eq!(topic_id_base64(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    fn leader_of(dir: &Path, min_isr: i32) -> Partition {
        let config = Arc::new(TopicConfig {
            retention_ms: -1,
            retention_bytes: -1,
            segment_bytes: 1 << 20,
            segment_ms: i64::MAX,
            max_message_bytes: 1 << 20,
            message_timestamp_type_log_append: false,
            cleanup_policy: "delete".into(),
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            index_interval_bytes: 4096,
            segment_index_bytes: 1 << 16,
            file_delete_delay_ms: 0,
            min_insync_replicas: min_isr,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 86_400_000,
        });
        let log = Log::open(dir, log_config(&config), 0, false).unwrap();
        Partition::new("t".into(), Uuid::nil(), 0, 1, log, config, 0)
    }

    fn state(isr: &[i32], partition_epoch: i32) -> ReplicaState {
        ReplicaState {
            leader: 1,
            leader_epoch: 0,
            partition_epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
        }
    }

    fn append(p: &Partition) -> i64 {
        let mut batch =
            runnel_storage::testing::build_batch(0, &[(None, Some(&b"v"[..]), 0)], -1, -1, -1);
        let mut log = p.log.lock();
        log.append_as_leader(&mut batch, 0, 0, false).unwrap();
        log.log_end_offset()
    }

    #[test]
    fn the_high_watermark_stays_while_the_isr_is_below_min_isr() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_of(dir.path(), 2);
        p.apply_state(state(&[1, 2], 1), 0).unwrap();
        let end = append(&p);
        p.leader_appended();
        assert_eq!(p.high_watermark(), 0, "follower 2 has nothing yet");
        p.record_follower_fetch(2, end, 0);
        assert_eq!(p.high_watermark(), end);
        // 2 leaves the ISR: below min ISR, a record the leader alone has is not committed.
        p.apply_state(state(&[1], 2), 0).unwrap();
        let later = append(&p);
        p.leader_appended();
        assert_eq!(p.high_watermark(), end);
        assert_eq!(p.replication(later, 0), Replication::Pending);
        // Back at min ISR with a follower that has it: the mark moves.
        p.apply_state(state(&[1, 3], 3), 0).unwrap();
        p.record_follower_fetch(3, later, 0);
        assert_eq!(p.high_watermark(), later);
        // min.insync.replicas above the replication factor counts as the replication factor.
        let dir = tempfile::tempdir().unwrap();
        let solo = leader_of(dir.path(), 3);
        solo.apply_state(
            ReplicaState {
                replicas: vec![1],
                isr: vec![1],
                ..state(&[1], 1)
            },
            0,
        )
        .unwrap();
        let end = append(&solo);
        solo.leader_appended();
        assert_eq!(solo.high_watermark(), end);
    }

    #[tokio::test]
    async fn one_fsync_covers_every_append_made_before_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let p = leader_of(dir.path(), 1);
        p.apply_state(state(&[1], 1), 0).unwrap();
        let first = append(&p);
        let second = append(&p);
        let third = append(&p);
        p.sync_to(first).await.unwrap();
        assert_eq!(p.sync_count(), 1);
        // The appends made before that fsync started are covered by it: no other fsync.
        p.sync_to(second).await.unwrap();
        p.sync_to(third).await.unwrap();
        assert_eq!(p.sync_count(), 1);
        let fourth = append(&p);
        p.sync_to(fourth).await.unwrap();
        assert_eq!(p.sync_count(), 2);
        // Under a new leader epoch nothing is taken as synced.
        p.apply_state(
            ReplicaState {
                leader_epoch: 1,
                ..state(&[1], 2)
            },
            0,
        )
        .unwrap();
        p.sync_to(fourth).await.unwrap();
        assert_eq!(p.sync_count(), 3);
        // Many at once: each returns once its append is on disk, and they share fsyncs.
        let p = Arc::new(p);
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let p = p.clone();
                let end = append(&p);
                tokio::spawn(async move { p.sync_to(end).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert!(p.sync_count() <= 3 + 16, "{}", p.sync_count());
        assert!(
            p.sync_count() < 3 + 16,
            "appends made before one fsync share it"
        );
    }
}
