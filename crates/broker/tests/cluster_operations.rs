//! Operating a 3-node cluster in this process: a controlled shutdown moves every leadership
//! away (new leaders from the ISR, the stopping broker out of every ISR and fenced) before the
//! node stops, with a producer writing all along; ElectLeaders (preferred and unclean, with
//! Kafka's answers when nothing can or need be done) at every served version; the leader
//! balancer moving leaderships back to the preferred replicas on its own; and eligible leader
//! replicas (KIP-966): followers stopped one after the other below min ISR are kept eligible
//! (DescribeTopicPartitions shows them), one leads cleanly once the leader is gone too, with every
//! acknowledged record, and one restarted without a clean shutdown is no longer eligible.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, TestBroker, TestCluster};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use runnel_broker::broker::Broker;
use runnel_broker::controller::features::{FeatureUpdate, ELIGIBLE_LEADER_REPLICAS_VERSION};
use runnel_broker::controller::lifecycle::{controlled_shutdown, ControlledShutdown};
use runnel_client::{
    ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord,
};
use runnel_metadata::MetadataImage;

async fn create(cluster: &TestCluster, name: &str, partitions: i32, assignment: &[Vec<i32>]) {
    let b = cluster.broker(0);
    let name = name.to_string();
    let assignments: Vec<(i32, Vec<i32>)> = assignment
        .iter()
        .enumerate()
        .map(|(i, r)| (i as i32, r.clone()))
        .collect();
    let (np, rf) = if assignments.is_empty() {
        (partitions, 3)
    } else {
        (-1, -1)
    };
    let configs: BTreeMap<String, String> =
        [("min.insync.replicas".to_string(), "2".to_string())].into();
    tokio::task::spawn_blocking(move || {
        runnel_broker::controller::create_topic(&b, &name, np, rf, &assignments, configs, false)
    })
    .await
    .unwrap()
    .unwrap();
}

fn addr(cluster: &TestCluster, i: usize) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", cluster.ports[2 * i])
        .parse()
        .unwrap()
}

/// (leader, leader epoch, replicas, isr) of every partition of `topic` in `image`.
fn partitions(image: &MetadataImage, topic: &str) -> Vec<(i32, i32, Vec<i32>, Vec<i32>)> {
    image
        .topic(topic)
        .unwrap()
        .partitions
        .iter()
        .map(|p| (p.leader, p.leader_epoch, p.replicas.clone(), p.isr.clone()))
        .collect()
}

async fn wait_full_isr(cluster: &TestCluster, topic: &str) {
    cluster
        .wait_until(&format!("{topic}: a leader and a full ISR"), 30, || {
            (0..3).filter(|i| cluster.nodes[*i].is_some()).all(|i| {
                let img = cluster.broker(i).image();
                img.topic(topic).is_some()
                    && partitions(&img, topic)
                        .iter()
                        .all(|(l, _, r, isr)| *l >= 0 && isr.len() == r.len())
            })
        })
        .await;
}

fn elect_request(kind: i8, partitions: Option<&[(&str, &[i32])]>) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(kind)
        .with_timeout_ms(30_000)
        .with_topic_partitions(partitions.map(|ps| {
            ps.iter()
                .map(|(t, p)| {
                    TopicPartitions::default()
                        .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(p.to_vec())
                })
                .collect()
        }))
}

/// (topic, partition) -> (error code, message) of an ElectLeaders answer.
fn outcomes(resp: &ElectLeadersResponse) -> BTreeMap<(String, i32), (i16, Option<String>)> {
    resp.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result.iter().map(move |p| {
                (
                    (t.topic.0.to_string(), p.partition_id),
                    (
                        p.error_code,
                        p.error_message.as_ref().map(|m| m.to_string()),
                    ),
                )
            })
        })
        .collect()
}

/// A producer writing numbered acks=all records one at a time until told to stop: the values
/// acknowledged, the errors, and the longest wait for an acknowledgement.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Vec<String>, Vec<String>, Duration)>,
}

