//! A node's identity, checked against the other nodes before it joins the metadata quorum. At
//! start-up a node of a multi-node cluster says hello (Runnel's private [`HELLO_API_KEY`]) to
//! every configured voter (`controller.quorum.voters`), or to every
//! `controller.quorum.bootstrap.servers` of a dynamic quorum, telling its `node.id`, its metadata
//! log dir's `directory.id`, the cluster id its log dirs belong to and its configured voters; each
//! node that answers tells its own, and what its metadata knows of the asker's node id. The node
//! refuses to start, naming the key, when an answer shows a misconfiguration that would corrupt
//! the quorum: another voter set (`controller.quorum.voters`), another live process with this
//! `node.id`, another cluster (`cluster.id`, `log.dirs`). Nodes that do not answer (not started
//! yet, unreachable, older) are skipped, so a cluster still forms whatever order its nodes start
//! in; all are asked at once and none is waited for longer than [`HELLO_TIMEOUT`]. A node that
//! is asked logs an error for a voter set that differs from its own, and keeps running.
//!
//! Brokers that register with the controller have a second check: a registration refused with
//! DUPLICATE_BROKER_REGISTRATION for longer than a session timeout means another live process
//! holds this `node.id` ([`DuplicateRegistration`]).

use std::time::{Duration, Instant};

use anyhow::anyhow;
use runnel_config::{BrokerConfig, Voter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::Broker;
use crate::internode::{BlockingNodeClient, HELLO_API_KEY};
use crate::partition::topic_id_base64;

/// How long start-up waits for the other nodes' answers (they are asked all at once).
pub const HELLO_TIMEOUT: Duration = Duration::from_millis(1500);

/// What a node tells another about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// `node.id`.
    pub node_id: i32,
    /// The `directory.id` of its metadata log dir (`meta.properties`).
    pub directory_id: Uuid,
    /// The cluster its log dirs belong to (`meta.properties`, else `cluster.id`), once known.
    pub cluster_id: Option<String>,
    /// `controller.quorum.voters` as `id@host:port`, in id order, hosts lower-cased; empty for
    /// a dynamic quorum.
    pub voters: Vec<String>,
}

/// What the metadata of an answering node knows of the asker's node id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownNode {
    /// The directory id the quorum's membership records for it, if any.
    pub directory_id: Option<Uuid>,
    /// Whether a broker with that id is registered and unfenced.
    pub live: bool,
}

/// A node's answer to a hello: its own identity, and what it knows of the asker's node id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAnswer {
    /// The answering node's identity.
    pub me: Hello,
    /// The asker's node id in the answering node's metadata, if it is there.
    #[serde(default)]
    pub your_node: Option<KnownNode>,
}

/// A node asked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// `host:port` of its controller listener.
    pub addr: String,
    /// The voter id configured at that address (None for a bootstrap server).
    pub voter_id: Option<i32>,
}

/// A refusal: the configuration key at fault and what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The key the message names.
    pub key: &'static str,
    /// The whole message (it starts with the key).
    pub message: String,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// `controller.quorum.voters` in the form hellos carry: `id@host:port` in id order, hosts
/// lower-cased.
pub fn voter_strings(voters: &[Voter]) -> Vec<String> {
    let mut sorted: Vec<&Voter> = voters.iter().collect();
    sorted.sort_by_key(|v| v.id);
    sorted
        .iter()
        .map(|v| format!("{}@{}:{}", v.id, v.host.to_ascii_lowercase(), v.port))
        .collect()
}

/// This node's hello.
pub fn own_hello(config: &BrokerConfig, directory_id: Uuid, cluster_id: Option<String>) -> Hello {
    Hello {
        node_id: config.node_id,
        directory_id,
        cluster_id,
        voters: voter_strings(&config.cluster.voters),
    }
}

/// The nodes asked at start-up: the configured voters, else the bootstrap servers.
pub fn peers(config: &BrokerConfig) -> Vec<Peer> {
    let cluster = &config.cluster;
    let mut out: Vec<Peer> = if cluster.voters.is_empty() {
        cluster
            .bootstrap_servers
            .iter()
            .map(|(h, p)| Peer {
                addr: format!("{h}:{p}"),
                voter_id: None,
            })
            .collect()
    } else {
        cluster
            .voters
            .iter()
            .map(|v| Peer {
                addr: format!("{}:{}", v.host, v.port),
                voter_id: Some(v.id),
            })
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.addr.clone()));
    out
}

