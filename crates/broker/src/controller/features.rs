//! Feature levels (KIP-584): the features Runnel knows with the range of levels it supports,
//! the level each is finalized at (the default, or what UpdateFeatures recorded in the metadata
//! log), and the active controller's checks of an UpdateFeatures request, after Kafka's.
//!
//! A recorded level is what ApiVersions advertises, and clients choose by it (the Java producer
//! uses KIP-890's transaction protocol only at `transaction.version` 2, consumers the KIP-848
//! protocol by `group.version`); the broker keeps serving every API version of its table at any
//! level. `metadata.version` and `kraft.version` are served at one level only, so a change of
//! either is refused.

use kafka_protocol::ResponseError;
use runnel_metadata::{MetadataImage, MetadataRecord};
use serde::{Deserialize, Serialize};

use super::ControllerError;
use crate::handlers::api_versions::{
    GROUP_VERSION_LEVEL, METADATA_VERSION_LEVEL, METADATA_VERSION_MIN, TRANSACTION_VERSION_LEVEL,
};

/// One feature: its name, the levels this build supports, and the level finalized by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Kafka's feature name.
    pub name: &'static str,
    /// Lowest supported level.
    pub min: i16,
    /// Highest supported level.
    pub max: i16,
    /// The finalized level until UpdateFeatures records another.
    pub default_level: i16,
    /// Whether UpdateFeatures may change the level (within `min..=max`).
    pub updatable: bool,
}

/// KIP-966's feature: at level 1 the controller keeps eligible leader replicas ([`super::elr`]).
pub const ELIGIBLE_LEADER_REPLICAS_VERSION: &str = "eligible.leader.replicas.version";

/// Every feature Runnel reports, by name.
pub const FEATURES: &[Feature] = &[
    // Kafka 4.1+ finalizes level 1 for new clusters (it needs metadata.version 4.0-IV1, which
    // Runnel's level is above); 0 turns it off, and the ELRs are cleared.
    Feature {
        name: ELIGIBLE_LEADER_REPLICAS_VERSION,
        min: 0,
        max: 1,
        default_level: 1,
        updatable: true,
    },
    Feature {
        name: "group.version",
        min: 0,
        max: GROUP_VERSION_LEVEL,
        default_level: GROUP_VERSION_LEVEL,
        updatable: true,
    },
    // A static voter set only (no KIP-853 dynamic quorum): level 0.
    Feature {
        name: "kraft.version",
        min: 0,
        max: 0,
        default_level: 0,
        updatable: false,
    },
    Feature {
        name: "metadata.version",
        min: METADATA_VERSION_MIN,
        max: METADATA_VERSION_LEVEL,
        default_level: METADATA_VERSION_LEVEL,
        updatable: false,
    },
    Feature {
        name: "transaction.version",
        min: 0,
        max: TRANSACTION_VERSION_LEVEL,
        default_level: TRANSACTION_VERSION_LEVEL,
        updatable: true,
    },
];

/// The feature of this name, if Runnel knows it.
pub fn feature(name: &str) -> Option<&'static Feature> {
    FEATURES.iter().find(|f| f.name == name)
}

/// The finalized level of a known feature in `image`.
pub fn finalized_level(image: &MetadataImage, f: &Feature) -> i16 {
    image
        .features
        .get(f.name)
        .copied()
        .unwrap_or(f.default_level)
}

/// Whether eligible leader replicas are kept (`eligible.leader.replicas.version` at 1 or above).
pub fn elr_enabled(image: &MetadataImage) -> bool {
    feature(ELIGIBLE_LEADER_REPLICAS_VERSION).is_some_and(|f| finalized_level(image, f) >= 1)
}

/// Kafka's upgrade types (`FeatureUpdate.UpgradeType`).
pub mod upgrade_type {
    /// Raise the level.
    pub const UPGRADE: i8 = 1;
    /// Lower it without losing metadata.
    pub const SAFE_DOWNGRADE: i8 = 2;
    /// Lower it, possibly losing metadata.
    pub const UNSAFE_DOWNGRADE: i8 = 3;
}

/// One requested change: the feature, the new level and Kafka's upgrade type code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureUpdate {
    /// Feature name.
    pub name: String,
    /// The level asked for.
    pub level: i16,
    /// 1 upgrade, 2 safe downgrade, 3 unsafe downgrade (anything else is refused).
    pub upgrade_type: i8,
}

fn invalid(update: &FeatureUpdate, why: impl std::fmt::Display) -> ControllerError {
    ControllerError::new(
        ResponseError::InvalidUpdateVersion,
        format!(
            "Invalid update version {} for feature {}. {why}",
            update.level, update.name
        ),
    )
}

