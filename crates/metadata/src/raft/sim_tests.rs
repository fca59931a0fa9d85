//! A seeded, randomized fault simulation of the metadata quorum (the testing ladder's
//! "simulation of the quorum"): real [`RaftQuorum`] nodes, each on its own runtime over its own
//! log directory, connected by [`SimNet`], an in-memory [`RaftTransport`] that loses, delays,
//! duplicates and reorders messages, partitions the nodes (both ways or one way) and holds all
//! traffic of a paused node. Nodes also crash (the quorum is shut down) and restart from what
//! they left on disk. Client proposals run throughout; at the end the cluster is healed and
//! checked.
//!
//! Checked during a seed, on every metrics and image change a node publishes: at most one leader
//! per raft term (a node in the leader state, or the leader a follower's committed vote names);
//! a node's term never goes back, across restarts too; two nodes that applied up to the same
//! offset hold the same image; no node stops with a fatal error. After healing and a fresh
//! proposal: a leader is elected and the proposal commits (progress); every node applies it and
//! all images are equal; the logs agree entry for entry wherever two of them hold an index up to
//! the fresh proposal; every acknowledged proposal is in the image; nothing unproposed is.
//!
//! What is deterministic: the seed fixes the scenario (voters, timings, loss, delay and
//! duplication rates, snapshot cadence) and the fault schedule (which fault, on which nodes, at
//! which millisecond). What is not: openraft runs on tokio with real timers, threads and file
//! I/O, so the interleaving of messages, the per-message draws (taken from one seeded generator
//! in whatever order the messages come) and so the elections differ from run to run. A failing
//! seed replays its schedule, not its exact execution; rerun it a few times. (Paused time cannot
//! help: each node runs its own multi-threaded runtime, as in a broker.) A paused node is a
//! SIGSTOP stand-in only on the network: everything to or from it is held until it resumes,
//! while its own timers go on. A crash is a shutdown: the log is flushed on every append anyway,
//! so what a restart finds on disk is what a kill would leave, short of torn writes.
//!
//! Environment: `RUNNEL_QUORUM_SIM_SEEDS` (how many seeds, from `RUNNEL_QUORUM_SIM_SEED_BASE`,
//! default 0), `RUNNEL_QUORUM_SIM_SEED` (one seed, its trace printed), `RUNNEL_QUORUM_SIM_JOBS`
//! (seeds run at once, default 2), `RUNNEL_QUORUM_SIM_VERBOSE=1` (a line per seed). A failing seed prints
//! its trace and the command that replays it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtOrd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use openraft::{LogId, RaftLogReader, RaftMetrics, ServerState};
use parking_lot::Mutex;
use runnel_storage::testing::Rng;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::*;

/// Seeds the CI form runs.
const CI_SEEDS: u64 = 20;
/// Seeds run at once by default.
const CI_JOBS: usize = 2;
/// How long a client waits for a proposal before it counts its outcome as unknown.
const PROPOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the healed cluster gets to elect, commit and converge.
const HEAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A fault's target: the node that leads when the fault strikes (if `leader` and one does),
/// else `node`.
#[derive(Debug, Clone, Copy)]
struct Who {
    leader: bool,
    node: i32,
}

/// One fault of a seed's schedule.
#[derive(Debug, Clone)]
enum Fault {
    /// These nodes (the leader swapped in for the first if `with_leader`) and the others lose
    /// every message between them, both ways; earlier cuts end.
    Partition { group: Vec<i32>, with_leader: bool },
    /// Messages from one node to another are lost (answers the other way too).
    OneWay { from: Who, to: i32 },
    /// Everything sent to the node (`inbound`) or by it is lost.
    Isolate { node: Who, inbound: bool },
    /// Partitions and one-way cuts end.
    HealLinks,
    /// The rate at which any message is lost, per mille.
    Loss(u64),
    /// Traffic to and from the node is held for `ms`.
    Pause { node: Who, ms: u64 },
    /// A paused node's held traffic flows again.
    Resume(i32),
    /// The node's quorum is shut down, and reopened `ms` later.
    Crash { node: Who, ms: u64 },
    /// A crashed node reopens from its directory.
    Restart(i32),
}

/// What a seed fixes.
#[derive(Debug, Clone)]
struct Scenario {
    voters: i32,
    tuning: Tuning,
    /// Per mille of messages lost at the start (a `Loss` fault changes it).
    loss: u64,
    /// Each leg of a message is delayed by up to this.
    max_delay_ms: u64,
    /// Per mille of messages delivered twice.
    dup: u64,
    /// Faults start at once, before the first leader is elected (else once every node follows
    /// one).
    at_boot: bool,
    /// How long faults go on.
    chaos_ms: u64,
    /// A client proposal every this many ms (while fewer than 8 are outstanding).
    propose_every_ms: u64,
    /// When (ms from the start of the faults) each fault strikes, in order.
    schedule: Vec<(u64, Fault)>,
}

