//! `runnel consume`: read a topic alone (every or some partitions, from the beginning, the end,
//! an offset, N before the end or a time) or in a consumer group, print each record with a
//! kcat-style format string or as JSON lines, and stop after N records, at the end, after an
//! idle time, or on Ctrl-C.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use runnel_client::offsets::LATEST;
use runnel_client::{Consumer, ConsumerConfig, Header, OffsetReset, Seek};

use crate::output::{parse_time, record_json, render, write_stdout, Format};
use crate::{Ctx, Usage};

/// Arguments of `runnel consume`.
#[derive(Args)]
pub struct ConsumeArgs {
    /// The topic.
    topic: String,
    /// Consume in this consumer group (partitions assigned by the group, offsets committed).
    #[arg(long, short = 'g')]
    group: Option<String>,
    /// Only these partitions (repeatable; not with --group).
    #[arg(long, short = 'p', conflicts_with = "group")]
    partition: Vec<i32>,
    /// Where to start: beginning, end, an offset, -N (N before the end), or @TIME (ms or
    /// 2026-11-25T09:30:00Z). With --group only beginning or end, for partitions without a
    /// committed offset. Default: end.
    #[arg(long, short = 'o', allow_hyphen_values = true)]
    from: Option<String>,
    /// Stop after this many records.
    #[arg(long, short = 'c')]
    count: Option<u64>,
    /// Stop at the end of every partition (as it was when reading started).
    #[arg(long, short = 'e')]
    exit: bool,
    /// Stop after this long without a record.
    #[arg(long, value_name = "MS")]
    idle_timeout_ms: Option<u64>,
    /// A kcat-style format: %t %p %o %k %s %K %S %T %h %D, and \n \t. Default `%s\n`.
    #[arg(long = "format-string", short = 'F')]
    format_string: Option<String>,
    /// Only committed transactional records.
    #[arg(long)]
    read_committed: bool,
    /// Keep only records with this header (`key=value`, or `key` for any value; repeatable,
    /// all must match). Others are dropped before they reach the output.
    #[arg(long, value_name = "KEY[=VALUE]")]
    header_filter: Vec<String>,
}

enum Start {
    Beginning,
    End,
    Offset(i64),
    FromEnd(i64),
    Time(i64),
}

fn parse_start(s: &str) -> anyhow::Result<Start> {
    Ok(match s {
        "beginning" | "earliest" => Start::Beginning,
        "end" | "latest" => Start::End,
        t if t.starts_with('@') => {
            Start::Time(parse_time(&t[1..]).map_err(|e| Usage(e.to_string()))?)
        }
        n => match n.parse::<i64>() {
            Ok(v) if v < 0 => Start::FromEnd(-v),
            Ok(v) => Start::Offset(v),
            Err(_) => {
                return Err(Usage(format!(
                    "--from {n:?}: use beginning, end, an offset, -N or @TIME"
                ))
                .into())
            }
        },
    })
}

