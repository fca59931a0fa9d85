//! Topic configs: validation of override names and values, and resolution of a topic's
//! effective settings from its overrides and the broker's defaults.

use std::collections::BTreeMap;

use crate::tables::{topic_entry, ConfigKind};
use crate::{BrokerConfig, ConfigError};

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks a cleanup policy list (`delete`, `compact`, or both).
pub fn check_cleanup_policy(key: &str, value: &str) -> Result<(), ConfigError> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items.is_empty() && !value.trim().is_empty() {
        return Err(invalid(key, value, "expected delete, compact or both"));
    }
    for i in items {
        if i != "delete" && i != "compact" {
            return Err(invalid(key, value, "expected delete, compact or both"));
        }
    }
    Ok(())
}

/// Checks a compression type name.
pub fn check_compression(key: &str, value: &str) -> Result<(), ConfigError> {
    if ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"].contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            value,
            "expected one of uncompressed, zstd, lz4, snappy, gzip, producer",
        ))
    }
}

/// Validates one topic config override.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let entry =
        topic_entry(name).ok_or_else(|| ConfigError::UnknownTopicConfig(name.to_string()))?;
    let v = value.trim();
    match entry.kind {
        ConfigKind::Long | ConfigKind::Int | ConfigKind::Short => {
            let n: i64 = v
                .parse()
                .map_err(|_| invalid(name, value, "not a valid number"))?;
            if entry.kind == ConfigKind::Int && (n < i32::MIN as i64 || n > i32::MAX as i64) {
                return Err(invalid(name, value, "out of range for an int"));
            }
            if n < entry.min {
                return Err(invalid(
                    name,
                    value,
                    &format!("must be at least {}", entry.min),
                ));
            }
        }
        ConfigKind::Double => {
            let d: f64 = v
                .parse()
                .map_err(|_| invalid(name, value, "not a valid number"))?;
            if !(0.0..=1.0).contains(&d) {
                return Err(invalid(name, value, "must be between 0 and 1"));
            }
        }
        ConfigKind::Boolean
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") =>
        {
            return Err(invalid(name, value, "expected true or false"));
        }
        _ => {}
    }
    match name {
        "cleanup.policy" => check_cleanup_policy(name, v)?,
        "compression.type" => check_compression(name, v)?,
        "message.timestamp.type" if v != "CreateTime" && v != "LogAppendTime" => {
            return Err(invalid(name, value, "must be CreateTime or LogAppendTime"))
        }
        _ => {}
    }
    Ok(())
}

/// A topic's effective settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicConfig {
    /// `retention.ms` (-1 unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (-1 unlimited).
    pub retention_bytes: i64,
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i32,
    /// `message.timestamp.type` is LogAppendTime.
    pub message_timestamp_type_log_append: bool,
    /// `cleanup.policy`.
    pub cleanup_policy: String,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i32,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long tombstones stay once cleaned.
    pub delete_retention_ms: i64,
}

