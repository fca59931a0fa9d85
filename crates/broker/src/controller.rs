//! The controller: validates admin changes (topics, partitions, configs) and turns them into
//! metadata records, its only output. It never touches partitions or coordinators: the broker
//! publishes each committed image to the replica manager and the coordinators. On a single node
//! the controller runs inside the broker; every change still goes through the metadata quorum.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::ResponseError;
use runnel_config::TopicConfig;
use runnel_metadata::records::RESOURCE_TOPIC;
use runnel_metadata::MetadataRecord;
use uuid::Uuid;

use crate::broker::Broker;

/// A refused change: a Kafka error and a message.
#[derive(Debug, Clone)]
pub struct ControllerError {
    /// The Kafka error.
    pub error: ResponseError,
    /// A human-readable message.
    pub message: String,
}

impl ControllerError {
    /// Builds an error.
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            error,
            message: message.into(),
        }
    }
}

/// Commits records through the metadata quorum; the broker applies the resulting image to the
/// hosted partitions and coordinators before this returns.
fn propose(broker: &Broker, records: Vec<MetadataRecord>) -> Result<(), ControllerError> {
    broker.propose(records).map(|_| ()).map_err(|e| match e {
        runnel_metadata::QuorumError::NotLeader { .. } => {
            ControllerError::new(ResponseError::NotController, e.to_string())
        }
        _ => ControllerError::new(ResponseError::UnknownServerError, e.to_string()),
    })
}

/// Whether a topic is one of Kafka's internal topics (owned by a coordinator, not writable by
/// clients, flagged `is_internal` in Metadata).
pub fn is_internal_topic(name: &str) -> bool {
    name == crate::group::OFFSETS_TOPIC || name == "__transaction_state"
}

/// Kafka's longest legal topic name.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// Checks a topic name against Kafka's rules.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let bad = |m: String| {
        Err(ControllerError::new(
            ResponseError::InvalidTopicException,
            m,
        ))
    };
    if name.is_empty() {
        return bad("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return bad("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LEN} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// What a successful (or validate-only) topic creation produced.
pub struct CreatedTopic {
    /// The new topic id (nil for validate-only).
    pub topic_id: Uuid,
    /// Partition count.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Config overrides given.
    pub configs: BTreeMap<String, String>,
}

/// Validates replica assignments for a single-node cluster.
fn check_assignment(broker: &Broker, replicas: &[i32]) -> Result<(), ControllerError> {
    let node = broker.config.node_id;
    if replicas.is_empty() || replicas.iter().any(|&r| r != node) {
        return Err(ControllerError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("Replica assignment {replicas:?} names brokers that are not registered; the only broker is {node}"),
        ));
    }
    if replicas.len() > 1 {
        return Err(ControllerError::new(
            ResponseError::InvalidReplicaAssignment,
            format!("Replica assignment {replicas:?} contains duplicate brokers"),
        ));
    }
    Ok(())
}

/// Validates topic config overrides (names and values).
pub fn validate_topic_configs(
    broker: &Broker,
    configs: &BTreeMap<String, String>,
) -> Result<TopicConfig, ControllerError> {
    for (k, v) in configs {
        runnel_config::validate_topic_config(k, v)
            .map_err(|e| ControllerError::new(ResponseError::InvalidConfig, e.to_string()))?;
    }
    TopicConfig::resolve(&broker.config, configs)
        .map_err(|e| ControllerError::new(ResponseError::InvalidConfig, e.to_string()))
}

