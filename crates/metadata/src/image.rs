//! The metadata image: an immutable snapshot of topics, partitions and configs that request
//! handlers read without locks. Applying a record yields the next image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{BrokerEndpoint, MetadataRecord, RESOURCE_BROKER, RESOURCE_TOPIC};

/// One partition as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    /// Partition index.
    pub partition: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Leader node id.
    pub leader: i32,
    /// Leader epoch.
    pub leader_epoch: i32,
    /// Partition epoch (bumped by every change of the partition's record).
    pub partition_epoch: i32,
    /// Replicas a reassignment in progress adds (already in `replicas`).
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment in progress removes once the adding ones are in the ISR.
    pub removing_replicas: Vec<i32>,
    /// Eligible leader replicas (KIP-966): out of the ISR, holding every committed record.
    pub eligible_leader_replicas: Vec<i32>,
    /// The last known leader, kept once the ISR became empty (KIP-966's last known ELR).
    pub last_known_elr: Vec<i32>,
}

impl PartitionImage {
    /// The record that sets this partition of topic `topic_id` to this state.
    pub fn to_record(&self, topic_id: Uuid) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: self.partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
            eligible_leader_replicas: self.eligible_leader_replicas.clone(),
            last_known_elr: self.last_known_elr.clone(),
        }
    }

    /// Whether a reassignment of this partition is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment in progress moves to (all of them when none is).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }
}

/// A registered broker as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerImage {
    /// Node id.
    pub id: i32,
    /// Run of the broker process this registration belongs to.
    pub incarnation_id: Uuid,
    /// Epoch of the registration.
    pub epoch: i64,
    /// Advertised listeners.
    pub endpoints: Vec<BrokerEndpoint>,
    /// Rack, if any.
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of new placements.
    pub fenced: bool,
}

impl BrokerImage {
    /// The endpoint of listener `name`, if the broker has one.
    pub fn endpoint(&self, name: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }
}

/// One topic as the metadata knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partitions in index order.
    pub partitions: Vec<PartitionImage>,
    /// Topic config overrides.
    pub configs: BTreeMap<String, String>,
}

/// An immutable snapshot of the cluster's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Cluster id, once written.
    pub cluster_id: Option<String>,
    /// SCRAM credentials (AlterUserScramCredentials).
    pub scram: crate::scram::ScramImage,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id.
    pub topic_names: HashMap<Uuid, String>,
    /// Dynamic broker config overrides, by broker id ("" = cluster default).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Registered brokers by id.
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// The next producer id to hand out.
    pub next_producer_id: i64,
    /// Client quotas (AlterClientQuotas), shared between images until one changes.
    pub client_quotas: Arc<crate::quotas::ClientQuotasImage>,
    /// Finalized feature levels set through UpdateFeatures, by feature name; a feature not
    /// here has the level the broker finalizes by default.
    pub features: BTreeMap<String, i16>,
    /// Every ACL (CreateAcls / DeleteAcls), shared between images until one changes.
    pub acls: Arc<crate::acls::AclImage>,
    /// Offset of the last record applied (-1 for an empty log).
    pub last_offset: i64,
}

