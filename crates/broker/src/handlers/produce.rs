//! Produce (key 0): v2 record batches only, CRC-32C checked, size-limited by the topic's
//! `max.message.bytes`, producer sequences checked by the log (idempotence), offsets assigned by
//! rewriting the batch header, timestamps rewritten for `LogAppendTime` topics, and no response
//! at all for acks=0. Only the partition's leader appends (NOT_LEADER_OR_FOLLOWER elsewhere).
//! acks=1 is answered at the leader's append; acks=all needs `min.insync.replicas` in the ISR
//! (NOT_ENOUGH_REPLICAS) and is answered once the high watermark passes the batch, i.e. every
//! ISR member has it (NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum
//! meanwhile, REQUEST_TIMED_OUT after the request's timeout). The batches are appended first
//! ([`append_all`]); the waiting for fsyncs and the ISR ([`PendingProduce::finish`]) holds up
//! only this request's answer: its connection goes on with the next requests meanwhile.

use std::time::Duration;

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
use crate::partition::Replication;
use crate::security::acl::{AclOperation, ResourceType};

struct Appended {
    base_offset: i64,
    last_offset: i64,
    /// The leader epoch the batch was appended in.
    leader_epoch: i32,
    log_append_time_ms: i64,
    log_start_offset: i64,
    /// The partition, when the append must be on disk before the answer.
    sync: Option<std::sync::Arc<crate::partition::Partition>>,
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

#[allow(clippy::too_many_arguments)]
fn append(
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    transactional_id: Option<&str>,
    acks: i16,
    serving: bool,
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
    // As Kafka's BrokerTopicMetrics: every partition write asked of a hosted topic counts as a
    // produce request of the topic; bytes and records in count once appended.
    let counters = ctx.broker.metrics.topic(topic);
    counters.produce_requests.inc();
    if !serving {
        return Err((
            ResponseError::NotLeaderOrFollower,
            "This broker is fenced or not yet caught up with the cluster metadata.".to_string(),
        ));
    }
    partition.check_leader(-1).map_err(|e| {
        (
            e,
            format!("This broker is not the leader of {topic}-{index}."),
        )
    })?;
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
    if acks == -1 {
        if let Some((isr, min)) = partition.isr_shortfall() {
            return Err((
                ResponseError::NotEnoughReplicas,
                format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min} for partition {topic}-{index}"),
            ));
        }
    }
    let mut buf = records.to_vec();
    let leader_epoch = partition.leader_epoch();
    let mut log = partition.log.lock();
    let result = log.append_as_leader(
        &mut buf,
        leader_epoch,
        now_ms(),
        config.message_timestamp_type_log_append,
    );
    // runnel.fsync.on.ack (acks=all) and flush.messages=1 (any acks): on disk before the answer,
    // synced after the lock is let go (group commit, `Partition::sync_to`).
    let sync = (acks == -1 && ctx.broker.config.fsync_on_ack) || log.syncs_every_append();
    let log_start_offset = log.log_start_offset();
    drop(log);
    partition.leader_appended();
    if let Ok(info) = &result {
        counters.bytes_in.inc_by(buf.len() as u64);
        counters
            .messages_in
            .inc_by((info.last_offset - info.first_offset + 1).max(0) as u64);
    }
    match result {
        Ok(info) => Ok(Appended {
            base_offset: info.first_offset,
            last_offset: info.last_offset,
            leader_epoch,
            log_append_time_ms: info.log_append_time_ms,
            log_start_offset: info.log_start_offset,
            sync: sync.then_some(partition),
        }),
        // A retried batch that was already written: answer with its original offsets, as Kafka does.
        Err(AppendError::DuplicateSequence {
            first_offset,
            last_offset,
        }) => Ok(Appended {
            base_offset: first_offset,
            last_offset,
            leader_epoch,
            log_append_time_ms: -1,
            log_start_offset,
            sync: sync.then_some(partition),
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

/// Waits until the high watermark of `topic`-`index` passes `last_offset` (acks=all): Ok, or
/// the error the partition's response carries.
pub(crate) async fn wait_for_isr(
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    (last_offset, leader_epoch): (i64, i32),
    deadline: tokio::time::Instant,
) -> Result<(), (ResponseError, String)> {
    let Some(partition) = ctx.broker.replicas.partition(topic, index) else {
        return Err((
            ResponseError::NotLeaderOrFollower,
            format!("{topic}-{index} is no longer hosted here"),
        ));
    };
    let mut hw = partition.subscribe_high_watermark();
    loop {
        match partition.replication(last_offset + 1, leader_epoch) {
            Replication::Pending => {}
            Replication::Committed => return Ok(()),
            Replication::LeadershipLost => {
                return Err((
                    ResponseError::NotLeaderOrFollower,
                    format!("Leadership of {topic}-{index} moved before the write was replicated"),
                ))
            }
            Replication::TooFewInSync { isr, min } => {
                return Err((
                    ResponseError::NotEnoughReplicasAfterAppend,
                    format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min} for partition {topic}-{index}"),
                ))
            }
        }
        // Woken by the high watermark; the short slice notices a lost leadership.
        let slice = (tokio::time::Instant::now() + Duration::from_millis(200)).min(deadline);
        let _ = tokio::time::timeout_at(slice, hw.changed()).await;
        if tokio::time::Instant::now() >= deadline && partition.high_watermark() <= last_offset {
            return Err((
                ResponseError::RequestTimedOut,
                format!("The write to {topic}-{index} was not replicated to the ISR in time"),
            ));
        }
    }
}

/// A Produce request whose batches are appended (or refused), its answer waiting for what must
/// happen before it: fsyncs (`flush.messages=1`, `runnel.fsync.on.ack`) and, for acks=all, the
/// ISR. [`PendingProduce::finish`] waits and answers.
pub struct PendingProduce {
    acks: i16,
    api_version: i16,
    deadline: tokio::time::Instant,
    responses: Vec<TopicProduceResponse>,
    /// (topic response, partition response, partition, end offset) to be synced.
    syncs: Vec<PendingSync>,
    waits: Vec<PendingIsr>,
}

/// (topic response, partition response, partition index, the partition, end offset) to be
/// synced before the answer.
type PendingSync = (
    usize,
    usize,
    i32,
    std::sync::Arc<crate::partition::Partition>,
    i64,
);

/// (topic response, partition response, topic, partition, (last offset, leader epoch)) awaiting
/// the ISR before the answer.
type PendingIsr = (usize, usize, String, i32, (i64, i32));

/// Appends every partition's batches of a Produce request, in order, without waiting for disk
/// or replicas.
pub fn append_all(ctx: &RequestContext, req: ProduceRequest) -> PendingProduce {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let acks = req.acks;
    let valid_acks = (-1..=1).contains(&acks);
    let transactional_id = req.transactional_id.as_ref().map(|t| t.0.to_string());
    // Once per request: whether this broker is registered, unfenced and caught up.
    let serving = ctx.broker.is_serving();
    // (topic response, partition response, topic, partition, last offset) awaiting the ISR.
    let mut waits = Vec::new();
    // (topic response, partition response, partition, its replica, end offset) to be synced.
    let mut syncs = Vec::new();
    let mut responses = Vec::with_capacity(req.topic_data.len());
    // As Kafka: a transactional producer needs WRITE on its transactional id (else every
    // partition fails), and every producer WRITE on each topic.
    let txn_denied = transactional_id
        .as_deref()
        .is_some_and(|id| !ctx.authorize(AclOperation::Write, ResourceType::TransactionalId, id));
    for td in req.topic_data {
        let topic = td.name.0.to_string();
        let denied = if txn_denied {
            Some(ResponseError::TransactionalIdAuthorizationFailed)
        } else if !ctx.authorize(AclOperation::Write, ResourceType::Topic, &topic) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else {
            None
        };
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        for pd in td.partition_data {
            if let Some(e) = denied {
                partitions.push(partition_error(ctx.api_version, pd.index, e, String::new()));
                continue;
            }
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
                serving,
                &mut record_errors,
            ) {
                Ok(a) => {
                    if let Some(partition) = &a.sync {
                        syncs.push((
                            responses.len(),
                            partitions.len(),
                            pd.index,
                            partition.clone(),
                            a.last_offset + 1,
                        ));
                    }
                    if acks == -1 {
                        waits.push((
                            responses.len(),
                            partitions.len(),
                            topic.clone(),
                            pd.index,
                            (a.last_offset, a.leader_epoch),
                        ));
                    }
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
    PendingProduce {
        acks,
        api_version: ctx.api_version,
        deadline,
        responses,
        syncs,
        waits,
    }
}

impl PendingProduce {
    /// Whether the answer needs no waiting (no fsync, no ISR).
    pub fn is_ready(&self) -> bool {
        self.syncs.is_empty() && self.waits.is_empty()
    }

    /// Waits for the fsyncs and the ISR, then answers (`None` for acks=0).
    pub async fn finish(self, ctx: &RequestContext) -> Option<ProduceResponse> {
        let PendingProduce {
            acks,
            api_version,
            deadline,
            mut responses,
            syncs,
            waits,
        } = self;
        // The partitions' fsyncs run at once (a request's partitions share the disk's flush
        // rather than queueing one after another), each still grouped with other requests'.
        let running: Vec<_> = syncs
            .iter()
            .map(|(_, _, _, partition, end)| {
                let (partition, end) = (std::sync::Arc::clone(partition), *end);
                tokio::spawn(async move { partition.sync_to(end).await })
            })
            .collect();
        for ((t, p, index, partition, _), synced) in syncs.into_iter().zip(running) {
            let synced = synced
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            if let Err(e) = synced {
                tracing::error!(topic = %partition.topic, partition = index, error = %e, "fsync failed");
                responses[t].partition_responses[p] = partition_error(
                    api_version,
                    index,
                    ResponseError::KafkaStorageError,
                    e.to_string(),
                );
            }
        }
        for (t, p, topic, index, appended) in waits {
            if let Err((e, msg)) = wait_for_isr(ctx, &topic, index, appended, deadline).await {
                responses[t].partition_responses[p] = partition_error(api_version, index, e, msg);
            }
        }
        if acks == 0 {
            return None;
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}
