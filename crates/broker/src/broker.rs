//! The broker's shared state: configuration, the metadata image, the partitions hosted here, the
//! producer-id allocator, and the background tasks (retention, deletion of removed topics).
//! Everything a request handler needs hangs off [`Broker`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use runnel_config::{BrokerConfig, TopicConfig};
use runnel_metadata::{
    Endpoint, MetadataImage, MetadataQuorum, MetadataRecord, NoTransport, QuorumError, RaftNode,
    RaftQuorum, RaftQuorumConfig, RaftTransport, TopicImage,
};
use runnel_storage::checkpoint::CLEAN_SHUTDOWN_FILE;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::replica::ReplicaManager;

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

/// The broker: the owners of its state, which request handlers ask. The replica manager owns
/// the hosted partitions, the coordinators own groups and transactions, the metadata quorum owns
/// the metadata log; the broker publishes each new metadata image to them in order.
pub struct Broker {
    /// Effective configuration.
    pub config: BrokerConfig,
    /// The metadata log's dir (`metadata.log.dir`, by default the first of `log.dirs`); the
    /// partitions' dirs are the replica manager's ([`ReplicaManager::log_dirs`]).
    pub log_dir: PathBuf,
    /// The replicated metadata log.
    quorum: Arc<RaftQuorum>,
    /// The newest image published to this broker's parts (what handlers read).
    image: RwLock<Arc<MetadataImage>>,
    /// Serializes publishing, so that images are applied in log order.
    publish_lock: Mutex<()>,
    /// The partitions hosted here.
    pub replicas: ReplicaManager,
    producer_ids: Mutex<(i64, i64)>,
    /// The consumer group coordinator.
    pub groups: crate::group::GroupCoordinator,
    /// The transaction coordinator.
    pub txns: crate::txn::TxnCoordinator,
    /// The client quota managers (`producer_byte_rate`, `consumer_byte_rate`,
    /// `request_percentage`).
    pub quotas: crate::security::quota::QuotaManagers,
    /// The controller's state on this node (active when this node leads the quorum).
    pub controller: crate::controller::Controller,
    /// Random id of this run of the process, sent with the broker registration.
    pub incarnation_id: uuid::Uuid,
    /// The `directory.id` of the metadata log's dir (`meta.properties`).
    pub directory_id: uuid::Uuid,
    /// The broker epoch of this node's current registration, once registered.
    pub broker_epoch: Mutex<Option<i64>>,
    /// The broker epoch the previous run of this node shut down cleanly with (KIP-966), from
    /// the clean-shutdown markers; None after an unclean shutdown.
    pub previous_broker_epoch: Option<i64>,
    /// Whether leftover partition directories were looked for since start-up (done once the
    /// broker's metadata is known to be caught up).
    pub strays_checked: AtomicBool,
    /// The ACL authorizer (`authorizer.class.name`); None: every request is allowed.
    pub authorizer: Option<crate::security::acl::Authorizer>,
    /// TLS of the SSL / SASL_SSL listeners (server side, and the client side for reaching the
    /// inter-broker and controller listeners of other nodes).
    pub tls: Arc<crate::security::tls::TlsListeners>,
    /// How this node secures the connections it opens to other nodes (TLS, SASL).
    pub outbound: crate::security::outbound::Outbound,
    /// What this broker counts and times (served on `metrics.listeners`).
    pub metrics: crate::metrics::Metrics,
    shutting_down: AtomicBool,
    /// Turns true when shutdown begins: client connections close.
    stopping: watch::Sender<bool>,
    /// Set when the broker finds it cannot go on (another live process has its node id): the
    /// process stops with this message.
    failure: watch::Sender<Option<String>>,
}

/// A started broker: its bound listener addresses and a way to stop it.
pub struct BrokerHandle {
    /// The broker state.
    pub broker: Arc<Broker>,
    /// Bound addresses, one per listener (name, address).
    pub bound: Vec<(String, std::net::SocketAddr)>,
    /// Bound addresses of the metrics and health endpoint (`metrics.listeners`).
    pub metrics_bound: Vec<std::net::SocketAddr>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BrokerHandle {
    /// Moves this broker's leaderships away first (a controlled shutdown, while everything still
    /// runs), then stops accepting, flushes every log, writes the checkpoints and the
    /// clean-shutdown marker.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let b = self.broker.clone();
        tokio::task::spawn_blocking(move || crate::controller::lifecycle::controlled_shutdown(&b))
            .await?;
        for t in &self.tasks {
            t.abort();
        }
        // Client connections close, as they do when the process exits.
        self.broker.stopping.send_replace(true);
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.close()).await??;
        Ok(())
    }

    /// Waits until the broker finds it cannot go on, and returns why (the process should then
    /// shut down and exit with an error).
    pub async fn failed(&self) -> String {
        let mut rx = self.broker.failure.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(msg) => msg.clone(),
            Err(_) => None,
        };
        match reason {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }
}

