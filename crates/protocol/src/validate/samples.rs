//! Sample requests for the request-body checks' tests: a body of every API the broker serves,
//! built with kafka-protocol for any version, and the API version tables the tests walk.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Message, StrBytes};

pub(super) fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

pub(super) fn tn(x: &'static str) -> TopicName {
    TopicName(s(x))
}

pub(super) fn enc<T: Encodable>(req: &T, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    req.encode(&mut b, v).unwrap();
    b.to_vec()
}

/// The served request bodies, built with kafka-protocol, as (api key, version, body).
pub(super) fn build(key: i16, v: i16) -> Vec<u8> {
    match key {
        0 => enc(&produce(v), v),
        1 => enc(&fetch(v), v),
        2 => enc(&list_offsets(v), v),
        3 => enc(&metadata(v), v),
        18 => enc(
            &ApiVersionsRequest::default()
                .with_client_software_name(if v >= 3 { s("rdkafka") } else { s("") })
                .with_client_software_version(if v >= 3 { s("2.3.0") } else { s("") }),
            v,
        ),
        19 => enc(&create_topics(v), v),
        20 => enc(&delete_topics(v), v),
        21 => enc(&delete_records(), v),
        22 => enc(&init_producer_id(v), v),
        23 => enc(&offset_for_leader_epoch(v), v),
        32 => enc(&describe_configs(v), v),
        33 => enc(&alter_configs(), v),
        37 => enc(&create_partitions(), v),
        44 => enc(&incremental_alter_configs(), v),
        49 => enc(&alter_client_quotas(), v),
        60 => enc(
            &DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .with_endpoint_type(if v >= 1 { 2 } else { 1 })
                .with_include_fenced_brokers(v >= 2),
            v,
        ),
        29 | 30 | 31 | 34 | 35 | 43 | 45 | 46 | 48 | 50 | 51 | 55 | 57 | 61 | 64 | 65 | 66 | 75 => {
            build_admin(key, v)
        }
        80 | 81 => build_raft_voter(key, v),
        _ => build_group(key, v),
    }
}

/// An AlterClientQuotas body: a user+client entity with a default client, a set and a removal.
fn alter_client_quotas() -> AlterClientQuotasRequest {
    use kafka_protocol::messages::alter_client_quotas_request::*;
    AlterClientQuotasRequest::default()
        .with_entries(vec![EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(s("user"))
                    .with_entity_name(Some(s("alice"))),
                EntityData::default()
                    .with_entity_type(s("client-id"))
                    .with_entity_name(None),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_value(1024.0),
                OpData::default()
                    .with_key(s("consumer_byte_rate"))
                    .with_remove(true),
            ])])
        .with_validate_only(true)
}

/// AddRaftVoter and RemoveRaftVoter bodies.
pub(super) fn build_raft_voter(key: i16, v: i16) -> Vec<u8> {
    // The directory id's type without naming the uuid crate: any 16 bytes walk the same.
    let dir = Default::default();
    if key == 80 {
        use kafka_protocol::messages::add_raft_voter_request::*;
        enc(
            &AddRaftVoterRequest::default()
                .with_cluster_id(Some(s("q1w2e3r4t5y6u7i8o9p0aa")))
                .with_timeout_ms(30_000)
                .with_voter_id(4)
                .with_voter_directory_id(dir)
                .with_listeners(vec![Listener::default()
                    .with_name(s("CONTROLLER"))
                    .with_host(s("127.0.0.1"))
                    .with_port(49093)]),
            v,
        )
    } else {
        enc(
            &RemoveRaftVoterRequest::default()
                .with_voter_id(4)
                .with_voter_directory_id(dir),
            v,
        )
    }
}

/// Served (api key, min, max) ranges, matching `crate::versions::SUPPORTED_APIS`.
pub(super) fn served() -> Vec<(i16, i16, i16)> {
    crate::versions::SUPPORTED_APIS
        .iter()
        .map(|r| (r.api_key as i16, r.min, r.max))
        .collect()
}

