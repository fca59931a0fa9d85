//! Runnel's configuration: Kafka's `server.properties` format and keys, the precedence of
//! defaults < file < `RUNNEL_*` environment variables < `--override`, validation that names the
//! offending key, and the broker and topic config tables that DescribeConfigs reports.

pub mod cluster;
pub mod properties;
pub mod reference;
pub mod tables;
pub mod topic;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub use cluster::{ClusterConfig, Voter};
pub use properties::parse_properties;
pub use tables::{
    broker_config_entries, topic_config_entries, ConfigEntry, ConfigKind, TopicConfigEntry,
};
pub use topic::{validate_topic_config, TopicConfig};

/// Errors while loading or validating configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for configuration {key}: {reason}")]
    Invalid {
        /// The key.
        key: String,
        /// The value given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A topic config name Kafka does not know.
    #[error("unknown topic config {0}")]
    UnknownTopicConfig(String),
    /// The properties file could not be read or parsed.
    #[error("{0}")]
    File(String),
}

/// Where a config value came from, with Kafka's DescribeConfigs source codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// A topic-level override.
    DynamicTopicConfig,
    /// A dynamic per-broker override.
    DynamicBrokerConfig,
    /// A dynamic cluster-wide broker default.
    DynamicDefaultBrokerConfig,
    /// Set in the file, the environment or on the command line.
    StaticBrokerConfig,
    /// The built-in default.
    Default,
}

