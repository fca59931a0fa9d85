//! Output for the client commands: aligned tables, JSON, kcat-style record format strings, and
//! the date parsing and printing that `--from @...` and `--to-datetime` need.

use std::io::Write;

use runnel_client::ConsumerRecord;
use serde_json::{json, Value};

/// `--format`: human tables or machine-readable JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables and plain lines.
    Text,
    /// JSON: one document per command, or one line per record for `consume`.
    Json,
}

/// Prints rows under a header with every column padded to its widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Prints a JSON value on one line.
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// Standard base64 (for JSON output of bytes that are not UTF-8).
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn bytes_json(b: &Option<bytes::Bytes>) -> (Value, Option<Value>) {
    match b {
        None => (Value::Null, None),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Value::String(s.to_string()), None),
            Err(_) => (Value::Null, Some(Value::String(base64(b)))),
        },
    }
}

/// A record as one JSON object; bytes that are not UTF-8 go in `key_base64` / `value_base64`.
pub fn record_json(r: &ConsumerRecord) -> Value {
    let (key, key64) = bytes_json(&r.key);
    let (value, value64) = bytes_json(&r.value);
    let headers: Vec<Value> = r
        .headers
        .iter()
        .map(|h| {
            let (v, v64) = bytes_json(&h.value);
            match v64 {
                Some(b) => json!({"key": h.key, "value": null, "value_base64": b}),
                None => json!({"key": h.key, "value": v}),
            }
        })
        .collect();
    let mut o = json!({
        "topic": &*r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": if r.log_append_time { "LogAppendTime" } else { "CreateTime" },
        "key": key,
        "value": value,
        "headers": headers,
    });
    if let Some(k) = key64 {
        o["key_base64"] = k;
    }
    if let Some(v) = value64 {
        o["value_base64"] = v;
    }
    o
}

/// Renders a record with a kcat-style format string:
/// `%t` topic, `%p` partition, `%o` offset, `%k` key, `%s` value, `%K` key length,
/// `%S` value length, `%T` timestamp (ms), `%D` timestamp as ISO-8601 UTC, `%h` headers (`k=v,k=v`), `%%`; and `\n`, `\t`,
/// `\r`, `\\` escapes. A null key or value prints as empty (its length as -1).
pub fn render(fmt: &str, r: &ConsumerRecord, out: &mut Vec<u8>) {
    let mut chars = fmt.chars().peekable();
    let mut tmp = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some('t') => out.extend_from_slice(r.topic.as_bytes()),
                Some('p') => out.extend_from_slice(r.partition.to_string().as_bytes()),
                Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Some('k') => out.extend_from_slice(r.key.as_deref().unwrap_or_default()),
                Some('s') => out.extend_from_slice(r.value.as_deref().unwrap_or_default()),
                Some('K') => out.extend_from_slice(len_of(&r.key).as_bytes()),
                Some('S') => out.extend_from_slice(len_of(&r.value).as_bytes()),
                Some('T') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
                Some('D') => out.extend_from_slice(format_time(r.timestamp).as_bytes()),
                Some('h') => {
                    for (i, h) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(h.key.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(h.value.as_deref().unwrap_or_default());
                    }
                }
                Some('%') => out.push(b'%'),
                Some(other) => {
                    out.push(b'%');
                    out.extend_from_slice(other.encode_utf8(&mut tmp).as_bytes());
                }
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some('n') => out.push(b'\n'),
                Some('t') => out.push(b'\t'),
                Some('r') => out.push(b'\r'),
                Some('0') => out.push(0),
                Some('\\') => out.push(b'\\'),
                Some(other) => {
                    out.push(b'\\');
                    out.extend_from_slice(other.encode_utf8(&mut tmp).as_bytes());
                }
                None => out.push(b'\\'),
            },
            c => out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes()),
        }
    }
}

fn len_of(b: &Option<bytes::Bytes>) -> String {
    b.as_ref().map_or("-1".to_string(), |b| b.len().to_string())
}

/// Writes bytes to stdout, ignoring a closed pipe (e.g. `| head`).
pub fn write_stdout(buf: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(buf)?;
    out.flush()
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a time: milliseconds since the epoch, or ISO-8601 `YYYY-MM-DD[THH:MM[:SS[.mmm]]]`
/// with `Z` or `±HH:MM` (UTC when absent).
pub fn parse_time(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || {
        anyhow::anyhow!(
            "{s:?} is not a time: use milliseconds since the epoch or 2026-11-25T09:30:00Z"
        )
    };
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let d: Vec<i64> = date
        .split('-')
        .map(|p| p.parse().map_err(|_| bad()))
        .collect::<anyhow::Result<_>>()?;
    if d.len() != 3 || !(1..=12).contains(&d[1]) || !(1..=31).contains(&d[2]) {
        return Err(bad());
    }
    let mut rest = rest.get(1..).unwrap_or("");
    let mut offset_min = 0i64;
    if let Some(r) = rest.strip_suffix('Z') {
        rest = r;
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let z = z[1..].replace(':', "");
        if z.len() != 4 {
            return Err(bad());
        }
        let h: i64 = z[..2].parse().map_err(|_| bad())?;
        let m: i64 = z[2..].parse().map_err(|_| bad())?;
        offset_min = sign * (h * 60 + m);
        rest = t;
    }
    let mut hms = [0i64; 3];
    let mut millis = 0i64;
    if !rest.is_empty() {
        let (main, frac) = rest.split_once('.').unwrap_or((rest, ""));
        for (i, p) in main.split(':').enumerate() {
            if i > 2 {
                return Err(bad());
            }
            hms[i] = p.parse().map_err(|_| bad())?;
        }
        if !frac.is_empty() {
            let f: String = frac.chars().chain("000".chars()).take(3).collect();
            millis = f.parse().map_err(|_| bad())?;
        }
    }
    let days = days_from_civil(d[0], d[1], d[2]);
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Prints ms since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn tables_line_up() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".into(), "1".into()],
                vec!["a".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    LONGER\nxyz  1\na    22\n");
    }

    #[test]
    fn format_strings_like_kcat() {
        let r = ConsumerRecord {
            topic: Arc::from("t"),
            partition: 2,
            offset: 7,
            timestamp: 99,
            log_append_time: false,
            key: Some("k".into()),
            value: None,
            headers: vec![runnel_client::Header {
                key: "h".into(),
                value: Some("v".into()),
            }],
            leader_epoch: 0,
        };
        let mut out = Vec::new();
        render(r"%t/%p@%o %k=%s (%K,%S) %T [%h] 100%%\n", &r, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t/2@7 k= (1,-1) 99 [h=v] 100%\n"
        );
        assert_eq!(base64(b"hello!?"), "aGVsbG8hPw==");
    }

    #[test]
    fn times_parse_and_print() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20.5+01:00").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert!(parse_time("yesterday").is_err());
        assert_eq!(format_time(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
    }
}
