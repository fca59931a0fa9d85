//! The broker's Kafka APIs driven over TCP by a minimal client: each test asserts the responses
//! a Kafka client would see from Apache Kafka 4.x in the same situation.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::records::{batch, create_topic, fetch, produce, s};
use common::{Client, TestBroker};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_storage::testing::{build_batch, TestRecord};

fn idempotent_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    let recs: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<TestRecord> = recs
        .iter()
        .map(|v| (None, Some(v.as_slice()), 1_700_000_000_000))
        .collect();
    build_batch(0, &refs, pid, epoch, seq)
}

async fn list_offset(c: &mut Client, topic: &str, partition: i32, ts: i64) -> (i16, i64, i64) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(ts)])]);
    let resp = c.send(&req, 7).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp)
}

/// Offsets of the batches in a fetched record set: (base offset, last offset).
fn batch_offsets(records: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= records.len() {
        let base = i64::from_be_bytes(records[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let delta = i32::from_be_bytes(records[pos + 23..pos + 27].try_into().unwrap()) as i64;
        out.push((base, base + delta));
        pos += 12 + len;
    }
    out
}

#[tokio::test]
async fn api_versions_lists_served_apis_and_answers_unknown_versions_with_v0() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let resp = c.send(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
    let finalized = |name: &str| {
        resp.finalized_features
            .iter()
            .find(|f| f.name.as_str() == name)
            .map(|f| (f.min_version_level, f.max_version_level))
    };
    assert!(finalized("metadata.version").is_some());
    assert_eq!(finalized("group.version"), Some((1, 1)));
    // Transactions v2 (KIP-890) is finalized only with Produce 12, EndTxn 5 and
    // TxnOffsetCommit 5 served.
    assert_eq!(finalized("transaction.version"), Some((2, 2)));
    assert!(resp.finalized_features_epoch >= 0);
    let max = |key: i16| {
        resp.api_keys
            .iter()
            .find(|k| k.api_key == key)
            .unwrap()
            .max_version
    };
    assert!(max(0) >= 12 && max(26) >= 5 && max(28) >= 5);

    // ApiVersions v99: header v1 (api key 18, version 99, correlation id 7, client id "x").
    let mut frame = vec![0, 0, 0, 0, 0, 18, 0, 99, 0, 0, 0, 7, 0, 1, b'x'];
    let n = (frame.len() - 4) as i32;
    frame[0..4].copy_from_slice(&n.to_be_bytes());
    c.send_raw(&frame).await;
    let body = c.read_frame().await.expect("a v0 error response");
    assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), 7);
    assert_eq!(i16::from_be_bytes(body[4..6].try_into().unwrap()), 35);
    let count = i32::from_be_bytes(body[6..10].try_into().unwrap()) as usize;
    assert!(count >= 10);
    assert_eq!(body.len(), 10 + count * 6);
}

#[tokio::test]
async fn produce_fetch_round_trip_with_dense_offsets() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "rt", 2, &[]).await, 0);
    let mut next = 0;
    for i in 0..5 {
        let (err, base, lat) = produce(&mut c, "rt", 1, batch(3, 1_700_000_000_000 + i), -1).await;
        assert_eq!(err, 0);
        assert_eq!(base, next);
        assert_eq!(lat, -1);
        next += 3;
    }
    let p = fetch(&mut c, "rt", 1, 0, 0).await;
    assert_eq!(p.error_code, 0);
    assert_eq!(p.high_watermark, 15);
    assert_eq!(p.last_stable_offset, 15);
    assert_eq!(p.log_start_offset, 0);
    let offsets = batch_offsets(p.records.as_ref().unwrap());
    assert_eq!(offsets, vec![(0, 2), (3, 5), (6, 8), (9, 11), (12, 14)]);
    // A fetch in the middle of a batch returns the whole batch that contains the offset.
    let p = fetch(&mut c, "rt", 1, 7, 0).await;
    assert_eq!(batch_offsets(p.records.as_ref().unwrap())[0], (6, 8));
    // Past the end: OFFSET_OUT_OF_RANGE.
    let p = fetch(&mut c, "rt", 1, 16, 0).await;
    assert_eq!(p.error_code, 1);
    // The other partition is empty.
    let p = fetch(&mut c, "rt", 0, 0, 0).await;
    assert_eq!((p.error_code, p.high_watermark), (0, 0));
}

