//! Dynamic broker configs on the active controller: the overrides of one broker (its id) or of
//! the cluster default (""), as IncrementalAlterConfigs and AlterConfigs set them; only the keys
//! Runnel changes at run time (the replication throttles) are accepted, with Kafka's checks.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use runnel_metadata::MetadataRecord;

use super::{propose, submit, ControllerError, ControllerRequest};
use crate::broker::Broker;

/// Replaces the dynamic config overrides of broker `name` ("" for the cluster default) with
/// `new_configs`: only the keys Runnel changes at run time are accepted, with Kafka's checks.
pub(crate) fn exec_set_broker_configs(
    broker: &Broker,
    name: &str,
    new_configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    if !name.is_empty() && name.parse::<i32>().is_err() {
        return Err(ControllerError::new(
            ResponseError::InvalidRequest,
            format!("Invalid broker name {name}"),
        ));
    }
    let fixed: Vec<&String> = new_configs
        .keys()
        .filter(|k| !crate::replica::throttle::DYNAMIC_BROKER_KEYS.contains(&k.as_str()))
        .collect();
    if !fixed.is_empty() {
        return Err(ControllerError::new(
            ResponseError::InvalidConfig,
            format!("Cannot update these configs dynamically: {fixed:?} (Runnel changes only {:?} at run time)", crate::replica::throttle::DYNAMIC_BROKER_KEYS),
        ));
    }
    for (k, v) in &new_configs {
        if !v.trim().parse::<i64>().is_ok_and(|n| n >= 0) {
            return Err(ControllerError::new(
                ResponseError::InvalidConfig,
                format!("Invalid value {v} for configuration {k}: Value must be at least 0"),
            ));
        }
    }
    if validate_only {
        return Ok(());
    }
    let image = broker.image();
    let empty = BTreeMap::new();
    let current = image.broker_configs.get(name).unwrap_or(&empty);
    let record = |k: &String, value: Option<String>| MetadataRecord::Config {
        resource_type: runnel_metadata::records::RESOURCE_BROKER,
        resource_name: name.to_string(),
        name: k.clone(),
        value,
    };
    let mut records: Vec<MetadataRecord> = new_configs
        .iter()
        .filter(|(k, v)| current.get(*k) != Some(*v))
        .map(|(k, v)| record(k, Some(v.clone())))
        .collect();
    records.extend(
        current
            .keys()
            .filter(|k| !new_configs.contains_key(*k))
            .map(|k| record(k, None)),
    );
    if !records.is_empty() {
        propose(broker, records)?;
    }
    Ok(())
}

/// Sets the dynamic config overrides of broker `name` ("" for the cluster default) on the
/// active controller (or only checks them when `validate_only`).
pub fn set_broker_configs(
    broker: &Broker,
    name: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), ControllerError> {
    submit(
        broker,
        ControllerRequest::SetBrokerConfigs {
            name: name.to_string(),
            configs,
            validate_only,
        },
    )
    .map(|_| ())
}
