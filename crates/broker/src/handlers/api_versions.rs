//! ApiVersions (key 18): the served version ranges and Kafka 4.x's feature levels. An unknown
//! request version never reaches this handler: the dispatcher answers it with error 35 and a v0
//! body (KIP-511).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::versions::SUPPORTED_APIS;

use super::{sb, RequestContext};

/// `metadata.version` feature level Runnel reports (Kafka 4.0's 4.0-IV3).
pub const METADATA_VERSION_LEVEL: i16 = 25;
/// `group.version` feature level: 1 enables the consumer group protocol (KIP-848).
pub const GROUP_VERSION_LEVEL: i16 = 1;
/// `transaction.version` feature level: 2 is KIP-890's second part (implicit partition adds,
/// an epoch bump at every transaction end).
pub const TRANSACTION_VERSION_LEVEL: i16 = 2;
/// The lowest `metadata.version` level Kafka 4.x supports (3.3-IV3).
pub const METADATA_VERSION_MIN: i16 = 7;

/// Handles ApiVersions.
pub fn handle(ctx: &RequestContext, _req: ApiVersionsRequest) -> ApiVersionsResponse {
    let api_keys = SUPPORTED_APIS
        .iter()
        .map(|r| {
            ApiVersion::default()
                .with_api_key(r.api_key as i16)
                .with_min_version(r.advertised_min)
                .with_max_version(r.max)
        })
        .collect();
    let mut resp = ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys);
    if ctx.api_version >= 3 {
        // group.version 1 is the consumer protocol (KIP-848); transaction.version 2 is KIP-890
        // (Produce 12, EndTxn 5 and TxnOffsetCommit 5 are served with its meaning).
        resp.supported_features = vec![
            SupportedFeatureKey::default()
                .with_name(sb("group.version"))
                .with_min_version(0)
                .with_max_version(GROUP_VERSION_LEVEL),
            SupportedFeatureKey::default()
                .with_name(sb("metadata.version"))
                .with_min_version(METADATA_VERSION_MIN)
                .with_max_version(METADATA_VERSION_LEVEL),
            SupportedFeatureKey::default()
                .with_name(sb("transaction.version"))
                .with_min_version(0)
                .with_max_version(TRANSACTION_VERSION_LEVEL),
        ];
        resp.finalized_features_epoch = ctx.broker.image().last_offset.max(0);
        resp.finalized_features = vec![
            FinalizedFeatureKey::default()
                .with_name(sb("group.version"))
                .with_min_version_level(GROUP_VERSION_LEVEL)
                .with_max_version_level(GROUP_VERSION_LEVEL),
            FinalizedFeatureKey::default()
                .with_name(sb("metadata.version"))
                .with_min_version_level(METADATA_VERSION_LEVEL)
                .with_max_version_level(METADATA_VERSION_LEVEL),
            FinalizedFeatureKey::default()
                .with_name(sb("transaction.version"))
                .with_min_version_level(TRANSACTION_VERSION_LEVEL)
                .with_max_version_level(TRANSACTION_VERSION_LEVEL),
        ];
    }
    resp
}