#[tokio::test]
async fn fetch_long_poll_is_woken_by_an_append() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "lp", 1, &[]).await, 0);
    let addr = b.addr;
    let producer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut p = Client::connect(addr).await;
        produce(&mut p, "lp", 0, batch(1, 1), 1).await
    });
    let start = Instant::now();
    let p = fetch(&mut c, "lp", 0, 0, 10_000).await;
    let waited = start.elapsed();
    assert_eq!(producer.await.unwrap().0, 0);
    assert_eq!(batch_offsets(p.records.as_ref().unwrap()), vec![(0, 0)]);
    assert!(
        waited >= Duration::from_millis(250),
        "returned before the append: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "not woken by the append: {waited:?}"
    );
    // With nothing to read, the fetch waits max.wait.ms and returns empty.
    let start = Instant::now();
    let p = fetch(&mut c, "lp", 0, 1, 300).await;
    assert!(start.elapsed() >= Duration::from_millis(280));
    assert!(p.records.as_ref().unwrap().is_empty());
}

#[tokio::test]
async fn produce_errors_match_kafka() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(&mut c, "small", 1, &[("max.message.bytes", "200")]).await,
        0
    );
    // MESSAGE_TOO_LARGE (10)
    let big = {
        let v = vec![b'x'; 500];
        build_batch(0, &[(None, Some(&v), 1)], -1, -1, -1)
    };
    assert_eq!(produce(&mut c, "small", 0, big, 1).await.0, 10);
    // UNKNOWN_TOPIC_OR_PARTITION (3)
    assert_eq!(produce(&mut c, "nope", 0, batch(1, 1), 1).await.0, 3);
    assert_eq!(produce(&mut c, "small", 5, batch(1, 1), 1).await.0, 3);
    // INVALID_REQUIRED_ACKS (21)
    assert_eq!(produce(&mut c, "small", 0, batch(1, 1), 2).await.0, 21);
    // CORRUPT_MESSAGE (2): a flipped byte breaks the CRC.
    let mut bad = batch(2, 1);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut c, "small", 0, bad, 1).await.0, 2);
    // Nothing above was written.
    assert_eq!(list_offset(&mut c, "small", 0, -1).await.1, 0);
    // acks=0 gets no response: the next request's response is the next frame.
    let req = ProduceRequest::default()
        .with_acks(0)
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s("small")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch(1, 1))))])]);
    {
        use bytes::BufMut;
        use kafka_protocol::protocol::{Encodable, HeaderVersion};
        let header = RequestHeader::default()
            .with_request_api_key(0)
            .with_request_api_version(9)
            .with_correlation_id(999);
        let mut buf = bytes::BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, ProduceRequest::header_version(9))
            .unwrap();
        req.encode(&mut buf, 9).unwrap();
        let n = (buf.len() - 4) as i32;
        buf[0..4].copy_from_slice(&n.to_be_bytes());
        c.send_raw(&buf).await;
    }
    // Client::send asserts the correlation id of the next frame is its own, not 999.
    let (err, latest, _) = list_offset(&mut c, "small", 0, -1).await;
    assert_eq!((err, latest), (0, 1));
}

