//! OffsetDelete (key 47): removes a group's committed offsets of topics it no longer consumes.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::{AclOperation as Op, ResourceType as Rt};

/// Handles OffsetDelete.
pub async fn handle(ctx: &RequestContext, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    // As Kafka: DELETE on the group, READ on each topic.
    if !ctx.authorize(Op::Delete, Rt::Group, &req.group_id.0) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let image = ctx.broker.image();
    // Partitions of unknown topics are answered here; the rest go to the coordinator.
    let mut known = Vec::new();
    let mut answers: Vec<Vec<Option<i16>>> = Vec::new();
    for t in &req.topics {
        let topic = image.topic(&t.name.0);
        let mut row = Vec::new();
        if !ctx.authorize(Op::Read, Rt::Topic, &t.name.0) {
            row.extend(
                t.partitions
                    .iter()
                    .map(|_| Some(ResponseError::TopicAuthorizationFailed.code())),
            );
            answers.push(row);
            continue;
        }
        for p in &t.partitions {
            let exists = topic.is_some_and(|tt| {
                p.partition_index >= 0 && (p.partition_index as usize) < tt.partitions.len()
            });
            if exists {
                known.push((t.name.0.to_string(), p.partition_index));
                row.push(None);
            } else {
                row.push(Some(ResponseError::UnknownTopicOrPartition.code()));
            }
        }
        answers.push(row);
    }
    let errors = match ctx
        .broker
        .groups
        .delete_offsets(&ctx.broker, &req.group_id.0, &known)
    {
        Ok(e) => super::offset_commit::acknowledged(ctx, &req.group_id.0, e).await,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut errors = errors.into_iter();
    OffsetDeleteResponse::default().with_topics(
        req.topics
            .into_iter()
            .zip(answers)
            .map(|(t, row)| {
                OffsetDeleteResponseTopic::default()
                    .with_partitions(
                        t.partitions
                            .iter()
                            .zip(row)
                            .map(|(p, a)| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(
                                        a.unwrap_or_else(|| errors.next().unwrap_or(0)),
                                    )
                            })
                            .collect(),
                    )
                    .with_name(t.name)
            })
            .collect(),
    )
}
