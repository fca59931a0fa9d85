//! Client quotas, enforced as Kafka's `ClientQuotaManager` and `ClientRequestQuotaManager` do.
//!
//! Quotas come from the metadata image (AlterClientQuotas writes them as ClientQuotaRecords):
//! `producer_byte_rate` (bytes of Produce requests), `consumer_byte_rate` (bytes of Fetch
//! responses to consumers) and `request_percentage` (time spent handling the client's requests,
//! as a percentage of one thread). A request is charged to one sensor, chosen as Kafka's default
//! quota callback does: the most specific entity that has the quota, in the order
//! user+client-id, user+default client-id, user, default user+client-id, default user+default
//! client-id, default user, client-id, default client-id. Clients matched by a default share
//! nothing: each user (or client id) gets a sensor of its own with the default bound, and the
//! clients of one user share the user's sensor.
//!
//! A sensor is Kafka's rate over `quota.window.num` windows of `quota.window.size.seconds`
//! ([`rate::SampledRate`]). The value is recorded first; if the rate is then above the bound,
//! the throttle time is Kafka's `(rate - bound) / bound * window` (capped at one window for the
//! request quota). As in Kafka since KIP-219, the response goes out at once carrying
//! `throttle_time_ms`, and the connection then reads nothing until the throttle time has passed
//! (the client also holds back for that long). A throttled consumer fetch is answered empty,
//! its bytes taken back from the sensor, and fetches are capped at what a whole quota window
//! allows. Principals are matched by name (`User:alice` is user `alice`; unauthenticated
//! connections are `ANONYMOUS`). `ip` entities (`connection_creation_rate`) are stored and
//! described but not enforced.

pub mod rate;
pub mod throttle;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use runnel_metadata::quotas::{ClientQuotasImage, QuotaEntity, CLIENT_ID, USER};
use runnel_metadata::MetadataImage;

use rate::SampledRate;

/// What a quota manager measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// Produce request bytes (`producer_byte_rate`).
    Produce,
    /// Fetch response bytes to consumers (`consumer_byte_rate`).
    Fetch,
    /// Request handling time, in percent of a thread (`request_percentage`).
    Request,
}

impl QuotaKind {
    /// The quota key this kind enforces.
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => "producer_byte_rate",
            QuotaKind::Fetch => "consumer_byte_rate",
            QuotaKind::Request => "request_percentage",
        }
    }
}

/// Sensors unused for this long are dropped (Kafka's `InactiveSensorExpirationTimeSeconds`).
const SENSOR_EXPIRY_MS: u64 = 3_600_000;

/// The (user, client-id) a sensor is kept for, Kafka's quota metric tags: either may be empty
/// when the quota that applies does not depend on it.
type Tags = (String, String);

struct Sensor {
    rate: SampledRate,
    last_record_ms: u64,
}

struct State {
    sensors: HashMap<Tags, Sensor>,
    last_sweep_ms: u64,
}

/// One quota manager: the sensors of one [`QuotaKind`].
pub struct ClientQuotaManager {
    kind: QuotaKind,
    num_samples: usize,
    window_ms: u64,
    state: Mutex<State>,
}

fn entity(user: Option<Option<&str>>, client: Option<Option<&str>>) -> QuotaEntity {
    let mut e = QuotaEntity::new();
    if let Some(u) = user {
        e.insert(USER.to_string(), u.map(str::to_string));
    }
    if let Some(c) = client {
        e.insert(CLIENT_ID.to_string(), c.map(str::to_string));
    }
    e
}

/// Kafka's default callback `quotaMetricTags`: the sensor a (user, client id) is charged to.
fn metric_tags(quotas: &ClientQuotasImage, key: &str, user: &str, client_id: &str) -> Tags {
    let has = |u: Option<Option<&str>>, c: Option<Option<&str>>| {
        quotas.value(&entity(u, c), key).is_some()
    };
    let (u, c) = (Some(Some(user)), Some(Some(client_id)));
    let both = (user.to_string(), client_id.to_string());
    let user_only = (user.to_string(), String::new());
    if has(u, c) || has(u, Some(None)) {
        both
    } else if has(u, None) {
        user_only
    } else if has(Some(None), c) || has(Some(None), Some(None)) {
        both
    } else if has(Some(None), None) {
        user_only
    } else {
        (String::new(), client_id.to_string())
    }
}

