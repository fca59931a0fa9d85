//! The metadata log replicated by openraft among the controllers: [`RaftQuorum`] implements
//! [`MetadataQuorum`] on its own tokio runtime (thread `metadata-quorum`), over the log store in
//! `store`, the image state machine in `state`, and a pluggable [`RaftTransport`]; `status`
//! builds what DescribeQuorum reports, `members` the quorum's membership (learners that follow
//! the log without voting, KIP-853 voter changes).

mod election_guard;
mod legacy;
mod members;
mod network;
mod state;
mod status;
mod store;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Cursor;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::{Config, Raft, SnapshotPolicy};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};

pub use members::{Endpoint, MembershipChange, RaftNode};
pub use network::{NoTransport, RaftRpcKind, RaftTransport};

use crate::image::MetadataImage;
use crate::log::METADATA_LOG_DIR;
use crate::quorum::{BoxFuture, MetadataQuorum, QuorumError, QuorumStatus};
use crate::records::MetadataRecord;
use network::Network;
use state::{empty_image, StateMachine};
use status::FollowerContacts;
use store::LogStore;

openraft::declare_raft_types!(
    /// openraft's types for the metadata log: an entry is a list of records applied atomically.
    pub(crate) TypeConfig:
        D = Vec<MetadataRecord>,
        R = (),
        NodeId = u64,
        Node = RaftNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
        Responder = openraft::impls::OneshotResponder<TypeConfig>,
);

/// How long a blocking call waits for the quorum (a proposal without a quorum fails then).
const BLOCKING_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `open` waits for a single voter (or a converting one) to lead.
const LEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a membership change passed on to the leader may take (AddRaftVoter waits for the
/// new voter to catch up, then for two membership entries to commit).
const MEMBERSHIP_FORWARD_TIMEOUT: Duration = Duration::from_secs(90);

/// What [`RaftQuorum::open`] needs.
#[derive(Clone)]
pub struct RaftQuorumConfig {
    /// The broker's first log dir; the log lives in `<log_dir>/__cluster_metadata-0/`.
    pub log_dir: PathBuf,
    /// This node's id.
    pub node_id: i32,
    /// A static quorum's voters (`controller.quorum.voters`, or this node alone for a cluster of
    /// one): node id -> `host:port` of its controller listener. A node among them is a voter
    /// from the start; any other node joins as a learner. Empty: a dynamic quorum (KIP-853),
    /// whose voters are in the log.
    pub voters: BTreeMap<i32, String>,
    /// Where a node that is not a static voter finds the quorum to join: `host:port` of
    /// controller listeners (`controller.quorum.bootstrap.servers`, or the static voters').
    pub bootstrap: Vec<String>,
    /// This node as the others reach and describe it (its address, directory id, and its
    /// controller endpoints if it is a controller).
    pub me: RaftNode,
    /// A dynamic quorum only: on a pristine log, this node starts the quorum as its only voter
    /// (what Kafka's `kafka-storage format --standalone` does); otherwise it joins as a learner
    /// and waits for AddRaftVoter.
    pub standalone: bool,
    /// How requests reach the other nodes.
    pub network: Arc<dyn RaftTransport>,
}

/// The metadata quorum as an openraft node.
pub struct RaftQuorum {
    node_id: i32,
    raft: Raft<TypeConfig>,
    handle: Handle,
    images: Arc<watch::Sender<Arc<MetadataImage>>>,
    log: LogStore,
    /// Whether the voters may change (a dynamic quorum).
    dynamic: bool,
    /// Where membership changes are passed on to the leader.
    transport: Arc<dyn RaftTransport>,
    /// This leader removed itself as a voter and waits for a voter to take over: it takes no
    /// writes meanwhile.
    handing_over: Arc<AtomicBool>,
    /// What this node hears from followers while it leads (for DescribeQuorum).
    contacts: Arc<FollowerContacts>,
    stopped: AtomicBool,
    /// Stops the runtime thread, and the thread to join.
    thread: Mutex<Option<(oneshot::Sender<()>, std::thread::JoinHandle<()>)>>,
    thread_id: ThreadId,
}

fn storage(e: impl ToString) -> QuorumError {
    QuorumError::Storage(e.to_string())
}

/// How fast raft's clocks run and how often it snapshots. A node runs [`Tuning::NORMAL`]; the
/// quorum simulation (`sim_tests`) speeds the clocks up and snapshots often, so that a seed sees
/// many elections and snapshot installs in a few seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// Every raft timing (heartbeat, election window) is divided by this.
    pub(crate) time_divisor: u64,
    /// A snapshot is taken after this many entries.
    pub(crate) snapshot_every: u64,
    /// How many entries behind a snapshot stay in the log.
    pub(crate) keep_behind_snapshot: u64,
}