/// Group, transaction and SASL APIs with the version ranges kafka-protocol decodes.
pub(super) fn group_apis() -> Vec<(i16, i16, i16)> {
    fn r<T: Message>(key: i16) -> (i16, i16, i16) {
        (key, T::VERSIONS.min, T::VERSIONS.max)
    }
    vec![
        r::<OffsetCommitRequest>(8),
        r::<OffsetFetchRequest>(9),
        r::<FindCoordinatorRequest>(10),
        r::<JoinGroupRequest>(11),
        r::<HeartbeatRequest>(12),
        r::<LeaveGroupRequest>(13),
        r::<SyncGroupRequest>(14),
        r::<DescribeGroupsRequest>(15),
        r::<ListGroupsRequest>(16),
        r::<SaslHandshakeRequest>(17),
        r::<AddPartitionsToTxnRequest>(24),
        r::<AddOffsetsToTxnRequest>(25),
        r::<EndTxnRequest>(26),
        r::<TxnOffsetCommitRequest>(28),
        r::<SaslAuthenticateRequest>(36),
        r::<DeleteGroupsRequest>(42),
        r::<OffsetDeleteRequest>(47),
        r::<ConsumerGroupHeartbeatRequest>(68),
        r::<ConsumerGroupDescribeRequest>(69),
    ]
}

/// Every request API the broker may decode, with the versions kafka-protocol 0.18 decodes
/// (each message's `VERSIONS`).
pub(super) fn all_apis() -> Vec<(i16, i16, i16)> {
    fn r<T: Message>(key: i16) -> (i16, i16, i16) {
        (key, T::VERSIONS.min, T::VERSIONS.max)
    }
    let mut all = vec![
        r::<ProduceRequest>(0),
        r::<FetchRequest>(1),
        r::<ListOffsetsRequest>(2),
        r::<MetadataRequest>(3),
        r::<ApiVersionsRequest>(18),
        r::<CreateTopicsRequest>(19),
        r::<DeleteTopicsRequest>(20),
        r::<DeleteRecordsRequest>(21),
        r::<InitProducerIdRequest>(22),
        r::<OffsetForLeaderEpochRequest>(23),
        r::<DescribeAclsRequest>(29),
        r::<CreateAclsRequest>(30),
        r::<DeleteAclsRequest>(31),
        r::<DescribeConfigsRequest>(32),
        r::<AlterConfigsRequest>(33),
        r::<AlterReplicaLogDirsRequest>(34),
        r::<DescribeLogDirsRequest>(35),
        r::<CreatePartitionsRequest>(37),
        r::<ElectLeadersRequest>(43),
        r::<AlterPartitionReassignmentsRequest>(45),
        r::<ListPartitionReassignmentsRequest>(46),
        r::<UnregisterBrokerRequest>(64),
        r::<IncrementalAlterConfigsRequest>(44),
        r::<DescribeClientQuotasRequest>(48),
        r::<AlterClientQuotasRequest>(49),
        r::<DescribeUserScramCredentialsRequest>(50),
        r::<AlterUserScramCredentialsRequest>(51),
        r::<DescribeQuorumRequest>(55),
        r::<UpdateFeaturesRequest>(57),
        r::<DescribeClusterRequest>(60),
        r::<DescribeProducersRequest>(61),
        r::<DescribeTransactionsRequest>(65),
        r::<ListTransactionsRequest>(66),
        r::<DescribeTopicPartitionsRequest>(75),
        r::<AddRaftVoterRequest>(80),
        r::<RemoveRaftVoterRequest>(81),
    ];
    all.extend(group_apis());
    all.sort_unstable();
    all
}

