//! DescribeClientQuotas (key 48): the quota entities matching a filter, with their values, from
//! this broker's metadata image (Kafka's `ClientQuotasImage.describe`). A bad filter is answered
//! with the request's error (INVALID_REQUEST, or UNSUPPORTED_VERSION for an unknown entity type)
//! and no entries, as Kafka does.

use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::ResponseError;
use runnel_metadata::quotas::{FilterComponent, FilterError};

use super::{sb, RequestContext};

/// Handles DescribeClientQuotas.
pub fn handle(
    ctx: &RequestContext,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    // As Kafka: DESCRIBE_CONFIGS on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::DescribeConfigs) {
        return DescribeClientQuotasResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")))
            .with_entries(None);
    }
    let components: Vec<FilterComponent> = req
        .components
        .iter()
        .map(|c| FilterComponent {
            entity_type: c.entity_type.to_string(),
            match_type: c.match_type,
            name: c._match.as_ref().map(|m| m.to_string()),
        })
        .collect();
    let image = ctx.broker.image();
    match image.client_quotas.describe(&components, req.strict) {
        Ok(found) => DescribeClientQuotasResponse::default().with_entries(Some(
            found
                .into_iter()
                .map(|(entity, values)| {
                    EntryData::default()
                        .with_entity(
                            entity
                                .iter()
                                .map(|(t, n)| {
                                    EntityData::default()
                                        .with_entity_type(sb(t.clone()))
                                        .with_entity_name(n.clone().map(sb))
                                })
                                .collect(),
                        )
                        .with_values(
                            values
                                .iter()
                                .map(|(k, v)| {
                                    ValueData::default().with_key(sb(k.clone())).with_value(v.0)
                                })
                                .collect(),
                        )
                })
                .collect(),
        )),
        Err(e) => {
            let (error, message) = match e {
                FilterError::InvalidRequest(m) => (ResponseError::InvalidRequest, m),
                FilterError::UnsupportedVersion(m) => (ResponseError::UnsupportedVersion, m),
            };
            DescribeClientQuotasResponse::default()
                .with_error_code(error.code())
                .with_error_message(Some(sb(message)))
                .with_entries(None)
        }
    }
}
