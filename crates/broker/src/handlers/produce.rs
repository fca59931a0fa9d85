//! Produce (key 0): v2 record batches only, CRC-32C checked, size-limited by the topic's
//! `max.message.bytes`, producer sequences checked by the log (idempotence), offsets assigned by
//! rewriting the batch header, timestamps rewritten for `LogAppendTime` topics, and no response
//! at all for acks=0.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;
use runnel_storage::batch::{validate_batches, BatchError};
use runnel_storage::log::AppendError;

use super::{sb, RequestContext};
use crate::broker::now_ms;

struct Appended {
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
}

fn partition_error(
    version: i16,
    index: i32,
    error: ResponseError,
    message: String,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(if version >= 8 {
            Some(sb(message))
        } else {
            None
        })
}

fn append(
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    transactional_id: Option<&str>,
    acks: i16,
    record_errors: &mut Vec<i32>,
) -> Result<Appended, (ResponseError, String)> {
    let transactional = transactional_id.is_some();
    if crate::controller::is_internal_topic(topic) {
        return Err((
            ResponseError::InvalidTopicException,
            format!("Cannot append to internal topic {topic}"),
        ));
    }
    let partition = ctx.broker.replicas.partition(topic, index).ok_or((
        ResponseError::UnknownTopicOrPartition,
        "This server does not host this topic-partition.".to_string(),
    ))?;
    let records = records.unwrap_or_default();
    let headers = validate_batches(&records).map_err(|e| match e {
        BatchError::UnsupportedMagic(m) => (
            ResponseError::InvalidRecord,
            format!("Produce requests must contain record batches with magic 2, got {m}"),
        ),
        other => (ResponseError::CorruptMessage, other.to_string()),
    })?;
    if headers.is_empty() {
        return Err((ResponseError::CorruptMessage, "no record batch".to_string()));
    }
    let config = partition.config.read().clone();
    for h in &headers {
        if h.size_bytes() as i64 > config.max_message_bytes as i64 {
            return Err((
                ResponseError::MessageTooLarge,
                format!(
                    "The record batch of {} bytes is larger than max.message.bytes ({})",
                    h.size_bytes(),
                    config.max_message_bytes
                ),
            ));
        }
        if h.is_control() {
            return Err((
                ResponseError::InvalidRecord,
                "Clients may not send control batches".to_string(),
            ));
        }
        if h.is_transactional() && (!transactional || !h.has_producer_id()) {
            return Err((
                ResponseError::InvalidRecord,
                "Transactional records need a producer id and a transactional id".to_string(),
            ));
        }
    }
    // Transactions v2 (Produce v12+): the partition joins the transaction implicitly, unless
    // the producer already has a transaction open here at this epoch.
    if let (Some(id), Some(h)) = (
        transactional_id.filter(|_| ctx.api_version >= 12),
        headers.iter().find(|h| h.is_transactional()),
    ) {
        let open_here = partition
            .log
            .lock()
            .open_txns()
            .iter()
            .any(|(pid, epoch, _)| *pid == h.producer_id && *epoch == h.producer_epoch);
        if !open_here {
            ctx.broker
                .txns
                .add_partition_implicitly(
                    &ctx.broker,
                    id,
                    h.producer_id,
                    h.producer_epoch,
                    topic,
                    index,
                )
                .map_err(|e| {
                    (
                        e,
                        "The partition could not join the transaction".to_string(),
                    )
                })?;
        }
    }
    if config
        .cleanup_policy
        .split(',')
        .any(|p| p.trim() == "compact")
    {
        let keyless = check_keys_for_compaction(&records)?;
        if !keyless.is_empty() {
            *record_errors = keyless;
            return Err((
                ResponseError::InvalidRecord,
                format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}."),
            ));
        }
    }
    let mut buf = records.to_vec();
    let mut log = partition.log.lock();
    let result = log.append_as_leader(
        &mut buf,
        partition.leader_epoch,
        now_ms(),
        config.message_timestamp_type_log_append,
    );
    if result.is_ok() && acks == -1 && ctx.broker.config.fsync_on_ack {
        // runnel.fsync.on.ack: the write is on disk before acks=all is answered.
        if let Err(e) = log.flush() {
            tracing::error!(topic, partition = index, error = %e, "fsync failed");
            return Err((ResponseError::KafkaStorageError, e.to_string()));
        }
    }
    match result {
        Ok(info) => Ok(Appended {
            base_offset: info.first_offset,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
        }),
        // A retried batch that was already written: answer with its original offsets, as Kafka does.
        Err(AppendError::DuplicateSequence { first_offset, .. }) => Ok(Appended {
            base_offset: first_offset,
            log_append_time_ms: -1,
            log_start_offset: log.log_start_offset(),
        }),
        Err(AppendError::OutOfOrderSequence) => Err((
            ResponseError::OutOfOrderSequenceNumber,
            "out of order sequence number".to_string(),
        )),
        Err(AppendError::InvalidProducerEpoch) => Err((
            ResponseError::InvalidProducerEpoch,
            "producer epoch is older than the current one".to_string(),
        )),
        Err(AppendError::Batch(e)) => Err((ResponseError::CorruptMessage, e.to_string())),
        Err(e) => {
            tracing::error!(topic, partition = index, error = %e, "append failed");
            Err((ResponseError::KafkaStorageError, e.to_string()))
        }
    }
}