pub(super) fn build_admin(key: i16, v: i16) -> Vec<u8> {
    match key {
        29 => enc(
            &DescribeAclsRequest::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(s("topic")))
                .with_pattern_type_filter(3)
                .with_principal_filter(None)
                .with_host_filter(Some(s("*")))
                .with_operation(1)
                .with_permission_type(3),
            v,
        ),
        30 => {
            use kafka_protocol::messages::create_acls_request::*;
            let acl = |name: &'static str| {
                AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s(name))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3)
            };
            enc(
                &CreateAclsRequest::default().with_creations(vec![acl("t"), acl("uvw")]),
                v,
            )
        }
        31 => {
            use kafka_protocol::messages::delete_acls_request::*;
            enc(
                &DeleteAclsRequest::default().with_filters(vec![
                    DeleteAclsFilter::default()
                        .with_resource_type_filter(2)
                        .with_resource_name_filter(Some(s("t")))
                        .with_pattern_type_filter(3)
                        .with_principal_filter(Some(s("User:bob")))
                        .with_host_filter(None)
                        .with_operation(1)
                        .with_permission_type(1),
                    DeleteAclsFilter::default(),
                ]),
                v,
            )
        }
        34 => {
            use kafka_protocol::messages::alter_replica_log_dirs_request::*;
            let topic = |name: &'static str, partitions: Vec<i32>| {
                AlterReplicaLogDirTopic::default()
                    .with_name(tn(name))
                    .with_partitions(partitions)
            };
            enc(
                &AlterReplicaLogDirsRequest::default().with_dirs(vec![
                    AlterReplicaLogDir::default()
                        .with_path(s("/data/d2"))
                        .with_topics(vec![topic("t", vec![0, 1]), topic("uvw", vec![])]),
                    AlterReplicaLogDir::default().with_path(s("/data/d3")),
                ]),
                v,
            )
        }
        35 => {
            use kafka_protocol::messages::describe_log_dirs_request::*;
            enc(
                &DescribeLogDirsRequest::default().with_topics(Some(vec![
                    DescribableLogDirTopic::default()
                        .with_topic(tn("t"))
                        .with_partitions(vec![0, 1, 2]),
                    DescribableLogDirTopic::default().with_topic(tn("u")),
                ])),
                v,
            )
        }
        43 => {
            use kafka_protocol::messages::elect_leaders_request::*;
            enc(
                &ElectLeadersRequest::default()
                    .with_election_type(if v >= 1 { 1 } else { 0 })
                    .with_topic_partitions(Some(vec![
                        TopicPartitions::default()
                            .with_topic(tn("t"))
                            .with_partitions(vec![0, 2]),
                        TopicPartitions::default().with_topic(tn("uvw")),
                    ]))
                    .with_timeout_ms(60_000),
                v,
            )
        }
        45 => {
            use kafka_protocol::messages::alter_partition_reassignments_request::*;
            enc(
                &AlterPartitionReassignmentsRequest::default().with_topics(vec![
                    ReassignableTopic::default()
                        .with_name(tn("t"))
                        .with_partitions(vec![
                            ReassignablePartition::default()
                                .with_partition_index(0)
                                .with_replicas(Some(vec![BrokerId(1), BrokerId(2)])),
                            ReassignablePartition::default().with_partition_index(1),
                        ]),
                ]),
                v,
            )
        }
        46 => {
            use kafka_protocol::messages::list_partition_reassignments_request::*;
            enc(
                &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                    ListPartitionReassignmentsTopics::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![0, 1]),
                ])),
                v,
            )
        }
        64 => enc(
            &UnregisterBrokerRequest::default().with_broker_id(BrokerId(4)),
            v,
        ),
        55 => {
            use kafka_protocol::messages::describe_quorum_request::*;
            enc(
                &DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
                    .with_topic_name(tn("__cluster_metadata"))
                    .with_partitions(vec![PartitionData::default().with_partition_index(0)])]),
                v,
            )
        }
        57 => {
            use kafka_protocol::messages::update_features_request::*;
            enc(
                &UpdateFeaturesRequest::default()
                    .with_timeout_ms(60_000)
                    .with_feature_updates(vec![
                        FeatureUpdateKey::default()
                            .with_feature(s("group.version"))
                            .with_max_version_level(1)
                            .with_allow_downgrade(v == 0)
                            .with_upgrade_type(if v >= 1 { 2 } else { 1 }),
                        FeatureUpdateKey::default()
                            .with_feature(s("transaction.version"))
                            .with_max_version_level(2),
                    ])
                    .with_validate_only(v >= 1),
                v,
            )
        }
        75 => {
            use kafka_protocol::messages::describe_topic_partitions_request::*;
            enc(
                &DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![
                        TopicRequest::default().with_name(tn("t")),
                        TopicRequest::default().with_name(tn("uvw")),
                    ])
                    .with_response_partition_limit(2000)
                    .with_cursor(Some(
                        Cursor::default()
                            .with_topic_name(tn("t"))
                            .with_partition_index(3),
                    )),
                v,
            )
        }
        48 => {
            use kafka_protocol::messages::describe_client_quotas_request::*;
            enc(
                &DescribeClientQuotasRequest::default()
                    .with_components(vec![
                        ComponentData::default()
                            .with_entity_type(s("user"))
                            .with_match_type(0)
                            .with_match(Some(s("alice"))),
                        ComponentData::default()
                            .with_entity_type(s("client-id"))
                            .with_match_type(2)
                            .with_match(None),
                    ])
                    .with_strict(true),
                v,
            )
        }
        50 => {
            use kafka_protocol::messages::describe_user_scram_credentials_request::*;
            enc(
                &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                    UserName::default().with_name(s("alice")),
                    UserName::default().with_name(s("bob")),
                ])),
                v,
            )
        }
        51 => {
            use kafka_protocol::messages::alter_user_scram_credentials_request::*;
            enc(
                &AlterUserScramCredentialsRequest::default()
                    .with_deletions(vec![ScramCredentialDeletion::default()
                        .with_name(s("bob"))
                        .with_mechanism(2)])
                    .with_upsertions(vec![ScramCredentialUpsertion::default()
                        .with_name(s("alice"))
                        .with_mechanism(1)
                        .with_iterations(4096)
                        .with_salt(bytes::Bytes::from_static(b"salt"))
                        .with_salted_password(bytes::Bytes::from_static(&[7; 32]))]),
                v,
            )
        }
        61 => {
            use kafka_protocol::messages::describe_producers_request::*;
            enc(
                &DescribeProducersRequest::default().with_topics(vec![
                    TopicRequest::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![0, 4]),
                    TopicRequest::default().with_name(tn("u")),
                ]),
                v,
            )
        }
        65 => enc(
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![
                TransactionalId(s("tx-a")),
                TransactionalId(s("tx-b")),
            ]),
            v,
        ),
        66 => {
            let mut req = ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("PrepareCommit")])
                .with_producer_id_filters(vec![ProducerId(1), ProducerId(99)]);
            if v >= 1 {
                req = req.with_duration_filter(60_000);
            }
            if v >= 2 {
                req = req.with_transactional_id_pattern(Some(s("tx-.*")));
            }
            enc(&req, v)
        }
        _ => unreachable!("no builder for api {key}"),
    }
}