impl Scenario {
    fn new(seed: u64) -> Scenario {
        let mut rng = Rng(seed ^ 0x5157_c0de_0000_0000);
        let voters = if rng.per_mille(250) { 5 } else { 3 };
        let snapshot_every = rng.pick(&[1000, 40, 15]).expect("a non-empty choice");
        let tuning = Tuning {
            time_divisor: 5,
            snapshot_every,
            keep_behind_snapshot: (snapshot_every / 4).min(100),
        };
        let loss = rng.pick(&[0, 0, 10, 50, 200]).expect("a non-empty choice");
        let max_delay_ms = rng.pick(&[0, 5, 15, 30]).expect("a non-empty choice");
        let dup = rng.pick(&[0, 0, 20]).expect("a non-empty choice");
        let at_boot = rng.per_mille(200);
        let chaos_ms = rng.range(2500, 4000);
        let propose_every_ms = rng.range(5, 40);
        let mut schedule = Vec::new();
        let mut t = 0;
        loop {
            t += rng.range(50, 600);
            if t >= chaos_ms {
                break;
            }
            let node = rng.range(1, voters as u64) as i32;
            let who = Who {
                leader: rng.per_mille(750),
                node,
            };
            let fault = match rng.below(100) {
                0..=14 => {
                    let size = rng.range(1, (voters as u64 - 1) / 2 + 1);
                    let mut group = BTreeSet::new();
                    while (group.len() as u64) < size {
                        group.insert(rng.range(1, voters as u64) as i32);
                    }
                    Fault::Partition {
                        group: group.into_iter().collect(),
                        with_leader: rng.per_mille(500),
                    }
                }
                15..=27 => Fault::OneWay {
                    from: who,
                    to: rng.range(1, voters as u64) as i32,
                },
                28..=34 => Fault::Isolate {
                    node: who,
                    inbound: rng.per_mille(500),
                },
                35..=52 => Fault::HealLinks,
                53..=59 => {
                    Fault::Loss(rng.pick(&[0, 0, 20, 100, 300]).expect("a non-empty choice"))
                }
                60..=77 => Fault::Pause {
                    node: who,
                    ms: rng.range(100, 1500),
                },
                78..=91 => Fault::Crash {
                    node: who,
                    ms: rng.range(30, 1500),
                },
                _ => continue,
            };
            schedule.push((t, fault));
        }
        Scenario {
            voters,
            tuning,
            loss,
            max_delay_ms,
            dup,
            at_boot,
            chaos_ms,
            propose_every_ms,
            schedule,
        }
    }
}

/// The network's faults as they stand.
#[derive(Default)]
struct Links {
    /// (from, to): messages from `from` to `to` are lost.
    blocked: HashSet<(i32, i32)>,
    paused: HashSet<i32>,
    /// Bumped each time a node crashes: messages held for an earlier life are dropped.
    incarnation: HashMap<i32, u64>,
    loss: u64,
    max_delay_ms: u64,
    dup: u64,
}

/// What happens to one message, drawn when it is sent.
enum Plan {
    /// The target is down: refused at once.
    Refused,
    /// Lost; `reset` says the sender hears so at once (else it waits out its timeout).
    Lost { reset: bool },
    /// On its way.
    Deliver(Delivery),
}

/// A message on its way: delivered after `delay`, answered after `answer_delay` unless
/// `lose_answer`, and delivered once more if `duplicate`; dropped if the sender or the target
/// crashes meanwhile (their `lives` change).
#[derive(Clone, Copy)]
struct Delivery {
    delay: Duration,
    answer_delay: Duration,
    lose_answer: bool,
    duplicate: bool,
    lives: (u64, u64),
}

/// How many times `from` and `to` have crashed.
fn lives(links: &Links, from: i32, to: i32) -> (u64, u64) {
    let life = |id| links.incarnation.get(&id).copied().unwrap_or(0);
    (life(from), life(to))
}

/// The simulated network between the nodes: who is up, and the faults.
struct SimNet {
    nodes: Mutex<HashMap<i32, Weak<RaftQuorum>>>,
    links: Mutex<Links>,
    /// Per-message draws, seeded, taken in whatever order messages are sent.
    rng: Mutex<Rng>,
    sent: AtomicU64,
    lost: AtomicU64,
}

/// What node `from` sends through.
struct SimLink {
    from: i32,
    net: Arc<SimNet>,
}

fn addr(id: i32) -> String {
    format!("sim-{id}")
}

fn lost_error(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, what.to_string())
}

