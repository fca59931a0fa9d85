//! Client settings with Kafka's defaults, settable by Kafka's property names
//! (`linger.ms`, `auto.offset.reset`, ...) so that tools can pass `-X key=value` through.
//! The security settings (`security.protocol`, `ssl.*`, `sasl.*`) are [`crate::security`]'s.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::record::{Compression, Header};
use crate::security::SecuritySettings;

/// Settings shared by every role: where the cluster is and how to talk to it.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses, any of which can answer Metadata.
    pub bootstrap: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `reconnect.backoff.ms`: the first wait after a failed connect.
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms`: the wait doubles up to this.
    pub reconnect_backoff_max: Duration,
    /// `retry.backoff.ms`: the wait before retrying a retriable error.
    pub retry_backoff: Duration,
    /// `metadata.max.age.ms`.
    pub metadata_max_age: Duration,
    /// `security.protocol`, `ssl.*` and `sasl.*`.
    pub security: SecuritySettings,
}

impl ClientConfig {
    /// Kafka's defaults with a comma-separated bootstrap list.
    pub fn new(bootstrap: &str) -> ClientConfig {
        ClientConfig {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: "runnel".to_string(),
            request_timeout: Duration::from_millis(30_000),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_millis(1000),
            retry_backoff: Duration::from_millis(100),
            metadata_max_age: Duration::from_millis(300_000),
            security: SecuritySettings::default(),
        }
    }

    /// Sets one setting by its Kafka name; `Ok(false)` when the name is not a client setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "bootstrap.servers" => self.bootstrap = ClientConfig::new(value).bootstrap,
            "client.id" => self.client_id = value.to_string(),
            "request.timeout.ms" => self.request_timeout = ms(key, value)?,
            "reconnect.backoff.ms" => self.reconnect_backoff = ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = ms(key, value)?,
            _ => return self.security.set(key, value),
        }
        Ok(true)
    }
}

/// How many acknowledgements a produce waits for (`acks`).
pub type Acks = i16;

/// Producer settings.
#[derive(Clone, Debug)]
pub struct ProducerConfig {
    /// Connection settings.
    pub client: ClientConfig,
    /// `acks`: 0, 1 or -1 (all). Default all.
    pub acks: Acks,
    /// `linger.ms`: how long a batch waits for more records (Kafka 4 default 5 ms).
    pub linger: Duration,
    /// `batch.size`: a batch is sent once it holds this many bytes.
    pub batch_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `enable.idempotence`: on by default, as in Kafka 3+ (needs acks=all).
    pub idempotence: bool,
    /// `delivery.timeout.ms`: the bound on a record's time from `send` to its acknowledgement.
    pub delivery_timeout: Duration,
    /// `max.request.size`: the largest batch, and the largest single record.
    pub max_request_size: usize,
    /// `buffer.memory`: records waiting to be sent, in bytes; `send` waits when it is full.
    pub buffer_memory: usize,
    /// `partitioner.ignore.keys`: spread keyed records like keyless ones.
    pub ignore_keys: bool,
    /// `max.block.ms`: how long `send` waits for metadata while no broker answers.
    pub max_block: Duration,
}

impl ProducerConfig {
    /// Kafka's producer defaults.
    pub fn new(client: ClientConfig) -> ProducerConfig {
        ProducerConfig {
            client,
            acks: -1,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            idempotence: true,
            delivery_timeout: Duration::from_millis(120_000),
            max_request_size: 1024 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            ignore_keys: false,
            max_block: Duration::from_millis(60_000),
        }
    }

    /// Sets one setting by its Kafka name (producer or client); an unknown name is
    /// [`Error::UnknownSetting`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if self.client.set(key, value)? {
            return Ok(());
        }
        match key {
            "acks" => {
                self.acks = match value {
                    "all" | "-1" => -1,
                    "0" => 0,
                    "1" => 1,
                    _ => {
                        return Err(Error::Config(format!(
                            "acks must be 0, 1 or all, not {value:?}"
                        )))
                    }
                }
            }
            "linger.ms" => self.linger = ms(key, value)?,
            "batch.size" => self.batch_size = num(key, value)?,
            "compression.type" => self.compression = Compression::parse(value)?,
            "enable.idempotence" => self.idempotence = boolean(key, value)?,
            "delivery.timeout.ms" => self.delivery_timeout = ms(key, value)?,
            "max.request.size" => self.max_request_size = num(key, value)?,
            "buffer.memory" => self.buffer_memory = num(key, value)?,
            "partitioner.ignore.keys" => self.ignore_keys = boolean(key, value)?,
            "max.block.ms" => self.max_block = ms(key, value)?,
            // Accepted for compatibility; this client keeps one request in flight per partition
            // and retries until delivery.timeout.ms.
            "retries" | "max.in.flight.requests.per.connection" => {
                num::<u64>(key, value)?;
            }
            _ => return Err(Error::UnknownSetting(key.to_string())),
        }
        Ok(())
    }
}

/// `auto.offset.reset`: where to start when a partition has no committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The log end.
    Latest,
    /// Fail with OFFSET_OUT_OF_RANGE (Kafka's `none`).
    None,
}

/// `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsolationLevel {
    /// Every record, open transactions included.
    ReadUncommitted,
    /// Only committed records, up to the last stable offset.
    ReadCommitted,
}

