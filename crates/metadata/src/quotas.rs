//! Client quotas in the metadata, as Kafka keeps them: an entity (a user, a client id, both, or an
//! IP; each either named or the default of its type) with quota values (`producer_byte_rate`,
//! `consumer_byte_rate`, `request_percentage`, `controller_mutation_rate`,
//! `connection_creation_rate`). Set and removed by Kafka's ClientQuotaRecord
//! ([`MetadataRecord::ClientQuota`]); read by DescribeClientQuotas with Kafka's filter rules
//! (`ClientQuotasImage.describe`) and by the brokers' quota managers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// Entity type of a user principal's quotas.
pub const USER: &str = "user";
/// Entity type of a client id's quotas.
pub const CLIENT_ID: &str = "client-id";
/// Entity type of an IP's connection-rate quota.
pub const IP: &str = "ip";

/// DescribeClientQuotas match type: the entity type with this exact name.
pub const MATCH_EXACT: i8 = 0;
/// DescribeClientQuotas match type: the default entity of the type.
pub const MATCH_DEFAULT: i8 = 1;
/// DescribeClientQuotas match type: any entity of the type, named or default.
pub const MATCH_SPECIFIED: i8 = 2;

/// A quota entity: entity type (`user`, `client-id`, `ip`) → name, `None` for the default
/// entity of that type (Kafka's `ClientQuotaEntity`, whose names are null for defaults).
pub type QuotaEntity = BTreeMap<String, Option<String>>;

/// One part of a quota entity as Kafka's ClientQuotaRecord writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityData {
    /// `user`, `client-id` or `ip`.
    pub entity_type: String,
    /// The name, or None for the default entity.
    pub entity_name: Option<String>,
}

/// A quota value (Kafka's float64). Compared by its bits, so that images stay `Eq`; the
/// controller accepts only finite values (JSON has no infinities).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// The entity of a record's entity list (a later duplicate type wins, as in Kafka's map).
pub fn entity_of(data: &[EntityData]) -> QuotaEntity {
    data.iter()
        .map(|d| (d.entity_type.clone(), d.entity_name.clone()))
        .collect()
}

/// Every entity that has quotas, with its values by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientQuotasImage {
    /// Quota values by entity, then by key (never an empty map).
    pub entities: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

/// Why a DescribeClientQuotas filter was refused: Kafka's error and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// INVALID_REQUEST.
    InvalidRequest(String),
    /// UNSUPPORTED_VERSION (an entity type Kafka does not know).
    UnsupportedVersion(String),
}

/// One component of a DescribeClientQuotas filter.
#[derive(Debug, Clone)]
pub struct FilterComponent {
    /// The entity type.
    pub entity_type: String,
    /// MATCH_EXACT, MATCH_DEFAULT or MATCH_SPECIFIED.
    pub match_type: i8,
    /// The name for MATCH_EXACT (must be None otherwise).
    pub name: Option<String>,
}

impl ClientQuotasImage {
    /// Whether no quota is set at all.
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    /// The value of `key` for exactly `entity`, if set.
    pub fn value(&self, entity: &QuotaEntity, key: &str) -> Option<f64> {
        self.entities.get(entity)?.get(key).map(|v| v.0)
    }

    /// Applies a ClientQuotaRecord: sets `key` (or removes it when `remove`).
    pub fn apply(&mut self, entity: &[EntityData], key: &str, value: f64, remove: bool) {
        let entity = entity_of(entity);
        if remove {
            if let Some(values) = self.entities.get_mut(&entity) {
                values.remove(key);
                if values.is_empty() {
                    self.entities.remove(&entity);
                }
            }
        } else {
            self.entities
                .entry(entity)
                .or_default()
                .insert(key.to_string(), QuotaValue(value));
        }
    }

