//! Record-level helpers of the broker's integration tests: topics created with configs,
//! produce and fetch of one partition over the minimal [`Client`], and test batches.

use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use runnel_storage::testing::{build_batch, TestRecord};

use super::Client;
/// An owned test record: key, value, timestamp.
pub type OwnedRecord = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

pub async fn create_topic(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(s(k))
                            .with_value(Some(s(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(5000);
    let resp = c.send(&req, 7).await;
    resp.topics[0].error_code
}

/// Produces `records` to one partition; returns (error, base offset, log append time).
pub async fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
    acks: i16,
) -> (i16, i64, i64) {
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(records)))])]);
    let resp = c.send(&req, 9).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, p.log_append_time_ms)
}

pub fn batch(n: usize, ts: i64) -> Vec<u8> {
    let recs: Vec<OwnedRecord> = (0..n)
        .map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                Some(format!("v{i}").into_bytes()),
                ts + i as i64,
            )
        })
        .collect();
    let refs: Vec<TestRecord> = recs
        .iter()
        .map(|(k, v, t)| (k.as_deref(), v.as_deref(), *t))
        .collect();
    build_batch(0, &refs, -1, -1, -1)
}

pub async fn fetch(
    c: &mut Client,
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut resp = c.send(&req, 12).await;
    resp.responses.remove(0).partitions.remove(0)
}
