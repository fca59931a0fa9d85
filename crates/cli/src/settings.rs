//! Connection settings for the client commands: `--bootstrap-server`, then the
//! `RUNNEL_BOOTSTRAP_SERVER` environment variable, then the named profile (`--profile` or
//! `RUNNEL_PROFILE`, default `default`) from the profiles file, then `127.0.0.1:9092`.
//!
//! The profiles file (`--profiles-file`, `RUNNEL_PROFILES`, or `~/.config/runnel/profiles`)
//! holds sections of Kafka client properties:
//!
//! ```text
//! [default]
//! bootstrap.servers = 127.0.0.1:9092
//!
//! [staging]
//! bootstrap.servers = kafka-1.staging:9092,kafka-2.staging:9092
//! client.id = ops
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};

/// Where the cluster is and which client properties to apply.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Every other client property (from the profile, then `-X key=value`).
    pub properties: Vec<(String, String)>,
}

/// The default profiles file.
fn default_profiles_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("runnel").join("profiles"))
}

/// Reads the sections of a profiles file.
pub fn parse_profiles(text: &str) -> anyhow::Result<BTreeMap<String, Vec<(String, String)>>> {
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            out.entry(name.trim().to_string()).or_default();
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bail!(
                "line {}: expected key = value or [profile], got {raw:?}",
                n + 1
            );
        };
        let Some(section) = &current else {
            bail!("line {}: a setting before any [profile] header", n + 1);
        };
        out.get_mut(section)
            .unwrap()
            .push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

/// Resolves the settings from flags, environment and profiles file.
pub fn resolve(
    bootstrap_flag: Option<&str>,
    profile_flag: Option<&str>,
    profiles_file: Option<&PathBuf>,
    extra: &[String],
) -> anyhow::Result<Settings> {
    let env_profile = std::env::var("RUNNEL_PROFILE").ok();
    let explicit_profile = profile_flag.map(str::to_string).or(env_profile);
    let profile = explicit_profile.clone().unwrap_or_else(|| "default".into());
    let file = profiles_file
        .cloned()
        .or_else(|| std::env::var_os("RUNNEL_PROFILES").map(PathBuf::from))
        .or_else(default_profiles_file);
    let mut props: Vec<(String, String)> = Vec::new();
    match file.as_ref().filter(|f| f.exists()) {
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read profiles file {}", f.display()))?;
            let profiles = parse_profiles(&text).with_context(|| format!("in {}", f.display()))?;
            match profiles.get(&profile) {
                Some(p) => props.extend(p.iter().cloned()),
                None if explicit_profile.is_some() => bail!(
                    "no profile [{profile}] in {} (it has: {})",
                    f.display(),
                    profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
                None => {}
            }
        }
        None if explicit_profile.is_some() => bail!(
            "profile {profile:?} asked for, but there is no profiles file{}",
            file.map(|f| format!(" at {}", f.display()))
                .unwrap_or_default()
        ),
        None => {}
    }
    for x in extra {
        let (k, v) = x
            .split_once('=')
            .with_context(|| format!("-X expects key=value, got {x:?}"))?;
        props.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut bootstrap = "127.0.0.1:9092".to_string();
    if let Some((_, v)) = props.iter().rev().find(|(k, _)| k == "bootstrap.servers") {
        bootstrap = v.clone();
    }
    if let Ok(v) = std::env::var("RUNNEL_BOOTSTRAP_SERVER") {
        if !v.trim().is_empty() {
            bootstrap = v;
        }
    }
    if let Some(b) = bootstrap_flag {
        bootstrap = b.to_string();
    }
    props.retain(|(k, _)| k != "bootstrap.servers");
    Ok(Settings {
        bootstrap,
        properties: props,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_reject_junk() {
        let p = parse_profiles("# c\n[a]\nbootstrap.servers = h:1\n\n[b]\nclient.id=x\n").unwrap();
        assert_eq!(p["a"], vec![("bootstrap.servers".into(), "h:1".into())]);
        assert_eq!(p["b"], vec![("client.id".into(), "x".into())]);
        assert!(parse_profiles("k=v\n").is_err());
        assert!(parse_profiles("[a]\nnonsense\n").is_err());
    }
}
