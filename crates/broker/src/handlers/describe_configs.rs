//! DescribeConfigs (key 32): every topic config (override or default, with its source and
//! synonyms) and every broker config this node knows, as `kafka-configs --describe --all` shows,
//! and this broker's loggers with their levels (`--entity-type broker-loggers`).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::ResponseError;
use runnel_config::{ConfigKind, ConfigSource};
use runnel_metadata::records::{RESOURCE_BROKER, RESOURCE_TOPIC};

use super::{sb, RequestContext};
use crate::broker::Broker;
use crate::security::acl::AclOperation as Op;

/// The BROKER_LOGGER resource type (a broker's loggers, named by its id).
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

/// Kafka's config source code of a broker logger's level.
const DYNAMIC_BROKER_LOGGER_CONFIG: i8 = 6;

/// One config as DescribeConfigs and CreateTopics report it.
pub struct ConfigRow {
    /// Config name.
    pub name: String,
    /// Value (None for sensitive or unset).
    pub value: Option<String>,
    /// Kafka's config source code.
    pub source: i8,
    /// Whether the value is read-only.
    pub read_only: bool,
    /// Whether the value is sensitive (hidden).
    pub sensitive: bool,
    /// Kafka's config type code.
    pub config_type: i8,
    /// Documentation line.
    pub doc: String,
    /// Synonyms, most specific first: (name, value, source).
    pub synonyms: Vec<(String, Option<String>, i8)>,
}

/// Kafka's DescribeConfigs type code for a config kind.
pub fn kind_code(kind: ConfigKind) -> i8 {
    match kind {
        ConfigKind::Boolean => 1,
        ConfigKind::String => 2,
        ConfigKind::Int => 3,
        ConfigKind::Short => 4,
        ConfigKind::Long => 5,
        ConfigKind::Double => 6,
        ConfigKind::List => 7,
        ConfigKind::Class => 8,
        ConfigKind::Password => 9,
    }
}

/// Every topic config for a topic with these overrides.
pub fn topic_config_rows(broker: &Broker, overrides: &BTreeMap<String, String>) -> Vec<ConfigRow> {
    let explicit = broker.config.explicit_keys();
    runnel_config::topic_config_entries()
        .iter()
        .map(|e| {
            let broker_value = e.broker_key.and_then(|k| broker.config.value_of(k));
            let mut synonyms = Vec::new();
            let (value, source) = if let Some(v) = overrides.get(e.name) {
                synonyms.push((
                    e.name.to_string(),
                    Some(v.clone()),
                    ConfigSource::DynamicTopicConfig.as_kafka_code(),
                ));
                (Some(v.clone()), ConfigSource::DynamicTopicConfig)
            } else if let (Some(k), Some(v)) = (e.broker_key, broker_value.clone()) {
                if explicit.contains(k) {
                    (Some(v), ConfigSource::StaticBrokerConfig)
                } else {
                    (Some(v), ConfigSource::Default)
                }
            } else {
                (e.default.map(|d| d.to_string()), ConfigSource::Default)
            };
            if let (Some(k), Some(v)) = (e.broker_key, broker_value) {
                let src = if explicit.contains(k) {
                    ConfigSource::StaticBrokerConfig
                } else {
                    ConfigSource::Default
                };
                synonyms.push((k.to_string(), Some(v), src.as_kafka_code()));
            }
            ConfigRow {
                name: e.name.to_string(),
                value: if e.sensitive { None } else { value },
                source: source.as_kafka_code(),
                read_only: false,
                sensitive: e.sensitive,
                config_type: kind_code(e.kind),
                doc: e.doc.to_string(),
                synonyms,
            }
        })
        .collect()
}