impl Tuning {
    /// What a broker runs.
    pub(crate) const NORMAL: Tuning = Tuning {
        time_divisor: 1,
        snapshot_every: 1000,
        keep_behind_snapshot: 100,
    };
}

/// Raft timings: a lone voter elects itself at once; voters on separate processes (often on a
/// loaded machine) get timeouts long enough that a busy moment does not depose a live leader.
/// Each voter's election window is shifted by its rank among the voters: openraft waits out the
/// leader lease (the window's upper end) before electing, so followers that heard the last
/// heartbeat together would otherwise stand together and split the vote, again and again.
fn raft_config(voters: usize, rank: usize, tuning: Tuning) -> Result<Config, QuorumError> {
    let (heartbeat, election_min, election_max) = if voters <= 1 {
        (50, 150, 300)
    } else {
        let min = 1500 + 600 * rank as u64;
        (500, min, min + 500)
    };
    let scaled = |ms: u64| (ms / tuning.time_divisor.max(1)).max(1);
    Config {
        cluster_name: "runnel-metadata".into(),
        heartbeat_interval: scaled(heartbeat),
        election_timeout_min: scaled(election_min),
        election_timeout_max: scaled(election_max),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_every),
        max_in_snapshot_log_to_keep: tuning.keep_behind_snapshot,
        snapshot_max_chunk_size: 1024 * 1024,
        ..Config::default()
    }
    .validate()
    .map_err(storage)
}

/// The leader as this node knows it. A leader that removed itself from the voters keeps its
/// vote (and openraft names it as the leader) after stepping down until it hears from the new
/// leader: it knows no leader meanwhile.
pub(crate) fn known_leader(m: &openraft::RaftMetrics<u64, RaftNode>, me: u64) -> Option<u64> {
    match m.current_leader {
        Some(l) if l == me && m.state != openraft::ServerState::Leader => None,
        other => other,
    }
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, RaftNode>>) -> QuorumError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => QuorumError::NotLeader {
            leader: f.leader_id.map(|id| id as i32),
        },
        RaftError::Fatal(Fatal::Stopped) => QuorumError::Stopped,
        other => storage(other),
    }
}

/// Commits `records` as one entry and returns the image that includes it (the state machine
/// publishes it before openraft answers the write).
async fn write(
    raft: Raft<TypeConfig>,
    images: Arc<watch::Sender<Arc<MetadataImage>>>,
    records: Vec<MetadataRecord>,
) -> Result<Arc<MetadataImage>, QuorumError> {
    let resp = raft.client_write(records).await.map_err(write_error)?;
    let image = images.borrow().clone();
    debug_assert!(image.last_offset >= resp.log_id.index as i64);
    Ok(image)
}

/// Answers one request from another voter with the serialized `Result` of the local raft.
async fn serve_rpc(
    raft: Raft<TypeConfig>,
    kind: RaftRpcKind,
    body: Vec<u8>,
) -> Result<Vec<u8>, QuorumError> {
    fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, QuorumError> {
        serde_json::from_slice(body)
            .map_err(|e| QuorumError::Storage(format!("malformed raft request: {e}")))
    }
    let out = match kind {
        RaftRpcKind::AppendEntries => serde_json::to_vec(&raft.append_entries(parse(&body)?).await),
        RaftRpcKind::Vote => serde_json::to_vec(&raft.vote(parse(&body)?).await),
        RaftRpcKind::InstallSnapshot => {
            serde_json::to_vec(&raft.install_snapshot(parse(&body)?).await)
        }
        // Answered by `handle_rpc` without openraft.
        RaftRpcKind::Describe | RaftRpcKind::Membership => {
            return Err(storage("not a raft message"))
        }
    };
    out.map_err(storage)
}

