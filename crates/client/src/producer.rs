//! The producer: `send` places a record in its partition's open batch and returns a future of
//! its offset; a background task closes batches when they reach `batch.size` or `linger.ms`,
//! sends each broker one Produce request for all its ready partitions, and retries retriable
//! errors until `delivery.timeout.ms`. One batch per partition is in flight at a time, so
//! retries never reorder records. With idempotence (the default, with acks=all) every batch
//! carries the producer id, epoch and sequence, so a retry is never written twice.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use runnel_protocol::kafka_protocol::messages::{
    produce_request::{PartitionProduceData, TopicProduceData},
    InitProducerIdRequest, ProduceRequest, ProducerId, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;
use tokio::sync::{oneshot, Notify};

use crate::cluster::Cluster;
use crate::config::ProducerConfig;
use crate::error::{Error, Result};
use crate::partitioner::{partition_for_key, Sticky};
use crate::record::{encode_batch, now_ms, BatchIdentity, ProducerRecord};

/// Where a record was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset; -1 with acks=0 (the broker does not answer).
    pub offset: i64,
    /// The record's timestamp (the broker's append time on LogAppendTime topics).
    pub timestamp: i64,
}

type Waiter = oneshot::Sender<Result<RecordMetadata>>;

/// The outcome of one `send`: resolves when the record is acknowledged or has failed.
pub struct DeliveryFuture(oneshot::Receiver<Result<RecordMetadata>>);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

type Tp = (Arc<str>, i32);

struct Batch {
    recs: Vec<ProducerRecord>,
    waiters: Vec<Waiter>,
    bytes: usize,
    created: Instant,
    encoded: Option<Bytes>,
    base_seq: i32,
}

struct Part {
    open: Option<Batch>,
    sealed: VecDeque<Batch>,
    in_flight: bool,
    retry_at: Option<Instant>,
    pid: (i64, i16),
    next_seq: i32,
}

#[derive(Default)]
struct Acc {
    parts: HashMap<Tp, Part>,
    sticky: Sticky,
    buffered: usize,
    outstanding: usize,
    flushing: usize,
    closed: bool,
    /// The producer id and epoch for new batches; (-1, -1) without idempotence.
    pid: (i64, i16),
    pid_stale: bool,
}

struct Shared {
    cluster: Arc<Cluster>,
    cfg: ProducerConfig,
    idempotent: bool,
    acc: Mutex<Acc>,
    wake: Notify,
    space: Notify,
    idle: Notify,
}

