//! Request dispatch: one file per Kafka API. The dispatcher checks the API key and version
//! against the served table, parses the header, checks every length in the body before the
//! `kafka-protocol` decoder allocates anything, decodes, calls the handler and encodes the
//! response with the right header version.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;
use runnel_protocol::frame::{
    api_versions_fallback, encode_response_kind, parse_request_head, peek_prefix,
};
use runnel_protocol::versions::{check, VersionCheck};

use runnel_metadata::MetadataImage;

use crate::broker::Broker;

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod add_raft_voter;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod remove_raft_voter;
pub mod sasl;
pub mod scram_credentials;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod unregister_broker;
pub mod update_features;
pub mod write_txn_markers;

/// What the connection should do after a request.
pub enum Outcome {
    /// Write these bytes (a whole response frame).
    Respond(Bytes),
    /// Write these parts in order (a whole response frame whose records stay in the log's
    /// files: a Fetch response).
    RespondParts(Vec<Part>),
    /// Send nothing (acks=0 produce).
    NoResponse,
    /// The answer comes later (a Produce waiting for fsyncs or the ISR, its batches already
    /// appended): the connection runs this on its own task and may read and handle the next
    /// requests meanwhile, writing every answer in request order.
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send + 'static>>),
    /// Close the connection, for the logged reason.
    Close(&'static str),
    /// A client over its quota (KIP-219): write the response, if any, then read nothing more
    /// from the connection until `until`.
    Throttled {
        /// The response frame (None for acks=0 produce).
        response: Option<Bytes>,
        /// When the connection may read again.
        until: tokio::time::Instant,
    },
}

/// A piece of a response frame: bytes, or a byte range of a log segment file sent as it is.
#[derive(Debug)]
pub enum Part {
    /// Encoded bytes.
    Bytes(Bytes),
    /// `len` bytes of `file` from `pos`.
    File {
        /// The segment file (kept open: a deleted segment still reads).
        file: Arc<std::fs::File>,
        /// Where the range starts.
        pos: u64,
        /// How long it is.
        len: usize,
    },
}

impl Part {
    /// The part's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::File { len, .. } => *len,
        }
    }

    /// An empty part.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Per-request context handed to handlers.
pub struct RequestContext {
    /// The broker.
    pub broker: Arc<Broker>,
    /// Name of the listener the request arrived on.
    pub listener: String,
    /// API version of the request.
    pub api_version: i16,
    /// Client id from the header.
    pub client_id: Option<String>,
    /// The client's address as Kafka prints it ("/ip").
    pub client_host: String,
    /// The principal the connection is authenticated as.
    pub principal: Arc<crate::security::KafkaPrincipal>,
}

impl RequestContext {
    /// The advertised (host, port) for this request's listener.
    pub fn advertised(&self) -> (String, i32) {
        let cfg = &self.broker.config;
        let l = cfg
            .advertised_listeners
            .iter()
            .find(|l| l.name == self.listener)
            .or_else(|| cfg.advertised_listeners.first());
        match l {
            Some(l) => (l.host.clone(), l.port as i32),
            None => ("localhost".to_string(), 9092),
        }
    }
}

/// A broker as clients see it through one listener.
pub struct LiveBroker {
    /// Node id.
    pub id: i32,
    /// Advertised host of the listener.
    pub host: String,
    /// Advertised port of the listener.
    pub port: i32,
    /// Rack, if any.
    pub rack: Option<String>,
}

impl RequestContext {
    /// The unfenced brokers that have an endpoint for this request's listener, in id order
    /// (this node alone, at its advertised address, before it has registered).
    pub fn live_brokers(&self, image: &MetadataImage) -> Vec<LiveBroker> {
        let live: Vec<LiveBroker> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let e = b.endpoint(&self.listener).or_else(|| b.endpoints.first())?;
                Some(LiveBroker {
                    id: b.id,
                    host: e.host.clone(),
                    port: e.port as i32,
                    rack: b.rack.clone(),
                })
            })
            .collect();
        if !live.is_empty() {
            return live;
        }
        let (host, port) = self.advertised();
        vec![LiveBroker {
            id: self.broker.config.node_id,
            host,
            port,
            rack: self.broker.config.cluster.rack.clone(),
        }]
    }

    /// The controller id clients are told: the active controller when it is a live broker,
    /// else a live broker (this one if it is), as Kafka names a live broker in KRaft mode;
    /// any broker forwards admin requests to the active controller. -1 with none live.
    pub fn controller_id(&self, image: &MetadataImage) -> i32 {
        let node = self.broker.config.node_id;
        match self.broker.controller_id() {
            Some(id) if is_live(image, id) => id,
            _ if is_live(image, node) => node,
            _ => image
                .brokers
                .values()
                .find(|b| !b.fenced)
                .map_or(-1, |b| b.id),
        }
    }
}