/// Applies a membership change here if this node leads, else passes it on to the leader once.
async fn serve_membership(
    raft: Raft<TypeConfig>,
    transport: Arc<dyn RaftTransport>,
    me: u64,
    dynamic: bool,
    handing_over: Arc<AtomicBool>,
    rpc: members::MembershipRpc,
) -> Result<(), QuorumError> {
    let (leader, addr) = {
        let m = raft.metrics();
        let m = m.borrow();
        let leader = known_leader(&m, me);
        let addr = leader.and_then(|l| {
            m.membership_config
                .membership()
                .get_node(&l)
                .map(|n| n.addr.clone())
        });
        (leader, addr)
    };
    if leader == Some(me) {
        return members::apply(&raft, me, dynamic, &handing_over, rpc.change).await;
    }
    let not_leader = QuorumError::NotLeader {
        leader: leader.map(|l| l as i32),
    };
    let (Some(leader), Some(addr), false) = (leader, addr, rpc.forwarded) else {
        return Err(not_leader);
    };
    let body = serde_json::to_vec(&members::MembershipRpc {
        forwarded: true,
        ..rpc
    })
    .map_err(storage)?;
    let sent = transport.send(leader as i32, &addr, RaftRpcKind::Membership, body);
    match tokio::time::timeout(MEMBERSHIP_FORWARD_TIMEOUT, sent).await {
        Ok(Ok(bytes)) => serde_json::from_slice::<Result<(), QuorumError>>(&bytes)
            .map_err(|e| storage(format!("malformed membership answer: {e}")))?,
        Ok(Err(e)) => {
            tracing::debug!(leader, %addr, error = %e, "membership change: leader unreachable");
            Err(QuorumError::NotLeader { leader: None })
        }
        Err(_) => Err(QuorumError::Timeout),
    }
}

impl RaftQuorum {
    /// Opens the metadata log under `config.log_dir` and starts the quorum on its own runtime.
    /// Blocking. In a static quorum a pristine node with the smallest voter id initializes the
    /// membership; with a single voter this returns once the node leads and has applied its
    /// log, otherwise once started. A pristine standalone node of a dynamic quorum initializes
    /// it with itself as the only voter. Every other node (not a static voter) asks the quorum
    /// to take it in as a learner, in the background, until it is answered. A pre-raft
    /// metadata log found there is converted first.
    pub fn open(config: RaftQuorumConfig) -> Result<Arc<RaftQuorum>, QuorumError> {
        RaftQuorum::open_tuned(config, Tuning::NORMAL)
    }

