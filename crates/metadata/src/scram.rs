//! SCRAM credentials in the metadata log, as Kafka's UserScramCredentialRecord /
//! RemoveUserScramCredentialRecord: per user and mechanism (1 = SCRAM-SHA-256, 2 =
//! SCRAM-SHA-512) the salt, the stored and server keys and the iteration count; never the
//! password. Every broker authenticates SCRAM clients from its image of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// One user's credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialData {
    /// The salt.
    pub salt: Vec<u8>,
    /// H(ClientKey).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
    /// PBKDF2 iterations.
    pub iterations: i32,
}

/// Every SCRAM credential: user name → mechanism code → credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScramImage {
    /// The credentials.
    pub users: BTreeMap<String, BTreeMap<i8, ScramCredentialData>>,
}

impl ScramImage {
    /// A user's credential for a mechanism.
    pub fn get(&self, user: &str, mechanism: i8) -> Option<&ScramCredentialData> {
        self.users.get(user).and_then(|m| m.get(&mechanism))
    }

    /// Sets a credential.
    pub fn upsert(&mut self, user: &str, mechanism: i8, cred: ScramCredentialData) {
        self.users
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, cred);
    }

    /// Removes a credential (a user without any is gone).
    pub fn remove(&mut self, user: &str, mechanism: i8) {
        if let Some(m) = self.users.get_mut(user) {
            m.remove(&mechanism);
            if m.is_empty() {
                self.users.remove(user);
            }
        }
    }

    /// The records that rebuild this image (for snapshots).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        self.users
            .iter()
            .flat_map(|(user, m)| {
                m.iter()
                    .map(|(mech, c)| MetadataRecord::UserScramCredential {
                        name: user.clone(),
                        mechanism: *mech,
                        credential: c.clone(),
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetadataImage;

    #[test]
    fn credentials_apply_and_snapshot() {
        let cred = |n: u8| ScramCredentialData {
            salt: vec![n; 4],
            stored_key: vec![n; 32],
            server_key: vec![n + 1; 32],
            iterations: 4096,
        };
        let recs = vec![
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: 1,
                credential: cred(1),
            },
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: 2,
                credential: cred(2),
            },
            MetadataRecord::UserScramCredential {
                name: "bob".into(),
                mechanism: 1,
                credential: cred(3),
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "alice".into(),
                mechanism: 2,
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "bob".into(),
                mechanism: 1,
            },
        ];
        let mut img = MetadataImage::default();
        for r in &recs {
            assert_eq!(MetadataRecord::from_bytes(&r.to_bytes()).unwrap(), *r);
            img.apply(r);
        }
        assert_eq!(img.scram.get("alice", 1), Some(&cred(1)));
        assert_eq!(img.scram.get("alice", 2), None);
        assert!(!img.scram.users.contains_key("bob"));
        let mut rebuilt = MetadataImage::default();
        for r in img.to_records() {
            rebuilt.apply(&r);
        }
        assert_eq!(rebuilt.scram, img.scram);
    }
}