/// Whether a broker may serve as a partition's leader or replica now: registered, unfenced.
pub fn is_live(image: &MetadataImage, id: i32) -> bool {
    image.brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// Shorthand for building a protocol string.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Serves one of Runnel's own requests between nodes (raft messages, forwarded controller
/// requests, start-up hellos), accepted on controller listeners only.
async fn internode(
    broker: &Arc<Broker>,
    listener: &str,
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
    frame: Bytes,
) -> Outcome {
    use crate::internode::{encode_response, FORWARD_API_KEY, HELLO_API_KEY, RAFT_API_KEY};
    let cluster = &broker.config.cluster;
    let on_controller_listener = cluster.controller
        && cluster
            .controller_listener_names
            .iter()
            .any(|n| n == listener);
    // A broker-only node follows the metadata log as a learner: the leader's AppendEntries and
    // InstallSnapshot reach it on its inter-broker listener (it has no controller listener).
    let to_learner = !cluster.controller
        && api_key == RAFT_API_KEY
        && listener == cluster.inter_broker_listener_name
        && matches!(
            u8::try_from(api_version)
                .ok()
                .and_then(runnel_metadata::RaftRpcKind::from_code),
            Some(runnel_metadata::RaftRpcKind::AppendEntries)
                | Some(runnel_metadata::RaftRpcKind::InstallSnapshot)
        );
    if !on_controller_listener && !to_learner {
        return Outcome::Close(
            "inter-node request on a listener that is not a controller listener",
        );
    }
    let Ok(head) = parse_request_head(&frame, 1) else {
        return Outcome::Close("malformed request header");
    };
    let body = frame.slice(head.header_len..);
    let reply = match api_key {
        RAFT_API_KEY => match broker.raft_rpc(api_version, &body).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!(error = %e, "raft message refused");
                return Outcome::Close("raft message refused");
            }
        },
        FORWARD_API_KEY => {
            let b = broker.clone();
            match tokio::task::spawn_blocking(move || crate::controller::serve_forwarded(&b, &body))
                .await
            {
                Ok(bytes) => bytes,
                Err(_) => return Outcome::Close("forwarded controller request failed"),
            }
        }
        HELLO_API_KEY => match crate::identity::answer(broker, &body) {
            Some(bytes) => bytes,
            None => return Outcome::Close("malformed hello"),
        },
        _ => return Outcome::Close("unknown API key"),
    };
    Outcome::Respond(encode_response(correlation_id, &reply))
}

/// Decodes and handles one request frame, timing how long it runs (the request quota).
pub async fn dispatch(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    frame: Bytes,
) -> Outcome {
    crate::security::quota::throttle::timed(dispatch_timed(broker, session, frame)).await
}

/// The encoded response frame, or a close when it cannot be encoded.
fn respond(api_key: ApiKey, api_version: i16, correlation_id: i32, resp: &ResponseKind) -> Outcome {
    match encode_response_kind(api_key, api_version, correlation_id, resp) {
        Ok(b) => Outcome::Respond(b),
        Err(e) => {
            tracing::error!(?api_key, api_version, error = %e, "response encoding failed");
            Outcome::Close("response encoding failed")
        }
    }
}

