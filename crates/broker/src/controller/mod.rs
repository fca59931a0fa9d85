//! The controller: validates admin changes (topics, partitions, configs), broker registrations
//! and heartbeats, and turns them into metadata records, its only output. It never touches
//! partitions or coordinators: each node publishes committed images to its replica manager and
//! coordinators. The active controller is the metadata quorum's leader; a request made on any
//! other node is forwarded to it ([`submit`]) and answered once the node's own image has caught
//! up with the change. Requests are executed one at a time, as by Kafka's controller thread.

pub mod acls;
pub mod balance;
pub mod configs;
pub mod election;
pub mod elr;
pub mod features;
pub mod lifecycle;
pub mod placement;
pub mod quotas;
pub mod reassign;
pub mod scram;
pub mod topics;

pub use configs::set_broker_configs;
pub use reassign::alter_reassignments;
pub use topics::{
    create_partitions, create_topic, delete_topic, is_internal_topic, set_topic_configs,
    validate_topic_configs, validate_topic_name, CreatedTopic,
};
use topics::{
    exec_create_partitions, exec_create_topic, exec_delete_topic, exec_set_topic_configs,
};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use runnel_config::TopicConfig;
use runnel_metadata::records::RESOURCE_TOPIC;
use runnel_metadata::{MetadataRecord, PartitionImage};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::broker::Broker;

/// A refused change: a Kafka error and a message.
#[derive(Debug, Clone)]
pub struct ControllerError {
    /// The Kafka error.
    pub error: ResponseError,
    /// A human-readable message.
    pub message: String,
}

impl ControllerError {
    /// Builds an error.
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        ControllerError {
            error,
            message: message.into(),
        }
    }
}

/// Commits records through the metadata quorum; the broker applies the resulting image to the
/// hosted partitions and coordinators before this returns.
fn propose(broker: &Broker, records: Vec<MetadataRecord>) -> Result<(), ControllerError> {
    broker.propose(records).map(|_| ()).map_err(|e| match e {
        runnel_metadata::QuorumError::NotLeader { .. } => {
            ControllerError::new(ResponseError::NotController, e.to_string())
        }
        runnel_metadata::QuorumError::Timeout => {
            ControllerError::new(ResponseError::RequestTimedOut, e.to_string())
        }
        _ => ControllerError::new(ResponseError::UnknownServerError, e.to_string()),
    })
}

