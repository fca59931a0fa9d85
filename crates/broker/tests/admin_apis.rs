//! The admin APIs Kafka's command-line tools call on a cluster, at every served version:
//! DescribeQuorum (the metadata quorum as its leader reports it, from any node), paged
//! DescribeTopicPartitions, DescribeLogDirs (partition sizes from the files, disk space, several
//! log dirs), AlterReplicaLogDirs (a replica moved between dirs under a producer) and
//! UpdateFeatures with the finalized levels ApiVersions then advertises.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{Client, TestBroker, TestCluster};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_protocol::versions::supported;
use runnel_storage::testing::build_batch;

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let r = supported(key as i16).unwrap();
    r.min..=r.max
}

fn quorum_request(topic: &str, partition: i32) -> DescribeQuorumRequest {
    use describe_quorum_request::*;
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s(topic)))
        .with_partitions(vec![
            PartitionData::default().with_partition_index(partition)
        ])])
}

fn dtp_request(
    topics: &[&str],
    limit: i32,
    cursor: Option<(&str, i32)>,
) -> DescribeTopicPartitionsRequest {
    use describe_topic_partitions_request::*;
    DescribeTopicPartitionsRequest::default()
        .with_topics(
            topics
                .iter()
                .map(|t| TopicRequest::default().with_name(TopicName(s(t))))
                .collect(),
        )
        .with_response_partition_limit(limit)
        .with_cursor(cursor.map(|(t, p)| {
            Cursor::default()
                .with_topic_name(TopicName(s(t)))
                .with_partition_index(p)
        }))
}

/// (topic, [partition indexes]) of each topic of a DescribeTopicPartitions answer.
type Page = Vec<(String, Vec<i32>)>;

/// The topics of a DescribeTopicPartitions answer, and its next cursor.
fn pages(resp: &DescribeTopicPartitionsResponse) -> (Page, Option<(String, i32)>) {
    let topics = resp
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    let cursor = resp
        .next_cursor
        .as_ref()
        .map(|c| (c.topic_name.0.to_string(), c.partition_index));
    (topics, cursor)
}

async fn produce(c: &mut Client, topic: &str, partition: i32, n: usize) {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let recs: Vec<_> = values
        .iter()
        .map(|v| (None, Some(v.as_slice()), 1i64))
        .collect();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(Bytes::from(build_batch(0, &recs, -1, -1, -1)))),
            ])]);
    // The leader may not have applied the new topic yet (UNKNOWN_TOPIC_OR_PARTITION,
    // NOT_LEADER_OR_FOLLOWER): retried, as a client would.
    for _ in 0..100 {
        let error = c.send(&req, 9).await.responses[0].partition_responses[0].error_code;
        if error == 0 {
            return;
        }
        assert!(
            [3, 6].contains(&error),
            "produce to {topic}-{partition}: error {error}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("produce to {topic}-{partition}: no leader in 10 s");
}

/// The finalized level of a feature in an ApiVersions v3 answer (None: not finalized).
async fn finalized(c: &mut Client, name: &str) -> Option<i16> {
    let resp = c.send(&ApiVersionsRequest::default(), 3).await;
    let supported = resp
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == name)
        .map(|f| (f.min_version, f.max_version));
    assert!(
        supported.is_some(),
        "{name} is not among the supported features"
    );
    resp.finalized_features
        .iter()
        .find(|f| f.name.as_str() == name)
        .map(|f| {
            assert_eq!(f.min_version_level, f.max_version_level);
            f.max_version_level
        })
}

async fn update_feature(
    c: &mut Client,
    version: i16,
    name: &str,
    level: i16,
    upgrade_type: i8,
    validate_only: bool,
) -> UpdateFeaturesResponse {
    use update_features_request::FeatureUpdateKey;
    let req = UpdateFeaturesRequest::default()
        .with_timeout_ms(30_000)
        .with_feature_updates(vec![FeatureUpdateKey::default()
            .with_feature(s(name))
            .with_max_version_level(level)
            .with_allow_downgrade(version == 0 && upgrade_type != 1)
            .with_upgrade_type(if version >= 1 { upgrade_type } else { 1 })])
        .with_validate_only(validate_only);
    c.send(&req, version).await
}

