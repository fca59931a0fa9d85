//! The log cleaner service: the `log.cleaner.threads` OS threads that compact the logs of
//! topics whose `cleanup.policy` includes `compact`, leaders' and followers' alike (every
//! replica cleans its own log, as on Kafka), with the cleaner's progress kept per log dir in
//! `cleaner-offset-checkpoint`. The cleaning itself is `runnel_storage::cleaner`'s: here only
//! which log to clean, when, and under which lock.
//!
//! Every round a thread computes, under each compacted log's lock, its cleanable range (dirty
//! from the checkpoint, up to the smaller of the last stable offset and the high watermark),
//! picks the dirtiest log whose dirty ratio reaches `min.cleanable.dirty.ratio` or whose oldest
//! dirty segment is past `max.compaction.lag.ms`, plans under the lock, cleans without it (with
//! its own key map sized for the dirty range's offsets, at most `log.cleaner.dedupe.buffer.size
//! / threads` bytes, freed after the cleaning), and swaps the result in under the lock again, unless the partition was removed
//! or is being moved to another log dir meanwhile. With nothing to clean it sleeps
//! `log.cleaner.backoff.ms`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use runnel_storage::cleaner::{
    cleanable_range, max_compaction_delay_ms, plan, read_cleaner_checkpoint,
    write_cleaner_checkpoint, CleanOptions, CleanableRange, OffsetMap, DEFAULT_LOAD_FACTOR,
};
use tracing::{debug, info, warn};

use crate::broker::{now_ms, Broker, TopicPartition};
use crate::partition::Partition;

/// First dirty offsets of one log dir's partitions.
type Checkpoint = HashMap<(String, i32), i64>;

/// What the cleaner threads share.
#[derive(Default)]
struct Shared {
    stopped: Mutex<bool>,
    wakeup: Condvar,
    /// Partitions a thread is cleaning (one cleaning of a log at a time).
    in_progress: Mutex<HashSet<TopicPartition>>,
    /// Partitions whose cleaning failed in a way that needs the log reopened: left alone until
    /// the broker restarts (Kafka's uncleanable partitions).
    failed: Mutex<HashSet<TopicPartition>>,
    /// The checkpoint of each log dir, read at its first use.
    checkpoints: Mutex<HashMap<PathBuf, Checkpoint>>,
}

/// The log cleaner: its threads, started once the broker runs, stopped at shutdown.
#[derive(Default)]
pub struct LogCleaner {
    shared: Arc<Shared>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl LogCleaner {
    /// Starts the cleaner threads (none when `log.cleaner.enable` is false).
    pub fn start(&self, broker: &Arc<Broker>) {
        let config = &broker.config;
        if !config.log_cleaner_enable {
            return;
        }
        let threads = config.log_cleaner_threads.max(1) as usize;
        let map_bytes = (config.log_cleaner_dedupe_buffer_size.max(0) as usize / threads).max(1);
        let backoff = Duration::from_millis(config.log_cleaner_backoff_ms.max(0) as u64);
        let mut handles = self.threads.lock();
        for i in 0..threads {
            let (owner, shared) = (Arc::downgrade(broker), self.shared.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("log-cleaner-{i}"))
                .spawn(move || run(owner, shared, map_bytes, backoff));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => warn!(error = %e, "could not start a log cleaner thread"),
            }
        }
    }

    /// Stops the threads and waits for them (a cleaning under way finishes or is abandoned
    /// first; its cleaned files go unless swapped in).
    pub fn stop(&self) {
        *self.shared.stopped.lock() = true;
        self.shared.wakeup.notify_all();
        for h in self.threads.lock().drain(..) {
            let _ = h.join();
        }
    }
}

/// One cleaner thread: cleans the dirtiest log, again at once if it made progress, else after
/// the backoff; ends when stopped or once the broker is gone.
fn run(owner: Weak<Broker>, shared: Arc<Shared>, map_bytes: usize, backoff: Duration) {
    loop {
        if *shared.stopped.lock() {
            return;
        }
        let progressed = match owner.upgrade() {
            Some(broker) => clean_dirtiest(&broker, &shared, map_bytes),
            None => return,
        };
        if !progressed {
            let mut stopped = shared.stopped.lock();
            if !*stopped {
                shared.wakeup.wait_for(&mut stopped, backoff);
            }
        }
    }
}

