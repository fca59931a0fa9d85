//! The admin client: topics (create, delete, list, describe, add partitions), configs
//! (describe, incremental alter), consumer groups (list, describe with lag, delete, reset
//! offsets), delete records and the cluster description.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runnel_client::Error> {
//! use runnel_client::{admin::NewTopic, Admin, ClientConfig};
//! let admin = Admin::new(ClientConfig::new("127.0.0.1:9092")).await?;
//! admin.create_topic(&NewTopic::new("orders", 6)).await?;
//! for t in admin.list_topics(false).await? {
//!     println!("{} ({} partitions)", t.name, t.partitions.len());
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use runnel_protocol::kafka_protocol::messages::{
    create_partitions_request::CreatePartitionsTopic,
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
    delete_topics_request::DeleteTopicState,
    describe_configs_request::DescribeConfigsResource,
    incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest,
    DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    DescribeLogDirsRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;

use crate::assignor::TopicPartition;
use crate::cluster::{BrokerInfo, Cluster, TopicInfo};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::offsets::{self, Committed, Committer, ListedOffset, EARLIEST, LATEST};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// A topic to create.
#[derive(Clone, Debug)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partitions; -1 for the broker's `num.partitions`.
    pub partitions: i32,
    /// Replication factor; -1 for the broker's `default.replication.factor`.
    pub replication_factor: i16,
    /// Topic configs, e.g. `retention.ms`.
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: Vec::new(),
        }
    }
}

/// A config entry as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The value (`None` for sensitive values).
    pub value: Option<String>,
    /// Where it comes from: DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG, ...
    pub source: &'static str,
    /// Read-only.
    pub read_only: bool,
    /// Sensitive.
    pub sensitive: bool,
}

/// Which config resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigResource {
    /// A topic (resource type 2).
    Topic,
    /// A broker (resource type 4).
    Broker,
}

impl ConfigResource {
    fn code(self) -> i8 {
        match self {
            ConfigResource::Topic => 2,
            ConfigResource::Broker => 4,
        }
    }
}

/// A change in IncrementalAlterConfigs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlterOp {
    /// Set a key.
    Set(String, String),
    /// Remove a key (back to its default).
    Delete(String),
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// Stable, Empty, PreparingRebalance, ... (empty when the broker does not say).
    pub state: String,
}

/// A group member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub instance_id: Option<String>,
    /// The client id.
    pub client_id: String,
    /// The client's host, as the broker saw it.
    pub host: String,
    /// Assigned partitions (decoded for consumer groups).
    pub assignment: Vec<TopicPartition>,
}

/// A group as DescribeGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// The state.
    pub state: String,
    /// The protocol type.
    pub protocol_type: String,
    /// The chosen assignor.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// One row of a group's lag: committed offset, log end and the member consuming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LagRow {
    /// The topic-partition.
    pub tp: TopicPartition,
    /// The committed offset, if any.
    pub committed: Option<i64>,
    /// The log end offset.
    pub log_end: i64,
    /// `log_end - committed`, when there is a commit.
    pub lag: Option<i64>,
    /// The member assigned the partition now.
    pub member: Option<String>,
}

/// Where to move a group's offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTarget {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// An offset (clamped to the log's range, as Kafka's tool does).
    Offset(i64),
    /// The committed offset moved by this much (clamped).
    ShiftBy(i64),
    /// The first offset at or after this timestamp (ms).
    Datetime(i64),
}

/// One planned offset change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResetPlan {
    /// The topic-partition.
    pub tp: TopicPartition,
    /// The committed offset now.
    pub current: Option<i64>,
    /// The new offset.
    pub target: i64,
}

/// The cluster as DescribeCluster (or Metadata) reports it.
#[derive(Clone, Debug)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's node id.
    pub controller: i32,
    /// The brokers.
    pub brokers: Vec<BrokerInfo>,
}

/// One log dir of a broker, as DescribeLogDirs reports it.
#[derive(Clone, Debug)]
pub struct LogDirDescription {
    /// The directory's path on the broker.
    pub path: String,
    /// The Kafka error code of the directory (0: online).
    pub error: i16,
    /// Bytes of the volume holding it (-1 when the broker does not say).
    pub total_bytes: i64,
    /// Bytes free on that volume (-1 when the broker does not say).
    pub usable_bytes: i64,
    /// Size in bytes of each partition replica in it.
    pub partitions: Vec<(TopicPartition, i64)>,
}

