//! Every served version of every API gets an encodable answer: a field set in a version that
//! does not carry it would make the response unencodable and the connection close.

mod common;

use bytes::Bytes;
use common::TestBroker;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::versions::SUPPORTED_APIS;
use runnel_storage::testing::build_batch;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

#[tokio::test]
async fn every_served_version_is_answered() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
    let topic_id = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await
        .topics[0]
        .topic_id;
    for v in range_of(ApiKey::ApiVersions) {
        assert_eq!(
            c.send(&ApiVersionsRequest::default(), v).await.error_code,
            0,
            "ApiVersions v{v}"
        );
    }
    for v in range_of(ApiKey::Metadata) {
        let topic =
            metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))));
        let resp = c
            .send(
                &MetadataRequest::default().with_topics(Some(vec![topic])),
                v,
            )
            .await;
        assert_eq!(resp.topics[0].error_code, 0, "Metadata v{v}");
        assert_eq!(resp.topics[0].partitions.len(), 1);
    }
    for v in range_of(ApiKey::Produce) {
        let records = build_batch(0, &[(None, Some(b"v"), 1)], -1, -1, -1);
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("t")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(records))),
                ])]);
        let resp = c.send(&req, v).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 0,
            "Produce v{v}"
        );
        // And an error answer in the same version.
        let bad = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("missing")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::new())),
                ])]);
        assert_eq!(
            c.send(&bad, v).await.responses[0].partition_responses[0].error_code,
            3
        );
    }
    for v in range_of(ApiKey::Fetch) {
        let mut topic = fetch_request::FetchTopic::default().with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20),
        ]);
        if v >= 13 {
            topic = topic.with_topic_id(topic_id);
        } else {
            topic = topic.with_topic(TopicName(s("t")));
        }
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![topic]);
        let resp = c.send(&req, v).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "Fetch v{v}");
        assert!(
            !p.records.as_ref().unwrap().is_empty(),
            "Fetch v{v} returns data"
        );
    }
    for v in range_of(ApiKey::ListOffsets) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1),
                ])]);
        let resp = c.send(&req, v).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "ListOffsets v{v}"
        );
        assert!(resp.topics[0].partitions[0].offset > 0);
    }
    for v in range_of(ApiKey::CreateTopics) {
        let name = format!("ct{v}");
        let req = CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(&name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        assert_eq!(
            c.send(&req, v).await.topics[0].error_code,
            0,
            "CreateTopics v{v}"
        );
        let again = c.send(&req, v).await;
        assert_eq!(again.topics[0].error_code, 36, "CreateTopics v{v} error");
    }
    for v in range_of(ApiKey::DeleteTopics) {
        let name = format!("ct{}", v + 1);
        let req = if v >= 6 {
            DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(s(&name))))])
        } else {
            DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s(&name))])
        };
        assert_eq!(
            c.send(&req, v).await.responses[0].error_code,
            0,
            "DeleteTopics v{v}"
        );
        assert_eq!(
            c.send(&req, v).await.responses[0].error_code,
            3,
            "DeleteTopics v{v} error"
        );
    }
    for v in range_of(ApiKey::CreatePartitions) {
        let req = CreatePartitionsRequest::default().with_topics(vec![
            create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s("t")))
                .with_count(1),
        ]);
        assert_eq!(
            c.send(&req, v).await.results[0].error_code,
            37,
            "CreatePartitions v{v}"
        );
    }
    for v in range_of(ApiKey::DeleteRecords) {
        let req = DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(0),
                ]),
        ]);
        assert_eq!(
            c.send(&req, v).await.topics[0].partitions[0].error_code,
            0,
            "DeleteRecords v{v}"
        );
    }
    for v in range_of(ApiKey::InitProducerId) {
        let resp = c
            .send(
                &InitProducerIdRequest::default().with_transactional_id(None),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
    }
    for v in range_of(ApiKey::OffsetForLeaderEpoch) {
        let req = OffsetForLeaderEpochRequest::default().with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(0),
                ]),
        ]);
        let resp = c.send(&req, v).await;
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch),
            (0, 0),
            "OffsetForLeaderEpoch v{v}"
        );
        assert!(p.end_offset > 0);
    }
    for v in range_of(ApiKey::DescribeConfigs) {
        for (ty, name) in [(2i8, "t"), (4, "1")] {
            let req = DescribeConfigsRequest::default().with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(ty)
                    .with_resource_name(s(name))
                    .with_configuration_keys(None),
            ]);
            let resp = c.send(&req, v).await;
            assert_eq!(
                resp.results[0].error_code, 0,
                "DescribeConfigs v{v} type {ty}"
            );
            assert!(!resp.results[0].configs.is_empty());
        }
    }
    for v in range_of(ApiKey::AlterConfigs) {
        let req = AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("100000")))]),
        ]);
        assert_eq!(
            c.send(&req, v).await.responses[0].error_code,
            0,
            "AlterConfigs v{v}"
        );
    }
    for v in range_of(ApiKey::IncrementalAlterConfigs) {
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("200000"))),
                ]),
        ]);
        assert_eq!(
            c.send(&req, v).await.responses[0].error_code,
            0,
            "IncrementalAlterConfigs v{v}"
        );
    }
    for v in range_of(ApiKey::DescribeCluster) {
        let resp = c.send(&DescribeClusterRequest::default(), v).await;
        assert_eq!(
            (resp.error_code, resp.brokers.len()),
            (0, 1),
            "DescribeCluster v{v}"
        );
    }
    for v in range_of(ApiKey::ElectLeaders) {
        // A cluster of one: the preferred replica leads already.
        let req = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
            elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![0]),
        ]));
        let resp = c.send(&req, v).await;
        assert_eq!(
            resp.replica_election_results[0].partition_result[0].error_code,
            kafka_protocol::ResponseError::ElectionNotNeeded.code(),
            "ElectLeaders v{v}"
        );
    }
    use kafka_protocol::ResponseError;
    for v in range_of(ApiKey::AlterPartitionReassignments) {
        let reassign = |replicas: Vec<i32>| {
            AlterPartitionReassignmentsRequest::default().with_topics(vec![
                alter_partition_reassignments_request::ReassignableTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        alter_partition_reassignments_request::ReassignablePartition::default()
                            .with_partition_index(0)
                            .with_replicas(Some(replicas.into_iter().map(BrokerId).collect())),
                    ]),
            ])
        };
        // The current replicas: nothing to do; an unregistered broker: Kafka's error.
        let resp = c.send(&reassign(vec![1]), v).await;
        assert_eq!(resp.responses[0].partitions[0].error_code, 0, "v{v}");
        let resp = c.send(&reassign(vec![9]), v).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(
            p.error_code,
            ResponseError::InvalidReplicaAssignment.code(),
            "AlterPartitionReassignments v{v}"
        );
        assert!(p
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("includes broker 9, but no such broker is registered")));
    }
    for v in range_of(ApiKey::ListPartitionReassignments) {
        let resp = c
            .send(&ListPartitionReassignmentsRequest::default(), v)
            .await;
        assert_eq!(resp.error_code, 0, "ListPartitionReassignments v{v}");
        assert!(resp.topics.is_empty(), "nothing in progress: {resp:?}");
    }
    for v in range_of(ApiKey::UnregisterBroker) {
        let resp = c
            .send(
                &UnregisterBrokerRequest::default().with_broker_id(BrokerId(9)),
                v,
            )
            .await;
        assert_eq!(
            resp.error_code,
            ResponseError::BrokerIdNotRegistered.code(),
            "UnregisterBroker v{v}"
        );
    }
}

