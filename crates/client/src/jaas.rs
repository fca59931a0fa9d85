//! JAAS configuration text as Kafka's `sasl.jaas.config` holds it: one login module, its control
//! flag and its options, e.g.
//! `org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="s" user_admin="s";`
//! Values are bare words or double-quoted strings (with `\` escapes). Shared by the broker (its
//! listeners' login modules) and the client (its own credentials).

use std::collections::BTreeMap;

/// One login module entry of a JAAS configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class name.
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The options, in key order.
    pub options: BTreeMap<String, String>,
}

impl JaasEntry {
    /// An option's value.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Eq,
    Semi,
}

fn tokenize(text: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut it = text.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == '=' {
            it.next();
            out.push(Tok::Eq);
        } else if c == ';' {
            it.next();
            out.push(Tok::Semi);
        } else if c == '"' {
            it.next();
            let mut s = String::new();
            loop {
                match it.next() {
                    None => return Err("unterminated quoted value".into()),
                    Some('"') => break,
                    Some('\\') => match it.next() {
                        Some(e) => s.push(e),
                        None => return Err("unterminated quoted value".into()),
                    },
                    Some(ch) => s.push(ch),
                }
            }
            out.push(Tok::Quoted(s));
        } else {
            let mut s = String::new();
            while let Some(&ch) = it.peek() {
                if ch.is_whitespace() || ch == '=' || ch == ';' || ch == '"' {
                    break;
                }
                s.push(ch);
                it.next();
            }
            out.push(Tok::Word(s));
        }
    }
    Ok(out)
}

/// Parses JAAS text holding exactly one login module (as Kafka requires of `sasl.jaas.config`).
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let toks = tokenize(text)?;
    let mut i = 0;
    let word = |i: usize, what: &str| match toks.get(i) {
        Some(Tok::Word(w)) => Ok(w.clone()),
        _ => Err(format!("expected {what}")),
    };
    let module = word(i, "a login module class name")?;
    i += 1;
    let flag = word(i, "a control flag after the login module")?;
    if !["required", "requisite", "sufficient", "optional"]
        .contains(&flag.to_ascii_lowercase().as_str())
    {
        return Err(format!("invalid control flag {flag}"));
    }
    i += 1;
    let mut options = BTreeMap::new();
    loop {
        match toks.get(i) {
            Some(Tok::Semi) => {
                i += 1;
                break;
            }
            Some(Tok::Word(k)) => {
                if toks.get(i + 1) != Some(&Tok::Eq) {
                    return Err(format!("expected '=' after option {k}"));
                }
                let v = match toks.get(i + 2) {
                    Some(Tok::Word(v)) | Some(Tok::Quoted(v)) => v.clone(),
                    _ => return Err(format!("expected a value for option {k}")),
                };
                options.insert(k.clone(), v);
                i += 3;
            }
            None => return Err("JAAS config entry must end with ';'".into()),
            _ => return Err("expected an option name".into()),
        }
    }
    if i != toks.len() {
        return Err("JAAS config property contains more than one login module, should be 1".into());
    }
    Ok(JaasEntry {
        module,
        flag,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_examples() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin" password="admin-secret" user_admin="admin-secret" user_alice=alice-pw;"#,
        )
        .unwrap();
        assert_eq!(
            e.module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.flag, "required");
        assert_eq!(e.option("user_admin"), Some("admin-secret"));
        assert_eq!(e.option("user_alice"), Some("alice-pw"));
        let e = parse(r#"x.Y optional a="q\"uote; =";"#).unwrap();
        assert_eq!(e.option("a"), Some("q\"uote; ="));
        let e = parse("m.ScramLoginModule required;").unwrap();
        assert!(e.options.is_empty());
    }

    #[test]
    fn refuses_malformed_text() {
        for bad in [
            "",
            "m.M required",
            "m.M sometimes;",
            "m.M required a=;",
            "m.M required a b;",
            r#"m.M required a="x;"#,
            "m.M required; n.N required;",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