fn show_voters(voters: &[String]) -> String {
    if voters.is_empty() {
        "(none)".to_string()
    } else {
        voters.join(",")
    }
}

/// What is wrong between two nodes' identities (`ours` the checking node's, `theirs` the other's,
/// found `at` an address, or said in a hello), in order of precedence: another cluster, another process with our node id,
/// another voter set. Either side may check: the asker refuses to start, the asked logs.
pub fn compare(ours: &Hello, theirs: &Hello, at: &str) -> Option<Mismatch> {
    if let (Some(a), Some(b)) = (&ours.cluster_id, &theirs.cluster_id) {
        if a != b {
            return Some(Mismatch {
                key: "cluster.id",
                message: format!(
                    "cluster.id differs: this node (node.id={}) belongs to cluster {a} (its log.dirs' \
                     meta.properties, or cluster.id), but node {} {at} belongs to cluster {b}; \
                     every node of a cluster has one cluster id, and log.dirs of another cluster \
                     cannot join it",
                    ours.node_id, theirs.node_id
                ),
            });
        }
    }
    if ours.node_id == theirs.node_id && ours.directory_id != theirs.directory_id {
        return Some(Mismatch {
            key: "node.id",
            message: format!(
                "node.id={} is used by two processes: the node {at} has node.id={} with log \
                 dir directory.id {}, this one has directory.id {}; two nodes cannot share one \
                 node.id",
                ours.node_id,
                theirs.node_id,
                topic_id_base64(&theirs.directory_id),
                topic_id_base64(&ours.directory_id)
            ),
        });
    }
    if !ours.voters.is_empty() && !theirs.voters.is_empty() && ours.voters != theirs.voters {
        return Some(Mismatch {
            key: "controller.quorum.voters",
            message: format!(
                "controller.quorum.voters differs between nodes: node {} has {}, but node {} {at} \
                 has {}; every node must list the same voters",
                ours.node_id,
                show_voters(&ours.voters),
                theirs.node_id,
                show_voters(&theirs.voters)
            ),
        });
    }
    None
}

/// Checks the answer of `peer` to this node's hello `ours`: [`compare`], then whether the voter
/// at that address is the node configured there, then whether the peer's metadata has a live
/// broker with this node id and another directory id.
pub fn check_answer(ours: &Hello, peer: &Peer, answer: &HelloAnswer) -> Result<(), Mismatch> {
    if let Some(m) = compare(ours, &answer.me, &format!("at {}", peer.addr)) {
        return Err(m);
    }
    if let Some(v) = peer.voter_id {
        if answer.me.node_id != v && answer.me.node_id != ours.node_id {
            return Err(Mismatch {
                key: "controller.quorum.voters",
                message: format!(
                    "controller.quorum.voters puts voter {v} at {}, but the node answering there \
                     has node.id={}",
                    peer.addr, answer.me.node_id
                ),
            });
        }
    }
    if let Some(known) = &answer.your_node {
        if let Some(d) = known
            .directory_id
            .filter(|d| known.live && *d != ours.directory_id)
        {
            return Err(Mismatch {
                key: "node.id",
                message: format!(
                    "node.id={} is used by another live process: the metadata quorum (asked at {}) \
                     has node {} registered and unfenced with log dir directory.id {}, this node's \
                     is {}; two nodes cannot share one node.id (a node whose log dir was replaced \
                     starts once its old registration is fenced, after broker.session.timeout.ms)",
                    ours.node_id,
                    peer.addr,
                    ours.node_id,
                    topic_id_base64(&d),
                    topic_id_base64(&ours.directory_id)
                ),
            });
        }
    }
    Ok(())
}