impl MetadataImage {
    /// Looks a topic up by name.
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topics.get(name)
    }

    /// Looks a topic up by id.
    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicImage>> {
        self.topic_names.get(id).and_then(|n| self.topics.get(n))
    }

    /// Applies one record in place (used while building the next image).
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::Cluster { cluster_id } => self.cluster_id = Some(cluster_id.clone()),
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            } => self.scram.upsert(name, *mechanism, credential.clone()),
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                self.scram.remove(name, *mechanism)
            }
            MetadataRecord::Topic { name, topic_id } => {
                self.topic_names.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    Arc::new(TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: Vec::new(),
                        configs: BTreeMap::new(),
                    }),
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                adding_replicas,
                removing_replicas,
                eligible_leader_replicas,
                last_known_elr,
            } => {
                let Some(name) = self.topic_names.get(topic_id) else {
                    return;
                };
                if let Some(t) = self.topics.get_mut(name) {
                    let t = Arc::make_mut(t);
                    let p = PartitionImage {
                        partition: *partition,
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                        adding_replicas: adding_replicas.clone(),
                        removing_replicas: removing_replicas.clone(),
                        eligible_leader_replicas: eligible_leader_replicas.clone(),
                        last_known_elr: last_known_elr.clone(),
                    };
                    match t.partitions.iter_mut().find(|x| x.partition == *partition) {
                        Some(existing) => *existing = p,
                        None => {
                            t.partitions.push(p);
                            t.partitions.sort_by_key(|x| x.partition);
                        }
                    }
                }
            }
            MetadataRecord::Config {
                resource_type,
                resource_name,
                name,
                value,
            } => {
                if *resource_type == RESOURCE_TOPIC {
                    if let Some(t) = self.topics.get_mut(resource_name) {
                        let t = Arc::make_mut(t);
                        match value {
                            Some(v) => t.configs.insert(name.clone(), v.clone()),
                            None => t.configs.remove(name),
                        };
                    }
                } else if *resource_type == RESOURCE_BROKER {
                    match value {
                        Some(v) => {
                            self.broker_configs
                                .entry(resource_name.clone())
                                .or_default()
                                .insert(name.clone(), v.clone());
                        }
                        None => {
                            // A broker without overrides has no entry at all.
                            if let Some(m) = self.broker_configs.get_mut(resource_name) {
                                m.remove(name);
                                if m.is_empty() {
                                    self.broker_configs.remove(resource_name);
                                }
                            }
                        }
                    }
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerImage {
                        id: *broker_id,
                        incarnation_id: *incarnation_id,
                        epoch: *broker_epoch,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    if b.epoch == *broker_epoch {
                        b.fenced = fenced;
                    }
                }
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                self.brokers.remove(broker_id);
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id)
            }
            MetadataRecord::ClientQuota {
                entity,
                key,
                value,
                remove,
            } => Arc::make_mut(&mut self.client_quotas).apply(entity, key, value.0, *remove),
            MetadataRecord::FeatureLevel { name, level } => {
                self.features.insert(name.clone(), *level);
            }
            MetadataRecord::AccessControlEntry { id, acl } => {
                Arc::make_mut(&mut self.acls).insert(*id, acl.clone());
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                if self.acls.by_id.contains_key(id) {
                    Arc::make_mut(&mut self.acls).remove(id);
                }
            }
        }
    }
}

