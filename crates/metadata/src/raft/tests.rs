//! Tests of the raft quorum: a single voter on disk (start, reopen, snapshots, legacy upgrade)
//! and three voters over an in-memory transport.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::*;
use crate::log::MetadataLog;
use crate::records::{RESOURCE_BROKER, RESOURCE_TOPIC};

fn single(dir: &Path) -> RaftQuorumConfig {
    RaftQuorumConfig {
        log_dir: dir.to_path_buf(),
        node_id: 1,
        voters: BTreeMap::from([(1, "localhost:9093".to_string())]),
        network: Arc::new(NoTransport),
    }
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: Uuid::new_v4(),
    }
}

/// The image without its log position (which differs between a legacy and a raft log).
fn content(image: &MetadataImage) -> MetadataImage {
    MetadataImage {
        last_offset: 0,
        ..image.clone()
    }
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn single_voter_starts_leads_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let q = RaftQuorum::open(single(dir.path())).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(800), "start took {took:?}");
    assert_eq!(q.leader_id(), Some(1));
    assert_eq!(q.image().last_offset, -1);

    let mut sub = q.subscribe();
    let img = q.propose_blocking(vec![topic("a")]).unwrap();
    assert!(img.topic("a").is_some());
    assert!(sub.has_changed().unwrap());
    assert_eq!(sub.borrow_and_update().last_offset, img.last_offset);

    // propose_blocking from a current_thread runtime, and propose awaited on it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let img = rt.block_on(async {
        q.propose_blocking(vec![topic("b")]).unwrap();
        q.propose(vec![topic("c")]).await.unwrap()
    });
    assert!(img.topic("b").is_some() && img.topic("c").is_some());
    assert!(img.last_offset > 0);

    q.shutdown().unwrap();
    assert!(matches!(
        q.propose_blocking(vec![topic("d")]),
        Err(QuorumError::Stopped)
    ));
    assert!(matches!(
        rt.block_on(q.propose(vec![topic("d")])),
        Err(QuorumError::Stopped)
    ));
    q.shutdown().unwrap();

    // Kafka-like files: the log, the vote.
    let meta = dir.path().join(METADATA_LOG_DIR);
    assert!(meta.join("00000000000000000000.log").exists());
    assert!(meta.join("quorum-state").exists());

    let q = RaftQuorum::open(single(dir.path())).unwrap();
    assert_eq!(*q.image(), *img);
    q.shutdown().unwrap();
}

#[test]
fn reopen_replays_snapshot_and_log_after_purges() {
    let dir = tempfile::tempdir().unwrap();
    let q = RaftQuorum::open(single(dir.path())).unwrap();
    // Proposals in flight together (openraft batches them), 2500 entries in all.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for chunk in 0..50 {
        let futures: Vec<_> = (0..50)
            .map(|i| q.propose(vec![topic(&format!("t{}", chunk * 50 + i))]))
            .collect();
        for f in futures {
            rt.block_on(f).unwrap();
        }
    }
    let img = q.propose_blocking(vec![MetadataRecord::ProducerIds {
        next_producer_id: 7000,
    }]);
    let img = img.unwrap();
    assert_eq!(img.topics.len(), 2500);
    wait_for("a purge behind a snapshot", || q.log_start_offset() > 0);
    q.shutdown().unwrap();

    let meta = dir.path().join(METADATA_LOG_DIR);
    let checkpoints: Vec<_> = std::fs::read_dir(&meta)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "checkpoint"))
        .collect();
    assert_eq!(checkpoints.len(), 1, "only the newest snapshot is kept");

    let q = RaftQuorum::open(single(dir.path())).unwrap();
    assert!(
        q.log_start_offset() >= 900,
        "start {}",
        q.log_start_offset()
    );
    assert_eq!(*q.image(), *img);
    let next = q.propose_blocking(vec![topic("after")]).unwrap();
    assert!(next.last_offset > img.last_offset);
    q.shutdown().unwrap();
}