/// Says hello to every peer at once (blocking, at most about [`HELLO_TIMEOUT`]) and refuses, with
/// an error naming the key, on the first answer that shows a mismatch. Peers that do not answer
/// are skipped.
pub fn exchange(
    config: &BrokerConfig,
    ours: &Hello,
    security: runnel_client::security::Security,
) -> anyhow::Result<()> {
    let peers = peers(config);
    let body = serde_json::to_vec(ours)?;
    let answers: Vec<(Peer, Option<HelloAnswer>)> = std::thread::scope(|s| {
        let handles: Vec<_> = peers
            .iter()
            .map(|peer| {
                let body = &body;
                let security = security.clone();
                s.spawn(move || {
                    let client = BlockingNodeClient::secured(security);
                    let target = peer.voter_id.unwrap_or(-1);
                    match client.call_within(
                        target,
                        &peer.addr,
                        HELLO_API_KEY,
                        0,
                        body,
                        HELLO_TIMEOUT,
                    ) {
                        Ok(bytes) => match serde_json::from_slice::<HelloAnswer>(&bytes) {
                            Ok(a) => Some(a),
                            Err(e) => {
                                tracing::debug!(addr = %peer.addr, error = %e, "hello: unreadable answer");
                                None
                            }
                        },
                        Err(e) => {
                            tracing::debug!(addr = %peer.addr, error = %e, "hello: no answer (skipped)");
                            None
                        }
                    }
                })
            })
            .collect();
        peers
            .iter()
            .cloned()
            .zip(handles.into_iter().map(|h| h.join().ok().flatten()))
            .collect()
    });
    let mut answered = 0;
    for (peer, answer) in &answers {
        let Some(answer) = answer else { continue };
        answered += 1;
        if let Err(m) = check_answer(ours, peer, answer) {
            tracing::error!(key = m.key, "refusing to start: {m}");
            return Err(anyhow!("{m}"));
        }
    }
    tracing::info!(
        asked = answers.len(),
        answered,
        "identity checked with the other nodes"
    );
    Ok(())
}

/// Answers a hello from another node (on a controller listener): this node's identity and what
/// its metadata knows of the asker's node id. A mismatch the asker will refuse over (another
/// voter set above all) is logged here too; this node keeps running. None for a malformed hello.
pub fn answer(broker: &Broker, body: &[u8]) -> Option<Vec<u8>> {
    let theirs: Hello = serde_json::from_slice(body).ok()?;
    let config = &broker.config;
    let cluster_id = broker
        .image()
        .cluster_id
        .clone()
        .or_else(|| config.cluster_id.clone());
    let me = own_hello(config, broker.directory_id, cluster_id);
    if let Some(m) = compare(&me, &theirs, "(in its hello)") {
        tracing::error!(
            key = m.key,
            "a node starting with another configuration said hello: {m}"
        );
    }
    let quorum_dir = broker
        .quorum()
        .members()
        .into_iter()
        .find(|(id, _, _)| *id == theirs.node_id)
        .map(|(_, node, _)| node.directory_id);
    let live = broker
        .image()
        .brokers
        .get(&theirs.node_id)
        .is_some_and(|b| !b.fenced);
    let your_node = quorum_dir.map(|directory_id| KnownNode { directory_id, live });
    serde_json::to_vec(&HelloAnswer { me, your_node }).ok()
}

/// Tells a registration refused with DUPLICATE_BROKER_REGISTRATION because this node's previous
/// run has not yet timed out (which ends within a session timeout) from one refused because
/// another live process has this node id (which does not end).
#[derive(Debug, Clone)]
pub struct DuplicateRegistration {
    since: Option<Instant>,
    limit: Duration,
}

impl DuplicateRegistration {
    /// A tracker that gives up after refusals for `limit` in a row.
    pub fn new(limit: Duration) -> DuplicateRegistration {
        DuplicateRegistration { since: None, limit }
    }

    /// The limit for a node: twice its `broker.session.timeout.ms`, plus 20 s. A previous run's
    /// session can outlast one timeout: each controller failover gives every registered broker a
    /// full session again (as Kafka's new active controller does), and a node restarted while
    /// the controllers change hands (or on a loaded machine) was seen refused for over 10 s with
    /// a 3 s session. Kafka's broker retries for ever; Runnel stops to name a shared node.id.
    pub fn for_config(config: &BrokerConfig) -> DuplicateRegistration {
        let session = config.cluster.broker_session_timeout_ms.max(0) as u64;
        DuplicateRegistration::new(Duration::from_millis(2 * session + 20_000))
    }