/// [`dispatch`], inside the timing.
async fn dispatch_timed(
    broker: &Arc<Broker>,
    session: &crate::security::Session,
    frame: Bytes,
) -> Outcome {
    let (listener, peer) = (session.listener.as_str(), session.peer);
    let Ok((api_key_raw, api_version, correlation_id)) = peek_prefix(&frame) else {
        return Outcome::Close("request shorter than a header");
    };
    if crate::internode::is_internode_key(api_key_raw) {
        if !crate::security::acl::internode_allowed(broker, session) {
            return Outcome::Close("inter-node request without CLUSTER_ACTION on the cluster");
        }
        return internode(
            broker,
            listener,
            api_key_raw,
            api_version,
            correlation_id,
            frame,
        )
        .await;
    }
    match check(api_key_raw, api_version) {
        VersionCheck::Served => {}
        VersionCheck::Unsupported if api_key_raw == ApiKey::ApiVersions as i16 => {
            return Outcome::Respond(api_versions_fallback(correlation_id));
        }
        VersionCheck::Unsupported => return Outcome::Close("unsupported API version"),
        VersionCheck::UnknownApi => return Outcome::Close("unknown API key"),
    }
    let Ok(api_key) = ApiKey::try_from(api_key_raw) else {
        return Outcome::Close("unknown API key");
    };
    let header_version = api_key.request_header_version(api_version);
    let head = match parse_request_head(&frame, header_version) {
        Ok(h) => h,
        Err(_) => return Outcome::Close("malformed request header"),
    };
    let mut body = frame.slice(head.header_len..);
    if runnel_protocol::validate::check_request_body(api_key_raw, api_version, &body).is_err() {
        return Outcome::Close("malformed request body (lengths)");
    }
    let request = match RequestKind::decode(api_key, &mut body, api_version) {
        Ok(r) => r,
        Err(_) => return Outcome::Close("malformed request body"),
    };
    let ctx = RequestContext {
        broker: broker.clone(),
        listener: listener.to_string(),
        api_version,
        client_id: head.client_id,
        client_host: format!("/{}", peer.ip()),
        principal: session.principal.clone(),
    };
    let facts = crate::security::quota::throttle::RequestFacts::of(api_version, &request);
    let mut response: Option<ResponseKind> = match request {
        RequestKind::ApiVersions(r) => Some(api_versions::handle(&ctx, r).into()),
        RequestKind::SaslHandshake(_) => Some(sasl::handshake_out_of_place().into()),
        RequestKind::SaslAuthenticate(_) => Some(sasl::authenticate_out_of_place().into()),
        RequestKind::DescribeUserScramCredentials(r) => {
            Some(scram_credentials::describe(&ctx, r).into())
        }
        RequestKind::AlterUserScramCredentials(r) => Some(scram_credentials::alter(&ctx, r).into()),
        RequestKind::Metadata(r) => Some(metadata::handle(&ctx, r).into()),
        RequestKind::Produce(r) => {
            let pending = produce::append_all(&ctx, r);
            // Without client quotas (which weigh the handling time and answer throttled), an
            // answer that waits for fsyncs or the ISR is finished apart from the connection,
            // which goes on reading and appending its next requests meanwhile.
            if !pending.is_ready()
                && !crate::security::quota::QuotaManagers::any(&ctx.broker.image())
            {
                return Outcome::Later(Box::pin(async move {
                    match pending.finish(&ctx).await {
                        None => Outcome::NoResponse,
                        Some(resp) => respond(api_key, api_version, correlation_id, &resp.into()),
                    }
                }));
            }
            pending.finish(&ctx).await.map(Into::into)
        }
        RequestKind::Fetch(r) => {
            // Without client quotas (which weigh and may empty the response) the records stay
            // in the files until the connection sends them.
            let defer = !crate::security::quota::QuotaManagers::any(&ctx.broker.image());
            let (resp, plans) = fetch::handle(&ctx, r, defer).await;
            if defer {
                return match fetch::encode::encode(api_version, correlation_id, resp, plans) {
                    Ok(parts) => Outcome::RespondParts(parts),
                    Err(e) => {
                        tracing::error!(api_version, error = %e, "fetch response encoding failed");
                        Outcome::Close("response encoding failed")
                    }
                };
            }
            Some(resp.into())
        }
        RequestKind::ListOffsets(r) => Some(list_offsets::handle(&ctx, r).into()),
        RequestKind::CreateTopics(r) => Some(create_topics::handle(&ctx, r).into()),
        RequestKind::DeleteTopics(r) => Some(delete_topics::handle(&ctx, r).into()),
        RequestKind::CreatePartitions(r) => Some(create_partitions::handle(&ctx, r).into()),
        RequestKind::DeleteRecords(r) => Some(delete_records::handle(&ctx, r).into()),
        RequestKind::InitProducerId(r) => Some(init_producer_id::handle(&ctx, r).await.into()),
        RequestKind::OffsetForLeaderEpoch(r) => {
            Some(offset_for_leader_epoch::handle(&ctx, r).into())
        }
        RequestKind::DescribeAcls(r) => Some(describe_acls::handle(&ctx, r).into()),
        RequestKind::CreateAcls(r) => Some(create_acls::handle(&ctx, r).into()),
        RequestKind::DeleteAcls(r) => Some(delete_acls::handle(&ctx, r).into()),
        RequestKind::DescribeConfigs(r) => Some(describe_configs::handle(&ctx, r).into()),
        RequestKind::AlterConfigs(r) => Some(alter_configs::handle(&ctx, r).into()),
        RequestKind::IncrementalAlterConfigs(r) => {
            Some(incremental_alter_configs::handle(&ctx, r).into())
        }
        RequestKind::DescribeCluster(r) => Some(describe_cluster::handle(&ctx, r).into()),
        RequestKind::FindCoordinator(r) => Some(find_coordinator::handle(&ctx, r).into()),
        RequestKind::JoinGroup(r) => Some(join_group::handle(&ctx, r).await.into()),
        RequestKind::SyncGroup(r) => Some(sync_group::handle(&ctx, r).await.into()),
        RequestKind::Heartbeat(r) => Some(heartbeat::handle(&ctx, r).into()),
        RequestKind::LeaveGroup(r) => Some(leave_group::handle(&ctx, r).into()),
        RequestKind::OffsetCommit(r) => Some(offset_commit::handle(&ctx, r).await.into()),
        RequestKind::OffsetFetch(r) => Some(offset_fetch::handle(&ctx, r).into()),
        RequestKind::OffsetDelete(r) => Some(offset_delete::handle(&ctx, r).await.into()),
        RequestKind::ListGroups(r) => Some(list_groups::handle(&ctx, r).into()),
        RequestKind::DescribeGroups(r) => Some(describe_groups::handle(&ctx, r).into()),
        RequestKind::DeleteGroups(r) => Some(delete_groups::handle(&ctx, r).await.into()),
        RequestKind::AddPartitionsToTxn(r) => {
            Some(add_partitions_to_txn::handle(&ctx, r).await.into())
        }
        RequestKind::AddOffsetsToTxn(r) => Some(add_offsets_to_txn::handle(&ctx, r).await.into()),
        RequestKind::EndTxn(r) => Some(end_txn::handle(&ctx, r).await.into()),
        RequestKind::TxnOffsetCommit(r) => Some(txn_offset_commit::handle(&ctx, r).await.into()),
        RequestKind::WriteTxnMarkers(r) => Some(write_txn_markers::handle(&ctx, r).await.into()),
        RequestKind::DescribeTransactions(r) => Some(describe_transactions::handle(&ctx, r).into()),
        RequestKind::ListTransactions(r) => Some(list_transactions::handle(&ctx, r).into()),
        RequestKind::DescribeProducers(r) => Some(describe_producers::handle(&ctx, r).into()),
        RequestKind::ConsumerGroupHeartbeat(r) => {
            Some(consumer_group_heartbeat::handle(&ctx, r).await.into())
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            Some(consumer_group_describe::handle(&ctx, r).into())
        }
        RequestKind::DescribeQuorum(r) => Some(describe_quorum::handle(&ctx, r).await.into()),
        RequestKind::AddRaftVoter(r) => Some(add_raft_voter::handle(&ctx, r).await.into()),
        RequestKind::RemoveRaftVoter(r) => Some(remove_raft_voter::handle(&ctx, r).await.into()),
        RequestKind::DescribeTopicPartitions(r) => {
            Some(describe_topic_partitions::handle(&ctx, r).into())
        }
        RequestKind::DescribeLogDirs(r) => Some(describe_log_dirs::handle(&ctx, r).into()),
        RequestKind::AlterReplicaLogDirs(r) => Some(alter_replica_log_dirs::handle(&ctx, r).into()),
        RequestKind::UpdateFeatures(r) => Some(update_features::handle(&ctx, r).into()),
        RequestKind::ElectLeaders(r) => Some(elect_leaders::handle(&ctx, r).into()),
        RequestKind::AlterPartitionReassignments(r) => {
            Some(alter_partition_reassignments::handle(&ctx, r).into())
        }
        RequestKind::ListPartitionReassignments(r) => {
            Some(list_partition_reassignments::handle(&ctx, r).into())
        }
        RequestKind::UnregisterBroker(r) => Some(unregister_broker::handle(&ctx, r).await.into()),
        RequestKind::DescribeClientQuotas(r) => {
            Some(describe_client_quotas::handle(&ctx, r).into())
        }
        RequestKind::AlterClientQuotas(r) => Some(alter_client_quotas::handle(&ctx, r).into()),
        _ => return Outcome::Close("API not served"),
    };
    let throttle_ms =
        crate::security::quota::throttle::throttle(&ctx, &facts, frame.len(), &mut response);
    let outcome = match response {
        None => Outcome::NoResponse,
        Some(resp) => respond(api_key, api_version, correlation_id, &resp),
    };
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(throttle_ms);
    match outcome {
        Outcome::Respond(b) if throttle_ms > 0 => Outcome::Throttled {
            response: Some(b),
            until,
        },
        Outcome::NoResponse if throttle_ms > 0 => Outcome::Throttled {
            response: None,
            until,
        },
        other => other,
    }
}
