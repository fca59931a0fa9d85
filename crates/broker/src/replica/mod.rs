//! The replica manager: sole owner of the partitions hosted on this broker. It opens and closes
//! their logs as the published metadata image says (a partition is hosted where this node is
//! one of its replicas), makes each replica leader or follower as the image says, runs the
//! follower fetchers (one per leader broker, [`fetcher`]) and the leader's ISR upkeep (shrink
//! after `replica.lag.time.max.ms`, expand once caught up, both through the controller with the
//! partition epoch), applies topic config changes, wakes long-polling fetches, and runs the
//! per-log background work (flushes, recovery-point and high-watermark checkpoints,
//! retention), runs the log cleaner ([`cleaner`]), and moves replicas between this broker's log
//! dirs ([`log_dirs`]). Nothing else creates or removes a partition.

pub mod cleaner;
pub mod fetcher;
pub mod log_dirs;
pub mod logic;
pub mod throttle;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use runnel_config::{BrokerConfig, TopicConfig};
use runnel_metadata::{MetadataImage, TopicImage};
use runnel_storage::checkpoint::write_offset_checkpoint;
use runnel_storage::log::Log;
use tracing::{info, warn};

use crate::broker::{now_ms, TopicPartition};
use crate::partition::{
    log_config, partition_dir, partition_metadata_text, Partition, ReplicaState,
};

