//! How records and sizes are shown: keys, values and headers as text, pretty-printed JSON or hex,
//! bytes that are not UTF-8 marked as such, values past the display limit truncated with their
//! size; the JSON-lines form of an export.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use runnel_client::ConsumerRecord;
use serde::Serialize;

/// Bytes of a key or value shown at most; the rest is counted, not shown.
pub const DISPLAY_LIMIT: usize = 64 * 1024;

/// How to show bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// UTF-8 text (hex when not UTF-8).
    Text,
    /// JSON pretty-printed (as text when not JSON).
    Json,
    /// A hex dump.
    Hex,
}

impl Format {
    /// From a query parameter (text by default).
    pub fn parse(s: Option<&str>) -> Format {
        match s {
            Some("json") => Format::Json,
            Some("hex") => Format::Hex,
            _ => Format::Text,
        }
    }
}

/// Bytes made ready to show.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Shown {
    /// The text to show (absent for a null key or value).
    pub text: Option<String>,
    /// A note: "not UTF-8", "null".
    pub note: Option<String>,
    /// The full size when the text was truncated.
    pub truncated: Option<usize>,
    /// Whether `text` is pretty-printed JSON (shown in a `<pre>`).
    pub pre: bool,
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for (i, chunk) in bytes.chunks(16).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&line.join(" "));
    }
    out
}

/// Shows `bytes` in `format`, at most [`DISPLAY_LIMIT`] of them.
pub fn show(bytes: Option<&[u8]>, format: Format) -> Shown {
    let Some(all) = bytes else {
        return Shown {
            text: None,
            note: Some("null".into()),
            truncated: None,
            pre: false,
        };
    };
    let truncated = (all.len() > DISPLAY_LIMIT).then_some(all.len());
    let b = &all[..all.len().min(DISPLAY_LIMIT)];
    let shown = |text, note: Option<&str>, pre| Shown {
        text: Some(text),
        note: note.map(str::to_string),
        truncated,
        pre,
    };
    match format {
        Format::Hex => shown(hex(b), None, true),
        Format::Json | Format::Text => {
            // A cut may fall inside a UTF-8 sequence: only the cut's own bytes may be partial.
            let text = match std::str::from_utf8(b) {
                Ok(t) => Some(t.to_string()),
                Err(e) if truncated.is_some() && e.error_len().is_none() => {
                    Some(String::from_utf8_lossy(&b[..e.valid_up_to()]).into_owned())
                }
                Err(_) => None,
            };
            match text {
                None => shown(hex(b), Some("not UTF-8"), true),
                Some(t) if format == Format::Json && truncated.is_none() => {
                    match serde_json::from_str::<serde_json::Value>(&t) {
                        Ok(v) => shown(serde_json::to_string_pretty(&v).unwrap_or(t), None, true),
                        Err(_) => shown(t, Some("not JSON"), false),
                    }
                }
                Some(t) => shown(t, None, false),
            }
        }
    }
}

/// A record ready for a page, a live tail or a search result.
#[derive(Clone, Debug, Serialize)]
pub struct RecordView {
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// ms since the epoch.
    pub timestamp: i64,
    /// The timestamp as UTC text.
    pub time: String,
    /// The key.
    pub key: Shown,
    /// The value.
    pub value: Shown,
    /// The headers: key and value text.
    pub headers: Vec<(String, String)>,
}

/// A header value as text (hex when not UTF-8).
fn header_text(v: Option<&[u8]>) -> String {
    match v {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(t) => t.to_string(),
            Err(_) => format!("0x{}", hex(b).replace([' ', '\n'], "")),
        },
    }
}

/// A record as a page shows it.
pub fn view(r: &ConsumerRecord, format: Format) -> RecordView {
    RecordView {
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        time: utc(r.timestamp),
        key: show(r.key.as_deref(), format),
        value: show(r.value.as_deref(), format),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.clone(), header_text(h.value.as_deref())))
            .collect(),
    }
}

/// One line of an export: UTF-8 keys and values as strings, others base64.
pub fn export_line(r: &ConsumerRecord) -> String {
    let mut o = serde_json::Map::new();
    o.insert("partition".into(), r.partition.into());
    o.insert("offset".into(), r.offset.into());
    o.insert("timestamp".into(), r.timestamp.into());
    for (name, bytes) in [("key", &r.key), ("value", &r.value)] {
        let v = match bytes.as_deref() {
            None => serde_json::Value::Null,
            Some(b) => match std::str::from_utf8(b) {
                Ok(t) => t.into(),
                Err(_) => {
                    o.insert(format!("{name}_encoding"), "base64".into());
                    B64.encode(b).into()
                }
            },
        };
        o.insert(name.into(), v);
    }
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|h| serde_json::json!({"key": h.key, "value": header_text(h.value.as_deref())}))
        .collect();
    o.insert("headers".into(), headers.into());
    serde_json::Value::Object(o).to_string()
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub fn utc(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A time given in a form: ms since the epoch, or ISO 8601 UTC (`2026-12-03T10:00:00Z`,
/// `2026-12-03 10:00`, `2026-12-03`).
pub fn parse_time(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Some(ms);
    }
    let t = t.trim_end_matches('Z').replace('T', " ");
    let (date, time) = t.split_once(' ').unwrap_or((&t, "00:00:00"));
    let mut dp = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (dp.next()??, dp.next()??, dp.next()??);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut tp = hms.split(':').map(|x| x.parse::<i64>().ok());
    let h = tp.next().flatten().unwrap_or(0);
    let mi = tp.next().flatten().unwrap_or(0);
    let s = tp.next().flatten().unwrap_or(0);
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    Some((days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s) * 1000 + ms)
}

/// Bytes in human units (KiB, MiB, ...).
pub fn human_bytes(n: i64) -> String {
    if n < 0 {
        return "-".into();
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_json_hex_and_not_utf8() {
        let s = show(Some(b"{\"a\":1}"), Format::Json);
        assert_eq!(s.text.as_deref(), Some("{\n  \"a\": 1\n}"));
        assert!(s.pre);
        let s = show(Some(&[0xff, 0x00, 0x41]), Format::Text);
        assert_eq!(s.note.as_deref(), Some("not UTF-8"));
        assert_eq!(s.text.as_deref(), Some("ff 00 41"));
        assert_eq!(
            show(Some(b"AB"), Format::Hex).text.as_deref(),
            Some("41 42")
        );
        assert_eq!(show(None, Format::Text).note.as_deref(), Some("null"));
        assert_eq!(
            show(Some(b"plain"), Format::Json).note.as_deref(),
            Some("not JSON")
        );
    }

    #[test]
    fn long_values_are_cut_with_their_size() {
        let big = "é".repeat(DISPLAY_LIMIT); // 2 bytes each: the cut falls inside one
        let s = show(Some(big.as_bytes()), Format::Text);
        assert_eq!(s.truncated, Some(2 * DISPLAY_LIMIT));
        assert_eq!(s.text.unwrap().len(), DISPLAY_LIMIT);
        assert!(s.note.is_none());
    }

    #[test]
    fn times_both_ways() {
        assert_eq!(utc(0), "1970-01-01 00:00:00.000");
        assert_eq!(utc(1_764_720_000_123), "2025-12-03 00:00:00.123");
        assert_eq!(
            parse_time("2025-12-03T00:00:00.123Z"),
            Some(1_764_720_000_123)
        );
        assert_eq!(parse_time("2025-12-03"), Some(1_764_720_000_000));
        assert_eq!(parse_time("1764720000000"), Some(1_764_720_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2025-13-01"), None);
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(10), "10 B");
    }
}