/// Where others reach listener `name` of this node: its advertised address, else its bound one
/// (a wildcard host as `localhost`).
fn own_endpoint(config: &BrokerConfig, name: &str) -> Option<Endpoint> {
    let l = config
        .advertised_listeners
        .iter()
        .find(|l| l.name == name)
        .or_else(|| config.listeners.iter().find(|l| l.name == name))?;
    let host = match l.host.as_str() {
        "" | "0.0.0.0" | "::" => "localhost".to_string(),
        h => h.to_string(),
    };
    Some(Endpoint {
        name: l.name.clone(),
        host,
        port: l.port,
    })
}

/// Opens the metadata quorum. A static quorum: the voters of `controller.quorum.voters` (this
/// node alone for a cluster of one); a node not among them follows the log as a learner. A
/// dynamic quorum (`controller.quorum.bootstrap.servers` without voters): its voters are in the
/// log; a pristine node whose controller listener is the first bootstrap server starts it alone,
/// any other joins as a learner (a controller then waits for `add-controller`).
fn open_quorum(
    config: &BrokerConfig,
    log_dir: &Path,
    directory_id: uuid::Uuid,
    raft_security: runnel_client::security::Security,
) -> anyhow::Result<Arc<RaftQuorum>> {
    let cluster = &config.cluster;
    let single = cluster.is_single_node(config.node_id);
    let mut voters: std::collections::BTreeMap<i32, String> = cluster
        .voters
        .iter()
        .map(|v| (v.id, format!("{}:{}", v.host, v.port)))
        .collect();
    if single {
        voters.insert(config.node_id, "localhost:0".to_string());
    }
    let bootstrap: Vec<String> = if cluster.voters.is_empty() {
        cluster
            .bootstrap_servers
            .iter()
            .map(|(h, p)| format!("{h}:{p}"))
            .collect()
    } else {
        voters.values().cloned().collect()
    };
    // A controller is reached on its controller listener, a broker-only node (a learner) on
    // its inter-broker listener, where it accepts the leader's AppendEntries.
    let endpoints: Vec<Endpoint> = if cluster.controller {
        cluster
            .controller_listener_names
            .iter()
            .filter_map(|n| own_endpoint(config, n))
            .collect()
    } else {
        vec![]
    };
    let reached_at = if cluster.controller {
        endpoints.first().cloned()
    } else {
        own_endpoint(config, &cluster.inter_broker_listener_name)
    };
    let me = RaftNode {
        addr: reached_at.map_or_else(
            || "localhost:0".to_string(),
            |e| format!("{}:{}", e.host, e.port),
        ),
        directory_id: Some(directory_id),
        endpoints,
    };
    let network: Arc<dyn RaftTransport> = if single {
        Arc::new(NoTransport)
    } else {
        Arc::new(crate::internode::TcpRaftTransport::secured(raft_security))
    };
    RaftQuorum::open(RaftQuorumConfig {
        log_dir: log_dir.to_path_buf(),
        node_id: config.node_id,
        voters,
        bootstrap,
        me,
        standalone: cluster.standalone && cluster.is_dynamic_quorum(config.node_id),
        network,
    })
    .context("opening the metadata quorum")
}

/// The cluster id this node proposes when the metadata log has none: `cluster.id`, or a new one.
pub fn initial_cluster_id(config: &BrokerConfig) -> String {
    config
        .cluster_id
        .clone()
        .unwrap_or_else(|| crate::partition::topic_id_base64(&uuid::Uuid::new_v4()))
}

