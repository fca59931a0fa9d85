//! AlterConfigs (key 33): replaces a topic's whole set of config overrides, validated first and
//! applied to its partitions without a restart. Dynamic broker configs are not supported yet.

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::ResponseError;
use runnel_metadata::records::{RESOURCE_BROKER, RESOURCE_TOPIC};

use super::{sb, RequestContext};
use crate::controller;

/// The answer for resources other than topics.
pub fn unsupported_resource(resource_type: i8) -> (ResponseError, String) {
    (
        ResponseError::InvalidRequest,
        format!("Altering configs of resource type {resource_type} is not supported by Runnel yet"),
    )
}

/// Handles AlterConfigs.
pub fn handle(ctx: &RequestContext, req: AlterConfigsRequest) -> AlterConfigsResponse {
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
            if r.resource_type != RESOURCE_TOPIC && r.resource_type != RESOURCE_BROKER {
                let (e, m) = unsupported_resource(r.resource_type);
                return base
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(m)));
            }
            let mut configs = BTreeMap::new();
            for c in &r.configs {
                if let Some(v) = &c.value {
                    configs.insert(c.name.to_string(), v.to_string());
                }
            }
            let name = r.resource_name.as_str();
            let outcome = if r.resource_type == RESOURCE_BROKER {
                controller::set_broker_configs(&ctx.broker, name, configs, req.validate_only)
            } else {
                controller::set_topic_configs(&ctx.broker, name, configs, req.validate_only)
            };
            match outcome {
                Ok(()) => base.with_error_code(0),
                Err(e) => base
                    .with_error_code(e.error.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