    /// [`RaftQuorum::open`] with raft's clocks and snapshots set by `tuning`.
    pub(crate) fn open_tuned(
        config: RaftQuorumConfig,
        tuning: Tuning,
    ) -> Result<Arc<RaftQuorum>, QuorumError> {
        let RaftQuorumConfig {
            log_dir,
            node_id,
            voters,
            bootstrap,
            me,
            standalone,
            network,
        } = config;
        if node_id < 0 || voters.keys().any(|id| *id < 0) {
            return Err(storage(format!(
                "node {node_id} and the voters {:?} need ids >= 0",
                voters.keys().collect::<Vec<_>>()
            )));
        }
        let static_voter = voters.contains_key(&node_id);
        let initializer = static_voter && voters.keys().next() == Some(&node_id);
        let legacy = legacy::take_legacy(&log_dir, initializer).map_err(storage)?;

        let dir = log_dir.join(METADATA_LOG_DIR);
        let images = Arc::new(watch::channel(Arc::new(empty_image())).0);
        let log = LogStore::open(&dir).map_err(storage)?;
        let sm = StateMachine::open(&dir, images.clone()).map_err(storage)?;
        let pristine = log.is_pristine() && !sm.has_snapshot();
        // What a start-up costs: the newest snapshot, then the entries after it (the log is
        // purged behind snapshots, so this is bounded whatever the history).
        let (log_start, log_end) = log.bounds();
        tracing::info!(
            snapshot_index = sm.last_applied().map_or(-1, |l| l.index as i64),
            log_start,
            log_end,
            "metadata log opened"
        );
        // Static or dynamic is fixed when the log is first written; the configuration only
        // decides it for a pristine log.
        if pristine && voters.is_empty() {
            log.set_dynamic().map_err(storage)?;
        }
        let dynamic = log.is_dynamic();
        if !pristine && dynamic != voters.is_empty() {
            tracing::warn!(
                dynamic,
                "the metadata log belongs to a {} quorum, but this node was started with {}: \
                 the voters are those in the log",
                if dynamic { "dynamic" } else { "static" },
                if voters.is_empty() {
                    "controller.quorum.bootstrap.servers"
                } else {
                    "controller.quorum.voters"
                }
            );
        }
        let raft_config = Arc::new(if static_voter {
            let rank = voters.keys().position(|id| *id == node_id).unwrap_or(0);
            raft_config(voters.len(), rank, tuning)?
        } else {
            // Voters of a dynamic quorum are many in the end (however many there are now):
            // timings for several processes, staggered by the node's place among the
            // bootstrap servers.
            let rank = bootstrap.iter().position(|a| *a == me.addr).unwrap_or(0);
            raft_config(3, rank, tuning)?
        });

        let guard_period = Duration::from_millis(raft_config.heartbeat_interval);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let id = node_id as u64;
        let contacts = Arc::new(FollowerContacts::default());
        let net = Network {
            id,
            transport: network.clone(),
            contacts: contacts.clone(),
        };
        let store = log.clone();
        let thread = std::thread::Builder::new()
            .name("metadata-quorum".into())
            .spawn(move || {
                // Two workers: raft messages to and from the other voters keep moving while one
                // worker waits on the metadata log's fsync.
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("metadata-quorum-worker")
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                rt.block_on(async move {
                    match Raft::new(id, raft_config, net, store, sm).await {
                        Ok(raft) => {
                            let _ = ready_tx.send(Ok((Handle::current(), raft)));
                            let _ = stop_rx.await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                        }
                    }
                });
            })
            .map_err(storage)?;
        let (handle, raft) = match ready_rx.recv() {
            Ok(Ok(started)) => started,
            failed => {
                let _ = thread.join();
                let _ = log.close();
                return Err(match failed {
                    Ok(Err(e)) => storage(e),
                    _ => QuorumError::Stopped,
                });
            }
        };
        let quorum = Arc::new(RaftQuorum {
            node_id,
            raft,
            handle,
            images,
            log,
            dynamic,
            transport: network,
            handing_over: Arc::default(),
            contacts,
            stopped: AtomicBool::new(false),
            thread_id: thread.thread().id(),
            thread: Mutex::new(Some((stop_tx, thread))),
        });
        quorum.spawn_leader_log();
        if !(static_voter && voters.len() == 1) {
            // A static lone voter never has anyone to campaign against.
            quorum.handle.spawn(election_guard::run(
                quorum.raft.clone(),
                quorum.transport.clone(),
                id,
                guard_period,
            ));
        }
        let init = if static_voter {
            (pristine && initializer).then(|| {
                voters
                    .iter()
                    .map(|(id, addr)| (*id as u64, RaftNode::at(addr.clone())))
                    .collect()
            })
        } else if pristine && dynamic && standalone {
            Some(BTreeMap::from([(id, me.clone())]))
        } else {
            None
        };
        let initialized = init.is_some();
        let lone_voter = static_voter && voters.len() == 1;
        if let Err(e) = quorum.start(init, lone_voter, legacy, &log_dir) {
            let _ = quorum.shutdown();
            return Err(e);
        }
        if !static_voter && !initialized {
            // A learner, or a voter of a dynamic quorum: asks to be taken in (or tells the
            // leader its current address and directory id) until answered.
            quorum.handle.spawn(members::join_loop(
                quorum.transport.clone(),
                bootstrap,
                node_id,
                me,
            ));
        }
        Ok(quorum)
    }

