//! The configuration reference, generated from the tables the broker reads ([`crate::tables`]):
//! every broker key with its type, default, valid values and whether it can change at run time,
//! the Kafka keys accepted without effect, the per-listener form, and every topic config.
//! `runnel config reference` prints it; `docs/configuration.md` is its output, and a test fails
//! when the two differ, so the page cannot drift from the code.

use crate::tables::{self, ConfigEntry, ConfigKind, TopicConfigEntry};

/// Valid values of the keys whose values are names from a fixed set (the others follow from
/// their type).
const CHOICES: &[(&str, &str)] = &[
    ("cleanup.policy", "delete, compact, or both comma-separated"),
    (
        "compression.type",
        "uncompressed, zstd, lz4, snappy, gzip, producer",
    ),
    (
        "log.cleanup.policy",
        "delete, compact, or both comma-separated",
    ),
    ("log.format", "text, json"),
    ("log.message.timestamp.type", "CreateTime, LogAppendTime"),
    ("message.timestamp.type", "CreateTime, LogAppendTime"),
    (
        "process.roles",
        "broker, controller, or both comma-separated",
    ),
    (
        "sasl.enabled.mechanisms",
        "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (comma-separated)",
    ),
    ("ssl.client.auth", "required, requested, none"),
];

fn kind_name(kind: ConfigKind) -> &'static str {
    match kind {
        ConfigKind::Boolean => "boolean",
        ConfigKind::String => "string",
        ConfigKind::Int => "int",
        ConfigKind::Short => "short",
        ConfigKind::Long => "long",
        ConfigKind::Double => "double",
        ConfigKind::List => "list",
        ConfigKind::Class => "class",
        ConfigKind::Password => "password",
    }
}

/// What values a key takes: its fixed set, else what its type allows.
fn valid_values(name: &str, kind: ConfigKind, min: Option<i64>) -> String {
    if let Some((_, v)) = CHOICES.iter().find(|(k, _)| *k == name) {
        return v.to_string();
    }
    let floor = |lo: i64, hi: &str| match min {
        Some(m) if m > lo => format!("{m} to {hi}"),
        _ => format!("{lo} to {hi}"),
    };
    match kind {
        ConfigKind::Boolean => "true, false".to_string(),
        ConfigKind::Short => floor(i16::MIN as i64, "32767"),
        ConfigKind::Int => floor(i32::MIN as i64, "2147483647"),
        ConfigKind::Long => floor(i64::MIN, "9223372036854775807"),
        ConfigKind::Double => "a number".to_string(),
        ConfigKind::List => "a comma-separated list".to_string(),
        ConfigKind::Class => "a Java class name".to_string(),
        ConfigKind::String | ConfigKind::Password => "text".to_string(),
    }
}

/// A table cell: pipes and angle brackets escaped (`<l>` would be an HTML tag), never empty.
fn cell(text: &str) -> String {
    if text.is_empty() {
        "(empty)".to_string()
    } else {
        text.replace('|', "\\|")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    }
}

fn default_cell(default: Option<&str>, sensitive: bool) -> String {
    match (default, sensitive) {
        (_, true) => "(secret, unset)".to_string(),
        (None, _) => "(unset)".to_string(),
        (Some(d), _) => format!("`{}`", cell(d)),
    }
}

fn broker_row(e: &ConfigEntry) -> String {
    format!(
        "| `{}` | {} | {} | {} | {} | {} |",
        e.name,
        kind_name(e.kind),
        default_cell(e.default, e.sensitive),
        cell(&valid_values(e.name, e.kind, tables::broker_min(e.name))),
        if e.read_only { "no" } else { "yes" },
        cell(e.doc)
    )
}

fn topic_row(e: &TopicConfigEntry) -> String {
    let min = (e.min > i64::MIN).then_some(e.min);
    format!(
        "| `{}` | {} | {} | {} | {} | {} |",
        e.name,
        kind_name(e.kind),
        default_cell(e.default, e.sensitive),
        cell(&valid_values(e.name, e.kind, min)),
        e.broker_key
            .map_or("(none)".to_string(), |k| format!("`{k}`")),
        cell(e.doc)
    )
}