#[tokio::test]
async fn idempotent_producer_sequences() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "idem", 1, &[]).await, 0);
    let init = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60000),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(pid >= 0);
    assert_eq!(epoch, 0);
    let init2 = c
        .send(
            &InitProducerIdRequest::default().with_transactional_id(None),
            4,
        )
        .await;
    assert_ne!(init2.producer_id.0, pid, "each producer gets its own id");

    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(2, pid, epoch, 0), -1).await,
        (0, 0, -1)
    );
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(3, pid, epoch, 2), -1).await,
        (0, 2, -1)
    );
    // A retry of the first batch is answered with its original offset and not written twice.
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(2, pid, epoch, 0), -1)
            .await
            .1,
        0
    );
    assert_eq!(list_offset(&mut c, "idem", 0, -1).await.1, 5);
    // A gap: OUT_OF_ORDER_SEQUENCE_NUMBER (45).
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(1, pid, epoch, 9), -1)
            .await
            .0,
        45
    );
    // A new epoch must start at 0; afterwards the old epoch is fenced: INVALID_PRODUCER_EPOCH (47).
    assert_eq!(
        produce(
            &mut c,
            "idem",
            0,
            idempotent_batch(1, pid, epoch + 1, 0),
            -1
        )
        .await
        .0,
        0
    );
    assert_eq!(
        produce(&mut c, "idem", 0, idempotent_batch(1, pid, epoch, 5), -1)
            .await
            .0,
        47
    );
    // KIP-360: InitProducerId with the current id and epoch bumps the epoch.
    let bumped = c
        .send(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch + 1),
            4,
        )
        .await;
    assert_eq!(
        (bumped.producer_id.0, bumped.producer_epoch),
        (pid, epoch + 2)
    );
    // Producer state survives a restart: a retry of the last batch is still a duplicate, and
    // the fenced epoch stays fenced.
    drop(c);
    b.restart().await;
    let mut c = b.client().await;
    let retry = produce(
        &mut c,
        "idem",
        0,
        idempotent_batch(1, pid, epoch + 1, 0),
        -1,
    )
    .await;
    assert_eq!((retry.0, retry.1), (0, 5));
    let fenced = produce(&mut c, "idem", 0, idempotent_batch(1, pid, epoch, 5), -1).await;
    assert_eq!(fenced.0, 47);
    assert_eq!(list_offset(&mut c, "idem", 0, -1).await.1, 6);
    // New producer ids never repeat one handed out before the restart.
    let after = c
        .send(
            &InitProducerIdRequest::default().with_transactional_id(None),
            4,
        )
        .await;
    assert!(after.producer_id.0 > init2.producer_id.0);
}

#[tokio::test]
async fn log_append_time_rewrites_timestamps() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(
            &mut c,
            "lat",
            1,
            &[("message.timestamp.type", "LogAppendTime")]
        )
        .await,
        0
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let (err, _, lat) = produce(&mut c, "lat", 0, batch(2, 1000), 1).await;
    assert_eq!(err, 0);
    assert!(
        lat >= before,
        "log_append_time_ms {lat} is the broker's clock"
    );
    let p = fetch(&mut c, "lat", 0, 0, 0).await;
    let r = p.records.unwrap();
    let attributes = i16::from_be_bytes(r[21..23].try_into().unwrap());
    assert_ne!(attributes & 0x08, 0, "timestamp type bit set");
    let max_ts = i64::from_be_bytes(r[35..43].try_into().unwrap());
    assert_eq!(max_ts, lat);
    // The rewritten batch still passes its CRC.
    let crc = u32::from_be_bytes(r[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&r[21..]));
}

