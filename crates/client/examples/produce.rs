//! Producer example: ten keyed records with a header, each acknowledged with its offset.
//!
//! `cargo run -p runnel-client --example produce -- 127.0.0.1:9092 example-topic`

use runnel_client::{ClientConfig, Compression, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), runnel_client::Error> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "example-topic".into());
    let mut cfg = ProducerConfig::new(ClientConfig::new(&bootstrap));
    cfg.compression = Compression::Zstd;
    let producer = Producer::new(cfg).await?;
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new(&topic)
            .key(format!("user-{}", i % 3))
            .value(format!("event {i}"))
            .header("source", "example");
        // `send` queues the record; the future resolves once the broker acknowledged it.
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        let m = d.await?;
        println!(
            "written to {}-{} at offset {}",
            m.topic, m.partition, m.offset
        );
    }
    producer.close().await
}
