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
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    assert_eq!(c.send(&create, 7).await.topics[0].error_code, 0);
    let topic_id = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await
        .topics[0]
        .topic_id;
    let range = |key: ApiKey| {
        let r = SUPPORTED_APIS.iter().find(|r| r.api_key == key).unwrap();
        r.min..=r.max
    };
    for v in range(ApiKey::ApiVersions) {
        assert_eq!(
            c.send(&ApiVersionsRequest::default(), v).await.error_code,
            0,
            "ApiVersions v{v}"
        );
    }
    for v in range(ApiKey::Metadata) {
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
    for v in range(ApiKey::Produce) {
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
    for v in range(ApiKey::Fetch) {
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
    for v in range(ApiKey::ListOffsets) {
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
    for v in range(ApiKey::CreateTopics) {
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
    for v in range(ApiKey::DeleteTopics) {
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
    for v in range(ApiKey::CreatePartitions) {
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
    for v in range(ApiKey::DeleteRecords) {
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
    for v in range(ApiKey::InitProducerId) {
        let resp = c
            .send(
                &InitProducerIdRequest::default().with_transactional_id(None),
                v,
            )
            .await;
        assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
    }
    for v in range(ApiKey::OffsetForLeaderEpoch) {
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
    for v in range(ApiKey::DescribeConfigs) {
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
    for v in range(ApiKey::AlterConfigs) {
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
    for v in range(ApiKey::IncrementalAlterConfigs) {
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
    for v in range(ApiKey::DescribeCluster) {
        let resp = c.send(&DescribeClusterRequest::default(), v).await;
        assert_eq!(
            (resp.error_code, resp.brokers.len()),
            (0, 1),
            "DescribeCluster v{v}"
        );
    }
}