pub(super) fn gid(x: &'static str) -> GroupId {
    GroupId(s(x))
}

/// `Some(x)` from version `min` on, `None` before (a nullable field absent in old versions).
pub(super) fn from_v<T>(v: i16, min: i16, x: T) -> Option<T> {
    (v >= min).then_some(x)
}

pub(super) fn build_group(key: i16, v: i16) -> Vec<u8> {
    match key {
        8 => {
            use kafka_protocol::messages::offset_commit_request::*;
            let part = |p: i32| {
                let x = OffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(42)
                    .with_committed_metadata(Some(s("meta")));
                if v >= 6 {
                    x.with_committed_leader_epoch(3)
                } else {
                    x
                }
            };
            let mut req = OffsetCommitRequest::default()
                .with_group_id(gid("group"))
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(tn("t"))
                        .with_partitions(vec![part(0), part(1).with_committed_metadata(None)]),
                    OffsetCommitRequestTopic::default().with_name(tn("u")),
                ]);
            if v >= 1 {
                req = req
                    .with_generation_id_or_member_epoch(5)
                    .with_member_id(s("m-1"));
            }
            if (2..=4).contains(&v) {
                req = req.with_retention_time_ms(1000);
            }
            if v >= 7 {
                req = req.with_group_instance_id(Some(s("inst")));
            }
            enc(&req, v)
        }
        9 => {
            use kafka_protocol::messages::offset_fetch_request::*;
            let mut req = OffsetFetchRequest::default();
            if v <= 7 {
                req = req.with_group_id(gid("g")).with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![0, 1, 2]),
                ]));
            } else {
                let mut g = OffsetFetchRequestGroup::default()
                    .with_group_id(gid("g"))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![3])]));
                if v >= 9 {
                    g = g.with_member_id(Some(s("m"))).with_member_epoch(4);
                }
                req = req.with_groups(vec![
                    g,
                    OffsetFetchRequestGroup::default()
                        .with_group_id(gid("h"))
                        .with_topics(None),
                ]);
            }
            if v >= 7 {
                req = req.with_require_stable(true);
            }
            enc(&req, v)
        }
        10 => {
            let mut req = FindCoordinatorRequest::default();
            if v <= 3 {
                req = req.with_key(s("group-key"));
            } else {
                req = req.with_coordinator_keys(vec![s("a"), s("bb")]);
            }
            if v >= 1 {
                req = req.with_key_type(1);
            }
            enc(&req, v)
        }
        11 => {
            use kafka_protocol::messages::join_group_request::*;
            let mut req = JoinGroupRequest::default()
                .with_group_id(gid("g"))
                .with_session_timeout_ms(10_000)
                .with_member_id(s(""))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(b"\x00\x01meta")),
                    JoinGroupRequestProtocol::default().with_name(s("rr")),
                ]);
            if v >= 1 {
                req = req.with_rebalance_timeout_ms(30_000);
            }
            req = req.with_group_instance_id(from_v(v, 5, s("i")));
            req = req.with_reason(from_v(v, 8, s("because")));
            enc(&req, v)
        }
        12 => enc(
            &HeartbeatRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(3)
                .with_member_id(s("m"))
                .with_group_instance_id(from_v(v, 3, s("i"))),
            v,
        ),
        13 => {
            use kafka_protocol::messages::leave_group_request::*;
            let req = LeaveGroupRequest::default().with_group_id(gid("g"));
            let req = if v <= 2 {
                req.with_member_id(s("m"))
            } else {
                req.with_members(vec![
                    MemberIdentity::default()
                        .with_member_id(s("m"))
                        .with_group_instance_id(Some(s("i")))
                        .with_reason(from_v(v, 5, s("bye"))),
                    MemberIdentity::default().with_member_id(s("n")),
                ])
            };
            enc(&req, v)
        }
        14 => {
            use kafka_protocol::messages::sync_group_request::*;
            let req = SyncGroupRequest::default()
                .with_group_id(gid("g"))
                .with_generation_id(1)
                .with_member_id(s("m"))
                .with_group_instance_id(from_v(v, 3, s("i")))
                .with_protocol_type(from_v(v, 5, s("consumer")))
                .with_protocol_name(from_v(v, 5, s("range")))
                .with_assignments(vec![
                    SyncGroupRequestAssignment::default()
                        .with_member_id(s("m"))
                        .with_assignment(Bytes::from_static(b"assignment")),
                    SyncGroupRequestAssignment::default().with_member_id(s("n")),
                ]);
            enc(&req, v)
        }
        15 => enc(
            &DescribeGroupsRequest::default()
                .with_groups(vec![gid("a"), gid("bcd")])
                .with_include_authorized_operations(v >= 3),
            v,
        ),
        16 => {
            let mut req = ListGroupsRequest::default();
            if v >= 4 {
                req = req.with_states_filter(vec![s("Stable"), s("Empty")]);
            }
            if v >= 5 {
                req = req.with_types_filter(vec![s("consumer")]);
            }
            enc(&req, v)
        }
        17 => enc(
            &SaslHandshakeRequest::default().with_mechanism(s("PLAIN")),
            v,
        ),
        24 => {
            use kafka_protocol::messages::add_partitions_to_txn_request::*;
            let topics = vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(tn("t"))
                    .with_partitions(vec![0, 1]),
                AddPartitionsToTxnTopic::default().with_name(tn("u")),
            ];
            let req = if v <= 3 {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                    .with_v3_and_below_producer_id(ProducerId(9))
                    .with_v3_and_below_producer_epoch(1)
                    .with_v3_and_below_topics(topics)
            } else {
                AddPartitionsToTxnRequest::default().with_transactions(vec![
                    AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(TransactionalId(s("tx")))
                        .with_producer_id(ProducerId(9))
                        .with_producer_epoch(1)
                        .with_verify_only(true)
                        .with_topics(topics),
                ])
            };
            enc(&req, v)
        }
        25 => enc(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(9))
                .with_producer_epoch(2)
                .with_group_id(gid("g")),
            v,
        ),
        26 => enc(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(9))
                .with_producer_epoch(2)
                .with_committed(true),
            v,
        ),
        27 => {
            use kafka_protocol::messages::write_txn_markers_request::*;
            enc(
                &WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                    .with_producer_id(ProducerId(9))
                    .with_producer_epoch(2)
                    .with_transaction_result(true)
                    .with_coordinator_epoch(4)
                    .with_topics(vec![WritableTxnMarkerTopic::default()
                        .with_name(tn("t"))
                        .with_partition_indexes(vec![0, 1])])]),
                v,
            )
        }
        28 => {
            use kafka_protocol::messages::txn_offset_commit_request::*;
            let part = |p: i32| {
                let x = TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(p)
                    .with_committed_offset(7)
                    .with_committed_metadata(Some(s("md")));
                if v >= 2 {
                    x.with_committed_leader_epoch(1)
                } else {
                    x
                }
            };
            let mut req = TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(gid("g"))
                .with_producer_id(ProducerId(9))
                .with_producer_epoch(2)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(tn("t"))
                    .with_partitions(vec![
                        part(0),
                        part(1).with_committed_metadata(None),
                    ])]);
            if v >= 3 {
                req = req
                    .with_generation_id(4)
                    .with_member_id(s("m"))
                    .with_group_instance_id(Some(s("i")));
            }
            enc(&req, v)
        }
        36 => enc(
            &SaslAuthenticateRequest::default()
                .with_auth_bytes(Bytes::from_static(b"\x00user\x00password")),
            v,
        ),
        42 => enc(
            &DeleteGroupsRequest::default().with_groups_names(vec![gid("a"), gid("b")]),
            v,
        ),
        47 => {
            use kafka_protocol::messages::offset_delete_request::*;
            enc(
                &OffsetDeleteRequest::default()
                    .with_group_id(gid("g"))
                    .with_topics(vec![OffsetDeleteRequestTopic::default()
                        .with_name(tn("t"))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0),
                            OffsetDeleteRequestPartition::default().with_partition_index(3),
                        ])]),
                v,
            )
        }
        68 => {
            use kafka_protocol::messages::consumer_group_heartbeat_request::*;
            enc(
                &ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(gid("g"))
                    .with_member_id(s("member-uuid"))
                    .with_member_epoch(0)
                    .with_instance_id(Some(s("i")))
                    .with_rack_id(None)
                    .with_rebalance_timeout_ms(30_000)
                    .with_subscribed_topic_names(Some(vec![tn("t"), tn("u")]))
                    .with_subscribed_topic_regex(from_v(v, 1, s("t.*")))
                    .with_server_assignor(Some(s("uniform")))
                    .with_topic_partitions(Some(vec![
                        TopicPartitions::default().with_partitions(vec![0, 1]),
                        TopicPartitions::default(),
                    ])),
                v,
            )
        }
        69 => enc(
            &ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![gid("g"), gid("h")])
                .with_include_authorized_operations(true),
            v,
        ),
        _ => unreachable!("no builder for api {key}"),
    }
}

