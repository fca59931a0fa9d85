//! CreateTopics (key 19): partitions, replication factor (1 on a single node; more refused with
//! INVALID_REPLICATION_FACTOR), explicit assignments, topic configs and `validate_only`.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::ResponseError;

use super::describe_configs::topic_config_rows;
use super::{sb, RequestContext};
use crate::controller;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt, CLUSTER_NAME};

/// Handles CreateTopics.
pub fn handle(ctx: &RequestContext, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in &req.topics {
        *counts.entry(t.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(req.topics.len());
    // As Kafka: CREATE on the cluster, else on each topic; the configs of a created topic are
    // answered only with DESCRIBE_CONFIGS on it (else topic_config_error_code says why).
    let cluster_create = ctx.allowed(Op::Create, Rt::Cluster, CLUSTER_NAME);
    for t in req.topics {
        let name = t.name.0.to_string();
        let base = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if counts[&name] > 1 {
            results.push(
                base.with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(sb(format!(
                        "Duplicate topic name {name} in the request"
                    )))),
            );
            continue;
        }
        if !cluster_create && !ctx.authorize(Op::Create, Rt::Topic, &name) {
            results.push(
                base.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(sb("Authorization failed."))),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => null_config = Some(c.name.to_string()),
            }
        }
        if let Some(k) = null_config {
            results.push(
                base.with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(sb(format!(
                        "Null value not supported for topic configs: {k}"
                    )))),
            );
            continue;
        }
        let assignments: Vec<(i32, Vec<i32>)> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        match controller::create_topic(
            &ctx.broker,
            &name,
            t.num_partitions,
            t.replication_factor,
            &assignments,
            configs.clone(),
            req.validate_only,
        ) {
            Ok(created) => {
                let rows = topic_config_rows(&ctx.broker, &created.configs);
                let cfgs = rows
                    .into_iter()
                    .map(|r| {
                        CreatableTopicConfigs::default()
                            .with_name(sb(r.name))
                            .with_value(r.value.map(sb))
                            .with_read_only(r.read_only)
                            .with_config_source(r.source)
                            .with_is_sensitive(r.sensitive)
                    })
                    .collect();
                let mut r = base.with_error_code(0);
                if ctx.api_version >= 5 {
                    r = r
                        .with_num_partitions(created.num_partitions)
                        .with_replication_factor(created.replication_factor)
                        .with_configs(Some(cfgs));
                    if !ctx.allowed(Op::DescribeConfigs, Rt::Topic, &name) {
                        r = r.with_configs(None).with_topic_config_error_code(
                            ResponseError::TopicAuthorizationFailed.code(),
                        );
                    }
                }
                if ctx.api_version >= 7 {
                    r = r.with_topic_id(created.topic_id);
                }
                results.push(r);
            }
            Err(e) => results.push(
                base.with_error_code(e.error.code())
                    .with_error_message(Some(sb(e.message))),
            ),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}