    /// The records that rebuild this image (for snapshots).
    pub fn to_records(&self) -> impl Iterator<Item = MetadataRecord> + '_ {
        self.entities.iter().flat_map(|(entity, values)| {
            values
                .iter()
                .map(move |(key, value)| MetadataRecord::ClientQuota {
                    entity: entity
                        .iter()
                        .map(|(t, n)| EntityData {
                            entity_type: t.clone(),
                            entity_name: n.clone(),
                        })
                        .collect(),
                    key: key.clone(),
                    value: *value,
                    remove: false,
                })
        })
    }

    /// DescribeClientQuotas: the entities matching the filter with their values, checked and
    /// matched as Kafka's `ClientQuotasImage.describe` does (`strict`: the entity has no other
    /// entity types than the filter's).
    #[allow(clippy::type_complexity)]
    pub fn describe(
        &self,
        components: &[FilterComponent],
        strict: bool,
    ) -> Result<Vec<(&QuotaEntity, &BTreeMap<String, QuotaValue>)>, FilterError> {
        let invalid = |m: String| Err(FilterError::InvalidRequest(m));
        let mut exact: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        let mut typed: BTreeSet<&str> = BTreeSet::new();
        for c in components {
            let t = c.entity_type.as_str();
            if t.is_empty() {
                return invalid("Invalid empty entity type.".into());
            }
            if exact.contains_key(t) || typed.contains(t) {
                return invalid(format!(
                    "Entity type {t} cannot appear more than once in the filter."
                ));
            }
            if t != IP && t != USER && t != CLIENT_ID {
                return Err(FilterError::UnsupportedVersion(format!(
                    "Unsupported entity type {t}"
                )));
            }
            match c.match_type {
                MATCH_EXACT => match &c.name {
                    Some(n) => {
                        exact.insert(t, Some(n));
                    }
                    None => {
                        return invalid(
                            "Request specified MATCH_TYPE_EXACT, but set match string to null."
                                .into(),
                        )
                    }
                },
                MATCH_DEFAULT => {
                    if c.name.is_some() {
                        return invalid(
                            "Request specified MATCH_TYPE_DEFAULT, but also specified a match string."
                                .into(),
                        );
                    }
                    exact.insert(t, None);
                }
                MATCH_SPECIFIED => {
                    if c.name.is_some() {
                        return invalid(
                            "Request specified MATCH_TYPE_SPECIFIED, but also specified a match string."
                                .into(),
                        );
                    }
                    typed.insert(t);
                }
                other => return invalid(format!("Unknown match type {other}")),
            }
        }
        let has = |t: &str| exact.contains_key(t) || typed.contains(t);
        if has(IP) && (has(USER) || has(CLIENT_ID)) {
            return invalid(
                "Invalid entity filter component combination. IP filter component should not be used with user or clientId filter component."
                    .into(),
            );
        }
        Ok(self
            .entities
            .iter()
            .filter(|(entity, _)| {
                if strict && entity.len() != exact.len() + typed.len() {
                    return false;
                }
                exact
                    .iter()
                    .all(|(t, n)| entity.get(*t).is_some_and(|name| name.as_deref() == *n))
                    && typed.iter().all(|t| entity.contains_key(*t))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(parts: &[(&str, Option<&str>)]) -> Vec<EntityData> {
        parts
            .iter()
            .map(|(t, n)| EntityData {
                entity_type: t.to_string(),
                entity_name: n.map(str::to_string),
            })
            .collect()
    }

    fn c(t: &str, m: i8, n: Option<&str>) -> FilterComponent {
        FilterComponent {
            entity_type: t.into(),
            match_type: m,
            name: n.map(str::to_string),
        }
    }

    fn sample() -> ClientQuotasImage {
        let mut img = ClientQuotasImage::default();
        img.apply(
            &e(&[(USER, Some("alice"))]),
            "producer_byte_rate",
            1024.0,
            false,
        );
        img.apply(&e(&[(USER, None)]), "consumer_byte_rate", 2048.0, false);
        img.apply(
            &e(&[(USER, Some("alice")), (CLIENT_ID, Some("app"))]),
            "request_percentage",
            50.0,
            false,
        );
        img.apply(&e(&[(CLIENT_ID, None)]), "producer_byte_rate", 10.0, false);
        img.apply(
            &e(&[(IP, Some("10.0.0.1"))]),
            "connection_creation_rate",
            5.0,
            false,
        );
        img
    }

    fn names(found: &[(&QuotaEntity, &BTreeMap<String, QuotaValue>)]) -> Vec<String> {
        found
            .iter()
            .map(|(e, _)| {
                e.iter()
                    .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn records_set_and_remove_values_and_snapshots_rebuild_the_image() {
        let mut img = sample();
        assert_eq!(
            img.value(
                &entity_of(&e(&[(USER, Some("alice"))])),
                "producer_byte_rate"
            ),
            Some(1024.0)
        );
        img.apply(&e(&[(USER, None)]), "consumer_byte_rate", 0.0, true);
        assert!(!img.entities.contains_key(&entity_of(&e(&[(USER, None)]))));
        // Removing what is not there changes nothing.
        img.apply(&e(&[(USER, Some("nobody"))]), "x", 0.0, true);
        let mut rebuilt = ClientQuotasImage::default();
        for r in img.to_records() {
            let MetadataRecord::ClientQuota {
                entity,
                key,
                value,
                remove,
            } = r
            else {
                panic!("not a quota record")
            };
            rebuilt.apply(&entity, &key, value.0, remove);
        }
        assert_eq!(rebuilt, img);
    }

    #[test]
    fn quota_records_round_trip_through_the_log_and_the_image_snapshot() {
        let rec = MetadataRecord::ClientQuota {
            entity: e(&[(USER, Some("alice")), (CLIENT_ID, None)]),
            key: "producer_byte_rate".into(),
            value: QuotaValue(1048576.0),
            remove: false,
        };
        assert_eq!(MetadataRecord::from_bytes(&rec.to_bytes()).unwrap(), rec);
        let mut img = crate::MetadataImage::default();
        img.apply(&rec);
        let mut rebuilt = crate::MetadataImage::default();
        for r in img.to_records() {
            rebuilt.apply(&r);
        }
        assert_eq!(rebuilt, img);
        assert_eq!(rebuilt.client_quotas.entities.len(), 1);
    }

    #[test]
    fn filters_match_as_kafka_describes() {
        let img = sample();
        // containsOnly(user=alice): strict.
        let found = img
            .describe(&[c(USER, MATCH_EXACT, Some("alice"))], true)
            .unwrap();
        assert_eq!(names(&found), ["user=alice"]);
        // Not strict: alice's user+client entity too.
        let found = img
            .describe(&[c(USER, MATCH_EXACT, Some("alice"))], false)
            .unwrap();
        assert_eq!(names(&found), ["client-id=app,user=alice", "user=alice"]);
        let found = img.describe(&[c(USER, MATCH_DEFAULT, None)], true).unwrap();
        assert_eq!(names(&found), ["user=<default>"]);
        let found = img
            .describe(&[c(USER, MATCH_SPECIFIED, None)], true)
            .unwrap();
        assert_eq!(names(&found), ["user=<default>", "user=alice"]);
        let found = img
            .describe(&[c(CLIENT_ID, MATCH_SPECIFIED, None)], false)
            .unwrap();
        assert_eq!(
            names(&found),
            ["client-id=<default>", "client-id=app,user=alice"]
        );
        // No components: everything unless strict.
        assert_eq!(img.describe(&[], false).unwrap().len(), 5);
        assert_eq!(img.describe(&[], true).unwrap().len(), 0);
    }

    #[test]
    fn bad_filters_get_kafkas_errors() {
        let img = sample();
        let err = |cs: &[FilterComponent]| img.describe(cs, false).unwrap_err();
        assert_eq!(
            err(&[c(USER, MATCH_EXACT, None)]),
            FilterError::InvalidRequest(
                "Request specified MATCH_TYPE_EXACT, but set match string to null.".into()
            )
        );
        assert!(matches!(
            err(&[c(USER, MATCH_DEFAULT, Some("x"))]),
            FilterError::InvalidRequest(_)
        ));
        assert!(matches!(
            err(&[c(USER, MATCH_EXACT, Some("a")), c(USER, MATCH_SPECIFIED, None)]),
            FilterError::InvalidRequest(m) if m.contains("cannot appear more than once")
        ));
        assert!(matches!(
            err(&[c("group", MATCH_SPECIFIED, None)]),
            FilterError::UnsupportedVersion(_)
        ));
        assert!(matches!(
            err(&[c(IP, MATCH_SPECIFIED, None), c(USER, MATCH_SPECIFIED, None)]),
            FilterError::InvalidRequest(m) if m.contains("IP filter component")
        ));
        assert!(matches!(
            err(&[c(USER, 7, None)]),
            FilterError::InvalidRequest(m) if m == "Unknown match type 7"
        ));
    }
}
