//! The principal of a TLS client: its certificate's subject written as Java's
//! `X500Principal.getName()` writes it (RFC 2253: the last RDN first, `CN=client,OU=eng,O=acme`),
//! then mapped by `ssl.principal.mapping.rules` as Kafka's `SslPrincipalMapper` does.

use regex::Regex;
use x509_parser::der_parser::asn1_rs::{Any, Oid, Tag};
use x509_parser::prelude::*;

/// The subject of a DER certificate in RFC 2253 form, as Java prints it.
pub fn subject_rfc2253(der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| format!("bad certificate: {e}"))?;
    Ok(name_rfc2253(cert.subject()))
}

/// An X.500 name in RFC 2253 form: RDNs last to first, separated by `,`, multi-valued RDNs
/// joined by `+`, the attribute keywords Java knows (CN, C, L, ST, O, OU, STREET, DC, UID) and
/// other attributes as dotted OIDs with the value as `#` and its DER in hex.
pub fn name_rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|atv| attribute_rfc2253(atv.attr_type(), atv.attr_value()))
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn attribute_rfc2253(oid: &Oid<'_>, value: &Any<'_>) -> String {
    let oid_text = oid.to_id_string();
    let text = match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::T61String
        | Tag::VisibleString => std::str::from_utf8(value.data).ok().map(str::to_string),
        Tag::BmpString => {
            let units: Vec<u16> = value
                .data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        _ => None,
    };
    match (keyword(&oid_text), text) {
        (Some(k), Some(t)) => format!("{k}={}", escape(&t)),
        (k, _) => {
            // Unknown attribute types (and values that are not strings) print as their DER.
            let mut der = Vec::new();
            der.push(value.tag().0 as u8);
            let len = value.data.len();
            if len < 128 {
                der.push(len as u8);
            } else {
                let bytes: Vec<u8> = len
                    .to_be_bytes()
                    .into_iter()
                    .skip_while(|b| *b == 0)
                    .collect();
                der.push(0x80 | bytes.len() as u8);
                der.extend(bytes);
            }
            der.extend_from_slice(value.data);
            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}=#{hex}", k.unwrap_or(&oid_text))
        }
    }
}

/// RFC 2253 escaping: `,+"\<>;=` anywhere, `#` and a space at the start, a space at the end.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    /// DEFAULT: the subject as it is.
    Default,
    /// RULE:pattern/replacement/[LU]: when the whole subject matches, every match is replaced.
    Replace {
        pattern: Regex,
        whole: Regex,
        replacement: String,
        lower: bool,
        upper: bool,
    },
}

/// Kafka's `ssl.principal.mapping.rules`: the first rule whose pattern matches the whole
/// subject names the principal; no matching rule fails the authentication.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
    text: String,
}

impl PrincipalMapper {
    /// Parses the rules (comma-separated `RULE:p/r/[LU]` and `DEFAULT`).
    pub fn parse(text: &str) -> Result<PrincipalMapper, String> {
        let mut rules = Vec::new();
        for rule in split_rules(text.trim())? {
            let Some((pattern, replacement, flags)) = rule else {
                rules.push(Rule::Default);
                continue;
            };
            let pattern = pattern.replace("\\/", "/");
            let compiled =
                Regex::new(&pattern).map_err(|e| format!("invalid rule pattern {pattern}: {e}"))?;
            let whole = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("invalid rule pattern {pattern}: {e}"))?;
            let groups = compiled.captures_len() - 1;
            rules.push(Rule::Replace {
                pattern: compiled,
                whole,
                replacement: java_replacement(&replacement, groups),
                lower: flags == "L",
                upper: flags == "U",
            });
        }
        Ok(PrincipalMapper {
            rules,
            text: text.to_string(),
        })
    }

    /// The principal name of a subject; Err when no rule applies.
    pub fn name(&self, subject: &str) -> Result<String, String> {
        for r in &self.rules {
            match r {
                Rule::Default => return Ok(subject.to_string()),
                Rule::Replace {
                    pattern,
                    whole,
                    replacement,
                    lower,
                    upper,
                } => {
                    if !whole.is_match(subject) {
                        continue;
                    }
                    let out = pattern
                        .replace_all(subject, replacement.as_str())
                        .into_owned();
                    return Ok(if *lower {
                        out.to_lowercase()
                    } else if *upper {
                        out.to_uppercase()
                    } else {
                        out
                    });
                }
            }
        }
        Err(format!(
            "no rule of ssl.principal.mapping.rules ({}) applies to {subject}",
            self.text
        ))
    }
}

/// A rule as written: None for DEFAULT, else its pattern, replacement and flags (raw text).
type RuleText = Option<(String, String, String)>;