/// Every broker config of this node.
pub fn broker_config_rows(broker: &Broker) -> Vec<ConfigRow> {
    let described = broker.config.describe();
    let image = broker.image();
    runnel_config::broker_config_entries()
        .iter()
        .map(|e| {
            let dynamic =
                crate::replica::throttle::dynamic_value(&image, broker.config.node_id, e.name).map(
                    |(v, default)| {
                        let source = if default {
                            ConfigSource::DynamicDefaultBrokerConfig
                        } else {
                            ConfigSource::DynamicBrokerConfig
                        };
                        (Some(v), source)
                    },
                );
            let (value, source) = dynamic
                .or_else(|| {
                    described
                        .iter()
                        .find(|(n, _, _)| n == e.name)
                        .map(|(_, v, s)| (v.clone(), *s))
                })
                .unwrap_or((e.default.map(str::to_string), ConfigSource::Default));
            let code = source.as_kafka_code();
            ConfigRow {
                name: e.name.to_string(),
                value: if e.sensitive { None } else { value.clone() },
                source: code,
                read_only: e.read_only,
                sensitive: e.sensitive,
                config_type: kind_code(e.kind),
                doc: e.doc.to_string(),
                synonyms: vec![(
                    e.name.to_string(),
                    if e.sensitive { None } else { value },
                    code,
                )],
            }
        })
        .collect()
}

/// Handles DescribeConfigs.
pub fn handle(ctx: &RequestContext, req: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let broker = &ctx.broker;
    let req_version = ctx.api_version;
    let image = broker.image();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let name = r.resource_name.to_string();
            // As Kafka: DESCRIBE_CONFIGS on the topic or group; on the cluster for brokers,
            // broker loggers and client metrics.
            if let Some(e) = crate::security::acl::config_authorization(
                ctx,
                r.resource_type,
                &name,
                Op::DescribeConfigs,
            ) {
                return base.with_error_code(e.code());
            }
            let rows = match r.resource_type {
                RESOURCE_TOPIC => match image.topic(&name) {
                    Some(t) => topic_config_rows(broker, &t.configs),
                    None => {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(sb(format!("Topic {name} does not exist."))))
                    }
                },
                RESOURCE_BROKER => {
                    if !name.is_empty() && name != broker.config.node_id.to_string() {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(sb(format!(
                                "Unexpected broker id, expected {} but received {name}",
                                broker.config.node_id
                            ))));
                    }
                    broker_config_rows(broker)
                }
                // Broker loggers: every logger with its effective level.
                RESOURCE_BROKER_LOGGER => {
                    if name != broker.config.node_id.to_string() {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(sb(format!(
                                "Unexpected broker id, expected {} but received {name}",
                                broker.config.node_id
                            ))));
                    }
                    crate::logging::describe()
                        .into_iter()
                        .map(|(logger, level)| ConfigRow {
                            name: logger,
                            value: Some(level),
                            source: DYNAMIC_BROKER_LOGGER_CONFIG,
                            read_only: false,
                            sensitive: false,
                            config_type: kind_code(ConfigKind::String),
                            doc: String::new(),
                            synonyms: Vec::new(),
                        })
                        .collect()
                }
                other => {
                    return base
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(sb(format!("Unsupported resource type {other}"))))
                }
            };
            let keys = r.configuration_keys.as_ref();
            let configs = rows
                .into_iter()
                .filter(|row| {
                    keys.is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == row.name))
                })
                .map(|row| {
                    let synonyms = if req.include_synonyms {
                        row.synonyms
                            .into_iter()
                            .map(|(n, v, s)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(sb(n))
                                    .with_value(v.map(sb))
                                    .with_source(s)
                            })
                            .collect()
                    } else {
                        Vec::new()
                    };
                    DescribeConfigsResourceResult::default()
                        .with_name(sb(row.name))
                        .with_value(row.value.map(sb))
                        .with_read_only(row.read_only)
                        .with_config_source(row.source)
                        .with_is_sensitive(row.sensitive)
                        .with_synonyms(synonyms)
                        .with_config_type(if req_version >= 3 { row.config_type } else { 0 })
                        .with_documentation(if req.include_documentation {
                            Some(sb(row.doc))
                        } else {
                            None
                        })
                })
                .collect();
            base.with_error_code(0).with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
