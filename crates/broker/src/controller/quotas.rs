//! AlterClientQuotas on the active controller, as Kafka's `ClientQuotaControlManager`: each
//! entity is checked (known entity types, no empty names, a valid combination: user and/or
//! client-id, or an IP alone), each key against the keys of its entity kind, each value (above 0,
//! whole for the LONG and INT keys); the records of every entity that passed commit together,
//! and only the values that change are written.

use std::collections::BTreeMap;
use std::net::{IpAddr, ToSocketAddrs};

use kafka_protocol::ResponseError;
use runnel_metadata::quotas::{EntityData, QuotaEntity, QuotaValue, CLIENT_ID, IP, USER};
use runnel_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

use super::{propose, submit, ControllerError, ControllerRequest};
use crate::broker::Broker;

/// One entity's changes: (entity type, name or None for the default) pairs as sent, and
/// (key, value or None to remove) operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuotaAlteration {
    /// The entity, as (type, name) pairs (a later duplicate type wins, as in Kafka's map).
    pub entity: Vec<(String, Option<String>)>,
    /// The operations: a value to set (an f64's bits, so that infinities and NaN survive the
    /// JSON of a forwarded request and are refused by the controller), or None to remove.
    pub ops: Vec<(String, Option<u64>)>,
}

impl QuotaAlteration {
    /// An operation as [`QuotaAlteration::ops`] holds it.
    pub fn op(key: String, value: Option<f64>) -> (String, Option<u64>) {
        (key, value.map(f64::to_bits))
    }
}

/// One entity's outcome: the entity as answered, Kafka's error code and message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuotaResult {
    /// The entity.
    pub entity: Vec<(String, Option<String>)>,
    /// Error code (0: done).
    pub error_code: i16,
    /// Error message (none on success).
    pub message: Option<String>,
}

/// The value type of a quota key, as Kafka's quota config definitions declare it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyType {
    Long,
    Int,
    Double,
}

/// The keys of user and client-id entities.
const USER_CLIENT_KEYS: &[(&str, KeyType)] = &[
    ("producer_byte_rate", KeyType::Long),
    ("consumer_byte_rate", KeyType::Long),
    ("request_percentage", KeyType::Double),
    ("controller_mutation_rate", KeyType::Double),
];

/// The keys of IP entities.
const IP_KEYS: &[(&str, KeyType)] = &[("connection_creation_rate", KeyType::Int)];

/// Kafka's `ClientQuotaEntity.toString`: `ClientQuotaEntity(entries={user=alice})`.
fn entity_string(entity: &QuotaEntity) -> String {
    let entries: Vec<String> = entity
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("null")))
        .collect();
    format!("ClientQuotaEntity(entries={{{}}})", entries.join(", "))
}

/// A name Kafka's `InetAddress.getByName` accepts: an address, or a host name that resolves.
fn valid_ip_entity(name: Option<&str>) -> bool {
    match name {
        None => true,
        Some(n) => n.parse::<IpAddr>().is_ok() || (n, 0).to_socket_addrs().is_ok(),
    }
}

/// A refusal: Kafka's error and message.
type Refusal = (ResponseError, String);

fn invalid(message: impl Into<String>) -> Refusal {
    (ResponseError::InvalidRequest, message.into())
}

/// The keys an entity may carry (Kafka's `configKeysForEntityType`, after `validateEntity`).
fn keys_for(
    entity: &QuotaEntity,
) -> Result<&'static [(&'static str, KeyType)], (ResponseError, String)> {
    if entity.is_empty() {
        return Err(invalid("Invalid empty client quota entity"));
    }
    for (t, n) in entity {
        if t != USER && t != CLIENT_ID && t != IP {
            return Err(invalid(format!("Unhandled client quota entity type: {t}")));
        }
        if n.as_deref() == Some("") {
            return Err(invalid(format!("Empty {t} not supported")));
        }
    }
    let has = |t: &str| entity.contains_key(t);
    if has(IP) {
        if has(USER) || has(CLIENT_ID) {
            // Kafka's message, missing space included.
            return Err(invalid(
                "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId",
            ));
        }
        let ip = entity.get(IP).and_then(|n| n.as_deref());
        if !valid_ip_entity(ip) {
            return Err(invalid(format!(
                "{} is not a valid IP or resolvable host.",
                ip.unwrap_or("null")
            )));
        }
        return Ok(IP_KEYS);
    }
    Ok(USER_CLIENT_KEYS)
}

