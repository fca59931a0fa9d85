//! The controller's topic operations: names and configs checked as Kafka checks them, and the
//! records that create a topic (its partitions placed and led), delete it, add partitions and
//! set its configs; with the entry points admin handlers call.

use super::*;

/// Partition records for new partitions numbered from `first`, with the given replicas: the
/// unfenced replicas form the ISR, the first of them leads, epochs start at 0.
pub(super) fn new_partitions(
    image: &runnel_metadata::MetadataImage,
    topic_id: Uuid,
    first: i32,
    replica_lists: Vec<Vec<i32>>,
) -> impl Iterator<Item = MetadataRecord> + '_ {
    replica_lists
        .into_iter()
        .enumerate()
        .map(move |(i, replicas)| {
            let (isr, leader) = placement::initial_isr(image, &replicas);
            MetadataRecord::Partition {
                topic_id,
                partition: first + i as i32,
                replicas,
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            }
        })
}

/// Where the placement round of a new topic starts: at random, as in Kafka, so that topics
/// created one after another do not all lead on the same broker.
pub(super) fn random_start() -> usize {
    uuid::Uuid::new_v4().as_u128() as usize % 1024
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
pub(super) fn exec_create_topic(
    broker: &Broker,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<CreatedTopic, ControllerError> {
    validate_topic_name(name)?;
    let image = broker.image();
    if image.topic(name).is_some() {
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
            placement::check_assignment(&image, *p, replicas)?;
            if replicas.len() != assignments[0].1.len() {
                return Err(ControllerError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "All partitions in the manual partition assignment must have the same number of replicas.",
                ));
            }
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
        let available = placement::placement_order(&image).len();
        if rf as usize > available {
            return Err(placement::too_few_brokers(rf, available));
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
    let replica_lists: Vec<Vec<i32>> = if assignments.is_empty() {
        placement::place(
            &image,
            0,
            num_partitions,
            replication_factor,
            random_start(),
        )?
    } else {
        assignments.iter().map(|(_, r)| r.clone()).collect()
    };
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
    records.extend(new_partitions(&image, topic_id, 0, replica_lists));
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
pub(super) fn exec_delete_topic(broker: &Broker, name: &str) -> Result<Uuid, ControllerError> {
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
pub(super) fn exec_create_partitions(
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
        for (i, r) in a.iter().enumerate() {
            placement::check_assignment(&image, current + i as i32, r)?;
        }
    }
    if validate_only {
        return Ok(());
    }
    let replica_lists = match assignments {
        Some(a) => a.to_vec(),
        None => {
            let rf = topic
                .partitions
                .first()
                .map(|p| p.replicas.len() as i16)
                .unwrap_or(1);
            placement::place(&image, current, count - current, rf, random_start())?
        }
    };
    let records = new_partitions(&image, topic.topic_id, current, replica_lists).collect();
    propose(broker, records)?;
    Ok(())
}

/// Replaces a topic's config overrides with `new_configs` (validated), and applies them to the
/// hosted partitions without a restart.
pub(super) fn exec_set_topic_configs(
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
    if topic.configs.get("min.insync.replicas") != new_configs.get("min.insync.replicas") {
        // KIP-966: ELRs were formed against the old min ISR; they are cleared.
        records.extend(
            topic
                .partitions
                .iter()
                .filter_map(elr::cleared)
                .map(|p| p.to_record(topic.topic_id)),
        );
    }
    propose(broker, records)?;
    Ok(())
}

/// Creates a topic (or only validates the request when `validate_only`) on the active
/// controller.
pub fn create_topic(
    broker: &Broker,
    name: &str,
    num_partitions: i32,
    replication_factor: i16,
    assignments: &[(i32, Vec<i32>)],
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<CreatedTopic, ControllerError> {
    let ok = submit(
        broker,
        ControllerRequest::CreateTopic {
            name: name.to_string(),
            num_partitions,
            replication_factor,
            assignments: assignments.to_vec(),
            configs: configs.clone(),
            validate_only,
        },
    )?;
    Ok(CreatedTopic {
        topic_id: ok.topic_id.unwrap_or_default(),
        num_partitions: ok.num_partitions,
        replication_factor: ok.replication_factor,
        configs,
    })
}

/// Deletes a topic on the active controller: gone from metadata at once, files removed in the
/// background on every broker.
pub fn delete_topic(broker: &Broker, name: &str) -> Result<Uuid, ControllerError> {
    let ok = submit(
        broker,
        ControllerRequest::DeleteTopic {
            name: name.to_string(),
        },
    )?;
    Ok(ok.topic_id.unwrap_or_default())
}

/// Adds partitions to a topic (increase only) on the active controller.
pub fn create_partitions(
    broker: &Broker,
    name: &str,
    count: i32,
    assignments: Option<&[Vec<i32>]>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    submit(
        broker,
        ControllerRequest::CreatePartitions {
            name: name.to_string(),
            count,
            assignments: assignments.map(<[Vec<i32>]>::to_vec),
            validate_only,
        },
    )
    .map(|_| ())
}

/// Replaces a topic's config overrides with `new_configs` on the active controller; every
/// broker applies them to its partitions without a restart.
pub fn set_topic_configs(
    broker: &Broker,
    name: &str,
    new_configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    submit(
        broker,
        ControllerRequest::SetTopicConfigs {
            name: name.to_string(),
            configs: new_configs,
            validate_only,
        },
    )
    .map(|_| ())
}
