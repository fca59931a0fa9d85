//! Consumer example: join a group, read what the topic holds, commit, leave.
//!
//! `cargo run -p runnel-client --example consume -- 127.0.0.1:9092 example-topic example-group`

use std::time::{Duration, Instant};

use runnel_client::{ClientConfig, Consumer, ConsumerConfig, OffsetReset};

#[tokio::main]
async fn main() -> Result<(), runnel_client::Error> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "example-topic".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let mut cfg = ConsumerConfig::new(ClientConfig::new(&bootstrap));
    cfg.group_id = Some(group);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.enable_auto_commit = false;
    let consumer = Consumer::new(cfg).await?;
    consumer.subscribe(&[&topic])?;
    // Read until nothing new came for two seconds (after at least one record).
    let mut last = Instant::now();
    let mut seen = 0;
    while last.elapsed() < Duration::from_secs(if seen == 0 { 15 } else { 2 }) {
        for r in consumer.poll(Duration::from_millis(200)).await? {
            last = Instant::now();
            seen += 1;
            let key = String::from_utf8_lossy(r.key.as_deref().unwrap_or_default()).into_owned();
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            println!("{}-{}@{} {key}={value}", r.topic, r.partition, r.offset);
        }
    }
    consumer.commit_sync().await?;
    println!("read {seen} records");
    consumer.close().await
}
