//! The metadata image: an immutable snapshot of topics, partitions and configs that request
//! handlers read without locks. Applying a record yields the next image.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use uuid::Uuid;

use crate::records::{MetadataRecord, RESOURCE_BROKER, RESOURCE_TOPIC};

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
#[derive(Debug, Clone, Default)]
pub struct MetadataImage {
    /// Cluster id, once written.
    pub cluster_id: Option<String>,
    /// Topics by name.
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    /// Topic names by id.
    pub topic_names: HashMap<Uuid, String>,
    /// Dynamic broker config overrides, by broker id ("" = cluster default).
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The next producer id to hand out.
    pub next_producer_id: i64,
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
                    let m = self
                        .broker_configs
                        .entry(resource_name.clone())
                        .or_default();
                    match value {
                        Some(v) => m.insert(name.clone(), v.clone()),
                        None => m.remove(name),
                    };
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                if let Some(name) = self.topic_names.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                self.next_producer_id = self.next_producer_id.max(*next_producer_id)
            }
        }
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
}