impl Broker {
    /// Opens the log dir, replays metadata, opens every partition, binds the listeners and spawns
    /// the background tasks.
    pub async fn start(config: BrokerConfig) -> anyhow::Result<BrokerHandle> {
        crate::security::sasl::check_config(&config).map_err(anyhow::Error::msg)?;
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
        let metrics_sockets = crate::metrics::http::bind(&broker.config.metrics_listeners).await?;
        let mut metrics_bound = Vec::new();
        for l in &metrics_sockets {
            let addr = l.local_addr()?;
            info!(%addr, "metrics and health endpoint listening");
            metrics_bound.push(addr);
        }
        let broker = Arc::new(broker);
        if broker.config.cluster.is_single_node(broker.config.node_id)
            && broker.config.cluster.broker
        {
            // A cluster of one registers and unfences itself before serving, so that its first
            // Metadata answer already lists it.
            let b = broker.clone();
            tokio::task::spawn_blocking(move || crate::controller::lifecycle::step(&b, false))
                .await?
                .map_err(|e| anyhow::anyhow!("registering with the controller: {}", e.message))?;
        }
        let mut tasks = Vec::new();
        let limits = Arc::new(
            crate::security::connections::ConnectionLimits::from_config(&broker.config)
                .map_err(anyhow::Error::msg)?,
        );
        for (name, tcp) in sockets {
            tasks.push(tokio::spawn(crate::server::accept_loop(
                broker.clone(),
                tcp,
                name,
                limits.clone(),
            )));
        }
        for l in metrics_sockets {
            tasks.push(tokio::spawn(crate::metrics::http::serve(
                Arc::downgrade(&broker),
                l,
            )));
        }
        tasks.push(tokio::spawn(broker.tls.clone().reload_loop()));
        tasks.push(tokio::spawn(retention_loop(broker.clone())));
        tasks.push(tokio::spawn(flush_loop(broker.clone())));
        tasks.push(tokio::spawn(group_loop(broker.clone())));
        tasks.push(tokio::spawn(publish_loop(broker.clone())));
        tasks.push(tokio::spawn(lifecycle_loop(broker.clone())));
        tasks.push(tokio::spawn(isr_loop(broker.clone())));
        tasks.push(tokio::spawn(crate::controller::balance::run(
            broker.clone(),
        )));
        broker.replicas.attach(&broker);
        Ok(BrokerHandle {
            broker,
            bound,
            metrics_bound,
            tasks,
        })
    }

