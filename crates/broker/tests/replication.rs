//! Replication in a 3-node cluster in this process: acks=all writes reach every ISR member and
//! are answered only then; followers copy the leader's log exactly; a leader that stops is
//! replaced from the ISR with a higher leader epoch and nothing acknowledged is lost; fewer
//! in-sync replicas than `min.insync.replicas` refuse acks=all (NOT_ENOUGH_REPLICAS) but not
//! acks=1, until the follower is back in the ISR.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, TestCluster};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_client::{
    ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use runnel_storage::testing::build_batch;

/// Fast failure detection, so that the tests see fencing and ISR changes within seconds.
const FAST: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "2000"),
    ("replica.lag.time.max.ms", "2000"),
];

async fn create(
    cluster: &TestCluster,
    node: usize,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let b = cluster.broker(node);
    let name = name.to_string();
    let configs: BTreeMap<String, String> = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        runnel_broker::controller::create_topic(&b, &name, partitions, 3, &[], configs, false)
    })
    .await
    .unwrap()
    .unwrap();
}

async fn producer(cluster: &TestCluster) -> Producer {
    let mut cfg = ProducerConfig::new(ClientConfig::new(&cluster.bootstrap()));
    cfg.set("acks", "all").unwrap();
    cfg.set("enable.idempotence", "true").unwrap();
    cfg.set("linger.ms", "0").unwrap();
    Producer::new(cfg).await.unwrap()
}

/// Reads every record of `topic` from the start: value strings by partition.
async fn read_all(
    cluster: &TestCluster,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> BTreeMap<i32, Vec<String>> {
    let mut cfg = ConsumerConfig::new(ClientConfig::new(&cluster.bootstrap()));
    cfg.set("auto.offset.reset", "earliest").unwrap();
    let consumer = Consumer::new(cfg).await.unwrap();
    let tps: Vec<_> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    consumer.assign(&tps).unwrap();
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while out.values().map(Vec::len).sum::<usize>() < expected {
        assert!(
            std::time::Instant::now() < deadline,
            "read {out:?} of {expected}"
        );
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
            out.entry(r.partition).or_default().push(v);
        }
    }
    // Nothing beyond what was expected.
    let extra = consumer.poll(Duration::from_millis(300)).await.unwrap();
    assert!(extra.is_empty(), "unexpected records: {}", extra.len());
    consumer.close().await.unwrap();
    out
}