#[test]
fn legacy_log_is_converted() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let legacy = {
        let mut ml = MetadataLog::open(dir.path()).unwrap();
        ml.append(&[MetadataRecord::Cluster {
            cluster_id: "q1w2e3r4t5y6u7i8o9p0aa".into(),
        }])
        .unwrap();
        ml.append(&[
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 0,
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: "orders".into(),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
        ])
        .unwrap();
        ml.append(&[
            MetadataRecord::Config {
                resource_type: RESOURCE_BROKER,
                resource_name: "".into(),
                name: "log.retention.hours".into(),
                value: Some("1".into()),
            },
            MetadataRecord::ProducerIds {
                next_producer_id: 2000,
            },
        ])
        .unwrap();
        let img = ml.image();
        ml.close().unwrap();
        img
    };
    let q = RaftQuorum::open(single(dir.path())).unwrap();
    assert_eq!(content(&q.image()), content(&legacy));
    assert!(!dir
        .path()
        .join(format!("{METADATA_LOG_DIR}.legacy"))
        .exists());
    q.shutdown().unwrap();

    // Reopened, it is a raft log now and the image is still there.
    let q = RaftQuorum::open(single(dir.path())).unwrap();
    assert_eq!(content(&q.image()), content(&legacy));
    assert_eq!(q.image().topic("orders").unwrap().topic_id, id);
    q.shutdown().unwrap();
}

/// Voters connected in memory; a node missing from the map is unreachable.
#[derive(Default)]
struct MemTransport {
    nodes: parking_lot::Mutex<HashMap<i32, Weak<RaftQuorum>>>,
}

impl RaftTransport for MemTransport {
    fn send(
        &self,
        target: i32,
        _addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, std::io::Result<Vec<u8>>> {
        let node = self.nodes.lock().get(&target).and_then(Weak::upgrade);
        Box::pin(async move {
            let node = node.ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "node down")
            })?;
            // Served on the target's runtime; only the bytes come back.
            let served = node.handle_rpc(kind, &body);
            drop(node);
            served.await.map_err(std::io::Error::other)
        })
    }
}

#[test]
fn three_voters_elect_replicate_and_fail_over() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(MemTransport::default());
    let voters: BTreeMap<i32, String> = (1..=3).map(|i| (i, format!("mem-{i}"))).collect();
    let mut nodes = BTreeMap::new();
    for (i, dir) in (1..=3).zip(&dirs) {
        let q = RaftQuorum::open(RaftQuorumConfig {
            log_dir: dir.path().to_path_buf(),
            node_id: i,
            voters: voters.clone(),
            network: net.clone(),
        })
        .unwrap();
        net.nodes.lock().insert(i, Arc::downgrade(&q));
        nodes.insert(i, q);
    }
    let agreed = |nodes: &BTreeMap<i32, Arc<RaftQuorum>>| {
        let leaders: Vec<_> = nodes.values().map(|q| q.leader_id()).collect();
        match leaders[0] {
            Some(l) if leaders.iter().all(|x| *x == Some(l)) && nodes.contains_key(&l) => Some(l),
            _ => None,
        }
    };
    wait_for("a leader", || agreed(&nodes).is_some());
    let leader = agreed(&nodes).unwrap();

    let img = nodes[&leader]
        .propose_blocking(vec![topic("replicated")])
        .unwrap();
    for q in nodes.values() {
        wait_for("the entry applied everywhere", || {
            q.image().last_offset >= img.last_offset
        });
        assert!(q.image().topic("replicated").is_some());
    }
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    match nodes[&follower].propose_blocking(vec![topic("x")]) {
        Err(QuorumError::NotLeader { leader: l }) => assert_eq!(l, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // The leader goes away; the other two elect one of themselves.
    net.nodes.lock().remove(&leader);
    nodes.remove(&leader).unwrap().shutdown().unwrap();
    wait_for("a new leader", || agreed(&nodes).is_some());
    let new_leader = agreed(&nodes).unwrap();
    assert_ne!(new_leader, leader);
    let img = nodes[&new_leader]
        .propose_blocking(vec![topic("after-failover")])
        .unwrap();
    assert!(img.topic("replicated").is_some() && img.topic("after-failover").is_some());
    for q in nodes.values() {
        wait_for("the new entry applied", || {
            q.image().topic("after-failover").is_some()
        });
    }

    // While the old leader is away the others move past a snapshot and purge the entries it
    // lacks: back, it catches up through InstallSnapshot.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for chunk in 0..12 {
        let futures: Vec<_> = (0..100)
            .map(|i| nodes[&new_leader].propose(vec![topic(&format!("t{}", chunk * 100 + i))]))
            .collect();
        for f in futures {
            rt.block_on(f).unwrap();
        }
    }
    wait_for("a purge on the leader", || {
        nodes[&new_leader].log_start_offset() > img.last_offset
    });
    let back = RaftQuorum::open(RaftQuorumConfig {
        log_dir: dirs[(leader - 1) as usize].path().to_path_buf(),
        node_id: leader,
        voters: voters.clone(),
        network: net.clone(),
    })
    .unwrap();
    net.nodes.lock().insert(leader, Arc::downgrade(&back));
    nodes.insert(leader, back);
    let want = nodes[&new_leader].image();
    wait_for("the returning node to catch up", || {
        nodes[&leader].image().last_offset >= want.last_offset
    });
    assert_eq!(content(&nodes[&leader].image()), content(&want));
    assert!(nodes[&leader].log_start_offset() > img.last_offset);
    for q in nodes.values() {
        q.shutdown().unwrap();
    }
}

