//! Start-up checks of a node's place in a cluster: a log dir formatted for another node id or
//! another cluster is refused with a message naming the key; three nodes form one cluster.

mod common;

use common::{config, TestBroker};
use runnel_broker::Broker;

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn start_error(dir: &std::path::Path, extra: &[(&str, &str)]) -> String {
    match Broker::start(config(dir, 0, &pairs(extra))).await {
        Ok(_) => panic!("the broker started"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test]
async fn a_log_dir_of_another_node_or_cluster_is_refused() {
    let mut b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "kept", 2).await;
    drop(c);
    b.handle.take().unwrap().shutdown().await.unwrap();
    let dir = b.dir.path();

    let e = start_error(dir, &[("node.id", "2")]).await;
    assert!(e.contains("node.id=1") && e.contains("node.id is 2"), "{e}");

    let e = start_error(dir, &[("cluster.id", "AAAAAAAAAAAAAAAAAAAAAA")]).await;
    assert!(e.contains("cluster.id is AAAAAAAAAAAAAAAAAAAAAA"), "{e}");

    // Refused starts left the directory as it was: the right node still opens it with its data.
    b.restart_from_stopped().await;
    let image = b.handle.as_ref().unwrap().broker.image();
    assert_eq!(image.topic("kept").unwrap().partitions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_cluster_and_place_replicas() {
    use std::time::{Duration, Instant};
    let cluster = common::TestCluster::start(3, &[]).await;
    cluster.wait_formed().await;
    let brokers: Vec<_> = (0..3).map(|i| cluster.broker(i)).collect();
    let cluster_ids: std::collections::HashSet<_> =
        brokers.iter().map(|b| b.cluster_id()).collect();
    assert_eq!(cluster_ids.len(), 1, "one cluster id: {cluster_ids:?}");

    // Admin requests on any node reach the active controller; placement spreads replicas.
    let controller = brokers[0].controller_id().unwrap();
    let follower = brokers
        .iter()
        .find(|b| b.config.node_id != controller)
        .unwrap()
        .clone();
    let f = follower.clone();
    let created = tokio::task::spawn_blocking(move || {
        runnel_broker::controller::create_topic(&f, "rf3", 6, 3, &[], Default::default(), false)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(created.replication_factor, 3);
    // The node that asked already has the topic in its image when the call returns.
    let t = follower.image().topic("rf3").unwrap().clone();
    let mut leaders = std::collections::BTreeMap::new();
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr.len(), 3);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
    let f = follower.clone();
    let too_many = tokio::task::spawn_blocking(move || {
        runnel_broker::controller::create_topic(&f, "rf4", 1, 4, &[], Default::default(), false)
    })
    .await
    .unwrap()
    .err()
    .unwrap();
    assert!(
        too_many.message.contains("only 3 broker(s) are registered"),
        "{}",
        too_many.message
    );

    // Every node applies the change and hosts its replicas.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !brokers
        .iter()
        .all(|b| b.image().topic("rf3").is_some() && b.replicas.partition("rf3", 5).is_some())
    {
        assert!(Instant::now() < deadline, "topic not applied everywhere");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn kafka_style_single_node_config_starts() {
    // What Kafka's own config/server.properties describes: a combined node, voter of itself.
    let b = TestBroker::start(&[
        ("process.roles", "broker,controller"),
        ("controller.listener.names", "CONTROLLER"),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
        ),
        ("controller.quorum.voters", "1@127.0.0.1:19093"),
    ])
    .await;
    let mut c = b.client().await;
    common::create_topic(&mut c, "t", 1).await;
}
