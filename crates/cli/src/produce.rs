//! `runnel produce`: one record per input line, from stdin or a file. A line is the value, or
//! `key<SEP>value` with `--key-separator` (as kafka-console-producer's parse.key), or is read
//! with a `--line-format` such as `%k=%v` or `%h\t%k\t%v` (`%k` key, `%v` value,
//! `%h` headers `k=v,k=v`, `%p` partition, `%T` timestamp in ms).

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use runnel_client::{Compression, Header, Producer, ProducerConfig, ProducerRecord};
use serde_json::json;

use crate::output::{print_json, Format};
use crate::{Ctx, Usage};

/// Arguments of `runnel produce`.
#[derive(Args)]
pub struct ProduceArgs {
    /// The topic.
    topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, short = 'K', value_name = "SEP", conflicts_with = "line_format")]
    key_separator: Option<String>,
    /// How a line is read: fields %k %v %h %p %T between literal separators.
    #[arg(long, value_name = "FORMAT")]
    line_format: Option<String>,
    /// A header on every record, `key=value` (repeatable).
    #[arg(long, short = 'H', value_name = "KEY=VALUE")]
    header: Vec<String>,
    /// Write every record to this partition.
    #[arg(long, short = 'p')]
    partition: Option<i32>,
    #[command(flatten)]
    opts: ProducerOpts,
    /// Print where each record went (partition and offset), in input order.
    #[arg(long)]
    report: bool,
}

/// The producer settings both `produce` and `perf produce` take as flags.
#[derive(Args)]
pub struct ProducerOpts {
    /// acks: 0, 1 or all.
    #[arg(long)]
    acks: Option<String>,
    /// compression.type: none, gzip, snappy, lz4, zstd.
    #[arg(long, short = 'z')]
    compression: Option<String>,
    /// linger.ms.
    #[arg(long)]
    linger_ms: Option<u64>,
    /// batch.size.
    #[arg(long)]
    batch_size: Option<usize>,
}

impl ProducerOpts {
    /// The producer configuration: client settings, profile and `-X` properties, then flags.
    pub fn config(&self, ctx: &Ctx) -> anyhow::Result<ProducerConfig> {
        let mut cfg = ProducerConfig::new(ctx.client_config()?);
        ctx.apply_properties(|k, v| cfg.set(k, v))?;
        if let Some(acks) = &self.acks {
            cfg.set("acks", acks)?;
        }
        if let Some(c) = &self.compression {
            cfg.compression = Compression::parse(c)?;
        }
        if let Some(l) = self.linger_ms {
            cfg.linger = std::time::Duration::from_millis(l);
        }
        if let Some(b) = self.batch_size {
            cfg.batch_size = b;
        }
        Ok(cfg)
    }
}

#[derive(Debug, PartialEq)]
enum Tok {
    Field(char),
    Lit(String),
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\\\", "\\")
}

fn parse_format(f: &str) -> anyhow::Result<Vec<Tok>> {
    let f = unescape(f);
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = f.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => lit.push('%'),
            Some(k @ ('k' | 'v' | 'h' | 'p' | 'T')) => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                if matches!(out.last(), Some(Tok::Field(_))) {
                    return Err(Usage(format!(
                        "--line-format {f:?}: two fields need a separator between them"
                    ))
                    .into());
                }
                out.push(Tok::Field(k));
            }
            other => {
                return Err(Usage(format!(
                    "--line-format: unknown field %{} (use %k %v %h %p %T)",
                    other.map(String::from).unwrap_or_default()
                ))
                .into())
            }
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    Ok(out)
}

#[derive(Default, Debug, PartialEq)]
struct Parsed {
    key: Option<String>,
    value: Option<String>,
    headers: Vec<(String, String)>,
    partition: Option<i32>,
    timestamp: Option<i64>,
}

fn parse_line(toks: &[Tok], line: &str) -> Result<Parsed, String> {
    let mut rest = line;
    let mut p = Parsed::default();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Lit(l) => {
                rest = rest
                    .strip_prefix(l.as_str())
                    .ok_or_else(|| format!("expected {l:?} at {rest:?}"))?;
            }
            Tok::Field(f) => {
                let field = match toks.get(i + 1) {
                    Some(Tok::Lit(sep)) => {
                        let at = rest
                            .find(sep.as_str())
                            .ok_or_else(|| format!("no {sep:?} in {rest:?}"))?;
                        let (a, b) = rest.split_at(at);
                        rest = b;
                        a
                    }
                    _ => std::mem::take(&mut rest),
                };
                match f {
                    'k' => p.key = Some(field.to_string()),
                    'v' => p.value = Some(field.to_string()),
                    'p' => {
                        p.partition = Some(
                            field
                                .trim()
                                .parse()
                                .map_err(|_| format!("bad partition {field:?}"))?,
                        )
                    }
                    'T' => {
                        p.timestamp = Some(
                            field
                                .trim()
                                .parse()
                                .map_err(|_| format!("bad timestamp {field:?}"))?,
                        )
                    }
                    'h' => {
                        for kv in field.split(',').filter(|s| !s.is_empty()) {
                            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                            p.headers.push((k.to_string(), v.to_string()));
                        }
                    }
                    _ => unreachable!(),
                }
            }
        }
    }
    Ok(p)
}