impl SimNet {
    fn new(seed: u64, scenario: &Scenario) -> SimNet {
        SimNet {
            nodes: Mutex::default(),
            links: Mutex::new(Links {
                loss: scenario.loss,
                max_delay_ms: scenario.max_delay_ms,
                dup: scenario.dup,
                ..Links::default()
            }),
            rng: Mutex::new(Rng(seed ^ 0x00e7_0000_0000_0001)),
            sent: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    fn node(&self, id: i32) -> Option<Arc<RaftQuorum>> {
        self.nodes.lock().get(&id).and_then(Weak::upgrade)
    }

    fn plan(&self, from: i32, to: i32) -> Plan {
        self.sent.fetch_add(1, AtOrd::Relaxed);
        if !self.nodes.lock().contains_key(&to) {
            return Plan::Refused;
        }
        let links = self.links.lock();
        let mut rng = self.rng.lock();
        if links.blocked.contains(&(from, to)) || rng.per_mille(links.loss) {
            self.lost.fetch_add(1, AtOrd::Relaxed);
            return Plan::Lost {
                reset: rng.per_mille(300),
            };
        }
        Plan::Deliver(Delivery {
            delay: Duration::from_millis(rng.range(0, links.max_delay_ms)),
            answer_delay: Duration::from_millis(rng.range(0, links.max_delay_ms)),
            lose_answer: rng.per_mille(links.loss / 2),
            duplicate: rng.per_mille(links.dup),
            lives: lives(&links, from, to),
        })
    }

    /// Waits while `from` or `to` is paused; false if either crashed since `expected` was taken
    /// (what a held message dies with).
    async fn hold_while_paused(&self, from: i32, to: i32, expected: (u64, u64)) -> bool {
        loop {
            {
                let links = self.links.lock();
                if lives(&links, from, to) != expected {
                    return false;
                }
                if !links.paused.contains(&from) && !links.paused.contains(&to) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Delivers one message to `to` and returns its answer, unless the message dies on the way.
    async fn deliver(
        self: Arc<Self>,
        from: i32,
        to: i32,
        kind: RaftRpcKind,
        body: Arc<Vec<u8>>,
        delay: Duration,
        lives: (u64, u64),
    ) -> Option<io::Result<Vec<u8>>> {
        tokio::time::sleep(delay).await;
        if !self.hold_while_paused(from, to, lives).await {
            return None;
        }
        let node = self.node(to)?;
        let served = node.handle_rpc(kind, &body);
        // Not held across the await: the last reference dropped here would shut the node down
        // on the sender's runtime.
        drop(node);
        Some(served.await.map_err(io::Error::other))
    }
}

impl RaftTransport for SimLink {
    fn send(
        &self,
        target: i32,
        to_addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        let to = if target >= 0 {
            target
        } else {
            to_addr
                .strip_prefix("sim-")
                .and_then(|n| n.parse().ok())
                .unwrap_or(-1)
        };
        let (from, net) = (self.from, self.net.clone());
        Box::pin(async move {
            let d = match net.plan(from, to) {
                Plan::Refused => {
                    let refused = io::ErrorKind::ConnectionRefused;
                    return Err(io::Error::new(refused, format!("node {to} is down")));
                }
                Plan::Lost { reset: true } => return Err(lost_error("message lost")),
                Plan::Lost { reset: false } => return std::future::pending().await,
                Plan::Deliver(d) => d,
            };
            let body = Arc::new(body);
            if d.duplicate {
                // A copy that arrives later, its answer unheard.
                let later = d.delay * 2 + Duration::from_millis(3);
                let copy = net
                    .clone()
                    .deliver(from, to, kind, body.clone(), later, d.lives);
                tokio::spawn(copy);
            }
            // Sent on its own task: once on the wire a message arrives even if the sender
            // stops waiting for the answer.
            let (tx, rx) = tokio::sync::oneshot::channel();
            let net2 = net.clone();
            tokio::spawn(async move {
                let Some(answer) = net2
                    .clone()
                    .deliver(from, to, kind, body, d.delay, d.lives)
                    .await
                else {
                    return;
                };
                let blocked = net2.links.lock().blocked.contains(&(to, from));
                if blocked || d.lose_answer {
                    net2.lost.fetch_add(1, AtOrd::Relaxed);
                    return;
                }
                tokio::time::sleep(d.answer_delay).await;
                if net2.hold_while_paused(from, to, d.lives).await {
                    let _ = tx.send(answer);
                }
            });
            match rx.await {
                Ok(answer) => answer,
                // Lost on the way: the sender waits out its own timeout.
                Err(_) => std::future::pending().await,
            }
        })
    }
}

/// What the checks watch: every node's metrics and images as they change.
#[derive(Default)]
struct Observer {
    inner: Mutex<Observed>,
}

#[derive(Default)]
struct Observed {
    /// term -> the leader seen in it, and how it was seen.
    leaders: BTreeMap<u64, (i32, &'static str)>,
    /// The last term each node was seen in.
    terms: HashMap<i32, u64>,
    /// The image first seen at each offset, and on which node.
    images: BTreeMap<i64, (i32, Arc<MetadataImage>)>,
    /// The last (term, state) noted per node, for the trace.
    states: HashMap<i32, (u64, ServerState)>,
    violations: Vec<String>,
    trace: Vec<String>,
    /// The newest snapshot any node built or installed.
    snapshot: u64,
}

impl Observer {
    fn trace(&self, start: Instant, line: String) {
        let ms = start.elapsed().as_millis();
        self.inner.lock().trace.push(format!("{ms:>6} ms  {line}"));
    }

    fn note_metrics(&self, start: Instant, id: i32, m: &RaftMetrics<u64, RaftNode>) {
        let mut o = self.inner.lock();
        let o = &mut *o;
        let term = m.current_term;
        let ms = start.elapsed().as_millis();
        if let Err(e) = &m.running_state {
            if !matches!(e, Fatal::Stopped) {
                o.violations.push(format!("node {id} stopped with {e}"));
            }
        }
        let last = o.terms.insert(id, term).unwrap_or(0);
        if last > term {
            o.violations
                .push(format!("node {id}'s term went back from {last} to {term}"));
        }
        let mut claim = |leader: i32, how: &'static str| match o.leaders.get(&term) {
            Some((l, first)) if *l != leader => o.violations.push(format!(
                "two leaders in term {term}: {l} ({first}) and {leader} ({how}, on node {id})"
            )),
            Some(_) => {}
            None => {
                o.leaders.insert(term, (leader, how));
            }
        };
        if m.state == ServerState::Leader {
            claim(id, "leading");
        }
        if let Some(l) = m.current_leader {
            claim(l as i32, "named by a committed vote");
        }
        if o.states.insert(id, (term, m.state)) != Some((term, m.state)) {
            o.trace.push(format!(
                "{ms:>6} ms  node {id}: term {term} {:?} (leader {:?}, log end {:?}, applied {:?})",
                m.state,
                m.current_leader,
                m.last_log_index,
                m.last_applied.map(|l| l.index)
            ));
        }
        if let Some(s) = m.snapshot {
            o.snapshot = o.snapshot.max(s.index);
        }
    }

    fn note_image(&self, id: i32, image: &Arc<MetadataImage>) {
        let mut o = self.inner.lock();
        match o.images.get(&image.last_offset) {
            Some((other, seen)) if **seen != **image => {
                let other = *other;
                o.violations.push(format!(
                    "nodes {other} and {id} applied different images at offset {}",
                    image.last_offset
                ));
            }
            Some(_) => {}
            None => {
                o.images.insert(image.last_offset, (id, image.clone()));
            }
        }
    }
}

/// A running node and the tasks watching it.
struct Live {
    quorum: Arc<RaftQuorum>,
    watchers: Vec<JoinHandle<()>>,
}

/// The nodes of one seed.
struct Cluster {
    start: Instant,
    tuning: Tuning,
    voters: BTreeMap<i32, String>,
    dirs: BTreeMap<i32, TempDir>,
    net: Arc<SimNet>,
    live: Mutex<BTreeMap<i32, Live>>,
    obs: Arc<Observer>,
}

impl Cluster {
    fn quorum(&self, id: i32) -> Option<Arc<RaftQuorum>> {
        self.live.lock().get(&id).map(|l| l.quorum.clone())
    }

    fn running(&self) -> Vec<(i32, Arc<RaftQuorum>)> {
        let live = self.live.lock();
        live.iter().map(|(id, l)| (*id, l.quorum.clone())).collect()
    }

    fn paused(&self, id: i32) -> bool {
        self.net.links.lock().paused.contains(&id)
    }

    /// Opens node `id` from its directory (blocking) and starts watching it.
    async fn open(self: &Arc<Self>, id: i32) -> Result<(), String> {
        let config = RaftQuorumConfig {
            log_dir: self.dirs[&id].path().to_path_buf(),
            node_id: id,
            voters: self.voters.clone(),
            bootstrap: vec![],
            me: RaftNode::at(addr(id)),
            standalone: false,
            network: Arc::new(SimLink {
                from: id,
                net: self.net.clone(),
            }),
        };
        let tuning = self.tuning;
        let quorum = tokio::task::spawn_blocking(move || RaftQuorum::open_tuned(config, tuning))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("node {id} failed to open: {e}"))?;
        self.net.nodes.lock().insert(id, Arc::downgrade(&quorum));
        let (obs, start) = (self.obs.clone(), self.start);
        let mut metrics = quorum.raft.metrics();
        // The value before the first change is openraft's placeholder (term 0) from before it
        // read the disk: skipped.
        let metrics_watch = tokio::spawn(async move {
            while metrics.changed().await.is_ok() {
                obs.note_metrics(start, id, &metrics.borrow_and_update());
            }
        });
        let obs = self.obs.clone();
        let mut images = quorum.subscribe();
        let image_watch = tokio::spawn(async move {
            loop {
                let image = images.borrow_and_update().clone();
                obs.note_image(id, &image);
                if images.changed().await.is_err() {
                    return;
                }
            }
        });
        self.live.lock().insert(
            id,
            Live {
                quorum,
                watchers: vec![metrics_watch, image_watch],
            },
        );
        Ok(())
    }

    /// Shuts node `id` down (blocking): what it had flushed stays in its directory.
    async fn crash(&self, id: i32) -> Result<(), String> {
        let Some(live) = self.live.lock().remove(&id) else {
            return Ok(());
        };
        {
            self.net.nodes.lock().remove(&id);
            let mut links = self.net.links.lock();
            *links.incarnation.entry(id).or_default() += 1;
            links.paused.remove(&id);
        }
        for w in &live.watchers {
            w.abort();
        }
        let quorum = live.quorum;
        tokio::task::spawn_blocking(move || quorum.shutdown())
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("node {id} failed to shut down: {e}"))
    }

    /// The node that leads in the highest term among the running ones, if any.
    fn leader(&self) -> Option<i32> {
        self.running()
            .iter()
            .filter_map(|(id, q)| {
                let m = q.raft.metrics();
                let m = m.borrow();
                (m.state == ServerState::Leader).then_some((m.current_term, *id))
            })
            .max()
            .map(|(_, id)| id)
    }

    fn resolve(&self, who: Who) -> i32 {
        who.leader
            .then(|| self.leader())
            .flatten()
            .unwrap_or(who.node)
    }

    /// Strikes with `fault`; returns what was done (nodes resolved), and the fault that ends it
    /// with how many ms later it comes.
    async fn apply(
        self: &Arc<Self>,
        fault: &Fault,
    ) -> Result<(String, Option<(u64, Fault)>), String> {
        let ids: Vec<i32> = self.voters.keys().copied().collect();
        let mut done = format!("{fault:?}");
        let mut then = None;
        match fault {
            Fault::Partition { group, with_leader } => {
                let mut group = group.clone();
                if let Some(l) = with_leader.then(|| self.leader()).flatten() {
                    if !group.contains(&l) {
                        group[0] = l;
                    }
                }
                let mut links = self.net.links.lock();
                // A new partition, not one more cut on top of the others.
                links.blocked.clear();
                for a in &group {
                    for b in ids.iter().filter(|b| !group.contains(b)) {
                        links.blocked.insert((*a, *b));
                        links.blocked.insert((*b, *a));
                    }
                }
                done = format!("partition {group:?} from the rest");
            }
            Fault::OneWay { from, to } => {
                let from = self.resolve(*from);
                let to = if *to == from {
                    to % ids.len() as i32 + 1
                } else {
                    *to
                };
                self.net.links.lock().blocked.insert((from, to));
                done = format!("cut {from} -> {to}");
            }
            Fault::Isolate { node, inbound } => {
                let node = self.resolve(*node);
                let mut links = self.net.links.lock();
                for other in ids.iter().filter(|o| **o != node) {
                    let pair = if *inbound {
                        (*other, node)
                    } else {
                        (node, *other)
                    };
                    links.blocked.insert(pair);
                }
                let way = if *inbound { "to" } else { "from" };
                done = format!("cut everything {way} {node}");
            }
            Fault::HealLinks => self.net.links.lock().blocked.clear(),
            Fault::Loss(rate) => self.net.links.lock().loss = *rate,
            Fault::Pause { node, ms } => {
                let node = self.resolve(*node);
                done = format!("pause {node} for {ms} ms");
                if self.quorum(node).is_some() && self.net.links.lock().paused.insert(node) {
                    then = Some((*ms, Fault::Resume(node)));
                } else {
                    done += " (down or paused already)";
                }
            }
            Fault::Resume(id) => {
                self.net.links.lock().paused.remove(id);
            }
            Fault::Crash { node, ms } => {
                let node = self.resolve(*node);
                done = format!("crash {node} for {ms} ms");
                if self.quorum(node).is_some() {
                    self.crash(node).await?;
                    then = Some((*ms, Fault::Restart(node)));
                } else {
                    done += " (down already)";
                }
            }
            Fault::Restart(id) => {
                if self.quorum(*id).is_none() {
                    self.open(*id).await?;
                }
            }
        }
        Ok((done, then))
    }

    /// Every fault ends: links healed, nothing lost or delayed, every node up and running.
    async fn heal(self: &Arc<Self>) -> Result<(), String> {
        {
            let mut links = self.net.links.lock();
            links.blocked.clear();
            links.paused.clear();
            links.loss = 0;
            links.max_delay_ms = 0;
            links.dup = 0;
        }
        for id in self.voters.keys() {
            if self.quorum(*id).is_none() {
                self.open(*id).await?;
            }
        }
        Ok(())
    }

    /// The leader every running node names, once they all name the same running one.
    fn agreed_leader(&self) -> Option<i32> {
        let running = self.running();
        let first = running.first()?.1.leader_id()?;
        (running.len() == self.voters.len()
            && running.iter().all(|(_, q)| q.leader_id() == Some(first)))
        .then_some(first)
    }
}

/// The clients' proposals and what became of them.
#[derive(Default)]
struct Clients {
    /// Topic names in proposals the quorum acknowledged.
    acked: Mutex<Vec<String>>,
    /// Every topic name proposed.
    proposed: Mutex<HashSet<String>>,
    outstanding: AtomicUsize,
    refused: AtomicUsize,
    unknown: AtomicUsize,
}

fn topic(name: &str, n: u64) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: Uuid::from_u128(n as u128 + 1),
    }
}

/// Proposes one or two topics every few ms to the node believed to lead (now and then to any
/// running node), until `stop` is set.
async fn propose_loop(
    cluster: Arc<Cluster>,
    clients: Arc<Clients>,
    seed: u64,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut rng = Rng(seed ^ 0xc11e_0000_0000_0000);
    let mut n = 0u64;
    while !stop.load(AtOrd::Acquire) {
        tokio::time::sleep(every).await;
        if clients.outstanding.load(AtOrd::Acquire) >= 8 {
            continue;
        }
        let running: Vec<_> = cluster
            .running()
            .into_iter()
            .filter(|(id, _)| !cluster.paused(*id))
            .collect();
        if running.is_empty() {
            continue;
        }
        let (_, any) = &running[rng.below(running.len() as u64) as usize];
        let target = match any.leader_id() {
            Some(l) if rng.per_mille(800) => running.iter().find(|(id, _)| *id == l),
            _ => None,
        }
        .map_or(any, |(_, q)| q)
        .clone();
        let names: Vec<String> = (0..rng.range(1, 2)).map(|i| format!("p{n}-{i}")).collect();
        let records = names.iter().map(|name| topic(name, n)).collect();
        n += 1;
        clients.proposed.lock().extend(names.iter().cloned());
        clients.outstanding.fetch_add(1, AtOrd::AcqRel);
        let sent = target.propose(records);
        drop(target);
        let clients = clients.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(PROPOSE_TIMEOUT, sent).await {
                Ok(Ok(_)) => clients.acked.lock().extend(names),
                Ok(Err(_)) => {
                    clients.refused.fetch_add(1, AtOrd::Relaxed);
                }
                Err(_) => {
                    clients.unknown.fetch_add(1, AtOrd::Relaxed);
                }
            }
            clients.outstanding.fetch_sub(1, AtOrd::AcqRel);
        });
    }
}

