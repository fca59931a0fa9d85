//! Replication throttles (Kafka's KIP-73, what `kafka-reassign-partitions --throttle` sets): the
//! dynamic broker configs `leader.replication.throttled.rate` / `follower.replication.throttled.rate`
//! (bytes per second, per broker or as the cluster default) bound the replication traffic of the
//! replicas listed in the topic configs `leader.replication.throttled.replicas` /
//! `follower.replication.throttled.replicas` (`partition:broker` pairs, or `*`; a broker applies
//! the entries that name itself), and only for followers outside the ISR, as in Kafka: a
//! follower leaves throttled partitions out of its fetches while its rate is used up, a leader
//! answers a throttled partition with no records.

use std::time::Instant;

use parking_lot::Mutex;
use runnel_metadata::{MetadataImage, TopicImage};

/// The leader side's rate key.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// The follower side's rate key.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// The broker configs that can be set at run time (IncrementalAlterConfigs / AlterConfigs on a
/// broker or the cluster default).
pub const DYNAMIC_BROKER_KEYS: &[&str] = &[
    LEADER_RATE,
    FOLLOWER_RATE,
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// The dynamic value of broker config `key` for broker `node_id`: its own override, else the
/// cluster default's; with whether it is the default's.
pub fn dynamic_value(image: &MetadataImage, node_id: i32, key: &str) -> Option<(String, bool)> {
    if let Some(v) = image
        .broker_configs
        .get(&node_id.to_string())
        .and_then(|c| c.get(key))
    {
        return Some((v.clone(), false));
    }
    image
        .broker_configs
        .get("")
        .and_then(|c| c.get(key))
        .map(|v| (v.clone(), true))
}

/// The rate (bytes/s) of `key` on broker `node_id`, if one is set below the unlimited default.
fn rate(image: &MetadataImage, node_id: i32, key: &str) -> Option<u64> {
    dynamic_value(image, node_id, key)
        .and_then(|(v, _)| v.trim().parse::<i64>().ok())
        .filter(|r| (0..i64::MAX).contains(r))
        .map(|r| r as u64)
}

/// Whether `topic`'s config `key` lists replica `broker` of partition `partition` (or `*`).
pub fn lists_replica(topic: &TopicImage, key: &str, partition: i32, broker: i32) -> bool {
    topic.configs.get(key).is_some_and(|v| {
        v.split(',').map(str::trim).any(|item| {
            item == "*"
                || item.split_once(':').is_some_and(|(p, b)| {
                    p.trim().parse() == Ok(partition) && b.trim().parse() == Ok(broker)
                })
        })
    })
}

/// One side's quota: a token bucket holding at most one second of its rate. Bytes replicated
/// are taken out (it may go below zero); the quota is exceeded while it is empty.
#[derive(Debug)]
pub struct Quota {
    key: &'static str,
    bucket: Mutex<(Instant, f64)>,
}

impl Quota {
    /// The leader side's quota.
    pub fn leader() -> Quota {
        Quota::new(LEADER_RATE)
    }

    /// The follower side's quota.
    pub fn follower() -> Quota {
        Quota::new(FOLLOWER_RATE)
    }

    fn new(key: &'static str) -> Quota {
        Quota {
            key,
            bucket: Mutex::new((Instant::now(), 0.0)),
        }
    }

    fn refill(&self, rate: u64) -> f64 {
        let mut b = self.bucket.lock();
        let now = Instant::now();
        let elapsed = now.duration_since(b.0).as_secs_f64();
        b.1 = (b.1 + elapsed * rate as f64).min(rate as f64);
        b.0 = now;
        b.1
    }

    /// Whether the rate set for broker `node_id` is used up (never when none is set).
    pub fn exceeded(&self, image: &MetadataImage, node_id: i32) -> bool {
        rate(image, node_id, self.key).is_some_and(|r| self.refill(r) <= 0.0)
    }

    /// Counts `bytes` of throttled replication.
    pub fn record(&self, image: &MetadataImage, node_id: i32, bytes: usize) {
        if let Some(r) = rate(image, node_id, self.key) {
            self.refill(r);
            self.bucket.lock().1 -= bytes as f64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    #[test]
    fn replica_lists_as_kafka_writes_them() {
        let mut t = TopicImage {
            name: "t".into(),
            topic_id: Uuid::nil(),
            partitions: vec![],
            configs: BTreeMap::new(),
        };
        let key = "follower.replication.throttled.replicas";
        assert!(!lists_replica(&t, key, 0, 1));
        t.configs.insert(key.into(), "0:1, 1:2".into());
        assert!(lists_replica(&t, key, 0, 1) && lists_replica(&t, key, 1, 2));
        assert!(!lists_replica(&t, key, 0, 2));
        t.configs.insert(key.into(), "*".into());
        assert!(lists_replica(&t, key, 7, 9));
    }

    #[test]
    fn a_quota_is_exceeded_once_a_second_of_its_rate_is_used() {
        let mut img = MetadataImage::default();
        let q = Quota::follower();
        assert!(!q.exceeded(&img, 1), "no rate set: never throttled");
        img.broker_configs
            .entry("".into())
            .or_default()
            .insert(FOLLOWER_RATE.into(), "1000".into());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!q.exceeded(&img, 1));
        q.record(&img, 1, 5000);
        assert!(q.exceeded(&img, 1));
        // The broker's own override wins over the default.
        img.broker_configs
            .entry("1".into())
            .or_default()
            .insert(FOLLOWER_RATE.into(), "100000000".into());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!q.exceeded(&img, 1));
        assert_eq!(
            dynamic_value(&img, 2, FOLLOWER_RATE),
            Some(("1000".into(), true))
        );
    }
}