/// Kafka's `validateQuotaKeyValue`.
fn check_value(
    keys: &[(&str, KeyType)],
    key: &str,
    value: f64,
) -> Result<(), (ResponseError, String)> {
    let Some((_, kind)) = keys.iter().find(|(k, _)| *k == key) else {
        return Err(invalid(format!("Invalid configuration key {key}")));
    };
    if value <= 0.0 {
        return Err(invalid(format!("Quota {key} must be greater than 0")));
    }
    // Runnel stores values in JSON, which has no infinities or NaN (Kafka would take them
    // for the DOUBLE keys).
    if !value.is_finite() {
        return Err(invalid(format!("Quota {key} must be a finite number")));
    }
    let whole = || {
        if (value % 1.0).abs() > 1e-6 {
            Err(invalid(format!("{key} cannot be a fractional value.")))
        } else {
            Ok(())
        }
    };
    match kind {
        KeyType::Double => Ok(()),
        KeyType::Int if value > i32::MAX as f64 => Err(invalid(format!(
            "Proposed value for {key} is too large for an INT."
        ))),
        KeyType::Long if value > i64::MAX as f64 => Err(invalid(format!(
            "Proposed value for {key} is too large for a LONG."
        ))),
        _ => whole(),
    }
}

fn entity_pairs(entity: &QuotaEntity) -> Vec<(String, Option<String>)> {
    entity.iter().map(|(t, n)| (t.clone(), n.clone())).collect()
}

/// Checks every alteration and commits the records of those that passed (all together);
/// answers one result per distinct entity, in the order they first appear.
pub(crate) fn exec_alter_client_quotas(
    broker: &Broker,
    alterations: Vec<QuotaAlteration>,
    validate_only: bool,
) -> Result<Vec<QuotaResult>, ControllerError> {
    let image = broker.image();
    let current = &image.client_quotas;
    let mut results: Vec<(QuotaEntity, Result<(), Refusal>)> = Vec::new();
    let mut records = Vec::new();
    for alteration in alterations {
        let entity: QuotaEntity = alteration.entity.into_iter().collect();
        if let Some(slot) = results.iter_mut().find(|(e, _)| *e == entity) {
            // As Kafka: the entity's earlier records stay, its result becomes an error.
            slot.1 = Err(invalid(format!(
                "Ignoring duplicate entity {}",
                entity_string(&entity)
            )));
            continue;
        }
        let mut ops: BTreeMap<String, Option<f64>> = BTreeMap::new();
        let mut duplicate_key = false;
        for (key, value) in alteration.ops {
            match ops.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => duplicate_key = true,
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(value.map(f64::from_bits));
                }
            }
        }
        if duplicate_key {
            // Kafka records "Duplicate quota key ..." and then overwrites it with this.
            results.push((
                entity.clone(),
                Err(invalid(format!(
                    "Ignoring duplicate entity {}",
                    entity_string(&entity)
                ))),
            ));
            continue;
        }
        let outcome = (|| {
            let keys = keys_for(&entity)?;
            let data: Vec<EntityData> = entity
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.clone(),
                    entity_name: n.clone(),
                })
                .collect();
            let mut mine = Vec::new();
            for (key, value) in &ops {
                let now = current.value(&entity, key);
                match value {
                    None => {
                        if now.is_some() {
                            mine.push(MetadataRecord::ClientQuota {
                                entity: data.clone(),
                                key: key.clone(),
                                value: QuotaValue(0.0),
                                remove: true,
                            });
                        }
                    }
                    Some(v) => {
                        check_value(keys, key, *v)?;
                        if now != Some(*v) {
                            mine.push(MetadataRecord::ClientQuota {
                                entity: data.clone(),
                                key: key.clone(),
                                value: QuotaValue(*v),
                                remove: false,
                            });
                        }
                    }
                }
            }
            records.extend(mine);
            Ok(())
        })();
        results.push((entity, outcome));
    }
    if !validate_only && !records.is_empty() {
        propose(broker, records)?;
    }
    Ok(results
        .into_iter()
        .map(|(entity, r)| QuotaResult {
            entity: entity_pairs(&entity),
            error_code: r.as_ref().err().map_or(0, |(e, _)| e.code()),
            message: r.err().map(|(_, m)| m),
        })
        .collect())
}