pub(super) fn produce(v: i16) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::*;
    ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(s("tx-1"))))
        .with_acks(-1)
        .with_timeout_ms(1500)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(tn("alpha"))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from_static(b"0123456789abcdef"))),
                    PartitionProduceData::default()
                        .with_index(1)
                        .with_records(None),
                ]),
            TopicProduceData::default().with_name(tn("b")),
        ])
        .with_transactional_id(if v >= 3 {
            Some(TransactionalId(s("tx-1")))
        } else {
            None
        })
}

pub(super) fn fetch(v: i16) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::*;
    let part = |p: i32| {
        let mut fp = FetchPartition::default()
            .with_partition(p)
            .with_fetch_offset(1234)
            .with_partition_max_bytes(1 << 20);
        if v >= 9 {
            fp = fp.with_current_leader_epoch(3);
        }
        if v >= 12 {
            fp = fp.with_last_fetched_epoch(2);
        }
        if v >= 5 {
            fp = fp.with_log_start_offset(10);
        }
        fp
    };
    let mut topic = FetchTopic::default().with_partitions(vec![part(0), part(7)]);
    let mut forgotten = ForgottenTopic::default().with_partitions(vec![4, 5]);
    if v <= 12 {
        topic = topic.with_topic(tn("orders"));
        forgotten = forgotten.with_topic(tn("gone"));
    }
    let mut req = FetchRequest::default()
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50_000_000)
        .with_isolation_level(1)
        .with_topics(vec![topic, FetchTopic::default()]);
    if v <= 14 {
        req = req.with_replica_id(BrokerId(-1));
    } else {
        req = req.with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(4))
                .with_replica_epoch(9),
        );
    }
    if v >= 7 {
        req = req
            .with_session_id(11)
            .with_session_epoch(2)
            .with_forgotten_topics_data(vec![forgotten]);
    }
    if v >= 11 {
        req = req.with_rack_id(s("rack-a"));
    }
    if v >= 12 {
        req = req.with_cluster_id(Some(s("cluster-xyz")));
    }
    req
}

