//! The broker's log dirs (`log.dirs`, several as in Kafka's JBOD): what each held at start-up
//! (partition directories found, checkpoints, the clean-shutdown marker), where a partition
//! lives and where a new one goes (the dir holding the fewest partitions, Kafka's rule, unless
//! AlterReplicaLogDirs asked for one first), the per-dir checkpoint files, and the moves of
//! replicas between dirs that AlterReplicaLogDirs starts ([`Move`], copied by
//! `runnel_storage::relocate`). Kafka's offline-dir handling is not here: a dir that cannot be
//! read at start-up stops the broker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::Mutex;
use runnel_storage::checkpoint::read_offset_checkpoint;
use runnel_storage::relocate::{DELETE_DIR_SUFFIX, FUTURE_DIR_SUFFIX};
use tracing::{info, warn};

use kafka_protocol::ResponseError;
use runnel_storage::relocate::LogCopy;

use super::{throttle, ReplicaManager};
use crate::broker::{Broker, TopicPartition};
use crate::partition::Partition;

/// One of the broker's log dirs.
#[derive(Debug, Clone)]
pub struct LogDir {
    /// Its absolute path (what DescribeLogDirs reports and AlterReplicaLogDirs names).
    pub path: PathBuf,
    /// Whether the last shutdown left its clean-shutdown marker.
    pub clean_start: bool,
}

/// A move of a replica to another log dir, while it runs.
#[derive(Debug)]
pub struct Move {
    /// Distinguishes this move from a later one of the same partition.
    pub id: uuid::Uuid,
    /// Index (in `log.dirs`) of the dir the replica moves to.
    pub target: usize,
    /// Set to stop the move (another target asked for, the partition removed, shutdown).
    pub cancel: Arc<AtomicBool>,
    /// Bytes in the future directory.
    pub future_bytes: AtomicU64,
    /// The log end offset the copy has caught up with (Kafka's future log end offset).
    pub future_end_offset: AtomicI64,
}

/// What DescribeLogDirs reports of a running move: the future replica.
#[derive(Debug, Clone)]
pub struct FutureReplica {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// Index of the target dir.
    pub target: usize,
    /// Bytes copied so far.
    pub size_bytes: u64,
    /// The log end offset the copy has caught up with.
    pub end_offset: i64,
}

/// Parses a partition directory's name: `<topic>-<partition>`.
pub fn parse_partition_dir(name: &str) -> Option<TopicPartition> {
    let (topic, p) = name.rsplit_once('-')?;
    let p = p.parse::<i32>().ok().filter(|p| *p >= 0)?;
    (!topic.is_empty()).then(|| (topic.to_string(), p))
}

/// The dir a new partition goes to: the one holding the fewest partitions (Kafka's
/// `LogManager.nextLogDirs`), the first of `log.dirs` among equals.
pub fn least_loaded(counts: &[usize]) -> usize {
    counts
        .iter()
        .enumerate()
        .min_by_key(|(i, c)| (**c, *i))
        .map_or(0, |(i, _)| i)
}

/// The log dirs and what they held at start-up.
pub struct LogDirs {
    dirs: Vec<LogDir>,
    /// Partition directories found at start-up and not opened yet: the dirs holding each.
    found: Mutex<HashMap<TopicPartition, Vec<usize>>>,
    /// Checkpointed recovery points, per (dir, partition), used once when a partition opens.
    recovery_points: Mutex<HashMap<(usize, TopicPartition), i64>>,
    /// Checkpointed high watermarks, per (dir, partition), used once when a partition opens.
    high_watermarks: Mutex<HashMap<(usize, TopicPartition), i64>>,
    /// Dirs AlterReplicaLogDirs asked for partitions not hosted yet (Kafka's preferred dirs).
    preferred: Mutex<HashMap<TopicPartition, usize>>,
    /// Moves running, by partition.
    moves: Mutex<HashMap<TopicPartition, Arc<Move>>>,
    /// The dir of each partition opened (entries of partitions removed since are ignored).
    located: Mutex<HashMap<TopicPartition, usize>>,
}