/// AlterClientQuotas through the active controller (or only the checks when `validate_only`).
pub fn alter_client_quotas(
    broker: &Broker,
    alterations: Vec<QuotaAlteration>,
    validate_only: bool,
) -> Result<Vec<QuotaResult>, ControllerError> {
    submit(
        broker,
        ControllerRequest::AlterClientQuotas {
            alterations,
            validate_only,
        },
    )
    .map(|ok| ok.quota_results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(parts: &[(&str, Option<&str>)]) -> QuotaEntity {
        parts
            .iter()
            .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
            .collect()
    }

    #[test]
    fn entities_and_values_are_checked_as_kafka_checks_them() {
        fn msg<T>(r: Result<T, Refusal>) -> String {
            r.map(|_| ()).unwrap_err().1
        }
        assert_eq!(
            msg(keys_for(&entity(&[]))),
            "Invalid empty client quota entity"
        );
        assert_eq!(
            msg(keys_for(&entity(&[("group", Some("g"))]))),
            "Unhandled client quota entity type: group"
        );
        assert_eq!(
            msg(keys_for(&entity(&[(USER, Some(""))]))),
            "Empty user not supported"
        );
        assert!(
            msg(keys_for(&entity(&[(IP, Some("1.2.3.4")), (USER, None)])))
                .starts_with("Invalid quota entity combination")
        );
        assert_eq!(
            msg(keys_for(&entity(&[(IP, Some("no such host.invalid"))]))),
            "no such host.invalid is not a valid IP or resolvable host."
        );
        let uc = keys_for(&entity(&[(USER, Some("a")), (CLIENT_ID, None)])).unwrap();
        assert!(check_value(uc, "producer_byte_rate", 1024.0).is_ok());
        assert!(check_value(uc, "request_percentage", 12.5).is_ok());
        assert_eq!(
            msg(check_value(uc, "producer_byte_rate", 10.5)),
            "producer_byte_rate cannot be a fractional value."
        );
        assert_eq!(
            msg(check_value(uc, "consumer_byte_rate", 0.0)),
            "Quota consumer_byte_rate must be greater than 0"
        );
        assert_eq!(
            msg(check_value(uc, "connection_creation_rate", 5.0)),
            "Invalid configuration key connection_creation_rate"
        );
        assert_eq!(
            msg(check_value(uc, "producer_byte_rate", 1e19)),
            "Proposed value for producer_byte_rate is too large for a LONG."
        );
        let ip = keys_for(&entity(&[(IP, None)])).unwrap();
        assert_eq!(
            msg(check_value(ip, "connection_creation_rate", 3e9)),
            "Proposed value for connection_creation_rate is too large for an INT."
        );
        assert_eq!(
            entity_string(&entity(&[(CLIENT_ID, Some("x")), (USER, None)])),
            "ClientQuotaEntity(entries={client-id=x, user=null})"
        );
    }
}