/// Every replica of every partition of `topic` has the same log end and high watermark.
async fn wait_replicas_agree(cluster: &TestCluster, topic: &str, partitions: i32) {
    cluster
        .wait_until("replicas agree", 20, || {
            (0..partitions).all(|p| {
                let ends: std::collections::HashSet<(i64, i64)> = (0..3)
                    .filter(|i| cluster.nodes[*i].is_some())
                    .filter_map(|i| cluster.broker(i).replicas.partition(topic, p))
                    .map(|part| (part.log.lock().log_end_offset(), part.high_watermark()))
                    .collect();
                ends.len() == 1
            })
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_reaches_every_replica_and_a_leader_fails_over_without_loss() {
    let mut cluster = TestCluster::start(3, FAST).await;
    cluster.wait_formed().await;
    create(&cluster, 1, "r", 3, &[("min.insync.replicas", "2")]).await;

    let producer = producer(&cluster).await;
    let mut sent = 0;
    let mut send = |n: usize| {
        let start = sent;
        sent += n;
        (start..start + n).map(|i| {
            ProducerRecord::new("r")
                .key(format!("k{i}"))
                .value(format!("{i}"))
        })
    };
    let mut acks = Vec::new();
    for rec in send(300) {
        acks.push(producer.send(rec).await.unwrap());
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    wait_replicas_agree(&cluster, "r", 3).await;
    for p in 0..3 {
        let leader = cluster.broker(0).image().topic("r").unwrap().partitions[p].leader;
        let part = cluster
            .broker(leader as usize - 1)
            .replicas
            .partition("r", p as i32)
            .unwrap();
        assert!(part.is_leader());
        assert_eq!(part.state().isr.len(), 3, "ISR of r-{p}");
        assert!(part.high_watermark() > 0);
    }

    // The leader of r-0 stops; a new leader is elected from the ISR with a higher epoch.
    let before = cluster.broker(0).image().topic("r").unwrap().partitions[0].clone();
    let old = before.leader as usize - 1;
    cluster.stop(old).await;
    let survivor = (0..3).find(|i| *i != old).unwrap();
    cluster
        .wait_until("new leader of r-0", 20, || {
            let p = cluster
                .broker(survivor)
                .image()
                .topic("r")
                .unwrap()
                .partitions[0]
                .clone();
            p.leader >= 0 && p.leader as usize != old + 1 && p.leader_epoch > before.leader_epoch
        })
        .await;
    // Writes go on with one node down (min.insync.replicas=2).
    for rec in send(300) {
        acks.push(producer.send(rec).await.unwrap());
    }
    for a in acks.drain(..) {
        a.await.unwrap();
    }
    // The old leader comes back as a follower, catches up and rejoins the ISR.
    cluster.restart(old).await;
    cluster.wait_formed().await;
    cluster
        .wait_until("ISR whole again", 30, || {
            cluster
                .broker(old)
                .image()
                .topic("r")
                .unwrap()
                .partitions
                .iter()
                .all(|p| p.isr.len() == 3)
        })
        .await;
    wait_replicas_agree(&cluster, "r", 3).await;
    producer.close().await.unwrap();

    // Every acknowledged record once, in order per partition.
    let got = read_all(&cluster, "r", 3, sent).await;
    let mut all: Vec<usize> = Vec::new();
    for (p, values) in &got {
        let nums: Vec<usize> = values.iter().map(|v| v.parse().unwrap()).collect();
        let mut sorted = nums.clone();
        sorted.sort();
        assert_eq!(nums, sorted, "r-{p} out of order");
        all.extend(nums);
    }
    all.sort();
    assert_eq!(all, (0..sent).collect::<Vec<_>>());
    cluster.shutdown().await;
}

/// Produces one batch with raw acks; returns the partition's error code.
async fn produce_raw(c: &mut Client, topic: &str, acks: i16) -> i16 {
    let batch = build_batch(
        0,
        &[(Some(b"k"), Some(b"v"), 1_700_000_000_000)],
        -1,
        -1,
        -1,
    );
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch)))])]);
    c.send(&req, 9).await.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_in_sync_replicas_than_min_isr_refuse_acks_all_only() {
    let mut cluster = TestCluster::start(3, FAST).await;
    cluster.wait_formed().await;
    create(&cluster, 0, "m", 1, &[("min.insync.replicas", "3")]).await;
    let p = cluster.broker(0).image().topic("m").unwrap().partitions[0].clone();
    let leader = p.leader as usize - 1;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    cluster
        .wait_until("leader knows it leads", 10, || {
            cluster
                .broker(leader)
                .replicas
                .partition("m", 0)
                .is_some_and(|p| p.is_leader())
        })
        .await;
    let mut c = Client::connect(
        format!("127.0.0.1:{}", cluster.ports[2 * leader])
            .parse()
            .unwrap(),
    )
    .await;
    assert_eq!(produce_raw(&mut c, "m", -1).await, 0);

    cluster.stop(follower).await;
    cluster
        .wait_until("ISR shrinks", 20, || {
            cluster
                .broker(leader)
                .replicas
                .partition("m", 0)
                .unwrap()
                .state()
                .isr
                .len()
                == 2
        })
        .await;
    assert_eq!(
        produce_raw(&mut c, "m", -1).await,
        ResponseError::NotEnoughReplicas.code()
    );
    assert_eq!(produce_raw(&mut c, "m", 1).await, 0);

    cluster.restart(follower).await;
    cluster
        .wait_until("ISR whole again", 30, || {
            cluster
                .broker(leader)
                .replicas
                .partition("m", 0)
                .unwrap()
                .state()
                .isr
                .len()
                == 3
        })
        .await;
    assert_eq!(produce_raw(&mut c, "m", -1).await, 0);
    wait_replicas_agree(&cluster, "m", 1).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_group_works_through_its_coordinator_in_a_cluster() {
    let cluster = TestCluster::start(3, FAST).await;
    cluster.wait_formed().await;
    create(&cluster, 2, "g", 3, &[]).await;
    let producer = producer(&cluster).await;
    let mut acks = Vec::new();
    for i in 0..90 {
        acks.push(
            producer
                .send(
                    ProducerRecord::new("g")
                        .key(format!("k{i}"))
                        .value(format!("{i}")),
                )
                .await
                .unwrap(),
        );
    }
    for a in acks {
        a.await.unwrap();
    }
    producer.close().await.unwrap();

    let consume = |group: &'static str| {
        let bootstrap = cluster.bootstrap();
        async move {
            let mut cfg = ConsumerConfig::new(ClientConfig::new(&bootstrap));
            cfg.set("group.id", group).unwrap();
            cfg.set("auto.offset.reset", "earliest").unwrap();
            cfg.set("enable.auto.commit", "false").unwrap();
            let c = Consumer::new(cfg).await.unwrap();
            c.subscribe(&["g"]).unwrap();
            c
        }
    };
    let c = consume("grp").await;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen < 90 {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed {seen} of 90"
        );
        seen += c.poll(Duration::from_millis(500)).await.unwrap().len();
    }
    c.commit_sync().await.unwrap();
    c.close().await.unwrap();

    // The coordinator is the leader of the group's __consumer_offsets partition, which is
    // replicated like any topic (offsets.topic.replication.factor 3 with three brokers).
    let image = cluster.broker(0).image();
    let offsets = image.topic("__consumer_offsets").unwrap();
    assert!(offsets.partitions.iter().all(|p| p.replicas.len() == 3));

    // A new member of the group resumes after the committed offsets: nothing left to read.
    let c = consume("grp").await;
    let mut again = 0;
    for _ in 0..6 {
        again += c.poll(Duration::from_millis(500)).await.unwrap().len();
    }
    assert_eq!(again, 0, "records re-delivered after a commit");
    c.close().await.unwrap();
    cluster.shutdown().await;
}