/// Kafka's default callback `quotaLimit`: the bound of a sensor's tags, if any quota applies.
fn quota_limit(quotas: &ClientQuotasImage, key: &str, (user, client_id): &Tags) -> Option<f64> {
    let get = |u: Option<Option<&str>>, c: Option<Option<&str>>| quotas.value(&entity(u, c), key);
    let (u, c) = (Some(Some(user.as_str())), Some(Some(client_id.as_str())));
    if !user.is_empty() && !client_id.is_empty() {
        get(u, c)
            .or_else(|| get(u, Some(None)))
            .or_else(|| get(Some(None), c))
            .or_else(|| get(Some(None), Some(None)))
    } else if !user.is_empty() {
        get(u, None).or_else(|| get(Some(None), None))
    } else if !client_id.is_empty() {
        get(None, c).or_else(|| get(None, Some(None)))
    } else {
        None
    }
}

/// Whether any entity has a value for `key` (else nothing is recorded: no quota can apply).
fn enabled(quotas: &ClientQuotasImage, key: &str) -> bool {
    quotas.entities.values().any(|v| v.contains_key(key))
}

/// Milliseconds on a monotonic clock (Kafka uses the wall clock; only differences matter).
pub fn clock_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl ClientQuotaManager {
    /// A manager of `kind` with `num_samples` windows of `window_ms`.
    pub fn new(kind: QuotaKind, num_samples: usize, window_ms: u64) -> ClientQuotaManager {
        ClientQuotaManager {
            kind,
            num_samples: num_samples.max(1),
            window_ms: window_ms.max(1),
            state: Mutex::new(State {
                sensors: HashMap::new(),
                last_sweep_ms: 0,
            }),
        }
    }

    /// The sensor tags and bound of a client, None when no quota of this kind applies to it.
    fn resolve(&self, image: &MetadataImage, user: &str, client_id: &str) -> Option<(Tags, f64)> {
        let quotas = &image.client_quotas;
        let key = self.kind.key();
        if !enabled(quotas, key) {
            return None;
        }
        let tags = metric_tags(quotas, key, user, client_id);
        let bound = quota_limit(quotas, key, &tags)?;
        Some((tags, bound))
    }

    /// Records `value` for the client and returns the throttle time in ms (0 when within
    /// quota), as Kafka's `maybeRecordAndGetThrottleTimeMs`.
    pub fn record_and_get_throttle_ms(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let Some((tags, bound)) = self.resolve(image, user, client_id) else {
            return 0;
        };
        let mut state = self.state.lock();
        self.sweep(&mut state, now_ms);
        let sensor = state.sensors.entry(tags).or_insert_with(|| Sensor {
            rate: SampledRate::new(self.num_samples, self.window_ms),
            last_record_ms: now_ms,
        });
        sensor.last_record_ms = now_ms;
        sensor.rate.record(value, now_ms);
        let observed = sensor.rate.measure(now_ms);
        if observed <= bound {
            return 0;
        }
        let window = sensor.rate.window_size_ms(now_ms);
        let throttle = rate::throttle_time_ms(observed, bound, window);
        match self.kind {
            // ClientRequestQuotaManager bounds the throttle by one window.
            QuotaKind::Request => throttle.min(self.window_ms),
            _ => throttle,
        }
    }

    /// Records `value` without checking the quota (Kafka's `recordNoThrottle`; a negative value
    /// takes back a recorded one, as `unrecordQuotaSensor`).
    pub fn record_no_throttle(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) {
        let Some((tags, _)) = self.resolve(image, user, client_id) else {
            return;
        };
        let mut state = self.state.lock();
        let sensor = state.sensors.entry(tags).or_insert_with(|| Sensor {
            rate: SampledRate::new(self.num_samples, self.window_ms),
            last_record_ms: now_ms,
        });
        sensor.last_record_ms = now_ms;
        sensor.rate.record(value, now_ms);
    }

    /// The largest value one request may record without being throttled for sure (Kafka's
    /// `getMaxValueInQuotaWindow`: the bound times `quota.window.num - 1` windows); None
    /// without a quota.
    pub fn max_value_in_window(
        &self,
        image: &MetadataImage,
        user: &str,
        client_id: &str,
    ) -> Option<f64> {
        let (_, bound) = self.resolve(image, user, client_id)?;
        Some(bound * (self.num_samples as f64 - 1.0) * self.window_ms as f64 / 1000.0)
    }

    /// Drops sensors unused for an hour (checked at most once a minute).
    fn sweep(&self, state: &mut State, now_ms: u64) {
        if now_ms.saturating_sub(state.last_sweep_ms) < 60_000 {
            return;
        }
        state.last_sweep_ms = now_ms;
        state
            .sensors
            .retain(|_, s| now_ms.saturating_sub(s.last_record_ms) < SENSOR_EXPIRY_MS);
    }

    /// How many sensors exist (for tests).
    pub fn sensor_count(&self) -> usize {
        self.state.lock().sensors.len()
    }
}

