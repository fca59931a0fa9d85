//! The metadata log: `__cluster_metadata-0` under the first log dir, a partition log like any
//! other whose records are [`MetadataRecord`]s. Appending a list of records is atomic (one batch),
//! and yields the next [`MetadataImage`]. At start-up the whole log is replayed.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use runnel_storage::log::{Log, LogConfig};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;

/// Directory name of the metadata log inside the first log dir.
pub const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// Errors of the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The underlying log failed.
    #[error("metadata log: {0}")]
    Log(String),
    /// A record could not be decoded.
    #[error("metadata log record at offset {offset}: {reason}")]
    Corrupt {
        /// Offset of the bad record.
        offset: i64,
        /// What was wrong.
        reason: String,
    },
}

/// The metadata log and the image it has produced so far.
pub struct MetadataLog {
    log: Log,
    image: Arc<MetadataImage>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl MetadataLog {
    /// Opens (or creates) the metadata log under `log_dir` and replays it into an image.
    pub fn open(log_dir: &Path) -> Result<MetadataLog, MetadataError> {
        let dir = log_dir.join(METADATA_LOG_DIR);
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: -1,
            retention_bytes: -1,
            ..LogConfig::default()
        };
        // Always scan the metadata log: it is small and every record matters.
        let log =
            Log::open(&dir, config, 0, false).map_err(|e| MetadataError::Log(e.to_string()))?;
        let mut image = MetadataImage {
            last_offset: -1,
            ..MetadataImage::default()
        };
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log
                .read(offset, 1024 * 1024, end)
                .map_err(|e| MetadataError::Log(e.to_string()))?;
            if read.records.is_empty() {
                break;
            }
            let mut buf = read.records.clone();
            let sets =
                RecordBatchDecoder::decode_all(&mut buf).map_err(|e| MetadataError::Corrupt {
                    offset,
                    reason: e.to_string(),
                })?;
            for set in sets {
                for rec in set.records {
                    if rec.offset < offset {
                        continue;
                    }
                    let value = rec.value.as_deref().unwrap_or_default();
                    let record =
                        MetadataRecord::from_bytes(value).map_err(|e| MetadataError::Corrupt {
                            offset: rec.offset,
                            reason: e.to_string(),
                        })?;
                    image.apply(&record);
                    image.last_offset = rec.offset;
                    offset = rec.offset + 1;
                }
            }
        }
        Ok(MetadataLog {
            log,
            image: Arc::new(image),
        })
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Appends `records` as one batch, fsyncs it, and returns the image with them applied.
    pub fn append(
        &mut self,
        records: &[MetadataRecord],
    ) -> Result<Arc<MetadataImage>, MetadataError> {
        if records.is_empty() {
            return Ok(self.image.clone());
        }
        let ts = now_ms();
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: ts,
                key: None,
                value: Some(r.to_bytes().into()),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            recs.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .map_err(|e| MetadataError::Log(e.to_string()))?;
        let info = self
            .log
            .append_as_leader(&mut buf, 0, ts, false)
            .map_err(|e| MetadataError::Log(e.to_string()))?;
        self.log
            .flush()
            .map_err(|e| MetadataError::Log(e.to_string()))?;
        let mut next = (*self.image).clone();
        for r in records {
            next.apply(r);
        }
        next.last_offset = info.last_offset;
        self.image = Arc::new(next);
        Ok(self.image.clone())
    }

    /// Flushes and closes the log.
    pub fn close(self) -> Result<(), MetadataError> {
        self.log
            .close()
            .map_err(|e| MetadataError::Log(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn append_and_replay() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let mut ml = MetadataLog::open(dir.path()).unwrap();
            assert!(ml.image().topics.is_empty());
            ml.append(&[
                MetadataRecord::Topic {
                    name: "a".into(),
                    topic_id: id,
                },
                MetadataRecord::Partition {
                    topic_id: id,
                    partition: 0,
                    replicas: vec![1],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![],
                },
            ])
            .unwrap();
            let img = ml
                .append(&[MetadataRecord::ProducerIds {
                    next_producer_id: 1000,
                }])
                .unwrap();
            assert_eq!(img.last_offset, 2);
            ml.close().unwrap();
        }
        // Replay after a clean close and again without closing (the log is always scanned).
        let ml = MetadataLog::open(dir.path()).unwrap();
        let img = ml.image();
        assert_eq!(img.topic("a").unwrap().topic_id, id);
        assert_eq!(img.topic("a").unwrap().partitions.len(), 1);
        assert_eq!(img.next_producer_id, 1000);
        assert_eq!(img.last_offset, 2);
    }
}
