//! The broker's shared state: configuration, the metadata image, the partitions hosted here, the
//! producer-id allocator, and the background tasks (retention, deletion of removed topics).
//! Everything a request handler needs hangs off [`Broker`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use runnel_config::{BrokerConfig, TopicConfig};
use runnel_metadata::{MetadataImage, MetadataLog, MetadataRecord, TopicImage};
use runnel_storage::checkpoint::{
    read_offset_checkpoint, write_offset_checkpoint, CLEAN_SHUTDOWN_FILE,
};
use runnel_storage::log::Log;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::partition::{log_config, partition_dir, partition_metadata_text, Partition};

/// Name of the recovery point checkpoint file in the log dir.
pub const RECOVERY_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Name of the log start offset checkpoint file in the log dir.
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Producer ids are reserved from the metadata log in blocks of this size.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A (topic, partition) key.
pub type TopicPartition = (String, i32);

/// The broker: everything request handlers share.
pub struct Broker {
    /// Effective configuration.
    pub config: BrokerConfig,
    /// The first log dir (Runnel uses one log dir for now).
    pub log_dir: PathBuf,
    /// Cluster id.
    pub cluster_id: String,
    metadata: Mutex<MetadataLog>,
    image: RwLock<Arc<MetadataImage>>,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
    producer_ids: Mutex<(i64, i64)>,
    /// Bumped after every append; long-polling fetches wait on it.
    pub appended: watch::Sender<u64>,
    /// The consumer group coordinator.
    pub groups: crate::group::GroupCoordinator,
    /// The transaction coordinator.
    pub txns: crate::txn::TxnCoordinator,
    shutting_down: AtomicBool,
    /// Turns true when shutdown begins: client connections close.
    stopping: watch::Sender<bool>,
}

/// A started broker: its bound listener addresses and a way to stop it.
pub struct BrokerHandle {
    /// The broker state.
    pub broker: Arc<Broker>,
    /// Bound addresses, one per listener (name, address).
    pub bound: Vec<(String, std::net::SocketAddr)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BrokerHandle {
    /// Stops accepting, flushes every log, writes the checkpoints and the clean-shutdown marker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        for t in &self.tasks {
            t.abort();
        }
        // Client connections close, as they do when the process exits.
        self.broker.stopping.send_replace(true);
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.close()).await??;
        Ok(())
    }
}

fn generate_cluster_id() -> String {
    crate::partition::topic_id_base64(&uuid::Uuid::new_v4())
}

