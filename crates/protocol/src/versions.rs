//! The API versions Runnel serves, and the ranges it advertises in ApiVersions.
//!
//! Some ranges advertise a minimum lower than the one served (Produce 0, CreateTopics 0, ...): old
//! librdkafka versions enable features only when the advertised range *contains* those old versions,
//! and Kafka 4.x does the same. A request at an advertised-but-unserved version is refused with
//! UNSUPPORTED_VERSION (or a closed connection where no response can be encoded).

use kafka_protocol::messages::ApiKey;

/// One row of the version table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// The Kafka API key.
    pub api_key: ApiKey,
    /// The minimum version advertised in ApiVersions.
    pub advertised_min: i16,
    /// The minimum version actually served.
    pub min: i16,
    /// The maximum version served and advertised.
    pub max: i16,
}

const fn r(api_key: ApiKey, advertised_min: i16, min: i16, max: i16) -> ApiRange {
    ApiRange {
        api_key,
        advertised_min,
        min,
        max,
    }
}

/// Every API Runnel serves, in api-key order.
pub const SUPPORTED_APIS: &[ApiRange] = &[
    r(ApiKey::Produce, 0, 3, 12),
    r(ApiKey::Fetch, 4, 4, 16),
    r(ApiKey::ListOffsets, 1, 1, 9),
    r(ApiKey::Metadata, 0, 0, 12),
    r(ApiKey::OffsetCommit, 0, 2, 9),
    r(ApiKey::OffsetFetch, 0, 1, 9),
    r(ApiKey::FindCoordinator, 0, 0, 6),
    r(ApiKey::JoinGroup, 0, 0, 9),
    r(ApiKey::Heartbeat, 0, 0, 4),
    r(ApiKey::LeaveGroup, 0, 0, 5),
    r(ApiKey::SyncGroup, 0, 0, 5),
    r(ApiKey::DescribeGroups, 0, 0, 5),
    r(ApiKey::ListGroups, 0, 0, 5),
    // Answered by the connection's SASL authenticator on SASL listeners; elsewhere (and
    // after authentication) with ILLEGAL_SASL_STATE, as Kafka.
    r(ApiKey::SaslHandshake, 0, 0, 1),
    r(ApiKey::ApiVersions, 0, 0, 4),
    r(ApiKey::CreateTopics, 0, 2, 7),
    r(ApiKey::DeleteTopics, 0, 1, 6),
    r(ApiKey::DeleteRecords, 0, 0, 2),
    r(ApiKey::InitProducerId, 0, 0, 5),
    r(ApiKey::OffsetForLeaderEpoch, 0, 2, 4),
    r(ApiKey::AddPartitionsToTxn, 0, 0, 3),
    r(ApiKey::AddOffsetsToTxn, 0, 0, 4),
    r(ApiKey::EndTxn, 0, 0, 5),
    r(ApiKey::WriteTxnMarkers, 1, 1, 1),
    r(ApiKey::TxnOffsetCommit, 0, 0, 5),
    // No authorizer: answered with SECURITY_DISABLED, as Kafka 4.x does (which serves 1-3).
    r(ApiKey::DescribeAcls, 1, 1, 3),
    r(ApiKey::CreateAcls, 1, 1, 3),
    r(ApiKey::DeleteAcls, 1, 1, 3),
    r(ApiKey::DescribeConfigs, 0, 1, 4),
    r(ApiKey::AlterConfigs, 0, 0, 2),
    r(ApiKey::AlterReplicaLogDirs, 1, 1, 2),
    r(ApiKey::DescribeLogDirs, 1, 1, 4),
    r(ApiKey::SaslAuthenticate, 0, 0, 2),
    r(ApiKey::CreatePartitions, 0, 0, 3),
    r(ApiKey::DeleteGroups, 0, 0, 2),
    r(ApiKey::ElectLeaders, 0, 0, 2),
    r(ApiKey::IncrementalAlterConfigs, 0, 0, 1),
    r(ApiKey::AlterPartitionReassignments, 0, 0, 1),
    r(ApiKey::ListPartitionReassignments, 0, 0, 0),
    r(ApiKey::OffsetDelete, 0, 0, 0),
    r(ApiKey::DescribeClientQuotas, 0, 0, 1),
    r(ApiKey::AlterClientQuotas, 0, 0, 1),
    r(ApiKey::DescribeUserScramCredentials, 0, 0, 0),
    r(ApiKey::AlterUserScramCredentials, 0, 0, 0),
    r(ApiKey::DescribeQuorum, 0, 0, 2),
    r(ApiKey::UpdateFeatures, 0, 0, 2),
    r(ApiKey::DescribeCluster, 0, 0, 1),
    r(ApiKey::DescribeProducers, 0, 0, 0),
    r(ApiKey::UnregisterBroker, 0, 0, 0),
    r(ApiKey::DescribeTransactions, 0, 0, 0),
    r(ApiKey::ListTransactions, 0, 0, 1),
    r(ApiKey::ConsumerGroupHeartbeat, 0, 0, 1),
    r(ApiKey::ConsumerGroupDescribe, 0, 0, 1),
    r(ApiKey::DescribeTopicPartitions, 0, 0, 0),
    r(ApiKey::AddRaftVoter, 0, 0, 0),
    r(ApiKey::RemoveRaftVoter, 0, 0, 0),
];