/// A request to the active controller: what the admin APIs, the producer-id allocator and
/// the broker lifecycle ask of it. Serialized when forwarded to the controller on another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics, one topic.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Partition count, or -1 for the default.
        num_partitions: i32,
        /// Replication factor, or -1 for the default.
        replication_factor: i16,
        /// Explicit (partition, replicas) assignments.
        assignments: Vec<(i32, Vec<i32>)>,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Only validate.
        validate_only: bool,
    },
    /// DeleteTopics, one topic.
    DeleteTopic {
        /// Topic name.
        name: String,
    },
    /// CreatePartitions, one topic.
    CreatePartitions {
        /// Topic name.
        name: String,
        /// The new partition count.
        count: i32,
        /// Replicas of each new partition, if given.
        assignments: Option<Vec<Vec<i32>>>,
        /// Only validate.
        validate_only: bool,
    },
    /// AlterConfigs / IncrementalAlterConfigs on a topic: the complete new set of overrides.
    SetTopicConfigs {
        /// Topic name.
        name: String,
        /// Every override the topic will have.
        configs: BTreeMap<String, String>,
        /// Only validate.
        validate_only: bool,
    },
    /// A block of producer ids for a broker's transaction coordinator and idempotent producers.
    AllocateProducerIds {
        /// Size of the block.
        count: i64,
    },
    /// Writes the cluster id when the metadata log has none yet (the first proposal wins).
    InitCluster {
        /// The cluster id proposed.
        cluster_id: String,
    },
    /// AlterPartition: a leader changes its partition's ISR.
    AlterPartition {
        /// Topic id.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// The leader asking.
        leader: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The partition epoch the change was computed from.
        partition_epoch: i32,
        /// The new ISR.
        isr: Vec<i32>,
    },
    /// A broker (re)registers at start-up.
    RegisterBroker(lifecycle::Registration),
    /// A registered broker's heartbeat.
    BrokerHeartbeat(lifecycle::Heartbeat),
    /// UpdateFeatures: finalized feature levels to set, all or none.
    UpdateFeatures {
        /// The changes asked for.
        updates: Vec<features::FeatureUpdate>,
        /// Only validate.
        validate_only: bool,
    },
    /// ElectLeaders: an election of the given type for each partition listed, or for every
    /// partition when `None`.
    ElectLeaders {
        /// Preferred or unclean.
        kind: election::ElectionType,
        /// (topic, partitions) asked for; `None` for all.
        partitions: Option<Vec<(String, Vec<i32>)>>,
    },
    /// AlterPartitionReassignments: for each (topic, partitions), the target replicas of a
    /// partition, or `None` to cancel its reassignment; all changes commit together.
    AlterReassignments {
        /// The changes asked for, by topic.
        changes: reassign::Reassignments,
        /// Whether a target may have another replication factor (v1's flag; v0: yes).
        allow_rf_change: bool,
    },
    /// IncrementalAlterConfigs / AlterConfigs on a broker (`name` its id, "" the cluster
    /// default): its dynamic overrides as they should be after the change.
    SetBrokerConfigs {
        /// Broker id, or "" for the cluster-wide default.
        name: String,
        /// The overrides.
        configs: BTreeMap<String, String>,
        /// Only validate.
        validate_only: bool,
    },
    /// CreateAcls: the bindings to create.
    CreateAcls {
        /// The ACLs, in request order.
        acls: Vec<runnel_metadata::AclEntry>,
    },
    /// DeleteAcls: the filters whose matches are deleted.
    DeleteAcls {
        /// The filters, in request order.
        filters: Vec<crate::security::acl::filter::AclFilter>,
    },
    /// UnregisterBroker: forgets a broker's registration (a decommissioned broker).
    UnregisterBroker {
        /// Node id.
        broker_id: i32,
    },
    /// AlterUserScramCredentials: credentials set and deleted, committed together (deletions
    /// of credentials that do not exist are refused one by one).
    AlterScramCredentials {
        /// The changes, in request order.
        changes: Vec<scram::ScramChange>,
    },
    /// AlterClientQuotas: every entity's changes, committed together.
    AlterClientQuotas {
        /// The changes, one per entity.
        alterations: Vec<quotas::QuotaAlteration>,
        /// Only validate.
        validate_only: bool,
    },
}

/// ElectLeaders' (or AlterPartitionReassignments') outcome for one partition: Kafka's error
/// code (0: done) and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionElection {
    /// Partition index.
    pub partition: i32,
    /// Error code.
    pub error_code: i16,
    /// Error message (none on success).
    pub message: Option<String>,
}

/// What a successful request produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControllerOk {
    /// Offset of the metadata log the change was committed at (the node that asked waits until
    /// its own image has it).
    pub offset: i64,
    /// Id of a created or deleted topic.
    pub topic_id: Option<Uuid>,
    /// Partition count of a created topic.
    pub num_partitions: i32,
    /// Replication factor of a created topic.
    pub replication_factor: i16,
    /// First id of an allocated producer-id block, or the broker epoch of a registration.
    pub value: i64,
    /// Whether a heartbeating broker is (still) fenced.
    pub fenced: bool,
    /// Kafka's `should_shut_down`: a broker in controlled shutdown may stop (it leads nothing
    /// and every other live broker has heartbeaten with metadata that says so).
    #[serde(default)]
    pub should_shut_down: bool,
    /// CreateAcls' or DeleteAcls' results, one per creation or filter.
    #[serde(default)]
    pub acls: Vec<acls::AclResult>,
    /// ElectLeaders' or AlterPartitionReassignments' results, by topic.
    #[serde(default)]
    pub elections: Vec<(String, Vec<PartitionElection>)>,
    /// AlterClientQuotas' results, one per entity.
    #[serde(default)]
    pub quota_results: Vec<quotas::QuotaResult>,
    /// AlterUserScramCredentials' refusals: (user, error code, message).
    #[serde(default)]
    pub scram_errors: Vec<(String, i16, String)>,
}