impl TopicConfig {
    /// Resolves a topic's settings: its overrides, else the broker's setting, else Kafka's default.
    pub fn resolve(
        broker: &BrokerConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<TopicConfig, ConfigError> {
        for (k, v) in overrides {
            validate_topic_config(k, v)?;
        }
        let get = |name: &str| -> String {
            if let Some(v) = overrides.get(name) {
                return v.trim().to_string();
            }
            let e = topic_entry(name).expect("known topic config");
            e.broker_key
                .and_then(|k| broker.value_of(k))
                .or_else(|| e.default.map(str::to_string))
                .unwrap_or_default()
        };
        let num = |name: &str| -> Result<i64, ConfigError> {
            let v = get(name);
            v.parse()
                .map_err(|_| invalid(name, &v, "not a valid number"))
        };
        Ok(TopicConfig {
            retention_ms: num("retention.ms")?,
            retention_bytes: num("retention.bytes")?,
            segment_bytes: num("segment.bytes")?,
            segment_ms: num("segment.ms")?,
            max_message_bytes: num("max.message.bytes")? as i32,
            message_timestamp_type_log_append: get("message.timestamp.type") == "LogAppendTime",
            cleanup_policy: get("cleanup.policy"),
            flush_messages: num("flush.messages")?,
            flush_ms: num("flush.ms")?,
            index_interval_bytes: num("index.interval.bytes")? as i32,
            segment_index_bytes: num("segment.index.bytes")? as i32,
            file_delete_delay_ms: num("file.delete.delay.ms")?,
            min_insync_replicas: num("min.insync.replicas")? as i32,
            min_cleanable_dirty_ratio: {
                let v = get("min.cleanable.dirty.ratio");
                v.parse()
                    .map_err(|_| invalid("min.cleanable.dirty.ratio", &v, "not a valid number"))?
            },
            min_compaction_lag_ms: num("min.compaction.lag.ms")?,
            max_compaction_lag_ms: num("max.compaction.lag.ms")?,
            delete_retention_ms: num("delete.retention.ms")?,
        })
    }

    /// Whether `cleanup.policy` includes `compact` (the log cleaner keeps the latest record of
    /// every key).
    pub fn compact(&self) -> bool {
        policy_has(&self.cleanup_policy, "compact")
    }

    /// Whether `cleanup.policy` includes `delete` (retention by time and size applies).
    pub fn delete(&self) -> bool {
        policy_has(&self.cleanup_policy, "delete")
    }
}

fn policy_has(policy: &str, item: &str) -> bool {
    policy.split(',').any(|p| p.trim() == item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(o: &[(&str, &str)]) -> BrokerConfig {
        let o: Vec<(String, String)> = o
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::load(None, &[], &o).unwrap().config
    }

    #[test]
    fn resolution_order() {
        let b = broker(&[("log.retention.hours", "1"), ("message.max.bytes", "5000")]);
        let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
        assert_eq!(t.retention_ms, 3_600_000);
        assert_eq!(t.max_message_bytes, 5000);
        assert_eq!(t.segment_bytes, 1073741824);
        assert!(!t.message_timestamp_type_log_append);
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "10".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let t = TopicConfig::resolve(&b, &o).unwrap();
        assert_eq!(t.retention_ms, 10);
        assert!(t.message_timestamp_type_log_append);
        assert_eq!(t.flush_messages, i64::MAX);
    }

    #[test]
    fn cleaner_settings_and_policies() {
        let t = TopicConfig::resolve(&broker(&[]), &BTreeMap::new()).unwrap();
        assert_eq!(t.min_cleanable_dirty_ratio, 0.5);
        assert_eq!(t.min_compaction_lag_ms, 0);
        assert_eq!(t.max_compaction_lag_ms, i64::MAX);
        assert_eq!(t.delete_retention_ms, 86_400_000);
        assert!(t.delete() && !t.compact());
        let b = broker(&[
            ("log.cleanup.policy", "compact"),
            ("log.cleaner.min.cleanable.ratio", "0.1"),
            ("log.cleaner.delete.retention.ms", "5"),
        ]);
        let t = TopicConfig::resolve(&b, &BTreeMap::new()).unwrap();
        assert!(t.compact() && !t.delete());
        assert_eq!(
            (t.min_cleanable_dirty_ratio, t.delete_retention_ms),
            (0.1, 5)
        );
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact, delete".to_string());
        o.insert("min.cleanable.dirty.ratio".to_string(), "0.01".to_string());
        let t = TopicConfig::resolve(&b, &o).unwrap();
        assert!(t.compact() && t.delete());
        assert_eq!(t.min_cleanable_dirty_ratio, 0.01);
        assert_eq!(b.log_cleaner_threads, 1);
        assert_eq!(b.log_cleaner_dedupe_buffer_size, 134_217_728);
        assert_eq!(b.log_cleaner_backoff_ms, 15_000);
        assert!(b.log_cleaner_enable);
    }

    #[test]
    fn validation() {
        assert!(validate_topic_config("retention.ms", "100").is_ok());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(matches!(
            validate_topic_config("retention.ms", "-5"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            validate_topic_config("retention.ms", "x"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(
            validate_topic_config("nope", "1"),
            Err(ConfigError::UnknownTopicConfig(_))
        ));
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "forever").is_err());
        assert!(validate_topic_config("compression.type", "zstd").is_ok());
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "0.3").is_ok());
        assert!(validate_topic_config("preallocate", "maybe").is_err());
        assert!(validate_topic_config("max.message.bytes", "99999999999").is_err());
    }
}
