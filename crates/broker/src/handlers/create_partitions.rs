//! CreatePartitions (key 37): adds partitions to a topic; a count that is not an increase is
//! refused with INVALID_PARTITIONS.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::{sb, RequestContext};
use crate::controller;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};
use kafka_protocol::ResponseError;

/// Handles CreatePartitions.
pub fn handle(ctx: &RequestContext, req: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            // As on Kafka, an empty (non-null) list is a list of zero assignments.
            let assignments: Option<Vec<Vec<i32>>> = t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            });
            let base = CreatePartitionsTopicResult::default().with_name(t.name);
            if !ctx.authorize(Op::Alter, Rt::Topic, &name) {
                return base
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(Some(sb("Authorization failed.")));
            }
            match controller::create_partitions(
                &ctx.broker,
                &name,
                t.count,
                assignments.as_deref(),
                req.validate_only,
            ) {
                Ok(()) => base.with_error_code(0),
                Err(e) => base
                    .with_error_code(e.error.code())
                    .with_error_message(Some(sb(e.message))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