/// Runs `runnel consume`.
pub async fn run(ctx: &Ctx, a: ConsumeArgs) -> anyhow::Result<u8> {
    let mut cfg = ConsumerConfig::new(ctx.client_config()?);
    ctx.apply_properties(|k, v| cfg.set(k, v))?;
    cfg.fetch_max_wait = cfg.fetch_max_wait.min(Duration::from_millis(200));
    if a.read_committed {
        cfg.set("isolation.level", "read_committed")?;
    }
    let start = match &a.from {
        Some(f) => parse_start(f)?,
        None => Start::End,
    };
    if !a.header_filter.is_empty() {
        let want: Vec<(String, Option<String>)> = a
            .header_filter
            .iter()
            .map(|h| match h.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (h.clone(), None),
            })
            .collect();
        cfg.header_filter = Some(Arc::new(move |hs: &[Header]| {
            want.iter().all(|(k, v)| {
                hs.iter().any(|h| {
                    h.key == *k
                        && v.as_ref()
                            .is_none_or(|v| h.value.as_deref() == Some(v.as_bytes()))
                })
            })
        }));
    }
    let grouped = a.group.is_some();
    if let Some(g) = &a.group {
        cfg.group_id = Some(g.clone());
        // Offsets are committed for what was printed, not for what was fetched.
        cfg.enable_auto_commit = false;
        cfg.auto_offset_reset = match start {
            Start::Beginning => OffsetReset::Earliest,
            Start::End => OffsetReset::Latest,
            _ => return Err(Usage("with --group, --from is beginning or end (for partitions without a committed offset)".into()).into()),
        };
    } else {
        cfg.enable_auto_commit = false;
        cfg.auto_offset_reset = OffsetReset::Earliest;
    }
    let read_committed = a.read_committed;
    let consumer = Consumer::new(cfg).await?;
    let topic = consumer.cluster().topic(&a.topic, false).await?;
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    if grouped {
        consumer.subscribe(&[&a.topic])?;
    } else {
        let parts: Vec<(String, i32)> = if a.partition.is_empty() {
            topic
                .partitions
                .iter()
                .map(|p| (a.topic.clone(), p.partition))
                .collect()
        } else {
            for p in &a.partition {
                if !topic.partitions.iter().any(|x| x.partition == *p) {
                    return Err(runnel_client::Error::NotFound(format!(
                        "topic {} has no partition {p} (it has {})",
                        a.topic,
                        topic.partitions.len()
                    ))
                    .into());
                }
            }
            a.partition.iter().map(|p| (a.topic.clone(), *p)).collect()
        };
        consumer.assign(&parts)?;
        let need_ends = a.exit || matches!(start, Start::FromEnd(_));
        if need_ends {
            let l = runnel_client::offsets::list_offsets(
                consumer.cluster(),
                &parts
                    .iter()
                    .map(|tp| (tp.clone(), LATEST))
                    .collect::<Vec<_>>(),
                read_committed,
            )
            .await?;
            ends = l.into_iter().map(|(tp, o)| (tp, o.offset)).collect();
        }
        for tp in &parts {
            let seek = match start {
                Start::Beginning => Seek::Beginning,
                Start::End => Seek::End,
                Start::Offset(o) => Seek::Offset(o),
                Start::FromEnd(n) => Seek::Offset((ends.get(tp).copied().unwrap_or(0) - n).max(0)),
                Start::Time(t) => Seek::Timestamp(t),
            };
            consumer.seek(tp, seek)?;
        }
    }
    let fmt = a.format_string.clone().unwrap_or_else(|| "%s\\n".into());
    let mut printed = 0u64;
    let mut last_record = Instant::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut interrupted = false;
    let mut done: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // SIGINT or SIGTERM: commit what was printed and leave the group cleanly.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    tokio::pin!(stop);
    let mut last_commit = Instant::now();
    loop {
        if grouped && last_commit.elapsed() >= Duration::from_secs(5) && !done.is_empty() {
            last_commit = Instant::now();
            if let Err(e) = consumer.commit_offsets(&done).await {
                tracing::warn!("commit: {e}");
            }
        }
        if a.count.is_some_and(|c| printed >= c) {
            break;
        }
        if a.exit && at_end(&consumer, grouped, &ends) {
            break;
        }
        if a.idle_timeout_ms
            .is_some_and(|t| last_record.elapsed() >= Duration::from_millis(t))
        {
            break;
        }
        let records = tokio::select! {
            r = consumer.poll(Duration::from_millis(200)) => r?,
            _ = &mut stop => { interrupted = true; break; }
        };
        if !records.is_empty() {
            last_record = Instant::now();
        }
        buf.clear();
        for r in records {
            if a.count.is_some_and(|c| printed >= c) {
                break;
            }
            match ctx.format {
                Format::Json => {
                    buf.extend_from_slice(record_json(&r).to_string().as_bytes());
                    buf.push(b'\n');
                }
                Format::Text => render(&fmt, &r, &mut buf),
            }
            printed += 1;
            if grouped {
                done.insert((r.topic.to_string(), r.partition), r.offset + 1);
            }
        }
        if !buf.is_empty() && write_stdout(&buf).is_err() {
            // The reader went away (`| head`): stop quietly.
            break;
        }
    }
    if grouped && !done.is_empty() {
        // Exactly what was printed: the positions may be past the last printed record.
        if let Err(e) = consumer.commit_offsets(&done).await {
            eprintln!("runnel: committing the offsets of what was printed failed: {e}");
        }
    }
    consumer.close().await?;
    if ctx.format == Format::Text && (a.exit || a.count.is_some() || interrupted) {
        eprintln!(
            "Consumed {printed} record{}.",
            if printed == 1 { "" } else { "s" }
        );
    }
    Ok(0)
}

fn at_end(c: &Consumer, grouped: bool, ends: &BTreeMap<(String, i32), i64>) -> bool {
    let pos = c.positions();
    if grouped {
        let hw = c.high_watermarks();
        let assigned = c.assignment();
        !assigned.is_empty()
            && assigned.iter().all(|tp| match (pos.get(tp), hw.get(tp)) {
                (Some(p), Some(h)) => *h >= 0 && p >= h,
                _ => false,
            })
    } else {
        ends.iter()
            .all(|(tp, end)| pos.get(tp).is_some_and(|p| p >= end))
    }
}
