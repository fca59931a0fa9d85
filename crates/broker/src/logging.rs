//! Log levels at run time, as Kafka's broker loggers: DescribeConfigs and IncrementalAlterConfigs
//! on resource type BROKER_LOGGER (what `kafka-configs --entity-type broker-loggers` sends) read
//! and change the process's log filter. A logger is a tracing target written with dots, as Kafka's
//! logger names are (its tool refuses other characters): `root` (the default level), a crate of
//! Runnel's (`runnel_broker`, `runnel_storage`, ...) or any module under one
//! (`runnel_broker.replica` is the target `runnel_broker::replica`). The binary installs how a
//! new filter is applied ([`install`]);
//! without it (a broker inside tests) the levels are kept and described but change nothing.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kafka_protocol::ResponseError;
use parking_lot::Mutex;

/// Applies a filter in tracing's `EnvFilter` syntax (`info,runnel_broker=debug`) to the
/// process's logging.
pub type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The root logger's name, as Kafka's.
pub const ROOT: &str = "root";

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

/// The loggers there always are: every module of Runnel's crates (listed when the broker is
/// built), and openraft (the metadata quorum's raft).
fn loggers() -> impl Iterator<Item = &'static str> {
    MODULES.iter().copied().chain(std::iter::once("openraft"))
}

/// Kafka's log levels, most severe first.
const LEVELS: &[&str] = &["OFF", "FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"];

struct State {
    /// The root level (Kafka's name).
    root: String,
    /// Levels set per logger (Kafka's names).
    set: BTreeMap<String, String>,
    /// Directives of the start-up filter this module does not model (spans, fields): kept.
    other: Vec<String>,
    apply: Option<Apply>,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(State {
            root: "INFO".to_string(),
            set: BTreeMap::new(),
            other: Vec::new(),
            apply: None,
        })
    })
}

/// Kafka's name for a tracing level name (`warn` → `WARN`), if it is one.
fn kafka_level(tracing_level: &str) -> Option<String> {
    let up = tracing_level.trim().to_ascii_uppercase();
    LEVELS.contains(&up.as_str()).then_some(up)
}

/// tracing's name for one of Kafka's levels (FATAL has none: ERROR).
fn tracing_level(kafka: &str) -> &'static str {
    match kafka {
        "OFF" => "off",
        "FATAL" | "ERROR" => "error",
        "WARN" => "warn",
        "INFO" => "info",
        "DEBUG" => "debug",
        _ => "trace",
    }
}

/// Installs how filters are applied, starting from the filter the process started with
/// (`initial`, `EnvFilter` syntax: a bare level is the root's, `target=level` a logger's).
pub fn install(initial: &str, apply: Apply) {
    let mut s = state().lock();
    for d in initial.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        match d.split_once('=') {
            None => match kafka_level(d) {
                Some(l) => s.root = l,
                None => s.other.push(d.to_string()),
            },
            Some((target, level))
                if is_logger_name(&target.replace("::", ".")) && kafka_level(level).is_some() =>
            {
                let level = kafka_level(level).expect("checked");
                s.set.insert(target.replace("::", "."), level);
            }
            Some(_) => s.other.push(d.to_string()),
        }
    }
    s.apply = Some(apply);
}

fn is_logger_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Whether `name` is a logger: the root, one of Runnel's modules or openraft, a module under
/// one, or one set.
fn exists(s: &State, name: &str) -> bool {
    name == ROOT
        || s.set.contains_key(name)
        || (is_logger_name(name)
            && loggers().any(|l| name == l || name.starts_with(&format!("{l}."))))
}

/// The effective level of a logger: its own, else its nearest parent's, else the root's.
fn effective(s: &State, name: &str) -> String {
    let mut at = name;
    loop {
        if let Some(l) = s.set.get(at) {
            return l.clone();
        }
        match at.rsplit_once('.') {
            Some((parent, _)) => at = parent,
            None => return s.root.clone(),
        }
    }
}

