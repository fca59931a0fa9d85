//! A partition replica on this broker: its log (one owner, behind a mutex held only for the
//! duration of an append or a read), its resolved topic configuration, and its leader epoch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use runnel_config::TopicConfig;
use runnel_storage::log::{Log, LogConfig};
use uuid::Uuid;

/// One partition hosted by this broker.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Topic id.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// Current leader epoch.
    pub leader_epoch: i32,
    /// The partition's log.
    pub log: Mutex<Log>,
    /// Resolved topic configuration (changes with AlterConfigs).
    pub config: RwLock<Arc<TopicConfig>>,
}

/// The storage settings derived from a topic's configuration.
pub fn log_config(tc: &TopicConfig) -> LogConfig {
    LogConfig {
        segment_bytes: tc.segment_bytes.max(1) as u64,
        segment_ms: tc.segment_ms,
        retention_ms: tc.retention_ms,
        retention_bytes: tc.retention_bytes,
        index_interval_bytes: tc.index_interval_bytes.max(1) as u64,
        segment_index_bytes: tc.segment_index_bytes.max(64) as u64,
        flush_interval_messages: if tc.flush_messages <= 0 || tc.flush_messages == i64::MAX {
            u64::MAX
        } else {
            tc.flush_messages as u64
        },
        flush_interval_ms: tc.flush_ms,
        file_delete_delay_ms: tc.file_delete_delay_ms,
    }
}

/// Directory of a partition's log: `<log.dirs>/<topic>-<partition>`.
pub fn partition_dir(log_dir: &Path, topic: &str, index: i32) -> PathBuf {
    log_dir.join(format!("{topic}-{index}"))
}

/// Contents of Kafka's `partition.metadata` file for a topic id.
pub fn partition_metadata_text(topic_id: &Uuid) -> String {
    format!("version: 0\ntopic_id: {}\n", topic_id_base64(topic_id))
}

/// Kafka's printed form of a topic id: URL-safe base64 of its 16 bytes, no padding.
pub fn topic_id_base64(id: &Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

impl Partition {
    /// The high watermark: on a single node every appended record is committed.
    pub fn high_watermark(&self) -> i64 {
        self.log.lock().log_end_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_id_base64_is_22_chars() {
        let id = Uuid::from_bytes([0xff; 16]);
        let s = topic_id_base64(&id);
        assert_eq!(s.len(), 22);
        assert_eq!(s, "_____________________w");
        assert_eq!(topic_id_base64(&Uuid::nil()), "AAAAAAAAAAAAAAAAAAAAAA");
    }
}