/// A reply as it crosses the wire: the result, with the error as (code, message).
#[derive(Debug, Serialize, Deserialize)]
struct WireReply(Result<ControllerOk, (i16, String)>);

/// The controller's state on this node: what only the active controller uses (the lock that
/// makes requests run one at a time, broker session deadlines), the connection it forwards
/// requests through when another node is active, and whether this broker asked to shut down.
#[derive(Default)]
pub struct Controller {
    lock: Mutex<()>,
    /// The last heartbeat of each broker, as seen by this node while it is the active controller.
    pub(crate) sessions: Mutex<HashMap<i32, Instant>>,
    /// The metadata offset each broker's last heartbeat reported (active controller only).
    pub(crate) metadata_offsets: Mutex<HashMap<i32, i64>>,
    /// The offset of each controlled shutdown's fencing, by broker (active controller only).
    pub(crate) shutdown_offsets: Mutex<HashMap<i32, i64>>,
    forward: crate::internode::BlockingNodeClient,
    /// This broker has begun a controlled shutdown: every heartbeat from now on asks to shut
    /// down, so that it is never unfenced again before it restarts.
    pub(crate) shutdown_requested: std::sync::atomic::AtomicBool,
}

impl Controller {
    /// A controller whose requests to the active controller are secured as `security` says
    /// (TLS when the controller listener is an SSL one, SASL when it is a SASL one).
    pub fn secured(security: runnel_client::security::Security) -> Controller {
        Controller {
            forward: crate::internode::BlockingNodeClient::secured(security),
            ..Default::default()
        }
    }
}

/// How long a forwarded request waits for the active controller (including leader changes).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a request on the active controller, here or on the node that leads the quorum, and
/// returns once this node's image includes the change.
pub fn submit(broker: &Broker, req: ControllerRequest) -> Result<ControllerOk, ControllerError> {
    submit_until(broker, req, Instant::now() + FORWARD_TIMEOUT)
}

/// [`submit`], giving up looking for an active controller (and waiting for this node's image)
/// at `deadline`.
pub fn submit_until(
    broker: &Broker,
    req: ControllerRequest,
    deadline: Instant,
) -> Result<ControllerOk, ControllerError> {
    crate::internode::blocking(|| submit_now(broker, req, deadline))
}

fn submit_now(
    broker: &Broker,
    req: ControllerRequest,
    deadline: Instant,
) -> Result<ControllerOk, ControllerError> {
    loop {
        let leader = broker.controller_id();
        let result = if leader == Some(broker.config.node_id) {
            execute(broker, req.clone())
        } else if let Some(addr) = leader.and_then(|id| broker.voter_address(id)) {
            forward(broker, leader.unwrap_or(-1), &addr, &req)
        } else {
            Err(ControllerError::new(
                ResponseError::NotController,
                "no active controller is known yet",
            ))
        };
        match result {
            Err(e)
                if e.error == ResponseError::NotController
                    && Instant::now() < deadline
                    && !broker.is_shutting_down() =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
            Ok(ok) => {
                broker.wait_for_metadata(ok.offset, deadline);
                return Ok(ok);
            }
        }
    }
}

