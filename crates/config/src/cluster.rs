//! The keys that place a node in a cluster, with Kafka's names and checks: `process.roles`,
//! `controller.quorum.voters`, `controller.quorum.bootstrap.servers`,
//! `controller.listener.names`, `inter.broker.listener.name`, `broker.rack`, and the replica and
//! broker-session timings. A node that sets none of them is a cluster of one (broker and
//! controller in one process), as Runnel has always been. `controller.quorum.voters` makes a
//! static quorum; `controller.quorum.bootstrap.servers` without voters a dynamic one (KIP-853),
//! except Kafka's shipped standalone setup (one server, this node's own controller listener, on a
//! combined node), which stays a cluster of one.

use crate::{ConfigError, Listener};

/// One voter of the metadata quorum: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    /// Node id of the voter.
    pub id: i32,
    /// Host of its controller listener.
    pub host: String,
    /// Port of its controller listener.
    pub port: u16,
}

/// Where this node stands in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles` includes `broker`.
    pub broker: bool,
    /// `process.roles` includes `controller`.
    pub controller: bool,
    /// `controller.quorum.voters` (empty: a quorum of this node alone, or found through
    /// `controller.quorum.bootstrap.servers`).
    pub voters: Vec<Voter>,
    /// `controller.quorum.bootstrap.servers` as (host, port).
    pub bootstrap_servers: Vec<(String, u16)>,
    /// The first bootstrap server is this node's own controller listener: in a dynamic quorum,
    /// this node starts the quorum as its only voter when its log is empty (Kafka's
    /// `kafka-storage format --standalone`); every other node joins it.
    pub standalone: bool,
    /// `controller.listener.names`, upper-cased.
    pub controller_listener_names: Vec<String>,
    /// `inter.broker.listener.name`, or the first listener that is not a controller listener.
    pub inter_broker_listener_name: String,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `replica.lag.time.max.ms`.
    pub replica_lag_time_max_ms: i64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: i64,
    /// `broker.session.timeout.ms`.
    pub broker_session_timeout_ms: i64,
    /// `unclean.leader.election.enable`.
    pub unclean_leader_election_enable: bool,
    /// `controlled.shutdown.enable`: on SIGTERM the broker first asks the active controller to
    /// move its leaderships away.
    pub controlled_shutdown_enable: bool,
    /// `auto.leader.rebalance.enable`: the active controller moves leaderships back to the
    /// preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`: how often it looks.
    pub leader_imbalance_check_interval_seconds: i64,
}

impl ClusterConfig {
    /// Whether this node is a cluster of one: broker and controller, and no other voter (no
    /// bootstrap server, or only its own controller listener).
    pub fn is_single_node(&self, node_id: i32) -> bool {
        self.broker
            && self.controller
            && (self.bootstrap_servers.is_empty()
                || (self.bootstrap_servers.len() == 1 && self.standalone))
            && self.voters.iter().all(|v| v.id == node_id)
    }

    /// Whether the metadata quorum is dynamic (KIP-853): found through
    /// `controller.quorum.bootstrap.servers`, its voters changed by AddRaftVoter and
    /// RemoveRaftVoter, not listed in `controller.quorum.voters`.
    pub fn is_dynamic_quorum(&self, node_id: i32) -> bool {
        self.voters.is_empty()
            && !self.bootstrap_servers.is_empty()
            && !self.is_single_node(node_id)
    }
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Splits a host:port (IPv6 hosts in brackets).
fn host_port(key: &str, whole: &str, item: &str) -> Result<(String, u16), ConfigError> {
    let (host, port) = if let Some(r) = item.strip_prefix('[') {
        r.split_once("]:")
            .ok_or_else(|| invalid(key, whole, format!("'{item}': expected [ipv6]:port")))?
    } else {
        item.rsplit_once(':')
            .ok_or_else(|| invalid(key, whole, format!("'{item}': expected host:port")))?
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| invalid(key, whole, format!("'{item}': port must be 1-65535")))?;
    if host.is_empty() {
        return Err(invalid(key, whole, format!("'{item}': the host is empty")));
    }
    Ok((host.to_string(), port))
}

/// Parses `controller.quorum.voters`: `id@host:port,...`, ids and addresses unique.
pub fn parse_voters(value: &str) -> Result<Vec<Voter>, ConfigError> {
    let key = "controller.quorum.voters";
    let mut out: Vec<Voter> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| invalid(key, value, format!("'{item}': expected id@host:port")))?;
        let id: i32 =
            id.trim().parse().ok().filter(|i| *i >= 0).ok_or_else(|| {
                invalid(key, value, format!("'{item}': the id must be a node id"))
            })?;
        let (host, port) = host_port(key, value, addr.trim())?;
        if out.iter().any(|v| v.id == id) {
            return Err(invalid(key, value, format!("node id {id} appears twice")));
        }
        if out.iter().any(|v| v.host == host && v.port == port) {
            return Err(invalid(
                key,
                value,
                format!("{host}:{port} is given to two voters"),
            ));
        }
        out.push(Voter { id, host, port });
    }
    Ok(out)
}