/// Compacted topics refuse records without a key, as Kafka does (INVALID_RECORD). The batches
/// are decoded (decompressed if needed) only for compacted topics. Returns the indexes of the
/// records without a key.
fn check_keys_for_compaction(records: &Bytes) -> Result<Vec<i32>, (ResponseError, String)> {
    let mut buf = records.clone();
    let sets = RecordBatchDecoder::decode_all(&mut buf).map_err(|e| {
        (
            ResponseError::CorruptMessage,
            format!("undecodable batch: {e}"),
        )
    })?;
    Ok(sets
        .iter()
        .flat_map(|s| s.records.iter())
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i as i32)
        .collect())
}

/// Handles Produce; `None` for acks=0.
pub fn handle(ctx: &RequestContext, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = req.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let transactional_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    let mut appended_any = false;
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for td in req.topic_data {
        let topic = td.name.0.to_string();
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            if !valid_acks {
                partitions.push(partition_error(
                    ctx.api_version,
                    pd.index,
                    ResponseError::InvalidRequiredAcks,
                    format!("acks must be 0, 1 or -1, not {acks}"),
                ));
                continue;
            }
            let mut record_errors = Vec::new();
            match append(
                ctx,
                &topic,
                pd.index,
                pd.records,
                transactional_id.as_deref(),
                acks,
                &mut record_errors,
            ) {
                Ok(a) => {
                    appended_any = true;
                    partitions.push(
                        PartitionProduceResponse::default()
                            .with_index(pd.index)
                            .with_error_code(0)
                            .with_base_offset(a.base_offset)
                            .with_log_append_time_ms(a.log_append_time_ms)
                            .with_log_start_offset(if ctx.api_version >= 5 {
                                a.log_start_offset
                            } else {
                                -1
                            }),
                    );
                }
                Err((e, msg)) => {
                    let mut resp = partition_error(ctx.api_version, pd.index, e, msg.clone());
                    if ctx.api_version >= 8 {
                        // Which records were refused (KIP-467), so clients fail only those.
                        resp.record_errors = record_errors
                            .into_iter()
                            .map(|i| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(i)
                                    .with_batch_index_error_message(Some(sb(msg.clone())))
                            })
                            .collect();
                    }
                    partitions.push(resp)
                }
            }
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(td.name)
                .with_topic_id(td.topic_id)
                .with_partition_responses(partitions),
        );
    }
    if appended_any {
        ctx.broker.replicas.notify_append();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