/// Sends a request to the active controller on another node.
fn forward(
    broker: &Broker,
    target: i32,
    addr: &str,
    req: &ControllerRequest,
) -> Result<ControllerOk, ControllerError> {
    let body = serde_json::to_vec(req).expect("controller requests serialize");
    let not_controller = |e: String| ControllerError::new(ResponseError::NotController, e);
    // A heartbeat is due again after one interval: one not answered by then is given up (and
    // sent again, to whichever node leads by then), so that a broker whose controller was cut
    // off reaches the new one within its session instead of waiting out a long read timeout.
    let timeout = match req {
        ControllerRequest::BrokerHeartbeat(_) => {
            Duration::from_millis(broker.config.cluster.broker_heartbeat_interval_ms.max(100) as u64)
        }
        _ => crate::internode::BLOCKING_CALL_TIMEOUT,
    };
    let bytes = broker
        .controller
        .forward
        .call_within(
            target,
            addr,
            crate::internode::FORWARD_API_KEY,
            0,
            &body,
            timeout,
        )
        .map_err(|e| not_controller(format!("controller {target} at {addr}: {e}")))?;
    let WireReply(result) = serde_json::from_slice(&bytes)
        .map_err(|e| not_controller(format!("malformed reply from controller {target}: {e}")))?;
    result.map_err(|(code, message)| {
        ControllerError::new(
            ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            message,
        )
    })
}

/// Serves a request forwarded by another node (blocking: call it off the async workers).
pub fn serve_forwarded(broker: &Broker, body: &[u8]) -> Vec<u8> {
    let reply = match serde_json::from_slice::<ControllerRequest>(body) {
        Ok(req) => execute(broker, req),
        Err(e) => Err(ControllerError::new(
            ResponseError::InvalidRequest,
            format!("malformed controller request: {e}"),
        )),
    };
    let wire = WireReply(reply.map_err(|e| (e.error.code(), e.message)));
    serde_json::to_vec(&wire).expect("controller replies serialize")
}