#[tokio::test]
async fn single_node_answers_every_version() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 3).await;
    common::create_topic(&mut c, "u", 2).await;
    produce(&mut c, "t", 0, 20).await;

    // DescribeQuorum: a cluster of one leads itself.
    for v in versions(ApiKey::DescribeQuorum) {
        let resp = c.send(&quorum_request("__cluster_metadata", 0), v).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(resp.topics[0].topic_name.0.as_str(), "__cluster_metadata");
        let p = &resp.topics[0].partitions[0];
        assert_eq!((p.error_code, p.partition_index, p.leader_id.0), (0, 0, 1));
        assert!(p.leader_epoch >= 1, "v{v}: {p:?}");
        assert!(p.high_watermark > 0);
        assert_eq!(p.current_voters.len(), 1);
        assert!(p.observers.is_empty());
        let me = &p.current_voters[0];
        assert_eq!(me.replica_id.0, 1);
        assert!(me.log_end_offset >= p.high_watermark);
        if v >= 1 {
            assert!(me.last_fetch_timestamp > 0 && me.last_caught_up_timestamp > 0);
        } else {
            assert_eq!(me.last_fetch_timestamp, -1);
        }
        if v >= 2 {
            assert_eq!(resp.nodes.len(), 1);
            assert_eq!(resp.nodes[0].node_id.0, 1);
        }
        // Any other partition is unknown.
        let resp = c.send(&quorum_request("t", 0), v).await;
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert_eq!(resp.topics[0].topic_name.0.as_str(), "t");
    }

    // DescribeTopicPartitions: pages of two partitions through both topics.
    let v = *versions(ApiKey::DescribeTopicPartitions).end();
    let first = c.send(&dtp_request(&["u", "t"], 2, None), v).await;
    assert_eq!(
        pages(&first),
        (vec![("t".into(), vec![0, 1])], Some(("t".into(), 2)))
    );
    let t = &first.topics[0];
    assert_eq!(t.error_code, 0);
    assert!(!t.topic_id.is_nil());
    assert!(!t.is_internal);
    assert_eq!(t.topic_authorized_operations, 3576);
    let p = &t.partitions[0];
    assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0));
    assert_eq!(p.replica_nodes, vec![BrokerId(1)]);
    assert_eq!(p.isr_nodes, vec![BrokerId(1)]);
    assert_eq!(p.eligible_leader_replicas, Some(vec![]));
    assert_eq!(p.last_known_elr, Some(vec![]));
    assert!(p.offline_replicas.is_empty());
    let second = c
        .send(&dtp_request(&["u", "t"], 2, Some(("t", 2))), v)
        .await;
    assert_eq!(
        pages(&second),
        (
            vec![("t".into(), vec![2]), ("u".into(), vec![0])],
            Some(("u".into(), 1))
        )
    );
    let third = c
        .send(&dtp_request(&["u", "t"], 2, Some(("u", 1))), v)
        .await;
    assert_eq!(pages(&third), (vec![("u".into(), vec![1])], None));
    // A page that ends with a topic's last partition resumes at the next topic.
    let exact = c.send(&dtp_request(&[], 3, None), v).await;
    assert_eq!(
        pages(&exact),
        (vec![("t".into(), vec![0, 1, 2])], Some(("u".into(), 0)))
    );
    // Every topic when none is named; unknown and invalid names get errors.
    let all = c.send(&dtp_request(&[], 2000, None), v).await;
    assert_eq!(
        pages(&all),
        (
            vec![("t".into(), vec![0, 1, 2]), ("u".into(), vec![0, 1])],
            None
        )
    );
    let missing = c
        .send(&dtp_request(&["nope", "bad name"], 10, None), v)
        .await;
    let errors: BTreeMap<String, i16> = missing
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.error_code))
        .collect();
    assert_eq!(
        errors["nope"],
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        errors["bad name"],
        ResponseError::InvalidTopicException.code()
    );
    // A cursor on a topic not asked for is an invalid request.
    // Metadata reports the same operations when asked for them.
    for (asked, want) in [(true, 3576), (false, i32::MIN)] {
        let md = c
            .send(
                &MetadataRequest::default()
                    .with_topics(None)
                    .with_include_topic_authorized_operations(asked),
                12,
            )
            .await;
        assert!(md
            .topics
            .iter()
            .all(|t| t.topic_authorized_operations == want));
    }
    let refused = c.send(&dtp_request(&["u"], 10, Some(("t", 0))), v).await;
    assert_eq!(
        refused.topics[0].error_code,
        ResponseError::InvalidRequest.code()
    );

    // DescribeLogDirs: sizes from the files on disk, disk space from v4.
    let data = b.dir.path().join("data");
    let size_on_disk = |topic: &str, p: i32| -> i64 {
        std::fs::read_dir(data.join(format!("{topic}-{p}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .map(|p| std::fs::metadata(p).unwrap().len() as i64)
            .sum()
    };
    for v in versions(ApiKey::DescribeLogDirs) {
        let resp = c
            .send(&DescribeLogDirsRequest::default().with_topics(None), v)
            .await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.results.len(), 1);
        let dir = &resp.results[0];
        assert_eq!(dir.error_code, 0);
        assert_eq!(
            std::path::Path::new(dir.log_dir.as_str()),
            std::path::absolute(&data).unwrap()
        );
        let got: BTreeMap<(String, i32), (i64, i64)> = dir
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    assert!(!p.is_future_key);
                    (
                        (t.name.0.to_string(), p.partition_index),
                        (p.partition_size, p.offset_lag),
                    )
                })
            })
            .collect();
        assert_eq!(got.len(), 5, "v{v}: {got:?}");
        for ((topic, p), (size, lag)) in &got {
            assert_eq!(*size, size_on_disk(topic, *p), "{topic}-{p}");
            assert_eq!(*lag, 0);
        }
        assert!(got[&("t".to_string(), 0)].0 > 0);
        if v >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes > 0);
            assert!(dir.usable_bytes <= dir.total_bytes);
        } else {
            assert_eq!((dir.total_bytes, dir.usable_bytes), (-1, -1));
        }
        // Only the partitions asked for.
        let one = c
            .send(
                &DescribeLogDirsRequest::default().with_topics(Some(vec![
                    describe_log_dirs_request::DescribableLogDirTopic::default()
                        .with_topic(TopicName(s("t")))
                        .with_partitions(vec![0, 7]),
                ])),
                v,
            )
            .await;
        let topics = &one.results[0].topics;
        assert_eq!(topics.len(), 1);
        assert_eq!(topics[0].name.0.as_str(), "t");
        assert_eq!(topics[0].partitions.len(), 1);
        assert_eq!(topics[0].partitions[0].partition_index, 0);
    }

    // UpdateFeatures: transaction.version down to 1 and back up, at every version.
    assert_eq!(finalized(&mut c, "transaction.version").await, Some(2));
    for v in versions(ApiKey::UpdateFeatures) {
        let down = update_feature(&mut c, v, "transaction.version", 1, 2, false).await;
        assert_eq!(down.error_code, 0, "v{v}: {:?}", down.error_message);
        assert_eq!(down.results.len(), if v <= 1 { 1 } else { 0 });
        assert_eq!(finalized(&mut c, "transaction.version").await, Some(1));
        let up = update_feature(&mut c, v, "transaction.version", 2, 1, false).await;
        assert_eq!(up.error_code, 0);
        assert_eq!(finalized(&mut c, "transaction.version").await, Some(2));
        // Refusals: beyond the supported range, a fixed feature, an unknown one.
        for (name, level, kind, why) in [
            ("transaction.version", 3, 1, "only supports versions 0-2"),
            ("metadata.version", 24, 2, "cannot be changed"),
            ("share.version", 1, 1, "does not support this feature"),
        ] {
            let r = update_feature(&mut c, v, name, level, kind, false).await;
            assert_eq!(
                r.error_code,
                ResponseError::InvalidUpdateVersion.code(),
                "{name}"
            );
            let msg = r.error_message.unwrap().to_string();
            assert!(msg.contains(why), "v{v} {name}: {msg}");
            assert!(
                msg.starts_with("The update failed for all features"),
                "{msg}"
            );
            assert!(r.results.is_empty());
        }
    }
    // validate_only (v1+) changes nothing; level 0 turns a feature off (not finalized).
    let r = update_feature(&mut c, 1, "group.version", 0, 2, true).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(finalized(&mut c, "group.version").await, Some(1));
    let r = update_feature(&mut c, 2, "group.version", 0, 2, false).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(finalized(&mut c, "group.version").await, None);
    // Levels survive a restart (they are in the metadata log).
    drop(c);
    let mut b = b;
    b.restart().await;
    let mut c = b.client().await;
    assert_eq!(finalized(&mut c, "group.version").await, None);
    assert_eq!(finalized(&mut c, "transaction.version").await, Some(2));
    let r = update_feature(&mut c, 2, "group.version", 1, 1, false).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(finalized(&mut c, "group.version").await, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_describes_its_quorum_log_dirs_and_features_from_any_node() {
    let cluster = TestCluster::start(3, &[("default.replication.factor", "3")]).await;
    cluster.wait_formed().await;
    let controller = cluster.broker(0).controller_id().unwrap();
    let addrs: Vec<std::net::SocketAddr> = (0..3)
        .map(|i| {
            format!("127.0.0.1:{}", cluster.ports[2 * i])
                .parse()
                .unwrap()
        })
        .collect();
    let mut clients = Vec::new();
    for a in &addrs {
        clients.push(Client::connect(*a).await);
    }
    // A replicated topic with records on partition 0.
    let b = cluster.broker(0);
    tokio::task::spawn_blocking(move || {
        runnel_broker::controller::create_topic(&b, "rf3", 2, 3, &[], Default::default(), false)
    })
    .await
    .unwrap()
    .unwrap();
    let leader0 = cluster.broker(0).image().topic("rf3").unwrap().partitions[0].leader;
    produce(&mut clients[(leader0 - 1) as usize], "rf3", 0, 50).await;

    // DescribeQuorum through every node, at every version: the same leader, the controller.
    for (i, c) in clients.iter_mut().enumerate() {
        for v in versions(ApiKey::DescribeQuorum) {
            let mut p = None;
            // Followers may report themselves behind for a moment; wait until all are caught up.
            for _ in 0..100 {
                let resp = c.send(&quorum_request("__cluster_metadata", 0), v).await;
                let part = resp.topics[0].partitions[0].clone();
                assert_eq!(part.error_code, 0, "node {} v{v}", i + 1);
                if v >= 2 {
                    let nodes: Vec<(i32, Vec<(String, u16)>)> = resp
                        .nodes
                        .iter()
                        .map(|n| {
                            (
                                n.node_id.0,
                                n.listeners
                                    .iter()
                                    .map(|l| (l.name.to_string(), l.port))
                                    .collect(),
                            )
                        })
                        .collect();
                    let want: Vec<(i32, Vec<(String, u16)>)> = (0..3)
                        .map(|j| {
                            (
                                j as i32 + 1,
                                vec![("CONTROLLER".to_string(), cluster.ports[2 * j + 1])],
                            )
                        })
                        .collect();
                    assert_eq!(nodes, want);
                }
                let leo = part.current_voters.iter().map(|r| r.log_end_offset);
                if leo.clone().all(|x| x >= part.high_watermark)
                    && (v == 0
                        || part
                            .current_voters
                            .iter()
                            .all(|r| r.last_caught_up_timestamp > 0))
                {
                    p = Some(part);
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            let p = p.unwrap_or_else(|| panic!("node {} v{v}: voters never caught up", i + 1));
            assert_eq!(p.leader_id.0, controller);
            assert!(p.leader_epoch >= 1);
            assert!(p.high_watermark > 0);
            assert_eq!(
                p.current_voters
                    .iter()
                    .map(|r| r.replica_id.0)
                    .collect::<Vec<_>>(),
                vec![1, 2, 3]
            );
            assert!(p.observers.is_empty());
        }
    }

    // DescribeLogDirs on every node: each hosts both partitions; partition 0's replicas hold
    // the same bytes once the followers caught up.
    cluster
        .wait_until("rf3-0 replicated", 20, || {
            let leo = |i: usize| {
                cluster
                    .broker(i)
                    .replicas
                    .partition("rf3", 0)
                    .map(|p| p.log.lock().log_end_offset())
            };
            (0..3).all(|i| leo(i) == Some(50))
        })
        .await;
    let mut sizes = Vec::new();
    for c in clients.iter_mut() {
        let resp = c
            .send(&DescribeLogDirsRequest::default().with_topics(None), 4)
            .await;
        let dir = &resp.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(dir.total_bytes > 0);
        let t = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "rf3")
            .unwrap();
        assert_eq!(
            t.partitions
                .iter()
                .map(|p| p.partition_index)
                .collect::<Vec<_>>(),
            vec![0, 1]
        );
        assert!(t.partitions.iter().all(|p| p.offset_lag == 0));
        sizes.push(t.partitions[0].partition_size);
    }
    assert!(
        sizes[0] > 0 && sizes.iter().all(|s| *s == sizes[0]),
        "{sizes:?}"
    );

    // DescribeTopicPartitions through a node that does not lead: three replicas, a full ISR.
    let other = (0..3).find(|i| *i as i32 + 1 != controller).unwrap();
    let resp = clients[other]
        .send(&dtp_request(&["rf3"], 2000, None), 0)
        .await;
    let t = &resp.topics[0];
    assert_eq!(t.error_code, 0);
    for p in &t.partitions {
        assert_eq!(p.replica_nodes.len(), 3);
        let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
        isr.sort_unstable();
        assert_eq!(isr, vec![1, 2, 3]);
        assert!(p.leader_id.0 >= 1);
    }

    // UpdateFeatures through a node that is not the controller reaches every node.
    let r = update_feature(&mut clients[other], 2, "transaction.version", 1, 2, false).await;
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    for (i, c) in clients.iter_mut().enumerate() {
        cluster
            .wait_until("the level everywhere", 10, || {
                cluster
                    .broker(i)
                    .image()
                    .features
                    .get("transaction.version")
                    == Some(&1)
            })
            .await;
        assert_eq!(finalized(c, "transaction.version").await, Some(1));
    }
    drop(clients);
    cluster.shutdown().await;
}

#[tokio::test]
async fn unserved_versions_and_impossible_lengths_close_the_connection() {
    let b = TestBroker::start(&[]).await;
    // DescribeLogDirs v0 (removed in Kafka 4.0), DescribeQuorum v3, DescribeTopicPartitions v1,
    // UpdateFeatures v3: versions not served, as for every other API.
    for (key, version) in [(35i16, 0i16), (55, 3), (75, 1), (57, 3)] {
        let mut c = b.client().await;
        let mut frame = vec![0, 0, 0, 10];
        frame.extend_from_slice(&key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 1, 0xff, 0xff]);
        c.send_raw(&frame).await;
        assert!(c.closed().await, "api {key} v{version}");
    }
    // DescribeTopicPartitions v0 whose topics array claims 2^32-2 entries.
    let mut c = b.client().await;
    c.send_raw(&[
        0, 0, 0, 16, 0, 75, 0, 0, 0, 0, 0, 1, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0xff, 0x0f,
    ])
    .await;
    assert!(c.closed().await);
    // The broker still answers.
    let mut c = b.client().await;
    let resp = c.send(&dtp_request(&[], 10, None), 0).await;
    assert!(resp.topics.is_empty() && resp.next_cursor.is_none());
}

/// Where each partition is, by DescribeLogDirs: (topic, partition, is_future) -> dir index, with
/// the sizes reported.
async fn placement(
    c: &mut Client,
    dirs: &[std::path::PathBuf],
    v: i16,
) -> BTreeMap<(String, i32, bool), (usize, i64)> {
    let resp = c
        .send(&DescribeLogDirsRequest::default().with_topics(None), v)
        .await;
    assert_eq!(resp.error_code, 0);
    let reported: Vec<std::path::PathBuf> = resp
        .results
        .iter()
        .map(|r| std::path::PathBuf::from(r.log_dir.as_str()))
        .collect();
    assert_eq!(reported, dirs, "every log dir, in log.dirs order");
    let mut out = BTreeMap::new();
    for (i, r) in resp.results.iter().enumerate() {
        assert_eq!(r.error_code, 0);
        if v >= 4 {
            assert!(r.total_bytes > 0 && r.usable_bytes <= r.total_bytes);
        }
        for t in &r.topics {
            for p in &t.partitions {
                let key = (t.name.0.to_string(), p.partition_index, p.is_future_key);
                assert!(
                    out.insert(key.clone(), (i, p.partition_size)).is_none(),
                    "{key:?} listed twice"
                );
            }
        }
    }
    out
}

fn alter_dirs(moves: &[(&std::path::Path, &str, i32)]) -> AlterReplicaLogDirsRequest {
    use alter_replica_log_dirs_request::*;
    AlterReplicaLogDirsRequest::default().with_dirs(
        moves
            .iter()
            .map(|(dir, topic, p)| {
                AlterReplicaLogDir::default()
                    .with_path(s(&dir.display().to_string()))
                    .with_topics(vec![AlterReplicaLogDirTopic::default()
                        .with_name(TopicName(s(topic)))
                        .with_partitions(vec![*p])])
            })
            .collect(),
    )
}

fn alter_error(resp: &AlterReplicaLogDirsResponse) -> i16 {
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].partitions.len(), 1);
    resp.results[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_log_dirs_describe_and_move_replicas_between_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs: Vec<std::path::PathBuf> = (0..3).map(|i| tmp.path().join(format!("d{i}"))).collect();
    let joined = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let overrides = vec![
        ("log.dirs".to_string(), joined),
        // Small segments: a move copies closed segments and the active one.
        ("log.segment.bytes".to_string(), "4096".to_string()),
    ];
    let handle = runnel_broker::Broker::start(common::config(tmp.path(), 0, &overrides))
        .await
        .unwrap();
    let addr = handle.bound[0].1;
    let mut b = TestBroker {
        handle: Some(handle),
        addr,
        dir: tmp,
        overrides,
    };
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 4).await;
    common::create_topic(&mut c, "u", 2).await;
    for p in 0..4 {
        produce(&mut c, "t", p, 20).await;
    }

    // Each dir is formatted: same node and cluster, its own directory id; the metadata log is in
    // the first.
    let mut ids = std::collections::BTreeSet::new();
    for d in &dirs {
        let text = std::fs::read_to_string(d.join("meta.properties")).unwrap();
        assert!(
            text.contains("node.id=1") && text.contains("cluster.id="),
            "{text}"
        );
        let id = text
            .lines()
            .find_map(|l| l.strip_prefix("directory.id="))
            .unwrap()
            .to_string();
        ids.insert(id);
    }
    assert_eq!(ids.len(), 3, "a directory id per dir");
    assert!(dirs[0].join("__cluster_metadata-0").is_dir());
    assert!(!dirs[1].join("__cluster_metadata-0").exists());

    // Six partitions spread two per dir; each listed once, in the dir that holds its files.
    for v in versions(ApiKey::DescribeLogDirs) {
        let where_ = placement(&mut c, &dirs, v).await;
        assert_eq!(where_.len(), 6, "v{v}: {where_:?}");
        let mut counts = [0; 3];
        for ((topic, p, future), (i, size)) in &where_ {
            assert!(!future);
            counts[*i] += 1;
            let pdir = dirs[*i].join(format!("{topic}-{p}"));
            assert!(pdir.is_dir(), "{}", pdir.display());
            let on_disk: i64 = std::fs::read_dir(&pdir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .map(|p| std::fs::metadata(p).unwrap().len() as i64)
                .sum();
            assert_eq!(*size, on_disk, "{topic}-{p}");
        }
        assert_eq!(counts, [2, 2, 2], "v{v}");
    }

    // AlterReplicaLogDirs errors, as Kafka's.
    let v = *versions(ApiKey::AlterReplicaLogDirs).end();
    let nowhere = b.dir.path().join("elsewhere");
    let resp = c.send(&alter_dirs(&[(&nowhere, "t", 0)]), v).await;
    assert_eq!(alter_error(&resp), ResponseError::LogDirNotFound.code());
    let resp = c.send(&alter_dirs(&[(&dirs[1], "nope", 0)]), v).await;
    assert_eq!(
        alter_error(&resp),
        ResponseError::ReplicaNotAvailable.code()
    );
    // To the dir it is in already: nothing to do.
    let before = placement(&mut c, &dirs, 4).await;
    let (from, _) = before[&("t".to_string(), 0, false)];
    let resp = c.send(&alter_dirs(&[(&dirs[from], "t", 0)]), 1).await;
    assert_eq!(alter_error(&resp), 0);

    // Move t-0 while a producer keeps writing to it.
    let to = (from + 1) % 3;
    let writer = {
        let mut w = b.client().await;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s2 = stop.clone();
        let task = tokio::spawn(async move {
            let mut acked = 0usize;
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                produce(&mut w, "t", 0, 10).await;
                acked += 10;
            }
            acked
        });
        (stop, task)
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let resp = c.send(&alter_dirs(&[(&dirs[to], "t", 0)]), v).await;
    assert_eq!(alter_error(&resp), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let now = placement(&mut c, &dirs, 4).await;
        let current = now[&("t".to_string(), 0, false)].0;
        let future = now.get(&("t".to_string(), 0, true)).map(|f| f.0);
        if current == to && future.is_none() {
            break;
        }
        if let Some(f) = future {
            assert_eq!(f, to, "the future replica is in the target dir");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the move did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    writer.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.1.await.unwrap();
    assert!(acked > 0);
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let count_records = |broker: &runnel_broker::Broker| {
        let p = broker.replicas.partition("t", 0).unwrap();
        let log = p.log.lock();
        assert!(log.dir().starts_with(&dirs[to]), "{}", log.dir().display());
        let mut at = log.log_start_offset();
        let mut n = 0i64;
        while at < log.log_end_offset() {
            let r = log.read(at, 1 << 20, i64::MAX).unwrap();
            for h in runnel_protocol::batch::validate_batches(&r.records).unwrap() {
                assert_eq!(h.base_offset, at, "offsets dense");
                n += h.records_count as i64;
                at = h.next_offset();
            }
        }
        n
    };
    assert_eq!(count_records(&broker), 20 + acked as i64);
    drop(broker);
    // The old dir is gone (deleted in the background right after the switch).
    let old = dirs[from].join("t-0");
    for _ in 0..100 {
        let leftovers: Vec<_> = std::fs::read_dir(&dirs[from])
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("t-0"))
            .collect();
        if leftovers.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!old.exists());
    // Checkpoints are per dir: t-0 is now in the target's.
    let cp = std::fs::read_to_string(dirs[to].join("recovery-point-offset-checkpoint")).unwrap();
    assert!(cp.lines().any(|l| l.starts_with("t 0 ")), "{cp}");

    // A move left unfinished by a crash: its -future copy is removed at start-up and the
    // partition opens from its dir. Then a clean restart finds everything where it was.
    drop(c);
    let stray = dirs[(to + 1) % 3].join("t-0.0123456789abcdef0123456789abcdef-future");
    std::fs::create_dir_all(&stray).unwrap();
    std::fs::write(stray.join("00000000000000000000.log"), b"partial").unwrap();
    b.restart().await;
    assert!(!stray.exists());
    let mut c = b.client().await;
    let after = placement(&mut c, &dirs, 4).await;
    let mut expected = before.clone();
    expected.insert(("t".to_string(), 0, false), (to, 0));
    assert_eq!(
        after
            .iter()
            .map(|(k, (i, _))| (k.clone(), *i))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|(k, (i, _))| (k.clone(), *i))
            .collect::<Vec<_>>()
    );
    let broker = b.handle.as_ref().unwrap().broker.clone();
    assert_eq!(count_records(&broker), 20 + acked as i64);
    // New partitions keep filling the least loaded dirs.
    common::create_topic(&mut c, "w", 3).await;
    let now = placement(&mut c, &dirs, 4).await;
    let mut counts = [0; 3];
    for (i, _) in now.values() {
        counts[*i] += 1;
    }
    assert_eq!(counts, [3, 3, 3]);
}

