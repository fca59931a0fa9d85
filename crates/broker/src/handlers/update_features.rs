//! UpdateFeatures (key 57): sets finalized feature levels through the active controller
//! (forwarded from any node), all or none, recorded in the metadata log and advertised by
//! ApiVersions from then on (`controller::features` has the rules and what a level changes).
//! A refusal is INVALID_UPDATE_VERSION with Kafka's message, at the top level; v0 and v1 also
//! carry a result per feature on success, as Kafka's controller answers.

use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};

use super::{sb, RequestContext};
use crate::controller::{self, features::upgrade_type, features::FeatureUpdate};

/// Handles UpdateFeatures.
pub fn handle(ctx: &RequestContext, req: UpdateFeaturesRequest) -> UpdateFeaturesResponse {
    let v = ctx.api_version;
    // As Kafka: ALTER on the cluster.
    if !ctx.authorize_cluster(crate::security::acl::AclOperation::Alter) {
        return UpdateFeaturesResponse::default()
            .with_error_code(kafka_protocol::ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb("Cluster authorization failed.")));
    }
    let updates: Vec<FeatureUpdate> = req
        .feature_updates
        .iter()
        .map(|u| FeatureUpdate {
            name: u.feature.to_string(),
            level: u.max_version_level,
            // v0 says downgrade with a flag (a safe one); v1+ with the upgrade type.
            upgrade_type: match (v, u.allow_downgrade) {
                (0, true) => upgrade_type::SAFE_DOWNGRADE,
                (0, false) => upgrade_type::UPGRADE,
                _ => u.upgrade_type,
            },
        })
        .collect();
    let validate_only = v >= 1 && req.validate_only;
    match controller::update_features(&ctx.broker, updates, validate_only) {
        Ok(()) => {
            let results = if v <= 1 {
                req.feature_updates
                    .iter()
                    .map(|u| {
                        UpdatableFeatureResult::default()
                            .with_feature(u.feature.clone())
                            .with_error_code(0)
                    })
                    .collect()
            } else {
                vec![]
            };
            UpdateFeaturesResponse::default()
                .with_error_code(0)
                .with_results(results)
        }
        Err(e) => {
            tracing::info!(error = %e.message, "UpdateFeatures refused");
            UpdateFeaturesResponse::default()
                .with_error_code(e.error.code())
                .with_error_message(Some(sb(format!(
                    "The update failed for all features since the following feature had an error: {}",
                    e.message
                ))))
        }
    }
}