/// An asynchronous Kafka producer. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Producer {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Producer {
    /// Connects to the cluster and starts the sender task.
    pub async fn new(cfg: ProducerConfig) -> Result<Producer> {
        if cfg.batch_size == 0 || cfg.max_request_size == 0 {
            return Err(Error::Config(
                "batch.size and max.request.size must be positive".into(),
            ));
        }
        let cluster = Cluster::connect(cfg.client.clone()).await?;
        let idempotent = cfg.idempotence && cfg.acks == -1;
        let shared = Arc::new(Shared {
            cluster,
            idempotent,
            acc: Mutex::new(Acc {
                pid: (-1, -1),
                pid_stale: idempotent,
                ..Acc::default()
            }),
            cfg,
            wake: Notify::new(),
            space: Notify::new(),
            idle: Notify::new(),
        });
        let task = tokio::spawn(sender(shared.clone()));
        Ok(Producer {
            shared,
            task: Mutex::new(Some(task)),
        })
    }

    /// The cluster connection this producer uses.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// Queues `record`; waits only for its topic's metadata and for buffer space. The returned
    /// future resolves to the record's offset once the broker has acknowledged it.
    pub async fn send(&self, mut record: ProducerRecord) -> Result<DeliveryFuture> {
        // The create time is the time of `send`, as in the Java client.
        record.timestamp.get_or_insert_with(now_ms);
        let size = record.estimated_size();
        if size > self.shared.cfg.max_request_size {
            return Err(Error::kafka(
                10,
                Some(format!(
                    "the record is {size} bytes, more than max.request.size {}",
                    self.shared.cfg.max_request_size
                )),
                format!("produce to {}", record.topic),
            ));
        }
        let topic = self.topic_metadata(&record.topic).await?;
        let count = topic.partitions.len() as i32;
        if let Some(p) = record.partition {
            if p < 0 || p >= count {
                return Err(Error::kafka(
                    3,
                    Some(format!("{} has {count} partitions", record.topic)),
                    format!("produce to {}-{p}", record.topic),
                ));
            }
        }
        // Wait for buffer space (buffer.memory), but never for a record alone in the buffer.
        loop {
            let notified = self.shared.space.notified();
            {
                let acc = self.shared.acc.lock();
                if acc.closed {
                    return Err(Error::Closed);
                }
                if acc.buffered == 0 || acc.buffered + size <= self.shared.cfg.buffer_memory {
                    break;
                }
            }
            notified.await;
        }
        let (tx, rx) = oneshot::channel();
        let mut acc = self.shared.acc.lock();
        let partition = match (record.partition, &record.key) {
            (Some(p), _) => p,
            (None, Some(k)) if !self.shared.cfg.ignore_keys => partition_for_key(k, count),
            _ => acc.sticky.partition(&record.topic, count),
        };
        let tp: Tp = (Arc::from(topic.name.as_str()), partition);
        acc.buffered += size;
        acc.outstanding += 1;
        let batch_size = self.shared.cfg.batch_size;
        let part = acc.parts.entry(tp).or_insert_with(|| Part {
            open: None,
            sealed: VecDeque::new(),
            in_flight: false,
            retry_at: None,
            pid: (-1, -1),
            next_seq: 0,
        });
        let mut sealed = false;
        if part
            .open
            .as_ref()
            .is_some_and(|b| b.bytes + size > batch_size && !b.recs.is_empty())
        {
            let b = part.open.take().unwrap();
            part.sealed.push_back(b);
            sealed = true;
        }
        let b = part.open.get_or_insert_with(|| Batch {
            recs: Vec::new(),
            waiters: Vec::new(),
            bytes: 0,
            created: Instant::now(),
            encoded: None,
            base_seq: -1,
        });
        b.recs.push(record);
        b.waiters.push(tx);
        b.bytes += size;
        let first = b.recs.len() == 1;
        if b.bytes >= batch_size {
            let b = part.open.take().unwrap();
            part.sealed.push_back(b);
            sealed = true;
        }
        if sealed {
            let topic_name = topic.name.clone();
            acc.sticky.batch_done(&topic_name, partition, count);
        }
        drop(acc);
        if sealed || first {
            self.shared.wake.notify_one();
        }
        Ok(DeliveryFuture(rx))
    }

    /// The topic's metadata; while no broker answers (a restart, a leader election) it is
    /// asked again until `max.block.ms`. A topic that does not exist fails at once.
    async fn topic_metadata(&self, topic: &str) -> Result<Arc<crate::cluster::TopicInfo>> {
        let deadline = Instant::now() + self.shared.cfg.max_block;
        loop {
            match self.shared.cluster.topic(topic, true).await {
                Ok(t) => return Ok(t),
                Err(e) if e.is_retriable() && e.code() != Some(3) && Instant::now() < deadline => {
                    tracing::debug!("metadata for {topic}: {e}");
                    self.shared.cluster.backoff().await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends every queued record now and waits until each is acknowledged or has failed.
    pub async fn flush(&self) -> Result<()> {
        self.shared.acc.lock().flushing += 1;
        self.shared.wake.notify_one();
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.acc.lock().outstanding == 0 {
                break;
            }
            idle.await;
        }
        self.shared.acc.lock().flushing -= 1;
        Ok(())
    }

    /// Flushes, then stops the sender task; later sends fail with [`Error::Closed`].
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        self.shared.acc.lock().closed = true;
        self.shared.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(t) = task {
            let _ = t.await;
        }
        Ok(())
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
    }
}

struct Ready {
    tp: Tp,
    batch: Batch,
}

/// Takes the batches that may go now; returns them and when to look again.
fn drain(shared: &Shared) -> (Vec<Ready>, Option<Instant>) {
    let now = Instant::now();
    let mut acc = shared.acc.lock();
    let urgent = acc.flushing > 0 || acc.closed;
    let linger = shared.cfg.linger;
    let pid = acc.pid;
    let idempotent = shared.idempotent;
    let mut out = Vec::new();
    let mut next: Option<Instant> = None;
    let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
    for (tp, part) in acc.parts.iter_mut() {
        if part.in_flight {
            continue;
        }
        if let Some(at) = part.retry_at {
            if at > now {
                earliest(at);
                continue;
            }
            part.retry_at = None;
        }
        if part.sealed.is_empty() {
            if let Some(b) = &part.open {
                if urgent || b.created + linger <= now {
                    let b = part.open.take().unwrap();
                    part.sealed.push_back(b);
                } else {
                    earliest(b.created + linger);
                }
            }
        }
        let Some(mut batch) = part.sealed.pop_front() else {
            continue;
        };
        if batch.encoded.is_none() && idempotent {
            if part.pid != pid {
                part.pid = pid;
                part.next_seq = 0;
            }
            batch.base_seq = part.next_seq;
            part.next_seq = part.next_seq.wrapping_add(batch.recs.len() as i32) & i32::MAX;
        }
        part.in_flight = true;
        out.push(Ready {
            tp: tp.clone(),
            batch,
        });
    }
    (out, next)
}

async fn init_producer_id(shared: &Shared) -> Result<(i64, i16)> {
    let deadline = Instant::now() + shared.cfg.delivery_timeout;
    loop {
        let attempt = async {
            let conn = shared.cluster.any().await?;
            let v = conn.version::<InitProducerIdRequest>(5)?;
            let req = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let resp = conn.send(&req, v).await?;
            Error::check(resp.error_code, None, || "InitProducerId".into())?;
            Ok::<_, Error>((resp.producer_id.0, resp.producer_epoch))
        };
        match attempt.await {
            Ok(p) => return Ok(p),
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                shared.cluster.backoff().await
            }
            Err(e) => return Err(e),
        }
    }
}