/// Executes a request on this node, which must be the active controller. Requests run one at a
/// time, each deciding from the newest image.
fn execute(broker: &Broker, req: ControllerRequest) -> Result<ControllerOk, ControllerError> {
    let _one_at_a_time = broker.controller.lock.lock();
    if broker.controller_id() != Some(broker.config.node_id) {
        return Err(ControllerError::new(
            ResponseError::NotController,
            "this node is not the active controller",
        ));
    }
    let mut ok = ControllerOk::default();
    match req {
        ControllerRequest::CreateTopic {
            name,
            num_partitions,
            replication_factor,
            assignments,
            configs,
            validate_only,
        } => {
            let created = exec_create_topic(
                broker,
                &name,
                num_partitions,
                replication_factor,
                &assignments,
                configs,
                validate_only,
            )?;
            ok.topic_id = Some(created.topic_id);
            ok.num_partitions = created.num_partitions;
            ok.replication_factor = created.replication_factor;
        }
        ControllerRequest::DeleteTopic { name } => {
            ok.topic_id = Some(exec_delete_topic(broker, &name)?);
        }
        ControllerRequest::CreatePartitions {
            name,
            count,
            assignments,
            validate_only,
        } => exec_create_partitions(broker, &name, count, assignments.as_deref(), validate_only)?,
        ControllerRequest::SetTopicConfigs {
            name,
            configs,
            validate_only,
        } => exec_set_topic_configs(broker, &name, configs, validate_only)?,
        ControllerRequest::AllocateProducerIds { count } => {
            let first = broker.image().next_producer_id;
            propose(
                broker,
                vec![MetadataRecord::ProducerIds {
                    next_producer_id: first + count.max(1),
                }],
            )?;
            ok.value = first;
        }
        ControllerRequest::InitCluster { cluster_id } => {
            if broker.image().cluster_id.is_none() {
                propose(broker, vec![MetadataRecord::Cluster { cluster_id }])?;
            }
        }
        ControllerRequest::AlterPartition {
            topic_id,
            partition,
            leader,
            leader_epoch,
            partition_epoch,
            isr,
        } => exec_alter_partition(
            broker,
            topic_id,
            partition,
            (leader, leader_epoch, partition_epoch),
            isr,
        )?,
        ControllerRequest::RegisterBroker(r) => ok.value = lifecycle::register(broker, r)?,
        ControllerRequest::BrokerHeartbeat(h) => {
            (ok.fenced, ok.should_shut_down) = lifecycle::heartbeat(broker, h)?;
        }
        ControllerRequest::UpdateFeatures {
            updates,
            validate_only,
        } => {
            let image = broker.image();
            let mut records = features::plan_updates(&image, broker.config.node_id, &updates)?;
            let mut after = (*image).clone();
            records.iter().for_each(|r| after.apply(r));
            if features::elr_enabled(&image) && !features::elr_enabled(&after) {
                // ELR turned off: every ELR and last known leader is cleared.
                records.extend(image.topics.values().flat_map(|t| {
                    t.partitions
                        .iter()
                        .filter_map(elr::cleared)
                        .map(|p| p.to_record(t.topic_id))
                }));
            }
            if !validate_only {
                propose(broker, records)?;
            }
        }
        ControllerRequest::ElectLeaders { kind, partitions } => {
            ok.elections = exec_elect_leaders(broker, kind, partitions)?;
        }
        ControllerRequest::AlterReassignments {
            changes,
            allow_rf_change,
        } => ok.elections = reassign::exec_alter_reassignments(broker, changes, allow_rf_change)?,
        ControllerRequest::SetBrokerConfigs {
            name,
            configs,
            validate_only,
        } => configs::exec_set_broker_configs(broker, &name, configs, validate_only)?,
        ControllerRequest::CreateAcls { acls } => ok.acls = acls::exec_create_acls(broker, acls)?,
        ControllerRequest::DeleteAcls { filters } => {
            ok.acls = acls::exec_delete_acls(broker, filters)?
        }
        ControllerRequest::UnregisterBroker { broker_id } => {
            if !broker.image().brokers.contains_key(&broker_id) {
                return Err(ControllerError::new(
                    ResponseError::BrokerIdNotRegistered,
                    format!("Broker ID {broker_id} is not currently registered"),
                ));
            }
            propose(broker, vec![MetadataRecord::UnregisterBroker { broker_id }])?;
            broker.controller.sessions.lock().remove(&broker_id);
            tracing::info!(broker_id, "broker unregistered");
        }
        ControllerRequest::AlterScramCredentials { changes } => {
            ok.scram_errors = scram::exec_alter(broker, changes)?;
        }
        ControllerRequest::AlterClientQuotas {
            alterations,
            validate_only,
        } => {
            ok.quota_results =
                quotas::exec_alter_client_quotas(broker, alterations, validate_only)?;
        }
    }
    ok.offset = broker.image().last_offset;
    Ok(ok)
}

/// Kafka's message for an election that changed nothing (its errors' default messages).
fn election_message(error: ResponseError) -> &'static str {
    match error {
        ResponseError::ElectionNotNeeded => "Leader election not needed for topic partition.",
        ResponseError::PreferredLeaderNotAvailable => "The preferred leader was not available.",
        ResponseError::EligibleLeadersNotAvailable => {
            "Eligible topic partition leaders are not available."
        }
        _ => "",
    }
}

