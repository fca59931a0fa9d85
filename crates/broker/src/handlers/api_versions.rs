//! ApiVersions (key 18): the served version ranges and Kafka 4.x's feature levels (v3+: each
//! feature's supported range and its finalized level, what Kafka's DescribeFeatures and
//! `kafka-features describe` read; the table is `controller::features`). An unknown request
//! version never reaches this handler: the dispatcher answers it with error 35 and a v0 body
//! (KIP-511).

use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use runnel_protocol::versions::SUPPORTED_APIS;

use super::{sb, RequestContext};
use crate::controller::features::{finalized_level, FEATURES};

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
        // (Produce 12, EndTxn 5 and TxnOffsetCommit 5 are served with its meaning). Levels set
        // by UpdateFeatures come from the image; a level of 0 is not finalized, as in Kafka.
        let image = ctx.broker.image();
        resp.supported_features = FEATURES
            .iter()
            .map(|f| {
                SupportedFeatureKey::default()
                    .with_name(sb(f.name))
                    .with_min_version(f.min)
                    .with_max_version(f.max)
            })
            .collect();
        resp.finalized_features_epoch = image.last_offset.max(0);
        resp.finalized_features = FEATURES
            .iter()
            .map(|f| (f, finalized_level(&image, f)))
            .filter(|(_, level)| *level > 0)
            .map(|(f, level)| {
                FinalizedFeatureKey::default()
                    .with_name(sb(f.name))
                    .with_min_version_level(level)
                    .with_max_version_level(level)
            })
            .collect();
    }
    resp
}