    fn open(config: BrokerConfig) -> anyhow::Result<Broker> {
        let authorizer =
            crate::security::acl::Authorizer::from_config(&config).map_err(anyhow::Error::msg)?;
        let tls = Arc::new(
            crate::security::tls::TlsListeners::from_config(&config).map_err(anyhow::Error::msg)?,
        );
        let outbound = crate::security::outbound::Outbound::from_config(&config, tls.clone())
            .map_err(anyhow::Error::msg)?;
        let previous_broker_epoch = previous_broker_epoch(&config.log_dirs);
        let (log_dirs, log_dir, stored_cluster_id) = prepare_log_dirs(&config)?;
        let directory_id = ensure_directory_id(&log_dir, config.node_id)?;
        if !config.cluster.is_single_node(config.node_id) {
            // Before joining the quorum: the other nodes must agree on who this node is.
            let cluster_id = stored_cluster_id.or_else(|| config.cluster_id.clone());
            let hello = crate::identity::own_hello(&config, directory_id, cluster_id);
            crate::identity::exchange(&config, &hello, outbound.for_controllers())?;
        }
        take_clean_shutdown_markers(&log_dirs)?;
        let quorum = open_quorum(&config, &log_dir, directory_id, outbound.for_controllers())?;
        let mut image = quorum.image();
        if image.cluster_id.is_none() && config.cluster.is_single_node(config.node_id) {
            // A cluster of one leads its quorum already; a multi-node quorum writes its cluster
            // id once it has a leader (see `lifecycle::step`).
            image = quorum.propose_blocking(vec![MetadataRecord::Cluster {
                cluster_id: initial_cluster_id(&config),
            }])?;
        }
        if let Some(cluster_id) = &image.cluster_id {
            for dir in log_dirs.iter().map(|d| &d.path).chain([&log_dir]) {
                write_meta_properties(dir, cluster_id, config.node_id)?;
            }
        }
        let listeners: Vec<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
        let metrics = crate::metrics::Metrics::new(&listeners);
        let broker = Broker {
            log_dir: log_dir.clone(),
            quorum,
            image: RwLock::new(Arc::new(MetadataImage::default())),
            publish_lock: Mutex::new(()),
            replicas: ReplicaManager::new(&config, log_dirs, metrics.log_flush_histogram())?,
            producer_ids: Mutex::new((0, 0)),
            shutting_down: AtomicBool::new(false),
            stopping: watch::channel(false).0,
            groups: crate::group::GroupCoordinator::new(&config),
            txns: crate::txn::TxnCoordinator::new(&config),
            quotas: crate::security::quota::QuotaManagers::from_config(&config)
                .map_err(anyhow::Error::msg)?,
            controller: crate::controller::Controller::secured(outbound.for_controllers()),
            incarnation_id: uuid::Uuid::new_v4(),
            directory_id,
            failure: watch::channel(None).0,
            broker_epoch: Mutex::new(None),
            previous_broker_epoch,
            strays_checked: AtomicBool::new(false),
            authorizer,
            tls,
            outbound,
            metrics,
            config,
        };
        // Open every partition the metadata places here; remove directories of deleted topics.
        broker.replicas.apply_image(None, &image)?;
        if broker.config.cluster.is_single_node(broker.config.node_id) {
            broker.replicas.remove_stray_dirs(&image)?;
        }
        *broker.image.write() = image.clone();
        // The coordinators load the partitions of their topics that this broker leads.
        broker.groups.sync_leadership(&broker);
        broker.txns.sync_leadership(&broker);
        info!(
            topics = image.topics.len(),
            partitions = broker.replicas.partition_count(),
            "broker state loaded"
        );
        Ok(broker)
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// The resolved configuration of a topic.
    pub fn topic_config(&self, topic: &TopicImage) -> anyhow::Result<TopicConfig> {
        Ok(TopicConfig::resolve(&self.config, &topic.configs)?)
    }

    /// Proposes metadata records (the controller's only output) to the quorum, waits until they
    /// are committed, and publishes the resulting image to this broker's parts before returning.
    pub fn propose(&self, records: Vec<MetadataRecord>) -> Result<Arc<MetadataImage>, QuorumError> {
        let image = self.quorum.propose_blocking(records)?;
        self.publish(&image);
        Ok(image)
    }

    /// Publishes an image newer than the last one: the replica manager opens and removes
    /// partitions, then handlers see the image, then coordinators follow the leadership of
    /// their internal partitions and drop what deleted topics held.
    pub fn publish(&self, image: &Arc<MetadataImage>) {
        let removed: Vec<String> = {
            let _order = self.publish_lock.lock();
            let old = self.image();
            if image.last_offset <= old.last_offset {
                return;
            }
            if let Err(e) = self.replicas.apply_image(Some(&old), image) {
                warn!(error = %e, offset = image.last_offset, "applying a metadata image to the hosted partitions failed");
            }
            *self.image.write() = image.clone();
            old.topics
                .values()
                .filter(|t| image.topic(&t.name).map(|n| n.topic_id) != Some(t.topic_id))
                .map(|t| t.name.clone())
                .collect()
        };
        self.groups.sync_leadership(self);
        self.txns.sync_leadership(self);
        for name in removed {
            self.groups.remove_topic_offsets(self, &name);
        }
    }

    /// Allocates a producer id, reserving a new block from the active controller when needed
    /// (blocks never overlap across brokers). Off the runtime's threads as a whole: a caller
    /// waiting for the lock while another reserves a block would otherwise hold a thread that
    /// the reservation's wait for this broker's metadata may need.
    pub fn allocate_producer_id(&self) -> anyhow::Result<i64> {
        crate::internode::blocking(|| {
            let mut ids = self.producer_ids.lock();
            if ids.0 >= ids.1 {
                let first = crate::controller::allocate_producer_ids(self, PRODUCER_ID_BLOCK)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                *ids = (first, first + PRODUCER_ID_BLOCK);
            }
            let id = ids.0;
            ids.0 += 1;
            Ok(id)
        })
    }

    /// The cluster id (empty until a multi-node quorum has written it).
    pub fn cluster_id(&self) -> String {
        self.image().cluster_id.clone().unwrap_or_default()
    }

    /// Once the metadata log has a cluster id: checks it against `meta.properties` and
    /// `cluster.id` and records it there.
    pub fn record_cluster_id(&self) -> anyhow::Result<()> {
        let Some(id) = self.image().cluster_id.clone() else {
            return Ok(());
        };
        if let Some(wanted) = self.config.cluster_id.as_ref().filter(|w| **w != id) {
            anyhow::bail!(
                "cluster.id is {wanted}, but the metadata quorum belongs to cluster {id}"
            );
        }
        for dir in self.all_dirs() {
            write_meta_properties(&dir, &id, self.config.node_id)?;
        }
        Ok(())
    }

    /// Every log dir, and the metadata log's dir if it is not one of them.
    fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .replicas
            .log_dirs()
            .iter()
            .map(|d| d.path.clone())
            .collect();
        if !dirs.contains(&self.log_dir) {
            dirs.push(self.log_dir.clone());
        }
        dirs
    }