/// Runs ElectLeaders: every election decided from the newest image, all committed together.
/// With no partitions listed every partition is tried and those that needed no election are
/// left out of the answer, as Kafka's controller answers.
fn exec_elect_leaders(
    broker: &Broker,
    kind: election::ElectionType,
    partitions: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<PartitionElection>)>, ControllerError> {
    let image = broker.image();
    let all = partitions.is_none();
    let asked: Vec<(String, Vec<i32>)> = partitions.unwrap_or_else(|| {
        image
            .topics
            .values()
            .map(|t| {
                (
                    t.name.clone(),
                    t.partitions.iter().map(|p| p.partition).collect(),
                )
            })
            .collect()
    });
    let live = |r: i32| crate::handlers::is_live(&image, r);
    let defaults = election::Defaults::of(broker);
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(asked.len());
    for (name, indexes) in asked {
        let topic = image.topic(&name);
        let mut out = Vec::with_capacity(indexes.len());
        for index in indexes {
            let outcome = match topic {
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("No such topic as {name}"),
                )),
                Some(t) => match t.partitions.iter().find(|p| p.partition == index) {
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("No such partition as {name}-{index}"),
                    )),
                    Some(p) => election::elect(&image, t, p, kind, defaults, live)
                        .map_err(|e| (e, election_message(e).to_string())),
                },
            };
            match outcome {
                Ok(record) => {
                    records.push(record);
                    out.push(PartitionElection {
                        partition: index,
                        error_code: 0,
                        message: None,
                    });
                }
                Err((ResponseError::ElectionNotNeeded, _)) if all => {}
                Err((error, message)) => out.push(PartitionElection {
                    partition: index,
                    error_code: error.code(),
                    message: Some(message),
                }),
            }
        }
        results.push((name, out));
    }
    if !records.is_empty() {
        let n = records.len();
        propose(broker, records)?;
        tracing::info!(elections = n, kind = kind.name(), "leaders elected");
    }
    Ok(results)
}

/// The AlterPartition rules for partition `p` of `image`: the asking (leader, leader epoch,
/// partition epoch) must be the current ones, the new ISR must hold the leader and only replicas,
/// and replicas joining it must be live.
pub fn check_alter_partition(
    image: &runnel_metadata::MetadataImage,
    p: &runnel_metadata::PartitionImage,
    (leader, leader_epoch, partition_epoch): (i32, i32, i32),
    isr: &[i32],
) -> Result<(), ControllerError> {
    if p.leader != leader || p.leader_epoch != leader_epoch {
        return Err(ControllerError::new(
            ResponseError::FencedLeaderEpoch,
            format!(
                "broker {leader} in epoch {leader_epoch} is not the leader (leader {} in epoch {})",
                p.leader, p.leader_epoch
            ),
        ));
    }
    if p.partition_epoch != partition_epoch {
        return Err(ControllerError::new(
            ResponseError::InvalidUpdateVersion,
            format!(
                "partition epoch {partition_epoch} is stale (now {})",
                p.partition_epoch
            ),
        ));
    }
    if !isr.contains(&leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
        return Err(ControllerError::new(
            ResponseError::InvalidRequest,
            format!(
                "ISR {isr:?} must hold the leader and only replicas of {:?}",
                p.replicas
            ),
        ));
    }
    if isr
        .iter()
        .any(|r| !p.isr.contains(r) && !crate::handlers::is_live(image, *r))
    {
        return Err(ControllerError::new(
            ResponseError::IneligibleReplica,
            "a replica joining the ISR is fenced",
        ));
    }
    Ok(())
}

/// Changes a partition's ISR, if the leader asking is the current one and its view (leader
/// epoch, partition epoch) is current; members joining must be live replicas.
fn exec_alter_partition(
    broker: &Broker,
    topic_id: Uuid,
    index: i32,
    (leader, leader_epoch, partition_epoch): (i32, i32, i32),
    isr: Vec<i32>,
) -> Result<(), ControllerError> {
    let image = broker.image();
    let Some((topic, p)) = image.topic_by_id(&topic_id).and_then(|t| {
        t.partitions
            .iter()
            .find(|p| p.partition == index)
            .map(|p| (t, p))
    }) else {
        return Err(ControllerError::new(
            ResponseError::UnknownTopicOrPartition,
            "no such partition",
        ));
    };
    check_alter_partition(&image, p, (leader, leader_epoch, partition_epoch), &isr)?;
    let rules = elr::ElrRules::for_topic(&image, topic, broker.config.min_insync_replicas);
    let next = reassign::settle(&image, p, PartitionImage { isr, ..p.clone() }, rules);
    if p.reassigning() && !next.reassigning() {
        tracing::info!(topic_id = %topic_id, partition = index, replicas = ?next.replicas, "reassignment completed");
    }
    propose(broker, vec![next.to_record(topic_id)])
}

