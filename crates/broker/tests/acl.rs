//! ACL authorization at the wire (issue 14), for what the real-client tests (tests/test_acl.py)
//! cannot reach: the ACL APIs in every served version, and the APIs whose refusal a client
//! library hides or cannot send (ListOffsets, OffsetForLeaderEpoch, InitProducerId for an
//! idempotent producer, WriteTxnMarkers, DescribeLogDirs, ElectLeaders, DescribeQuorum,
//! UpdateFeatures, Metadata by topic id, DescribeTopicPartitions). Connections here are
//! User:ANONYMOUS: the broker runs with allow.everyone.if.no.acl.found=true, ANONYMOUS holds ALTER
//! on the cluster (to manage ACLs), and an ACL for User:other on a resource makes ANONYMOUS "a
//! principal without the ACL" there.

mod common;

use common::{create_topic, Client, TestBroker};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_protocol::versions::supported;

const AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn max_version(key: ApiKey) -> i16 {
    supported(key as i16).unwrap().max
}

/// (resource type, name, pattern, principal, operation, permission) as Kafka's codes.
fn creation(
    rt: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    op: i8,
    perm: i8,
) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(rt)
        .with_resource_name(s(name))
        .with_resource_pattern_type(pattern)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

const TOPIC: i8 = 2;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ALLOW: i8 = 3;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;

async fn add(c: &mut Client, acls: Vec<create_acls_request::AclCreation>) {
    let n = acls.len();
    let resp = c
        .send(&CreateAclsRequest::default().with_creations(acls), 3)
        .await;
    assert_eq!(resp.results.len(), n);
    for r in resp.results {
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    }
}

async fn authorized_broker() -> (TestBroker, Client) {
    let b = TestBroker::start(&[
        ("authorizer.class.name", AUTHORIZER),
        ("allow.everyone.if.no.acl.found", "true"),
    ])
    .await;
    let mut c = b.client().await;
    add(
        &mut c,
        vec![creation(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            "User:ANONYMOUS",
            ALTER,
            ALLOW,
        )],
    )
    .await;
    (b, c)
}

#[tokio::test]
async fn acl_apis_in_every_version() {
    let (_b, mut c) = authorized_broker().await;
    for v in 1..=max_version(ApiKey::CreateAcls) {
        let name = format!("v{v}-");
        let resp = c
            .send(
                &CreateAclsRequest::default().with_creations(vec![
                    creation(TOPIC, &name, PREFIXED, "User:alice", READ, ALLOW),
                    // The same binding twice: one ACL, both succeed (as Kafka).
                    creation(TOPIC, &name, PREFIXED, "User:alice", READ, ALLOW),
                    creation(CLUSTER, "other", LITERAL, "User:alice", ALTER, ALLOW),
                    creation(TOPIC, "", LITERAL, "User:alice", READ, ALLOW),
                    creation(TOPIC, "t", LITERAL, "alice", READ, ALLOW),
                    creation(TOPIC, "t", LITERAL, "User:alice", 1, ALLOW),
                ]),
                v,
            )
            .await;
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(codes, [0, 0, invalid, invalid, invalid, invalid], "v{v}");
        assert_eq!(
            resp.results[2].error_message.as_deref(),
            Some("The only valid name for the CLUSTER resource is kafka-cluster")
        );
    }
    for v in 1..=max_version(ApiKey::DescribeAcls) {
        // MATCH on a topic name finds the prefixed ACLs that cover it.
        let resp = c
            .send(
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(Some(s("v1-x")))
                    .with_pattern_type_filter(2)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(1)
                    .with_permission_type(1),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0);
        let found: Vec<(String, i8, usize)> = resp
            .resources
            .iter()
            .map(|r| (r.resource_name.to_string(), r.pattern_type, r.acls.len()))
            .collect();
        assert_eq!(found, [("v1-".to_string(), PREFIXED, 1)], "v{v}");
    }
    let v = max_version(ApiKey::DeleteAcls);
    let resp = c
        .send(
            &DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(None)
                    .with_pattern_type_filter(PREFIXED)
                    .with_principal_filter(Some(s("User:alice")))
                    .with_host_filter(None)
                    .with_operation(1)
                    .with_permission_type(1),
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(TOPIC)
                    .with_resource_name_filter(None)
                    .with_pattern_type_filter(0)
                    .with_principal_filter(None)
                    .with_host_filter(None)
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
            v,
        )
        .await;
    let deleted = &resp.filter_results[0];
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.matching_acls.len(), 3, "v1-, v2-, v3-");
    assert!(deleted
        .matching_acls
        .iter()
        .all(|a| a.principal.as_str() == "User:alice" && a.operation == READ));
    assert_eq!(
        resp.filter_results[1].error_code,
        ResponseError::InvalidRequest.code()
    );
    let resp = c
        .send(
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_resource_name_filter(None)
                .with_pattern_type_filter(1)
                .with_principal_filter(None)
                .with_host_filter(None)
                .with_operation(1)
                .with_permission_type(1),
            3,
        )
        .await;
    let left: Vec<i8> = resp.resources.iter().map(|r| r.resource_type).collect();
    assert_eq!(
        left,
        [CLUSTER],
        "only ANONYMOUS's ALTER on the cluster is left"
    );
}