/// A classic-protocol partition assignor run by the group leader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignorKind {
    /// Kafka's `range`: per topic, consecutive partitions to members in order.
    Range,
    /// Kafka's `cooperative-sticky`: balanced, keeps owned partitions, revokes incrementally.
    CooperativeSticky,
}

impl AssignorKind {
    /// The protocol name members announce in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Range => "range",
            AssignorKind::CooperativeSticky => "cooperative-sticky",
        }
    }
}

/// A predicate on a record's headers; records it refuses are dropped before they are decoded
/// any further or handed to the application.
pub type HeaderFilter = Arc<dyn Fn(&[Header]) -> bool + Send + Sync>;

/// Consumer settings.
#[derive(Clone)]
pub struct ConsumerConfig {
    /// Connection settings.
    pub client: ClientConfig,
    /// `group.id`: needed for `subscribe` and commits.
    pub group_id: Option<String>,
    /// `group.instance.id`: a static member.
    pub group_instance_id: Option<String>,
    /// `auto.offset.reset`, default latest.
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit`, default true (with a group).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms`, default 5 s.
    pub auto_commit_interval: Duration,
    /// `isolation.level`, default read_uncommitted.
    pub isolation_level: IsolationLevel,
    /// `session.timeout.ms`, default 45 s.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`, default 3 s.
    pub heartbeat_interval: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout, default 5 min.
    pub max_poll_interval: Duration,
    /// `fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `fetch.max.wait.ms`.
    pub fetch_max_wait: Duration,
    /// `fetch.max.bytes`.
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records`.
    pub max_poll_records: usize,
    /// How many fetched chunks the background fetcher may hold before the application takes
    /// them (the prefetch buffer's bound).
    pub prefetch_chunks: usize,
    /// `partition.assignment.strategy`, in preference order; default range, cooperative-sticky.
    pub assignors: Vec<AssignorKind>,
    /// Drops records whose headers it refuses.
    pub header_filter: Option<HeaderFilter>,
}

impl std::fmt::Debug for ConsumerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("client", &self.client)
            .field("group_id", &self.group_id)
            .field("auto_offset_reset", &self.auto_offset_reset)
            .field("isolation_level", &self.isolation_level)
            .finish_non_exhaustive()
    }
}

impl ConsumerConfig {
    /// Kafka's consumer defaults.
    pub fn new(client: ClientConfig) -> ConsumerConfig {
        ConsumerConfig {
            client,
            group_id: None,
            group_instance_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5000),
            isolation_level: IsolationLevel::ReadUncommitted,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3000),
            max_poll_interval: Duration::from_millis(300_000),
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            max_poll_records: 500,
            prefetch_chunks: 16,
            assignors: vec![AssignorKind::Range, AssignorKind::CooperativeSticky],
            header_filter: None,
        }
    }

    /// Sets one setting by its Kafka name (consumer or client); an unknown name is
    /// [`Error::UnknownSetting`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        if self.client.set(key, value)? {
            return Ok(());
        }
        match key {
            "group.id" => self.group_id = Some(value.to_string()),
            "group.instance.id" => self.group_instance_id = Some(value.to_string()),
            "auto.offset.reset" => {
                self.auto_offset_reset = match value {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => {
                        return Err(Error::Config(format!(
                            "auto.offset.reset must be earliest, latest or none, not {value:?}"
                        )))
                    }
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = boolean(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = ms(key, value)?,
            "isolation.level" => {
                self.isolation_level = match value {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => {
                        return Err(Error::Config(format!(
                        "isolation.level must be read_uncommitted or read_committed, not {value:?}"
                    )))
                    }
                }
            }
            "session.timeout.ms" => self.session_timeout = ms(key, value)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = ms(key, value)?,
            "max.poll.interval.ms" => self.max_poll_interval = ms(key, value)?,
            "fetch.min.bytes" => self.fetch_min_bytes = num(key, value)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = ms(key, value)?,
            "fetch.max.bytes" => self.fetch_max_bytes = num(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = num(key, value)?,
            "max.poll.records" => self.max_poll_records = num(key, value)?,
            "partition.assignment.strategy" => {
                let mut out = Vec::new();
                for name in value.split(',').map(str::trim) {
                    out.push(match name {
                        "range" | "org.apache.kafka.clients.consumer.RangeAssignor" => {
                            AssignorKind::Range
                        }
                        "cooperative-sticky"
                        | "org.apache.kafka.clients.consumer.CooperativeStickyAssignor" => {
                            AssignorKind::CooperativeSticky
                        }
                        _ => {
                            return Err(Error::Config(format!(
                                "unknown assignor {name:?} (range or cooperative-sticky)"
                            )))
                        }
                    });
                }
                self.assignors = out;
            }
            _ => return Err(Error::UnknownSetting(key.to_string())),
        }
        Ok(())
    }
}

fn num<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value
        .trim()
        .parse()
        .map_err(|_| Error::Config(format!("{key} expects a number, not {value:?}")))
}

fn ms(key: &str, value: &str) -> Result<Duration> {
    Ok(Duration::from_millis(num(key, value)?))
}

fn boolean(key: &str, value: &str) -> Result<bool> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Config(format!(
            "{key} expects true or false, not {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_by_kafka_name() {
        let mut p = ProducerConfig::new(ClientConfig::new("a:1, b:2"));
        assert_eq!(p.client.bootstrap, vec!["a:1", "b:2"]);
        p.set("acks", "1").unwrap();
        p.set("linger.ms", "20").unwrap();
        p.set("compression.type", "zstd").unwrap();
        p.set("client.id", "x").unwrap();
        assert_eq!((p.acks, p.linger.as_millis()), (1, 20));
        assert_eq!(p.compression, Compression::Zstd);
        assert_eq!(p.client.client_id, "x");
        assert!(p.set("acks", "2").is_err());
        assert!(p.set("no.such", "1").is_err());
        let mut c = ConsumerConfig::new(ClientConfig::new("a:1"));
        c.set("bootstrap.servers", "c:3").unwrap();
        assert_eq!(c.client.bootstrap, vec!["c:3"]);
        c.set("auto.offset.reset", "earliest").unwrap();
        c.set("partition.assignment.strategy", "cooperative-sticky")
            .unwrap();
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert_eq!(c.assignors, vec![AssignorKind::CooperativeSticky]);
        assert!(c.set("isolation.level", "dirty").is_err());
    }
}