    /// Initializes the membership with `init` if given, waits for leadership where `open` must
    /// (a lone static voter, a conversion), and commits a converted pre-raft image.
    fn start(
        &self,
        init: Option<BTreeMap<u64, RaftNode>>,
        lone_voter: bool,
        legacy: Option<MetadataImage>,
        log_dir: &std::path::Path,
    ) -> Result<(), QuorumError> {
        let id = self.node_id as u64;
        if let Some(members) = init {
            let raft = self.raft.clone();
            self.run(async move { raft.initialize(members).await })?
                .map_err(|e| storage(format!("initializing the metadata quorum: {e}")))?;
        }
        if lone_voter || legacy.is_some() {
            let raft = self.raft.clone();
            self.run(async move {
                raft.wait(Some(LEAD_TIMEOUT))
                    .metrics(|m| m.current_leader == Some(id), "this node leads")
                    .await
                    .map_err(storage)?;
                // Leadership confirmed and everything committed applied.
                raft.ensure_linearizable().await.map_err(storage)?;
                Ok::<_, QuorumError>(())
            })??;
        }
        if let Some(image) = legacy {
            let records = image.to_records();
            if !records.is_empty() {
                self.propose_blocking(records)?;
            }
            legacy::finish(log_dir).map_err(storage)?;
            tracing::info!("metadata log: pre-raft log converted");
        }
        Ok(())
    }

    /// Logs every change of leader, and keeps the log end the follower contacts compare with
    /// current.
    fn spawn_leader_log(&self) {
        let mut metrics = self.raft.metrics();
        let me = self.node_id;
        let contacts = self.contacts.clone();
        self.handle.spawn(async move {
            let mut last = None;
            loop {
                let (leader, term) = {
                    let m = metrics.borrow_and_update();
                    contacts.set_log_end(m.last_log_index.map_or(0, |i| i + 1));
                    (m.current_leader, m.current_term)
                };
                if leader != last {
                    if let Some(leader) = leader {
                        tracing::info!(node = me, leader, term, "metadata quorum leader elected");
                    }
                    last = leader;
                }
                if metrics.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    /// Runs `fut` on the quorum runtime and waits for it from this (any other) thread.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, QuorumError> {
        if std::thread::current().id() == self.thread_id {
            return Err(storage("a blocking quorum call on the quorum's own thread"));
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv_timeout(BLOCKING_TIMEOUT).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => QuorumError::Timeout,
            std::sync::mpsc::RecvTimeoutError::Disconnected => QuorumError::Stopped,
        })
    }

    /// Serves a request another voter sent through its [`RaftTransport`]: `body` is what that
    /// transport was given, and the bytes returned are its response. Runs on the quorum runtime.
    /// A [`RaftRpcKind::Describe`] query is answered with the JSON of this node's
    /// [`MetadataQuorum::describe`] result (an error included), from any node.
    pub fn handle_rpc(
        &self,
        kind: RaftRpcKind,
        body: &[u8],
    ) -> BoxFuture<'static, Result<Vec<u8>, QuorumError>> {
        if self.stopped.load(Ordering::Acquire) {
            return Box::pin(async { Err(QuorumError::Stopped) });
        }
        if kind == RaftRpcKind::Describe {
            let answer = serde_json::to_vec(&self.describe()).map_err(storage);
            return Box::pin(async move { answer });
        }
        if kind == RaftRpcKind::Membership {
            let rpc: members::MembershipRpc = match serde_json::from_slice(body) {
                Ok(rpc) => rpc,
                Err(e) => {
                    let e = storage(format!("malformed membership request: {e}"));
                    return Box::pin(async move { Err(e) });
                }
            };
            let fut = serve_membership(
                self.raft.clone(),
                self.transport.clone(),
                self.node_id as u64,
                self.dynamic,
                self.handing_over.clone(),
                rpc,
            );
            let task = self
                .handle
                .spawn(async move { serde_json::to_vec(&fut.await).map_err(storage) });
            return Box::pin(async move { task.await.map_err(|_| QuorumError::Stopped)? });
        }
        let task = self
            .handle
            .spawn(serve_rpc(self.raft.clone(), kind, body.to_vec()));
        Box::pin(async move { task.await.map_err(|_| QuorumError::Stopped)? })
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// Applies a membership change (AddRaftVoter, RemoveRaftVoter, a join) on the leader: here
    /// if this node leads, else passed on to the leader it knows. Resolves once committed.
    pub fn change_membership(
        &self,
        change: MembershipChange,
    ) -> BoxFuture<'static, Result<(), QuorumError>> {
        if self.stopped.load(Ordering::Acquire) {
            return Box::pin(async { Err(QuorumError::Stopped) });
        }
        let fut = serve_membership(
            self.raft.clone(),
            self.transport.clone(),
            self.node_id as u64,
            self.dynamic,
            self.handing_over.clone(),
            members::MembershipRpc {
                change,
                forwarded: false,
            },
        );
        let task = self.handle.spawn(fut);
        Box::pin(async move { task.await.map_err(|_| QuorumError::Stopped)? })
    }

    /// Whether the quorum's voters may change (a dynamic quorum, Kafka's `kraft.version` 1).
    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The quorum's members as this node's log has them: (node id, node, is a voter), in id
    /// order.
    pub fn members(&self) -> Vec<(i32, RaftNode, bool)> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| (*id as i32, node.clone(), voters.contains(id)))
            .collect()
    }

    /// `host:port` where raft messages reach member `id`, if it is one.
    pub fn member_address(&self, id: i32) -> Option<String> {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        let membership = m.membership_config.membership();
        membership.get_node(&(id as u64)).map(|n| n.addr.clone())
    }

    /// The metadata log's start offset: entries before it were purged behind a snapshot.
    #[cfg(test)]
    fn log_start_offset(&self) -> i64 {
        self.log.log_start_offset()
    }
}

