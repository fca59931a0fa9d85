//! Tests of the request-body checks: every served version of bodies kafka-protocol encodes is accepted and its prefixes refused, mutated and hostile bodies never panic nor reach the decoder unchecked.

use super::*;
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, Message, StrBytes};

fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

fn tn(x: &'static str) -> TopicName {
    TopicName(s(x))
}

fn enc<T: Encodable>(req: &T, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    req.encode(&mut b, v).unwrap();
    b.to_vec()
}

/// The served request bodies, built with kafka-protocol, as (api key, version, body).
fn build(key: i16, v: i16) -> Vec<u8> {
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
        60 => enc(
            &DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .with_endpoint_type(if v >= 1 { 2 } else { 1 })
                .with_include_fenced_brokers(v >= 2),
            v,
        ),
        29 | 30 | 31 | 34 | 35 | 43 | 45 | 46 | 48 | 50 | 55 | 57 | 61 | 64 | 65 | 66 | 75 => {
            build_admin(key, v)
        }
        80 | 81 => build_raft_voter(key, v),
        _ => build_group(key, v),
    }
}

/// AddRaftVoter and RemoveRaftVoter bodies.
fn build_raft_voter(key: i16, v: i16) -> Vec<u8> {
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
fn served() -> Vec<(i16, i16, i16)> {
    crate::versions::SUPPORTED_APIS
        .iter()
        .map(|r| (r.api_key as i16, r.min, r.max))
        .collect()
}

/// Group, transaction and SASL APIs with the version ranges kafka-protocol decodes.
fn group_apis() -> Vec<(i16, i16, i16)> {
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
fn all_apis() -> Vec<(i16, i16, i16)> {
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
        r::<DescribeUserScramCredentialsRequest>(50),
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

fn build_admin(key: i16, v: i16) -> Vec<u8> {
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

fn gid(x: &'static str) -> GroupId {
    GroupId(s(x))
}

/// `Some(x)` from version `min` on, `None` before (a nullable field absent in old versions).
fn from_v<T>(v: i16, min: i16, x: T) -> Option<T> {
    (v >= min).then_some(x)
}

fn build_group(key: i16, v: i16) -> Vec<u8> {
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

#[test]
fn every_group_and_txn_version_accepts_encoded_requests_and_rejects_prefixes() {
    for (key, min, max) in group_apis() {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}

fn produce(v: i16) -> ProduceRequest {
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

fn fetch(v: i16) -> FetchRequest {
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

fn list_offsets(v: i16) -> ListOffsetsRequest {
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

fn metadata(v: i16) -> MetadataRequest {
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

fn create_topics(v: i16) -> CreateTopicsRequest {
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

fn delete_topics(v: i16) -> DeleteTopicsRequest {
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

fn delete_records() -> DeleteRecordsRequest {
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

fn init_producer_id(v: i16) -> InitProducerIdRequest {
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

fn offset_for_leader_epoch(v: i16) -> OffsetForLeaderEpochRequest {
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

fn describe_configs(v: i16) -> DescribeConfigsRequest {
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

fn alter_configs() -> AlterConfigsRequest {
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

fn create_partitions() -> CreatePartitionsRequest {
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

fn incremental_alter_configs() -> IncrementalAlterConfigsRequest {
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

fn decode_ok(key: i16, v: i16, body: &[u8]) -> bool {
    fn d<T: Decodable>(body: &[u8], v: i16) -> bool {
        T::decode(&mut Bytes::copy_from_slice(body), v).is_ok()
    }
    match key {
        0 => d::<ProduceRequest>(body, v),
        1 => d::<FetchRequest>(body, v),
        2 => d::<ListOffsetsRequest>(body, v),
        3 => d::<MetadataRequest>(body, v),
        18 => d::<ApiVersionsRequest>(body, v),
        19 => d::<CreateTopicsRequest>(body, v),
        20 => d::<DeleteTopicsRequest>(body, v),
        21 => d::<DeleteRecordsRequest>(body, v),
        22 => d::<InitProducerIdRequest>(body, v),
        23 => d::<OffsetForLeaderEpochRequest>(body, v),
        32 => d::<DescribeConfigsRequest>(body, v),
        33 => d::<AlterConfigsRequest>(body, v),
        37 => d::<CreatePartitionsRequest>(body, v),
        44 => d::<IncrementalAlterConfigsRequest>(body, v),
        60 => d::<DescribeClusterRequest>(body, v),
        8 => d::<OffsetCommitRequest>(body, v),
        9 => d::<OffsetFetchRequest>(body, v),
        10 => d::<FindCoordinatorRequest>(body, v),
        11 => d::<JoinGroupRequest>(body, v),
        12 => d::<HeartbeatRequest>(body, v),
        13 => d::<LeaveGroupRequest>(body, v),
        14 => d::<SyncGroupRequest>(body, v),
        15 => d::<DescribeGroupsRequest>(body, v),
        16 => d::<ListGroupsRequest>(body, v),
        17 => d::<SaslHandshakeRequest>(body, v),
        24 => d::<AddPartitionsToTxnRequest>(body, v),
        25 => d::<AddOffsetsToTxnRequest>(body, v),
        26 => d::<EndTxnRequest>(body, v),
        27 => d::<WriteTxnMarkersRequest>(body, v),
        28 => d::<TxnOffsetCommitRequest>(body, v),
        36 => d::<SaslAuthenticateRequest>(body, v),
        42 => d::<DeleteGroupsRequest>(body, v),
        47 => d::<OffsetDeleteRequest>(body, v),
        68 => d::<ConsumerGroupHeartbeatRequest>(body, v),
        69 => d::<ConsumerGroupDescribeRequest>(body, v),
        29 => d::<DescribeAclsRequest>(body, v),
        30 => d::<CreateAclsRequest>(body, v),
        31 => d::<DeleteAclsRequest>(body, v),
        34 => d::<AlterReplicaLogDirsRequest>(body, v),
        35 => d::<DescribeLogDirsRequest>(body, v),
        43 => d::<ElectLeadersRequest>(body, v),
        45 => d::<AlterPartitionReassignmentsRequest>(body, v),
        46 => d::<ListPartitionReassignmentsRequest>(body, v),
        64 => d::<UnregisterBrokerRequest>(body, v),
        48 => d::<DescribeClientQuotasRequest>(body, v),
        50 => d::<DescribeUserScramCredentialsRequest>(body, v),
        55 => d::<DescribeQuorumRequest>(body, v),
        57 => d::<UpdateFeaturesRequest>(body, v),
        75 => d::<DescribeTopicPartitionsRequest>(body, v),
        80 => d::<AddRaftVoterRequest>(body, v),
        81 => d::<RemoveRaftVoterRequest>(body, v),
        61 => d::<DescribeProducersRequest>(body, v),
        65 => d::<DescribeTransactionsRequest>(body, v),
        66 => d::<ListTransactionsRequest>(body, v),
        _ => unreachable!(),
    }
}

/// Accepts the encoded body (and with trailing bytes), rejects every strict prefix.
fn assert_valid_and_prefixes_rejected(key: i16, v: i16, body: &[u8]) {
    assert_eq!(check_request_body(key, v, body), Ok(()), "api {key} v{v}");
    // The schema walk must end exactly where kafka-protocol's encoding ends: a missing or
    // extra field in the table would shift this.
    assert_eq!(
        walk_body(key, v, body),
        Ok(body.len()),
        "api {key} v{v}: table layout disagrees with the encoded size"
    );
    assert!(
        decode_ok(key, v, body),
        "kafka-protocol decodes api {key} v{v}"
    );
    let mut trailing = body.to_vec();
    trailing.extend_from_slice(&[0, 1, 2]);
    assert_eq!(
        check_request_body(key, v, &trailing),
        Ok(()),
        "api {key} v{v} trailing"
    );
    for cut in 0..body.len() {
        assert!(
            check_request_body(key, v, &body[..cut]).is_err(),
            "api {key} v{v}: prefix of {cut}/{} bytes accepted",
            body.len()
        );
    }
}

#[test]
fn every_served_version_accepts_encoded_requests_and_rejects_prefixes() {
    for (key, min, max) in served() {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}

#[test]
fn every_version_kafka_protocol_decodes_is_in_the_table() {
    let all = all_apis();
    assert_eq!(all.len(), 53);
    for (key, min, max) in all {
        for v in min..=max {
            assert!(has_schema(key, v), "api {key} v{v} missing from the table");
            assert_valid_and_prefixes_rejected(key, v, &build(key, v));
        }
    }
}

#[test]
fn admin_apis_reject_huge_lengths() {
    // DescribeAcls v1: int8, then a classic string length claiming 32767 bytes.
    let body = [2, 0x7f, 0xff, b'x', 3];
    assert_eq!(
        check_request_body(29, 1, &body),
        Err(LengthError::BadLength)
    );
    // CreateAcls v1: creations count 0x7fffffff.
    let mut body = 0x7fff_ffffi32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0; 24]);
    assert_eq!(
        check_request_body(30, 1, &body),
        Err(LengthError::BadLength)
    );
    // ListTransactions v0: compact array length u32::MAX (varint ff ff ff ff 0f).
    let body = [0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0];
    assert_eq!(
        check_request_body(66, 0, &body),
        Err(LengthError::BadLength)
    );
    // DescribeTopicPartitions v0: no topics, a limit, and a cursor whose topic name claims
    // more bytes than remain.
    let body = [0x01, 0, 0, 0x07, 0xd0, 0x01, 0x7f, b't', 0, 0, 0, 0, 0, 0];
    assert_eq!(
        check_request_body(75, 0, &body),
        Err(LengthError::BadLength)
    );
    // The same with a null cursor is whole.
    assert_eq!(
        check_request_body(75, 0, &[0x01, 0, 0, 0x07, 0xd0, 0xff, 0]),
        Ok(())
    );
    // DescribeLogDirs v2: a six-byte varint for the topics length.
    let body = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0];
    assert_eq!(
        check_request_body(35, 2, &body),
        Err(LengthError::BadVarint)
    );
}

fn header(key: i16, ver: i16, corr: i32, client: Option<&str>, hv: i16) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&key.to_be_bytes());
    h.extend_from_slice(&ver.to_be_bytes());
    h.extend_from_slice(&corr.to_be_bytes());
    if hv >= 1 {
        match client {
            Some(c) => {
                h.extend_from_slice(&(c.len() as i16).to_be_bytes());
                h.extend_from_slice(c.as_bytes());
            }
            None => h.extend_from_slice(&(-1i16).to_be_bytes()),
        }
    }
    if hv >= 2 {
        h.push(0);
    }
    h
}

#[test]
fn request_headers_are_measured_and_checked() {
    use kafka_protocol::messages::RequestHeader;
    // Headers encoded by kafka-protocol, followed by a body.
    for (key, ver, hv) in [
        (3i16, 1i16, 1i16),
        (3, 12, 2),
        (18, 3, 2),
        (0, 9, 2),
        (0, 3, 1),
    ] {
        for client in [Some("rdkafka"), None] {
            let mut h = RequestHeader::default()
                .with_request_api_key(key)
                .with_request_api_version(ver)
                .with_correlation_id(77)
                .with_client_id(client.map(s));
            if hv >= 2 {
                h.unknown_tagged_fields
                    .insert(5, Bytes::from_static(b"tag-data"));
            }
            let head = enc(&h, hv);
            let mut frame = head.clone();
            frame.extend_from_slice(&build(key, ver));
            assert_eq!(
                check_request_header(key, ver, hv, &frame),
                Ok(head.len()),
                "api {key} v{ver} header v{hv}"
            );
            for cut in 0..head.len() {
                assert!(
                    check_request_header(key, ver, hv, &frame[..cut]).is_err(),
                    "header prefix {cut} accepted"
                );
            }
            let len = head.len();
            assert_eq!(check_request_body(key, ver, &frame[len..]), Ok(()));
        }
    }
    // Header v0: fixed 8 bytes.
    assert_eq!(
        check_request_header(7, 0, 0, &header(7, 0, 1, None, 0)),
        Ok(8)
    );
    // Mismatched api key or version.
    let h = header(3, 1, 1, Some("c"), 1);
    assert_eq!(
        check_request_header(3, 2, 1, &h),
        Err(LengthError::HeaderMismatch)
    );
    assert_eq!(
        check_request_header(0, 1, 1, &h),
        Err(LengthError::HeaderMismatch)
    );
    assert_eq!(
        check_request_header(3, 1, 3, &h),
        Err(LengthError::UnknownSchema)
    );
    // Client id length past the end, and below -1.
    let mut h = header(3, 1, 1, Some("abc"), 1);
    h[8..10].copy_from_slice(&0x7fffi16.to_be_bytes());
    assert_eq!(
        check_request_header(3, 1, 1, &h),
        Err(LengthError::BadLength)
    );
    h[8..10].copy_from_slice(&(-2i16).to_be_bytes());
    assert_eq!(
        check_request_header(3, 1, 1, &h),
        Err(LengthError::BadLength)
    );
    // Header v2: tagged section with a huge size, and a six-byte varint count.
    let mut h = header(3, 12, 1, Some("c"), 1);
    h.extend_from_slice(&[0x01, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        check_request_header(3, 12, 2, &h),
        Err(LengthError::BadLength)
    );
    let mut h = header(3, 12, 1, Some("c"), 1);
    h.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert_eq!(
        check_request_header(3, 12, 2, &h),
        Err(LengthError::BadVarint)
    );
}

#[test]
fn random_headers_never_panic() {
    let mut rng = XorShift(0x0dd_ba11_cafe_f00d);
    let mut buf = [0u8; 32];
    for hv in 0..=3 {
        for _ in 0..10_000 {
            let len = (rng.next() % 32) as usize;
            for b in &mut buf[..len] {
                *b = rng.next() as u8;
            }
            let key = if len >= 2 {
                i16::from_be_bytes([buf[0], buf[1]])
            } else {
                0
            };
            let ver = if len >= 4 {
                i16::from_be_bytes([buf[2], buf[3]])
            } else {
                0
            };
            if let Ok(n) = check_request_header(key, ver, hv, &buf[..len]) {
                assert!(n <= len);
            }
        }
    }
}

#[test]
fn named_versions_from_the_brief() {
    for (key, v) in [
        (0, 3),
        (0, 9),
        (1, 4),
        (1, 12),
        (1, 16),
        (3, 0),
        (3, 9),
        (3, 12),
        (18, 0),
        (18, 3),
        (19, 2),
        (19, 5),
        (19, 7),
        (2, 1),
        (2, 7),
        (32, 4),
        (22, 0),
        (22, 4),
        (20, 6),
        (44, 1),
    ] {
        let body = build(key, v);
        assert!(body.len() > 4 || key == 18, "api {key} v{v} is non-trivial");
        assert_valid_and_prefixes_rejected(key, v, &body);
    }
}

#[test]
fn unknown_schema() {
    assert_eq!(
        check_request_body(9999, 0, &[]),
        Err(LengthError::UnknownSchema)
    );
    assert_eq!(
        check_request_body(0, 99, &[]),
        Err(LengthError::UnknownSchema)
    );
    assert_eq!(
        check_request_body(3, -1, &[]),
        Err(LengthError::UnknownSchema)
    );
}

#[test]
fn huge_classic_array_count_is_rejected() {
    // Metadata v0: the topics array count is the first field.
    let mut body = build(3, 0);
    body[..4].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(3, 0, &body), Err(LengthError::BadLength));

    // Produce v3: null transactional id (2), acks (2), timeout (4), then the topics count.
    let mut body = enc(&produce(3).with_transactional_id(None), 3);
    body[8..12].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(0, 3, &body), Err(LengthError::BadLength));

    // Fetch v4 with a 20-byte body claiming 2^31-1 topics.
    let mut body = vec![
        0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0,
    ];
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert_eq!(check_request_body(1, 4, &body), Err(LengthError::BadLength));

    // A negative count other than -1.
    let mut body = build(3, 1);
    body[..4].copy_from_slice(&(-2i32).to_be_bytes());
    assert_eq!(check_request_body(3, 1, &body), Err(LengthError::BadLength));
    // -1 is null (all topics) and is fine.
    assert_eq!(check_request_body(3, 1, &(-1i32).to_be_bytes()), Ok(()));
}

#[test]
fn huge_compact_array_length_is_rejected() {
    // Produce v9: null compact transactional id (1), acks (2), timeout (4), topics uvarint.
    let mut body = vec![0x00, 0xff, 0xff, 0, 0, 0x05, 0xdc];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    body.extend_from_slice(&[0; 32]);
    assert_eq!(check_request_body(0, 9, &body), Err(LengthError::BadLength));

    // Metadata v12: compact topics array, then a topic whose name claims u32::MAX - 1 bytes.
    let mut body = vec![0x02];
    body.extend_from_slice(&[0; 16]);
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    assert_eq!(
        check_request_body(3, 12, &body),
        Err(LengthError::BadLength)
    );

    // A classic string length below -1.
    let mut body = build(0, 3);
    body[..2].copy_from_slice(&(-5i16).to_be_bytes());
    assert_eq!(check_request_body(0, 3, &body), Err(LengthError::BadLength));
}

#[test]
fn six_byte_varint_is_rejected() {
    // Metadata v9: the topics length is the first field.
    let body = [0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0, 0];
    assert_eq!(check_request_body(3, 9, &body), Err(LengthError::BadVarint));
    // Tagged-field count of ApiVersions v3 after two empty compact strings.
    let body = [0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadVarint)
    );
    // A five-byte varint is fine.
    let body = [0x01, 0x01, 0x80, 0x80, 0x80, 0x80, 0x00];
    assert_eq!(check_request_body(18, 3, &body), Ok(()));
}

#[test]
fn tagged_fields_are_skipped_and_bounded() {
    // ApiVersions v3 with two unknown tagged fields.
    let body = [0x02, b'a', 0x01, 0x02, 0x05, 0x03, 1, 2, 3, 0x09, 0x00];
    assert_eq!(check_request_body(18, 3, &body), Ok(()));
    // Tagged field size larger than the rest of the body.
    let body = [0x01, 0x01, 0x01, 0x05, 0x7f, 1, 2];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadLength)
    );
    // Tagged field count larger than the rest of the body.
    let body = [0x01, 0x01, 0xff, 0xff, 0x03];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(LengthError::BadLength)
    );
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut buf = [0u8; 64];
    for a in APIS {
        for v in a.min..=a.max {
            for _ in 0..10_000 {
                let len = (rng.next() % 64) as usize;
                for b in &mut buf[..len] {
                    // Bias toward small values and 0xff so lengths are sometimes plausible.
                    let r = rng.next();
                    *b = match r % 4 {
                        0 => 0,
                        1 => 0xff,
                        2 => (r >> 8) as u8 & 0x07,
                        _ => (r >> 8) as u8,
                    };
                }
                let _ = check_request_body(a.key, v, &buf[..len]);
            }
        }
    }
}

/// Mutated valid bodies: whatever the check accepts, kafka-protocol decodes without a huge
/// allocation (a wrong table entry would abort this test).
#[test]
fn mutated_bodies_accepted_by_the_check_are_safe_to_decode() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    for (key, min, max) in all_apis() {
        for v in min..=max {
            let body = build(key, v);
            if body.is_empty() {
                continue;
            }
            for _ in 0..300 {
                let mut m = body.clone();
                for _ in 0..1 + rng.next() % 3 {
                    let i = (rng.next() as usize) % m.len();
                    m[i] = match rng.next() % 3 {
                        0 => 0xff,
                        1 => 0x7f,
                        _ => rng.next() as u8,
                    };
                }
                if check_request_body(key, v, &m).is_ok() {
                    let _ = decode_ok(key, v, &m);
                }
            }
        }
    }
}