#[tokio::test]
async fn apis_clients_cannot_show_are_refused_with_kafkas_errors() {
    let (_b, mut c) = authorized_broker().await;
    create_topic(&mut c, "secret", 1).await;
    create_topic(&mut c, "open", 1).await;
    // The topic has an ACL, for someone else: ANONYMOUS may not even describe it.
    add(
        &mut c,
        vec![creation(
            TOPIC,
            "secret",
            LITERAL,
            "User:other",
            READ,
            ALLOW,
        )],
    )
    .await;
    let topic_denied = ResponseError::TopicAuthorizationFailed.code();
    let cluster_denied = ResponseError::ClusterAuthorizationFailed.code();

    // ListOffsets: DESCRIBE.
    use list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let lo = |t: &str| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1)])])
    };
    let v = max_version(ApiKey::ListOffsets);
    let r = c.send(&lo("secret"), v).await;
    assert_eq!(r.topics[0].partitions[0].error_code, topic_denied);
    let r = c.send(&lo("open"), v).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    // OffsetForLeaderEpoch: DESCRIBE (or CLUSTER_ACTION).
    use offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    let ofle = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(TopicName(s("secret")))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(-1)
                .with_leader_epoch(0)])]);
    let r = c
        .send(&ofle, max_version(ApiKey::OffsetForLeaderEpoch))
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, topic_denied);

    // Metadata by name and by id; DescribeTopicPartitions by name and for all topics.
    let v = max_version(ApiKey::Metadata);
    let open_id = {
        let r = c
            .send(
                &MetadataRequest::default()
                    .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                    )
                    .with_name(Some(TopicName(s("open"))))])),
                v,
            )
            .await;
        r.topics[0].topic_id
    };
    let r = c
        .send(&MetadataRequest::default().with_topics(None), v)
        .await;
    let names: Vec<String> = r
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(names.contains(&"open".to_string()) && !names.contains(&"secret".to_string()));
    let r = c
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("secret"))))]))
                .with_include_topic_authorized_operations(true),
            v,
        )
        .await;
    assert_eq!(r.topics[0].error_code, topic_denied);
    assert!(r.topics[0].topic_id.is_nil());
    let r = c
        .send(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s("open"))))]))
                .with_include_topic_authorized_operations(true),
            v,
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    // No ACL on "open": every topic operation (allow.everyone.if.no.acl.found).
    assert_eq!(
        r.topics[0].topic_authorized_operations,
        (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11)
    );
    assert!(!open_id.is_nil());
    let r = c
        .send(
            &DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default()
                        .with_name(TopicName(s("secret"))),
                ])
                .with_response_partition_limit(100),
            0,
        )
        .await;
    assert_eq!(r.topics[0].error_code, topic_denied);
    let r = c
        .send(
            &DescribeTopicPartitionsRequest::default().with_response_partition_limit(100),
            0,
        )
        .await;
    assert!(r
        .topics
        .iter()
        .all(|t| t.name.as_ref().unwrap().0.as_str() != "secret"));

    // InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster or WRITE on
    // some topic. The cluster has ACLs (ALTER) and no topic grants WRITE to ANONYMOUS yet.
    let ipid = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let v = max_version(ApiKey::InitProducerId);
    // "open" has no ACL and allow.everyone lets the hard-coded name through (Kafka's rule):
    // first make every topic carry an ACL that is not ANONYMOUS's.
    add(
        &mut c,
        vec![creation(TOPIC, "*", LITERAL, "User:other", WRITE, ALLOW)],
    )
    .await;
    assert_eq!(c.send(&ipid, v).await.error_code, cluster_denied);
    add(
        &mut c,
        vec![creation(
            TOPIC,
            "open",
            LITERAL,
            "User:ANONYMOUS",
            WRITE,
            ALLOW,
        )],
    )
    .await;
    let r = c.send(&ipid, v).await;
    assert_eq!(r.error_code, 0);
    assert!(r.producer_id.0 >= 0);

    // Cluster APIs: ANONYMOUS has ALTER (so DESCRIBE) on the cluster, not CLUSTER_ACTION.
    use write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
    let markers =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(1))
            .with_producer_epoch(0)
            .with_transaction_result(true)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s("open")))
                .with_partition_indexes(vec![0])])]);
    let r = c.send(&markers, max_version(ApiKey::WriteTxnMarkers)).await;
    assert_eq!(
        r.markers[0].topics[0].partitions[0].error_code,
        cluster_denied
    );
    // A DENY of DESCRIBE on the cluster takes DescribeLogDirs, DescribeQuorum and
    // ListPartitionReassignments away; a DENY of ALTER takes ElectLeaders and UpdateFeatures.
    add(
        &mut c,
        vec![creation(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            "User:ANONYMOUS",
            DESCRIBE,
            2,
        )],
    )
    .await;
    let r = c
        .send(
            &DescribeLogDirsRequest::default().with_topics(None),
            max_version(ApiKey::DescribeLogDirs),
        )
        .await;
    assert_eq!(r.error_code, cluster_denied);
    assert!(r.results.is_empty());
    let r = c
        .send(
            &DescribeQuorumRequest::default().with_topics(vec![]),
            max_version(ApiKey::DescribeQuorum),
        )
        .await;
    assert_eq!(r.error_code, cluster_denied);
    let r = c
        .send(
            &ListPartitionReassignmentsRequest::default().with_topics(None),
            max_version(ApiKey::ListPartitionReassignments),
        )
        .await;
    assert_eq!(r.error_code, cluster_denied);
    add(
        &mut c,
        vec![creation(
            CLUSTER,
            "kafka-cluster",
            LITERAL,
            "User:ANONYMOUS",
            ALTER,
            2,
        )],
    )
    .await;
    let r = c
        .send(
            &ElectLeadersRequest::default()
                .with_election_type(0)
                .with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(TopicName(s("open")))
                        .with_partitions(vec![0]),
                ])),
            max_version(ApiKey::ElectLeaders),
        )
        .await;
    assert_eq!(r.error_code, cluster_denied);
    assert_eq!(
        r.replica_election_results[0].partition_result[0].error_code,
        cluster_denied
    );
    let r = c
        .send(
            &UpdateFeaturesRequest::default(),
            max_version(ApiKey::UpdateFeatures),
        )
        .await;
    assert_eq!(r.error_code, cluster_denied);
    // And now ANONYMOUS may not manage ACLs either.
    let r = c
        .send(
            &CreateAclsRequest::default()
                .with_creations(vec![creation(TOPIC, "x", LITERAL, "User:x", READ, ALLOW)]),
            3,
        )
        .await;
    assert_eq!(r.results[0].error_code, cluster_denied);
}