/// Creates a topic (or only validates the request when `validate_only`).
pub fn create_topic(
    broker: &Broker,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<CreatedTopic, ControllerError> {
    validate_topic_name(name)?;
    if broker.image().topic(name).is_some() {
        return Err(ControllerError::new(
            ResponseError::TopicAlreadyExists,
            format!("Topic '{name}' already exists."),
        ));
    }
    let (num_partitions, replication_factor) = if !assignments.is_empty() {
        if num_partitions != -1 || replication_factor != -1 {
            return Err(ControllerError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut seen = HashSet::new();
        for (i, (p, replicas)) in assignments.iter().enumerate() {
            if *p != i as i32 || !seen.insert(*p) {
                return Err(ControllerError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "Partitions in the replica assignment must be numbered 0 to N-1",
                ));
            }
            check_assignment(broker, replicas)?;
        }
        (assignments.len() as i32, assignments[0].1.len() as i16)
    } else {
        let np = if num_partitions == -1 {
            broker.config.num_partitions
        } else {
            num_partitions
        };
        let rf = if replication_factor == -1 {
            broker.config.default_replication_factor
        } else {
            replication_factor
        };
        if np <= 0 {
            return Err(ControllerError::new(
                ResponseError::InvalidPartitions,
                "Number of partitions was set to an invalid non-positive value.",
            ));
        }
        if rf <= 0 {
            return Err(ControllerError::new(
                ResponseError::InvalidReplicationFactor,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ));
        }
        if rf > 1 {
            return Err(ControllerError::new(
                ResponseError::InvalidReplicationFactor,
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only 1 broker(s) are registered."),
            ));
        }
        (np, rf)
    };
    validate_topic_configs(broker, &configs)?;
    if validate_only {
        return Ok(CreatedTopic {
            topic_id: Uuid::nil(),
            num_partitions,
            replication_factor,
            configs,
        });
    }
    let topic_id = Uuid::new_v4();
    let node = broker.config.node_id;
    let mut records = vec![MetadataRecord::Topic {
        name: name.to_string(),
        topic_id,
    }];
    for (k, v) in &configs {
        records.push(MetadataRecord::Config {
            resource_type: RESOURCE_TOPIC,
            resource_name: name.to_string(),
            name: k.clone(),
            value: Some(v.clone()),
        });
    }
    for p in 0..num_partitions {
        records.push(MetadataRecord::Partition {
            topic_id,
            partition: p,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
        });
    }
    propose(broker, records)?;
    tracing::info!(topic = name, partitions = num_partitions, "created topic");
    Ok(CreatedTopic {
        topic_id,
        num_partitions,
        replication_factor,
        configs,
    })
}

/// Deletes a topic: gone from metadata at once, files removed in the background.
pub fn delete_topic(broker: &Broker, name: &str) -> Result<Uuid, ControllerError> {
    let image = broker.image();
    let Some(topic) = image.topic(name) else {
        return Err(ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            "This server does not host this topic-partition.",
        ));
    };
    if is_internal_topic(name) {
        return Err(ControllerError::new(
            ResponseError::InvalidTopicException,
            format!("Topic {name} is an internal topic and cannot be deleted."),
        ));
    }
    let topic_id = topic.topic_id;
    propose(broker, vec![MetadataRecord::RemoveTopic { topic_id }])?;
    tracing::info!(topic = name, "deleted topic");
    Ok(topic_id)
}

/// Adds partitions to a topic (increase only).
pub fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    let image = broker.image();
    let Some(topic) = image.topic(name).cloned() else {
        return Err(ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("The topic '{name}' does not exist."),
        ));
    };
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(ControllerError::new(
            ResponseError::InvalidPartitions,
            format!("The topic {name} currently has {current} partition(s); {count} would not be an increase."),
        ));
    }
    if count == current {
        return Err(ControllerError::new(
            ResponseError::InvalidPartitions,
            format!("Topic already has {current} partition(s)."),
        ));
    }
    if let Some(a) = assignments {
        if a.len() as i32 != count - current {
            return Err(ControllerError::new(
                ResponseError::InvalidReplicaAssignment,
                format!(
                    "Attempted to add {} additional partition(s), but only {} assignment(s) were specified.",
                    count - current,
                    a.len()
                ),
            ));
        }
        for r in a {
            check_assignment(broker, r)?;
        }
    }
    if validate_only {
        return Ok(());
    }
    let node = broker.config.node_id;
    let records: Vec<MetadataRecord> = (current..count)
        .map(|p| MetadataRecord::Partition {
            topic_id: topic.topic_id,
            partition: p,
            replicas: vec![node],
            isr: vec![node],
            leader: node,
            leader_epoch: 0,
        })
        .collect();
    propose(broker, records)?;
    Ok(())
}

/// Replaces a topic's config overrides with `new_configs` (validated), and applies them to the
/// hosted partitions without a restart.
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    new_configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    let image = broker.image();
    let Some(topic) = image.topic(name).cloned() else {
        return Err(ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("Topic {name} does not exist."),
        ));
    };
    validate_topic_configs(broker, &new_configs)?;
    if validate_only {
        return Ok(());
    }
    let mut records = Vec::new();
    for (k, v) in &new_configs {
        if topic.configs.get(k) != Some(v) {
            records.push(MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: name.to_string(),
                name: k.clone(),
                value: Some(v.clone()),
            });
        }
    }
    for k in topic.configs.keys() {
        if !new_configs.contains_key(k) {
            records.push(MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: name.to_string(),
                name: k.clone(),
                value: None,
            });
        }
    }
    propose(broker, records)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a.b_c-1").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
