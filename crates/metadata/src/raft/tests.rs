//! Tests of the raft quorum: a single voter on disk (start, reopen, snapshots, legacy upgrade)
//! and three voters over an in-memory transport; learners following the log, and a dynamic
//! quorum's voters added and removed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Weak;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::quorum::{MembershipError, VoterStatus};

use super::*;
use crate::log::MetadataLog;
use crate::records::{RESOURCE_BROKER, RESOURCE_TOPIC};

fn single(dir: &Path) -> RaftQuorumConfig {
    RaftQuorumConfig {
        log_dir: dir.to_path_buf(),
        node_id: 1,
        voters: BTreeMap::from([(1, "localhost:9093".to_string())]),
        bootstrap: vec![],
        me: RaftNode::at("localhost:9093"),
        standalone: false,
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
                adding_replicas: vec![],
                removing_replicas: vec![],
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
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

/// Voters connected in memory; a node missing from the map is unreachable, and so is one in
/// `cut` (which reaches no one either when it sends through [`CutTransport`]).
#[derive(Default)]
struct MemTransport {
    nodes: parking_lot::Mutex<HashMap<i32, Weak<RaftQuorum>>>,
    cut: parking_lot::Mutex<std::collections::HashSet<i32>>,
}

/// What node `from` sends through: nothing gets out while it is cut off.
struct CutTransport {
    from: i32,
    net: Arc<MemTransport>,
}

impl RaftTransport for CutTransport {
    fn send(
        &self,
        target: i32,
        addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, std::io::Result<Vec<u8>>> {
        if self.net.cut.lock().contains(&self.from) {
            return Box::pin(async {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "cut off"))
            });
        }
        self.net.send(target, addr, kind, body)
    }
}

impl RaftTransport for MemTransport {
    fn send(
        &self,
        target: i32,
        addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, std::io::Result<Vec<u8>>> {
        // A bootstrap server (negative target) is found by its address, `mem-<id>`.
        let id = if target >= 0 {
            target
        } else {
            addr.strip_prefix("mem-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        };
        let node = self
            .nodes
            .lock()
            .get(&id)
            .and_then(Weak::upgrade)
            .filter(|_| !self.cut.lock().contains(&id));
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
            bootstrap: vec![],
            me: RaftNode::at(format!("mem-{i}")),
            standalone: false,
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
        bootstrap: vec![],
        me: RaftNode::at(format!("mem-{leader}")),
        standalone: false,
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
            bootstrap: vec![],
            me: RaftNode::at(format!("mem-{i}")),
            standalone: false,
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

fn mem_addr(id: i32) -> String {
    format!("mem-{id}")
}

/// A node as it joins: reached at `mem-<id>`, with a directory id and a controller endpoint.
fn me(id: i32, directory_id: Uuid) -> RaftNode {
    RaftNode {
        addr: mem_addr(id),
        directory_id: Some(directory_id),
        endpoints: vec![controller_endpoint(id)],
    }
}

fn controller_endpoint(id: i32) -> Endpoint {
    Endpoint {
        name: "CONTROLLER".into(),
        host: "127.0.0.1".into(),
        port: 9000 + id as u16,
    }
}

/// Opens node `id` of a quorum connected through `net`.
fn open_node(
    net: &Arc<MemTransport>,
    dir: &Path,
    id: i32,
    voters: &BTreeMap<i32, String>,
    node: RaftNode,
    standalone: bool,
) -> Arc<RaftQuorum> {
    let q = RaftQuorum::open(RaftQuorumConfig {
        log_dir: dir.to_path_buf(),
        node_id: id,
        voters: voters.clone(),
        bootstrap: (1..=3).map(mem_addr).collect(),
        me: node,
        standalone,
        network: net.clone(),
    })
    .unwrap();
    net.nodes.lock().insert(id, Arc::downgrade(&q));
    q
}

/// The leader every node in `nodes` names, once they agree on one that is among them.
fn agreed_leader(nodes: &BTreeMap<i32, Arc<RaftQuorum>>) -> Option<i32> {
    let leaders: Vec<_> = nodes.values().map(|q| q.leader_id()).collect();
    match leaders.first().copied().flatten() {
        Some(l) if leaders.iter().all(|x| *x == Some(l)) && nodes.contains_key(&l) => Some(l),
        _ => None,
    }
}

fn ids(status: &[VoterStatus]) -> Vec<i32> {
    status.iter().map(|v| v.node_id).collect()
}

fn run<T>(fut: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut)
}

#[test]
fn a_learner_follows_the_log_never_leads_and_rejoins_after_a_restart() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(MemTransport::default());
    let voters: BTreeMap<i32, String> = (1..=3).map(|i| (i, mem_addr(i))).collect();
    let mut nodes = BTreeMap::new();
    for i in 1..=3 {
        let dir = dirs[i as usize - 1].path();
        nodes.insert(
            i,
            open_node(&net, dir, i, &voters, RaftNode::at(mem_addr(i)), false),
        );
    }
    wait_for("a leader", || agreed_leader(&nodes).is_some());
    let leader = agreed_leader(&nodes).unwrap();
    nodes[&leader]
        .propose_blocking(vec![topic("before")])
        .unwrap();

    // Node 4 is no voter: it asks to be taken in and receives the log.
    let dir4 = Uuid::new_v4();
    let learner = open_node(&net, dirs[3].path(), 4, &voters, me(4, dir4), false);
    wait_for("the learner to catch up", || {
        learner.image().topic("before").is_some()
    });
    let img = nodes[&leader]
        .propose_blocking(vec![topic("after")])
        .unwrap();
    wait_for("the learner to apply a new entry", || {
        learner.image().last_offset >= img.last_offset
    });
    assert_eq!(content(&learner.image()), content(&img));
    assert_eq!(learner.leader_id(), Some(leader));
    match learner.propose_blocking(vec![topic("x")]) {
        Err(QuorumError::NotLeader { leader: l }) => assert_eq!(l, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    // The leader reports it as an observer with its directory id; the voters are unchanged.
    wait_for("the observer's progress", || {
        let s = nodes[&leader].describe().unwrap();
        s.observers.len() == 1 && s.observers[0].log_end_offset > img.last_offset
    });
    let s = nodes[&leader].describe().unwrap();
    assert_eq!(ids(&s.voters), [1, 2, 3]);
    assert_eq!(ids(&s.observers), [4]);
    assert_eq!(s.observers[0].directory_id, Some(dir4));
    assert!(s.voters.iter().all(|v| v.directory_id.is_none()));
    assert_eq!(learner.members().len(), 4);
    assert!(learner
        .members()
        .iter()
        .any(|(id, n, voter)| *id == 4 && !voter && n.addr == "mem-4"));

    // A static quorum refuses voter changes, as Kafka refuses them at kraft.version 0.
    let refused = run(learner.change_membership(MembershipChange::AddVoter {
        node_id: 4,
        directory_id: dir4,
        endpoints: vec![controller_endpoint(4)],
        timeout_ms: 1000,
    }));
    assert!(
        matches!(
            refused,
            Err(QuorumError::Refused {
                error: MembershipError::UnsupportedVersion,
                ..
            })
        ),
        "{refused:?}"
    );

    // Restarted, it is still a learner and catches up with what it missed.
    net.nodes.lock().remove(&4);
    learner.shutdown().unwrap();
    drop(learner);
    let img = nodes[&leader]
        .propose_blocking(vec![topic("while-down")])
        .unwrap();
    let learner = open_node(&net, dirs[3].path(), 4, &voters, me(4, dir4), false);
    wait_for("the restarted learner to catch up", || {
        learner.image().last_offset >= img.last_offset
    });

    // The leader goes; a voter takes over (never the learner), and keeps replicating to it.
    net.nodes.lock().remove(&leader);
    nodes.remove(&leader).unwrap().shutdown().unwrap();
    wait_for("a new leader", || agreed_leader(&nodes).is_some());
    let new_leader = agreed_leader(&nodes).unwrap();
    assert_ne!(new_leader, 4);
    let img = nodes[&new_leader]
        .propose_blocking(vec![topic("after-failover")])
        .unwrap();
    wait_for("the learner to follow the new leader", || {
        learner.image().last_offset >= img.last_offset && learner.leader_id() == Some(new_leader)
    });
    let s = nodes[&new_leader].describe().unwrap();
    assert_eq!(ids(&s.observers), [4]);
    learner.shutdown().unwrap();
    for q in nodes.values() {
        q.shutdown().unwrap();
    }
}

#[test]
fn a_dynamic_quorum_adds_and_removes_voters() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let dir_ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let net = Arc::new(MemTransport::default());
    let none = BTreeMap::new();
    let mut nodes = BTreeMap::new();
    // Node 1 starts the quorum alone (Kafka's --standalone); 2 and 3 join as learners.
    nodes.insert(
        1,
        open_node(&net, dirs[0].path(), 1, &none, me(1, dir_ids[0]), true),
    );
    wait_for("node 1 to lead", || nodes[&1].leader_id() == Some(1));
    assert!(nodes[&1].is_dynamic());
    nodes[&1].propose_blocking(vec![topic("t1")]).unwrap();
    for i in 2..=3 {
        let q = open_node(
            &net,
            dirs[i as usize - 1].path(),
            i,
            &none,
            me(i, dir_ids[i as usize - 1]),
            false,
        );
        nodes.insert(i, q);
    }
    wait_for("two observers", || {
        nodes[&1]
            .describe()
            .is_ok_and(|s| ids(&s.observers) == [2, 3])
    });
    let s = nodes[&1].describe().unwrap();
    assert_eq!(ids(&s.voters), [1]);
    assert_eq!(s.voters[0].directory_id, Some(dir_ids[0]));
    assert_eq!(s.voters[0].endpoints, [controller_endpoint(1)]);

    let add = |via: i32, id: i32, directory_id: Uuid| {
        run(nodes[&via].change_membership(MembershipChange::AddVoter {
            node_id: id,
            directory_id,
            endpoints: vec![controller_endpoint(id)],
            timeout_ms: 10_000,
        }))
    };
    // Asked of a learner, the change travels to the leader.
    wait_for("the learners to know the leader", || {
        nodes[&2].leader_id() == Some(1) && nodes[&3].leader_id() == Some(1)
    });
    add(3, 2, dir_ids[1]).unwrap();
    let s = nodes[&1].describe().unwrap();
    assert_eq!(ids(&s.voters), [1, 2]);
    assert_eq!(s.voters[1].directory_id, Some(dir_ids[1]));
    assert_eq!(ids(&s.observers), [3]);
    // A wrong directory id, then a voter added twice, are refused with Kafka's errors.
    let wrong = add(1, 3, Uuid::new_v4());
    assert!(
        matches!(
            wrong,
            Err(QuorumError::Refused {
                error: MembershipError::InvalidRequest,
                ..
            })
        ),
        "{wrong:?}"
    );
    add(2, 3, dir_ids[2]).unwrap();
    let again = add(1, 3, dir_ids[2]);
    assert!(
        matches!(
            again,
            Err(QuorumError::Refused {
                error: MembershipError::DuplicateVoter,
                ..
            })
        ),
        "{again:?}"
    );
    let s = nodes[&1].describe().unwrap();
    assert_eq!(ids(&s.voters), [1, 2, 3]);
    assert!(s.observers.is_empty());

    let remove = |via: i32, id: i32, directory_id: Uuid| {
        run(
            nodes[&via].change_membership(MembershipChange::RemoveVoter {
                node_id: id,
                directory_id,
            }),
        )
    };
    let missing = remove(2, 1, Uuid::new_v4());
    assert!(
        matches!(
            missing,
            Err(QuorumError::Refused {
                error: MembershipError::VoterNotFound,
                ..
            })
        ),
        "{missing:?}"
    );
    // The leader itself is removed: it steps down, the other two elect a leader and commit.
    remove(2, 1, dir_ids[0]).unwrap();
    let two: BTreeMap<i32, Arc<RaftQuorum>> = nodes
        .iter()
        .filter(|(id, _)| **id != 1)
        .map(|(id, q)| (*id, q.clone()))
        .collect();
    wait_for("a leader among 2 and 3", || agreed_leader(&two).is_some());
    let leader = agreed_leader(&two).unwrap();
    let img = wait_propose(&nodes[&leader], "after-removal");
    let s = nodes[&leader].describe().unwrap();
    assert_eq!(ids(&s.voters), [2, 3]);
    // The removed voter stays a learner and follows the log, as an observer.
    wait_for("the removed voter to be an observer", || {
        nodes[&leader]
            .describe()
            .is_ok_and(|s| ids(&s.observers) == [1])
    });
    wait_for("the removed voter to follow", || {
        nodes[&1].image().last_offset >= img.last_offset
    });

    // The voter set survives restarts: every node stopped and started again.
    for (id, q) in std::mem::take(&mut nodes) {
        net.nodes.lock().remove(&id);
        q.shutdown().unwrap();
    }
    for i in 1..=3 {
        let q = open_node(
            &net,
            dirs[i as usize - 1].path(),
            i,
            &none,
            me(i, dir_ids[i as usize - 1]),
            i == 1,
        );
        nodes.insert(i, q);
    }
    wait_for("a leader after the restart", || {
        agreed_leader(&nodes).is_some()
    });
    let leader = agreed_leader(&nodes).unwrap();
    assert_ne!(leader, 1, "the removed voter must not lead");
    let s = nodes[&leader].describe().unwrap();
    assert_eq!(ids(&s.voters), [2, 3]);
    assert_eq!(ids(&s.observers), [1]);
    wait_propose(&nodes[&leader], "after-restart");
    for q in nodes.values() {
        q.shutdown().unwrap();
    }
}

/// Proposes a topic, retrying while a just-elected leader is not ready yet.
fn wait_propose(q: &RaftQuorum, name: &str) -> Arc<MetadataImage> {
    let mut img = None;
    wait_for("a proposal to commit", || {
        img = q.propose_blocking(vec![topic(name)]).ok();
        img.is_some()
    });
    img.unwrap()
}

/// Raft's current term on a node.
fn term(q: &RaftQuorum) -> u64 {
    q.raft.metrics().borrow().current_term
}

#[test]
fn a_voter_cut_off_keeps_its_term_and_does_not_depose_the_leader_when_back() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let net = Arc::new(MemTransport::default());
    let voters: BTreeMap<i32, String> = (1..=3).map(|i| (i, mem_addr(i))).collect();
    let mut nodes = BTreeMap::new();
    for (i, dir) in (1..=3).zip(&dirs) {
        let q = RaftQuorum::open(RaftQuorumConfig {
            log_dir: dir.path().to_path_buf(),
            node_id: i,
            voters: voters.clone(),
            bootstrap: vec![],
            me: RaftNode::at(mem_addr(i)),
            standalone: false,
            network: Arc::new(CutTransport {
                from: i,
                net: net.clone(),
            }),
        })
        .unwrap();
        net.nodes.lock().insert(i, Arc::downgrade(&q));
        nodes.insert(i, q);
    }
    wait_for("a leader", || agreed_leader(&nodes).is_some());
    let leader = agreed_leader(&nodes).unwrap();
    let before = term(&nodes[&leader]);
    wait_propose(&nodes[&leader], "before");
    // The follower with the shortest election timeout (the lowest id) is cut off for longer
    // than a few of its election timeouts (at most 2 s, after a lease of 2 s).
    let cut = *nodes.keys().find(|id| **id != leader).unwrap();
    net.cut.lock().insert(cut);
    std::thread::sleep(Duration::from_secs(9));
    assert_eq!(
        term(&nodes[&cut]),
        before,
        "a voter that cannot reach a majority calls no election"
    );
    assert_eq!(
        agreed_leader(
            &nodes
                .iter()
                .filter(|(id, _)| **id != cut)
                .map(|(id, q)| (*id, q.clone()))
                .collect()
        ),
        Some(leader)
    );
    let img = wait_propose(&nodes[&leader], "while-cut");
    net.cut.lock().remove(&cut);
    wait_for("the healed voter to catch up", || {
        nodes[&cut].image().last_offset >= img.last_offset
    });
    // Back, it follows the leader it left: no election, no new term.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(agreed_leader(&nodes), Some(leader));
    for q in nodes.values() {
        assert_eq!(term(q), before, "node {}", q.node_id());
    }
    for q in nodes.values() {
        q.shutdown().unwrap();
    }
}