impl Writer {
    async fn start(cluster: &TestCluster, topic: &str) -> Writer {
        let mut cfg = ProducerConfig::new(ClientConfig::new(&cluster.bootstrap()));
        cfg.set("acks", "all").unwrap();
        cfg.set("enable.idempotence", "true").unwrap();
        cfg.set("linger.ms", "0").unwrap();
        let producer = Producer::new(cfg).await.unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let topic = topic.to_string();
        let task = tokio::spawn(async move {
            let (mut acked, mut errors) = (Vec::new(), Vec::new());
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            let mut i = 0;
            while !flag.load(Ordering::Relaxed) {
                let rec = ProducerRecord::new(&topic)
                    .key(format!("k{i}"))
                    .value(format!("{i}"));
                match producer.send(rec).await {
                    Ok(f) => match f.await {
                        Ok(_) => acked.push(format!("{i}")),
                        Err(e) => errors.push(e.to_string()),
                    },
                    Err(e) => errors.push(e.to_string()),
                }
                longest = longest.max(last.elapsed());
                last = Instant::now();
                i += 1;
            }
            producer.close().await.unwrap();
            (acked, errors, longest)
        });
        Writer { stop, task }
    }

    async fn finish(self) -> (Vec<String>, Vec<String>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Every value of `topic` from the start, in no particular order.
async fn read_all(cluster: &TestCluster, topic: &str, partitions: i32, n: usize) -> Vec<String> {
    let mut cfg = ConsumerConfig::new(ClientConfig::new(&cluster.bootstrap()));
    cfg.set("auto.offset.reset", "earliest").unwrap();
    let consumer = Consumer::new(cfg).await.unwrap();
    let tps: Vec<_> = (0..partitions).map(|p| (topic.to_string(), p)).collect();
    consumer.assign(&tps).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n {
        assert!(Instant::now() < deadline, "read {} of {n}", out.len());
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    consumer.close().await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_shutdown_moves_every_leadership_before_the_node_stops() {
    // A session timeout far longer than the test: only the controlled shutdown can move the
    // leaderships in time. The balancer is off, so that only ElectLeaders moves them back.
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "30000"),
            ("replica.lag.time.max.ms", "2000"),
            ("auto.leader.rebalance.enable", "false"),
            ("leader.imbalance.check.interval.seconds", "1"),
        ],
    )
    .await;
    cluster.wait_formed().await;
    create(&cluster, "cs", 6, &[]).await;
    wait_full_isr(&cluster, "cs").await;
    let writer = Writer::start(&cluster, "cs").await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = partitions(&cluster.broker(0).image(), "cs");
    let victim = before[0].0;
    let led: Vec<usize> = (0..before.len())
        .filter(|i| before[*i].0 == victim)
        .collect();
    let vi = victim as usize - 1;
    let t = Instant::now();
    cluster.stop(vi).await;
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "the shutdown took {took:?}");
    // The survivors already know (or learn within a moment, not a session timeout): the node
    // is fenced, leads nothing and is in no ISR; its partitions have new leaders from the ISR
    // in a new leader epoch.
    let survivor = (vi + 1) % 3;
    cluster
        .wait_until("the survivors see the controlled shutdown", 2, || {
            let img = cluster.broker(survivor).image();
            img.brokers[&victim].fenced
                && partitions(&img, "cs")
                    .iter()
                    .all(|(l, _, _, isr)| *l != victim && !isr.contains(&victim))
        })
        .await;
    let after = partitions(&cluster.broker(survivor).image(), "cs");
    for i in &led {
        let (old, new) = (&before[*i], &after[*i]);
        assert!(new.1 > old.1, "cs-{i}: leader epoch {} -> {}", old.1, new.1);
        assert!(
            old.3.contains(&new.0),
            "cs-{i}: {} was not in the ISR {:?}",
            new.0,
            old.3
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The node comes back: fenced until caught up, then in every ISR again; leaderships stay
    // where they went (no balancer) until ElectLeaders asks for the preferred replicas.
    cluster.restart(vi).await;
    cluster.wait_formed().await;
    wait_full_isr(&cluster, "cs").await;
    let (acked, errors, longest) = writer.finish().await;
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    assert!(
        longest < Duration::from_secs(3),
        "longest wait for an acknowledgement: {longest:?}"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let imbalanced: Vec<i32> = partitions(&cluster.broker(0).image(), "cs")
        .iter()
        .enumerate()
        .filter(|(_, (l, _, r, _))| *l != r[0])
        .map(|(i, _)| i as i32)
        .collect();
    assert!(!imbalanced.is_empty(), "nothing to move back: {after:?}");

    let mut c = Client::connect(addr(&cluster, (vi + 2) % 3)).await;
    let resp = c.send(&elect_request(0, None), 2).await;
    assert_eq!(resp.error_code, 0);
    let got = outcomes(&resp);
    let want: BTreeMap<(String, i32), (i16, Option<String>)> = imbalanced
        .iter()
        .map(|p| (("cs".to_string(), *p), (0, None)))
        .collect();
    assert_eq!(got, want, "only the partitions that moved are answered");
    cluster
        .wait_until("leaders are the preferred replicas again", 10, || {
            (0..3).all(|i| {
                partitions(&cluster.broker(i).image(), "cs")
                    .iter()
                    .all(|(l, _, r, _)| *l == r[0])
            })
        })
        .await;
    // Nothing left to do: an empty answer for all partitions, ELECTION_NOT_NEEDED for one.
    let resp = c.send(&elect_request(0, None), 2).await;
    assert!(outcomes(&resp).is_empty(), "{resp:?}");
    let resp = c.send(&elect_request(0, Some(&[("cs", &[0])])), 2).await;
    assert_eq!(
        outcomes(&resp)[&("cs".to_string(), 0)],
        (
            ResponseError::ElectionNotNeeded.code(),
            Some("Leader election not needed for topic partition.".to_string())
        )
    );

    // Every acknowledged record is there, once.
    let mut read = read_all(&cluster, "cs", 6, acked.len()).await;
    read.sort();
    let mut want = acked.clone();
    want.sort();
    assert_eq!(read, want);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_and_preferred_elections_answer_as_kafka_does() {
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "3000"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    )
    .await;
    cluster.wait_formed().await;
    // The rules before KIP-966 (with eligible leader replicas, node 2 would come back eligible
    // and lead u-0 cleanly: see the test below).
    let b = cluster.broker(0);
    tokio::task::spawn_blocking(move || {
        runnel_broker::controller::update_features(
            &b,
            vec![FeatureUpdate {
                name: ELIGIBLE_LEADER_REPLICAS_VERSION.into(),
                level: 0,
                upgrade_type: 2,
            }],
            false,
        )
    })
    .await
    .unwrap()
    .unwrap();
    // u-0 lives on nodes 1 and 2, solo-0 on node 1 alone.
    create(&cluster, "u", 0, &[vec![1, 2]]).await;
    create(&cluster, "solo", 0, &[vec![1]]).await;
    wait_full_isr(&cluster, "u").await;
    // Node 2 goes: node 1 alone is in sync. Then node 1 goes (its controlled shutdown leaves u-0
    // without a leader: no ISR member is left), and node 2 comes back, out of the ISR.
    cluster.stop(1).await;
    cluster.stop(0).await;
    cluster.restart(1).await;
    cluster
        .wait_until("node 2 back, u-0 offline", 30, || {
            let img = cluster.broker(2).image();
            img.brokers.get(&2).is_some_and(|b| !b.fenced)
                && partitions(&img, "u")[0].0 == -1
                && partitions(&img, "u")[0].3 == vec![1]
        })
        .await;
    let mut c = Client::connect(addr(&cluster, 2)).await;
    let all: &[(&str, &[i32])] = &[("u", &[0]), ("solo", &[0]), ("nope", &[0]), ("u", &[7])];
    for v in 0..=2 {
        // Preferred (v0 has no election type): node 1 is down.
        let resp = c.send(&elect_request(0, Some(all)), v).await;
        assert_eq!(resp.error_code, 0, "v{v}");
        let got = outcomes(&resp);
        let not_available = (
            ResponseError::PreferredLeaderNotAvailable.code(),
            Some("The preferred leader was not available.".to_string()),
        );
        assert_eq!(got[&("u".to_string(), 0)], not_available, "v{v}");
        assert_eq!(got[&("solo".to_string(), 0)], not_available, "v{v}");
        assert_eq!(
            got[&("nope".to_string(), 0)],
            (
                ResponseError::UnknownTopicOrPartition.code(),
                Some("No such topic as nope".to_string())
            )
        );
        assert_eq!(
            got[&("u".to_string(), 7)],
            (
                ResponseError::UnknownTopicOrPartition.code(),
                Some("No such partition as u-7".to_string())
            )
        );
    }
    // An election type Kafka does not know.
    let resp = c.send(&elect_request(5, Some(&[("u", &[0])])), 2).await;
    assert_eq!(resp.error_code, ResponseError::InvalidRequest.code());
    assert_eq!(
        outcomes(&resp)[&("u".to_string(), 0)].0,
        ResponseError::InvalidRequest.code()
    );
    // Unclean: nobody is left for solo-0; node 2 takes u-0, alone in its ISR.
    let resp = c
        .send(&elect_request(1, Some(&[("u", &[0]), ("solo", &[0])])), 1)
        .await;
    let got = outcomes(&resp);
    assert_eq!(got[&("u".to_string(), 0)], (0, None));
    assert_eq!(
        got[&("solo".to_string(), 0)],
        (
            ResponseError::EligibleLeadersNotAvailable.code(),
            Some("Eligible topic partition leaders are not available.".to_string())
        )
    );
    let u0 = partitions(&cluster.broker(2).image(), "u")[0].clone();
    assert_eq!((u0.0, u0.3.clone()), (2, vec![2]), "{u0:?}");
    // It has a leader now.
    let resp = c.send(&elect_request(1, Some(&[("u", &[0])])), 2).await;
    assert_eq!(
        outcomes(&resp)[&("u".to_string(), 0)].0,
        ResponseError::ElectionNotNeeded.code()
    );
    // Node 1 returns, follows node 2 and rejoins the ISR; then a preferred election gives it
    // u-0 back.
    cluster.restart(0).await;
    cluster.wait_formed().await;
    wait_full_isr(&cluster, "u").await;
    let resp = c.send(&elect_request(0, Some(&[("u", &[0])])), 2).await;
    assert_eq!(outcomes(&resp)[&("u".to_string(), 0)], (0, None));
    assert_eq!(partitions(&cluster.broker(2).image(), "u")[0].0, 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_balancer_moves_leaderships_back_on_its_own() {
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "3000"),
            ("replica.lag.time.max.ms", "2000"),
            ("leader.imbalance.check.interval.seconds", "1"),
        ],
    )
    .await;
    cluster.wait_formed().await;
    create(&cluster, "bal", 3, &[]).await;
    wait_full_isr(&cluster, "bal").await;
    let victim = partitions(&cluster.broker(0).image(), "bal")[0].0 as usize - 1;
    cluster.stop(victim).await;
    let survivor = (victim + 1) % 3;
    cluster
        .wait_until("leaderships moved away", 2, || {
            partitions(&cluster.broker(survivor).image(), "bal")
                .iter()
                .all(|(l, ..)| *l != victim as i32 + 1)
        })
        .await;
    cluster.restart(victim).await;
    cluster.wait_formed().await;
    cluster
        .wait_until("leaders are the preferred replicas again", 20, || {
            (0..3).all(|i| {
                partitions(&cluster.broker(i).image(), "bal")
                    .iter()
                    .all(|(l, _, r, isr)| *l == r[0] && isr.len() == 3)
            })
        })
        .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_move_skips_the_controlled_shutdown() {
    // A cluster of one shuts down as it always did.
    let b = TestBroker::start(&[]).await;
    let broker = b.handle.as_ref().unwrap().broker.clone();
    let r = tokio::task::spawn_blocking(move || controlled_shutdown(&broker))
        .await
        .unwrap();
    assert_eq!(r, ControlledShutdown::Skipped);
    // The last live node of a cluster has nowhere to move its leaderships. (The second node's
    // controlled shutdown may wait for a new active controller: a session long enough for one.)
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "15000"),
        ],
    )
    .await;
    cluster.wait_formed().await;
    cluster.stop(0).await;
    cluster.stop(1).await;
    let last = cluster.broker(2);
    cluster
        .wait_until("nodes 1 and 2 fenced", 2, || {
            let img = last.image();
            img.brokers[&1].fenced && img.brokers[&2].fenced
        })
        .await;
    let t = Instant::now();
    let r = tokio::task::spawn_blocking(move || controlled_shutdown(&last))
        .await
        .unwrap();
    assert_eq!(r, ControlledShutdown::Skipped);
    assert!(t.elapsed() < Duration::from_secs(1));
    cluster.shutdown().await;
}