pub(super) fn list_offsets(v: i16) -> ListOffsetsRequest {
    use kafka_protocol::messages::list_offsets_request::*;
    let part = |p: i32| {
        let lp = ListOffsetsPartition::default()
            .with_partition_index(p)
            .with_timestamp(-1);
        if v >= 4 {
            lp.with_current_leader_epoch(5)
        } else {
            lp
        }
    };
    let mut req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(tn("t1"))
                .with_partitions(vec![part(0), part(1)]),
            ListOffsetsTopic::default().with_name(tn("t2")),
        ]);
    if v >= 2 {
        req = req.with_isolation_level(1);
    }
    if v >= 10 {
        req = req.with_timeout_ms(3000);
    }
    req
}

pub(super) fn metadata(v: i16) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::*;
    let mut topics = vec![
        MetadataRequestTopic::default().with_name(Some(tn("topic-a"))),
        MetadataRequestTopic::default().with_name(Some(tn("b"))),
    ];
    if v >= 10 {
        topics.push(MetadataRequestTopic::default().with_name(None));
    }
    let mut req = MetadataRequest::default().with_topics(Some(topics));
    if v >= 4 {
        req = req.with_allow_auto_topic_creation(false);
    }
    if (8..=10).contains(&v) {
        req = req.with_include_cluster_authorized_operations(true);
    }
    if v >= 8 {
        req = req.with_include_topic_authorized_operations(true);
    }
    req
}