impl ConfigSource {
    /// Kafka's code for this source in DescribeConfigs responses.
    pub fn as_kafka_code(&self) -> i8 {
        match self {
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// A listener: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name (e.g. PLAINTEXT).
    pub name: String,
    /// Host; empty means every interface.
    pub host: String,
    /// Port (0 = any free port).
    pub port: u16,
}

/// Parses a comma-separated listener list.
pub fn parse_listeners(key: &str, value: &str) -> Result<Vec<Listener>, ConfigError> {
    let bad = |reason: &str| ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(bad("listener name must be letters, digits, '_' or '-'"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r
                .split_once("]:")
                .ok_or_else(|| bad("expected [ipv6]:port"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected host:port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port.parse().map_err(|_| bad("port must be 0-65535"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l: &Listener| l.name == name) {
            return Err(bad("each listener name may appear once"));
        }
        out.push(Listener { name, host, port });
    }
    Ok(out)
}

/// Parses a comma-separated list of `http://host:port` (the scheme may be left out; an empty
/// host means every interface) into (host, port) pairs.
pub fn parse_http_listeners(value: &str) -> Result<Vec<(String, u16)>, String> {
    let mut out = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let rest = match item.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{item}: only http is served (not {scheme}); put a TLS proxy in front for https"
                ))
            }
            None => item,
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            r.split_once("]:")
                .ok_or_else(|| format!("{item}: expected http://[ipv6]:port"))?
        } else {
            rest.rsplit_once(':')
                .ok_or_else(|| format!("{item}: expected http://host:port"))?
        };
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{item}: the port must be 0-65535"))?;
        out.push((host.to_string(), port));
    }
    Ok(out)
}

/// The broker's typed configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`.
    pub node_id: i32,
    /// `listeners`.
    pub listeners: Vec<Listener>,
    /// `advertised.listeners` (defaults to `listeners`, with an empty or 0.0.0.0 host as localhost).
    pub advertised_listeners: Vec<Listener>,
    /// `listener.security.protocol.map`.
    pub listener_security_protocol_map: Vec<(String, String)>,
    /// `log.dirs` (or `log.dir`): every directory holding partition logs.
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`: where the metadata log (`__cluster_metadata-0`) lives; `None` means
    /// the first of `log.dirs`, as in Kafka. See [`BrokerConfig::metadata_log_dir`].
    pub metadata_log_dir: Option<PathBuf>,
    /// `num.partitions`.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `auto.create.topics.enable` (Runnel's default: false).
    pub auto_create_topics_enable: bool,
    /// Effective retention in ms (`log.retention.ms|minutes|hours`).
    pub log_retention_ms: i64,
    /// `log.retention.bytes`.
    pub log_retention_bytes: i64,
    /// `log.segment.bytes`.
    pub log_segment_bytes: i64,
    /// Effective roll time in ms (`log.roll.ms|hours`).
    pub log_roll_ms: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: i64,
    /// `message.max.bytes`.
    pub message_max_bytes: i32,
    /// `socket.request.max.bytes`.
    pub socket_request_max_bytes: i32,
    /// `log.flush.interval.messages`.
    pub log_flush_interval_messages: i64,
    /// `log.flush.interval.ms` (None: left to the OS).
    pub log_flush_interval_ms: Option<i64>,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_log_num_partitions: i32,
    /// `transaction.state.log.replication.factor`.
    pub transaction_state_log_replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub transaction_state_log_min_isr: i32,
    /// `offsets.topic.segment.bytes`: segment size of `__consumer_offsets`.
    pub offsets_topic_segment_bytes: i32,
    /// `transaction.state.log.segment.bytes`: segment size of `__transaction_state`.
    pub transaction_state_log_segment_bytes: i32,
    /// `offsets.commit.timeout.ms`.
    pub offsets_commit_timeout_ms: i32,
    /// `log.index.interval.bytes`.
    pub log_index_interval_bytes: i32,
    /// `log.index.size.max.bytes`.
    pub log_index_size_max_bytes: i32,
    /// `log.message.timestamp.type`.
    pub log_message_timestamp_type: String,
    /// `log.cleanup.policy`.
    pub log_cleanup_policy: String,
    /// `log.cleaner.enable`.
    pub log_cleaner_enable: bool,
    /// `log.cleaner.threads`.
    pub log_cleaner_threads: i32,
    /// `log.cleaner.dedupe.buffer.size` (bytes, shared by the cleaner threads).
    pub log_cleaner_dedupe_buffer_size: i64,
    /// `log.cleaner.backoff.ms`.
    pub log_cleaner_backoff_ms: i64,
    /// `log.segment.delete.delay.ms`.
    pub log_segment_delete_delay_ms: i64,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `compression.type`.
    pub compression_type: String,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`.
    pub group_min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub group_max_session_timeout_ms: i32,
    /// `group.max.size`.
    pub group_max_size: i32,
    /// `transaction.max.timeout.ms`.
    pub transaction_max_timeout_ms: i32,
    /// `transactional.id.expiration.ms`.
    pub transactional_id_expiration_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`.
    pub group_consumer_heartbeat_interval_ms: i32,
    /// `group.consumer.session.timeout.ms`.
    pub group_consumer_session_timeout_ms: i32,
    /// `offset.metadata.max.bytes`.
    pub offset_metadata_max_bytes: i32,
    /// `offsets.retention.minutes`.
    pub offsets_retention_minutes: i32,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval_ms: i64,
    /// `cluster.id` (Runnel: used when the metadata log is first created).
    pub cluster_id: Option<String>,
    /// `runnel.fsync.on.ack`: fsync before acknowledging acks=all (Runnel only).
    pub fsync_on_ack: bool,
    /// `log.format`: `text` or `json` (Runnel only: the broker's own log lines).
    pub log_format: String,
    /// `metrics.listeners`: (host, port) of the HTTP metrics and health endpoint (Runnel only;
    /// empty: off; an empty host means every interface).
    pub metrics_listeners: Vec<(String, u16)>,
    /// `console.listeners`: (host, port) of the web console served beside the broker (Runnel
    /// only; empty: off).
    pub console_listeners: Vec<(String, u16)>,
    /// `console.users.file`: the console's users (name:role:hash lines); unset: no login.
    pub console_users_file: Option<PathBuf>,
    /// Where this node stands in a cluster (roles, voters, listeners between nodes, timings).
    pub cluster: ClusterConfig,
    /// Every key set explicitly (file, environment or override) with its value.
    pub explicit: BTreeMap<String, String>,
}

/// A loaded configuration with the warnings and the effective key/value list to log.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The typed configuration.
    pub config: BrokerConfig,
    /// Warnings (unknown keys, environment variables that name no key).
    pub warnings: Vec<String>,
    /// Every known key with its effective value and source, sorted by key.
    pub effective: Vec<(String, String, ConfigSource)>,
}

/// Maps an environment variable name to a config key: `RUNNEL_LOG_DIRS` → `log.dirs`.
/// `RUNNEL_LOG` is the log filter, not a setting.
pub fn env_to_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("RUNNEL_")?;
    if rest == "LOG" || rest.is_empty() {
        return None;
    }
    Some(rest.to_ascii_lowercase().replace('_', "."))
}

struct Raw<'a> {
    values: &'a BTreeMap<String, String>,
}

impl Raw<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(|s| s.as_str())
            .or_else(|| tables::broker_entry(key).and_then(|e| e.default))
    }
    fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError> {
        let v = self.get(key).unwrap_or("");
        v.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
            key: key.to_string(),
            value: v.to_string(),
            reason: "not a valid number".to_string(),
        })
    }
    fn opt<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(_) => self.parse(key).map(Some),
        }
    }
    fn boolean(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.get(key).unwrap_or("false").trim();
        match v.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid(key, v, "expected true or false")),
        }
    }
}

fn invalid(key: &str, value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Checks `v` against the key's floor in [`tables::broker_min`] (the same floor the
/// configuration reference prints).
fn at_least<T: Into<i64> + std::fmt::Display + Copy>(key: &str, v: T) -> Result<T, ConfigError> {
    let min = tables::broker_min(key).unwrap_or(i64::MIN);
    if v.into() < min {
        return Err(invalid(
            key,
            &v.to_string(),
            &format!("must be at least {min}"),
        ));
    }
    Ok(v)
}

impl BrokerConfig {
    /// Loads the configuration: defaults < `file` < `env` (`RUNNEL_*`) < `overrides`.
    pub fn load(
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &[(String, String)],
    ) -> Result<LoadedConfig, ConfigError> {
        let mut warnings = Vec::new();
        let mut values: BTreeMap<String, String> = BTreeMap::new();
        let mut set = |k: &str, v: &str, origin: &str, warnings: &mut Vec<String>| {
            let k = k.trim().to_string();
            if tables::broker_entry(&k).is_none() && tables::listener_prefixed_entry(&k).is_none() {
                if tables::is_accepted_kafka_key(&k) {
                    warnings.push(format!(
                        "{origin}: {k} is a Kafka setting Runnel accepts but does not use"
                    ));
                } else {
                    warnings.push(format!("{origin}: unknown configuration key {k} (ignored)"));
                }
            }
            values.insert(k, v.trim().to_string());
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::File(format!("cannot read {}: {e}", path.display())))?;
            for (k, v) in parse_properties(&text)? {
                set(&k, &v, &path.display().to_string(), &mut warnings);
            }
        }
        for (var, v) in env {
            if let Some(k) = env_to_key(var) {
                if tables::broker_entry(&k).is_none() {
                    warnings.push(format!(
                        "environment: {var} names no known configuration key (ignored)"
                    ));
                    continue;
                }
                set(&k, v, "environment", &mut warnings);
            }
        }
        for (k, v) in overrides {
            set(k, v, "--override", &mut warnings);
        }
        let config = Self::from_values(values)?;
        let effective = config
            .describe()
            .into_iter()
            .map(|(k, v, s)| (k, v.unwrap_or_else(|| "null".into()), s))
            // Listener-prefixed keys (listener.name.<l>.[<mechanism>.]<key>) as given.
            .chain(config.explicit.iter().filter_map(|(k, v)| {
                tables::listener_prefixed_entry(k)
                    .map(|e| (k.clone(), v.clone(), ConfigSource::StaticBrokerConfig, e))
                    .map(|(k, v, s, e)| (k, if e.sensitive { "[hidden]".into() } else { v }, s))
            }))
            .map(|(k, v, s)| {
                let secret = tables::broker_entry(&k).is_some_and(|e| e.sensitive);
                (
                    k,
                    if secret && v != "null" {
                        "[hidden]".into()
                    } else {
                        v
                    },
                    s,
                )
            })
            .collect();
        Ok(LoadedConfig {
            config,
            warnings,
            effective,
        })
    }

    fn from_values(values: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let raw = Raw { values: &values };
        let listeners = parse_listeners("listeners", raw.get("listeners").unwrap_or(""))?;
        if listeners.is_empty() {
            return Err(invalid("listeners", "", "at least one listener is needed"));
        }
        let advertised_listeners = match values.get("advertised.listeners") {
            Some(v) => {
                let a = parse_listeners("advertised.listeners", v)?;
                for l in &a {
                    if !listeners.iter().any(|x| x.name == l.name) {
                        return Err(invalid(
                            "advertised.listeners",
                            v,
                            &format!("listener {} is not in listeners", l.name),
                        ));
                    }
                }
                a
            }
            None => listeners
                .iter()
                .map(|l| Listener {
                    name: l.name.clone(),
                    host: if l.host.is_empty() || l.host == "0.0.0.0" || l.host == "::" {
                        "localhost".into()
                    } else {
                        l.host.clone()
                    },
                    port: l.port,
                })
                .collect(),
        };
        let map_text = raw.get("listener.security.protocol.map").unwrap_or("");
        let mut map = Vec::new();
        for item in map_text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (n, p) = item.split_once(':').ok_or_else(|| {
                invalid(
                    "listener.security.protocol.map",
                    map_text,
                    "expected NAME:PROTOCOL pairs",
                )
            })?;
            let p = p.trim().to_ascii_uppercase();
            if !["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(&p.as_str()) {
                return Err(invalid(
                    "listener.security.protocol.map",
                    map_text,
                    &format!("unknown security protocol {p}"),
                ));
            }
            map.push((n.trim().to_ascii_uppercase(), p));
        }
        for l in &listeners {
            if !map.iter().any(|(n, _)| n == &l.name) {
                return Err(invalid(
                    "listener.security.protocol.map",
                    map_text,
                    &format!("no security protocol for listener {}", l.name),
                ));
            }
        }
        let mapped_names: Vec<String> = map.iter().map(|(n, _)| n.clone()).collect();
        let cluster = ClusterConfig::from_values(&cluster::ClusterKeys {
            node_id: raw.parse("node.id")?,
            listeners: &listeners,
            mapped_names: &mapped_names,
            get: &|k: &str| raw.get(k).map(str::to_string),
        })?;
        let log_dirs_text = values
            .get("log.dirs")
            .or_else(|| values.get("log.dir"))
            .cloned()
            .unwrap_or_else(|| raw.get("log.dirs").unwrap_or("./data").to_string());
        let log_dirs: Vec<PathBuf> = log_dirs_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(invalid(
                "log.dirs",
                &log_dirs_text,
                "at least one directory is needed",
            ));
        }
        let retention_ms = if let Some(ms) = raw.opt::<i64>("log.retention.ms")? {
            ms
        } else if let Some(m) = raw.opt::<i64>("log.retention.minutes")? {
            m.saturating_mul(60_000)
        } else {
            raw.parse::<i64>("log.retention.hours")?
                .saturating_mul(3_600_000)
        };
        // -1: unlimited.
        at_least("log.retention.ms", retention_ms)?;
        let roll_ms = match raw.opt::<i64>("log.roll.ms")? {
            Some(ms) => ms,
            None => raw
                .parse::<i64>("log.roll.hours")?
                .saturating_mul(3_600_000),
        };
        let ts_type = raw
            .get("log.message.timestamp.type")
            .unwrap_or("CreateTime")
            .to_string();
        if ts_type != "CreateTime" && ts_type != "LogAppendTime" {
            return Err(invalid(
                "log.message.timestamp.type",
                &ts_type,
                "must be CreateTime or LogAppendTime",
            ));
        }
        let cleanup = raw
            .get("log.cleanup.policy")
            .unwrap_or("delete")
            .to_string();
        topic::check_cleanup_policy("log.cleanup.policy", &cleanup)?;
        let compression = raw
            .get("compression.type")
            .unwrap_or("producer")
            .to_string();
        topic::check_compression("compression.type", &compression)?;
        let flush_ms = raw.opt::<i64>("log.flush.interval.ms")?;
        if let Some(ms) = flush_ms {
            at_least("log.flush.interval.ms", ms)?;
        }
        let cfg = BrokerConfig {
            node_id: at_least("node.id", raw.parse("node.id")?)?,
            listeners,
            advertised_listeners,
            listener_security_protocol_map: map,
            log_dirs,
            metadata_log_dir: raw
                .get("metadata.log.dir")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            num_partitions: at_least("num.partitions", raw.parse("num.partitions")?)?,
            default_replication_factor: at_least(
                "default.replication.factor",
                raw.parse("default.replication.factor")?,
            )?,
            auto_create_topics_enable: raw.boolean("auto.create.topics.enable")?,
            log_retention_ms: retention_ms,
            log_retention_bytes: at_least(
                "log.retention.bytes",
                raw.parse("log.retention.bytes")?,
            )?,
            log_segment_bytes: at_least("log.segment.bytes", raw.parse("log.segment.bytes")?)?,
            log_roll_ms: at_least("log.roll.ms", roll_ms)?,
            log_retention_check_interval_ms: at_least(
                "log.retention.check.interval.ms",
                raw.parse("log.retention.check.interval.ms")?,
            )?,
            message_max_bytes: at_least("message.max.bytes", raw.parse("message.max.bytes")?)?,
            socket_request_max_bytes: at_least(
                "socket.request.max.bytes",
                raw.parse("socket.request.max.bytes")?,
            )?,
            log_flush_interval_messages: at_least(
                "log.flush.interval.messages",
                raw.parse("log.flush.interval.messages")?,
            )?,
            log_flush_interval_ms: flush_ms,
            offsets_topic_num_partitions: at_least(
                "offsets.topic.num.partitions",
                raw.parse("offsets.topic.num.partitions")?,
            )?,
            offsets_topic_replication_factor: at_least(
                "offsets.topic.replication.factor",
                raw.parse("offsets.topic.replication.factor")?,
            )?,
            transaction_state_log_num_partitions: at_least(
                "transaction.state.log.num.partitions",
                raw.parse("transaction.state.log.num.partitions")?,
            )?,
            transaction_state_log_replication_factor: at_least(
                "transaction.state.log.replication.factor",
                raw.parse("transaction.state.log.replication.factor")?,
            )?,
            transaction_state_log_min_isr: at_least(
                "transaction.state.log.min.isr",
                raw.parse("transaction.state.log.min.isr")?,
            )?,
            offsets_topic_segment_bytes: at_least(
                "offsets.topic.segment.bytes",
                raw.parse("offsets.topic.segment.bytes")?,
            )?,
            transaction_state_log_segment_bytes: at_least(
                "transaction.state.log.segment.bytes",
                raw.parse("transaction.state.log.segment.bytes")?,
            )?,
            offsets_commit_timeout_ms: at_least(
                "offsets.commit.timeout.ms",
                raw.parse("offsets.commit.timeout.ms")?,
            )?,
            log_index_interval_bytes: at_least(
                "log.index.interval.bytes",
                raw.parse("log.index.interval.bytes")?,
            )?,
            log_index_size_max_bytes: at_least(
                "log.index.size.max.bytes",
                raw.parse("log.index.size.max.bytes")?,
            )?,
            log_message_timestamp_type: ts_type,
            log_cleanup_policy: cleanup,
            log_cleaner_enable: raw.boolean("log.cleaner.enable")?,
            log_cleaner_threads: at_least(
                "log.cleaner.threads",
                raw.parse("log.cleaner.threads")?,
            )?,
            log_cleaner_dedupe_buffer_size: at_least(
                "log.cleaner.dedupe.buffer.size",
                raw.parse("log.cleaner.dedupe.buffer.size")?,
            )?,
            log_cleaner_backoff_ms: at_least(
                "log.cleaner.backoff.ms",
                raw.parse("log.cleaner.backoff.ms")?,
            )?,
            log_segment_delete_delay_ms: at_least(
                "log.segment.delete.delay.ms",
                raw.parse("log.segment.delete.delay.ms")?,
            )?,
            min_insync_replicas: at_least(
                "min.insync.replicas",
                raw.parse("min.insync.replicas")?,
            )?,
            compression_type: compression,
            group_initial_rebalance_delay_ms: at_least(
                "group.initial.rebalance.delay.ms",
                raw.parse("group.initial.rebalance.delay.ms")?,
            )?,
            group_min_session_timeout_ms: raw.parse("group.min.session.timeout.ms")?,
            group_max_session_timeout_ms: raw.parse("group.max.session.timeout.ms")?,
            group_max_size: at_least("group.max.size", raw.parse("group.max.size")?)?,
            transaction_max_timeout_ms: at_least(
                "transaction.max.timeout.ms",
                raw.parse("transaction.max.timeout.ms")?,
            )?,
            transactional_id_expiration_ms: at_least(
                "transactional.id.expiration.ms",
                raw.parse("transactional.id.expiration.ms")?,
            )?,
            group_consumer_heartbeat_interval_ms: at_least(
                "group.consumer.heartbeat.interval.ms",
                raw.parse("group.consumer.heartbeat.interval.ms")?,
            )?,
            group_consumer_session_timeout_ms: at_least(
                "group.consumer.session.timeout.ms",
                raw.parse("group.consumer.session.timeout.ms")?,
            )?,
            offset_metadata_max_bytes: at_least(
                "offset.metadata.max.bytes",
                raw.parse("offset.metadata.max.bytes")?,
            )?,
            offsets_retention_minutes: at_least(
                "offsets.retention.minutes",
                raw.parse("offsets.retention.minutes")?,
            )?,
            offsets_retention_check_interval_ms: at_least(
                "offsets.retention.check.interval.ms",
                raw.parse("offsets.retention.check.interval.ms")?,
            )?,
            cluster_id: values.get("cluster.id").cloned(),
            fsync_on_ack: raw.boolean("runnel.fsync.on.ack")?,
            log_format: match raw.get("log.format").unwrap_or("text").trim() {
                f @ ("text" | "json") => f.to_string(),
                other => return Err(invalid("log.format", other, "must be text or json")),
            },
            metrics_listeners: {
                let v = raw.get("metrics.listeners").unwrap_or("");
                parse_http_listeners(v)
                    .map_err(|reason| invalid("metrics.listeners", v, &reason))?
            },
            console_listeners: {
                let v = raw.get("console.listeners").unwrap_or("");
                parse_http_listeners(v)
                    .map_err(|reason| invalid("console.listeners", v, &reason))?
            },
            console_users_file: raw
                .get("console.users.file")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            cluster,
            explicit: values.clone(),
        };
        if cfg.group_min_session_timeout_ms > cfg.group_max_session_timeout_ms {
            return Err(invalid(
                "group.min.session.timeout.ms",
                &cfg.group_min_session_timeout_ms.to_string(),
                "must not exceed group.max.session.timeout.ms",
            ));
        }
        Ok(cfg)
    }

    /// The directory of the metadata log: `metadata.log.dir`, else the first of `log.dirs`.
    pub fn metadata_log_dir(&self) -> &std::path::Path {
        self.metadata_log_dir
            .as_deref()
            .or(self.log_dirs.first().map(PathBuf::as_path))
            .unwrap_or(std::path::Path::new("./data"))
    }

    /// Keys set explicitly (file, environment or `--override`).
    pub fn explicit_keys(&self) -> HashSet<&str> {
        self.explicit.keys().map(|k| k.as_str()).collect()
    }

    /// The effective value of a broker key as Kafka would print it, if the key is known.
    pub fn value_of(&self, key: &str) -> Option<String> {
        match key {
            // Derived keys report the effective value.
            "log.retention.ms" => Some(self.log_retention_ms.to_string()),
            "log.roll.ms" => Some(self.log_roll_ms.to_string()),
            "log.flush.interval.ms" => {
                Some(self.log_flush_interval_ms.unwrap_or(i64::MAX).to_string())
            }
            "log.dirs" => Some(
                self.log_dirs
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            "advertised.listeners" => Some(
                self.advertised_listeners
                    .iter()
                    .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => {
                self.explicit.get(key).cloned().or_else(|| {
                    tables::broker_entry(key).and_then(|e| e.default.map(str::to_string))
                })
            }
        }
    }

    /// Every known broker key with its effective value and source.
    pub fn describe(&self) -> Vec<(String, Option<String>, ConfigSource)> {
        broker_config_entries()
            .iter()
            .map(|e| {
                let source = if self.explicit.contains_key(e.name) {
                    ConfigSource::StaticBrokerConfig
                } else {
                    ConfigSource::Default
                };
                (e.name.to_string(), self.value_of(e.name), source)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = BrokerConfig::load(None, &[], &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let c = c.config;
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listeners,
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9092
            }]
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
        assert!(!c.auto_create_topics_enable);
        assert_eq!(c.log_retention_ms, 168 * 3_600_000);
        assert_eq!(c.message_max_bytes, 1048588);
        assert_eq!(c.socket_request_max_bytes, 104857600);
        assert_eq!(c.offsets_topic_num_partitions, 50);
    }

    #[test]
    fn several_log_dirs_and_the_metadata_log_dir() {
        let c = BrokerConfig::load(None, &[], &kv(&[("log.dirs", "/d1, /d2,/d3")]))
            .unwrap()
            .config;
        assert_eq!(
            c.log_dirs,
            vec![
                PathBuf::from("/d1"),
                PathBuf::from("/d2"),
                PathBuf::from("/d3")
            ]
        );
        // The metadata log defaults to the first log dir, as in Kafka.
        assert_eq!(c.metadata_log_dir(), std::path::Path::new("/d1"));
        let c = BrokerConfig::load(
            None,
            &[],
            &kv(&[("log.dirs", "/d1,/d2"), ("metadata.log.dir", "/m")]),
        )
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.config.metadata_log_dir(), std::path::Path::new("/m"));
        assert_eq!(c.config.value_of("metadata.log.dir").as_deref(), Some("/m"));
    }

    #[test]
    fn precedence_file_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("server.properties");
        std::fs::write(&f, "num.partitions=2\nlog.dirs=/a\nnode.id=5\n").unwrap();
        let env = kv(&[
            ("RUNNEL_LOG_DIRS", "/b"),
            ("RUNNEL_NODE_ID", "6"),
            ("RUNNEL_LOG", "debug"),
            ("PATH", "/x"),
        ]);
        let c = BrokerConfig::load(Some(&f), &env, &kv(&[("node.id", "7")])).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(c.config.num_partitions, 2);
        assert_eq!(c.config.log_dirs, vec![PathBuf::from("/b")]);
        assert_eq!(c.config.node_id, 7);
        let eff: Vec<_> = c
            .effective
            .iter()
            .filter(|(k, _, _)| k == "node.id")
            .collect();
        assert_eq!(eff[0].1, "7");
        assert_eq!(eff[0].2, ConfigSource::StaticBrokerConfig);
    }

    #[test]
    fn env_mapping() {
        assert_eq!(env_to_key("RUNNEL_LOG_DIRS").as_deref(), Some("log.dirs"));
        assert_eq!(
            env_to_key("RUNNEL_AUTO_CREATE_TOPICS_ENABLE").as_deref(),
            Some("auto.create.topics.enable")
        );
        assert_eq!(env_to_key("RUNNEL_LOG"), None);
        assert_eq!(env_to_key("HOME"), None);
        let c = BrokerConfig::load(None, &kv(&[("RUNNEL_NO_SUCH_THING", "1")]), &[]).unwrap();
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn invalid_values_name_the_key() {
        for (k, v) in [
            ("log.segment.bytes", "abc"),
            ("num.partitions", "0"),
            ("auto.create.topics.enable", "yes"),
            ("listeners", "localhost:9092"),
            ("listeners", "PLAINTEXT://localhost:99999"),
            ("socket.request.max.bytes", "-1"),
            ("log.message.timestamp.type", "Now"),
            ("log.retention.hours", "x"),
            ("advertised.listeners", "OTHER://h:1"),
        ] {
            let err = BrokerConfig::load(None, &[], &kv(&[(k, v)])).unwrap_err();
            assert!(err.to_string().contains(k), "{k}: {err}");
        }
    }

    #[test]
    fn unknown_keys_warn() {
        let c = BrokerConfig::load(
            None,
            &[],
            &kv(&[("no.such.key", "1"), ("num.network.threads", "3")]),
        )
        .unwrap();
        assert_eq!(c.warnings.len(), 2);
        assert!(c.warnings[0].contains("no.such.key") || c.warnings[1].contains("no.such.key"));
    }

    #[test]
    fn retention_precedence() {
        let c = |o: &[(&str, &str)]| {
            BrokerConfig::load(None, &[], &kv(o))
                .unwrap()
                .config
                .log_retention_ms
        };
        assert_eq!(c(&[("log.retention.hours", "1")]), 3_600_000);
        assert_eq!(
            c(&[("log.retention.hours", "1"), ("log.retention.minutes", "2")]),
            120_000
        );
        assert_eq!(
            c(&[("log.retention.minutes", "2"), ("log.retention.ms", "5")]),
            5
        );
        assert_eq!(c(&[("log.retention.ms", "-1")]), -1);
    }

    #[test]
    fn listeners_parse() {
        let l = parse_listeners("listeners", "PLAINTEXT://:9092,INTERNAL://[::1]:9093").unwrap();
        assert_eq!(l[0].host, "");
        assert_eq!(
            l[1],
            Listener {
                name: "INTERNAL".into(),
                host: "::1".into(),
                port: 9093
            }
        );
        assert!(parse_listeners("listeners", "A://h:1,A://h:2").is_err());
        let c = BrokerConfig::load(None, &[], &kv(&[("listeners", "PLAINTEXT://0.0.0.0:9092")]))
            .unwrap()
            .config;
        assert_eq!(c.advertised_listeners[0].host, "localhost");
        let c = BrokerConfig::load(
            None,
            &[],
            &kv(&[
                ("listeners", "PLAINTEXT://127.0.0.1:1"),
                ("advertised.listeners", "PLAINTEXT://example:2"),
            ]),
        )
        .unwrap()
        .config;
        assert_eq!(
            (
                c.advertised_listeners[0].host.as_str(),
                c.advertised_listeners[0].port
            ),
            ("example", 2)
        );
    }

    #[test]
    fn shipped_server_properties_loads_cleanly_and_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.properties");
        let c = BrokerConfig::load(Some(&path), &[], &[]).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let d = BrokerConfig::load(None, &[], &[]).unwrap();
        let strip = |e: &[(String, String, ConfigSource)]| {
            e.iter()
                .map(|(k, v, _)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(&c.effective), strip(&d.effective));
    }
}