impl LogDirs {
    /// Reads what `dirs` hold: partition directories, the recovery-point and high-watermark
    /// checkpoints of each. Removes the copies of unfinished moves (`-future`) and starts
    /// deleting directories left for deletion (`-delete`). A dir that cannot be read is an
    /// error naming it: the broker does not start without it.
    pub fn open(
        dirs: Vec<LogDir>,
        recovery: &str,
        high_watermark: &str,
    ) -> anyhow::Result<LogDirs> {
        let mut found: HashMap<TopicPartition, Vec<usize>> = HashMap::new();
        let mut recovery_points = HashMap::new();
        let mut high_watermarks = HashMap::new();
        for (i, dir) in dirs.iter().enumerate() {
            let entries = std::fs::read_dir(&dir.path).with_context(|| {
                format!(
                    "log dir {} cannot be read (Runnel does not start with an offline log dir)",
                    dir.path.display()
                )
            })?;
            for entry in entries {
                let entry =
                    entry.with_context(|| format!("reading log dir {}", dir.path.display()))?;
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(runnel_metadata::log::METADATA_LOG_DIR) {
                    continue;
                }
                if name.ends_with(FUTURE_DIR_SUFFIX) {
                    // A move that did not finish: the old directory is still the partition's.
                    info!(dir = %entry.path().display(), "removing the copy of an unfinished move between log dirs");
                    std::fs::remove_dir_all(entry.path())
                        .with_context(|| format!("removing {}", entry.path().display()))?;
                    continue;
                }
                if name.ends_with(DELETE_DIR_SUFFIX) {
                    let path = entry.path();
                    std::thread::spawn(move || {
                        let _ = runnel_storage::log::delete_log_dir(&path);
                    });
                    continue;
                }
                if let Some(tp) = parse_partition_dir(&name) {
                    found.entry(tp).or_default().push(i);
                }
            }
            let read = |name: &str| -> HashMap<(usize, TopicPartition), i64> {
                read_offset_checkpoint(&dir.path.join(name))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(t, p, o)| ((i, (t, p)), o))
                    .collect()
            };
            recovery_points.extend(read(recovery));
            high_watermarks.extend(read(high_watermark));
        }
        Ok(LogDirs {
            dirs,
            found: Mutex::new(found),
            recovery_points: Mutex::new(recovery_points),
            high_watermarks: Mutex::new(high_watermarks),
            preferred: Mutex::new(HashMap::new()),
            moves: Mutex::new(HashMap::new()),
            located: Mutex::new(HashMap::new()),
        })
    }

    /// Records that partition `tp` lives in dir `i` now.
    pub fn set_location(&self, tp: &TopicPartition, i: usize) {
        self.located.lock().insert(tp.clone(), i);
    }

    /// The dir partition `tp` was last opened in or moved to.
    pub fn location(&self, tp: &TopicPartition) -> Option<usize> {
        self.located.lock().get(tp).copied()
    }

    /// Partitions per dir, counting those `hosted` says are, and the targets of running moves
    /// (as Kafka counts future logs).
    pub fn partitions_per_dir(&self, hosted: impl Fn(&TopicPartition) -> bool) -> Vec<usize> {
        let mut counts = vec![0; self.dirs.len()];
        let mut located = self.located.lock();
        located.retain(|tp, _| hosted(tp));
        for i in located.values() {
            counts[*i] += 1;
        }
        for m in self.moves.lock().values() {
            counts[m.target] += 1;
        }
        counts
    }

    /// The dirs, in `log.dirs` order.
    pub fn dirs(&self) -> &[LogDir] {
        &self.dirs
    }

    /// The index of the dir whose absolute path is `path`.
    pub fn index_of(&self, path: &Path) -> Option<usize> {
        self.dirs.iter().position(|d| d.path == path)
    }

    /// The dir holding a partition directory (its parent).
    pub fn index_of_partition_dir(&self, partition_dir: &Path) -> Option<usize> {
        partition_dir.parent().and_then(|p| self.index_of(p))
    }

    /// Where partition `tp` of topic `topic_id` opens: the dir already holding it (found at
    /// start-up; a directory of an older topic of the same name is removed, a duplicate left
    /// by a move interrupted between its two renames is set aside for deletion), else the one
    /// AlterReplicaLogDirs asked for, else the least loaded (`counts`: partitions per dir).
    pub fn place(
        &self,
        tp: &TopicPartition,
        topic_id: &uuid::Uuid,
        counts: impl FnOnce() -> Vec<usize>,
    ) -> usize {
        let candidates = self.found.lock().remove(tp).unwrap_or_default();
        let want = crate::partition::partition_metadata_text(topic_id);
        let dir_in = |i: usize| crate::partition::partition_dir(&self.dirs[i].path, &tp.0, tp.1);
        let (current, older): (Vec<usize>, Vec<usize>) = candidates.into_iter().partition(|i| {
            std::fs::read_to_string(dir_in(*i).join("partition.metadata"))
                .map_or(true, |text| text == want)
        });
        // Directories of an older topic of the same name go, unless nothing else is there
        // (open_partition then replaces the one kept).
        let keep = current.first().or(older.first()).copied();
        for &i in older.iter().filter(|i| Some(**i) != keep) {
            warn!(dir = %dir_in(i).display(), "log dir belongs to an older topic of the same name: removing it");
            let _ = std::fs::remove_dir_all(dir_in(i));
        }
        for &i in current.iter().skip(1) {
            let dir = dir_in(i);
            warn!(dir = %dir.display(), kept = %dir_in(current[0]).display(), "a partition found in two log dirs (a move interrupted at its switch): keeping one copy");
            let aside = dir.with_file_name(format!(
                "{}-{}.{}{DELETE_DIR_SUFFIX}",
                tp.0,
                tp.1,
                uuid::Uuid::new_v4().simple()
            ));
            if std::fs::rename(&dir, &aside).is_ok() {
                std::thread::spawn(move || {
                    let _ = runnel_storage::log::delete_log_dir(&aside);
                });
            }
        }
        if let Some(k) = keep {
            return k;
        }
        if let Some(p) = self.preferred.lock().remove(tp) {
            return p;
        }
        if self.dirs.len() == 1 {
            return 0;
        }
        // Counting walks every hosted partition: only for a new partition with a choice to make.
        least_loaded(&counts())
    }

    /// The checkpointed recovery point of `tp` in dir `i` (once).
    pub fn take_recovery_point(&self, i: usize, tp: &TopicPartition) -> Option<i64> {
        self.recovery_points.lock().remove(&(i, tp.clone()))
    }

    /// The checkpointed high watermark of `tp` in dir `i` (once).
    pub fn take_high_watermark(&self, i: usize, tp: &TopicPartition) -> Option<i64> {
        self.high_watermarks.lock().remove(&(i, tp.clone()))
    }

    /// Remembers the dir asked for a partition not hosted yet.
    pub fn prefer(&self, tp: TopicPartition, dir: usize) {
        self.preferred.lock().insert(tp, dir);
    }

    /// The running move of `tp`, if any.
    pub fn running_move(&self, tp: &TopicPartition) -> Option<Arc<Move>> {
        self.moves.lock().get(tp).cloned()
    }

    /// Registers a new move of `tp` to dir `target`, cancelling one running to another dir.
    pub fn begin_move(&self, tp: &TopicPartition, target: usize, start_offset: i64) -> Arc<Move> {
        let m = Arc::new(Move {
            id: uuid::Uuid::new_v4(),
            target,
            cancel: Arc::new(AtomicBool::new(false)),
            future_bytes: AtomicU64::new(0),
            future_end_offset: AtomicI64::new(start_offset),
        });
        if let Some(old) = self.moves.lock().insert(tp.clone(), m.clone()) {
            old.cancel.store(true, Ordering::Relaxed);
        }
        m
    }

    /// Cancels the running move of `tp`, if any.
    pub fn cancel_move(&self, tp: &TopicPartition) {
        if let Some(old) = self.moves.lock().remove(tp) {
            old.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets a finished (or failed) move, unless a newer one replaced it.
    pub fn end_move(&self, tp: &TopicPartition, id: uuid::Uuid) {
        let mut moves = self.moves.lock();
        if moves.get(tp).is_some_and(|m| m.id == id) {
            moves.remove(tp);
        }
    }

    /// Cancels every move (shutdown).
    pub fn cancel_all_moves(&self) {
        for (_, m) in self.moves.lock().drain() {
            m.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The future replicas of the moves running.
    pub fn future_replicas(&self) -> Vec<FutureReplica> {
        self.moves
            .lock()
            .iter()
            .map(|((topic, index), m)| FutureReplica {
                topic: topic.clone(),
                index: *index,
                target: m.target,
                size_bytes: m.future_bytes.load(Ordering::Relaxed),
                end_offset: m.future_end_offset.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// A throttle of the copy's bytes per second (`replica.alter.log.dirs.io.max.bytes.per.second`,
/// read again as it goes): sleeps, in short slices, to keep the average at the rate.
pub struct Pacer {
    started: std::time::Instant,
    sent: u64,
    rate: Option<u64>,
}

impl Pacer {
    /// A pacer with no rate yet.
    pub fn new() -> Pacer {
        Pacer {
            started: std::time::Instant::now(),
            sent: 0,
            rate: None,
        }
    }

    /// Accounts `bytes` at `rate` (None: unlimited) and sleeps while ahead of it; returns false
    /// at once when `cancelled` turns true.
    pub fn pace(&mut self, bytes: u64, rate: Option<u64>, cancelled: &AtomicBool) -> bool {
        if rate != self.rate {
            // A new rate starts a new window.
            self.rate = rate;
            self.started = std::time::Instant::now();
            self.sent = 0;
        }
        self.sent += bytes;
        if let Some(r) = rate.filter(|r| *r > 0) {
            let due = std::time::Duration::from_secs_f64(self.sent as f64 / r as f64);
            while self.started.elapsed() < due {
                if cancelled.load(Ordering::Relaxed) {
                    return false;
                }
                let left = due - self.started.elapsed().min(due);
                std::thread::sleep(left.min(std::time::Duration::from_millis(100)));
            }
        }
        !cancelled.load(Ordering::Relaxed)
    }
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// The dynamic broker config throttling moves between log dirs.
pub const MOVE_RATE: &str = "replica.alter.log.dirs.io.max.bytes.per.second";
/// Copy passes without the log's lock before the move finishes with it held.
const MAX_UNLOCKED_PASSES: usize = 20;
/// A pass copying less than this is close enough: the next copy is done with the log locked.
const CAUGHT_UP_BYTES: u64 = 1 << 20;

impl ReplicaManager {
    /// This broker's log dirs, in `log.dirs` order.
    pub fn log_dirs(&self) -> &[LogDir] {
        self.dirs.dirs()
    }

    /// The index of the log dir holding a hosted partition.
    pub fn log_dir_of(&self, p: &Partition) -> Option<usize> {
        self.dirs.location(&(p.topic.clone(), p.index))
    }

    /// Hosted partitions per log dir (moves count in their target), for placement.
    pub(super) fn partitions_per_dir(&self) -> Vec<usize> {
        let hosted = self.partitions.read();
        self.dirs.partitions_per_dir(|tp| hosted.contains_key(tp))
    }

    /// The replicas being moved between log dirs (Kafka's future replicas).
    pub fn future_replicas(&self) -> Vec<FutureReplica> {
        self.dirs.future_replicas()
    }

    /// AlterReplicaLogDirs for one partition: moves its replica to the log dir `dest` (an
    /// absolute path, one of `log.dirs`) in the background, while it keeps serving. Asking for
    /// the dir it is in stops a move elsewhere; asking for another target replaces the running
    /// move. Errors as Kafka's: LOG_DIR_NOT_FOUND (not one of `log.dirs`), KAFKA_STORAGE_ERROR
    /// (the dir cannot be used), INVALID_TOPIC_EXCEPTION (a name too long for the future dir),
    /// REPLICA_NOT_AVAILABLE (not hosted here: the dir is remembered for when it is).
    pub fn alter_log_dir(&self, topic: &str, index: i32, dest: &str) -> Result<(), ResponseError> {
        let Some(target) = self.dirs.index_of(Path::new(dest)) else {
            return Err(ResponseError::LogDirNotFound);
        };
        if !std::fs::metadata(&self.dirs.dirs()[target].path).is_ok_and(|m| m.is_dir()) {
            return Err(ResponseError::KafkaStorageError);
        }
        // Kafka's limit (KAFKA-4893): the future directory's name must fit the file system.
        if format!(
            "{topic}-{index}.{}{FUTURE_DIR_SUFFIX}",
            uuid::Uuid::nil().simple()
        )
        .len()
            > 255
        {
            return Err(ResponseError::InvalidTopicException);
        }
        let tp = (topic.to_string(), index);
        let Some(p) = self.partition(topic, index) else {
            self.dirs.prefer(tp, target);
            return Err(ResponseError::ReplicaNotAvailable);
        };
        if let Some(m) = self.dirs.running_move(&tp) {
            if m.target == target {
                return Ok(());
            }
            self.dirs.cancel_move(&tp);
        }
        if self.dirs.location(&tp) == Some(target) {
            return Ok(());
        }
        let owner = self.owner.lock().clone();
        if owner.strong_count() == 0 {
            return Err(ResponseError::KafkaStorageError);
        }
        let start = p.log.lock().log_start_offset();
        let m = self.dirs.begin_move(&tp, target, start);
        let id = m.id;
        info!(
            topic,
            partition = index,
            to = dest,
            "moving the replica to another log dir"
        );
        let spawned = std::thread::Builder::new()
            .name("runnel-log-dir-move".into())
            .spawn(move || run_move(owner, p, m));
        if spawned.is_err() {
            self.dirs.end_move(&tp, id);
            return Err(ResponseError::KafkaStorageError);
        }
        Ok(())
    }
}

/// A move's thread: copies, switches, deletes the old directory, checkpoints.
fn run_move(owner: std::sync::Weak<Broker>, p: Arc<Partition>, m: Arc<Move>) {
    let tp = (p.topic.clone(), p.index);
    let result = move_replica(&owner, &p, &m);
    let Some(broker) = owner.upgrade() else {
        return;
    };
    broker.replicas.dirs.end_move(&tp, m.id);
    match result {
        Ok(Some(retired)) => {
            if let Err(e) = broker.replicas.write_checkpoints() {
                warn!(error = %e, "writing checkpoints after a move failed");
            }
            if let Err(e) = runnel_storage::log::delete_log_dir(&retired) {
                warn!(dir = %retired.display(), error = %e, "could not delete a moved replica's old dir");
            }
        }
        Ok(None) => info!(topic = %p.topic, partition = p.index, "move between log dirs stopped"),
        Err(e) => {
            warn!(topic = %p.topic, partition = p.index, error = %format!("{e:#}"), "moving the replica between log dirs failed; it stays where it was")
        }
    }
}

/// Copies the replica into its target dir and switches its log there. Returns the old
/// directory (renamed, to delete), or None when the move was stopped (the copy is removed).
fn move_replica(
    owner: &std::sync::Weak<Broker>,
    p: &Arc<Partition>,
    m: &Move,
) -> anyhow::Result<Option<PathBuf>> {
    let broker = owner.upgrade().context("the broker stopped")?;
    let rm = &broker.replicas;
    let target_root = rm.dirs.dirs()[m.target].path.clone();
    let id = m.id.simple();
    let future = target_root.join(format!("{}-{}.{id}{FUTURE_DIR_SUFFIX}", p.topic, p.index));
    let mut copy = {
        let log = p.log.lock();
        LogCopy::start(&log, &future).with_context(|| format!("creating {}", future.display()))?
    };
    let still_wanted = || {
        !m.cancel.load(Ordering::Relaxed)
            && !broker.is_shutting_down()
            && rm
                .partition(&p.topic, p.index)
                .is_some_and(|x| Arc::ptr_eq(&x, p))
    };
    let rate = || {
        throttle::dynamic_value(&broker.image(), broker.config.node_id, MOVE_RATE)
            .and_then(|(v, _)| v.trim().parse::<i64>().ok())
            .filter(|r| (0..i64::MAX).contains(r))
            .map(|r| r as u64)
    };
    let mut pacer = Pacer::new();
    for _ in 0..MAX_UNLOCKED_PASSES {
        if !still_wanted() {
            let _ = std::fs::remove_dir_all(&future);
            return Ok(None);
        }
        let (rewrites, end) = {
            let log = p.log.lock();
            (log.rewrites(), log.log_end_offset())
        };
        let copied = copy.copy_pass(rewrites, &mut |n| pacer.pace(n, rate(), &m.cancel));
        let copied = match copied {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&future);
                if e.kind() == std::io::ErrorKind::Interrupted || !still_wanted() {
                    return Ok(None);
                }
                return Err(e).context("copying the log");
            }
        };
        m.future_bytes.store(copy.future_size(), Ordering::Relaxed);
        m.future_end_offset.store(end, Ordering::Relaxed);
        if copied < CAUGHT_UP_BYTES {
            break;
        }
    }
    // The switch, with the log locked: appends and reads wait for the last copy.
    let mut log = p.log.lock();
    if !still_wanted() {
        drop(log);
        let _ = std::fs::remove_dir_all(&future);
        return Ok(None);
    }
    let src = log.dir().to_path_buf();
    let final_dir = crate::partition::partition_dir(&target_root, &p.topic, p.index);
    let retired = src.with_file_name(format!("{}-{}.{id}{DELETE_DIR_SUFFIX}", p.topic, p.index));
    copy.finish(&mut log, &final_dir, &retired)
        .with_context(|| format!("switching to {}", final_dir.display()))?;
    rm.dirs.set_location(&(p.topic.clone(), p.index), m.target);
    drop(log);
    Ok(Some(retired))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path, n: usize) -> Vec<LogDir> {
        (0..n)
            .map(|i| {
                let path = root.join(format!("d{i}"));
                std::fs::create_dir_all(&path).unwrap();
                LogDir {
                    path,
                    clean_start: true,
                }
            })
            .collect()
    }

    #[test]
    fn names_of_partition_dirs() {
        assert_eq!(parse_partition_dir("t-0"), Some(("t".into(), 0)));
        assert_eq!(parse_partition_dir("a-b-12"), Some(("a-b".into(), 12)));
        assert_eq!(parse_partition_dir("a.b-3"), Some(("a.b".into(), 3)));
        assert_eq!(parse_partition_dir("t-0.abc-future"), None);
        assert_eq!(parse_partition_dir("t-0.abc-delete"), None);
        assert_eq!(parse_partition_dir("t"), None);
    }

    #[test]
    fn new_partitions_go_to_the_least_loaded_dir() {
        assert_eq!(least_loaded(&[0, 0, 0]), 0);
        assert_eq!(least_loaded(&[1, 0, 0]), 1);
        assert_eq!(least_loaded(&[1, 1, 0]), 2);
        assert_eq!(least_loaded(&[3, 2, 2]), 1);
        // Spreading 9 partitions over 3 dirs one at a time: 3 each.
        let mut counts = vec![0; 3];
        for _ in 0..9 {
            let i = least_loaded(&counts);
            counts[i] += 1;
        }
        assert_eq!(counts, vec![3, 3, 3]);
    }

    #[test]
    fn start_up_finds_partitions_in_every_dir_and_cleans_unfinished_moves() {
        let root = tempfile::tempdir().unwrap();
        let d = dirs(root.path(), 3);
        let id = uuid::Uuid::new_v4();
        let make = |i: usize, name: &str, topic_id: Option<&uuid::Uuid>| {
            let p = d[i].path.join(name);
            std::fs::create_dir_all(&p).unwrap();
            if let Some(t) = topic_id {
                std::fs::write(
                    p.join("partition.metadata"),
                    crate::partition::partition_metadata_text(t),
                )
                .unwrap();
            }
        };
        make(0, "t-0", Some(&id));
        make(1, "t-1", Some(&id));
        make(2, "u-0", None);
        make(2, "t-2.0123-future", None);
        make(1, "t-3.0123-delete", None);
        make(0, "__cluster_metadata-0", None);
        // t-4 in two dirs, identical (a move interrupted between its renames).
        make(1, "t-4", Some(&id));
        make(2, "t-4", Some(&id));
        // t-5: an older topic's dir in d0, the current one in d2.
        make(0, "t-5", Some(&uuid::Uuid::new_v4()));
        make(2, "t-5", Some(&id));
        runnel_storage::checkpoint::write_offset_checkpoint(
            &d[1].path.join("recovery-point-offset-checkpoint"),
            &[("t".into(), 1, 42)],
        )
        .unwrap();
        let dirs = LogDirs::open(d.clone(), "recovery-point-offset-checkpoint", "hw").unwrap();
        assert!(!d[2].path.join("t-2.0123-future").exists());
        let t = |p: i32| ("t".to_string(), p);
        assert_eq!(dirs.place(&t(0), &id, || [9, 9, 9].to_vec()), 0);
        assert_eq!(dirs.place(&t(1), &id, || [9, 9, 9].to_vec()), 1);
        assert_eq!(dirs.place(&("u".into(), 0), &id, || [9, 9, 9].to_vec()), 2);
        assert_eq!(dirs.take_recovery_point(1, &t(1)), Some(42));
        assert_eq!(dirs.take_recovery_point(1, &t(1)), None);
        assert_eq!(dirs.place(&t(4), &id, || [0, 0, 0].to_vec()), 1);
        assert!(!d[2].path.join("t-4").exists());
        assert_eq!(dirs.place(&t(5), &id, || [0, 0, 0].to_vec()), 2);
        assert!(!d[0].path.join("t-5").exists());
        // Not found: the dir asked for, else the least loaded.
        dirs.prefer(t(6), 2);
        assert_eq!(dirs.place(&t(6), &id, || [0, 0, 0].to_vec()), 2);
        assert_eq!(dirs.place(&t(7), &id, || [1, 0, 1].to_vec()), 1);
        // Found only once: a partition placed again goes by the load.
        assert_eq!(dirs.place(&t(0), &id, || [1, 1, 0].to_vec()), 2);
    }

    #[test]
    fn an_unreadable_dir_is_named_in_the_error() {
        let root = tempfile::tempdir().unwrap();
        let mut d = dirs(root.path(), 2);
        d[1].path = root.path().join("missing");
        let err = LogDirs::open(d, "r", "h").err().unwrap();
        let text = format!("{err:#}");
        assert!(
            text.contains("missing") && text.contains("cannot be read"),
            "{text}"
        );
    }

    #[test]
    fn the_pacer_keeps_to_the_rate_and_stops_when_cancelled() {
        let cancelled = AtomicBool::new(false);
        let mut p = Pacer::new();
        let t = std::time::Instant::now();
        for _ in 0..5 {
            assert!(p.pace(10_000, Some(100_000), &cancelled));
        }
        // 50 kB at 100 kB/s: about half a second.
        assert!(t.elapsed() >= std::time::Duration::from_millis(450));
        assert!(p.pace(1 << 30, None, &cancelled));
        cancelled.store(true, Ordering::Relaxed);
        assert!(!p.pace(1_000_000, Some(1_000), &cancelled));
    }
}
