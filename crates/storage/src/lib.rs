//! Runnel's partition log: segments of verbatim v2 record batches in Kafka's on-disk layout, with
//! sparse offset and time indexes, rolling, retention, DeleteRecords, recovery after an unclean
//! shutdown, the leader-epoch cache, idempotent-producer state, log compaction (the cleaner's
//! core), and moving a log to another directory while it serves. Plain files, no networking: testable on its own.

/// The v2 record batch layout, from the protocol crate: the log stores batches as they came.
pub use runnel_protocol::batch;
pub mod checkpoint;
pub mod cleaner;
pub mod log;
pub mod producer;
pub mod relocate;
pub mod testing;
