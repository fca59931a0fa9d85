//! The cluster as a client sees it: bootstrap from a list of addresses, a metadata cache
//! (brokers, topics, partition leaders) refreshed on demand and when a leader moves, one
//! pipelined connection per broker with reconnect backoff, and coordinator lookup. Every
//! connection is secured (TLS, SASL) as the config's `security.protocol` says.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use runnel_protocol::kafka_protocol::messages::{
    find_coordinator_request::FindCoordinatorRequest, metadata_request::MetadataRequestTopic,
    MetadataRequest, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{Error, Result};
use crate::security::Security;

/// A broker from Metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// A partition from Metadata.
#[derive(Clone, Debug)]
pub struct PartitionInfo {
    /// The partition index.
    pub partition: i32,
    /// The leader's node id (-1 when there is none).
    pub leader: i32,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
    /// Offline replica node ids.
    pub offline: Vec<i32>,
    /// The partition's error code (e.g. LEADER_NOT_AVAILABLE).
    pub error: i16,
}

/// A topic from Metadata.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    /// The name.
    pub name: String,
    /// The topic id (nil when the broker has none).
    pub id: uuid::Uuid,
    /// Whether it is internal (`__consumer_offsets`, ...).
    pub internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Default)]
struct MetaState {
    brokers: HashMap<i32, BrokerInfo>,
    topics: HashMap<String, Arc<TopicInfo>>,
    controller: i32,
    cluster_id: Option<String>,
}

#[derive(Default)]
struct Slot {
    conn: Option<Arc<Connection>>,
    failures: u32,
    retry_at: Option<Instant>,
}

/// The metadata cache and connection pool shared by a producer, consumer or admin.
pub struct Cluster {
    /// The connection settings.
    pub config: ClientConfig,
    meta: RwLock<MetaState>,
    nodes: Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Slot>>>>,
    bootstrap: tokio::sync::Mutex<Option<Arc<Connection>>>,
    /// TLS and SASL of every connection, loaded once from the config.
    security: Security,
}