/// A log worth cleaning now.
struct Candidate {
    partition: Arc<Partition>,
    ratio: f64,
    overdue: bool,
}

/// The checkpointed first dirty offset of `tp` in `log_dir`.
fn checkpointed(shared: &Shared, log_dir: &std::path::Path, tp: &TopicPartition) -> Option<i64> {
    let mut all = shared.checkpoints.lock();
    let entries = all.entry(log_dir.to_path_buf()).or_insert_with(|| {
        read_cleaner_checkpoint(log_dir).unwrap_or_else(|e| {
            warn!(dir = %log_dir.display(), error = %e, "unreadable cleaner checkpoint: cleaning from the log starts");
            HashMap::new()
        })
    });
    entries.get(tp).copied()
}

/// Records `offset` as the first dirty offset of `tp` in `log_dir` and writes that dir's
/// checkpoint, leaving out partitions no longer hosted.
fn checkpoint(
    broker: &Broker,
    shared: &Shared,
    log_dir: &std::path::Path,
    tp: &TopicPartition,
    offset: i64,
) {
    let mut all = shared.checkpoints.lock();
    let entries = all.entry(log_dir.to_path_buf()).or_default();
    entries.insert(tp.clone(), offset);
    entries.retain(|(t, i), _| broker.replicas.partition(t, *i).is_some());
    if let Err(e) = write_cleaner_checkpoint(log_dir, entries) {
        warn!(dir = %log_dir.display(), error = %e, "writing the cleaner checkpoint failed");
    }
}

/// The log dir holding `log` (its directory's parent).
fn log_dir_of(broker: &Broker, log: &runnel_storage::log::Log) -> Option<PathBuf> {
    let dirs = &broker.replicas.dirs;
    let i = dirs.index_of_partition_dir(log.dir())?;
    Some(dirs.dirs()[i].path.clone())
}

/// Whether `p` may be cleaned now: still hosted (the same replica), not being moved between
/// log dirs, not being cleaned by another thread, not failed before.
fn cleanable_now(broker: &Broker, shared: &Shared, p: &Arc<Partition>) -> bool {
    let tp = (p.topic.clone(), p.index);
    broker
        .replicas
        .partition(&p.topic, p.index)
        .is_some_and(|x| Arc::ptr_eq(&x, p))
        && broker.replicas.dirs.running_move(&tp).is_none()
        && !shared.in_progress.lock().contains(&tp)
        && !shared.failed.lock().contains(&tp)
}

/// The range to clean of `p`'s log now, with the log locked by the caller.
fn range_of(
    broker: &Broker,
    shared: &Shared,
    p: &Partition,
    log: &runnel_storage::log::Log,
    now: i64,
) -> Option<(PathBuf, CleanableRange)> {
    let log_dir = log_dir_of(broker, log)?;
    let tp = (p.topic.clone(), p.index);
    let config = p.config.read().clone();
    let stable = log.last_stable_offset().min(p.high_watermark());
    let range = cleanable_range(
        log,
        checkpointed(shared, &log_dir, &tp),
        stable,
        config.min_compaction_lag_ms,
        now,
    );
    Some((log_dir, range))
}