    /// Whether this broker serves as a leader: registered in the metadata with its current
    /// epoch and unfenced (a restarted broker does not lead on stale metadata).
    pub fn is_serving(&self) -> bool {
        let epoch = *self.broker_epoch.lock();
        let image = self.image();
        image
            .brokers
            .get(&self.config.node_id)
            .is_some_and(|b| !b.fenced && Some(b.epoch) == epoch)
    }

    /// Node id of the active controller (the metadata quorum's leader), if known.
    pub fn controller_id(&self) -> Option<i32> {
        self.quorum.leader_id()
    }

    /// `host:port` of a voter's controller listener: as the quorum's membership records it (a
    /// dynamic quorum's voters are known only there), else from `controller.quorum.voters`.
    pub fn voter_address(&self, id: i32) -> Option<String> {
        self.quorum.member_address(id).or_else(|| {
            self.config
                .cluster
                .voters
                .iter()
                .find(|v| v.id == id)
                .map(|v| format!("{}:{}", v.host, v.port))
        })
    }

    /// The metadata quorum (membership changes, members, whether it is dynamic).
    pub fn quorum(&self) -> &Arc<RaftQuorum> {
        &self.quorum
    }

    /// Waits (blocking, until `deadline`) for the quorum to have applied metadata up to `offset`
    /// on this node, and publishes it here.
    pub fn wait_for_metadata(&self, offset: i64, deadline: std::time::Instant) {
        loop {
            let image = self.quorum.image();
            if image.last_offset >= offset
                || std::time::Instant::now() >= deadline
                || self.is_shutting_down()
            {
                self.publish(&image);
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Answers a raft message from another voter.
    pub async fn raft_rpc(&self, kind_code: i16, body: &[u8]) -> Result<Vec<u8>, QuorumError> {
        let kind = u8::try_from(kind_code)
            .ok()
            .and_then(runnel_metadata::RaftRpcKind::from_code)
            .ok_or_else(|| {
                QuorumError::Storage(format!("unknown raft message kind {kind_code}"))
            })?;
        self.quorum.handle_rpc(kind, body).await
    }

    /// Records that the broker cannot go on (see [`BrokerHandle::failed`]); the first reason
    /// is kept.
    pub fn fail(&self, reason: String) {
        self.failure.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            *f = Some(reason);
            true
        });
    }

    /// A receiver that turns true when shutdown begins (connections close on it).
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// The clean-shutdown marker's content: Kafka's `{"version":0,"brokerEpoch":N}` with this
    /// registration's epoch, which the next start sends as its previous broker epoch (KIP-966);
    /// empty when the broker never registered.
    fn clean_shutdown_marker(&self) -> Vec<u8> {
        match *self.broker_epoch.lock() {
            Some(epoch) => format!(r#"{{"version":0,"brokerEpoch":{epoch}}}"#).into_bytes(),
            None => Vec::new(),
        }
    }

    /// Flushes and closes every log and the metadata log, then writes checkpoints and the
    /// clean-shutdown marker.
    pub fn close(&self) -> anyhow::Result<()> {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.groups.shutdown();
        let closed = self.replicas.close()?;
        self.quorum.shutdown()?;
        for dir in self.replicas.log_dirs() {
            std::fs::write(
                dir.path.join(CLEAN_SHUTDOWN_FILE),
                self.clean_shutdown_marker(),
            )?;
        }
        info!(
            partitions = closed,
            "logs flushed; clean shutdown marker written"
        );
        Ok(())
    }
}

/// Prepares the log dirs (`log.dirs`) and the metadata log's dir (`metadata.log.dir`, by default
/// the first log dir): each is created if missing and must be readable (else the broker does
/// not start, naming it: Kafka's offline dirs are not handled), is refused if formatted for
/// another node or cluster (or for another cluster than the others), and gets its own
/// `directory.id`. Each log dir's clean-shutdown marker is read (and removed by
/// [`take_clean_shutdown_markers`] once start-up goes on). Returns the log dirs (absolute), the
/// metadata log's dir and the cluster id their `meta.properties` name, if any.
fn prepare_log_dirs(
    config: &BrokerConfig,
) -> anyhow::Result<(
    Vec<crate::replica::log_dirs::LogDir>,
    PathBuf,
    Option<String>,
)> {
    anyhow::ensure!(!config.log_dirs.is_empty(), "log.dirs is empty");
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut log_dirs: Vec<PathBuf> = Vec::new();
    for d in &config.log_dirs {
        let d = absolute(d);
        anyhow::ensure!(
            !log_dirs.contains(&d),
            "log.dirs lists {} twice",
            d.display()
        );
        log_dirs.push(d);
    }
    let meta_dir = absolute(config.metadata_log_dir());
    let mut all = log_dirs.clone();
    if !all.contains(&meta_dir) {
        all.push(meta_dir.clone());
    }
    let mut cluster: Option<(String, PathBuf)> = None;
    for dir in &all {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("log dir {} cannot be created", dir.display()))?;
        std::fs::read_dir(dir).with_context(|| {
            format!(
                "log dir {} cannot be read (Runnel does not start with an offline log dir)",
                dir.display()
            )
        })?;
        check_meta_properties(dir, config)?;
        if let Some((_, Some(id))) = read_meta_properties(dir) {
            match &cluster {
                Some((other, at)) if *other != id => anyhow::bail!(
                    "log dirs {} and {} belong to different clusters ({other} and {id}, meta.properties)",
                    at.display(),
                    dir.display()
                ),
                _ => cluster = Some((id, dir.clone())),
            }
        }
        ensure_directory_id(dir, config.node_id)?;
    }
    let mut dirs = Vec::new();
    for path in log_dirs {
        let clean_start = path.join(CLEAN_SHUTDOWN_FILE).exists();
        if !clean_start {
            info!(dir = %path.display(), "no clean-shutdown marker: logs above their recovery points will be scanned");
        }
        dirs.push(crate::replica::log_dirs::LogDir { path, clean_start });
    }
    Ok((dirs, meta_dir, cluster.map(|(id, _)| id)))
}

/// Removes the clean-shutdown markers [`prepare_log_dirs`] found: from here on, a crash is an
/// unclean shutdown. (A node refused before this keeps its markers.)
fn take_clean_shutdown_markers(dirs: &[crate::replica::log_dirs::LogDir]) -> anyhow::Result<()> {
    for d in dirs.iter().filter(|d| d.clean_start) {
        let marker = d.path.join(CLEAN_SHUTDOWN_FILE);
        std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    }
    Ok(())
}

/// KIP-966's previous broker epoch: the one every log dir's clean-shutdown marker names (read
/// before start-up removes the markers), or None when a marker is missing, names none, or they
/// disagree (as Kafka's `readBrokerEpochFromCleanShutdownFiles`).
fn previous_broker_epoch(log_dirs: &[PathBuf]) -> Option<i64> {
    let mut found = None;
    for dir in log_dirs {
        let text = std::fs::read(dir.join(CLEAN_SHUTDOWN_FILE)).ok()?;
        let value: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let epoch = value.get("brokerEpoch")?.as_i64()?;
        if found.is_some_and(|f| f != epoch) {
            return None;
        }
        found = Some(epoch);
    }
    found
}

/// Reads `meta.properties` of a log dir: (node.id, cluster.id) when present.
fn read_meta_properties(log_dir: &Path) -> Option<(Option<i32>, Option<String>)> {
    let get = read_meta_property_map(log_dir)?;
    Some((
        get.get("node.id").and_then(|v| v.parse().ok()),
        get.get("cluster.id").cloned(),
    ))
}

/// Every key of `meta.properties`, if the file is there and readable.
fn read_meta_property_map(log_dir: &Path) -> Option<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(log_dir.join("meta.properties")).ok()?;
    let props = runnel_config::parse_properties(&text).ok()?;
    Some(props.into_iter().collect())
}

