//! Metadata (key 3), answered from this broker's metadata image: the live brokers at their
//! advertised address for the listener the client used, the active controller, topics with
//! stable ids, and each partition's leader, leader epoch, replicas, ISR and offline replicas
//! (a partition whose leader is fenced reports LEADER_NOT_AVAILABLE). Auto-creation when
//! enabled. With an authorizer, as Kafka: a topic the principal may not DESCRIBE is left out of
//! an all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when asked for by name (no id)
//! or id (no name); auto-creation needs CREATE on the cluster or on the topic (else
//! TOPIC_AUTHORIZATION_FAILED); authorized operations (v8+, when asked for) are the principal's.

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, TopicImage};
use uuid::Uuid;

use super::{is_live, sb, RequestContext};
use crate::controller;
use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};

fn topic_entry(image: &MetadataImage, version: i16, t: &TopicImage) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let leader = if is_live(image, p.leader) {
                p.leader
            } else {
                -1
            };
            let error = if leader < 0 {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|r| !is_live(image, **r))
                .map(|&r| BrokerId(r))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(leader))
                .with_offline_replicas(if version >= 5 { offline } else { vec![] })
                .with_leader_epoch(if version >= 7 { p.leader_epoch } else { -1 })
                .with_replica_nodes(p.replicas.iter().map(|&r| BrokerId(r)).collect())
                .with_isr_nodes(p.isr.iter().map(|&r| BrokerId(r)).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(TopicName(sb(t.name.clone()))))
        .with_topic_id(if version >= 10 {
            t.topic_id
        } else {
            Uuid::nil()
        })
        .with_is_internal(version >= 1 && controller::is_internal_topic(&t.name))
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

fn error_entry(
    version: i16,
    name: Option<String>,
    id: Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error.code())
        .with_name(name.map(|n| TopicName(sb(n))))
        .with_topic_id(if version >= 10 { id } else { Uuid::nil() })
        .with_topic_authorized_operations(i32::MIN)
}

/// Handles Metadata.
pub fn handle(ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let v = ctx.api_version;
    let mut image = broker.image();
    let mut topics = Vec::new();
    // v0: an empty list means all topics; v1+: null means all topics.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.api_version == 0,
    };
    if all {
        topics.extend(
            image
                .topics
                .values()
                .filter(|t| ctx.allowed(AclOperation::Describe, ResourceType::Topic, &t.name))
                .map(|t| topic_entry(&image, v, t)),
        );
    } else {
        for requested in req.topics.as_deref().unwrap_or_default() {
            let name = requested.name.as_ref().map(|n| n.0.to_string());
            let Some(name) = name else {
                // Lookup by topic id (v10+).
                match image.topic_by_id(&requested.topic_id) {
                    Some(t)
                        if !ctx.authorize(AclOperation::Describe, ResourceType::Topic, &t.name) =>
                    {
                        topics.push(error_entry(
                            v,
                            None,
                            t.topic_id,
                            ResponseError::TopicAuthorizationFailed,
                        ))
                    }
                    Some(t) => topics.push(topic_entry(&image, v, t)),
                    None => topics.push(error_entry(
                        v,
                        None,
                        requested.topic_id,
                        ResponseError::UnknownTopicId,
                    )),
                }
                continue;
            };
            if !ctx.authorize(AclOperation::Describe, ResourceType::Topic, &name) {
                topics.push(error_entry(
                    v,
                    Some(name),
                    Uuid::nil(),
                    ResponseError::TopicAuthorizationFailed,
                ));
                continue;
            }
            if let Some(t) = image.topic(&name) {
                topics.push(topic_entry(&image, v, t));
                continue;
            }
            if let Err(e) = controller::validate_topic_name(&name) {
                topics.push(error_entry(v, Some(name), Uuid::nil(), e.error));
                continue;
            }
            let auto = broker.config.auto_create_topics_enable
                && (ctx.api_version < 4 || req.allow_auto_topic_creation);
            if !auto {
                topics.push(error_entry(
                    v,
                    Some(name),
                    Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ));
                continue;
            }
            if !ctx.allowed(AclOperation::Create, ResourceType::Cluster, CLUSTER_NAME)
                && !ctx.authorize(AclOperation::Create, ResourceType::Topic, &name)
            {
                topics.push(error_entry(
                    v,
                    Some(name),
                    Uuid::nil(),
                    ResponseError::TopicAuthorizationFailed,
                ));
                continue;
            }
            match controller::create_topic(broker, &name, -1, -1, &[], Default::default(), false) {
                // Created now, or by a concurrent request: either way, answer with it.
                Ok(_) => {}
                Err(e) if e.error == ResponseError::TopicAlreadyExists => {}
                Err(e) => {
                    topics.push(error_entry(v, Some(name), Uuid::nil(), e.error));
                    continue;
                }
            }
            image = broker.image();
            match image.topic(&name) {
                Some(t) => topics.push(topic_entry(&image, v, t)),
                None => topics.push(error_entry(
                    v,
                    Some(name),
                    Uuid::nil(),
                    ResponseError::LeaderNotAvailable,
                )),
            }
        }
    }
    if v >= 8 && req.include_topic_authorized_operations {
        // Without an authorizer every topic operation is allowed, as Kafka reports it.
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    ctx.authorized_operations(ResourceType::Topic, &name.0);
            }
        }
    }
    let cluster_ops = if (8..=10).contains(&v) && req.include_cluster_authorized_operations {
        if ctx.authorize_cluster(AclOperation::Describe) {
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    } else {
        i32::MIN
    };
    MetadataResponse::default()
        .with_brokers(
            ctx.live_brokers(&image)
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(sb(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(sb))
                })
                .collect(),
        )
        .with_cluster_id(if v >= 2 {
            Some(sb(broker.cluster_id()))
        } else {
            None
        })
        .with_controller_id(BrokerId(if v >= 1 {
            ctx.controller_id(&image)
        } else {
            -1
        }))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}