#[tokio::test]
async fn admin_errors_match_kafka() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    // INVALID_REPLICATION_FACTOR (38) on a single node.
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("rf3")))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    assert_eq!(c.send(&req, 7).await.topics[0].error_code, 38);
    // validate_only creates nothing.
    let req = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("v")))
            .with_num_partitions(3)
            .with_replication_factor(1)]);
    let resp = c.send(&req, 7).await;
    assert_eq!(
        (resp.topics[0].error_code, resp.topics[0].num_partitions),
        (0, 3)
    );
    let md = c
        .send(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s("v"))))
            ])),
            12,
        )
        .await;
    assert_eq!(md.topics[0].error_code, 3);
    // TOPIC_ALREADY_EXISTS (36), INVALID_TOPIC_EXCEPTION (17), INVALID_CONFIG (40).
    assert_eq!(create_topic(&mut c, "t", 2, &[]).await, 0);
    assert_eq!(create_topic(&mut c, "t", 2, &[]).await, 36);
    assert_eq!(create_topic(&mut c, "bad name", 1, &[]).await, 17);
    assert_eq!(
        create_topic(&mut c, "cfg", 1, &[("retention.ms", "abc")]).await,
        40
    );
    assert_eq!(
        create_topic(&mut c, "cfg", 1, &[("no.such.config", "1")]).await,
        40
    );
    // CreatePartitions: fewer or equal refused with INVALID_PARTITIONS (37); more accepted.
    let cp = |n: i32| {
        CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_count(n)
                    .with_assignments(None),
            ])
    };
    assert_eq!(c.send(&cp(1), 3).await.results[0].error_code, 37);
    assert_eq!(c.send(&cp(2), 3).await.results[0].error_code, 37);
    // An empty (non-null) assignment list is zero assignments: INVALID_REPLICA_ASSIGNMENT (39).
    let mut empty = cp(4);
    empty.topics[0].assignments = Some(vec![]);
    assert_eq!(c.send(&empty, 3).await.results[0].error_code, 39);
    assert_eq!(c.send(&cp(4), 3).await.results[0].error_code, 0);
    let md = c
        .send(
            &MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))
            ])),
            12,
        )
        .await;
    assert_eq!(md.topics[0].partitions.len(), 4);
    assert_ne!(md.topics[0].topic_id, uuid::Uuid::nil());
    assert_eq!(md.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(md.brokers[0].port, b.addr.port() as i32);
}

#[tokio::test]
async fn list_offsets_and_delete_records() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "lo", 1, &[]).await, 0);
    for i in 0..4 {
        produce(&mut c, "lo", 0, batch(5, 1_000_000 + i * 1000), 1).await;
    }
    assert_eq!(list_offset(&mut c, "lo", 0, -2).await.1, 0);
    assert_eq!(list_offset(&mut c, "lo", 0, -1).await.1, 20);
    // By timestamp: the first record with timestamp >= 1_002_002 is the third record of batch 2.
    let (err, off, ts) = list_offset(&mut c, "lo", 0, 1_002_002).await;
    assert_eq!((err, off, ts), (0, 12, 1_002_002));
    // Beyond every timestamp: offset -1.
    assert_eq!(list_offset(&mut c, "lo", 0, 9_000_000).await.1, -1);
    // Max timestamp (-3).
    let (_, off, ts) = list_offset(&mut c, "lo", 0, -3).await;
    assert_eq!((off, ts), (19, 1_003_004));
    // DeleteRecords moves the log start offset.
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
            .with_name(TopicName(s("lo")))
            .with_partitions(vec![
                delete_records_request::DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(7),
            ])]);
    let resp = c.send(&req, 2).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    assert_eq!(resp.topics[0].partitions[0].low_watermark, 7);
    assert_eq!(list_offset(&mut c, "lo", 0, -2).await.1, 7);
    assert_eq!(fetch(&mut c, "lo", 0, 3, 0).await.error_code, 1);
    assert_eq!(fetch(&mut c, "lo", 0, 7, 0).await.log_start_offset, 7);
}

#[tokio::test]
async fn delete_topic_then_recreate_starts_empty_and_state_survives_restart() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "d", 1, &[]).await, 0);
    produce(&mut c, "d", 0, batch(3, 1), 1).await;
    let resp = c
        .send(
            &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("d"))]),
            4,
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(produce(&mut c, "d", 0, batch(1, 1), 1).await.0, 3);
    assert_eq!(create_topic(&mut c, "d", 1, &[]).await, 0);
    assert_eq!(list_offset(&mut c, "d", 0, -1).await.1, 0);
    produce(&mut c, "d", 0, batch(2, 1), 1).await;
    assert_eq!(
        create_topic(&mut c, "keep", 3, &[("retention.ms", "123456789")]).await,
        0
    );
    produce(&mut c, "keep", 2, batch(4, 1), 1).await;
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let ids: Vec<(String, uuid::Uuid)> = md
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.topic_id))
        .collect();
    drop(c);

    b.restart().await;
    let mut c = b.client().await;
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let after: Vec<(String, uuid::Uuid)> = md
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.topic_id))
        .collect();
    assert_eq!(ids, after, "topic ids are stable across restarts");
    assert_eq!(list_offset(&mut c, "d", 0, -1).await.1, 2);
    assert_eq!(list_offset(&mut c, "keep", 2, -1).await.1, 4);
    let p = fetch(&mut c, "keep", 2, 0, 0).await;
    assert_eq!(batch_offsets(p.records.as_ref().unwrap()), vec![(0, 3)]);
    // The topic config override survived too.
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("keep"))
            .with_configuration_keys(Some(vec![s("retention.ms")])),
    ]);
    let resp = c.send(&req, 4).await;
    let cfg = &resp.results[0].configs[0];
    assert_eq!(cfg.value.as_ref().unwrap().as_str(), "123456789");
    assert_eq!(cfg.config_source, 1);
}