/// Runs `runnel produce`.
pub async fn run(ctx: &Ctx, a: ProduceArgs) -> anyhow::Result<u8> {
    let cfg = a.opts.config(ctx)?;
    let toks = match (&a.line_format, &a.key_separator) {
        (Some(f), _) => parse_format(f)?,
        (None, Some(sep)) => vec![Tok::Field('k'), Tok::Lit(unescape(sep)), Tok::Field('v')],
        (None, None) => vec![Tok::Field('v')],
    };
    let mut fixed_headers = Vec::new();
    for h in &a.header {
        let (k, v) = h
            .split_once('=')
            .ok_or_else(|| Usage(format!("--header expects key=value, got {h:?}")))?;
        fixed_headers.push(Header {
            key: k.to_string(),
            value: Some(bytes::Bytes::from(v.to_string())),
        });
    }
    let input: Box<dyn BufRead> = match &a.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f)
                .map_err(|e| Usage(format!("cannot read {}: {e}", f.display())))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let producer = Producer::new(cfg).await?;
    let mut pending = VecDeque::new();
    let (mut sent, mut failed) = (0u64, 0u64);
    let mut first_error: Option<runnel_client::Error> = None;
    let mut report = |r: Result<runnel_client::RecordMetadata, runnel_client::Error>,
                      key: Option<String>| match r {
        Ok(m) => {
            sent += 1;
            if a.report {
                match ctx.format {
                    Format::Json => print_json(
                        &json!({"topic": m.topic, "partition": m.partition, "offset": m.offset, "key": key}),
                    ),
                    Format::Text => {
                        println!("{}\t{}\t{}", m.partition, m.offset, key.unwrap_or_default())
                    }
                }
            }
        }
        Err(e) => {
            failed += 1;
            first_error.get_or_insert(e);
        }
    };
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| Usage(format!("cannot read input: {e}")))?;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let p = match parse_line(&toks, line) {
            Ok(p) => p,
            Err(e) => {
                if a.key_separator.is_some() {
                    return Err(Usage(format!("line {}: no key separator: {e}", n + 1)).into());
                }
                return Err(Usage(format!("line {}: {e}", n + 1)).into());
            }
        };
        let mut r = ProducerRecord::new(&a.topic);
        r.key = p.key.clone().map(bytes::Bytes::from);
        r.value = p.value.map(bytes::Bytes::from);
        r.headers = fixed_headers.clone();
        r.headers.extend(p.headers.into_iter().map(|(k, v)| Header {
            key: k,
            value: Some(bytes::Bytes::from(v)),
        }));
        r.partition = p.partition.or(a.partition);
        r.timestamp = p.timestamp;
        let fut = producer.send(r).await?;
        pending.push_back((fut, p.key));
        // Keep the report in input order without holding every future.
        while pending.len() > 10_000 {
            let (f, k) = pending.pop_front().unwrap();
            report(f.await, k);
        }
    }
    producer.flush().await?;
    for (f, k) in pending {
        report(f.await, k);
    }
    producer.close().await?;
    if !a.report {
        match ctx.format {
            Format::Json => {
                print_json(&json!({"topic": a.topic, "records": sent, "failed": failed}))
            }
            Format::Text => eprintln!(
                "Produced {sent} record{} to {}.",
                if sent == 1 { "" } else { "s" },
                a.topic
            ),
        }
    }
    if let Some(e) = first_error {
        eprintln!("runnel: {failed} record(s) failed; the first: {e}");
        // Refused by an ACL: the same exit code and hint as any other command.
        if let (7, Some(hint)) = crate::classify_client(&e, "") {
            eprintln!("hint: {hint}");
            return Ok(7);
        }
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_formats() {
        let t = parse_format("%k=%v").unwrap();
        let p = parse_line(&t, "a=b=c").unwrap();
        assert_eq!(
            (p.key.as_deref(), p.value.as_deref()),
            (Some("a"), Some("b=c"))
        );
        let t = parse_format(r"%h\t%p:%k\t%v").unwrap();
        let p = parse_line(&t, "x=1,y=2\t3:key\tval").unwrap();
        assert_eq!(
            p.headers,
            vec![("x".into(), "1".into()), ("y".into(), "2".into())]
        );
        assert_eq!(p.partition, Some(3));
        assert_eq!(p.value.as_deref(), Some("val"));
        assert!(parse_line(&parse_format("%k=%v").unwrap(), "nokey").is_err());
        assert!(parse_format("%k%v").is_err());
        assert!(parse_format("%q").is_err());
    }
}