/// The broker's three client quota managers.
pub struct QuotaManagers {
    /// `producer_byte_rate`.
    pub produce: ClientQuotaManager,
    /// `consumer_byte_rate`.
    pub fetch: ClientQuotaManager,
    /// `request_percentage`.
    pub request: ClientQuotaManager,
}

impl QuotaManagers {
    /// Managers with `quota.window.num` windows of `quota.window.size.seconds`.
    pub fn new(num_samples: usize, window_seconds: u64) -> QuotaManagers {
        let window_ms = window_seconds.max(1) * 1000;
        QuotaManagers {
            produce: ClientQuotaManager::new(QuotaKind::Produce, num_samples, window_ms),
            fetch: ClientQuotaManager::new(QuotaKind::Fetch, num_samples, window_ms),
            request: ClientQuotaManager::new(QuotaKind::Request, num_samples, window_ms),
        }
    }

    /// Managers from `quota.window.num` and `quota.window.size.seconds` (each at least 1, as
    /// Kafka checks them).
    pub fn from_config(cfg: &runnel_config::BrokerConfig) -> Result<QuotaManagers, String> {
        let get = |key: &str, default: u64| -> Result<u64, String> {
            match cfg.explicit.get(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .map(|n| n as u64)
                    .ok_or_else(|| {
                        format!(
                            "Invalid value {v} for configuration {key}: Value must be at least 1"
                        )
                    }),
            }
        };
        Ok(QuotaManagers::new(
            get("quota.window.num", 11)? as usize,
            get("quota.window.size.seconds", 1)?,
        ))
    }

    /// Whether any client quota is set (the hot paths skip everything otherwise).
    pub fn any(image: &MetadataImage) -> bool {
        !image.client_quotas.is_empty()
    }
}