/// The admin client.
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    /// Connects to the cluster.
    pub async fn new(cfg: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::connect(cfg).await?,
        })
    }

    /// The cluster connection.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Creates a topic; TOPIC_ALREADY_EXISTS and friends come back as errors.
    pub async fn create_topic(&self, t: &NewTopic) -> Result<()> {
        let conn = self.cluster.any().await?;
        let v = conn.version::<CreateTopicsRequest>(7)?;
        let topic = CreatableTopic::default()
            .with_name(TopicName(s(&t.name)))
            .with_num_partitions(t.partitions)
            .with_replication_factor(t.replication_factor)
            .with_configs(
                t.configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(self.cluster.config.request_timeout.as_millis() as i32);
        let resp = conn.send(&req, v).await?;
        let r = resp
            .topics
            .first()
            .ok_or_else(|| Error::Protocol("CreateTopics: empty answer".into()))?;
        Error::check(
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            || format!("create topic {}", t.name),
        )?;
        self.cluster.invalidate(&t.name);
        Ok(())
    }

    /// Deletes topics; the first error is returned after all were tried.
    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let conn = self.cluster.any().await?;
        let v = conn.version::<DeleteTopicsRequest>(6)?;
        let mut req = DeleteTopicsRequest::default()
            .with_timeout_ms(self.cluster.config.request_timeout.as_millis() as i32);
        if v >= 6 {
            req.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(TopicName(s(n)))))
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| TopicName(s(n))).collect();
        }
        let resp = conn.send(&req, v).await?;
        for n in names {
            self.cluster.invalidate(n);
        }
        for r in &resp.responses {
            let name = r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            Error::check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                || format!("delete topic {name}"),
            )?;
        }
        Ok(())
    }

    /// Every topic, internal ones only when asked.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<Arc<TopicInfo>>> {
        let all = self.cluster.all_topics().await?;
        Ok(all
            .into_iter()
            .filter(|t| include_internal || !t.internal)
            .collect())
    }

    /// One topic's partitions, fresh from the broker.
    pub async fn describe_topic(&self, name: &str) -> Result<Arc<TopicInfo>> {
        self.cluster.invalidate(name);
        self.cluster.topic(name, false).await
    }

    /// Grows a topic to `total` partitions.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let conn = self.cluster.any().await?;
        let v = conn.version::<CreatePartitionsRequest>(3)?;
        let req = CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_count(total)
                .with_assignments(None)])
            .with_timeout_ms(self.cluster.config.request_timeout.as_millis() as i32);
        let resp = conn.send(&req, v).await?;
        for r in &resp.results {
            Error::check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                || format!("add partitions to {topic}"),
            )?;
        }
        self.cluster.invalidate(topic);
        Ok(())
    }

    /// A topic's or broker's configuration.
    pub async fn describe_configs(
        &self,
        kind: ConfigResource,
        name: &str,
    ) -> Result<Vec<ConfigEntry>> {
        let conn = match kind {
            ConfigResource::Broker => match name.parse::<i32>() {
                Ok(id) => self.cluster.node(id).await?,
                Err(_) => {
                    return Err(Error::Config(format!(
                        "a broker is named by its node id, not {name:?}"
                    )))
                }
            },
            ConfigResource::Topic => self.cluster.any().await?,
        };
        let v = conn.version::<DescribeConfigsRequest>(4)?;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(kind.code())
                .with_resource_name(s(name))
                .with_configuration_keys(None),
        ]);
        let resp = conn.send(&req, v).await?;
        let r = resp
            .results
            .first()
            .ok_or_else(|| Error::Protocol("DescribeConfigs: empty answer".into()))?;
        Error::check(
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
            || format!("describe configs of {name}"),
        )?;
        let mut out: Vec<ConfigEntry> = r
            .configs
            .iter()
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: c.value.as_ref().map(|v| v.to_string()),
                source: source_name(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Changes a topic's or broker's configuration key by key.
    pub async fn alter_configs(
        &self,
        kind: ConfigResource,
        name: &str,
        ops: &[AlterOp],
    ) -> Result<()> {
        let conn = self.cluster.any().await?;
        let v = conn.version::<IncrementalAlterConfigsRequest>(1)?;
        let configs = ops
            .iter()
            .map(|op| match op {
                AlterOp::Set(k, val) => AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(0)
                    .with_value(Some(s(val))),
                AlterOp::Delete(k) => AlterableConfig::default()
                    .with_name(s(k))
                    .with_config_operation(1),
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind.code())
                .with_resource_name(s(name))
                .with_configs(configs),
        ]);
        let resp = conn.send(&req, v).await?;
        for r in &resp.responses {
            Error::check(
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
                || format!("alter configs of {name}"),
            )?;
        }
        Ok(())
    }

    /// Every group on every broker.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let mut out = Vec::new();
        let brokers = self.cluster.brokers();
        for b in brokers {
            let conn = self.cluster.node(b.node_id).await?;
            let v = conn.version::<ListGroupsRequest>(5)?;
            let resp = conn.send(&ListGroupsRequest::default(), v).await?;
            Error::check(resp.error_code, None, || {
                format!("list groups on broker {}", b.node_id)
            })?;
            for g in &resp.groups {
                out.push(GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: g.group_state.to_string(),
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// A group's state and members; GROUP_ID_NOT_FOUND-like answers come back as state Dead.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        offsets::with_coordinator(&self.cluster, group, |conn| async move {
            let v = conn.version::<DescribeGroupsRequest>(5)?;
            let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
            let resp = conn.send(&req, v).await?;
            let g = resp
                .groups
                .first()
                .ok_or_else(|| Error::Protocol("DescribeGroups: empty answer".into()))?;
            Error::check(
                g.error_code,
                g.error_message.as_ref().map(|m| m.to_string()),
                || format!("describe group {group}"),
            )?;
            let consumer = g.protocol_type.as_str() == "consumer";
            Ok(GroupDescription {
                group_id: g.group_id.0.to_string(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: g.protocol_data.to_string(),
                members: g
                    .members
                    .iter()
                    .map(|m| MemberDescription {
                        member_id: m.member_id.to_string(),
                        instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                        client_id: m.client_id.to_string(),
                        host: m.client_host.to_string(),
                        assignment: if consumer {
                            crate::group::decode_assignment(m.member_assignment.clone())
                                .unwrap_or_default()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            })
        })
        .await
    }

    /// A group's committed offsets.
    pub async fn committed_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, Committed>> {
        offsets::fetch_committed(&self.cluster, group, None, false).await
    }

    /// Offsets by timestamp ([`offsets::EARLIEST`], [`offsets::LATEST`] or ms) per partition.
    pub async fn list_offsets(
        &self,
        wanted: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        offsets::list_offsets(&self.cluster, wanted, false).await
    }

    /// A group's lag: every committed or assigned partition with its log end.
    pub async fn group_lag(&self, group: &str) -> Result<(GroupDescription, Vec<LagRow>)> {
        let desc = self.describe_group(group).await?;
        let committed = self.committed_offsets(group).await?;
        let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
        for m in &desc.members {
            for tp in &m.assignment {
                owner.insert(tp.clone(), m.member_id.clone());
            }
        }
        let mut tps: Vec<TopicPartition> = committed.keys().cloned().collect();
        tps.extend(owner.keys().cloned());
        tps.sort();
        tps.dedup();
        let ends = self
            .list_offsets(
                &tps.iter()
                    .map(|tp| (tp.clone(), LATEST))
                    .collect::<Vec<_>>(),
            )
            .await?;
        let rows = tps
            .into_iter()
            .map(|tp| {
                let c = committed.get(&tp).map(|c| c.offset);
                let end = ends.get(&tp).map_or(-1, |l| l.offset);
                LagRow {
                    lag: c.map(|c| (end - c).max(0)),
                    committed: c,
                    log_end: end,
                    member: owner.get(&tp).cloned(),
                    tp,
                }
            })
            .collect();
        Ok((desc, rows))
    }

    /// Deletes groups (NON_EMPTY_GROUP while members remain).
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        offsets::with_coordinator(&self.cluster, group, |conn| async move {
            let v = conn.version::<DeleteGroupsRequest>(2)?;
            let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
            let resp = conn.send(&req, v).await?;
            for r in &resp.results {
                Error::check(r.error_code, None, || format!("delete group {group}"))?;
            }
            Ok(())
        })
        .await
    }

    /// Plans moving `group`'s offsets on `topics` (all partitions of each) to `target`; with
    /// `execute` the plan is committed, which Kafka allows only while the group has no members.
    pub async fn reset_offsets(
        &self,
        group: &str,
        topics: &[String],
        target: ResetTarget,
        execute: bool,
    ) -> Result<Vec<ResetPlan>> {
        let desc = self.describe_group(group).await?;
        if !desc.members.is_empty() || !matches!(desc.state.as_str(), "Empty" | "Dead" | "") {
            return Err(Error::Config(format!(
                "group {group} is {} with {} member(s): stop its consumers before resetting offsets",
                desc.state,
                desc.members.len()
            )));
        }
        let committed = self.committed_offsets(group).await?;
        let mut tps = Vec::new();
        for t in topics {
            let info = self.describe_topic(t).await?;
            tps.extend(info.partitions.iter().map(|p| (t.clone(), p.partition)));
        }
        let spec = |ts: i64| tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>();
        let starts = self.list_offsets(&spec(EARLIEST)).await?;
        let ends = self.list_offsets(&spec(LATEST)).await?;
        let by_time = match target {
            ResetTarget::Datetime(ts) => Some(self.list_offsets(&spec(ts)).await?),
            _ => None,
        };
        let mut plan = Vec::new();
        for tp in tps {
            let lo = starts.get(&tp).map_or(0, |l| l.offset);
            let hi = ends.get(&tp).map_or(0, |l| l.offset);
            let current = committed.get(&tp).map(|c| c.offset);
            let want = match target {
                ResetTarget::Earliest => lo,
                ResetTarget::Latest => hi,
                ResetTarget::Offset(o) => o,
                ResetTarget::ShiftBy(d) => current.unwrap_or(lo).saturating_add(d),
                ResetTarget::Datetime(_) => by_time
                    .as_ref()
                    .and_then(|m| m.get(&tp))
                    .map(|l| l.offset)
                    .filter(|o| *o >= 0)
                    .unwrap_or(hi),
            };
            plan.push(ResetPlan {
                tp,
                current,
                target: want.clamp(lo, hi),
            });
        }
        if execute {
            let who = Committer {
                group: group.to_string(),
                generation: -1,
                member_id: String::new(),
                instance_id: None,
            };
            let map = plan
                .iter()
                .map(|p| {
                    (
                        p.tp.clone(),
                        Committed {
                            offset: p.target,
                            metadata: Some(String::new()),
                        },
                    )
                })
                .collect();
            offsets::commit(&self.cluster, &who, &map).await?;
        }
        Ok(plan)
    }

    /// Deletes records before `offset` (-1: the high watermark) per partition; returns the new
    /// log start offsets.
    pub async fn delete_records(
        &self,
        wanted: &[(TopicPartition, i64)],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_node: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        for (tp, o) in wanted {
            let node = self.cluster.leader(&tp.0, tp.1).await?;
            by_node.entry(node).or_default().push((tp.clone(), *o));
        }
        let mut out = BTreeMap::new();
        for (node, items) in by_node {
            let conn = self.cluster.node(node).await?;
            let v = conn.version::<DeleteRecordsRequest>(2)?;
            let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
            for (tp, o) in &items {
                topics.entry(tp.0.as_str()).or_default().push(
                    DeleteRecordsPartition::default()
                        .with_partition_index(tp.1)
                        .with_offset(*o),
                );
            }
            let req = DeleteRecordsRequest::default()
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            DeleteRecordsTopic::default()
                                .with_name(TopicName(s(t)))
                                .with_partitions(ps)
                        })
                        .collect(),
                )
                .with_timeout_ms(self.cluster.config.request_timeout.as_millis() as i32);
            let resp = conn.send(&req, v).await?;
            for t in &resp.topics {
                for p in &t.partitions {
                    Error::check(p.error_code, None, || {
                        format!("delete records of {}-{}", t.name.0, p.partition_index)
                    })?;
                    out.insert((t.name.0.to_string(), p.partition_index), p.low_watermark);
                }
            }
        }
        Ok(out)
    }

    /// Every log dir of broker `node`, with the size of each partition replica in it.
    pub async fn describe_log_dirs(&self, node: i32) -> Result<Vec<LogDirDescription>> {
        let conn = self.cluster.node(node).await?;
        let v = conn.version::<DescribeLogDirsRequest>(4)?;
        let resp = conn
            .send(&DescribeLogDirsRequest::default().with_topics(None), v)
            .await?;
        Error::check(resp.error_code, None, || {
            format!("describe log dirs of broker {node}")
        })?;
        Ok(resp
            .results
            .iter()
            .map(|r| LogDirDescription {
                path: r.log_dir.to_string(),
                error: r.error_code,
                total_bytes: r.total_bytes,
                usable_bytes: r.usable_bytes,
                partitions: r
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(|p| ((t.name.0.to_string(), p.partition_index), p.partition_size))
                    })
                    .collect(),
            })
            .collect())
    }

    /// The cluster id, controller and brokers (DescribeCluster when served, else Metadata).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let conn = self.cluster.any().await?;
        if conn.supports::<DescribeClusterRequest>() {
            let v = conn.version::<DescribeClusterRequest>(1)?;
            let resp = conn.send(&DescribeClusterRequest::default(), v).await?;
            Error::check(
                resp.error_code,
                resp.error_message.as_ref().map(|m| m.to_string()),
                || "describe cluster".into(),
            )?;
            let mut brokers: Vec<BrokerInfo> = resp
                .brokers
                .iter()
                .map(|b| BrokerInfo {
                    node_id: b.broker_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                })
                .collect();
            brokers.sort_by_key(|b| b.node_id);
            return Ok(ClusterDescription {
                cluster_id: resp.cluster_id.to_string(),
                controller: resp.controller_id.0,
                brokers,
            });
        }
        self.cluster.refresh(Some(&[]), false).await?;
        let (controller, id) = self.cluster.controller_and_id();
        Ok(ClusterDescription {
            cluster_id: id.unwrap_or_default(),
            controller,
            brokers: self.cluster.brokers(),
        })
    }
}

/// Kafka's name for a DescribeConfigs config source.
pub fn source_name(code: i8) -> &'static str {
    match code {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        7 => "CLIENT_METRICS_CONFIG",
        8 => "GROUP_CONFIG",
        _ => "UNKNOWN",
    }
}