/// Polls `ok` every 10 ms until it holds or `limit` passes.
async fn wait_until(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !ok() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// What one seed did.
#[derive(Debug, Default)]
struct SeedReport {
    acked: usize,
    refused: usize,
    unknown: usize,
    terms: u64,
    faults: usize,
    crashes: usize,
    snapshot: u64,
    sent: u64,
    lost: u64,
    took: Duration,
}

/// Runs one seed, start to checks; Err carries the first failure.
fn run_seed(seed: u64, trace: &Mutex<Vec<String>>) -> Result<SeedReport, String> {
    let scenario = Scenario::new(seed);
    trace.lock().push(format!(
        "seed {seed}: {} voters, loss {}‰, delay <= {} ms, dup {}‰, snapshot every {}, \
         faults {} for {} ms, a proposal every {} ms",
        scenario.voters,
        scenario.loss,
        scenario.max_delay_ms,
        scenario.dup,
        scenario.tuning.snapshot_every,
        if scenario.at_boot {
            "from the start"
        } else {
            "once led"
        },
        scenario.chaos_ms,
        scenario.propose_every_ms
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let cluster = Arc::new(Cluster {
        start: Instant::now(),
        tuning: scenario.tuning,
        voters: (1..=scenario.voters).map(|i| (i, addr(i))).collect(),
        dirs: (1..=scenario.voters)
            .map(|i| (i, tempfile::tempdir().expect("a temporary directory")))
            .collect(),
        net: Arc::new(SimNet::new(seed, &scenario)),
        live: Mutex::default(),
        obs: Arc::default(),
    });
    let result = rt.block_on(drive(seed, &scenario, &cluster));
    // Whatever happened, every node stops.
    let stopped = rt.block_on(async {
        let mut errors = Vec::new();
        for id in cluster.voters.keys() {
            if let Err(e) = cluster.crash(*id).await {
                errors.push(e);
            }
        }
        errors
    });
    let obs = cluster.obs.inner.lock();
    trace.lock().extend(obs.trace.iter().cloned());
    let mut report = result?;
    if let Some(e) = stopped.first() {
        return Err(e.clone());
    }
    if let Some(v) = obs.violations.first() {
        return Err(format!("{v} ({} violations)", obs.violations.len()));
    }
    report.terms = obs.terms.values().copied().max().unwrap_or(0);
    report.snapshot = obs.snapshot;
    report.took = cluster.start.elapsed();
    Ok(report)
}

/// The faults, then the healed cluster's checks.
async fn drive(
    seed: u64,
    scenario: &Scenario,
    cluster: &Arc<Cluster>,
) -> Result<SeedReport, String> {
    for id in cluster.voters.keys() {
        cluster.open(*id).await?;
    }
    let clients = Arc::new(Clients::default());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proposer = tokio::spawn(propose_loop(
        cluster.clone(),
        clients.clone(),
        seed,
        Duration::from_millis(scenario.propose_every_ms),
        stop.clone(),
    ));
    if !scenario.at_boot && !wait_until(HEAL_TIMEOUT, || cluster.agreed_leader().is_some()).await {
        return Err("no leader elected at the start".into());
    }
    let start = tokio::time::Instant::now();
    cluster.obs.trace(cluster.start, "faults start".into());
    let mut crashes = 0;
    // (ms from `start`, sequence) -> fault: the schedule, and the ends of pauses and crashes.
    let mut queue: BTreeMap<(u64, usize), Fault> = scenario
        .schedule
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, (at, f))| ((at, i), f))
        .collect();
    let mut seq = queue.len();
    while let Some(((at, _), fault)) = queue.pop_first() {
        if at >= scenario.chaos_ms {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_millis(at)).await;
        let (done, then) = cluster.apply(&fault).await?;
        crashes += (matches!(fault, Fault::Crash { .. }) && then.is_some()) as usize;
        cluster.obs.trace(cluster.start, done);
        if let Some((after, end)) = then {
            queue.insert((at + after, seq), end);
            seq += 1;
        }
    }
    tokio::time::sleep_until(start + Duration::from_millis(scenario.chaos_ms)).await;
    stop.store(true, AtOrd::Release);
    let _ = proposer.await;
    cluster.obs.trace(cluster.start, "healed".into());
    cluster.heal().await?;
    if !wait_until(PROPOSE_TIMEOUT * 2, || {
        clients.outstanding.load(AtOrd::Acquire) == 0
    })
    .await
    {
        return Err("proposals outstanding past their timeout".into());
    }

    // Progress: a leader, and a fresh proposal commits.
    let healed = Instant::now();
    let mut committed = None;
    while committed.is_none() {
        if healed.elapsed() > HEAL_TIMEOUT {
            return Err(format!(
                "healed, yet no fresh proposal committed within {HEAL_TIMEOUT:?} (leader: {:?})",
                cluster.agreed_leader()
            ));
        }
        let Some(leader) = cluster.agreed_leader().and_then(|l| cluster.quorum(l)) else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let sent = leader.propose(vec![topic("fresh", u64::MAX - 1)]);
        drop(leader);
        match tokio::time::timeout(PROPOSE_TIMEOUT, sent).await {
            Ok(Ok(image)) => committed = Some(image),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let fresh = committed.expect("committed");
    cluster.obs.trace(
        cluster.start,
        format!("fresh proposal committed at {}", fresh.last_offset),
    );

    // Every node applies it; the images and logs agree.
    let running = cluster.running();
    let caught_up = wait_until(HEAL_TIMEOUT, || {
        running
            .iter()
            .all(|(_, q)| q.image().last_offset >= fresh.last_offset)
    })
    .await;
    if !caught_up {
        let ends: Vec<_> = running
            .iter()
            .map(|(id, q)| (*id, q.image().last_offset))
            .collect();
        return Err(format!(
            "not every node applied offset {} after healing: {ends:?}",
            fresh.last_offset
        ));
    }
    let images: Vec<_> = running.iter().map(|(id, q)| (*id, q.image())).collect();
    let (first_id, first) = &images[0];
    for (id, image) in &images[1..] {
        if image != first {
            return Err(format!(
                "healed nodes {first_id} and {id} hold different images at offsets {} and {}",
                first.last_offset, image.last_offset
            ));
        }
    }
    compare_logs(&running, fresh.last_offset as u64).await?;
    let missing: Vec<_> = clients
        .acked
        .lock()
        .iter()
        .filter(|name| first.topic(name).is_none())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{} acknowledged topics lost, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    let proposed = clients.proposed.lock();
    if let Some(phantom) = first
        .topics
        .keys()
        .find(|name| *name != "fresh" && !proposed.contains(*name))
    {
        return Err(format!("topic {phantom} was never proposed"));
    }
    let acked = clients.acked.lock().len();
    Ok(SeedReport {
        acked,
        refused: clients.refused.load(AtOrd::Relaxed),
        unknown: clients.unknown.load(AtOrd::Relaxed),
        faults: scenario.schedule.len(),
        crashes,
        sent: cluster.net.sent.load(AtOrd::Relaxed),
        lost: cluster.net.lost.load(AtOrd::Relaxed),
        ..SeedReport::default()
    })
}

/// Each node's log entries up to `committed` agree with every other's wherever both still hold
/// them (snapshots purge the start), and follow one another index by index in rising terms.
async fn compare_logs(running: &[(i32, Arc<RaftQuorum>)], committed: u64) -> Result<(), String> {
    let mut logs: Vec<(i32, BTreeMap<u64, String>)> = Vec::new();
    for (id, q) in running {
        let mut reader = q.log.clone();
        let entries = reader
            .try_get_log_entries(0..=committed)
            .await
            .map_err(|e| format!("node {id}: reading its log: {e}"))?;
        let mut by_index = BTreeMap::new();
        let mut last: Option<LogId<u64>> = None;
        for e in entries {
            if let Some(prev) = last {
                if e.log_id.index != prev.index + 1 || e.log_id.leader_id < prev.leader_id {
                    return Err(format!("node {id}: entry {} follows {prev}", e.log_id));
                }
            }
            last = Some(e.log_id);
            let json = serde_json::to_string(&e).map_err(|e| e.to_string())?;
            by_index.insert(e.log_id.index, json);
        }
        // A node that installed a snapshot past `committed` may hold none of these entries.
        let start = q.log.log_start_offset();
        if last.map(|l| l.index) != Some(committed) && !(last.is_none() && start > committed as i64)
        {
            return Err(format!(
                "node {id}: its log (from {start}) ends at {last:?}, not at the committed index \
                 {committed}"
            ));
        }
        logs.push((*id, by_index));
    }
    for (i, (a, log_a)) in logs.iter().enumerate() {
        for (b, log_b) in &logs[i + 1..] {
            for (index, entry) in log_a {
                if log_b.get(index).is_some_and(|other| other != entry) {
                    return Err(format!(
                        "nodes {a} and {b} hold different entries at index {index}"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

#[test]
fn the_quorum_keeps_its_promises_under_random_faults() {
    let one = env_u64("RUNNEL_QUORUM_SIM_SEED");
    let verbose = one.is_some() || std::env::var("RUNNEL_QUORUM_SIM_VERBOSE").is_ok();
    let seeds: Vec<u64> = match one {
        Some(seed) => vec![seed],
        None => {
            let base = env_u64("RUNNEL_QUORUM_SIM_SEED_BASE").unwrap_or(0);
            let count = env_u64("RUNNEL_QUORUM_SIM_SEEDS").unwrap_or(CI_SEEDS);
            (base..base + count).collect()
        }
    };
    let jobs = env_u64("RUNNEL_QUORUM_SIM_JOBS").map_or(CI_JOBS, |j| j.max(1) as usize);
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(seeds.len()) {
            s.spawn(|| loop {
                let Some(&seed) = seeds.get(next.fetch_add(1, AtOrd::Relaxed)) else {
                    return;
                };
                let trace = Mutex::new(Vec::new());
                let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_seed(seed, &trace)
                }))
                .unwrap_or_else(|p| {
                    Err(p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into()))
                });
                match &outcome {
                    Ok(r) if verbose => eprintln!(
                        "seed {seed}: ok in {:.1?}: {} acked, {} refused, {} unknown, term {}, \
                         {} faults ({} crashes), snapshot at {}, {} messages ({} lost)",
                        r.took,
                        r.acked,
                        r.refused,
                        r.unknown,
                        r.terms,
                        r.faults,
                        r.crashes,
                        r.snapshot,
                        r.sent,
                        r.lost
                    ),
                    Ok(_) => {}
                    Err(e) => eprintln!(
                        "---- seed {seed} failed: {e}\n{}\n---- replay: RUNNEL_QUORUM_SIM_SEED={seed} \
                         cargo test -p runnel-metadata sim_tests -- --nocapture",
                        trace.lock().join("\n")
                    ),
                }
                if one.is_some() && outcome.is_ok() {
                    eprintln!("{}", trace.lock().join("\n"));
                }
                results.lock().push((seed, outcome));
            });
        }
    });
    let results = results.into_inner();
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(seed, r)| r.as_ref().err().map(|e| (*seed, e.clone())))
        .collect();
    let ok: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    eprintln!(
        "quorum simulation: {} seeds in {:.1?} ({jobs} at once): {} failed; {} proposals \
         acknowledged, {} refused, {} unknown; highest term {}; {} crashes",
        results.len(),
        started.elapsed(),
        failed.len(),
        ok.iter().map(|r| r.acked).sum::<usize>(),
        ok.iter().map(|r| r.refused).sum::<usize>(),
        ok.iter().map(|r| r.unknown).sum::<usize>(),
        ok.iter().map(|r| r.terms).max().unwrap_or(0),
        ok.iter().map(|r| r.crashes).sum::<usize>(),
    );
    assert!(failed.is_empty(), "failed seeds: {failed:?}");
}
