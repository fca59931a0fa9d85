//! AlterClientQuotas (key 49): sets and removes client quota values on user, client-id,
//! user+client-id and IP entities (named or default), through the active controller, which
//! checks them as Kafka's `ClientQuotaControlManager` and writes ClientQuotaRecords to the
//! metadata log. One result per entity.

use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse};

use super::{sb, RequestContext};
use crate::controller::quotas::{alter_client_quotas, QuotaAlteration, QuotaResult};

fn entry(r: QuotaResult) -> EntryData {
    EntryData::default()
        .with_error_code(r.error_code)
        .with_error_message(r.message.map(sb))
        .with_entity(
            r.entity
                .into_iter()
                .map(|(t, n)| {
                    EntityData::default()
                        .with_entity_type(sb(t))
                        .with_entity_name(n.map(sb))
                })
                .collect(),
        )
}

/// Handles AlterClientQuotas.
pub fn handle(ctx: &RequestContext, req: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let alterations: Vec<QuotaAlteration> = req
        .entries
        .iter()
        .map(|e| QuotaAlteration {
            entity: e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect(),
            ops: e
                .ops
                .iter()
                .map(|o| QuotaAlteration::op(o.key.to_string(), (!o.remove).then_some(o.value)))
                .collect(),
        })
        .collect();
    // As Kafka: ALTER_CONFIGS on the cluster, else every entity fails.
    let outcome = if ctx.authorize_cluster(crate::security::acl::AclOperation::AlterConfigs) {
        alter_client_quotas(&ctx.broker, alterations.clone(), req.validate_only)
    } else {
        Err(crate::controller::ControllerError::new(
            kafka_protocol::ResponseError::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    };
    let entries = match outcome {
        Ok(results) => results.into_iter().map(entry).collect(),
        // The controller could not be reached (or refused the whole request): every entity
        // gets its error, as Kafka's getErrorResponse answers.
        Err(e) => alterations
            .into_iter()
            .map(|a| {
                entry(QuotaResult {
                    entity: a.entity,
                    error_code: e.error.code(),
                    message: Some(e.message.clone()),
                })
            })
            .collect(),
    };
    AlterClientQuotasResponse::default().with_entries(entries)
}