impl MetadataQuorum for RaftQuorum {
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<Arc<MetadataImage>, QuorumError>> {
        if self.stopped.load(Ordering::Acquire) {
            return Box::pin(async { Err(QuorumError::Stopped) });
        }
        if records.is_empty() {
            let image = self.image();
            return Box::pin(async move { Ok(image) });
        }
        if self.handing_over.load(Ordering::Acquire) {
            return Box::pin(async { Err(QuorumError::NotLeader { leader: None }) });
        }
        let (tx, rx) = oneshot::channel();
        let fut = write(self.raft.clone(), self.images.clone(), records);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        Box::pin(async move { rx.await.unwrap_or(Err(QuorumError::Stopped)) })
    }

    fn propose_blocking(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Arc<MetadataImage>, QuorumError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(QuorumError::Stopped);
        }
        if records.is_empty() {
            return Ok(self.image());
        }
        if self.handing_over.load(Ordering::Acquire) {
            return Err(QuorumError::NotLeader { leader: None });
        }
        self.run(write(self.raft.clone(), self.images.clone(), records))?
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    fn leader_id(&self) -> Option<i32> {
        if self.stopped.load(Ordering::Acquire) || self.handing_over.load(Ordering::Acquire) {
            return None;
        }
        known_leader(&self.raft.metrics().borrow(), self.node_id as u64).map(|id| id as i32)
    }

    fn describe(&self) -> Result<QuorumStatus, QuorumError> {
        if self.stopped.load(Ordering::Acquire) {
            return Err(QuorumError::Stopped);
        }
        let metrics = self.raft.metrics().borrow().clone();
        status::describe(self.node_id as u64, &metrics, &self.contacts)
    }

    fn shutdown(&self) -> Result<(), QuorumError> {
        if self.stopped.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let raft = self.raft.clone();
        let stopped = self.run(async move { raft.shutdown().await });
        if let Some((stop, thread)) = self.thread.lock().take() {
            let _ = stop.send(());
            if std::thread::current().id() != self.thread_id {
                let _ = thread.join();
            }
        }
        self.log.close().map_err(storage)?;
        match stopped {
            Ok(Err(e)) => Err(storage(format!("stopping raft: {e}"))),
            _ => Ok(()),
        }
    }
}

impl Drop for RaftQuorum {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