/// The raw values `ClusterConfig::from_values` reads.
pub struct ClusterKeys<'a> {
    /// `node.id`.
    pub node_id: i32,
    /// The parsed `listeners`.
    pub listeners: &'a [Listener],
    /// Listener names that have a security protocol.
    pub mapped_names: &'a [String],
    /// Looks a key's value up (explicit or default).
    pub get: &'a dyn Fn(&str) -> Option<String>,
}

impl ClusterConfig {
    /// Reads and checks the cluster keys; each refusal names the key at fault.
    pub fn from_values(k: &ClusterKeys<'_>) -> Result<ClusterConfig, ConfigError> {
        let get = |key: &str| (k.get)(key).unwrap_or_default();
        let roles_text = get("process.roles");
        let mut broker = false;
        let mut controller = false;
        for role in roles_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let seen = match role {
                "broker" => std::mem::replace(&mut broker, true),
                "controller" => std::mem::replace(&mut controller, true),
                other => {
                    return Err(invalid(
                        "process.roles",
                        &roles_text,
                        format!("unknown role '{other}': the roles are broker and controller"),
                    ))
                }
            };
            if seen {
                return Err(invalid(
                    "process.roles",
                    &roles_text,
                    format!("'{role}' is given twice"),
                ));
            }
        }
        if !broker && !controller {
            return Err(invalid(
                "process.roles",
                &roles_text,
                "at least one of broker and controller is needed",
            ));
        }
        let voters_text = get("controller.quorum.voters");
        let voters = parse_voters(&voters_text)?;
        let bootstrap_text = get("controller.quorum.bootstrap.servers");
        let mut bootstrap_servers = Vec::new();
        for item in bootstrap_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            bootstrap_servers.push(host_port(
                "controller.quorum.bootstrap.servers",
                &bootstrap_text,
                item,
            )?);
        }
        let in_voters = voters.iter().any(|v| v.id == k.node_id);
        if controller && !voters.is_empty() && !in_voters {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                format!(
                    "this node (node.id={}) is a controller but not one of the voters",
                    k.node_id
                ),
            ));
        }
        if !controller && in_voters {
            return Err(invalid(
                "controller.quorum.voters",
                &voters_text,
                format!(
                    "node.id={} is a voter but process.roles does not include controller",
                    k.node_id
                ),
            ));
        }
        if !controller && voters.is_empty() && bootstrap_servers.is_empty() {
            return Err(invalid(
                "controller.quorum.voters",
                "",
                "a broker without the controller role needs controller.quorum.voters or controller.quorum.bootstrap.servers",
            ));
        }
        let names_text = get("controller.listener.names");
        let controller_listener_names: Vec<String> = names_text
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        let clustered = !voters.is_empty() || !bootstrap_servers.is_empty();
        if clustered && controller_listener_names.is_empty() {
            return Err(invalid(
                "controller.listener.names",
                "",
                "a node of a multi-node quorum must name its controller listener",
            ));
        }
        for name in &controller_listener_names {
            let listed = k.listeners.iter().any(|l| &l.name == name);
            if controller && !listed {
                return Err(invalid(
                    "controller.listener.names",
                    &names_text,
                    format!("controller listener {name} is not in listeners"),
                ));
            }
            if !controller && listed {
                return Err(invalid(
                    "listeners",
                    &get("listeners"),
                    format!("listener {name} is a controller listener, but this node is not a controller"),
                ));
            }
            if !k.mapped_names.contains(name) {
                return Err(invalid(
                    "listener.security.protocol.map",
                    &get("listener.security.protocol.map"),
                    format!("no security protocol for controller listener {name}"),
                ));
            }
        }
        // Whether the first bootstrap server is one of this node's controller listeners (a
        // listener without a host, or on a wildcard address, matches by port).
        let standalone = controller
            && bootstrap_servers.first().is_some_and(|(host, port)| {
                k.listeners.iter().any(|l| {
                    controller_listener_names.contains(&l.name)
                        && l.port == *port
                        && (l.host == *host || matches!(l.host.as_str(), "" | "0.0.0.0" | "::"))
                })
            });
        let inter_text = get("inter.broker.listener.name").to_ascii_uppercase();
        let inter_broker_listener_name = if inter_text.is_empty() {
            k.listeners
                .iter()
                .find(|l| !controller_listener_names.contains(&l.name))
                .map(|l| l.name.clone())
                .unwrap_or_default()
        } else {
            inter_text
        };
        if broker {
            let ok = k
                .listeners
                .iter()
                .any(|l| l.name == inter_broker_listener_name)
                && !controller_listener_names.contains(&inter_broker_listener_name);
            if !ok {
                return Err(invalid(
                    "inter.broker.listener.name",
                    &inter_broker_listener_name,
                    "must name a listener in listeners that is not a controller listener",
                ));
            }
        }
        let int = |key: &str, min: i64| -> Result<i64, ConfigError> {
            let v = get(key);
            let n: i64 = v
                .trim()
                .parse()
                .map_err(|_| invalid(key, &v, "not a number"))?;
            if n < min {
                return Err(invalid(key, &v, format!("must be at least {min}")));
            }
            Ok(n)
        };
        let heartbeat = int("broker.heartbeat.interval.ms", 1)?;
        let session = int("broker.session.timeout.ms", 1)?;
        if heartbeat >= session {
            return Err(invalid(
                "broker.heartbeat.interval.ms",
                &heartbeat.to_string(),
                "must be less than broker.session.timeout.ms",
            ));
        }
        let boolean = |key: &str| -> Result<bool, ConfigError> {
            let v = get(key);
            match v.trim() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(key, &v, "must be true or false")),
            }
        };
        let rack = Some(get("broker.rack")).filter(|r| !r.is_empty());
        Ok(ClusterConfig {
            broker,
            controller,
            voters,
            bootstrap_servers,
            standalone,
            controller_listener_names,
            inter_broker_listener_name,
            rack,
            replica_lag_time_max_ms: int("replica.lag.time.max.ms", 1)?,
            broker_heartbeat_interval_ms: heartbeat,
            broker_session_timeout_ms: session,
            unclean_leader_election_enable: boolean("unclean.leader.election.enable")?,
            controlled_shutdown_enable: boolean("controlled.shutdown.enable")?,
            auto_leader_rebalance_enable: boolean("auto.leader.rebalance.enable")?,
            leader_imbalance_check_interval_seconds: int(
                "leader.imbalance.check.interval.seconds",
                1,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{BrokerConfig, ConfigError};

    fn load(pairs: &[(&str, &str)]) -> Result<BrokerConfig, ConfigError> {
        let o: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        BrokerConfig::load(None, &[], &o).map(|l| l.config)
    }

    fn refused_key(pairs: &[(&str, &str)]) -> String {
        match load(pairs) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    const THREE: &str = "1@localhost:9093,2@localhost:9193,3@localhost:9293";

    #[test]
    fn no_keys_is_a_cluster_of_one() {
        let c = load(&[]).unwrap();
        assert!(c.cluster.broker && c.cluster.controller);
        assert!(c.cluster.is_single_node(c.node_id));
        assert_eq!(c.cluster.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!(c.cluster.replica_lag_time_max_ms, 30_000);
        assert_eq!(c.cluster.broker_heartbeat_interval_ms, 2_000);
        assert_eq!(c.cluster.broker_session_timeout_ms, 9_000);
        assert!(!c.cluster.unclean_leader_election_enable);
        assert!(c.cluster.controlled_shutdown_enable);
        assert!(c.cluster.auto_leader_rebalance_enable);
        assert_eq!(c.cluster.leader_imbalance_check_interval_seconds, 300);
    }

    #[test]
    fn kafkas_shipped_standalone_config_is_a_cluster_of_one() {
        let c = load(&[
            ("process.roles", "broker,controller"),
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
        ])
        .unwrap();
        assert!(c.cluster.is_single_node(c.node_id));
        assert!(!c.cluster.is_dynamic_quorum(c.node_id));
    }

    #[test]
    fn bootstrap_servers_without_voters_make_a_dynamic_quorum() {
        let listeners = [
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = listeners.to_vec();
            v.extend_from_slice(extra);
            load(&v).unwrap().cluster
        };
        // The first server is this node's controller listener: it may start the quorum.
        let c = with(&[(
            "controller.quorum.bootstrap.servers",
            "127.0.0.1:9093,127.0.0.1:9193",
        )]);
        assert!(c.standalone && c.is_dynamic_quorum(1) && !c.is_single_node(1));
        // Another node's first: this one joins.
        let c = with(&[(
            "controller.quorum.bootstrap.servers",
            "127.0.0.1:9193,127.0.0.1:9093",
        )]);
        assert!(!c.standalone && c.is_dynamic_quorum(1));
        // One server that is another node: a combined node joining, not a cluster of one.
        let c = with(&[("controller.quorum.bootstrap.servers", "127.0.0.1:9193")]);
        assert!(!c.is_single_node(1) && c.is_dynamic_quorum(1));
        // A broker-only node finds the controllers through them.
        let c = load(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9492"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "controller.quorum.bootstrap.servers",
                "127.0.0.1:9093,127.0.0.1:9193",
            ),
        ])
        .unwrap()
        .cluster;
        assert!(c.broker && !c.controller && !c.standalone);
        // ... or through the static voters.
        let c = load(&[
            ("process.roles", "broker"),
            ("node.id", "4"),
            ("listeners", "PLAINTEXT://127.0.0.1:9492"),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", THREE),
        ])
        .unwrap()
        .cluster;
        assert!(c.broker && !c.controller && !c.is_dynamic_quorum(4));
    }

    #[test]
    fn a_combined_node_of_three() {
        let c = load(&[
            ("node.id", "2"),
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9192,CONTROLLER://127.0.0.1:9193",
            ),
            ("controller.listener.names", "CONTROLLER"),
            ("controller.quorum.voters", THREE),
            ("broker.rack", "r2"),
        ])
        .unwrap();
        assert_eq!(c.cluster.voters.len(), 3);
        assert_eq!(c.cluster.voters[1].port, 9193);
        assert!(!c.cluster.is_single_node(2));
        assert_eq!(c.cluster.inter_broker_listener_name, "PLAINTEXT");
        assert_eq!(c.cluster.rack.as_deref(), Some("r2"));
    }

    #[test]
    fn misconfigurations_name_the_key() {
        let base = [
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
            ),
            ("controller.listener.names", "CONTROLLER"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            refused_key(&v)
        };
        assert_eq!(with(&[("process.roles", "broker,worker")]), "process.roles");
        assert_eq!(with(&[("process.roles", "broker,broker")]), "process.roles");
        assert_eq!(
            with(&[("controller.quorum.voters", "1@a:1,1@b:2")]),
            "controller.quorum.voters"
        );
        assert_eq!(
            with(&[("controller.quorum.voters", "1@a:1,2@a:1")]),
            "controller.quorum.voters"
        );
        assert_eq!(
            with(&[("controller.quorum.voters", "1@a")]),
            "controller.quorum.voters"
        );
        // This node (node.id 1 by default) is a controller missing from the voters.
        assert_eq!(
            with(&[("controller.quorum.voters", "2@a:1,3@b:1")]),
            "controller.quorum.voters"
        );
        assert_eq!(
            with(&[("controller.quorum.bootstrap.servers", "a:9093,b")]),
            "controller.quorum.bootstrap.servers"
        );
        // A broker alone with nowhere to find a controller.
        assert_eq!(
            refused_key(&[("process.roles", "broker")]),
            "controller.quorum.voters"
        );
        // The controller listener must be among the listeners.
        assert_eq!(
            refused_key(&[
                ("controller.quorum.voters", THREE),
                ("controller.listener.names", "CONTROLLER"),
            ]),
            "controller.listener.names"
        );
        assert_eq!(
            refused_key(&[
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
                ),
                ("controller.quorum.voters", THREE),
            ]),
            "controller.listener.names"
        );
        assert_eq!(
            with(&[("inter.broker.listener.name", "CONTROLLER")]),
            "inter.broker.listener.name"
        );
        assert_eq!(
            with(&[("broker.heartbeat.interval.ms", "9000")]),
            "broker.heartbeat.interval.ms"
        );
        assert_eq!(
            with(&[("unclean.leader.election.enable", "maybe")]),
            "unclean.leader.election.enable"
        );
        assert_eq!(
            with(&[("controlled.shutdown.enable", "yes")]),
            "controlled.shutdown.enable"
        );
        assert_eq!(
            with(&[("auto.leader.rebalance.enable", "1")]),
            "auto.leader.rebalance.enable"
        );
        assert_eq!(
            with(&[("leader.imbalance.check.interval.seconds", "0")]),
            "leader.imbalance.check.interval.seconds"
        );
    }
}