/// The version of `key` to use in round `i`: `i` clamped into the served range.
fn clamp(key: ApiKey, i: i16) -> i16 {
    let r = SUPPORTED_APIS.iter().find(|r| r.api_key == key).unwrap();
    i.clamp(r.min, r.max)
}

/// A whole group life cycle per round, each API at round i clamped to its range, so that every
/// served version of every group API is sent and its answer checked.
#[tokio::test]
async fn every_group_api_version_is_answered() {
    let b = TestBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("offsets.topic.num.partitions", "2"),
    ])
    .await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
    for i in 0..=9i16 {
        let group = format!("g{i}");
        let gid = GroupId(s(&group));
        // FindCoordinator.
        let v = clamp(ApiKey::FindCoordinator, i);
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s(&group)])
        } else {
            FindCoordinatorRequest::default().with_key(s(&group))
        };
        let resp = c.send(&req, v).await;
        let (err, port) = if v >= 4 {
            (resp.coordinators[0].error_code, resp.coordinators[0].port)
        } else {
            (resp.error_code, resp.port)
        };
        assert_eq!(
            (err, port),
            (0, b.addr.port() as i32),
            "FindCoordinator v{v}"
        );
        // JoinGroup (twice from v4: the first answer is MEMBER_ID_REQUIRED).
        let v = clamp(ApiKey::JoinGroup, i);
        let join = |member: &str| {
            JoinGroupRequest::default()
                .with_group_id(gid.clone())
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(if v >= 1 { 10_000 } else { -1 })
                .with_member_id(s(member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\x00\x00\x00\x00\x00\x01\x00\x01t"))])
        };
        let mut resp = c.send(&join(""), v).await;
        if v >= 4 {
            assert_eq!(resp.error_code, 79, "JoinGroup v{v}: MEMBER_ID_REQUIRED");
            let id = resp.member_id.to_string();
            resp = c.send(&join(&id), v).await;
        }
        assert_eq!(resp.error_code, 0, "JoinGroup v{v}");
        assert_eq!(resp.generation_id, 1);
        assert_eq!(resp.leader, resp.member_id);
        assert_eq!(resp.members.len(), 1);
        let member = resp.member_id.clone();
        // SyncGroup.
        let v = clamp(ApiKey::SyncGroup, i);
        let req = SyncGroupRequest::default()
            .with_group_id(gid.clone())
            .with_generation_id(1)
            .with_member_id(member.clone())
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(member.clone())
                    .with_assignment(Bytes::from_static(b"assignment")),
            ]);
        let resp = c.send(&req, v).await;
        assert_eq!(resp.error_code, 0, "SyncGroup v{v}");
        assert_eq!(&resp.assignment[..], b"assignment");
        // Heartbeat.
        let v = clamp(ApiKey::Heartbeat, i);
        let req = HeartbeatRequest::default()
            .with_group_id(gid.clone())
            .with_generation_id(1)
            .with_member_id(member.clone());
        assert_eq!(c.send(&req, v).await.error_code, 0, "Heartbeat v{v}");
        // OffsetCommit.
        let v = clamp(ApiKey::OffsetCommit, i);
        let req = OffsetCommitRequest::default()
            .with_group_id(gid.clone())
            .with_generation_id_or_member_epoch(1)
            .with_member_id(member.clone())
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(40 + i as i64)
                            .with_committed_metadata(Some(s("meta"))),
                    ]),
            ]);
        let resp = c.send(&req, v).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "OffsetCommit v{v}"
        );
        // OffsetFetch.
        let v = clamp(ApiKey::OffsetFetch, i);
        let (offset, metadata) = if v >= 8 {
            let req = OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(gid.clone())
                    .with_topics(Some(vec![
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(TopicName(s("t")))
                            .with_partition_indexes(vec![0]),
                    ])),
            ]);
            let resp = c.send(&req, v).await;
            let p = &resp.groups[0].topics[0].partitions[0];
            (p.committed_offset, p.metadata.clone())
        } else {
            let req = OffsetFetchRequest::default()
                .with_group_id(gid.clone())
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0]),
                ]));
            let resp = c.send(&req, v).await;
            let p = &resp.topics[0].partitions[0];
            (p.committed_offset, p.metadata.clone())
        };
        assert_eq!(
            (offset, metadata),
            (40 + i as i64, Some(s("meta"))),
            "OffsetFetch v{v}"
        );
        // DescribeGroups and ListGroups.
        let v = clamp(ApiKey::DescribeGroups, i);
        let resp = c
            .send(
                &DescribeGroupsRequest::default().with_groups(vec![gid.clone()]),
                v,
            )
            .await;
        let g = &resp.groups[0];
        assert_eq!(
            (
                g.error_code,
                g.group_state.as_str(),
                g.protocol_data.as_str(),
                g.members.len()
            ),
            (0, "Stable", "range", 1),
            "DescribeGroups v{v}"
        );
        assert_eq!(&g.members[0].member_assignment[..], b"assignment");
        let v = clamp(ApiKey::ListGroups, i);
        let resp = c.send(&ListGroupsRequest::default(), v).await;
        assert_eq!(resp.error_code, 0, "ListGroups v{v}");
        assert!(
            resp.groups.iter().any(|g| g.group_id == gid),
            "ListGroups v{v}"
        );
        // Deleting a group with a member is refused.
        let v = clamp(ApiKey::DeleteGroups, i);
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid.clone()]);
        assert_eq!(
            c.send(&req, v).await.results[0].error_code,
            68,
            "DeleteGroups v{v}: NON_EMPTY_GROUP"
        );
        // LeaveGroup.
        let v = clamp(ApiKey::LeaveGroup, i);
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(gid.clone())
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(member.clone())
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(gid.clone())
                .with_member_id(member.clone())
        };
        let resp = c.send(&req, v).await;
        assert_eq!(resp.error_code, 0, "LeaveGroup v{v}");
        if v >= 3 {
            assert_eq!(resp.members[0].error_code, 0);
        }
        // OffsetDelete, then DeleteGroups on the now empty group.
        let req = OffsetDeleteRequest::default()
            .with_group_id(gid.clone())
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ]),
            ]);
        let resp = c.send(&req, 0).await;
        assert_eq!(
            (resp.error_code, resp.topics[0].partitions[0].error_code),
            (0, 0),
            "OffsetDelete v0"
        );
        let v = clamp(ApiKey::DeleteGroups, i);
        let req = DeleteGroupsRequest::default().with_groups_names(vec![gid.clone()]);
        assert_eq!(
            c.send(&req, v).await.results[0].error_code,
            0,
            "DeleteGroups v{v}"
        );
    }
}

/// ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848) at every served version: a member
/// joins, gets every partition at epoch 1, is described, and leaves.
#[tokio::test]
async fn every_consumer_group_api_version_is_answered() {
    let b = TestBroker::start(&[("offsets.topic.num.partitions", "2")]).await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 3).await;
    for v in range_of(ApiKey::ConsumerGroupHeartbeat) {
        let group = GroupId(s(&format!("cg{v}")));
        let member = if v >= 1 { "client-chosen-id" } else { "" };
        let join = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(vec![]));
        let resp = c.send(&join, v).await;
        assert_eq!(
            resp.error_code, 0,
            "ConsumerGroupHeartbeat v{v}: {:?}",
            resp.error_message
        );
        assert_eq!(resp.member_epoch, 1);
        let member_id = resp.member_id.clone().unwrap();
        if v >= 1 {
            assert_eq!(member_id.as_str(), member);
        } else {
            assert!(!member_id.is_empty());
        }
        let parts: Vec<i32> = resp.assignment.unwrap().topic_partitions[0]
            .partitions
            .clone();
        assert_eq!(parts, vec![0, 1, 2]);
        for dv in range_of(ApiKey::ConsumerGroupDescribe) {
            let resp = c
                .send(
                    &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group.clone()]),
                    dv,
                )
                .await;
            let g = &resp.groups[0];
            assert_eq!(
                (
                    g.error_code,
                    g.group_state.as_str(),
                    g.group_epoch,
                    g.members.len()
                ),
                (0, "Stable", 1, 1),
                "ConsumerGroupDescribe v{dv}"
            );
            assert_eq!(
                g.members[0].assignment.topic_partitions[0].partitions,
                vec![0, 1, 2]
            );
        }
        // A heartbeat with a wrong epoch is fenced; leaving answers epoch -1.
        let stale = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_member_id(member_id.clone())
            .with_member_epoch(7);
        assert_eq!(
            c.send(&stale, v).await.error_code,
            110,
            "FENCED_MEMBER_EPOCH"
        );
        let leave = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group.clone())
            .with_member_id(member_id.clone())
            .with_member_epoch(-1);
        let resp = c.send(&leave, v).await;
        assert_eq!((resp.error_code, resp.member_epoch), (0, -1));
    }
    // A classic group is not a consumer group: the admin client's cue to use DescribeGroups.
    let resp = c
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("nope"))]),
            0,
        )
        .await;
    assert_eq!(resp.groups[0].error_code, 69, "GROUP_ID_NOT_FOUND");
}