async fn sender(shared: Arc<Shared>) {
    loop {
        let stale = shared.acc.lock().pid_stale;
        if stale {
            match init_producer_id(&shared).await {
                Ok(pid) => {
                    let mut acc = shared.acc.lock();
                    acc.pid = pid;
                    acc.pid_stale = false;
                }
                Err(e) => {
                    tracing::warn!("idempotent producer: cannot get a producer id: {e}");
                    fail_all(&shared, &e);
                    // Nothing left to send (e.g. CLUSTER_AUTHORIZATION_FAILED failed it all): end
                    // when closed, else ask again only once there is a new record.
                    let wake = shared.wake.notified();
                    let (closed, idle) = {
                        let acc = shared.acc.lock();
                        (acc.closed, acc.outstanding == 0)
                    };
                    if closed && idle {
                        return;
                    }
                    if idle {
                        wake.await;
                    }
                    shared.cluster.backoff().await;
                    continue;
                }
            }
        }
        let wake = shared.wake.notified();
        let (ready, next) = drain(&shared);
        if ready.is_empty() {
            {
                let acc = shared.acc.lock();
                if acc.closed && acc.outstanding == 0 {
                    return;
                }
            }
            match next {
                Some(at) => {
                    tokio::select! {
                        _ = wake => {}
                        _ = tokio::time::sleep_until(at.into()) => {}
                    }
                }
                None => wake.await,
            }
            continue;
        }
        let mut by_node: HashMap<i32, Vec<Ready>> = HashMap::new();
        for r in ready {
            match shared.cluster.leader(&r.tp.0, r.tp.1).await {
                Ok(node) => by_node.entry(node).or_default().push(r),
                Err(e) => requeue_or_fail(&shared, r, e),
            }
        }
        for (node, batch) in by_node {
            let shared = shared.clone();
            tokio::spawn(async move { produce(shared, node, batch).await });
        }
    }
}

