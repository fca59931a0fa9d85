//! Runnel's cluster metadata: the records that describe every change (topic created, partition
//! added, config altered, topic removed, producer ids handed out), the immutable image request
//! handlers read, and the metadata log (`<log.dirs>/__cluster_metadata-0/`) those records are
//! appended to and replayed from at start-up. A single node is a cluster of one whose controller
//! appends to this log; several nodes replicate the same log (voters, and learners that follow it).

pub mod acls;
pub mod image;
pub mod log;
pub mod quorum;
pub mod quotas;
pub mod raft;
pub mod records;
pub mod scram;

pub use acls::{AclEntry, AclImage};
pub use image::{BrokerImage, MetadataImage, PartitionImage, TopicImage};
pub use log::MetadataLog;
pub use quorum::{MembershipError, MetadataQuorum, QuorumError, QuorumStatus, VoterStatus};
pub use raft::{
    Endpoint, MembershipChange, NoTransport, RaftNode, RaftQuorum, RaftQuorumConfig, RaftRpcKind,
    RaftTransport,
};
pub use records::{BrokerEndpoint, MetadataRecord};