/// Looks up the served range of an API key, if Runnel serves it.
pub fn supported(api_key: i16) -> Option<&'static ApiRange> {
    SUPPORTED_APIS.iter().find(|r| r.api_key as i16 == api_key)
}

/// What the broker should do with a request of this key and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// Served: decode and handle it.
    Served,
    /// Known key, version outside the served range.
    Unsupported,
    /// An API key Runnel does not serve at all.
    UnknownApi,
}

/// Classifies a request by API key and version.
pub fn check(api_key: i16, api_version: i16) -> VersionCheck {
    match supported(api_key) {
        Some(r) if api_version >= r.min && api_version <= r.max => VersionCheck::Served,
        Some(_) => VersionCheck::Unsupported,
        None => VersionCheck::UnknownApi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::Message;

    /// Every served range must be decodable by the kafka-protocol crate.
    #[test]
    fn served_ranges_fit_the_codec() {
        for r in SUPPORTED_APIS {
            let codec = match r.api_key {
                ApiKey::Produce => ProduceRequest::VERSIONS,
                ApiKey::Fetch => FetchRequest::VERSIONS,
                ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
                ApiKey::Metadata => MetadataRequest::VERSIONS,
                ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
                ApiKey::SaslHandshake => SaslHandshakeRequest::VERSIONS,
                ApiKey::DescribeUserScramCredentials => {
                    DescribeUserScramCredentialsRequest::VERSIONS
                }
                ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::VERSIONS,
                ApiKey::SaslAuthenticate => SaslAuthenticateRequest::VERSIONS,
                ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
                ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
                ApiKey::DeleteRecords => DeleteRecordsRequest::VERSIONS,
                ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
                ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::VERSIONS,
                ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
                ApiKey::DescribeAcls => DescribeAclsRequest::VERSIONS,
                ApiKey::CreateAcls => CreateAclsRequest::VERSIONS,
                ApiKey::DeleteAcls => DeleteAclsRequest::VERSIONS,
                ApiKey::AlterConfigs => AlterConfigsRequest::VERSIONS,
                ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
                ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::VERSIONS,
                ApiKey::DescribeCluster => DescribeClusterRequest::VERSIONS,
                ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
                ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
                ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
                ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
                ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
                ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
                ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
                ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
                ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
                ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
                ApiKey::ElectLeaders => ElectLeadersRequest::VERSIONS,
                ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::VERSIONS,
                ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::VERSIONS,
                ApiKey::UnregisterBroker => UnregisterBrokerRequest::VERSIONS,
                ApiKey::OffsetDelete => OffsetDeleteRequest::VERSIONS,
                ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::VERSIONS,
                ApiKey::AlterClientQuotas => AlterClientQuotasRequest::VERSIONS,
                ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::VERSIONS,
                ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::VERSIONS,
                ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::VERSIONS,
                ApiKey::EndTxn => EndTxnRequest::VERSIONS,
                ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::VERSIONS,
                ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::VERSIONS,
                ApiKey::DescribeProducers => DescribeProducersRequest::VERSIONS,
                ApiKey::DescribeTransactions => DescribeTransactionsRequest::VERSIONS,
                ApiKey::ListTransactions => ListTransactionsRequest::VERSIONS,
                ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::VERSIONS,
                ApiKey::DescribeLogDirs => DescribeLogDirsRequest::VERSIONS,
                ApiKey::AlterReplicaLogDirs => AlterReplicaLogDirsRequest::VERSIONS,
                ApiKey::DescribeQuorum => DescribeQuorumRequest::VERSIONS,
                ApiKey::UpdateFeatures => UpdateFeaturesRequest::VERSIONS,
                ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::VERSIONS,
                ApiKey::AddRaftVoter => AddRaftVoterRequest::VERSIONS,
                ApiKey::RemoveRaftVoter => RemoveRaftVoterRequest::VERSIONS,
                other => panic!("no codec check for {other:?}"),
            };
            assert!(r.min >= codec.min && r.max <= codec.max, "{:?}", r.api_key);
            assert!(r.advertised_min <= r.min);
        }
    }

    #[test]
    fn check_classifies() {
        assert_eq!(check(0, 9), VersionCheck::Served);
        assert_eq!(check(0, 1), VersionCheck::Unsupported);
        assert_eq!(check(18, 99), VersionCheck::Unsupported);
        assert_eq!(check(9999, 0), VersionCheck::UnknownApi);
    }
}