/// Parses Kafka's printed form of a UUID (URL-safe base64 of its 16 bytes, no padding).
fn parse_kafka_uuid(text: &str) -> Option<uuid::Uuid> {
    let text = text.trim();
    if text.len() != 22 {
        return None;
    }
    let mut bits: u128 = 0;
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u128;
        if i < 21 {
            bits = (bits << 6) | v;
        } else {
            // 22 characters hold 132 bits: the last character's low 4 are padding, zero.
            if v & 0xF != 0 {
                return None;
            }
            bits = (bits << 2) | (v >> 4);
        }
    }
    Some(uuid::Uuid::from_u128(bits))
}

/// This log dir's `directory.id` (Kafka's, in `meta.properties`): read, or made up and written
/// at first start, so that `kafka-metadata-quorum add-controller` finds it.
fn ensure_directory_id(log_dir: &Path, node_id: i32) -> anyhow::Result<uuid::Uuid> {
    let props = read_meta_property_map(log_dir).unwrap_or_default();
    if let Some(text) = props.get("directory.id") {
        return parse_kafka_uuid(text).with_context(|| {
            format!(
                "{}: directory.id {text} is not a Kafka UUID",
                log_dir.join("meta.properties").display()
            )
        });
    }
    let id = loop {
        let id = uuid::Uuid::new_v4();
        // Kafka reserves the UUIDs below 100 (the zero UUID, "unassigned", "lost", ...).
        if id.as_u128() >= 100 {
            break id;
        }
    };
    let cluster_id = props.get("cluster.id").map(String::as_str);
    write_meta_file(log_dir, node_id, id, cluster_id)?;
    info!(directory_id = %crate::partition::topic_id_base64(&id), "log dir formatted");
    Ok(id)
}

