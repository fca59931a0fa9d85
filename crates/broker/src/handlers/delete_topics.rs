//! DeleteTopics (key 20): by name (v0–v5) or by name or id (v6). Asynchronous like Kafka: the
//! topic leaves the metadata at once and its files are removed in the background, so a topic
//! re-created under the same name starts empty.

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::{sb, RequestContext};
use crate::controller;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles DeleteTopics.
pub fn handle(ctx: &RequestContext, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<String>, Uuid)> = Vec::new();
    if ctx.api_version >= 6 {
        for t in &req.topics {
            targets.push((t.name.as_ref().map(|n| n.0.to_string()), t.topic_id));
        }
    } else {
        for n in &req.topic_names {
            targets.push((Some(n.0.to_string()), Uuid::nil()));
        }
    }
    let mut results = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let image = ctx.broker.image();
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => image.topic_by_id(&id).map(|t| t.name.clone()),
        };
        let base = DeletableTopicResult::default()
            .with_name(resolved.clone().map(|n| TopicName(sb(n))))
            .with_topic_id(if ctx.api_version >= 6 {
                id
            } else {
                Uuid::nil()
            });
        let Some(topic) = resolved else {
            results.push(
                base.with_error_code(ResponseError::UnknownTopicId.code())
                    .with_error_message(Some(sb("This server does not host this topic ID."))),
            );
            continue;
        };
        if !ctx.authorize(Op::Delete, Rt::Topic, &topic) {
            results.push(
                base.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(sb("Authorization failed."))),
            );
            continue;
        }
        match controller::delete_topic(&ctx.broker, &topic) {
            Ok(topic_id) => results.push(base.with_error_code(0).with_topic_id(
                if ctx.api_version >= 6 {
                    topic_id
                } else {
                    Uuid::nil()
                },
            )),
            Err(e) => results.push(base.with_error_code(e.error.code()).with_error_message(
                if ctx.api_version >= 5 {
                    Some(sb(e.message))
                } else {
                    None
                },
            )),
        }
    }
    DeleteTopicsResponse::default().with_responses(results)
}