/// The quota identity of a request: the principal's name and the client id ("" when absent).
pub fn identity<'a>(
    principal: &'a Arc<crate::security::KafkaPrincipal>,
    client_id: Option<&'a str>,
) -> (&'a str, &'a str) {
    (principal.name.as_str(), client_id.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use runnel_metadata::quotas::{EntityData, QuotaValue};
    use runnel_metadata::MetadataRecord;

    fn set(img: &mut MetadataImage, parts: &[(&str, Option<&str>)], key: &str, value: f64) {
        img.apply(&MetadataRecord::ClientQuota {
            entity: parts
                .iter()
                .map(|(t, n)| EntityData {
                    entity_type: t.to_string(),
                    entity_name: n.map(str::to_string),
                })
                .collect(),
            key: key.into(),
            value: QuotaValue(value),
            remove: false,
        });
    }

    const P: &str = "producer_byte_rate";

    #[test]
    fn the_most_specific_entity_wins_in_kafkas_order() {
        let mut img = MetadataImage::default();
        let q = |img: &MetadataImage, u: &str, c: &str| {
            let tags = metric_tags(&img.client_quotas, P, u, c);
            (tags.clone(), quota_limit(&img.client_quotas, P, &tags))
        };
        let t = |u: &str, c: &str| (u.to_string(), c.to_string());
        set(&mut img, &[(CLIENT_ID, None)], P, 8.0);
        assert_eq!(q(&img, "alice", "app"), (t("", "app"), Some(8.0)));
        set(&mut img, &[(CLIENT_ID, Some("app"))], P, 7.0);
        assert_eq!(q(&img, "alice", "app"), (t("", "app"), Some(7.0)));
        set(&mut img, &[(USER, None)], P, 6.0);
        assert_eq!(q(&img, "alice", "app"), (t("alice", ""), Some(6.0)));
        set(&mut img, &[(USER, None), (CLIENT_ID, None)], P, 5.0);
        assert_eq!(q(&img, "alice", "app"), (t("alice", "app"), Some(5.0)));
        set(&mut img, &[(USER, None), (CLIENT_ID, Some("app"))], P, 4.0);
        assert_eq!(q(&img, "alice", "app"), (t("alice", "app"), Some(4.0)));
        set(&mut img, &[(USER, Some("alice"))], P, 3.0);
        assert_eq!(q(&img, "alice", "app"), (t("alice", ""), Some(3.0)));
        set(
            &mut img,
            &[(USER, Some("alice")), (CLIENT_ID, None)],
            P,
            2.0,
        );
        assert_eq!(q(&img, "alice", "app"), (t("alice", "app"), Some(2.0)));
        set(
            &mut img,
            &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
            P,
            1.0,
        );
        assert_eq!(q(&img, "alice", "app"), (t("alice", "app"), Some(1.0)));
        // Another user falls back to the defaults; a quota of another kind does not count.
        assert_eq!(q(&img, "bob", "app"), (t("bob", "app"), Some(4.0)));
        assert_eq!(
            metric_tags(&img.client_quotas, "consumer_byte_rate", "bob", "app"),
            t("", "app")
        );
    }

    #[test]
    fn a_client_over_its_rate_is_throttled_by_kafkas_formula() {
        let mut img = MetadataImage::default();
        set(&mut img, &[(CLIENT_ID, Some("app"))], P, 1000.0);
        let m = ClientQuotaManager::new(QuotaKind::Produce, 11, 1000);
        // 10 s of assumed span: 10000 bytes are exactly the quota.
        assert_eq!(
            m.record_and_get_throttle_ms(&img, "ANONYMOUS", "app", 10_000.0, 1),
            0
        );
        // 20000 over 10 s: twice the bound, one more span to wait.
        assert_eq!(
            m.record_and_get_throttle_ms(&img, "ANONYMOUS", "app", 10_000.0, 1),
            10_000
        );
        // Other clients have no quota and no sensor.
        assert_eq!(
            m.record_and_get_throttle_ms(&img, "ANONYMOUS", "x", 1e9, 1),
            0
        );
        assert_eq!(m.sensor_count(), 1);
        assert_eq!(
            m.max_value_in_window(&img, "ANONYMOUS", "app"),
            Some(10_000.0)
        );
        assert_eq!(m.max_value_in_window(&img, "ANONYMOUS", "x"), None);
        // Taking the bytes back brings it within quota again.
        m.record_no_throttle(&img, "ANONYMOUS", "app", -10_000.0, 1);
        assert_eq!(
            m.record_and_get_throttle_ms(&img, "ANONYMOUS", "app", 0.0, 1),
            0
        );
    }

    #[test]
    fn clients_matched_by_a_default_have_sensors_of_their_own() {
        let mut img = MetadataImage::default();
        set(&mut img, &[(CLIENT_ID, None)], P, 1000.0);
        let m = ClientQuotaManager::new(QuotaKind::Produce, 11, 1000);
        assert_eq!(m.record_and_get_throttle_ms(&img, "u", "a", 10_000.0, 1), 0);
        assert_eq!(m.record_and_get_throttle_ms(&img, "u", "b", 10_000.0, 1), 0);
        assert_eq!(m.sensor_count(), 2);
        // The clients of one user share the user's sensor.
        let mut img = MetadataImage::default();
        set(&mut img, &[(USER, Some("u"))], P, 1000.0);
        let m = ClientQuotaManager::new(QuotaKind::Produce, 11, 1000);
        assert_eq!(m.record_and_get_throttle_ms(&img, "u", "a", 10_000.0, 1), 0);
        assert!(m.record_and_get_throttle_ms(&img, "u", "b", 10_000.0, 1) > 0);
    }

    #[test]
    fn request_throttles_are_capped_at_one_window() {
        let mut img = MetadataImage::default();
        set(&mut img, &[(USER, None)], "request_percentage", 1.0);
        let m = ClientQuotaManager::new(QuotaKind::Request, 11, 1000);
        assert_eq!(
            m.record_and_get_throttle_ms(&img, "ANONYMOUS", "", 500.0, 1),
            1000
        );
    }
}