/// Writes `meta.properties` (Kafka's version 1 layout) if its contents change.
fn write_meta_file(
    log_dir: &Path,
    node_id: i32,
    directory_id: uuid::Uuid,
    cluster_id: Option<&str>,
) -> anyhow::Result<()> {
    let path = log_dir.join("meta.properties");
    let mut text = format!(
        "#\n#Runnel\nnode.id={node_id}\ndirectory.id={}\nversion=1\n",
        crate::partition::topic_id_base64(&directory_id)
    );
    if let Some(c) = cluster_id {
        text.push_str(&format!("cluster.id={c}\n"));
    }
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        runnel_storage::checkpoint::write_atomic(&path, &text)?;
    }
    Ok(())
}

/// Refuses a log dir formatted for another node or cluster, as Kafka does, before anything in
/// it is touched.
fn check_meta_properties(log_dir: &Path, config: &BrokerConfig) -> anyhow::Result<()> {
    let Some((node_id, cluster_id)) = read_meta_properties(log_dir) else {
        return Ok(());
    };
    if let Some(stored) = node_id.filter(|id| *id != config.node_id) {
        anyhow::bail!(
            "log.dirs {} belongs to node.id={stored} (meta.properties), but this node's node.id is {}: \
             a node's id cannot change; use the node id the directory was formatted with or an empty directory",
            log_dir.display(),
            config.node_id
        );
    }
    if let (Some(stored), Some(wanted)) = (cluster_id, config.cluster_id.as_ref()) {
        if &stored != wanted {
            anyhow::bail!(
                "log.dirs {} belongs to cluster {stored} (meta.properties), but cluster.id is {wanted}",
                log_dir.display()
            );
        }
    }
    Ok(())
}

fn write_meta_properties(log_dir: &Path, cluster_id: &str, node_id: i32) -> anyhow::Result<()> {
    if let Some((_, Some(stored))) = read_meta_properties(log_dir) {
        if stored != cluster_id {
            anyhow::bail!(
                "log.dirs {} belongs to cluster {stored} (meta.properties), but the metadata log is of cluster {cluster_id}",
                log_dir.display()
            );
        }
    }
    let directory_id = ensure_directory_id(log_dir, node_id)?;
    write_meta_file(log_dir, node_id, directory_id, Some(cluster_id))
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
            b.replicas.flush_due();
            if checkpoint {
                if let Err(e) = b.replicas.write_checkpoints() {
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
        // Also retries a coordinator partition whose load failed.
        broker.groups.sync_leadership(&broker);
        broker.txns.sync_leadership(&broker);
        broker.groups.tick(&broker);
        broker.txns.tick(&broker);
    }
}

/// Publishes images committed by the quorum that this broker has not applied yet (entries
/// proposed elsewhere; those proposed here are published by [`Broker::propose`]).
async fn publish_loop(broker: Arc<Broker>) {
    let mut images = broker.quorum.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.publish(&image)).await;
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// This broker's registration and heartbeats, and (while this node is the active controller)
/// the fencing of brokers whose sessions expired: two loops, so that a heartbeat waiting for a
/// controller (a cut-off one, or none yet) never holds up the fencing.
async fn lifecycle_loop(broker: Arc<Broker>) {
    tokio::join!(heartbeat_loop(broker.clone()), fencing_loop(broker));
}

/// This broker's registration and heartbeats, every `broker.heartbeat.interval.ms`.
async fn heartbeat_loop(broker: Arc<Broker>) {
    // A controller-only node registers no broker: it hosts and leads nothing.
    if !broker.config.cluster.broker {
        return;
    }
    let interval = Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms as u64);
    let mut duplicate = crate::identity::DuplicateRegistration::for_config(&broker.config);
    loop {
        let b = broker.clone();
        let fenced =
            tokio::task::spawn_blocking(move || crate::controller::lifecycle::step(&b, false))
                .await;
        // Other errors (no controller yet) neither start nor end a run of refusals.
        let refused_as_duplicate = match &fenced {
            Ok(Ok(_)) => Some(false),
            Ok(Err(e)) if e.error == kafka_protocol::ResponseError::DuplicateBrokerRegistration => {
                Some(true)
            }
            _ => None,
        };
        let given_up =
            refused_as_duplicate.and_then(|dup| duplicate.observe(std::time::Instant::now(), dup));
        if let Some(lasted) = given_up {
            let message =
                crate::identity::duplicate_registration_message(broker.config.node_id, lasted);
            tracing::error!(key = "node.id", "{message}");
            broker.fail(message);
            return;
        }
        let wait = match fenced {
            // Not yet registered or unfenced: try again soon.
            Ok(Ok(true)) | Ok(Err(_)) | Err(_) => interval.min(Duration::from_millis(250)),
            Ok(Ok(false)) => interval,
        };
        tokio::time::sleep(wait).await;
    }
}

