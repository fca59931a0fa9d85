//! Runnel's protocol layer: request framing and header decoding, the table of served API versions,
//! Kafka error codes, a length check that runs before any message is decoded, and the v2 record
//! batch layout shared by the log and the client. No I/O here: the
//! broker hands bytes in and gets bytes or typed messages out.

pub mod batch;
pub mod frame;
pub mod validate;
pub mod versions;

pub use kafka_protocol;
pub use kafka_protocol::ResponseError;
