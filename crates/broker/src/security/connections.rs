//! Connection limits, as Kafka's `ConnectionQuotas`: `max.connections` (broker-wide, and per
//! listener as `listener.name.<l>.max.connections`) holds accepting back until a connection
//! closes; `max.connections.per.ip` (with `max.connections.per.ip.overrides`) closes a
//! connection past the limit of its address at once. When the node has several listeners, the
//! inter-broker and controller ones are not held back by `max.connections` (Kafka's protected
//! listener), so a node flooded by clients still hears its peers.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::Arc;

use parking_lot::Mutex;
use runnel_config::BrokerConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A limit given as Kafka's Int.MaxValue default means none.
const UNLIMITED: i64 = i32::MAX as i64;

fn limit_semaphore(n: i64) -> Option<Arc<Semaphore>> {
    (n < UNLIMITED).then(|| Arc::new(Semaphore::new(n.max(0) as usize)))
}

/// Open connections per address.
type IpCounts = Arc<Mutex<HashMap<IpAddr, i64>>>;

/// The node's connection limits and counts.
pub struct ConnectionLimits {
    broker_wide: Option<Arc<Semaphore>>,
    per_listener: HashMap<String, Arc<Semaphore>>,
    /// Listeners exempt from `max.connections` (inter-broker, controller).
    exempt: Vec<String>,
    per_ip_default: i64,
    per_ip_overrides: HashMap<IpAddr, i64>,
    per_ip: IpCounts,
}

/// Holds a connection's place in the counts; dropping it frees the place.
pub struct ConnectionSlot {
    _permits: Vec<OwnedSemaphorePermit>,
    ip: Option<(IpAddr, IpCounts)>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some((ip, counts)) = self.ip.take() {
            let mut c = counts.lock();
            if let Some(n) = c.get_mut(&ip) {
                *n -= 1;
                if *n <= 0 {
                    c.remove(&ip);
                }
            }
        }
    }
}

impl ConnectionLimits {
    /// Reads `max.connections`, `listener.name.<l>.max.connections`, `max.connections.per.ip`
    /// and `max.connections.per.ip.overrides` (host or address : count, comma-separated).
    pub fn from_config(cfg: &BrokerConfig) -> Result<ConnectionLimits, String> {
        let num = |key: &str, v: &str| -> Result<i64, String> {
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("{key}: {v} is not a count"))
        };
        let broker_wide = match cfg.explicit.get("max.connections") {
            Some(v) => limit_semaphore(num("max.connections", v)?),
            None => None,
        };
        let mut per_listener = HashMap::new();
        for l in &cfg.listeners {
            let key = format!(
                "listener.name.{}.max.connections",
                l.name.to_ascii_lowercase()
            );
            if let Some(v) = cfg.explicit.get(&key) {
                if let Some(s) = limit_semaphore(num(&key, v)?) {
                    per_listener.insert(l.name.clone(), s);
                }
            }
        }
        let per_ip_default = match cfg.explicit.get("max.connections.per.ip") {
            Some(v) => num("max.connections.per.ip", v)?,
            None => UNLIMITED,
        };
        let mut per_ip_overrides = HashMap::new();
        if let Some(text) = cfg.explicit.get("max.connections.per.ip.overrides") {
            for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (host, n) = item.rsplit_once(':').ok_or_else(|| {
                    format!("max.connections.per.ip.overrides: {item}: expected host:count")
                })?;
                let n = num("max.connections.per.ip.overrides", n)?;
                let ips: Vec<IpAddr> = match host.parse::<IpAddr>() {
                    Ok(ip) => vec![ip],
                    Err(_) => (host, 0)
                        .to_socket_addrs()
                        .map_err(|e| {
                            format!(
                                "max.connections.per.ip.overrides: {host} does not resolve: {e}"
                            )
                        })?
                        .map(|a| a.ip())
                        .collect(),
                };
                for ip in ips {
                    per_ip_overrides.insert(ip, n);
                }
            }
        }
        // As Kafka's protected listener: only when there are other listeners to hold back.
        let mut exempt = Vec::new();
        if cfg.listeners.len() > 1 {
            exempt.push(cfg.cluster.inter_broker_listener_name.clone());
            exempt.extend(cfg.cluster.controller_listener_names.iter().cloned());
        }
        if broker_wide.is_some() || !per_listener.is_empty() {
            tracing::info!(
                max_connections = broker_wide.as_ref().map(|s| s.available_permits()),
                listeners = per_listener.len(),
                exempt = ?exempt,
                "connection limits"
            );
        }
        Ok(ConnectionLimits {
            broker_wide,
            per_listener,
            exempt,
            per_ip_default,
            per_ip_overrides,
            per_ip: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// Waits until `listener` may accept one more connection under `max.connections`; the
    /// permits go into the connection's slot.
    pub async fn reserve(&self, listener: &str) -> Vec<OwnedSemaphorePermit> {
        let mut permits = Vec::new();
        if let Some(s) = self.per_listener.get(listener) {
            if let Ok(p) = s.clone().acquire_owned().await {
                permits.push(p);
            }
        }
        if !self.exempt.iter().any(|n| n == listener) {
            if let Some(s) = &self.broker_wide {
                if let Ok(p) = s.clone().acquire_owned().await {
                    permits.push(p);
                }
            }
        }
        permits
    }

    /// Counts a connection from `ip`; None when that address is at its limit (the connection
    /// is to be closed).
    pub fn admit(&self, ip: IpAddr, permits: Vec<OwnedSemaphorePermit>) -> Option<ConnectionSlot> {
        let limit = *self
            .per_ip_overrides
            .get(&ip)
            .unwrap_or(&self.per_ip_default);
        if limit >= UNLIMITED {
            return Some(ConnectionSlot {
                _permits: permits,
                ip: None,
            });
        }
        let mut counts = self.per_ip.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            _permits: permits,
            ip: Some((ip, self.per_ip.clone())),
        })
    }
}