fn range_of(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = SUPPORTED_APIS.iter().find(|r| r.api_key == key).unwrap();
    r.min..=r.max
}

/// Every served version of the transaction APIs: a transactional id is initialised, a
/// partition and a group join its transaction, offsets are committed in it, it commits, and it
/// is described and listed.
#[tokio::test]
async fn every_transaction_api_version_is_answered() {
    let b = TestBroker::start(&[
        ("offsets.topic.num.partitions", "2"),
        ("transaction.state.log.num.partitions", "2"),
    ])
    .await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
    for i in 0..=5i16 {
        let tid = TransactionalId(s(&format!("tx{i}")));
        let v = clamp(ApiKey::FindCoordinator, i);
        let req = if v >= 4 {
            FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![tid.0.clone()])
        } else {
            FindCoordinatorRequest::default()
                .with_key_type(if v >= 1 { 1 } else { 0 })
                .with_key(tid.0.clone())
        };
        let resp = c.send(&req, v).await;
        let err = if v >= 4 {
            resp.coordinators[0].error_code
        } else {
            resp.error_code
        };
        assert_eq!(err, 0, "FindCoordinator(transaction) v{v}");
        let v = clamp(ApiKey::InitProducerId, i);
        let resp = c
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(tid.clone()))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
        let (pid, epoch) = (resp.producer_id, resp.producer_epoch);
        let v = clamp(ApiKey::AddPartitionsToTxn, i);
        let resp = c
            .send(
                &AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(tid.clone())
                    .with_v3_and_below_producer_id(pid)
                    .with_v3_and_below_producer_epoch(epoch)
                    .with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partitions(vec![0]),
                    ]),
                v,
            )
            .await;
        assert_eq!(
            resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0,
            "AddPartitionsToTxn v{v}"
        );
        let mut batch = build_batch(0, &[(None, Some(b"in-txn"), 1)], pid.0, epoch, 0);
        runnel_storage::testing::make_transactional(&mut batch);
        let produce = ProduceRequest::default()
            .with_transactional_id(Some(tid.clone()))
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("t")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch))),
                ])]);
        let resp = c.send(&produce, 9).await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
        let group = GroupId(s(&format!("txg{i}")));
        let v = clamp(ApiKey::AddOffsetsToTxn, i);
        let resp = c
            .send(
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(tid.clone())
                    .with_producer_id(pid)
                    .with_producer_epoch(epoch)
                    .with_group_id(group.clone()),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0, "AddOffsetsToTxn v{v}");
        let v = clamp(ApiKey::TxnOffsetCommit, i);
        let resp = c
            .send(
                &TxnOffsetCommitRequest::default()
                    .with_transactional_id(tid.clone())
                    .with_group_id(group.clone())
                    .with_producer_id(pid)
                    .with_producer_epoch(epoch)
                    .with_generation_id(-1)
                    .with_topics(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(11)
                                .with_committed_metadata(Some(s("m"))),
                        ]),
                    ]),
                v,
            )
            .await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code, 0,
            "TxnOffsetCommit v{v}"
        );
        // Not visible before the commit; require_stable says so.
        let fetch_offsets = OffsetFetchRequest::default()
            .with_group_id(group.clone())
            .with_require_stable(true)
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0]),
            ]));
        let p = c.send(&fetch_offsets, 7).await.topics[0].partitions[0].clone();
        assert_eq!(
            (p.committed_offset, p.error_code),
            (-1, 88),
            "UNSTABLE_OFFSET_COMMIT"
        );
        let v = clamp(ApiKey::DescribeTransactions, i);
        let resp = c
            .send(
                &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid.clone()]),
                v,
            )
            .await;
        let st = &resp.transaction_states[0];
        assert_eq!(
            (st.error_code, st.transaction_state.as_str()),
            (0, "Ongoing")
        );
        assert_eq!(st.topics.len(), 2, "t and __consumer_offsets");
        let v = clamp(ApiKey::DescribeProducers, i);
        let resp = c
            .send(
                &DescribeProducersRequest::default().with_topics(vec![
                    describe_producers_request::TopicRequest::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0]),
                ]),
                v,
            )
            .await;
        let open = resp.topics[0].partitions[0]
            .active_producers
            .iter()
            .find(|p| p.producer_id == pid)
            .expect("the producer is known")
            .current_txn_start_offset;
        assert!(open >= 0, "DescribeProducers v{v}: an open transaction");
        let v = clamp(ApiKey::EndTxn, i);
        let resp = c
            .send(
                &EndTxnRequest::default()
                    .with_transactional_id(tid.clone())
                    .with_producer_id(pid)
                    .with_producer_epoch(epoch)
                    .with_committed(true),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0, "EndTxn v{v}");
        let p = c.send(&fetch_offsets, 7).await.topics[0].partitions[0].clone();
        assert_eq!(
            (p.committed_offset, p.error_code),
            (11, 0),
            "visible after the commit"
        );
        let v = clamp(ApiKey::ListTransactions, i);
        let resp = c.send(&ListTransactionsRequest::default(), v).await;
        let listed = resp
            .transaction_states
            .iter()
            .find(|t| t.transactional_id == tid)
            .expect("listed");
        assert_eq!(
            listed.transaction_state.as_str(),
            "CompleteCommit",
            "ListTransactions v{v}"
        );
    }
    // A hanging transaction (its coordinator knows nothing of it) is closed with
    // WriteTxnMarkers, as `kafka-transactions abort` does.
    let mut batch = build_batch(0, &[(None, Some(b"hanging"), 1)], 4242, 0, 0);
    runnel_storage::testing::make_transactional(&mut batch);
    let produce = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("hanging"))))
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s("t")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch))),
            ])]);
    let resp = c.send(&produce, 9).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let open_start = |resp: &DescribeProducersResponse| {
        resp.topics[0].partitions[0]
            .active_producers
            .iter()
            .find(|p| p.producer_id.0 == 4242)
            .map(|p| p.current_txn_start_offset)
    };
    let describe = DescribeProducersRequest::default().with_topics(vec![
        describe_producers_request::TopicRequest::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0]),
    ]);
    assert!(open_start(&c.send(&describe, 0).await).is_some_and(|o| o >= 0));
    let markers = WriteTxnMarkersRequest::default().with_markers(vec![
        write_txn_markers_request::WritableTxnMarker::default()
            .with_producer_id(ProducerId(4242))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(-1)
            .with_topics(vec![
                write_txn_markers_request::WritableTxnMarkerTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    for v in range_of(ApiKey::WriteTxnMarkers) {
        let resp = c.send(&markers, v).await;
        assert_eq!(
            resp.markers[0].topics[0].partitions[0].error_code, 0,
            "WriteTxnMarkers v{v}"
        );
    }
    assert_eq!(
        open_start(&c.send(&describe, 0).await),
        Some(-1),
        "no open transaction left"
    );
    // The coordinator epoch a marker carries is kept (DescribeProducers shows it) and fences
    // markers of an older coordinator with TRANSACTION_COORDINATOR_FENCED.
    let with_epoch = |epoch: i32| {
        let mut m = markers.clone();
        m.markers[0].coordinator_epoch = epoch;
        m
    };
    let code = |r: &WriteTxnMarkersResponse| r.markers[0].topics[0].partitions[0].error_code;
    assert_eq!(code(&c.send(&with_epoch(5), 1).await), 0);
    let coordinator_epoch = c.send(&describe, 0).await.topics[0].partitions[0]
        .active_producers
        .iter()
        .find(|p| p.producer_id.0 == 4242)
        .map(|p| p.coordinator_epoch);
    assert_eq!(coordinator_epoch, Some(5));
    assert_eq!(
        code(&c.send(&with_epoch(4), 1).await),
        kafka_protocol::ResponseError::TransactionCoordinatorFenced.code()
    );
}
