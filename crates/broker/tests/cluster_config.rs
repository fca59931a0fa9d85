//! Start-up checks of a node's place in a cluster: a log dir formatted for another node id or
//! another cluster is refused with a message naming the key, and so is a multi-node quorum
//! configuration this build cannot serve yet.

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

#[tokio::test]
async fn a_multi_node_quorum_is_refused_until_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let e = start_error(
        dir.path(),
        &[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            ),
            ("controller.listener.names", "CONTROLLER"),
            (
                "controller.quorum.voters",
                "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293",
            ),
        ],
    )
    .await;
    assert!(e.contains("multi-node"), "{e}");
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
