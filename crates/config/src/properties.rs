//! Java `.properties` parsing: comments (`#`, `!`), `key=value`, `key: value` and `key value`,
//! line continuations with a trailing backslash, and the escapes `\t \n \r \f \\ \uXXXX`.

use crate::ConfigError;

fn unescape(s: &str, line_no: usize) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| {
                        ConfigError::File(format!("line {line_no}: bad \\u escape \\u{hex}"))
                    })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// Whether a line ends in an odd number of backslashes (a continuation).
fn continues(line: &str) -> bool {
    line.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1
}

/// Parses Java properties text into ordered (key, value) pairs.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = trimmed.to_string();
        while continues(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        // The key ends at the first unescaped '=', ':' or whitespace.
        let bytes: Vec<char> = logical.chars().collect();
        let mut k_end = bytes.len();
        let mut idx = 0;
        while idx < bytes.len() {
            match bytes[idx] {
                '\\' => idx += 2,
                '=' | ':' | ' ' | '\t' => {
                    k_end = idx;
                    break;
                }
                _ => idx += 1,
            }
        }
        let key: String = bytes[..k_end.min(bytes.len())].iter().collect();
        let mut rest: &[char] = &bytes[k_end.min(bytes.len())..];
        while let Some((' ' | '\t', r)) = rest.split_first() {
            rest = r;
        }
        if let Some(('=' | ':', r)) = rest.split_first() {
            rest = r;
        }
        while let Some((' ' | '\t', r)) = rest.split_first() {
            rest = r;
        }
        let value: String = rest.iter().collect();
        let key = unescape(&key, i + 1)?;
        let value = unescape(&value, i + 1)?;
        out.retain(|(k, _)| k != &key);
        out.push((key, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_escapes() {
        let text = "# comment\n! also\n  a=1\nb: 2\nc 3\nd = x \\\n   y\ne=\\u0041\\tB\nf\\=g=h\nempty=\na=4\n";
        let p = parse_properties(text).unwrap();
        let get = |k: &str| p.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str());
        assert_eq!(get("a"), Some("4"));
        assert_eq!(get("b"), Some("2"));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("d"), Some("x y"));
        assert_eq!(get("e"), Some("A\tB"));
        assert_eq!(get("f=g"), Some("h"));
        assert_eq!(get("empty"), Some(""));
        assert_eq!(p.iter().filter(|(k, _)| k == "a").count(), 1);
        assert!(parse_properties("x=\\uZZZZ").is_err());
    }
}