pub(super) fn create_topics(v: i16) -> CreateTopicsRequest {
    use kafka_protocol::messages::create_topics_request::*;
    CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(tn("new-topic"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])
                .with_configs(vec![
                    CreatableTopicConfig::default()
                        .with_name(s("cleanup.policy"))
                        .with_value(Some(s("compact"))),
                    CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(None),
                ]),
            CreatableTopic::default()
                .with_name(tn("x"))
                .with_num_partitions(3),
        ])
        .with_timeout_ms(30_000)
        .with_validate_only(v >= 1)
}

pub(super) fn delete_topics(v: i16) -> DeleteTopicsRequest {
    use kafka_protocol::messages::delete_topics_request::*;
    let req = DeleteTopicsRequest::default().with_timeout_ms(5000);
    if v >= 6 {
        req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(tn("doomed"))),
            DeleteTopicState::default().with_name(None),
        ])
    } else {
        req.with_topic_names(vec![tn("doomed"), tn("also")])
    }
}

pub(super) fn delete_records() -> DeleteRecordsRequest {
    use kafka_protocol::messages::delete_records_request::*;
    DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(tn("t"))
            .with_partitions(vec![
                DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(100),
                DeleteRecordsPartition::default()
                    .with_partition_index(1)
                    .with_offset(-1),
            ])])
        .with_timeout_ms(1000)
}

