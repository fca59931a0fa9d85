//! AlterUserScramCredentials on the active controller: credentials set (as Kafka's
//! UserScramCredentialRecord, keys derived from the salted password the client sent) and
//! deleted (RemoveUserScramCredentialRecord), committed together; a deletion of a credential
//! that does not exist is refused with RESOURCE_NOT_FOUND, as Kafka's ScramControlManager.

use kafka_protocol::ResponseError;
use runnel_metadata::scram::ScramCredentialData;
use runnel_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

use super::{propose, ControllerError};
use crate::broker::Broker;

/// One change asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScramChange {
    /// Set a user's credential for a mechanism.
    Upsert {
        /// User name.
        name: String,
        /// Mechanism code.
        mechanism: i8,
        /// The credential.
        credential: ScramCredentialData,
    },
    /// Delete a user's credential for a mechanism.
    Delete {
        /// User name.
        name: String,
        /// Mechanism code.
        mechanism: i8,
    },
}

/// Applies the changes; the refused ones as (user, error code, message).
pub(crate) fn exec_alter(
    broker: &Broker,
    changes: Vec<ScramChange>,
) -> Result<Vec<(String, i16, String)>, ControllerError> {
    let image = broker.image();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for c in changes {
        match c {
            ScramChange::Upsert {
                name,
                mechanism,
                credential,
            } => records.push(MetadataRecord::UserScramCredential {
                name,
                mechanism,
                credential,
            }),
            ScramChange::Delete { name, mechanism } => {
                if image.scram.get(&name, mechanism).is_none() {
                    errors.push((
                        name,
                        ResponseError::ResourceNotFound.code(),
                        "Attempt to delete a user credential that does not exist".to_string(),
                    ));
                } else {
                    records.push(MetadataRecord::RemoveUserScramCredential { name, mechanism });
                }
            }
        }
    }
    if !records.is_empty() {
        propose(broker, records)?;
    }
    Ok(errors)
}
