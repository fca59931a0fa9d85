//! The quorum's transport seam: [`RaftTransport`] carries openraft's requests (as JSON bytes) to
//! other voters, and [`Network`] adapts it to openraft's `RaftNetworkFactory`/`RaftNetwork`,
//! noting each AppendEntries answer for DescribeQuorum (`status`). The same transport carries
//! a quorum-status query (`RaftRpcKind::Describe`) and membership changes
//! (`RaftRpcKind::Membership`) to the leader.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{RPCTypes, RaftNetwork, RaftNetworkFactory};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::members::RaftNode;
use super::status::{now_ms, FollowerContacts};
use super::TypeConfig;
use crate::quorum::BoxFuture;

/// Which raft request a message body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RaftRpcKind {
    /// AppendEntries: log replication and heartbeats from the leader.
    AppendEntries,
    /// Vote: a candidate asking for a vote.
    Vote,
    /// InstallSnapshot: one chunk of a snapshot from the leader.
    InstallSnapshot,
    /// Not a raft message: asks a voter for the quorum status it knows as leader (an empty body;
    /// the answer is the JSON of `Result<QuorumStatus, QuorumError>`). What a node that does
    /// not lead sends the leader for DescribeQuorum.
    Describe,
    /// Not a raft message: a change of the quorum's membership (JSON of a membership request:
    /// a node joining as a learner, AddRaftVoter, RemoveRaftVoter), applied by the leader; a
    /// node that does not lead passes it on to the leader once. The answer is the JSON of
    /// `Result<(), QuorumError>`.
    Membership,
}

impl RaftRpcKind {
    /// A one-byte code for carrying the kind on a wire.
    pub fn code(self) -> u8 {
        match self {
            RaftRpcKind::AppendEntries => 0,
            RaftRpcKind::Vote => 1,
            RaftRpcKind::InstallSnapshot => 2,
            RaftRpcKind::Describe => 3,
            RaftRpcKind::Membership => 4,
        }
    }

    /// The kind of a wire code, if it is one.
    pub fn from_code(code: u8) -> Option<RaftRpcKind> {
        match code {
            0 => Some(RaftRpcKind::AppendEntries),
            1 => Some(RaftRpcKind::Vote),
            2 => Some(RaftRpcKind::InstallSnapshot),
            3 => Some(RaftRpcKind::Describe),
            4 => Some(RaftRpcKind::Membership),
            _ => None,
        }
    }
}

/// Carries a request to another voter and brings its response back. The body is opaque: the
/// receiving node passes it to [`super::RaftQuorum::handle_rpc`] with the same kind, and the
/// bytes that returns are the response. The returned future is polled on the quorum's runtime
/// (tokio, with I/O and timers enabled); it is dropped when openraft's timeout runs out.
pub trait RaftTransport: Send + Sync + 'static {
    /// Sends `body` of `kind` to node `target` at `addr` (a controller's controller listener, a
    /// learner's inter-broker listener; a bootstrap server, whose id is not known, gets a
    /// negative `target`).
    fn send(
        &self,
        target: i32,
        addr: &str,
        kind: RaftRpcKind,
        body: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>>;
}

/// A transport that reaches nobody: for a quorum with a single voter.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoTransport;

impl RaftTransport for NoTransport {
    fn send(
        &self,
        target: i32,
        _addr: &str,
        _kind: RaftRpcKind,
        _body: Vec<u8>,
    ) -> BoxFuture<'static, io::Result<Vec<u8>>> {
        Box::pin(async move {
            Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("no transport to reach voter {target}"),
            ))
        })
    }
}

/// openraft's network factory over a [`RaftTransport`].
pub(crate) struct Network {
    /// This node's raft id.
    pub(crate) id: u64,
    /// The transport requests go through.
    pub(crate) transport: Arc<dyn RaftTransport>,
    /// Where AppendEntries answers are noted.
    pub(crate) contacts: Arc<FollowerContacts>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: u64, node: &RaftNode) -> Peer {
        Peer {
            id: self.id,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            contacts: self.contacts.clone(),
        }
    }
}

/// openraft's connection to one voter.
pub(crate) struct Peer {
    id: u64,
    target: u64,
    addr: String,
    transport: Arc<dyn RaftTransport>,
    contacts: Arc<FollowerContacts>,
}

type RpcResult<T, E> = Result<T, RPCError<u64, RaftNode, RaftError<u64, E>>>;

impl Peer {
    /// Sends one request and decodes the `Result` the remote raft answered with.
    async fn call<Req, Resp, E>(
        &self,
        kind: RaftRpcKind,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let send = self
            .transport
            .send(self.target as i32, &self.addr, kind, body);
        let bytes = match tokio::time::timeout(option.hard_ttl(), send).await {
            Err(_) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout: option.hard_ttl(),
                }))
            }
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(Ok(bytes)) => bytes,
        };
        let answer: Result<Resp, RaftError<u64, E>> =
            serde_json::from_slice(&bytes).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<u64>, Infallible> {
        // What the follower holds after a success: the last entry sent, or the one before them.
        let sent_end = rpc
            .entries
            .last()
            .map(|e| e.log_id.index + 1)
            .or(rpc.prev_log_id.map(|l| l.index + 1))
            .unwrap_or(0);
        let (term, sent_ms, leader_end) =
            (rpc.vote.leader_id().term, now_ms(), self.contacts.log_end());
        let answer = self
            .call(
                RaftRpcKind::AppendEntries,
                RPCTypes::AppendEntries,
                &rpc,
                &option,
            )
            .await;
        let follower_end = match &answer {
            Ok(AppendEntriesResponse::Success) => Some(sent_end),
            Ok(AppendEntriesResponse::PartialSuccess(matched)) => {
                Some(matched.map_or(0, |l| l.index + 1))
            }
            _ => None,
        };
        if let Some(follower_end) = follower_end {
            self.contacts
                .record(self.target, term, sent_ms, leader_end, follower_end);
        }
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(
            RaftRpcKind::InstallSnapshot,
            RPCTypes::InstallSnapshot,
            &rpc,
            &option,
        )
        .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<u64>, Infallible> {
        self.call(RaftRpcKind::Vote, RPCTypes::Vote, &rpc, &option)
            .await
    }

    /// Retries an unreachable voter well within an election timeout, so that a voter coming
    /// back hears from the leader before it starts an election of its own.
    fn backoff(&self) -> Backoff {
        Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }
}