impl Cluster {
    /// Connects to the first bootstrap address that answers and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap.is_empty() {
            return Err(Error::Config(
                "no bootstrap servers: give --bootstrap-server host:port".into(),
            ));
        }
        let security = config.security.load()?;
        let cluster = Arc::new(Cluster {
            security,
            config,
            meta: RwLock::new(MetaState::default()),
            nodes: Mutex::new(HashMap::new()),
            bootstrap: tokio::sync::Mutex::new(None),
        });
        cluster.refresh(Some(&[]), false).await?;
        Ok(cluster)
    }

    async fn bootstrap_conn(&self) -> Result<Arc<Connection>> {
        let mut slot = self.bootstrap.lock().await;
        if let Some(c) = slot.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let mut last = None;
        for addr in &self.config.bootstrap {
            match self.dial(addr).await {
                Ok(c) => {
                    let c = Arc::new(c);
                    *slot = Some(c.clone());
                    return Ok(c);
                }
                // Refused credentials are refused by every broker: no point trying the others.
                Err(e @ Error::Authentication(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::Closed))
    }

    /// A new connection to `addr`, secured as the config says.
    async fn dial(&self, addr: &str) -> Result<Connection> {
        Connection::connect_secure(
            addr,
            &self.config.client_id,
            self.config.request_timeout,
            &self.security,
        )
        .await
    }

    /// A connection to any live broker: a known one first, else a bootstrap address.
    pub async fn any(&self) -> Result<Arc<Connection>> {
        let ids: Vec<i32> = {
            let m = self.meta.read();
            let mut ids: Vec<i32> = m.brokers.keys().copied().collect();
            ids.sort();
            ids
        };
        for id in &ids {
            let slot = self.slot(*id);
            let s = slot.lock().await;
            if let Some(c) = s.conn.as_ref().filter(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        match self.bootstrap_conn().await {
            Ok(c) => Ok(c),
            Err(e @ Error::Authentication(_)) => Err(e),
            Err(e) => {
                for id in ids {
                    if let Ok(c) = self.node(id).await {
                        return Ok(c);
                    }
                }
                Err(e)
            }
        }
    }

    fn slot(&self, node: i32) -> Arc<tokio::sync::Mutex<Slot>> {
        self.nodes.lock().entry(node).or_default().clone()
    }

    /// The connection to broker `node`, made (after its backoff) when there is none.
    pub async fn node(&self, node: i32) -> Result<Arc<Connection>> {
        let addr = self
            .meta
            .read()
            .brokers
            .get(&node)
            .map(|b| b.addr())
            .ok_or_else(|| Error::NotFound(format!("broker {node} is not in the metadata")))?;
        let slot = self.slot(node);
        let mut s = slot.lock().await;
        if let Some(c) = s.conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        // The bootstrap connection, when it went to this broker, becomes its connection:
        // one connection per broker.
        {
            let mut boot = self.bootstrap.lock().await;
            if boot
                .as_ref()
                .is_some_and(|c| c.addr() == addr && !c.is_closed())
            {
                let c = boot.take().unwrap();
                s.conn = Some(c.clone());
                return Ok(c);
            }
        }
        if let Some(at) = s.retry_at {
            tokio::time::sleep_until(at.into()).await;
        }
        match self.dial(&addr).await {
            Ok(c) => {
                let c = Arc::new(c);
                s.conn = Some(c.clone());
                s.failures = 0;
                s.retry_at = None;
                Ok(c)
            }
            Err(e) => {
                s.failures += 1;
                let backoff = self
                    .config
                    .reconnect_backoff
                    .saturating_mul(1 << s.failures.min(10))
                    .min(self.config.reconnect_backoff_max);
                s.retry_at = Some(Instant::now() + backoff);
                s.conn = None;
                Err(e)
            }
        }
    }

    /// Loads metadata: `None` for every topic, `Some(&[])` for brokers only, else the named
    /// topics. `auto_create` asks the broker to create missing topics (if it is allowed to).
    pub async fn refresh(&self, topics: Option<&[String]>, auto_create: bool) -> Result<()> {
        let conn = self.any().await?;
        let v = conn.version::<MetadataRequest>(12)?;
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create && v >= 4);
        let resp = conn.send(&req, v).await?;
        let mut m = self.meta.write();
        if !resp.brokers.is_empty() {
            m.brokers = resp
                .brokers
                .iter()
                .map(|b| {
                    (
                        b.node_id.0,
                        BrokerInfo {
                            node_id: b.node_id.0,
                            host: b.host.to_string(),
                            port: b.port,
                            rack: b.rack.as_ref().map(|r| r.to_string()),
                        },
                    )
                })
                .collect();
        }
        m.controller = resp.controller_id.0;
        m.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        if topics.is_none() {
            m.topics.clear();
        }
        for t in &resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                m.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            m.topics.insert(
                name.clone(),
                Arc::new(TopicInfo {
                    name,
                    id: uuid::Uuid::from_bytes(*t.topic_id.as_bytes()),
                    internal: t.is_internal,
                    partitions,
                }),
            );
        }
        // Keep errors for the caller: a named topic that came back with an error.
        if let Some(ts) = topics {
            for t in &resp.topics {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if t.error_code != 0 && ts.contains(&name) {
                    drop(m);
                    return Err(Error::kafka(t.error_code, None, format!("topic {name}")));
                }
            }
        }
        Ok(())
    }

    /// A topic's metadata, from the cache or the broker.
    pub async fn topic(&self, name: &str, auto_create: bool) -> Result<Arc<TopicInfo>> {
        if let Some(t) = self.meta.read().topics.get(name) {
            return Ok(t.clone());
        }
        self.refresh(Some(&[name.to_string()]), auto_create).await?;
        self.meta
            .read()
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| Error::kafka(3, None, format!("topic {name}")))
    }

    /// Forgets a topic's cached metadata (after NOT_LEADER_OR_FOLLOWER and friends).
    pub fn invalidate(&self, topic: &str) {
        self.meta.write().topics.remove(topic);
    }

    /// Every topic the broker reports, refreshed now.
    pub async fn all_topics(&self) -> Result<Vec<Arc<TopicInfo>>> {
        self.refresh(None, false).await?;
        let mut v: Vec<_> = self.meta.read().topics.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// The brokers, sorted by node id.
    pub fn brokers(&self) -> Vec<BrokerInfo> {
        let mut v: Vec<_> = self.meta.read().brokers.values().cloned().collect();
        v.sort_by_key(|b| b.node_id);
        v
    }

    /// The controller's node id and the cluster id, as last seen.
    pub fn controller_and_id(&self) -> (i32, Option<String>) {
        let m = self.meta.read();
        (m.controller, m.cluster_id.clone())
    }

    /// The leader of `topic`-`partition`.
    pub async fn leader(&self, topic: &str, partition: i32) -> Result<i32> {
        let t = self.topic(topic, false).await?;
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| Error::kafka(3, None, format!("partition {topic}-{partition}")))?;
        if p.leader < 0 {
            self.invalidate(topic);
            return Err(Error::kafka(
                5,
                None,
                format!("partition {topic}-{partition}"),
            ));
        }
        Ok(p.leader)
    }

    /// The coordinator for a group (`key_type` 0) or transactional id (1), retried while the
    /// broker says it is loading or not available.
    pub async fn coordinator(&self, key: &str, key_type: i8) -> Result<i32> {
        let deadline = Instant::now() + self.config.request_timeout;
        loop {
            let conn = self.any().await?;
            let v = conn.version::<FindCoordinatorRequest>(6)?;
            let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
            if v >= 4 {
                req.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
            } else {
                req.key = StrBytes::from_string(key.to_string());
            }
            let resp = conn.send(&req, v).await?;
            let (code, msg, node, host, port) = if v >= 4 {
                let c = resp
                    .coordinators
                    .first()
                    .ok_or_else(|| Error::Protocol("FindCoordinator: no coordinator".into()))?;
                (
                    c.error_code,
                    c.error_message.clone(),
                    c.node_id.0,
                    c.host.clone(),
                    c.port,
                )
            } else {
                (
                    resp.error_code,
                    resp.error_message.clone(),
                    resp.node_id.0,
                    resp.host.clone(),
                    resp.port,
                )
            };
            if code == 0 {
                self.meta.write().brokers.entry(node).or_insert(BrokerInfo {
                    node_id: node,
                    host: host.to_string(),
                    port,
                    rack: None,
                });
                return Ok(node);
            }
            let err = Error::kafka(
                code,
                msg.map(|m| m.to_string()),
                format!("coordinator for {key}"),
            );
            if !err.is_retriable() || Instant::now() >= deadline {
                return Err(err);
            }
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }

    /// Waits the retry backoff (after a retriable error).
    pub async fn backoff(&self) {
        tokio::time::sleep(self.config.retry_backoff.max(Duration::from_millis(10))).await;
    }
}
