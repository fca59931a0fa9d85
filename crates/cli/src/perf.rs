//! `runnel perf produce|consume`: throughput and latency tests in the manner of Kafka's
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`, with a progress bar on stderr.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use runnel_client::{Consumer, ConsumerConfig, OffsetReset, Producer, ProducerRecord, Seek};
use serde_json::json;

use crate::output::{print_json, Format};
use crate::Ctx;

/// `runnel perf ...`
#[derive(Subcommand)]
pub enum PerfCmd {
    /// Produce N records of a given size as fast as allowed; report throughput and latency.
    Produce {
        /// The topic.
        topic: String,
        /// How many records.
        #[arg(long, short = 'n', default_value_t = 100_000)]
        num_records: u64,
        /// Value size in bytes.
        #[arg(long, short = 's', default_value_t = 100)]
        record_size: usize,
        /// Records per second at most; -1 for no limit.
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        throughput: i64,
        #[command(flatten)]
        opts: crate::produce::ProducerOpts,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Consume N records from the beginning; report throughput.
    Consume {
        /// The topic.
        topic: String,
        /// How many records.
        #[arg(long, short = 'n', default_value_t = 100_000)]
        messages: u64,
        /// Give up after this long without a record.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

fn bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

/// Runs a `perf` subcommand.
pub async fn run(ctx: &Ctx, cmd: PerfCmd) -> anyhow::Result<u8> {
    match cmd {
        PerfCmd::Produce {
            topic,
            num_records,
            record_size,
            throughput,
            opts,
            quiet,
        } => {
            let cfg = opts.config(ctx)?;
            let producer = Producer::new(cfg).await?;
            // A payload of printable bytes, as Kafka's tool uses.
            let payload: bytes::Bytes = (0..record_size)
                .map(|i| b'A' + (i % 26) as u8)
                .collect::<Vec<u8>>()
                .into();
            let pb = bar(num_records, quiet);
            let start = Instant::now();
            let mut inflight: VecDeque<(Instant, runnel_client::DeliveryFuture)> = VecDeque::new();
            let mut lat_us: Vec<u64> = Vec::with_capacity(num_records as usize);
            let mut errors = 0u64;
            let mut first_error = None;
            let mut settle =
                |lat: &mut Vec<u64>,
                 t0: Instant,
                 r: runnel_client::Result<runnel_client::RecordMetadata>| match r {
                    Ok(_) => lat.push(t0.elapsed().as_micros() as u64),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                };
            for i in 0..num_records {
                if throughput > 0 {
                    let due = start + Duration::from_secs_f64(i as f64 / throughput as f64);
                    if due > Instant::now() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                }
                let t0 = Instant::now();
                let fut = producer
                    .send(ProducerRecord::new(&topic).value(payload.clone()))
                    .await?;
                inflight.push_back((t0, fut));
                // Settle what is done, in order, so memory stays bounded.
                while inflight.len() > 50_000 {
                    let (t0, f) = inflight.pop_front().unwrap();
                    settle(&mut lat_us, t0, f.await);
                }
                if i % 1000 == 0 {
                    pb.set_position(i);
                }
            }
            for (t0, f) in inflight {
                settle(&mut lat_us, t0, f.await);
            }
            let elapsed = start.elapsed().as_secs_f64();
            pb.finish_and_clear();
            producer.close().await?;
            lat_us.sort_unstable();
            let sent = lat_us.len() as u64;
            let rps = sent as f64 / elapsed;
            let mbps = rps * record_size as f64 / (1024.0 * 1024.0);
            let avg = lat_us.iter().sum::<u64>() as f64 / sent.max(1) as f64 / 1000.0;
            let max = lat_us.last().copied().unwrap_or(0) as f64 / 1000.0;
            let (p50, p95, p99, p999) = (
                percentile(&lat_us, 0.5),
                percentile(&lat_us, 0.95),
                percentile(&lat_us, 0.99),
                percentile(&lat_us, 0.999),
            );
            match ctx.format {
                Format::Json => print_json(&json!({
                    "records": sent, "errors": errors, "seconds": elapsed,
                    "records_per_sec": rps, "mb_per_sec": mbps,
                    "latency_ms": {"avg": avg, "max": max, "p50": p50, "p95": p95, "p99": p99, "p99_9": p999},
                })),
                Format::Text => println!(
                    "{sent} records sent, {rps:.1} records/sec ({mbps:.2} MB/sec), {avg:.2} ms avg latency, {max:.2} ms max latency, {p50:.2} ms 50th, {p95:.2} ms 95th, {p99:.2} ms 99th, {p999:.2} ms 99.9th."
                ),
            }
            if let Some(e) = first_error {
                eprintln!("runnel: {errors} record(s) failed; the first: {e}");
                return Ok(1);
            }
            Ok(0)
        }
        PerfCmd::Consume {
            topic,
            messages,
            timeout_ms,
            quiet,
        } => {
            let mut cfg = ConsumerConfig::new(ctx.client_config()?);
            ctx.apply_properties(|k, v| cfg.set(k, v))?;
            cfg.enable_auto_commit = false;
            cfg.auto_offset_reset = OffsetReset::Earliest;
            let consumer = Consumer::new(cfg).await?;
            let info = consumer.cluster().topic(&topic, false).await?;
            let parts: Vec<(String, i32)> = info
                .partitions
                .iter()
                .map(|p| (topic.clone(), p.partition))
                .collect();
            consumer.assign(&parts)?;
            for tp in &parts {
                consumer.seek(tp, Seek::Beginning)?;
            }
            let pb = bar(messages, quiet);
            let start = Instant::now();
            let (mut n, mut bytes) = (0u64, 0u64);
            let mut last = Instant::now();
            while n < messages && last.elapsed() < Duration::from_millis(timeout_ms) {
                let rs = consumer.poll(Duration::from_millis(200)).await?;
                if !rs.is_empty() {
                    last = Instant::now();
                }
                for r in rs {
                    n += 1;
                    bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64
                        + r.key.as_ref().map_or(0, |k| k.len()) as u64;
                }
                pb.set_position(n.min(messages));
            }
            let elapsed = start.elapsed().as_secs_f64();
            pb.finish_and_clear();
            consumer.close().await?;
            let mb = bytes as f64 / (1024.0 * 1024.0);
            match ctx.format {
                Format::Json => print_json(&json!({
                    "records": n, "mb": mb, "seconds": elapsed,
                    "mb_per_sec": mb / elapsed, "records_per_sec": n as f64 / elapsed,
                })),
                Format::Text => println!(
                    "{n} records, {mb:.2} MB in {elapsed:.2} s: {:.2} MB/sec, {:.1} records/sec.",
                    mb / elapsed,
                    n as f64 / elapsed
                ),
            }
            if n < messages {
                eprintln!("runnel: only {n} of {messages} records came within {timeout_ms} ms of idle time");
                return Ok(5);
            }
            Ok(0)
        }
    }
}