/// Fails every queued record (no producer id can be had).
fn fail_all(shared: &Shared, err: &Error) {
    let mut acc = shared.acc.lock();
    let mut freed = (0, 0);
    for part in acc.parts.values_mut() {
        if part.in_flight {
            continue;
        }
        for b in part.open.take().into_iter().chain(part.sealed.drain(..)) {
            freed.0 += b.bytes;
            freed.1 += b.waiters.len();
            for w in b.waiters {
                let _ = w.send(Err(err.clone()));
            }
        }
    }
    acc.buffered -= freed.0;
    acc.outstanding -= freed.1;
    drop(acc);
    shared.space.notify_waiters();
    shared.idle.notify_waiters();
}

fn requeue_or_fail(shared: &Shared, r: Ready, err: Error) {
    let expired = r.batch.created + shared.cfg.delivery_timeout <= Instant::now();
    if err.is_retriable() && !expired {
        tracing::debug!("retrying {}-{}: {err}", r.tp.0, r.tp.1);
        shared.cluster.invalidate(&r.tp.0);
        let mut acc = shared.acc.lock();
        if let Some(part) = acc.parts.get_mut(&r.tp) {
            part.sealed.push_front(r.batch);
            part.in_flight = false;
            part.retry_at = Some(Instant::now() + shared.cfg.client.retry_backoff);
        }
        drop(acc);
        shared.wake.notify_one();
        return;
    }
    let err = if expired && err.is_retriable() {
        Error::Timeout {
            ms: shared.cfg.delivery_timeout.as_millis() as u64,
            what: format!("delivery to {}-{} (last error: {err})", r.tp.0, r.tp.1),
        }
    } else {
        err
    };
    let sequenced = r.batch.encoded.is_some() && r.batch.base_seq >= 0;
    complete(shared, &r.tp, r.batch, Err(err), sequenced);
}

/// Resolves a batch's futures, frees its buffer space and lets its partition send again.
/// `reset_pid` takes a new producer id (a sequenced batch failed, leaving a gap).
fn complete(shared: &Shared, tp: &Tp, batch: Batch, result: Result<(i64, i64)>, reset_pid: bool) {
    let n = batch.waiters.len();
    match result {
        Ok((base, append_time)) => {
            for (i, (w, r)) in batch.waiters.into_iter().zip(batch.recs.iter()).enumerate() {
                let _ = w.send(Ok(RecordMetadata {
                    topic: tp.0.to_string(),
                    partition: tp.1,
                    offset: if base < 0 { -1 } else { base + i as i64 },
                    timestamp: if append_time >= 0 {
                        append_time
                    } else {
                        r.timestamp.unwrap_or_else(now_ms)
                    },
                }));
            }
        }
        Err(e) => {
            for w in batch.waiters {
                let _ = w.send(Err(e.clone()));
            }
        }
    }
    let mut acc = shared.acc.lock();
    acc.buffered -= batch.bytes;
    acc.outstanding -= n;
    if reset_pid && shared.idempotent {
        acc.pid_stale = true;
    }
    if let Some(part) = acc.parts.get_mut(tp) {
        part.in_flight = false;
    }
    let idle = acc.outstanding == 0;
    drop(acc);
    shared.space.notify_waiters();
    shared.wake.notify_one();
    if idle {
        shared.idle.notify_waiters();
    }
}