impl Broker {
    /// Opens the log dir, replays metadata, opens every partition, binds the listeners and spawns
    /// the background tasks.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
        let mut broker = tokio::task::spawn_blocking(move || Broker::open(config)).await??;
        let mut bound = Vec::new();
        let mut sockets = Vec::new();
        for listener in broker.config.listeners.clone() {
            let host = if listener.host.is_empty() {
                "0.0.0.0"
            } else {
                listener.host.as_str()
            };
            let tcp = tokio::net::TcpListener::bind((host, listener.port))
                .await
                .with_context(|| {
                    format!(
                        "binding listener {}://{}:{}",
                        listener.name, host, listener.port
                    )
                })?;
            let addr = tcp.local_addr()?;
            info!(listener = %listener.name, %addr, "listening");
            // A listener on port 0 advertises the port it was given.
            for a in broker.config.advertised_listeners.iter_mut() {
                if a.name == listener.name && a.port == 0 {
                    a.port = addr.port();
                }
            }
            bound.push((listener.name.clone(), addr));
            sockets.push((listener.name.clone(), tcp));
        }
        let broker = Arc::new(broker);
        let mut tasks = Vec::new();
        for (name, tcp) in sockets {
            tasks.push(tokio::spawn(crate::server::accept_loop(
                broker.clone(),
                tcp,
                name,
            )));
        }
        tasks.push(tokio::spawn(retention_loop(broker.clone())));
        tasks.push(tokio::spawn(flush_loop(broker.clone())));
        tasks.push(tokio::spawn(group_loop(broker.clone())));
        Ok(BrokerHandle {
            broker,
            bound,
            tasks,
        })
    }

    fn open(config: BrokerConfig) -> anyhow::Result<Broker> {
        let log_dir = config
            .log_dirs
            .first()
            .cloned()
            .context("log.dirs is empty")?;
        std::fs::create_dir_all(&log_dir)
            .with_context(|| format!("creating log dir {}", log_dir.display()))?;
        let marker = log_dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        if clean {
            std::fs::remove_file(&marker)?;
        } else {
            info!("no clean-shutdown marker: logs above their recovery points will be scanned");
        }
        // Recovery points (offsets known to be on disk) are checkpointed periodically and at
        // shutdown; after a crash only data above them is CRC-scanned.
        let recovery: HashMap<TopicPartition, i64> =
            read_offset_checkpoint(&log_dir.join(RECOVERY_CHECKPOINT))
                .unwrap_or_default()
                .into_iter()
                .map(|(t, p, o)| ((t, p), o))
                .collect();
        let mut metadata = MetadataLog::open(&log_dir).context("opening the metadata log")?;
        let mut image = metadata.image();
        if image.cluster_id.is_none() {
            let cluster_id = config
                .cluster_id
                .clone()
                .unwrap_or_else(generate_cluster_id);
            image = metadata.append(&[MetadataRecord::Cluster { cluster_id }])?;
        }
        let cluster_id = image.cluster_id.clone().unwrap_or_default();
        write_meta_properties(&log_dir, &cluster_id, config.node_id)?;
        let next_pid = image.next_producer_id;
        let (appended, _) = watch::channel(0u64);
        let broker = Broker {
            log_dir: log_dir.clone(),
            cluster_id,
            metadata: Mutex::new(metadata),
            image: RwLock::new(image.clone()),
            partitions: RwLock::new(HashMap::new()),
            producer_ids: Mutex::new((next_pid, next_pid)),
            appended,
            shutting_down: AtomicBool::new(false),
            stopping: watch::channel(false).0,
            groups: crate::group::GroupCoordinator::new(&config),
            txns: crate::txn::TxnCoordinator::new(&config),
            config,
        };
        // Open every partition the metadata knows; remove directories of deleted topics.
        let mut expected = std::collections::HashSet::new();
        for topic in image.topics.values() {
            for p in &topic.partitions {
                let rp = recovery
                    .get(&(topic.name.clone(), p.partition))
                    .copied()
                    .unwrap_or(0);
                broker.open_partition(topic, p.partition, p.leader_epoch, rp, clean)?;
                expected.insert(format!("{}-{}", topic.name, p.partition));
            }
        }
        for entry in std::fs::read_dir(&log_dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == runnel_metadata::log::METADATA_LOG_DIR || expected.contains(&name) {
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
        broker
            .groups
            .load(&broker)
            .context("replaying __consumer_offsets")?;
        broker
            .txns
            .load(&broker)
            .context("replaying __transaction_state")?;
        info!(
            topics = image.topics.len(),
            partitions = broker.partitions.read().len(),
            "broker state loaded"
        );
        Ok(broker)
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
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

    /// The resolved configuration of a topic.
    pub fn topic_config(&self, topic: &TopicImage) -> anyhow::Result<TopicConfig> {
        Ok(TopicConfig::resolve(&self.config, &topic.configs)?)
    }

    /// Appends metadata records (the controller's only way to change the cluster) and publishes
    /// the new image.
    pub fn append_metadata(
        &self,
        records: &[MetadataRecord],
    ) -> anyhow::Result<Arc<MetadataImage>> {
        let mut log = self.metadata.lock();
        let image = log.append(records)?;
        *self.image.write() = image.clone();
        Ok(image)
    }

    /// Opens (creating if needed) the log of one partition and registers it.
    pub fn open_partition(
        &self,
        topic: &TopicImage,
        index: i32,
        leader_epoch: i32,
        recovery_point: i64,
        clean: bool,
    ) -> anyhow::Result<Arc<Partition>> {
        let tc = self.topic_config(topic)?;
        let dir = partition_dir(&self.log_dir, &topic.name, index);
        let meta_file = dir.join("partition.metadata");
        let meta_text = partition_metadata_text(&topic.topic_id);
        if let Ok(existing) = std::fs::read_to_string(&meta_file) {
            if existing != meta_text {
                warn!(dir = %dir.display(), "log dir belongs to an older topic of the same name: removing it");
                std::fs::remove_dir_all(&dir)?;
            }
        }
        let log = Log::open(&dir, log_config(&tc), recovery_point, clean)
            .with_context(|| format!("opening log {}", dir.display()))?;
        if !meta_file.exists() {
            std::fs::write(&meta_file, meta_text)?;
        }
        let partition = Arc::new(Partition {
            topic: topic.name.clone(),
            topic_id: topic.topic_id,
            index,
            leader_epoch,
            log: Mutex::new(log),
            config: RwLock::new(Arc::new(tc)),
        });
        self.partitions
            .write()
            .insert((topic.name.clone(), index), partition.clone());
        Ok(partition)
    }

    /// Unregisters a topic's partitions and removes their directories in the background.
    pub fn remove_topic_partitions(&self, topic: &str) {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write();
            let keys: Vec<TopicPartition> =
                map.keys().filter(|(t, _)| t == topic).cloned().collect();
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

    /// Allocates a producer id, reserving a new block in the metadata log when needed.
    pub fn allocate_producer_id(&self) -> anyhow::Result<i64> {
        let mut ids = self.producer_ids.lock();
        if ids.0 >= ids.1 {
            let next_block_end = ids.0 + PRODUCER_ID_BLOCK;
            self.append_metadata(&[MetadataRecord::ProducerIds {
                next_producer_id: next_block_end,
            }])?;
            ids.1 = next_block_end;
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Wakes long-polling fetches after an append.
    pub fn notify_append(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A receiver that turns true when shutdown begins (connections close on it).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Writes the recovery-point and log-start checkpoints from the hosted logs.
    pub fn write_checkpoints(&self) -> anyhow::Result<()> {
        let mut recovery = Vec::new();
        let mut starts = Vec::new();
        for p in self.all_partitions() {
            let log = p.log.lock();
            recovery.push((p.topic.clone(), p.index, log.recovery_point()));
            starts.push((p.topic.clone(), p.index, log.log_start_offset()));
        }
        write_offset_checkpoint(&self.log_dir.join(RECOVERY_CHECKPOINT), &recovery)?;
        write_offset_checkpoint(&self.log_dir.join(LOG_START_CHECKPOINT), &starts)?;
        Ok(())
    }

    /// Flushes and closes every log, then writes checkpoints and the clean-shutdown marker.
    pub fn close(&self) -> anyhow::Result<()> {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.groups.shutdown();
        let parts = self.all_partitions();
        for p in &parts {
            p.log.lock().flush_and_snapshot()?;
        }
        self.write_checkpoints()?;
        self.partitions.write().clear();
        std::fs::write(self.log_dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
        info!(
            partitions = parts.len(),
            "logs flushed; clean shutdown marker written"
        );
        Ok(())
    }
}

fn write_meta_properties(log_dir: &Path, cluster_id: &str, node_id: i32) -> anyhow::Result<()> {
    let path = log_dir.join("meta.properties");
    let text = format!("#\n#Runnel\nnode.id={node_id}\nversion=1\ncluster.id={cluster_id}\n");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text)?;
    }
    Ok(())
}

/// How often recovery points are checkpointed (Kafka's log.flush.offset.checkpoint.interval.ms).
const CHECKPOINT_INTERVAL_MS: i64 = 60_000;

/// Flushes logs whose `flush.ms` has passed and checkpoints recovery points every minute.
async fn flush_loop(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_millis(1000));
    let mut last_checkpoint = now_ms();
    loop {
        tick.tick().await;
        let b = broker.clone();
        let checkpoint = now_ms() - last_checkpoint >= CHECKPOINT_INTERVAL_MS;
        if checkpoint {
            last_checkpoint = now_ms();
        }
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in b.all_partitions() {
                if let Err(e) = p.log.lock().maybe_flush(now) {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
                }
            }
            if checkpoint {
                if let Err(e) = b.write_checkpoints() {
                    warn!(error = %e, "writing checkpoints failed");
                }
            }
        })
        .await;
    }
}

/// Runs the coordinators' timers (sessions, rebalance deadlines, offset retention, transaction
/// timeouts).
async fn group_loop(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(crate::group::coordinator::TICK);
    loop {
        tick.tick().await;
        broker.groups.tick(&broker);
        broker.txns.tick(&broker);
    }
}

async fn retention_loop(broker: Arc<Broker>) {
    let interval_ms = broker.config.log_retention_check_interval_ms.max(100) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.tick().await;
    loop {
        tick.tick().await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in b.all_partitions() {
                let mut log = p.log.lock();
                // Forget idempotent producers idle longer than producer.id.expiration.ms (1 day).
                log.remove_expired_producers(now, runnel_storage::log::DEFAULT_PRODUCER_ID_EXPIRATION_MS);
                match log.apply_retention(now) {
                    Ok(0) => {}
                    Ok(n) => info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                    Err(e) => warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
                }
            }
        })
        .await;
    }
}
