//! The broker's operations surface driven over TCP and HTTP: the metrics and health endpoint
//! (`metrics.listeners`) against what was produced and fetched, and the broker-logger configs
//! (log levels at run time) as `kafka-configs --entity-type broker-loggers` uses them.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::records::{batch, create_topic, fetch, produce, s};
use common::{Client, TestBroker};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
/// GET `path` from an HTTP endpoint; (status code, body).
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// The value of one series (`name{labels}` exactly as exposed) in Prometheus text, if present.
fn series(text: &str, wanted: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == wanted)
        .map(|(_, v)| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_counts_what_was_produced_and_fetched_and_times_each_stage() {
    let b = TestBroker::start(&[("metrics.listeners", "http://127.0.0.1:0")]).await;
    let handle = b.handle.as_ref().unwrap();
    let http = handle.metrics_bound[0];
    assert_eq!(http_get(http, "/health/live").await.0, 200);
    let (status, body) = http_get(http, "/health/ready").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    assert_eq!(http_get(http, "/nothing").await.0, 404);

    let mut c = b.client().await;
    let mut other = b.client().await;
    assert_eq!(create_topic(&mut c, "m", 2, &[]).await, 0);
    assert_eq!(
        create_topic(&mut c, "slow", 1, &[("flush.messages", "1")]).await,
        0
    );
    // Three batches (3 + 4 + 5 records) to partition 0, one (2 records) to partition 1.
    let batches = [
        (0, batch(3, 1)),
        (0, batch(4, 10)),
        (0, batch(5, 20)),
        (1, batch(2, 30)),
    ];
    let bytes_in: usize = batches.iter().map(|(_, b)| b.len()).sum();
    for (p, records) in batches.iter().cloned() {
        assert_eq!(produce(&mut c, "m", p, records, 1).await.0, 0);
    }
    // A durable produce whose fsync is held for 300 ms: its wait is remote time, not local.
    let slow = handle.broker.replicas.partition("slow", 0).unwrap();
    let held = slow.hold_syncs().await;
    let corr = other
        .send_only(
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(TopicName(s("slow")))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(batch(1, 1))))])]),
            9,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(held);
    let resp = other.read_response::<ProduceRequest>(9, corr).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    let fetched = fetch(&mut c, "m", 0, 0, 100).await;
    let bytes_out = fetched.records.as_ref().unwrap().len();
    assert!(bytes_out > 0);

    let (status, text) = http_get(http, "/metrics").await;
    assert_eq!(status, 200);
    let get = |name: &str| series(&text, name).unwrap_or_else(|| panic!("{name} missing:\n{text}"));
    let m = r#"{topic="m"}"#;
    assert_eq!(
        get(&format!("kafka_server_brokertopicmetrics_bytesin_total{m}")),
        bytes_in as f64
    );
    assert_eq!(
        get(&format!(
            "kafka_server_brokertopicmetrics_messagesin_total{m}"
        )),
        14.0
    );
    assert_eq!(
        get(&format!(
            "kafka_server_brokertopicmetrics_totalproducerequests_total{m}"
        )),
        4.0
    );
    assert_eq!(
        get(&format!(
            "kafka_server_brokertopicmetrics_bytesout_total{m}"
        )),
        bytes_out as f64
    );
    assert_eq!(
        get(&format!(
            "kafka_server_brokertopicmetrics_totalfetchrequests_total{m}"
        )),
        1.0
    );
    assert_eq!(
        get(r#"kafka_log_log_logendoffset{partition="0",topic="m"}"#),
        12.0
    );
    assert_eq!(
        get(r#"kafka_log_log_logendoffset{partition="1",topic="m"}"#),
        2.0
    );
    let size0 = get(r#"kafka_log_log_size{partition="0",topic="m"}"#);
    assert_eq!(
        size0 as usize,
        batches[..3].iter().map(|(_, b)| b.len()).sum::<usize>()
    );
    assert_eq!(get("kafka_server_replicamanager_leadercount"), 3.0);
    assert_eq!(get("kafka_server_replicamanager_partitioncount"), 3.0);
    assert_eq!(
        get("kafka_server_replicamanager_underreplicatedpartitions"),
        0.0
    );
    assert_eq!(
        get("kafka_controller_kafkacontroller_activecontrollercount"),
        1.0
    );
    assert_eq!(
        get("kafka_controller_kafkacontroller_offlinepartitionscount"),
        0.0
    );
    assert_eq!(
        get("kafka_controller_kafkacontroller_globaltopiccount"),
        2.0
    );
    assert_eq!(
        get(r#"kafka_server_socketservermetrics_connection_count{listener="PLAINTEXT"}"#),
        2.0
    );
    // Five produce requests answered, each timed in every stage.
    let produce_count = |stage: &str| get(&format!("{stage}_count{{request=\"Produce\"}}"));
    assert_eq!(
        get(r#"kafka_network_requestmetrics_requests_total{request="Produce"}"#),
        5.0
    );
    for stage in [
        "runnel_network_requestmetrics_requestreadtimems",
        "kafka_network_requestmetrics_requestqueuetimems",
        "kafka_network_requestmetrics_localtimems",
        "kafka_network_requestmetrics_remotetimems",
        "kafka_network_requestmetrics_responsequeuetimems",
        "kafka_network_requestmetrics_responsesendtimems",
        "kafka_network_requestmetrics_totaltimems",
    ] {
        assert_eq!(produce_count(stage), 5.0, "{stage}");
    }
    // The held fsync shows as remote time (one request waited >= 300 ms), not local time.
    let sum = |stage: &str| get(&format!("{stage}_sum{{request=\"Produce\"}}"));
    assert!(sum("kafka_network_requestmetrics_remotetimems") >= 300.0);
    assert!(sum("kafka_network_requestmetrics_totaltimems") >= 300.0);
    assert!(sum("kafka_network_requestmetrics_localtimems") < 300.0);
    let under_300 =
        get(r#"kafka_network_requestmetrics_remotetimems_bucket{request="Produce",le="250"}"#);
    assert_eq!(under_300, 4.0, "the four requests without an fsync wait");
    assert_eq!(
        get(r#"kafka_network_requestmetrics_requests_total{request="Fetch"}"#),
        1.0
    );
    // The durable write's fsync was timed (the others had none).
    assert_eq!(
        get("kafka_log_logflushstats_logflushrateandtimems_count"),
        1.0
    );
    // A closed connection leaves the count.
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(http, "/metrics").await.1;
        let n = series(
            &text,
            r#"kafka_server_socketservermetrics_connection_count{listener="PLAINTEXT"}"#,
        );
        if n == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connection count {n:?} after one closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn broker_logger_levels_are_described_and_changed_as_kafka_configs_does() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    async fn describe(
        c: &mut Client,
        name: &str,
    ) -> describe_configs_response::DescribeConfigsResult {
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(8)
                .with_resource_name(s(name)),
        ]);
        c.send(&req, 4).await.results.remove(0)
    }
    let levels = |r: &describe_configs_response::DescribeConfigsResult| {
        r.configs
            .iter()
            .map(|e| {
                assert_eq!((e.config_source, e.read_only), (6, false));
                (e.name.to_string(), e.value.as_ref().unwrap().to_string())
            })
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = describe(&mut c, "1").await;
    assert_eq!(before.error_code, 0);
    let before = levels(&before);
    assert!(before.contains_key("root") && before.contains_key("runnel_broker"));
    // Another broker's id is refused, as Kafka does.
    assert_eq!(describe(&mut c, "7").await.error_code, 42);
    async fn alter(c: &mut Client, ops: Vec<(&str, i8, Option<&str>)>, validate_only: bool) -> i16 {
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(8)
                .with_resource_name(s("1"))
                .with_configs(
                    ops.into_iter()
                        .map(|(n, op, v)| {
                            AlterableConfig::default()
                                .with_name(s(n))
                                .with_config_operation(op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )]);
        c.send(&req, 1).await.responses.remove(0).error_code
    }
    // Errors change nothing: an unknown logger or level (INVALID_CONFIG), removing the root's
    // level or APPEND (INVALID_REQUEST).
    assert_eq!(
        alter(&mut c, vec![("kafka.server.Foo", 0, Some("DEBUG"))], false).await,
        40
    );
    assert_eq!(
        alter(&mut c, vec![("runnel_storage", 0, Some("LOUD"))], false).await,
        40
    );
    assert_eq!(alter(&mut c, vec![("root", 1, None)], false).await, 42);
    assert_eq!(
        alter(&mut c, vec![("runnel_storage", 2, Some("DEBUG"))], false).await,
        42
    );
    // validate_only checks without changing.
    assert_eq!(
        alter(&mut c, vec![("runnel_storage.log", 0, Some("TRACE"))], true).await,
        0
    );
    assert_eq!(levels(&describe(&mut c, "1").await), before);
    // A module under a crate is a logger; its children inherit its level.
    assert_eq!(
        alter(
            &mut c,
            vec![("runnel_storage.log", 0, Some("TRACE"))],
            false
        )
        .await,
        0
    );
    let now = levels(&describe(&mut c, "1").await);
    assert_eq!(now["runnel_storage.log"], "TRACE");
    assert_eq!(now["runnel_storage"], before["runnel_storage"]);
    assert_eq!(
        alter(&mut c, vec![("runnel_storage.log", 1, None)], false).await,
        0
    );
    // Every module is a logger (Kafka's tool alters only loggers the broker describes).
    let after = levels(&describe(&mut c, "1").await);
    assert_eq!(after["runnel_storage.log"], before["runnel_storage.log"]);
    assert!(after.contains_key("runnel_broker.replica.fetcher"));
}