async fn produce(shared: Arc<Shared>, node: i32, mut batches: Vec<Ready>) {
    let cfg = &shared.cfg;
    let pid = shared.acc.lock().pid;
    // Encode once; a retry resends the same bytes (same sequence).
    let mut bad = Vec::new();
    for (i, r) in batches.iter_mut().enumerate() {
        if r.batch.encoded.is_none() {
            let id = if shared.idempotent && r.batch.base_seq >= 0 {
                BatchIdentity {
                    producer_id: pid.0,
                    producer_epoch: pid.1,
                    base_sequence: r.batch.base_seq,
                }
            } else {
                BatchIdentity::NONE
            };
            match encode_batch(&r.batch.recs, id, cfg.compression) {
                Ok(b) => r.batch.encoded = Some(b),
                Err(e) => bad.push((i, e)),
            }
        }
    }
    for (i, e) in bad.into_iter().rev() {
        let r = batches.remove(i);
        complete(&shared, &r.tp, r.batch, Err(e), false);
    }
    if batches.is_empty() {
        return;
    }
    let mut topics: Vec<TopicProduceData> = Vec::new();
    for r in &batches {
        let data = PartitionProduceData::default()
            .with_index(r.tp.1)
            .with_records(r.batch.encoded.clone());
        match topics.iter_mut().find(|t| *t.name.0 == *r.tp.0) {
            Some(t) => t.partition_data.push(data),
            None => topics.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(r.tp.0.to_string())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let req = ProduceRequest::default()
        .with_acks(cfg.acks)
        .with_timeout_ms(cfg.client.request_timeout.as_millis() as i32)
        .with_topic_data(topics);
    let conn = match shared.cluster.node(node).await {
        Ok(c) => c,
        Err(e) => {
            for r in batches {
                requeue_or_fail(&shared, r, e.clone());
            }
            return;
        }
    };
    let v = match conn.version::<ProduceRequest>(11) {
        Ok(v) => v,
        Err(e) => {
            for r in batches {
                requeue_or_fail(&shared, r, e.clone());
            }
            return;
        }
    };
    if cfg.acks == 0 {
        let res = conn.send_oneway(&req, v);
        for r in batches {
            match &res {
                Ok(()) => complete(&shared, &r.tp, r.batch, Ok((-1, -1)), false),
                Err(e) => requeue_or_fail(&shared, r, e.clone()),
            }
        }
        return;
    }
    let timeout = cfg.client.request_timeout + Duration::from_secs(5);
    let resp = match conn.send_timeout(&req, v, timeout).await {
        Ok(r) => r,
        Err(e) => {
            for r in batches {
                requeue_or_fail(&shared, r, e.clone());
            }
            return;
        }
    };
    for r in batches {
        let pr = resp
            .responses
            .iter()
            .filter(|t| *t.name.0 == *r.tp.0)
            .flat_map(|t| t.partition_responses.iter())
            .find(|p| p.index == r.tp.1);
        let Some(pr) = pr else {
            let e = Error::Protocol(format!("no answer for {}-{}", r.tp.0, r.tp.1));
            complete(&shared, &r.tp, r.batch, Err(e), true);
            continue;
        };
        match pr.error_code {
            0 => complete(
                &shared,
                &r.tp,
                r.batch,
                Ok((pr.base_offset, pr.log_append_time_ms)),
                false,
            ),
            // DUPLICATE_SEQUENCE_NUMBER: written before; the offset is not known.
            46 => complete(&shared, &r.tp, r.batch, Ok((-1, -1)), false),
            code => {
                let msg = pr.error_message.as_ref().map(|m| m.to_string());
                let e = Error::kafka(code, msg, format!("produce to {}-{}", r.tp.0, r.tp.1));
                // Sequence and producer-id errors leave the sequence in an unknown state.
                let fatal_seq = matches!(code, 45 | 59 | 47);
                if fatal_seq {
                    let sequenced = r.batch.base_seq >= 0;
                    complete(&shared, &r.tp, r.batch, Err(e), sequenced);
                } else {
                    requeue_or_fail(&shared, r, e);
                }
            }
        }
    }
}