/// DescribeAcls, CreateAcls and DeleteAcls at every served version: no authorizer, so
/// SECURITY_DISABLED as Apache Kafka answers without `authorizer.class.name` (one result per
/// creation and per filter for the last two), never an unsupported API (MirrorMaker 2 syncs topic
/// ACLs by default and stops quietly only on SECURITY_DISABLED).
#[tokio::test]
async fn acl_apis_answer_security_disabled() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let disabled = ResponseError::SecurityDisabled.code();
    for v in versions(ApiKey::DescribeAcls) {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(1) // ANY
            .with_pattern_type_filter(1) // ANY
            .with_operation(1) // ANY
            .with_permission_type(1); // ANY
        let resp = c.send(&req, v).await;
        assert_eq!(resp.error_code, disabled, "v{v}");
        assert_eq!(
            resp.error_message.as_deref(),
            Some("No Authorizer is configured on the broker")
        );
        assert!(resp.resources.is_empty());
    }
    for v in versions(ApiKey::CreateAcls) {
        use create_acls_request::AclCreation;
        let acl = |topic: &str| {
            AclCreation::default()
                .with_resource_type(2) // TOPIC
                .with_resource_name(s(topic))
                .with_resource_pattern_type(3) // LITERAL
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3) // READ
                .with_permission_type(3) // ALLOW
        };
        let req = CreateAclsRequest::default().with_creations(vec![acl("a"), acl("b")]);
        let resp = c.send(&req, v).await;
        let got: Vec<_> = resp
            .results
            .iter()
            .map(|r| (r.error_code, r.error_message.as_deref()))
            .collect();
        let want = (disabled, Some("No Authorizer is configured."));
        assert_eq!(got, vec![want, want], "v{v}");
    }
    for v in versions(ApiKey::DeleteAcls) {
        use delete_acls_request::DeleteAclsFilter;
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        let req = DeleteAclsRequest::default().with_filters(vec![filter.clone(), filter]);
        let resp = c.send(&req, v).await;
        assert_eq!(resp.filter_results.len(), 2, "v{v}");
        for r in &resp.filter_results {
            assert_eq!(r.error_code, disabled);
            assert_eq!(
                r.error_message.as_deref(),
                Some("No Authorizer is configured.")
            );
            assert!(r.matching_acls.is_empty());
        }
    }
}
