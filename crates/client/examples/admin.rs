//! Admin example: create a topic, list topics, show the cluster.
//!
//! `cargo run -p runnel-client --example admin -- 127.0.0.1:9092 example-topic`

use runnel_client::admin::NewTopic;
use runnel_client::{Admin, ClientConfig};

#[tokio::main]
async fn main() -> Result<(), runnel_client::Error> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "127.0.0.1:9092".into());
    let topic = args.next().unwrap_or_else(|| "example-topic".into());
    let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
    match admin.create_topic(&NewTopic::new(&topic, 3)).await {
        Ok(()) => println!("created {topic}"),
        // TOPIC_ALREADY_EXISTS
        Err(e) if e.code() == Some(36) => println!("{topic} exists"),
        Err(e) => return Err(e),
    }
    for t in admin.list_topics(false).await? {
        println!("topic {} with {} partitions", t.name, t.partitions.len());
    }
    let cluster = admin.describe_cluster().await?;
    println!(
        "cluster {} with {} broker(s)",
        cluster.cluster_id,
        cluster.brokers.len()
    );
    Ok(())
}