/// Name of the recovery point checkpoint file in each log dir.
pub const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Name of the log start offset checkpoint file in the log dir.
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Name of the high watermark checkpoint file in the log dir (Kafka's name).
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";

/// The partitions hosted on this broker, and everything done to their logs as a whole.
pub struct ReplicaManager {
    node_id: i32,
    /// The log dirs: where each partition is, checkpoints read at start-up, moves.
    dirs: log_dirs::LogDirs,
    config: BrokerConfig,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    /// The follower fetchers, by leader broker id.
    fetchers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
    /// The runtime the fetchers run on.
    runtime: tokio::runtime::Handle,
    /// The broker, once started (fetchers need its image and configuration).
    owner: Mutex<std::sync::Weak<crate::broker::Broker>>,
    /// Wakes the ISR upkeep early (a follower caught up).
    isr_wakeup: tokio::sync::Notify,
    /// The throttle of what this broker sends to throttled followers, as their leader.
    pub leader_quota: throttle::Quota,
    /// The throttle of what this broker fetches for throttled replicas, as a follower.
    pub follower_quota: throttle::Quota,
    /// The log cleaner (compaction), started by [`ReplicaManager::attach`].
    cleaner: cleaner::LogCleaner,
    /// Where the partitions time their fsyncs (the broker's metrics).
    flush_time: prometheus::Histogram,
}

/// Threads that open or flush many partitions at once (start-up, shutdown): the work mostly
/// waits on the device, and the journal commits concurrent fsyncs together (Kafka's log manager
/// uses a pool too).
const IO_THREADS: usize = 16;

/// Runs `job` on every item, on up to [`IO_THREADS`] threads; once all are done, the first error.
fn for_each_parallel<T: Sync>(
    items: &[T],
    job: impl Fn(&T) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..IO_THREADS.min(items.len()) {
            scope.spawn(|| {
                while let Some(item) =
                    items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    if let Err(e) = job(item) {
                        first_error.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    first_error.into_inner().map_or(Ok(()), Err)
}

impl ReplicaManager {
    /// A manager hosting nothing yet, over the log dirs `dirs` (each says whether its last
    /// shutdown was clean). Reads what they hold: partition directories and checkpoints
    /// (recovery points, offsets known to be on disk: after a crash only data above them is
    /// CRC-scanned). A dir that cannot be read is an error.
    /// `flush_time` is where the partitions time their fsyncs.
    pub fn new(
        config: &BrokerConfig,
        dirs: Vec<log_dirs::LogDir>,
        flush_time: prometheus::Histogram,
    ) -> anyhow::Result<ReplicaManager> {
        let dirs = log_dirs::LogDirs::open(dirs, RECOVERY_CHECKPOINT, HIGH_WATERMARK_CHECKPOINT)?;
        Ok(ReplicaManager {
            node_id: config.node_id,
            dirs,
            config: config.clone(),
            partitions: RwLock::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
            owner: Mutex::new(std::sync::Weak::new()),
            isr_wakeup: tokio::sync::Notify::new(),
            leader_quota: throttle::Quota::leader(),
            follower_quota: throttle::Quota::follower(),
            cleaner: cleaner::LogCleaner::default(),
            flush_time,
        })
    }

    /// Looks up a hosted partition.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_string(), index))
            .cloned()
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Number of hosted partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions.read().len()
    }

    /// Brings the hosted partitions in line with `new`: opens the partitions this node is a
    /// replica of, closes and deletes those of removed topics, applies changed topic configs.
    /// `old` is the image applied before (`None` at start-up).
    pub fn apply_image(
        &self,
        old: Option<&MetadataImage>,
        new: &MetadataImage,
    ) -> anyhow::Result<()> {
        // Topics gone (or replaced by a new topic of the same name) lose their partitions.
        let hosted_topics: HashSet<(String, uuid::Uuid)> = self
            .partitions
            .read()
            .values()
            .map(|p| (p.topic.clone(), p.topic_id))
            .collect();
        for (name, id) in hosted_topics {
            if new.topic(&name).map(|t| t.topic_id) != Some(id) {
                self.remove_partitions(|(t, _)| *t == name);
            }
        }
        // At start-up every replica here is opened first, in parallel (reading its files and
        // indexes is most of a start). Created topics' replicas open one after another below:
        // creating their directories in parallel was slower (each fsyncs the parent dir).
        if old.is_none() {
            let to_open: Vec<(&TopicImage, i32)> = new
                .topics
                .values()
                .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
                .filter(|(t, p)| {
                    p.replicas.contains(&self.node_id)
                        && self.partition(&t.name, p.partition).is_none()
                })
                .map(|(t, p)| (&**t, p.partition))
                .collect();
            self.open_many(&to_open)?;
        }
        for topic in new.topics.values() {
            let before = old.and_then(|o| o.topic(&topic.name));
            if before.is_some_and(|b| Arc::ptr_eq(b, topic)) {
                continue;
            }
            let configs_changed = before.is_some_and(|b| b.configs != topic.configs);
            for p in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    // Reassigned away from this node: its log goes, as Kafka's StopReplica with
                    // deletion. Waiting writes see the new leader first and give up.
                    if let Some(gone) = self.partition(&topic.name, p.partition) {
                        gone.apply_state(ReplicaState::from_image(p), now_ms())?;
                        info!(topic = %topic.name, partition = p.partition, "no longer a replica: removing the log");
                        self.remove_partitions(|(t, i)| *t == topic.name && *i == p.partition);
                    }
                    continue;
                }
                let partition = match self.partition(&topic.name, p.partition) {
                    Some(existing) => existing,
                    None => self.open_partition(topic, p.partition)?,
                };
                let before = partition.state();
                let became_leader = partition.apply_state(ReplicaState::from_image(p), now_ms())?;
                // An ISR change under the same leadership of this node: a shrink or expansion.
                if p.leader == self.node_id
                    && before.leader == p.leader
                    && before.leader_epoch == p.leader_epoch
                {
                    if let Some(b) = self.owner.lock().upgrade() {
                        b.metrics.isr_changed(before.isr.len(), p.isr.len());
                    }
                }
                if became_leader {
                    info!(topic = %topic.name, partition = p.partition, epoch = p.leader_epoch, "became leader");
                } else if p.leader >= 0 && p.leader != self.node_id {
                    self.ensure_fetcher(p.leader);
                }
            }
            if configs_changed {
                self.apply_topic_config(topic)?;
            }
        }
        Ok(())
    }

    /// Applies a topic's (changed) config overrides to its hosted partitions, without a restart.
    fn apply_topic_config(&self, topic: &TopicImage) -> anyhow::Result<()> {
        let resolved = Arc::new(TopicConfig::resolve(&self.config, &topic.configs)?);
        for p in self.all_partitions() {
            if p.topic == topic.name {
                p.log.lock().set_config(log_config(&resolved));
                *p.config.write() = resolved.clone();
            }
        }
        Ok(())
    }

    /// Opens (creating if needed) the logs of these partitions and registers them, on up to
    /// [`IO_THREADS`] threads when there are many; the first error is returned.
    fn open_many(&self, wanted: &[(&TopicImage, i32)]) -> anyhow::Result<()> {
        if wanted.len() < 32 {
            return wanted
                .iter()
                .try_for_each(|(topic, index)| self.open_partition(topic, *index).map(drop));
        }
        for_each_parallel(wanted, |(topic, index)| {
            self.open_partition(topic, *index).map(drop)
        })
    }

    /// Opens (creating if needed) the log of one partition and registers it: in the log dir
    /// holding it, else in the one AlterReplicaLogDirs asked for, else in the least loaded.
    fn open_partition(&self, topic: &TopicImage, index: i32) -> anyhow::Result<Arc<Partition>> {
        let tc = TopicConfig::resolve(&self.config, &topic.configs)?;
        let tp = (topic.name.clone(), index);
        let at = self
            .dirs
            .place(&tp, &topic.topic_id, || self.partitions_per_dir());
        let log_dir = &self.dirs.dirs()[at];
        let dir = partition_dir(&log_dir.path, &topic.name, index);
        let meta_file = dir.join("partition.metadata");
        let meta_text = partition_metadata_text(&topic.topic_id);
        if let Ok(existing) = std::fs::read_to_string(&meta_file) {
            if existing != meta_text {
                warn!(dir = %dir.display(), "log dir belongs to an older topic of the same name: removing it");
                std::fs::remove_dir_all(&dir)?;
            }
        }
        let recovery_point = self.dirs.take_recovery_point(at, &tp).unwrap_or(0);
        let log = Log::open(&dir, log_config(&tc), recovery_point, log_dir.clean_start)
            .with_context(|| format!("opening log {}", dir.display()))?;
        if !meta_file.exists() {
            std::fs::write(&meta_file, meta_text)?;
        }
        let hw = self.dirs.take_high_watermark(at, &tp).unwrap_or(0);
        self.dirs.set_location(&tp, at);
        let partition = Arc::new(Partition::new(
            topic.name.clone(),
            topic.topic_id,
            index,
            self.node_id,
            log,
            Arc::new(tc),
            hw,
        ));
        partition.time_flushes(self.flush_time.clone());
        self.partitions
            .write()
            .insert((topic.name.clone(), index), partition.clone());
        Ok(partition)
    }

    /// Removes directories of partitions the image does not place on this node (topics deleted
    /// while the broker was down or whose deletion did not finish, replicas reassigned away).
    /// Only with an image known to be caught up with the metadata log: at start-up on a single
    /// node, once registered and unfenced in a cluster.
    pub fn remove_stray_dirs(&self, image: &MetadataImage) -> anyhow::Result<()> {
        let mut expected = HashSet::new();
        for topic in image.topics.values() {
            for p in topic
                .partitions
                .iter()
                .filter(|p| p.replicas.contains(&self.node_id))
            {
                expected.insert(format!("{}-{}", topic.name, p.partition));
            }
        }
        let entries = self
            .dirs
            .dirs()
            .iter()
            .map(|d| std::fs::read_dir(&d.path))
            .collect::<Result<Vec<_>, _>>()?;
        for entry in entries.into_iter().flatten() {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(runnel_metadata::log::METADATA_LOG_DIR) || expected.contains(&name)
            {
                continue;
            }
            if name.ends_with("-delete")
                || name
                    .rsplit_once('-')
                    .is_some_and(|(_, p)| p.parse::<i32>().is_ok())
            {
                info!(dir = %name, "removing the log of a deleted topic");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }

    /// Unregisters the hosted partitions `which` selects and removes their directories in the
    /// background.
    fn remove_partitions(&self, which: impl Fn(&TopicPartition) -> bool) {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let keys: Vec<TopicPartition> = map.keys().filter(|k| which(k)).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for p in removed {
            let dir = p.log.lock().dir().to_path_buf();
            let renamed = dir.with_file_name(format!(
                "{}-{}.{}-delete",
                p.topic,
                p.index,
                p.topic_id.simple()
            ));
            if let Err(e) = std::fs::rename(&dir, &renamed) {
                warn!(dir = %dir.display(), error = %e, "could not rename a deleted partition's dir");
                continue;
            }
            std::thread::spawn(move || {
                if let Err(e) = runnel_storage::log::delete_log_dir(&renamed) {
                    warn!(dir = %renamed.display(), error = %e, "could not delete a removed partition's dir");
                }
            });
        }
    }

    /// Writes the recovery-point, log-start and high-watermark checkpoints of every log dir
    /// from the logs it holds (Kafka keeps them per dir too).
    pub fn write_checkpoints(&self) -> anyhow::Result<()> {
        type Entries = Vec<(String, i32, i64)>;
        let n = self.dirs.dirs().len();
        let mut per_dir: Vec<(Entries, Entries, Entries)> = vec![Default::default(); n];
        for p in self.all_partitions() {
            let hw = p.high_watermark();
            let log = p.log.lock();
            let Some(i) = self.dirs.index_of_partition_dir(log.dir()) else {
                continue;
            };
            let (recovery, starts, hws) = &mut per_dir[i];
            recovery.push((p.topic.clone(), p.index, log.recovery_point()));
            starts.push((p.topic.clone(), p.index, log.log_start_offset()));
            hws.push((p.topic.clone(), p.index, hw));
        }
        for (dir, (recovery, starts, hws)) in self.dirs.dirs().iter().zip(per_dir) {
            write_offset_checkpoint(&dir.path.join(RECOVERY_CHECKPOINT), &recovery)?;
            write_offset_checkpoint(&dir.path.join(LOG_START_CHECKPOINT), &starts)?;
            write_offset_checkpoint(&dir.path.join(HIGH_WATERMARK_CHECKPOINT), &hws)?;
        }
        Ok(())
    }

    /// Flushes every log whose `flush.ms` has passed.
    pub fn flush_due(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            if let Err(e) = p.log.lock().maybe_flush(now) {
                warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
            }
        }
    }

    /// Applies retention (time and size) and forgets idle idempotent producers, on every log.
    pub fn apply_retention(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            let mut log = p.log.lock();
            // Forget idempotent producers idle longer than producer.id.expiration.ms (1 day).
            log.remove_expired_producers(
                now,
                runnel_storage::log::DEFAULT_PRODUCER_ID_EXPIRATION_MS,
            );
            match log.apply_retention(now) {
                Ok(0) => {}
                Ok(n) => {
                    info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Asks the ISR upkeep to run soon (a follower outside the ISR caught up).
    pub fn isr_change_wanted(&self) {
        self.isr_wakeup.notify_one();
    }

    /// Waits until an ISR change is wanted or `period` passes.
    pub async fn isr_wait(&self, period: std::time::Duration) {
        let _ = tokio::time::timeout(period, self.isr_wakeup.notified()).await;
    }

    /// The leader's ISR upkeep (blocking: it asks the controller): followers that have not
    /// caught up for `replica.lag.time.max.ms` leave the ISR, followers caught up to the high
    /// watermark join it if they are live (registered, unfenced) in this broker's image. Each
    /// change names the partition epoch it was computed from, so a stale one is refused.
    pub fn isr_upkeep(&self, broker: &crate::broker::Broker) {
        let lag_ms = broker.config.cluster.replica_lag_time_max_ms;
        let now = now_ms();
        let image = broker.image();
        let eligible = |r: i32| crate::handlers::is_live(&image, r);
        for p in self.led() {
            let Some((state, isr, maximal)) = p.isr_change(now, lag_ms, eligible) else {
                continue;
            };
            p.isr_change_pending(&maximal);
            match crate::controller::alter_partition_isr(broker, &p, &state, isr.clone()) {
                Ok(()) => {
                    info!(topic = %p.topic, partition = p.index, old = ?state.isr, new = ?isr, "ISR changed")
                }
                Err(e) => {
                    // A stale view (the controller has a newer partition epoch) keeps the
                    // pending members counted until the newer state arrives: it may hold them.
                    if e.error != kafka_protocol::ResponseError::InvalidUpdateVersion {
                        p.isr_change_refused();
                    }
                    tracing::debug!(topic = %p.topic, partition = p.index, error = %e.message, "ISR change refused")
                }
            }
        }
    }

    /// Starts the fetcher for `leader` unless one runs.
    fn ensure_fetcher(&self, leader: i32) {
        let mut fetchers = self.fetchers.lock();
        if fetchers.get(&leader).is_some_and(|t| !t.is_finished()) {
            return;
        }
        let owner = self.owner.lock().clone();
        if owner.strong_count() == 0 {
            return;
        }
        fetchers.insert(leader, self.runtime.spawn(fetcher::run(owner, leader)));
    }

    /// Called once the broker runs: from now on follower fetchers start, for the partitions
    /// already followed too, and the log cleaner runs.
    pub fn attach(&self, broker: &Arc<crate::broker::Broker>) {
        *self.owner.lock() = Arc::downgrade(broker);
        self.cleaner.start(broker);
        let leaders: HashSet<i32> = self
            .all_partitions()
            .iter()
            .map(|p| p.state().leader)
            .filter(|l| *l >= 0 && *l != self.node_id)
            .collect();
        for l in leaders {
            self.ensure_fetcher(l);
        }
    }

    /// The partitions this node follows whose leader is `leader`.
    pub fn followed_from(&self, leader: i32) -> Vec<Arc<Partition>> {
        self.all_partitions()
            .into_iter()
            .filter(|p| {
                let s = p.state();
                s.leader == leader && leader != self.node_id
            })
            .collect()
    }

    /// The partitions this node leads.
    pub fn led(&self) -> Vec<Arc<Partition>> {
        self.all_partitions()
            .into_iter()
            .filter(|p| p.is_leader())
            .collect()
    }

    /// Stops the log cleaner, flushes every log with its producer snapshot, writes the
    /// checkpoints and unregisters every partition. Returns how many were closed.
    pub fn close(&self) -> anyhow::Result<usize> {
        self.cleaner.stop();
        self.dirs.cancel_all_moves();
        for (_, t) in self.fetchers.lock().drain() {
            t.abort();
        }
        let parts = self.all_partitions();
        for_each_parallel(&parts, |p| {
            p.log
                .lock()
                .flush_and_snapshot()
                .with_context(|| format!("flushing {}-{}", p.topic, p.index))
        })?;
        self.write_checkpoints()?;
        self.partitions.write().clear();
        Ok(parts.len())
    }
}