#[tokio::test]
async fn configs_describe_and_alter_take_effect() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(create_topic(&mut c, "cfg", 1, &[]).await, 0);
    let describe = |keys: Option<Vec<StrBytes>>| {
        DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("cfg"))
                .with_configuration_keys(keys),
        ])
    };
    let resp = c.send(&describe(None), 4).await;
    let configs = &resp.results[0].configs;
    assert!(
        configs.len() >= 20,
        "every topic config is listed, got {}",
        configs.len()
    );
    let retention = configs
        .iter()
        .find(|x| x.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_ref().unwrap().as_str(), "604800000");
    assert_eq!(retention.config_source, 5, "DEFAULT_CONFIG");
    // Incremental: SET max.message.bytes, then a too-large batch is refused without a restart.
    let alter = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cfg"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("max.message.bytes"))
                    .with_config_operation(0)
                    .with_value(Some(s("100"))),
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("cleanup.policy"))
                    .with_config_operation(0)
                    .with_value(Some(s("compact"))),
            ]),
    ]);
    assert_eq!(c.send(&alter, 1).await.responses[0].error_code, 0);
    let v = vec![b'x'; 300];
    let big = build_batch(0, &[(None, Some(&v), 1)], -1, -1, -1);
    assert_eq!(produce(&mut c, "cfg", 0, big, 1).await.0, 10);
    let resp = c.send(&describe(Some(vec![s("cleanup.policy")])), 4).await;
    assert_eq!(
        resp.results[0].configs[0].value.as_ref().unwrap().as_str(),
        "compact"
    );
    // A bad value is refused with INVALID_CONFIG (40).
    let bad = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cfg"))
            .with_configs(vec![
                incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_config_operation(0)
                    .with_value(Some(s("soon"))),
            ]),
    ]);
    assert_eq!(c.send(&bad, 1).await.responses[0].error_code, 40);
    // Legacy AlterConfigs replaces the whole set: max.message.bytes goes back to its default.
    let legacy = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(s("cfg"))
            .with_configs(vec![alter_configs_request::AlterableConfig::default()
                .with_name(s("retention.ms"))
                .with_value(Some(s("1000")))]),
    ]);
    assert_eq!(c.send(&legacy, 2).await.responses[0].error_code, 0);
    let resp = c
        .send(
            &describe(Some(vec![s("max.message.bytes"), s("retention.ms")])),
            4,
        )
        .await;
    for cfg in &resp.results[0].configs {
        match cfg.name.as_str() {
            "max.message.bytes" => assert_eq!(cfg.config_source, 5),
            "retention.ms" => assert_eq!(cfg.value.as_ref().unwrap().as_str(), "1000"),
            other => panic!("unexpected {other}"),
        }
    }
    // Broker configs are described too.
    let req = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(s("1")),
    ]);
    let resp = c.send(&req, 4).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert!(resp.results[0]
        .configs
        .iter()
        .any(|x| x.name.as_str() == "log.segment.bytes"));
}