/// Splits the rules at the commas between them, as Kafka's splitter: a rule is `DEFAULT` or
/// `RULE:` and two `/`-terminated parts (`\` escapes a character) and an optional L or U flag;
/// anything else up to the next comma is ignored after a RULE, refused otherwise.
fn split_rules(text: &str) -> Result<Vec<RuleText>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let end_of = |r: &str| r.find(',').unwrap_or(r.len());
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            out.push(None);
            rest = after;
        } else if let Some(body) = rest.strip_prefix("RULE:") {
            let bad = || format!("invalid rule: {rest}");
            let (p, r1) = take_part(body).ok_or_else(bad)?;
            let (r, r2) = take_part(r1).ok_or_else(bad)?;
            let flags = match r2.chars().next() {
                Some(c @ ('L' | 'U')) => c.to_string(),
                _ => String::new(),
            };
            out.push(Some((p.to_string(), r.to_string(), flags)));
            rest = &r2[end_of(r2)..];
        } else {
            let item = rest[..end_of(rest)].trim();
            if !item.is_empty() {
                return Err(format!("invalid rule: {item}"));
            }
            rest = &rest[end_of(rest)..];
        }
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() {
            return Err(format!("invalid rule: unmatched {rest}"));
        }
    }
    Ok(out)
}

/// Takes one `/`-terminated part as written (escapes kept), returning it and what follows.
fn take_part(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '/' => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// A Java replacement string (`$n` group references, `\x` a literal x) in the regex crate's
/// syntax (`${n}`, `$$`); references past the group count shrink or turn literal as Kafka's
/// mapper makes them.
fn java_replacement(r: &str, groups: usize) -> String {
    let mut out = String::new();
    let chars: Vec<char> = r.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                if chars[i + 1] == '$' {
                    out.push_str("$$");
                } else {
                    out.push(chars[i + 1]);
                }
                i += 2;
            }
            '$' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end].is_ascii_digit() {
                    end += 1;
                }
                if end == start {
                    out.push_str("$$");
                    i += 1;
                    continue;
                }
                let digits: String = chars[start..end].iter().collect();
                // Java takes the longest number that names a group (at least one digit).
                let mut take = digits.len();
                while take > 1 && digits[..take].parse::<usize>().unwrap_or(usize::MAX) > groups {
                    take -= 1;
                }
                let n: usize = digits[..take].parse().unwrap_or(0);
                if n > groups {
                    // No such group: Kafka escapes it to a literal.
                    out.push_str("$$");
                    out.push_str(&digits);
                } else {
                    out.push_str(&format!("${{{n}}}"));
                    out.push_str(&digits[take..]);
                }
                i = end;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(rules: &str, dn: &str) -> Result<String, String> {
        PrincipalMapper::parse(rules)?.name(dn)
    }

    #[test]
    fn default_keeps_the_subject() {
        assert_eq!(map("DEFAULT", "CN=a,O=b").unwrap(), "CN=a,O=b");
        assert!(map("", "CN=a,O=b").unwrap_err().contains("no rule"));
    }

    // The cases of Kafka's SslPrincipalMapperTest.
    #[test]
    fn rules_as_kafka_applies_them() {
        let rules = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/U,DEFAULT";
        let m = PrincipalMapper::parse(rules).unwrap();
        assert_eq!(
            m.name("CN=kafka1,OU=ServiceUsers,O=Org,C=US").unwrap(),
            "kafka1"
        );
        assert_eq!(
            m.name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .unwrap(),
            "duke@javasoft"
        );
        assert_eq!(
            m.name("cn=duke,ou=javasoft,dc=oracle,dc=com").unwrap(),
            "DUKE@JAVASOFT"
        );
        assert_eq!(
            m.name("OU=JavaSoft,O=Sun Microsystems,C=US,CN=dUke")
                .unwrap(),
            "DUKE"
        );
        assert_eq!(
            m.name("OU=JavaSoft,O=Sun Microsystems,C=US").unwrap(),
            "OU=JavaSoft,O=Sun Microsystems,C=US"
        );
        // A comma inside a pattern does not split rules; spaces around rules are allowed.
        let m = PrincipalMapper::parse(" RULE:^CN=([^,]*),O=x$/$1/ , DEFAULT ").unwrap();
        assert_eq!(m.name("CN=a,O=x").unwrap(), "a");
        assert_eq!(m.name("CN=a,O=y").unwrap(), "CN=a,O=y");
        // Escaped slashes; a reference past the groups is literal.
        assert_eq!(map("RULE:^CN=(.*)$/a\\/$1$2/", "CN=z").unwrap(), "a/z$2");
        assert_eq!(map("RULE:^CN=(.*)$/$12/", "CN=z").unwrap(), "z2");
        // Without DEFAULT, an unmatched subject fails.
        assert!(map("RULE:^CN=(.*?),O=x$/$1/", "CN=a,O=y").is_err());
    }

    #[test]
    fn bad_rules_are_refused() {
        assert!(PrincipalMapper::parse("RULE:^CN=(.*?)").is_err());
        assert!(PrincipalMapper::parse("NOTARULE").is_err());
        assert!(PrincipalMapper::parse("RULE:((/x/").is_err());
    }

    #[test]
    fn escapes_as_rfc_2253() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape(" #x "), "\\ #x\\ ");
        assert_eq!(escape("#x"), "\\#x");
    }
}