#[test]
fn single_voter_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let q = RaftQuorum::open(single(dir.path())).unwrap();
    let img = q.propose_blocking(vec![topic("a")]).unwrap();
    let s = q.describe().unwrap();
    assert_eq!(s.leader_id, 1);
    assert!(s.leader_epoch >= 1, "{s:?}");
    assert_eq!(s.high_watermark, img.last_offset + 1);
    assert_eq!(s.voters.len(), 1);
    let me = &s.voters[0];
    assert_eq!(me.node_id, 1);
    assert_eq!(me.log_end_offset, s.high_watermark);
    assert!(me.last_fetch_timestamp_ms > 0 && me.last_caught_up_timestamp_ms > 0);
    q.shutdown().unwrap();
    assert!(matches!(q.describe(), Err(QuorumError::Stopped)));
}

#[test]
fn three_voters_describe_the_quorum_from_the_leader() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(MemTransport::default());
    let voters: BTreeMap<i32, String> = (1..=3).map(|i| (i, format!("mem-{i}"))).collect();
    let mut nodes = BTreeMap::new();
    for (i, dir) in (1..=3).zip(&dirs) {
        let q = RaftQuorum::open(RaftQuorumConfig {
            log_dir: dir.path().to_path_buf(),
            node_id: i,
            voters: voters.clone(),
            network: net.clone(),
        })
        .unwrap();
        net.nodes.lock().insert(i, Arc::downgrade(&q));
        nodes.insert(i, q);
    }
    wait_for("a leader", || {
        let l = nodes[&1].leader_id();
        l.is_some() && nodes.values().all(|q| q.leader_id() == l)
    });
    let leader = nodes[&1].leader_id().unwrap();
    let img = nodes[&leader]
        .propose_blocking(vec![topic("described")])
        .unwrap();
    let end = img.last_offset + 1;
    // Every follower acknowledges the entry and a heartbeat after it: caught up.
    wait_for("followers caught up", || {
        let s = nodes[&leader].describe().unwrap();
        s.voters
            .iter()
            .all(|v| v.log_end_offset >= end && v.last_caught_up_timestamp_ms > 0)
    });
    let s = nodes[&leader].describe().unwrap();
    assert_eq!(s.leader_id, leader);
    assert!(s.leader_epoch >= 1);
    assert!(s.high_watermark >= end, "{s:?}");
    assert_eq!(
        s.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    for v in &s.voters {
        assert!(
            v.last_fetch_timestamp_ms >= v.last_caught_up_timestamp_ms,
            "{v:?}"
        );
    }
    // A follower names the leader; the status query travels to the leader as a raft message.
    let follower = *nodes.keys().find(|id| **id != leader).unwrap();
    match nodes[&follower].describe() {
        Err(QuorumError::NotLeader { leader: l }) => assert_eq!(l, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let bytes = rt
        .block_on(net.send(leader, "", RaftRpcKind::Describe, vec![]))
        .unwrap();
    let remote: Result<QuorumStatus, QuorumError> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(remote.unwrap().leader_id, leader);
    for q in nodes.values() {
        q.shutdown().unwrap();
    }
}
