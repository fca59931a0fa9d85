//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on a topic's config
//! overrides (list-typed configs such as `cleanup.policy` for the last two), validated and applied
//! without a restart; SET and DELETE on a broker's (or the cluster default's) dynamic configs, the
//! replication throttles, and on this broker's loggers (their levels, at once, on this node only).

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::ResponseError;
use runnel_metadata::records::{RESOURCE_BROKER, RESOURCE_TOPIC};

use super::alter_configs::unsupported_resource;
use super::{sb, RequestContext};
use crate::controller;

/// Config operation codes.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// SET and DELETE on a broker's dynamic overrides (its id, or "" for the cluster default).
fn alter_broker(
    ctx: &RequestContext,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let name = r.resource_name.to_string();
    let mut configs = ctx
        .broker
        .image()
        .broker_configs
        .get(&name)
        .cloned()
        .unwrap_or_default();
    for c in &r.configs {
        let key = c.name.to_string();
        match (c.config_operation, &c.value) {
            (SET, Some(v)) => {
                configs.insert(key, v.to_string());
            }
            (SET, None) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for: {key}"),
                ))
            }
            (DELETE, _) => {
                configs.remove(&key);
            }
            (op, _) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Config operation {op} is not supported for broker config {key}"),
                ))
            }
        }
    }
    controller::set_broker_configs(&ctx.broker, &name, configs, validate_only)
        .map_err(|e| (e.error, e.message))
}

/// SET and DELETE on this broker's loggers.
fn alter_loggers(
    ctx: &RequestContext,
    r: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let node = ctx.broker.config.node_id;
    if r.resource_name.as_str() != node.to_string() {
        return Err((
            ResponseError::InvalidRequest,
            format!(
                "Unexpected broker id, expected {node} but received {}",
                r.resource_name.as_str()
            ),
        ));
    }
    let mut changes = Vec::with_capacity(r.configs.len());
    for c in &r.configs {
        let logger = c.name.to_string();
        let level = match (c.config_operation, &c.value) {
            (SET, Some(v)) => Some(v.to_string()),
            (SET, None) => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Null value not supported for: {logger}"),
                ))
            }
            (DELETE, _) => None,
            (op, _) => {
                let name = if op == APPEND { "APPEND" } else { "SUBTRACT" };
                return Err((
                    ResponseError::InvalidRequest,
                    format!("{name} operation is not allowed for the BROKER_LOGGER resource"),
                ));
            }
        };
        changes.push(crate::logging::Change { logger, level });
    }
    crate::logging::alter(&changes, validate_only)
}

/// Handles IncrementalAlterConfigs.
pub fn handle(
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let base = AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            if let Some(e) = crate::security::acl::config_authorization(
                ctx,
                r.resource_type,
                &r.resource_name,
                crate::security::acl::AclOperation::AlterConfigs,
            ) {
                return base.with_error_code(e.code());
            }
            if r.resource_type == RESOURCE_BROKER {
                return match alter_broker(ctx, &r, req.validate_only) {
                    Ok(()) => base.with_error_code(0),
                    Err((e, m)) => base
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(m))),
                };
            }
            if r.resource_type == super::describe_configs::RESOURCE_BROKER_LOGGER {
                return match alter_loggers(ctx, &r, req.validate_only) {
                    Ok(()) => base.with_error_code(0),
                    Err((e, m)) => base
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(m))),
                };
            }
            if r.resource_type != RESOURCE_TOPIC {
                let (e, m) = unsupported_resource(r.resource_type);
                return base
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(m)));
            }
            let name = r.resource_name.to_string();
            let image = ctx.broker.image();
            let Some(topic) = image.topic(&name) else {
                return base
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                    .with_error_message(Some(sb(format!("Topic {name} does not exist."))));
            };
            let mut configs = topic.configs.clone();
            for c in &r.configs {
                let key = c.name.to_string();
                let value = c.value.as_ref().map(|v| v.to_string());
                match c.config_operation {
                    SET => match value {
                        Some(v) => {
                            configs.insert(key, v);
                        }
                        None => {
                            return base
                                .with_error_code(ResponseError::InvalidRequest.code())
                                .with_error_message(Some(sb(format!(
                                    "Null value not supported for: {key}"
                                ))))
                        }
                    },
                    DELETE => {
                        configs.remove(&key);
                    }
                    APPEND | SUBTRACT => {
                        let current = configs
                            .get(&key)
                            .cloned()
                            .or_else(|| {
                                super::describe_configs::topic_config_rows(&ctx.broker, &configs)
                                    .into_iter()
                                    .find(|row| row.name == key)
                                    .and_then(|row| row.value)
                            })
                            .unwrap_or_default();
                        let mut items = split_list(&current);
                        for v in split_list(value.as_deref().unwrap_or_default()) {
                            if c.config_operation == APPEND {
                                if !items.contains(&v) {
                                    items.push(v);
                                }
                            } else {
                                items.retain(|x| x != &v);
                            }
                        }
                        configs.insert(key, items.join(","));
                    }
                    other => {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(sb(format!(
                                "Unknown config operation {other}"
                            ))))
                    }
                }
            }
            match controller::set_topic_configs(&ctx.broker, &name, configs, req.validate_only) {
                Ok(()) => base.with_error_code(0),
                Err(e) => base
                    .with_error_code(e.error.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
