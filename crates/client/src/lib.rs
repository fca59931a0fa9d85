//! Runnel's async Kafka client: a [`Producer`], a [`Consumer`] and an [`Admin`] on the same
//! protocol layer as the broker (`runnel-protocol`, i.e. the `kafka-protocol` message types).
//! It speaks to any Kafka-compatible cluster, Apache Kafka included: versions are negotiated
//! per broker with ApiVersions.
//!
//! Connection handling lives in [`cluster`]: bootstrap from a list of addresses, one pipelined
//! connection per broker, metadata refresh when a leader moves, reconnects with backoff.
//! Connections speak TLS and authenticate with SASL (PLAIN, SCRAM) as `security.protocol`
//! says ([`security`], [`sasl`], [`tls`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), runnel_client::Error> {
//! use runnel_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};
//! let producer = Producer::new(ProducerConfig::new(ClientConfig::new("127.0.0.1:9092"))).await?;
//! let delivery = producer.send(ProducerRecord::new("events").key("k").value("v")).await?;
//! let meta = delivery.await?;
//! println!("written at {}/{}", meta.partition, meta.offset);
//! producer.close().await?;
//! # Ok(()) }
//! ```

pub mod acls;
pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod consumer;
pub mod error;
mod group;
pub mod jaas;
pub mod offsets;
pub mod partitioner;
pub mod producer;
pub mod quotas;
pub mod record;
pub mod sasl;
pub mod security;
pub mod tls;
pub mod users;

pub use admin::Admin;
pub use config::{ClientConfig, ConsumerConfig, IsolationLevel, OffsetReset, ProducerConfig};
pub use consumer::{Consumer, Seek};
pub use error::{Error, Result};
pub use producer::{DeliveryFuture, Producer, RecordMetadata};
pub use record::{Compression, ConsumerRecord, Header, ProducerRecord};
pub use runnel_protocol::kafka_protocol;