/// Picks the dirtiest compacted log worth cleaning and cleans it; whether it made progress.
fn clean_dirtiest(broker: &Broker, shared: &Shared, map_bytes: usize) -> bool {
    let now = now_ms();
    let mut candidates = Vec::new();
    for p in broker.replicas.all_partitions() {
        let config = p.config.read().clone();
        if !config.compact() || !cleanable_now(broker, shared, &p) {
            continue;
        }
        let log = p.log.lock();
        let Some((log_dir, range)) = range_of(broker, shared, &p, &log, now) else {
            continue;
        };
        if range.reset_checkpoint {
            let tp = (p.topic.clone(), p.index);
            checkpoint(broker, shared, &log_dir, &tp, range.first_dirty_offset);
        }
        if range.cleanable_bytes == 0 {
            continue;
        }
        let overdue = max_compaction_delay_ms(
            &log,
            range.first_dirty_offset,
            config.max_compaction_lag_ms,
            now,
        ) > 0;
        let ratio = range.dirty_ratio();
        if overdue || ratio >= config.min_cleanable_dirty_ratio {
            drop(log);
            candidates.push(Candidate {
                partition: p,
                ratio,
                overdue,
            });
        }
    }
    // Overdue logs first, then the dirtiest (Kafka's order).
    let Some(chosen) = candidates.into_iter().max_by(|a, b| {
        (a.overdue, a.ratio)
            .partial_cmp(&(b.overdue, b.ratio))
            .expect("ratios are numbers")
    }) else {
        return false;
    };
    let p = chosen.partition;
    let tp = (p.topic.clone(), p.index);
    if !shared.in_progress.lock().insert(tp.clone()) {
        return false;
    }
    let progressed = clean_one(broker, shared, &p, map_bytes);
    shared.in_progress.lock().remove(&tp);
    progressed
}

/// Cleans one log: plan under its lock, clean without it, swap in under it again.
fn clean_one(broker: &Broker, shared: &Shared, p: &Arc<Partition>, map_bytes: usize) -> bool {
    let tp = (p.topic.clone(), p.index);
    let config = p.config.read().clone();
    let now = now_ms();
    let (log_dir, log_path, range, planned) = {
        let log = p.log.lock();
        if !cleanable_now_locked(broker, p) {
            return false;
        }
        let Some((log_dir, range)) = range_of(broker, shared, p, &log, now) else {
            return false;
        };
        if range.cleanable_bytes == 0 {
            return false;
        }
        let options = CleanOptions {
            delete_retention_ms: config.delete_retention_ms,
            now_ms: now,
        };
        let planned = plan(&log, &range, options);
        (log_dir, log.dir().to_path_buf(), range, planned)
    };
    // Sized for the dirty range (its offsets bound its keys), at most the thread's share of
    // the dedupe buffer; freed once the cleaning is done.
    let span = (range.first_uncleanable_offset - range.first_dirty_offset).max(0) as u64;
    let mut map = OffsetMap::sized_for(span, map_bytes, DEFAULT_LOAD_FACTOR);
    let started = std::time::Instant::now();
    let cleaned = match planned.execute(&mut map) {
        Ok(c) => c,
        Err(e) => {
            warn!(topic = %p.topic, partition = p.index, error = %e, "cleaning the log failed");
            return false;
        }
    };
    let stats = {
        let mut log = p.log.lock();
        // Removed, or moved to another log dir meanwhile: the cleaned files go.
        if !cleanable_now_locked(broker, p) || log.dir() != log_path {
            debug!(topic = %p.topic, partition = p.index, "the log was moved or removed during its cleaning");
            return false;
        }
        match cleaned.commit(&mut log) {
            Ok(stats) => stats,
            Err(e) => {
                tracing::error!(topic = %p.topic, partition = p.index, error = %e, "swapping in a cleaned log failed: it is not cleaned again until the broker restarts");
                shared.failed.lock().insert(tp);
                return false;
            }
        }
    };
    checkpoint(broker, shared, &log_dir, &tp, stats.end_offset);
    info!(
        topic = %p.topic,
        partition = p.index,
        from = range.first_dirty_offset,
        to = stats.end_offset,
        read_bytes = stats.bytes_read,
        written_bytes = stats.bytes_written,
        records_read = stats.records_read,
        records_kept = stats.records_retained,
        ms = started.elapsed().as_millis() as u64,
        "cleaned a log"
    );
    stats.end_offset > range.first_dirty_offset
}

/// Whether `p` is still the hosted replica and not being moved (checked with its log locked).
fn cleanable_now_locked(broker: &Broker, p: &Arc<Partition>) -> bool {
    broker
        .replicas
        .partition(&p.topic, p.index)
        .is_some_and(|x| Arc::ptr_eq(&x, p))
        && broker
            .replicas
            .dirs
            .running_move(&(p.topic.clone(), p.index))
            .is_none()
}