/// (isr, leader, elr, last known elr) of `topic`-0 in node `i`'s image.
fn elr_state(cluster: &TestCluster, i: usize, topic: &str) -> (Vec<i32>, i32, Vec<i32>, Vec<i32>) {
    let img = cluster.broker(i).image();
    let p = &img.topic(topic).unwrap().partitions[0];
    (
        p.isr.clone(),
        p.leader,
        p.eligible_leader_replicas.clone(),
        p.last_known_elr.clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eligible_leader_replica_leads_cleanly_once_the_isr_is_empty() {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::{BrokerId, DescribeTopicPartitionsRequest};
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.heartbeat.interval.ms", "300"),
            ("broker.session.timeout.ms", "3000"),
            ("replica.lag.time.max.ms", "2000"),
        ],
    )
    .await;
    cluster.wait_formed().await;
    // min.insync.replicas 2 for both.
    create(&cluster, "e", 0, &[vec![1, 2, 3]]).await;
    create(&cluster, "f", 0, &[vec![1, 2]]).await;
    wait_full_isr(&cluster, "e").await;
    wait_full_isr(&cluster, "f").await;
    let writer = Writer::start(&cluster, "f").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acked, _, _) = writer.finish().await;
    assert!(!acked.is_empty());
    // Follower 2 stops (cleanly): f is below min ISR and 2 is eligible; e is at min ISR.
    cluster.stop(1).await;
    cluster
        .wait_until("2 out of the ISRs", 20, || {
            elr_state(&cluster, 0, "f") == (vec![1], 1, vec![2], vec![])
                && elr_state(&cluster, 0, "e") == (vec![1, 3], 1, vec![], vec![])
        })
        .await;
    // Follower 3 stops: e is below min ISR, 3 is eligible.
    cluster.stop(2).await;
    cluster
        .wait_until("3 eligible", 20, || {
            elr_state(&cluster, 0, "e") == (vec![1], 1, vec![3], vec![])
        })
        .await;
    let mut c = Client::connect(addr(&cluster, 0)).await;
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(
            ["e", "f"]
                .iter()
                .map(|t| TopicRequest::default().with_name(TopicName(StrBytes::from_static_str(t))))
                .collect(),
        )
        .with_response_partition_limit(10);
    let resp = c.send(&req, 0).await;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let shown: Vec<_> = resp
        .topics
        .iter()
        .map(|t| {
            let p = &t.partitions[0];
            (
                ids(&p.isr_nodes),
                ids(p.eligible_leader_replicas.as_deref().unwrap()),
                ids(p.last_known_elr.as_deref().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![(vec![1], vec![3], vec![]), (vec![1], vec![2], vec![])]
    );
    // The leader stops too: the metadata quorum is lost until two nodes are back.
    cluster.stop(0).await;
    // Node 3 comes back as after a crash (no clean-shutdown marker), node 2 cleanly.
    let marker = cluster.dirs[2]
        .path()
        .join("data")
        .join(runnel_storage::checkpoint::CLEAN_SHUTDOWN_FILE);
    assert!(
        std::fs::read_to_string(&marker)
            .unwrap()
            .starts_with("{\"version\":0,\"brokerEpoch\":"),
        "the marker names the broker epoch"
    );
    std::fs::remove_file(&marker).unwrap();
    let (a, b) = tokio::join!(
        Broker::start(cluster.config(1)),
        Broker::start(cluster.config(2))
    );
    cluster.nodes[1] = Some(a.unwrap());
    cluster.nodes[2] = Some(b.unwrap());
    // Node 1's session expires and the ISRs empty. f: 2, eligible and shut down cleanly, leads
    // alone in the ISR (1 eligible in its turn). e: 3 restarted uncleanly and is no longer
    // eligible; 1 is, but down: e stays offline (no unclean election), 1 its last known leader.
    cluster
        .wait_until("2 leads f from the ELR, e offline", 40, || {
            elr_state(&cluster, 1, "f") == (vec![2], 2, vec![1], vec![])
                && elr_state(&cluster, 1, "e") == (vec![], -1, vec![1], vec![1])
        })
        .await;
    // Node 1 comes back: it leads e (eligible), rejoins f's ISR, and f's high watermark moves
    // (at min ISR again): every acknowledged record is read back.
    cluster.restart(0).await;
    cluster
        .wait_until("1 leads e, f whole", 40, || {
            let (e_isr, e_leader, _, _) = elr_state(&cluster, 1, "e");
            let (f_isr, _, f_elr, _) = elr_state(&cluster, 1, "f");
            e_leader == 1 && e_isr.contains(&1) && f_isr.len() == 2 && f_elr.is_empty()
        })
        .await;
    let read = read_all(&cluster, "f", 1, acked.len()).await;
    for v in &acked {
        assert!(read.contains(v), "acknowledged record {v} lost");
    }
    cluster.shutdown().await;
}