/// While this node is the active controller, fences the brokers whose sessions expired: every
/// tenth of `broker.session.timeout.ms` (50 ms to 500 ms), so a broker is fenced at most that
/// late.
async fn fencing_loop(broker: Arc<Broker>) {
    let period = Duration::from_millis(
        (broker.config.cluster.broker_session_timeout_ms / 10).clamp(50, 500) as u64,
    );
    let seen = Arc::new(Mutex::new(
        crate::controller::lifecycle::SessionTerm::default(),
    ));
    loop {
        let (b, s) = (broker.clone(), seen.clone());
        let _ = tokio::task::spawn_blocking(move || {
            crate::controller::lifecycle::fence_expired_sessions(&b, &mut s.lock())
        })
        .await;
        tokio::time::sleep(period).await;
    }
}

/// The leader's ISR upkeep, every half `replica.lag.time.max.ms` (at most 1 s) or as soon as a
/// follower has caught up.
async fn isr_loop(broker: Arc<Broker>) {
    let period = Duration::from_millis(
        (broker.config.cluster.replica_lag_time_max_ms / 2).clamp(50, 1000) as u64,
    );
    loop {
        broker.replicas.isr_wait(period).await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.replicas.isr_upkeep(&b)).await;
    }
}

/// Applies retention and producer expiry to every log, every `log.retention.check.interval.ms`.
async fn retention_loop(broker: Arc<Broker>) {
    let interval_ms = broker.config.log_retention_check_interval_ms.max(100) as u64;
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.tick().await;
    loop {
        tick.tick().await;
        let b = broker.clone();
        let _ = tokio::task::spawn_blocking(move || b.replicas.apply_retention()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_ids_round_trip_in_kafkas_form() {
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4();
            let text = crate::partition::topic_id_base64(&id);
            assert_eq!(parse_kafka_uuid(&text), Some(id), "{text}");
        }
        assert_eq!(
            parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAA"),
            Some(uuid::Uuid::nil())
        );
        // Too short, a character outside the alphabet, padding bits set.
        assert_eq!(parse_kafka_uuid("AAAA"), None);
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAA="), None);
        assert_eq!(parse_kafka_uuid("AAAAAAAAAAAAAAAAAAAAAB"), None);
    }

    #[test]
    fn a_directory_id_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let id = ensure_directory_id(dir.path(), 3).unwrap();
        let text = std::fs::read_to_string(dir.path().join("meta.properties")).unwrap();
        assert!(text.contains(&format!(
            "directory.id={}",
            crate::partition::topic_id_base64(&id)
        )));
        assert!(text.contains("node.id=3") && text.contains("version=1"));
        assert_eq!(ensure_directory_id(dir.path(), 3).unwrap(), id);
        // Recording the cluster id keeps the directory id.
        write_meta_properties(dir.path(), "q1w2e3r4t5y6u7i8o9p0aa", 3).unwrap();
        assert_eq!(ensure_directory_id(dir.path(), 3).unwrap(), id);
        let text = std::fs::read_to_string(dir.path().join("meta.properties")).unwrap();
        assert!(text.contains("cluster.id=q1w2e3r4t5y6u7i8o9p0aa"));
    }
}