/// Runs UnregisterBroker on the active controller.
pub fn unregister_broker(broker: &Broker, broker_id: i32) -> Result<(), ControllerError> {
    submit(broker, ControllerRequest::UnregisterBroker { broker_id }).map(|_| ())
}

/// A leader's ISR change for its partition, computed from `state`.
pub fn alter_partition_isr(
    broker: &Broker,
    partition: &crate::partition::Partition,
    state: &crate::partition::ReplicaState,
    isr: Vec<i32>,
) -> Result<(), ControllerError> {
    submit(
        broker,
        ControllerRequest::AlterPartition {
            topic_id: partition.topic_id,
            partition: partition.index,
            leader: state.leader,
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            isr,
        },
    )
    .map(|_| ())
}

/// Sets finalized feature levels on the active controller (all or none; only checked when
/// `validate_only`).
pub fn update_features(
    broker: &Broker,
    updates: Vec<features::FeatureUpdate>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    submit(
        broker,
        ControllerRequest::UpdateFeatures {
            updates,
            validate_only,
        },
    )
    .map(|_| ())
}

/// How long a node waits for the quorum leader's answer to a status query.
const QUORUM_STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The metadata quorum's status as its leader (the active controller) reports it: asked of the
/// local quorum, and when another node leads, of that node over the controller listener (as
/// Kafka's brokers forward DescribeQuorum to the active controller). `NotLeader` when no
/// leader is known, it cannot be reached, or the one asked no longer leads.
pub async fn quorum_status(
    broker: &Broker,
) -> Result<runnel_metadata::QuorumStatus, runnel_metadata::QuorumError> {
    use runnel_metadata::{QuorumError, QuorumStatus, RaftRpcKind};
    type Answer = Result<QuorumStatus, QuorumError>;
    let parse = |bytes: &[u8]| -> Answer {
        serde_json::from_slice::<Answer>(bytes)
            .map_err(|e| QuorumError::Storage(format!("malformed quorum status: {e}")))?
    };
    let describe = RaftRpcKind::Describe.code() as i16;
    let local = parse(&broker.raft_rpc(describe, &[]).await?);
    let leader = match local {
        Err(QuorumError::NotLeader {
            leader: Some(leader),
        }) if leader != broker.config.node_id => leader,
        other => return other,
    };
    let Some(addr) = broker.voter_address(leader) else {
        return Err(QuorumError::NotLeader { leader: None });
    };
    // A connection of its own: a rare admin request, not worth a pooled one.
    let client = crate::internode::NodeClient::secured(broker.outbound.for_controllers());
    let call = client.call(leader, &addr, crate::internode::RAFT_API_KEY, describe, &[]);
    match tokio::time::timeout(QUORUM_STATUS_TIMEOUT, call).await {
        Ok(Ok(bytes)) => parse(&bytes),
        Ok(Err(e)) => {
            // The leader this node knows is unreachable (it may have just failed): as good as
            // no leader, which the client retries.
            tracing::debug!(leader, %addr, error = %e, "quorum status: leader unreachable");
            Err(QuorumError::NotLeader { leader: None })
        }
        Err(_) => Err(QuorumError::Timeout),
    }
}

/// Runs ElectLeaders on the active controller: an election of type `kind` for each partition
/// listed (every partition when `None`); returns the outcome of each, by topic.
pub fn elect_leaders(
    broker: &Broker,
    kind: election::ElectionType,
    partitions: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<PartitionElection>)>, ControllerError> {
    submit(broker, ControllerRequest::ElectLeaders { kind, partitions }).map(|ok| ok.elections)
}

/// Reserves a block of `count` producer ids; returns its first id.
pub fn allocate_producer_ids(broker: &Broker, count: i64) -> Result<i64, ControllerError> {
    submit(broker, ControllerRequest::AllocateProducerIds { count }).map(|ok| ok.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("a.b_c-1").is_ok());
        for bad in ["", ".", "..", "a b", "ä", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }
}