impl MetadataImage {
    /// The records that, applied in order to an empty image, rebuild this one (all but
    /// `last_offset`, which the log position sets): what a snapshot holds.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetadataRecord::Cluster {
                cluster_id: cluster_id.clone(),
            });
        }
        out.extend(self.scram.to_records());
        for topic in self.topics.values() {
            out.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
            });
            out.extend(topic.partitions.iter().map(|p| p.to_record(topic.topic_id)));
            out.extend(topic.configs.iter().map(|(k, v)| MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: topic.name.clone(),
                name: k.clone(),
                value: Some(v.clone()),
            }));
        }
        for (broker, configs) in &self.broker_configs {
            out.extend(configs.iter().map(|(k, v)| MetadataRecord::Config {
                resource_type: RESOURCE_BROKER,
                resource_name: broker.clone(),
                name: k.clone(),
                value: Some(v.clone()),
            }));
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                broker_id: b.id,
                incarnation_id: b.incarnation_id,
                broker_epoch: b.epoch,
                endpoints: b.endpoints.clone(),
                rack: b.rack.clone(),
            });
            if !b.fenced {
                out.push(MetadataRecord::UnfenceBroker {
                    broker_id: b.id,
                    broker_epoch: b.epoch,
                });
            }
        }
        if self.next_producer_id != 0 {
            out.push(MetadataRecord::ProducerIds {
                next_producer_id: self.next_producer_id,
            });
        }
        out.extend(self.client_quotas.to_records());
        out.extend(
            self.features
                .iter()
                .map(|(name, level)| MetadataRecord::FeatureLevel {
                    name: name.clone(),
                    level: *level,
                }),
        );
        out.extend(
            self.acls
                .by_id
                .iter()
                .map(|(id, acl)| MetadataRecord::AccessControlEntry {
                    id: *id,
                    acl: acl.clone(),
                }),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_lifecycle() {
        let mut img = MetadataImage::default();
        let id = Uuid::new_v4();
        img.apply(&MetadataRecord::Topic {
            name: "a".into(),
            topic_id: id,
        });
        for p in [1, 0] {
            img.apply(&MetadataRecord::Partition {
                topic_id: id,
                partition: p,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            });
        }
        img.apply(&MetadataRecord::Config {
            resource_type: RESOURCE_TOPIC,
            resource_name: "a".into(),
            name: "retention.ms".into(),
            value: Some("5".into()),
        });
        let t = img.topic("a").unwrap();
        assert_eq!(
            t.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(t.configs["retention.ms"], "5");
        assert_eq!(img.topic_by_id(&id).unwrap().name, "a");
        img.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(img.topic("a").is_none());
        assert!(img.topic_by_id(&id).is_none());
    }

    #[test]
    fn to_records_rebuilds_the_image() {
        let mut img = MetadataImage::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let records = vec![
            MetadataRecord::Cluster {
                cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            },
            MetadataRecord::Topic {
                name: "a".into(),
                topic_id: a,
            },
            MetadataRecord::Topic {
                name: "b".into(),
                topic_id: b,
            },
            MetadataRecord::Partition {
                topic_id: a,
                partition: 1,
                replicas: vec![1, 2, 3],
                isr: vec![2],
                leader: 2,
                leader_epoch: 3,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![1],
                last_known_elr: vec![3],
            },
            MetadataRecord::Partition {
                topic_id: a,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: "a".into(),
                name: "cleanup.policy".into(),
                value: Some("compact".into()),
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_BROKER,
                resource_name: "".into(),
                name: "log.retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_BROKER,
                resource_name: "1".into(),
                name: "x".into(),
                value: Some("y".into()),
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_BROKER,
                resource_name: "1".into(),
                name: "x".into(),
                value: None,
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 5000,
            },
            MetadataRecord::RemoveTopic { topic_id: b },
            MetadataRecord::FeatureLevel {
                name: "group.version".into(),
                level: 0,
            },
            MetadataRecord::AccessControlEntry {
                id: Uuid::from_u128(1),
                acl: crate::acls::AclEntry {
                    resource_type: 2,
                    resource_name: "a".into(),
                    pattern_type: crate::acls::PATTERN_PREFIXED,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission_type: 3,
                },
            },
            MetadataRecord::AccessControlEntry {
                id: Uuid::from_u128(2),
                acl: crate::acls::AclEntry {
                    resource_type: 4,
                    resource_name: "kafka-cluster".into(),
                    pattern_type: crate::acls::PATTERN_LITERAL,
                    principal: "User:bob".into(),
                    host: "*".into(),
                    operation: 7,
                    permission_type: 2,
                },
            },
            MetadataRecord::RemoveAccessControlEntry {
                id: Uuid::from_u128(2),
            },
        ];
        for r in &records {
            img.apply(r);
        }
        let mut rebuilt = MetadataImage::default();
        for r in img.to_records() {
            rebuilt.apply(&r);
        }
        assert_eq!(rebuilt, img);
        assert_eq!(rebuilt.features["group.version"], 0);
        let p = &rebuilt.topic("a").unwrap().partitions[1];
        assert_eq!(
            (&p.eligible_leader_replicas[..], &p.last_known_elr[..]),
            (&[1][..], &[3][..])
        );
        assert!(!img.broker_configs.contains_key("1"));
        assert_eq!(rebuilt.acls.by_id.len(), 1);
        assert_eq!(rebuilt.acls.matching(2, "abc").count(), 1);
        assert_eq!(MetadataImage::default().to_records(), vec![]);
    }
}