/// Checks one update against `image` as Kafka's controller does: a known upgrade type, a level
/// of at least 0 inside the supported range, a downgrade only when asked as one and an upgrade
/// only when asked as one. Returns the record to write, or None when the level stays.
fn check(
    image: &MetadataImage,
    node_id: i32,
    update: &FeatureUpdate,
) -> Result<Option<MetadataRecord>, ControllerError> {
    use upgrade_type::*;
    if !matches!(
        update.upgrade_type,
        UPGRADE | SAFE_DOWNGRADE | UNSAFE_DOWNGRADE
    ) {
        return Err(invalid(
            update,
            "The controller does not support the given upgrade type.",
        ));
    }
    if update.level < 0 {
        return Err(invalid(update, "A feature version cannot be less than 0."));
    }
    let Some(f) = feature(&update.name) else {
        return Err(invalid(
            update,
            format!("Local controller {node_id} does not support this feature."),
        ));
    };
    if update.level < f.min || update.level > f.max {
        let why = if f.max == 0 {
            format!("Local controller {node_id} does not support this feature.")
        } else if f.min == f.max {
            format!(
                "Local controller {node_id} only supports versions {}",
                f.min
            )
        } else {
            format!(
                "Local controller {node_id} only supports versions {}-{}",
                f.min, f.max
            )
        };
        return Err(invalid(update, why));
    }
    let current = finalized_level(image, f);
    if update.level < current && update.upgrade_type == UPGRADE {
        return Err(invalid(
            update,
            "Can't downgrade the version of this feature without setting the upgrade type to \
             either safe or unsafe downgrade.",
        ));
    }
    if update.level > current && update.upgrade_type != UPGRADE {
        return Err(invalid(update, "Can't downgrade to a newer version."));
    }
    if update.level == current {
        return Ok(None);
    }
    if !f.updatable {
        return Err(invalid(
            update,
            format!(
                "Runnel serves {} at level {current} only; it cannot be changed.",
                f.name
            ),
        ));
    }
    Ok(Some(MetadataRecord::FeatureLevel {
        name: f.name.to_string(),
        level: update.level,
    }))
}

/// The records that apply `updates` to `image` (all checked first: one refused update refuses
/// them all, as in Kafka), or the first refusal.
pub fn plan_updates(
    image: &MetadataImage,
    node_id: i32,
    updates: &[FeatureUpdate],
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let mut records = Vec::new();
    for u in updates {
        if updates.iter().filter(|x| x.name == u.name).count() > 1 {
            return Err(ControllerError::new(
                ResponseError::InvalidRequest,
                format!("Feature {} is named more than once.", u.name),
            ));
        }
        records.extend(check(image, node_id, u)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(name: &str, level: i16, t: i8) -> FeatureUpdate {
        FeatureUpdate {
            name: name.into(),
            level,
            upgrade_type: t,
        }
    }

    #[test]
    fn levels_within_range_move_in_the_direction_asked() {
        use upgrade_type::*;
        let mut image = MetadataImage::default();
        let tv = feature("transaction.version").unwrap();
        assert_eq!(finalized_level(&image, tv), 2);
        // Same level: nothing to write.
        assert_eq!(
            plan_updates(&image, 1, &[up("transaction.version", 2, UPGRADE)]).unwrap(),
            vec![]
        );
        // A downgrade must say so.
        let e = plan_updates(&image, 1, &[up("transaction.version", 1, UPGRADE)]).unwrap_err();
        assert_eq!(e.error, ResponseError::InvalidUpdateVersion);
        assert!(
            e.message.contains("without setting the upgrade type"),
            "{}",
            e.message
        );
        let recs =
            plan_updates(&image, 1, &[up("transaction.version", 1, SAFE_DOWNGRADE)]).unwrap();
        assert_eq!(
            recs,
            vec![MetadataRecord::FeatureLevel {
                name: "transaction.version".into(),
                level: 1
            }]
        );
        image.apply(&recs[0]);
        assert_eq!(finalized_level(&image, tv), 1);
        // Above the supported range, an unknown feature, a bad type, a fixed feature.
        for (u, why) in [
            (
                up("transaction.version", 3, UPGRADE),
                "only supports versions 0-2",
            ),
            (
                up("share.version", 1, UPGRADE),
                "does not support this feature",
            ),
            (up("group.version", 1, 0), "upgrade type"),
            (up("group.version", -1, SAFE_DOWNGRADE), "less than 0"),
            (
                up("metadata.version", 7, SAFE_DOWNGRADE),
                "cannot be changed",
            ),
            (
                up("kraft.version", 1, UPGRADE),
                "does not support this feature",
            ),
            (
                up("transaction.version", 2, SAFE_DOWNGRADE),
                "downgrade to a newer",
            ),
        ] {
            let e = plan_updates(&image, 1, std::slice::from_ref(&u)).unwrap_err();
            assert_eq!(e.error, ResponseError::InvalidUpdateVersion, "{u:?}");
            assert!(e.message.contains(why), "{u:?}: {}", e.message);
        }
        // KIP-966's feature is on by default and can be turned off and on again.
        assert!(elr_enabled(&image));
        let recs = plan_updates(
            &image,
            1,
            &[up(ELIGIBLE_LEADER_REPLICAS_VERSION, 0, SAFE_DOWNGRADE)],
        )
        .unwrap();
        image.apply(&recs[0]);
        assert!(!elr_enabled(&image));
        let e = plan_updates(
            &image,
            1,
            &[up(ELIGIBLE_LEADER_REPLICAS_VERSION, 2, UPGRADE)],
        )
        .unwrap_err();
        assert!(
            e.message.contains("only supports versions 0-1"),
            "{}",
            e.message
        );
        // One refusal refuses the whole request.
        let e = plan_updates(
            &image,
            1,
            &[
                up("transaction.version", 2, UPGRADE),
                up("group.version", 5, UPGRADE),
            ],
        )
        .unwrap_err();
        assert!(e.message.contains("group.version"));
    }
}
