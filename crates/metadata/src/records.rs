//! Metadata records: one enum variant per kind of change, serialized as JSON in the value of a
//! Kafka record inside a v2 batch of the metadata log.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Kafka's resource type code for a topic in config records (as in DescribeConfigs).
pub const RESOURCE_TOPIC: i8 = 2;
/// Kafka's resource type code for a broker in config records.
pub const RESOURCE_BROKER: i8 = 4;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The cluster's identity, written once when the log is created.
    Cluster {
        /// Cluster id (base64 of 16 bytes, as Kafka).
        cluster_id: String,
    },
    /// A user's SCRAM credential for one mechanism was set, as Kafka's
    /// UserScramCredentialRecord (AlterUserScramCredentials).
    UserScramCredential {
        /// User name.
        name: String,
        /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
        mechanism: i8,
        /// Salt, stored key, server key and iterations.
        credential: crate::scram::ScramCredentialData,
    },
    /// A user's SCRAM credential for one mechanism was deleted, as Kafka's
    /// RemoveUserScramCredentialRecord.
    RemoveUserScramCredential {
        /// User name.
        name: String,
        /// 1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512.
        mechanism: i8,
    },
    /// A topic came into being.
    Topic {
        /// Topic name.
        name: String,
        /// Stable, non-zero topic id.
        topic_id: Uuid,
    },
    /// A partition of a topic, with its replicas and leader.
    Partition {
        /// Owning topic.
        topic_id: Uuid,
        /// Partition index.
        partition: i32,
        /// Replica node ids.
        replicas: Vec<i32>,
        /// In-sync replica node ids.
        isr: Vec<i32>,
        /// Leader node id.
        leader: i32,
        /// Leader epoch.
        leader_epoch: i32,
        /// Partition epoch: bumped by every change of this partition's record, so that a
        /// change computed from an older state (an ISR update from a leader) can be refused.
        #[serde(default)]
        partition_epoch: i32,
        /// Replicas being added by a reassignment (in `replicas` already, not yet in the
        /// target's ISR); empty when no reassignment is in progress.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        /// Replicas a reassignment removes once every adding replica is in the ISR.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
        /// Eligible leader replicas (KIP-966): replicas out of the ISR that still hold every
        /// committed record, so that one may lead cleanly when the ISR is empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        eligible_leader_replicas: Vec<i32>,
        /// The last known leader, recorded when the ISR became empty (KIP-966's last known ELR).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        last_known_elr: Vec<i32>,
    },
    /// A config set (value) or removed (None) on a resource.
    Config {
        /// RESOURCE_TOPIC or RESOURCE_BROKER.
        resource_type: i8,
        /// Topic name or broker id.
        resource_name: String,
        /// Config key.
        name: String,
        /// New value, or None to remove the override.
        value: Option<String>,
    },
    /// A topic was deleted (its files are removed in the background).
    RemoveTopic {
        /// The deleted topic's id.
        topic_id: Uuid,
    },
    /// A broker registered (or registered again after a restart), fenced until it heartbeats
    /// having caught up with the metadata log.
    RegisterBroker {
        /// Node id.
        broker_id: i32,
        /// Random id of this run of the broker process: a restart registers a new one.
        incarnation_id: Uuid,
        /// The broker epoch handed out for this registration (grows with each registration).
        broker_epoch: i64,
        /// The listeners clients and other brokers reach it on.
        endpoints: Vec<BrokerEndpoint>,
        /// `broker.rack`, if set.
        rack: Option<String>,
    },
    /// A broker was fenced (missed heartbeats, or shut down): it may lead nothing.
    FenceBroker {
        /// Node id.
        broker_id: i32,
        /// The epoch of the registration being fenced.
        broker_epoch: i64,
    },
    /// A fenced broker caught up and heartbeats: it may lead and be in ISRs again.
    UnfenceBroker {
        /// Node id.
        broker_id: i32,
        /// The epoch of the registration being unfenced.
        broker_epoch: i64,
    },
    /// A broker's registration was removed (UnregisterBroker: a decommissioned broker).
    UnregisterBroker {
        /// Node id.
        broker_id: i32,
    },
    /// A block of producer ids was handed out; the next block starts at `next_producer_id`.
    ProducerIds {
        /// First producer id not yet handed out.
        next_producer_id: i64,
    },
    /// A client quota value set or removed on an entity, as Kafka's ClientQuotaRecord.
    ClientQuota {
        /// The entity (user, client id, both, or an IP; a None name is the type's default).
        entity: Vec<crate::quotas::EntityData>,
        /// The quota key (`producer_byte_rate`, ...).
        key: String,
        /// The value set (ignored when removing).
        value: crate::quotas::QuotaValue,
        /// Whether the key is removed rather than set.
        remove: bool,
    },
    /// A finalized feature level was set (UpdateFeatures), as Kafka's FeatureLevelRecord.
    FeatureLevel {
        /// Feature name (`group.version`, `transaction.version`, ...).
        name: String,
        /// The finalized level; 0 turns the feature off.
        level: i16,
    },
    /// An ACL was created (CreateAcls), as Kafka's AccessControlEntryRecord.
    AccessControlEntry {
        /// The ACL's id.
        id: Uuid,
        /// The binding.
        acl: crate::acls::AclEntry,
    },
    /// An ACL was deleted (DeleteAcls), as Kafka's RemoveAccessControlEntryRecord.
    RemoveAccessControlEntry {
        /// The id of the ACL removed.
        id: Uuid,
    },
}

/// One listener of a registered broker, as advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Listener name (e.g. PLAINTEXT).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// Security protocol of the listener.
    pub security_protocol: String,
}

impl MetadataRecord {
    /// Serializes the record for the metadata log.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("metadata records always serialize")
    }

    /// Parses a record read from the metadata log.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let recs = vec![
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: Uuid::new_v4(),
            },
            MetadataRecord::Config {
                resource_type: RESOURCE_TOPIC,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: None,
            },
        ];
        for r in recs {
            assert_eq!(MetadataRecord::from_bytes(&r.to_bytes()).unwrap(), r);
        }
    }

    #[test]
    fn partition_records_without_elr_fields_read_as_empty_and_empty_ones_are_not_written() {
        let id = Uuid::nil();
        let old = format!(
            r#"{{"type":"Partition","topic_id":"{id}","partition":0,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":2}}"#
        );
        let MetadataRecord::Partition {
            eligible_leader_replicas,
            last_known_elr,
            partition_epoch,
            ..
        } = MetadataRecord::from_bytes(old.as_bytes()).unwrap()
        else {
            panic!("not a partition record");
        };
        assert!(eligible_leader_replicas.is_empty() && last_known_elr.is_empty());
        assert_eq!(partition_epoch, 0);
        let mut rec = MetadataRecord::from_bytes(old.as_bytes()).unwrap();
        let text = String::from_utf8(rec.to_bytes()).unwrap();
        assert!(!text.contains("eligible_leader_replicas") && !text.contains("last_known_elr"));
        if let MetadataRecord::Partition {
            eligible_leader_replicas,
            ..
        } = &mut rec
        {
            *eligible_leader_replicas = vec![2];
        }
        let text = String::from_utf8(rec.to_bytes()).unwrap();
        assert!(text.contains(r#""eligible_leader_replicas":[2]"#), "{text}");
        assert_eq!(MetadataRecord::from_bytes(text.as_bytes()).unwrap(), rec);
    }
}