/// Every logger with its effective level (Kafka's names): the root first, then Runnel's modules,
/// openraft and the loggers set, by name.
pub fn describe() -> Vec<(String, String)> {
    let s = state().lock();
    let mut names: Vec<&str> = loggers().collect();
    names.extend(s.set.keys().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    std::iter::once((ROOT.to_string(), s.root.clone()))
        .chain(names.iter().map(|n| (n.to_string(), effective(&s, n))))
        .collect()
}

/// The filter the levels make, in `EnvFilter` syntax.
fn directives(s: &State) -> String {
    std::iter::once(tracing_level(&s.root).to_string())
        .chain(
            s.set
                .iter()
                .map(|(k, v)| format!("{}={}", k.replace('.', "::"), tracing_level(v))),
        )
        .chain(s.other.iter().cloned())
        .collect::<Vec<_>>()
        .join(",")
}

/// One change asked of a broker logger: set its level (`Some`) or remove its own (`None`).
pub struct Change {
    /// The logger.
    pub logger: String,
    /// The new level (one of Kafka's: TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF), or None to
    /// go back to its parent's.
    pub level: Option<String>,
}

/// Checks and (unless `validate_only`) applies changes, all or none, as Kafka's broker logger
/// configs: an unknown logger or level is INVALID_CONFIG, removing the root's level
/// INVALID_REQUEST.
pub fn alter(changes: &[Change], validate_only: bool) -> Result<(), (ResponseError, String)> {
    let mut s = state().lock();
    for c in changes {
        if !exists(&s, &c.logger) {
            return Err((
                ResponseError::InvalidConfig,
                format!("Logger {} does not exist!", c.logger),
            ));
        }
        match &c.level {
            Some(level) if !LEVELS.contains(&level.as_str()) => {
                return Err((
                    ResponseError::InvalidConfig,
                    format!(
                        "Cannot set the log level of {} to {level} as it is not a supported log level. Valid log levels are {}",
                        c.logger,
                        LEVELS.join(", ")
                    ),
                ))
            }
            None if c.logger == ROOT => {
                return Err((
                    ResponseError::InvalidRequest,
                    "Removing the log level of the root logger is not allowed".to_string(),
                ))
            }
            _ => {}
        }
    }
    if validate_only {
        return Ok(());
    }
    for c in changes {
        match (&c.level, c.logger == ROOT) {
            (Some(l), true) => s.root = l.clone(),
            (Some(l), false) => {
                s.set.insert(c.logger.clone(), l.clone());
            }
            (None, _) => {
                s.set.remove(&c.logger);
            }
        }
    }
    let filter = directives(&s);
    if let Some(apply) = &s.apply {
        apply(&filter).map_err(|e| (ResponseError::InvalidConfig, e))?;
    }
    tracing::info!(filter, "log levels changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_inherit_from_the_nearest_parent_and_make_a_filter() {
        let mut s = State {
            root: "INFO".into(),
            set: BTreeMap::new(),
            other: vec!["[span]=trace".into()],
            apply: None,
        };
        s.set.insert("runnel_broker".into(), "DEBUG".into());
        s.set
            .insert("runnel_broker.replica.fetcher".into(), "FATAL".into());
        assert_eq!(effective(&s, "runnel_broker.replica"), "DEBUG");
        assert_eq!(effective(&s, "runnel_broker.replica.fetcher"), "FATAL");
        assert_eq!(effective(&s, "runnel_storage.log"), "INFO");
        assert_eq!(
            directives(&s),
            "info,runnel_broker=debug,runnel_broker::replica::fetcher=error,[span]=trace"
        );
        assert!(exists(&s, "runnel_storage.log"));
        assert!(!exists(&s, "runnel_storage::log"));
        assert!(exists(&s, ROOT));
        assert!(!exists(&s, "kafka.server.ReplicaManager"));
        assert!(!exists(&s, "runnel_brokerx"));
    }
}