pub(super) fn init_producer_id(v: i16) -> InitProducerIdRequest {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(if v % 2 == 0 {
            Some(TransactionalId(s("txn")))
        } else {
            None
        })
        .with_transaction_timeout_ms(60_000);
    if v >= 3 {
        req.with_producer_id(ProducerId(77)).with_producer_epoch(3)
    } else {
        req
    }
}

pub(super) fn offset_for_leader_epoch(v: i16) -> OffsetForLeaderEpochRequest {
    use kafka_protocol::messages::offset_for_leader_epoch_request::*;
    let req =
        OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(tn("t"))
            .with_partitions(vec![
                OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(4)
                    .with_leader_epoch(3),
                OffsetForLeaderPartition::default().with_partition(2),
            ])]);
    if v >= 3 {
        req.with_replica_id(BrokerId(-1))
    } else {
        req
    }
}

pub(super) fn describe_configs(v: i16) -> DescribeConfigsRequest {
    use kafka_protocol::messages::describe_configs_request::*;
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("topic"))
            .with_configuration_keys(Some(vec![s("retention.ms"), s("segment.bytes")])),
        DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1"))
            .with_configuration_keys(None),
    ]);
    let req = if v >= 1 {
        req.with_include_synonyms(true)
    } else {
        req
    };
    if v >= 3 {
        req.with_include_documentation(true)
    } else {
        req
    }
}

pub(super) fn alter_configs() -> AlterConfigsRequest {
    use kafka_protocol::messages::alter_configs_request::*;
    AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_configs(vec![
                AlterableConfig::default()
                    .with_name(s("a"))
                    .with_value(Some(s("1"))),
                AlterableConfig::default()
                    .with_name(s("b"))
                    .with_value(None),
            ])])
        .with_validate_only(true)
}

pub(super) fn create_partitions() -> CreatePartitionsRequest {
    use kafka_protocol::messages::create_partitions_request::*;
    CreatePartitionsRequest::default()
        .with_topics(vec![
            CreatePartitionsTopic::default()
                .with_name(tn("t"))
                .with_count(4)
                .with_assignments(Some(vec![CreatePartitionsAssignment::default()
                    .with_broker_ids(vec![BrokerId(1), BrokerId(2)])])),
            CreatePartitionsTopic::default()
                .with_name(tn("u"))
                .with_count(2)
                .with_assignments(None),
        ])
        .with_timeout_ms(100)
}

pub(super) fn incremental_alter_configs() -> IncrementalAlterConfigsRequest {
    use kafka_protocol::messages::incremental_alter_configs_request::*;
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("1000"))),
                    AlterableConfig::default()
                        .with_name(s("cleanup.policy"))
                        .with_config_operation(1)
                        .with_value(None),
                ]),
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(s("")),
        ])
        .with_validate_only(false)
}