#[tokio::test]
async fn auto_create_topics_when_enabled() {
    let b = TestBroker::start(&[
        ("auto.create.topics.enable", "true"),
        ("num.partitions", "3"),
    ])
    .await;
    let mut c = b.client().await;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("auto"))))
        ]));
    let md = c.send(&req, 12).await;
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 3);
    // Not when the client says no.
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(false)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s("auto2"))))
        ]));
    assert_eq!(c.send(&req, 12).await.topics[0].error_code, 3);
}

#[tokio::test]
async fn bad_frames_close_the_connection_and_the_broker_keeps_serving() {
    let b = TestBroker::start(&[("socket.request.max.bytes", "1048576")]).await;
    // A size above socket.request.max.bytes.
    let mut c = b.client().await;
    c.send_raw(&2_000_000_000i32.to_be_bytes()).await;
    assert!(c.closed().await);
    // A negative size.
    let mut c = b.client().await;
    c.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(c.closed().await);
    // Garbage.
    let mut c = b.client().await;
    let mut garbage = vec![0, 0, 0, 100];
    garbage.extend((0..100u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    c.send_raw(&garbage).await;
    assert!(c.closed().await);
    // An unknown API key.
    let mut c = b.client().await;
    c.send_raw(&[0, 0, 0, 10, 0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(c.closed().await);
    // Metadata v1 whose topics array claims 2^31-1 entries.
    let mut c = b.client().await;
    c.send_raw(&[
        0, 0, 0, 14, 0, 3, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff,
    ])
    .await;
    assert!(c.closed().await);
    // Metadata v12 (flexible) whose compact array claims 2^32-2 entries.
    let mut c = b.client().await;
    c.send_raw(&[
        0, 0, 0, 16, 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ])
    .await;
    assert!(c.closed().await);
    // Produce v0 (advertised for old clients, not served).
    let mut c = b.client().await;
    c.send_raw(&[0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0xff])
        .await;
    assert!(c.closed().await);
    // The broker still serves a fresh client.
    let mut c = b.client().await;
    assert_eq!(
        c.send(&ApiVersionsRequest::default(), 3).await.error_code,
        0
    );
    assert_eq!(create_topic(&mut c, "alive", 1, &[]).await, 0);
}

#[tokio::test]
async fn retention_runs_periodically_and_deleted_topics_leave_the_disk() {
    let b = TestBroker::start(&[("log.retention.check.interval.ms", "200")]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(
            &mut c,
            "ret",
            1,
            &[("segment.bytes", "200"), ("retention.bytes", "300")]
        )
        .await,
        0
    );
    for i in 0..10 {
        produce(&mut c, "ret", 0, batch(2, 1_000 + i), 1).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut earliest = 0;
    while Instant::now() < deadline {
        earliest = list_offset(&mut c, "ret", 0, -2).await.1;
        if earliest > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(earliest > 0, "retention.bytes moved the log start offset");
    assert_eq!(list_offset(&mut c, "ret", 0, -1).await.1, 20);

    // Fetch limits: a 1-byte partition limit still returns one whole batch.
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s("ret")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(earliest)
                .with_partition_max_bytes(1)])]);
    let resp = c.send(&req, 12).await;
    let records = resp.responses[0].partitions[0].records.clone().unwrap();
    assert_eq!(batch_offsets(&records).len(), 1);

    // DeleteTopics: the partition directory goes away in the background.
    let dir = b.dir.path().join("data").join("ret-0");
    assert!(dir.exists());
    let resp = c
        .send(
            &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("ret"))]),
            4,
        )
        .await;
    assert_eq!(resp.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let leftovers = || {
        std::fs::read_dir(b.dir.path().join("data"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("ret-0")
            })
            .count()
    };
    while leftovers() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(leftovers(), 0, "the deleted partition's files are removed");
}

