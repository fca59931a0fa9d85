//! The Runnel broker: listeners and connections, request dispatch to one handler per Kafka API
//! (`handlers/`), the replica manager that owns every partition's log, the controller that turns
//! admin requests into metadata records, and the metrics and health endpoint (`metrics/`). Start
//! one with [`Broker::start`].

pub mod broker;
pub mod controller;
pub mod group;
pub mod handlers;
pub mod identity;
pub mod internal_topics;
pub mod internode;
pub mod logging;
pub mod metrics;
pub mod partition;
pub mod replica;
pub mod security;
pub mod server;
pub mod txn;

pub use broker::{Broker, BrokerHandle};