    /// Notes the outcome of one registration or heartbeat step at `now` (`duplicate`: refused
    /// with DUPLICATE_BROKER_REGISTRATION, else it succeeded); returns how long the refusals
    /// have lasted once that is beyond the limit.
    pub fn observe(&mut self, now: Instant, duplicate: bool) -> Option<Duration> {
        if !duplicate {
            self.since = None;
            return None;
        }
        let since = *self.since.get_or_insert(now);
        let lasted = now.saturating_duration_since(since);
        (lasted > self.limit).then_some(lasted)
    }
}

/// The refusal when [`DuplicateRegistration`] gives up.
pub fn duplicate_registration_message(node_id: i32, lasted: Duration) -> String {
    format!(
        "node.id={node_id} is used by another live broker: the active controller has refused this \
         node's registration with DUPLICATE_BROKER_REGISTRATION for {} s, longer than a broker \
         session (broker.session.timeout.ms); two nodes cannot share one node.id",
        lasted.as_secs()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(node_id: i32, dir: u128, voters: &[&str]) -> Hello {
        Hello {
            node_id,
            directory_id: Uuid::from_u128(dir),
            cluster_id: Some("c1".into()),
            voters: voters.iter().map(|s| s.to_string()).collect(),
        }
    }

    const THREE: &[&str] = &["1@localhost:9093", "2@localhost:9193", "3@localhost:9293"];

    fn peer(voter: Option<i32>) -> Peer {
        Peer {
            addr: "localhost:9193".into(),
            voter_id: voter,
        }
    }

    fn answer(me: Hello) -> HelloAnswer {
        HelloAnswer {
            me,
            your_node: None,
        }
    }

    #[test]
    fn voters_are_compared_in_id_order_with_hosts_lower_cased() {
        let parsed = runnel_config::cluster::parse_voters(
            "3@LocalHost:9293,1@localhost:9093,2@localhost:9193",
        )
        .unwrap();
        assert_eq!(voter_strings(&parsed), THREE);
    }

    #[test]
    fn the_same_configuration_passes() {
        let ours = hello(1, 1, THREE);
        assert_eq!(compare(&ours, &hello(2, 2, THREE), "x"), None);
        assert_eq!(
            check_answer(&ours, &peer(Some(2)), &answer(hello(2, 2, THREE))),
            Ok(())
        );
        // The same process answering (same node id and directory): nothing to refuse.
        assert_eq!(compare(&ours, &hello(1, 1, THREE), "x"), None);
        // A dynamic quorum (no voters) on either side, or a cluster id not known yet.
        assert_eq!(compare(&ours, &hello(2, 2, &[]), "x"), None);
        let mut fresh = hello(2, 2, THREE);
        fresh.cluster_id = None;
        assert_eq!(compare(&ours, &fresh, "x"), None);
    }

    #[test]
    fn another_voter_set_names_controller_quorum_voters_and_shows_both() {
        let ours = hello(1, 1, THREE);
        let other_port = ["1@localhost:9093", "2@localhost:9193", "3@localhost:9294"];
        let m = compare(&ours, &hello(2, 2, &other_port), "localhost:9193").unwrap();
        assert_eq!(m.key, "controller.quorum.voters");
        assert!(m.message.starts_with("controller.quorum.voters"), "{m}");
        assert!(m.message.contains(&THREE.join(",")), "{m}");
        assert!(m.message.contains(&other_port.join(",")), "{m}");
        let mut four = THREE.to_vec();
        four.push("4@localhost:9393");
        let m = check_answer(&ours, &peer(Some(2)), &answer(hello(2, 2, &four))).unwrap_err();
        assert_eq!(m.key, "controller.quorum.voters");
    }

    #[test]
    fn a_voter_address_answered_by_another_node_names_controller_quorum_voters() {
        let ours = hello(1, 1, THREE);
        let m = check_answer(&ours, &peer(Some(2)), &answer(hello(3, 3, THREE))).unwrap_err();
        assert_eq!(m.key, "controller.quorum.voters");
        assert!(m.message.contains("node.id=3"), "{m}");
        // A bootstrap server has no configured id.
        assert_eq!(
            check_answer(&ours, &peer(None), &answer(hello(3, 3, THREE))),
            Ok(())
        );
    }

    #[test]
    fn our_node_id_with_another_directory_names_node_id() {
        let ours = hello(2, 1, THREE);
        let m = check_answer(&ours, &peer(Some(2)), &answer(hello(2, 7, THREE))).unwrap_err();
        assert_eq!(m.key, "node.id");
        assert!(m.message.starts_with("node.id=2 "), "{m}");
        // Before the voter sets: the duplicate is what matters.
        let m = compare(&ours, &hello(2, 7, &["2@localhost:1"]), "x").unwrap();
        assert_eq!(m.key, "node.id");
    }

    #[test]
    fn a_live_registration_with_another_directory_names_node_id() {
        let ours = hello(4, 1, THREE);
        let with = |directory_id: Option<u128>, live: bool| HelloAnswer {
            me: hello(1, 9, THREE),
            your_node: Some(KnownNode {
                directory_id: directory_id.map(Uuid::from_u128),
                live,
            }),
        };
        let m = check_answer(&ours, &peer(Some(1)), &with(Some(5), true)).unwrap_err();
        assert_eq!(m.key, "node.id");
        // Our own directory (a restart), a fenced registration, or no directory known: fine.
        assert_eq!(
            check_answer(&ours, &peer(Some(1)), &with(Some(1), true)),
            Ok(())
        );
        assert_eq!(
            check_answer(&ours, &peer(Some(1)), &with(Some(5), false)),
            Ok(())
        );
        assert_eq!(
            check_answer(&ours, &peer(Some(1)), &with(None, true)),
            Ok(())
        );
    }

    #[test]
    fn another_cluster_names_cluster_id_first() {
        let ours = hello(1, 1, THREE);
        let mut theirs = hello(1, 2, &["9@a:1"]);
        theirs.cluster_id = Some("c2".into());
        let m = compare(&ours, &theirs, "x").unwrap();
        assert_eq!(m.key, "cluster.id");
        assert!(m.message.contains("log.dirs"), "{m}");
    }

    #[test]
    fn a_hello_answer_reads_without_the_known_node() {
        let a: HelloAnswer = serde_json::from_str(
            r#"{"me":{"node_id":1,"directory_id":"00000000-0000-0000-0000-000000000001","cluster_id":null,"voters":[]}}"#,
        )
        .unwrap();
        assert_eq!(a.your_node, None);
        let round = serde_json::to_vec(&answer(hello(1, 1, THREE))).unwrap();
        assert_eq!(
            serde_json::from_slice::<HelloAnswer>(&round).unwrap(),
            answer(hello(1, 1, THREE))
        );
    }

    #[test]
    fn duplicate_registrations_give_up_only_after_the_limit_in_a_row() {
        let mut d = DuplicateRegistration::new(Duration::from_secs(7));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(d.observe(at(0), true), None);
        assert_eq!(d.observe(at(5), true), None);
        // A success (the previous run's session ended) starts over.
        assert_eq!(d.observe(at(6), false), None);
        assert_eq!(d.observe(at(7), true), None);
        assert_eq!(d.observe(at(14), true), None);
        assert_eq!(d.observe(at(15), true), Some(Duration::from_secs(8)));
        assert!(duplicate_registration_message(4, Duration::from_secs(8)).starts_with("node.id=4 "));
    }

    #[test]
    fn peers_are_the_voters_else_the_bootstrap_servers() {
        let load = |pairs: &[(&str, &str)]| {
            let o: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            BrokerConfig::load(None, &[], &o).unwrap().config
        };
        let base = [
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ];
        let mut v = base.to_vec();
        v.push((
            "controller.quorum.voters",
            "1@127.0.0.1:9093,2@127.0.0.1:9193",
        ));
        let p = peers(&load(&v));
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].addr, "127.0.0.1:9193");
        assert_eq!(p[1].voter_id, Some(2));
        let mut v = base.to_vec();
        v.push((
            "controller.quorum.bootstrap.servers",
            "127.0.0.1:9193,127.0.0.1:9193,127.0.0.1:9293",
        ));
        let p = peers(&load(&v));
        assert_eq!(
            p,
            vec![
                Peer {
                    addr: "127.0.0.1:9193".into(),
                    voter_id: None
                },
                Peer {
                    addr: "127.0.0.1:9293".into(),
                    voter_id: None
                }
            ]
        );
    }
}