#[tokio::test]
async fn compacted_topics_refuse_records_without_a_key() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(&mut c, "cmp", 1, &[("cleanup.policy", "compact")]).await,
        0
    );
    let keyless = build_batch(0, &[(None, Some(b"v"), 1)], -1, -1, -1);
    assert_eq!(
        produce(&mut c, "cmp", 0, keyless, 1).await.0,
        87,
        "INVALID_RECORD"
    );
    assert_eq!(produce(&mut c, "cmp", 0, batch(3, 1), 1).await, (0, 0, -1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_1_is_on_disk_before_the_answer_with_shared_fsyncs() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(&mut c, "durable", 1, &[("flush.messages", "1")]).await,
        0
    );
    assert_eq!(create_topic(&mut c, "plain", 1, &[]).await, 0);
    let addr = b.addr;
    let writers: Vec<_> = (0..6)
        .map(|w| {
            tokio::spawn(async move {
                let mut p = Client::connect(addr).await;
                for i in 0..20 {
                    let (err, _, _) = produce(&mut p, "durable", 0, batch(2, w * 100 + i), 1).await;
                    assert_eq!(err, 0);
                    let (err, _, _) = produce(&mut p, "plain", 0, batch(2, i), 1).await;
                    assert_eq!(err, 0);
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let durable = broker.replicas.partition("durable", 0).unwrap();
    let plain = broker.replicas.partition("plain", 0).unwrap();
    assert_eq!(durable.high_watermark(), 240);
    // Each answer waited for an fsync covering its records; none ran for the plain topic.
    let syncs = durable.sync_count();
    assert!((1..=120).contains(&syncs), "{syncs} fsyncs for 120 writes");
    assert_eq!(plain.sync_count(), 0);
    let p = fetch(&mut c, "durable", 0, 0, 0).await;
    assert_eq!(batch_offsets(p.records.as_ref().unwrap()).len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_answers_waiting_for_fsync_do_not_hold_up_the_next_requests_and_keep_their_order() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    assert_eq!(
        create_topic(&mut c, "durable", 1, &[("flush.messages", "1")]).await,
        0
    );
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let durable = broker.replicas.partition("durable", 0).unwrap();
    // Ten produce requests, each answered only once its fsync is done, with a metadata request
    // between them and an acks=0 one, all sent while the partition's fsyncs are held.
    let produce_req = |acks: i16, n: usize| {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(5000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(s("durable")))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(n, 1))))])])
    };
    let held = durable.hold_syncs().await;
    let mut sent = Vec::new();
    for i in 0..10 {
        if i == 5 {
            let corr = c.send_only(&MetadataRequest::default(), 12).await;
            sent.push((corr, None));
            c.send_only(&produce_req(0, 1), 9).await;
        }
        let corr = c.send_only(&produce_req(1, 2), 9).await;
        sent.push((corr, Some(i)));
    }
    // All of them are appended while the first answer waits, and nothing is answered yet (the
    // metadata answer queues behind the produce answers before it).
    let deadline = Instant::now() + Duration::from_secs(10);
    while durable.log.lock().log_end_offset() < 21 {
        assert!(
            Instant::now() < deadline,
            "the requests after the first were not appended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(300), c.stream.peek(&mut byte)).await;
    assert!(
        early.is_err(),
        "an answer was written before the first produce's fsync"
    );
    drop(held);
    // Every answer comes, in request order (none for acks=0), with the offsets the order of
    // the requests gives: the acks=0 batch went in after the fifth.
    for (corr, i) in sent {
        match i {
            None => {
                let meta = c.read_response::<MetadataRequest>(12, corr).await;
                assert!(!meta.brokers.is_empty());
            }
            Some(i) => {
                let resp = c.read_response::<ProduceRequest>(9, corr).await;
                let p = &resp.responses[0].partition_responses[0];
                let base = if i < 5 { 2 * i } else { 2 * i + 1 };
                assert_eq!(
                    (p.error_code, p.base_offset),
                    (0, base as i64),
                    "request {i}"
                );
            }
        }
    }
    assert_eq!(durable.high_watermark(), 21);
    // One fsync covered the requests that arrived while it was held (one more at most if the
    // acks=0 request's own sync ran apart).
    let syncs = durable.sync_count();
    assert!((1..=2).contains(&syncs), "{syncs} fsyncs for 11 writes");
    // The connection serves one request at a time as before.
    assert_eq!(
        produce(&mut c, "durable", 0, batch(1, 1), 1).await,
        (0, 21, -1)
    );
}