/// The whole reference, in Markdown.
pub fn markdown() -> String {
    let mut out = vec![
        "# Configuration reference".to_string(),
        String::new(),
        "Generated from the code (`runnel config reference`); a test fails when this page and the code differ.".to_string(),
        "Settings are read, later wins: built-in defaults, the `--config` file, `RUNNEL_*` environment".to_string(),
        "variables (the key upper-cased, dots as underscores: `RUNNEL_LOG_DIRS`), `--override key=value`.".to_string(),
        "An invalid value stops start-up with a message naming the key; an unknown key is warned about.".to_string(),
        String::new(),
        "## Broker keys".to_string(),
        String::new(),
        "\"At run time\": whether IncrementalAlterConfigs on the broker (`kafka-configs --entity-type brokers`)".to_string(),
        "changes it without a restart.".to_string(),
        String::new(),
        "| key | type | default | valid values | at run time | meaning |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ];
    out.extend(tables::broker_config_entries().iter().map(broker_row));
    out.extend([
        String::new(),
        "## Per listener".to_string(),
        String::new(),
        "Any broker key above may be given for one listener as `listener.name.<listener>.<key>` (the".to_string(),
        "listener name lower-cased), and SASL keys for one mechanism as".to_string(),
        "`listener.name.<listener>.<mechanism>.<key>` (e.g.".to_string(),
        "`listener.name.sasl_plaintext.plain.sasl.jaas.config`); the listener's value wins.".to_string(),
        String::new(),
        "## Kafka keys accepted without effect".to_string(),
        String::new(),
        "So that a Kafka `server.properties` loads unchanged, these are accepted and ignored (Runnel's".to_string(),
        "threading and I/O do not use them):".to_string(),
        String::new(),
    ]);
    let mut accepted: Vec<&str> = tables::accepted_kafka_keys().to_vec();
    accepted.sort_unstable();
    out.extend(accepted.iter().map(|k| format!("- `{k}`")));
    out.extend([
        String::new(),
        "## Topic configs".to_string(),
        String::new(),
        "Set per topic at creation (`--config key=value`) or at run time (`kafka-configs --entity-type".to_string(),
        "topics`); all of them change at run time. A topic without its own value takes the broker key's.".to_string(),
        String::new(),
        "| config | type | default | valid values | broker key | meaning |".to_string(),
        "|---|---|---|---|---|---|".to_string(),
    ]);
    out.extend(tables::topic_config_entries().iter().map(topic_row));
    out.push(String::new());
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BrokerConfig;

    #[test]
    fn the_page_in_docs_is_what_the_code_generates() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let page = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            page == markdown(),
            "docs/configuration.md differs from the code: regenerate it with \
             `cargo run --bin runnel -- config reference > docs/configuration.md`"
        );
    }

    /// Every key the page lists loads without a warning, and a key it does not list is warned
    /// about: the page names what the broker accepts and nothing else.
    #[test]
    fn the_page_lists_every_key_the_broker_accepts_and_nothing_else() {
        let page = markdown();
        let listed: Vec<String> = page
            .lines()
            .skip_while(|l| !l.starts_with("## Broker keys"))
            .take_while(|l| !l.starts_with("## Topic configs"))
            .filter_map(|l| {
                let l = l.strip_prefix("| `").or_else(|| l.strip_prefix("- `"))?;
                Some(l.split('`').next()?.to_string())
            })
            .collect();
        assert!(listed.len() > 100, "{} keys", listed.len());
        for key in &listed {
            let value = tables::broker_entry(key)
                .and_then(|e| e.default)
                .unwrap_or("1")
                .to_string();
            let loaded = BrokerConfig::load(None, &[], &[(key.clone(), value)]);
            if let Ok(l) = loaded {
                let about: Vec<&String> = l
                    .warnings
                    .iter()
                    .filter(|w| w.contains(key.as_str()))
                    .collect();
                if tables::is_accepted_kafka_key(key) {
                    // Accepted, with a warning that says it has no effect.
                    assert!(
                        about.iter().all(|w| w.contains("does not use")),
                        "{key}: {about:?}"
                    );
                } else {
                    assert!(about.is_empty(), "{key}: {about:?}");
                }
            }
        }
        let l = BrokerConfig::load(None, &[], &[("not.a.key".into(), "1".into())]).unwrap();
        assert!(l.warnings.iter().any(|w| w.contains("not.a.key")));
        for (k, _) in CHOICES {
            assert!(
                tables::broker_entry(k).is_some() || tables::topic_entry(k).is_some(),
                "{k}"
            );
        }
    }

    /// The floor the page prints for a numeric broker key is the one the loader enforces: the
    /// floor itself loads, one below it stops start-up naming the key.
    #[test]
    fn numeric_floors_on_the_page_are_the_ones_the_loader_enforces() {
        let page = markdown();
        let mut checked = 0;
        for e in tables::broker_config_entries() {
            let Some(min) = tables::broker_min(e.name) else {
                continue;
            };
            let row = page
                .lines()
                .find(|l| l.starts_with(&format!("| `{}` |", e.name)))
                .unwrap_or_else(|| panic!("{} not on the page", e.name));
            assert!(row.contains(&format!("| {min} to ")), "{row}");
            let load = |v: i64| BrokerConfig::load(None, &[], &[(e.name.into(), v.to_string())]);
            assert!(
                load(min).is_ok(),
                "{} = {min}: {:?}",
                e.name,
                load(min).err()
            );
            match load(min - 1) {
                Err(err) => assert!(err.to_string().contains(e.name), "{err}"),
                Ok(_) => panic!("{} = {} was accepted", e.name, min - 1),
            }
            checked += 1;
        }
        assert!(checked >= 30, "{checked} keys checked");
    }
}
