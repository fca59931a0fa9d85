//! The consumer: `assign` (no group) or `subscribe` (a classic consumer group, run by a
//! background membership task), and a background fetcher that prefetches into a bounded buffer
//! while the application processes what `poll` returned. Positions start from a seek, the
//! committed offset or `auto.offset.reset`; commits are automatic (every
//! `auto.commit.interval.ms`, in `poll`) or manual, synchronous or asynchronous.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runnel_client::Error> {
//! use std::time::Duration;
//! use runnel_client::{ClientConfig, Consumer, ConsumerConfig, OffsetReset};
//! let mut cfg = ConsumerConfig::new(ClientConfig::new("127.0.0.1:9092"));
//! cfg.group_id = Some("billing".into());
//! cfg.auto_offset_reset = OffsetReset::Earliest;
//! let consumer = Consumer::new(cfg).await?;
//! consumer.subscribe(&["events"])?;
//! for record in consumer.poll(Duration::from_secs(1)).await? {
//!     println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
//! }
//! consumer.commit_sync().await?;
//! consumer.close().await?;
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runnel_protocol::kafka_protocol::messages::{
    fetch_request::{FetchPartition, FetchTopic},
    BrokerId, FetchRequest, TopicName,
};
use runnel_protocol::kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, Notify};

use crate::assignor::TopicPartition;
use crate::cluster::Cluster;
use crate::config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::error::{Error, Result};
use crate::offsets::{self, Committed, Committer, EARLIEST, LATEST};
use crate::record::{decode_records, AbortedTxn, ConsumerRecord};

/// Where to move a partition's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seek {
    /// An exact offset.
    Offset(i64),
    /// The log start.
    Beginning,
    /// The log end.
    End,
    /// The first record with a timestamp at or after this one (ms); the end when none is.
    Timestamp(i64),
}

/// One assigned partition's state.
#[derive(Debug)]
pub(crate) struct Part {
    /// The next offset `poll` hands out; `None` until looked up.
    pub(crate) position: Option<i64>,
    /// The next offset the fetcher asks for.
    pub(crate) fetch_pos: Option<i64>,
    /// Bumped by every seek: prefetched data of an older epoch is dropped.
    pub(crate) epoch: u64,
    /// A pending seek, resolved by the fetcher.
    pub(crate) seek: Option<Seek>,
    /// The high watermark from the last fetch (-1 before one).
    pub(crate) high_watermark: i64,
    /// Not fetched while paused.
    pub(crate) paused: bool,
    /// Being given up by the group: neither fetched nor handed out, so the position
    /// committed before the revocation is the last one the application saw.
    pub(crate) revoking: bool,
}

/// Group membership as commits need it.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) generation: i32,
    pub(crate) member_id: String,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) parts: BTreeMap<TopicPartition, Part>,
    pub(crate) member: Option<Member>,
    pub(crate) error: Option<Error>,
    pub(crate) subscribed: bool,
    pub(crate) last_committed: BTreeMap<TopicPartition, i64>,
}

pub(crate) struct Shared {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) cfg: ConsumerConfig,
    pub(crate) state: Mutex<State>,
    pub(crate) changed: Notify,
    pub(crate) closed: AtomicBool,
    epochs: AtomicU64,
    /// When the application last called `poll` (for `max.poll.interval.ms`).
    pub(crate) last_poll: Mutex<Instant>,
    /// Woken by `poll` (a member that left for a slow application rejoins on it).
    pub(crate) polled: Notify,
    /// Held from reading positions to the commit's answer, so commits land in the order their
    /// positions were read (an auto-commit never overwrites a later commit of a revocation).
    commit_order: tokio::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn next_epoch(&self) -> u64 {
        self.epochs.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A fresh partition state, waiting for its position.
    pub(crate) fn new_part(&self) -> Part {
        Part {
            position: None,
            fetch_pos: None,
            epoch: self.next_epoch(),
            seek: None,
            high_watermark: -1,
            paused: false,
            revoking: false,
        }
    }

    pub(crate) fn committer(&self) -> Result<Committer> {
        let group = self
            .cfg
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("committing offsets needs a group.id".into()))?;
        let st = self.state.lock();
        let (generation, member_id) = match &st.member {
            Some(m) => (m.generation, m.member_id.clone()),
            None if st.subscribed => {
                return Err(Error::kafka(
                    27,
                    Some("the consumer is not in the group yet".into()),
                    "commit",
                ))
            }
            None => (-1, String::new()),
        };
        Ok(Committer {
            group,
            generation,
            member_id,
            instance_id: self.cfg.group_instance_id.clone(),
        })
    }

    /// Commits the positions of `only` (or of every assigned partition) that moved since the
    /// last commit.
    pub(crate) async fn commit_positions(&self, only: Option<&[TopicPartition]>) -> Result<()> {
        let _order = self.commit_order.lock().await;
        let who = self.committer()?;
        let offsets: BTreeMap<TopicPartition, Committed> = {
            let st = self.state.lock();
            st.parts
                .iter()
                .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
                .filter_map(|(tp, p)| Some((tp.clone(), p.position?)))
                .filter(|(tp, pos)| st.last_committed.get(tp) != Some(pos))
                .map(|(tp, offset)| {
                    (
                        tp,
                        Committed {
                            offset,
                            metadata: Some(String::new()),
                        },
                    )
                })
                .collect()
        };
        offsets::commit(&self.cluster, &who, &offsets).await?;
        let mut st = self.state.lock();
        for (tp, c) in offsets {
            st.last_committed.insert(tp, c.offset);
        }
        Ok(())
    }
}

/// Records fetched for one partition, waiting in the prefetch buffer.
#[derive(Debug)]
struct Chunk {
    tp: TopicPartition,
    epoch: u64,
    from: i64,
    next: i64,
    records: Vec<ConsumerRecord>,
}

/// An asynchronous Kafka consumer. Every method takes `&self`.
pub struct Consumer {
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<(mpsc::Receiver<Chunk>, Option<Chunk>)>,
    last_auto_commit: Mutex<Instant>,
    /// The fetcher: stopped by abort (it may be blocked on a full buffer).
    fetcher: tokio::task::JoinHandle<()>,
    /// The group membership task: awaited on close, so that it can leave the group.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Consumer {
    /// Connects and starts the fetcher (it idles until partitions are assigned).
    pub async fn new(cfg: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(cfg.client.clone()).await?;
        let (tx, rx) = mpsc::channel(cfg.prefetch_chunks.max(1));
        let shared = Arc::new(Shared {
            cluster,
            cfg,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            closed: AtomicBool::new(false),
            epochs: AtomicU64::new(0),
            last_poll: Mutex::new(Instant::now()),
            polled: Notify::new(),
            commit_order: tokio::sync::Mutex::new(()),
        });
        let fetcher = tokio::spawn(fetcher(shared.clone(), tx));
        Ok(Consumer {
            shared,
            rx: tokio::sync::Mutex::new((rx, None)),
            last_auto_commit: Mutex::new(Instant::now()),
            fetcher,
            tasks: Mutex::new(Vec::new()),
        })
    }

    /// The cluster connection this consumer uses.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.shared.cluster
    }

    /// Reads these partitions, with no group membership. Positions come from the committed
    /// offsets when a `group.id` is set, else from `auto.offset.reset`.
    pub fn assign(&self, partitions: &[TopicPartition]) -> Result<()> {
        let mut st = self.shared.state.lock();
        if st.subscribed {
            return Err(Error::Config(
                "assign after subscribe: use one or the other".into(),
            ));
        }
        st.parts.retain(|tp, _| partitions.contains(tp));
        for tp in partitions {
            if !st.parts.contains_key(tp) {
                let p = self.shared.new_part();
                st.parts.insert(tp.clone(), p);
            }
        }
        drop(st);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Joins the consumer group `group.id` for these topics; the group's assignor decides the
    /// partitions, and they change at each rebalance.
    pub fn subscribe<S: AsRef<str>>(&self, topics: &[S]) -> Result<()> {
        if self.shared.cfg.group_id.is_none() {
            return Err(Error::Config("subscribe needs a group.id".into()));
        }
        {
            let mut st = self.shared.state.lock();
            if st.subscribed || !st.parts.is_empty() {
                return Err(Error::Config("already subscribed or assigned".into()));
            }
            st.subscribed = true;
        }
        let topics: Vec<String> = topics.iter().map(|t| t.as_ref().to_string()).collect();
        let task = tokio::spawn(crate::group::run(self.shared.clone(), topics));
        self.tasks.lock().push(task);
        Ok(())
    }

    /// The partitions assigned now.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.shared.state.lock().parts.keys().cloned().collect()
    }

    /// The next offset `poll` will return for each assigned partition whose position is known.
    pub fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        let st = self.shared.state.lock();
        st.parts
            .iter()
            .filter_map(|(tp, p)| Some((tp.clone(), p.position?)))
            .collect()
    }

    /// The high watermark of each partition as of its last fetch (-1 before the first).
    pub fn high_watermarks(&self) -> BTreeMap<TopicPartition, i64> {
        let st = self.shared.state.lock();
        st.parts
            .iter()
            .map(|(tp, p)| (tp.clone(), p.high_watermark))
            .collect()
    }

    /// How many fetched chunks wait in the prefetch buffer (at most `prefetch_chunks`).
    pub fn prefetched(&self) -> usize {
        self.rx.try_lock().map_or(0, |g| g.0.len())
    }

    /// Moves an assigned partition's position; prefetched records past the old one are dropped.
    pub fn seek(&self, tp: &TopicPartition, to: Seek) -> Result<()> {
        let mut st = self.shared.state.lock();
        let epoch = self.shared.next_epoch();
        let part = st
            .parts
            .get_mut(tp)
            .ok_or_else(|| Error::NotFound(format!("{}-{} is not assigned", tp.0, tp.1)))?;
        part.epoch = epoch;
        part.seek = Some(to);
        part.position = None;
        part.fetch_pos = None;
        if let Seek::Offset(o) = to {
            if o >= 0 {
                part.seek = None;
                part.position = Some(o);
                part.fetch_pos = Some(o);
            }
        }
        drop(st);
        self.shared.changed.notify_one();
        Ok(())
    }

    /// Stops fetching these partitions until `resume`.
    pub fn pause(&self, tps: &[TopicPartition]) {
        let mut st = self.shared.state.lock();
        for tp in tps {
            if let Some(p) = st.parts.get_mut(tp) {
                p.paused = true;
            }
        }
    }

    /// Fetches these partitions again.
    pub fn resume(&self, tps: &[TopicPartition]) {
        let mut st = self.shared.state.lock();
        for tp in tps {
            if let Some(p) = st.parts.get_mut(tp) {
                p.paused = false;
            }
        }
        drop(st);
        self.shared.changed.notify_one();
    }

    /// Waits up to `timeout` for records; returns at most `max.poll.records`, an empty list
    /// when none came. Runs the auto-commit when it is due.
    pub async fn poll(&self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        *self.shared.last_poll.lock() = Instant::now();
        self.shared.polled.notify_waiters();
        self.maybe_auto_commit();
        if let Some(e) = self.shared.state.lock().error.take() {
            return Err(e);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let max = self.shared.cfg.max_poll_records.max(1);
        let mut out = Vec::new();
        let mut guard = self.rx.lock().await;
        let (rx, leftover) = &mut *guard;
        loop {
            let chunk = match leftover.take() {
                Some(c) => c,
                None if !out.is_empty() => match rx.try_recv() {
                    Ok(c) => c,
                    Err(_) => break,
                },
                None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(c)) => c,
                    Ok(None) => return Err(Error::Closed),
                    Err(_) => break,
                },
            };
            let mut chunk = chunk;
            let mut st = self.shared.state.lock();
            let Some(part) = st.parts.get_mut(&chunk.tp) else {
                continue;
            };
            if part.revoking || part.epoch != chunk.epoch || part.position != Some(chunk.from) {
                continue;
            }
            let room = max - out.len();
            if chunk.records.len() > room {
                let rest = chunk.records.split_off(room);
                let taken = std::mem::replace(&mut chunk.records, rest);
                let next = taken.last().map_or(chunk.from, |r| r.offset + 1);
                part.position = Some(next);
                chunk.from = next;
                out.extend(taken);
                *leftover = Some(chunk);
                break;
            }
            part.position = Some(chunk.next);
            out.extend(chunk.records);
            // An error waits for the next poll when records are being returned.
            if out.is_empty() {
                if let Some(e) = st.error.take() {
                    return Err(e);
                }
            }
            let failed = st.error.is_some();
            drop(st);
            if out.len() >= max || failed {
                break;
            }
            if tokio::time::Instant::now() >= deadline && !out.is_empty() {
                break;
            }
        }
        Ok(out)
    }

    fn maybe_auto_commit(&self) {
        let cfg = &self.shared.cfg;
        if !cfg.enable_auto_commit || cfg.group_id.is_none() {
            return;
        }
        let mut last = self.last_auto_commit.lock();
        if last.elapsed() < cfg.auto_commit_interval {
            return;
        }
        *last = Instant::now();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            if let Err(e) = shared.commit_positions(None).await {
                tracing::warn!("auto-commit failed: {e}");
            }
        });
    }

    /// Commits the current positions and waits for the coordinator's answer.
    pub async fn commit_sync(&self) -> Result<()> {
        self.shared.commit_positions(None).await
    }

    /// Commits the current positions in the background; `done` gets the outcome.
    pub fn commit_async<F>(&self, done: F)
    where
        F: FnOnce(Result<()>) + Send + 'static,
    {
        let shared = self.shared.clone();
        tokio::spawn(async move { done(shared.commit_positions(None).await) });
    }

    /// Commits these offsets (the next offset to read, per partition) and waits.
    pub async fn commit_offsets(&self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let who = self.shared.committer()?;
        let map = offsets
            .iter()
            .map(|(tp, o)| {
                (
                    tp.clone(),
                    Committed {
                        offset: *o,
                        metadata: Some(String::new()),
                    },
                )
            })
            .collect();
        offsets::commit(&self.shared.cluster, &who, &map).await?;
        let mut st = self.shared.state.lock();
        for (tp, o) in offsets {
            st.last_committed.insert(tp.clone(), *o);
        }
        Ok(())
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(&self, tps: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        let group = self
            .shared
            .cfg
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("committed offsets need a group.id".into()))?;
        let c = offsets::fetch_committed(&self.shared.cluster, &group, Some(tps), false).await?;
        Ok(c.into_iter().map(|(tp, c)| (tp, c.offset)).collect())
    }

    /// Commits (with auto-commit on), leaves the group and stops the background tasks.
    pub async fn close(&self) -> Result<()> {
        let mut result = Ok(());
        if self.shared.cfg.enable_auto_commit && self.shared.cfg.group_id.is_some() {
            let has_member = {
                let st = self.shared.state.lock();
                st.member.is_some() || !st.subscribed
            };
            if has_member {
                result = self.shared.commit_positions(None).await;
            }
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.changed.notify_waiters();
        self.fetcher.abort();
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            // The group task leaves the group; its wait is bounded.
            match tokio::time::timeout(Duration::from_secs(5), t).await {
                Ok(_) => {}
                Err(_) => tracing::debug!("a consumer task did not stop within 5 s"),
            }
        }
        result
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.fetcher.abort();
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }
}

/// Looks up the positions of partitions that have none: a pending seek, else the committed
/// offset, else `auto.offset.reset`.
async fn resolve_positions(shared: &Shared, need: Vec<(TopicPartition, u64, Option<Seek>)>) {
    let group_lookup: Vec<TopicPartition> = need
        .iter()
        .filter(|(_, _, s)| s.is_none())
        .map(|(tp, _, _)| tp.clone())
        .collect();
    let mut committed = BTreeMap::new();
    if let (Some(group), false) = (&shared.cfg.group_id, group_lookup.is_empty()) {
        let read_committed = shared.cfg.isolation_level == IsolationLevel::ReadCommitted;
        match offsets::fetch_committed(&shared.cluster, group, Some(&group_lookup), read_committed)
            .await
        {
            Ok(c) => committed = c,
            Err(e) => {
                tracing::debug!("committed offsets of {group}: {e}");
                shared.cluster.backoff().await;
                return;
            }
        }
    }
    let mut found: Vec<(TopicPartition, u64, i64)> = Vec::new();
    let mut lookups: Vec<(TopicPartition, i64)> = Vec::new();
    let mut lookup_epochs: HashMap<TopicPartition, u64> = HashMap::new();
    for (tp, epoch, seek) in need {
        let spec = match seek {
            Some(Seek::Beginning) => EARLIEST,
            Some(Seek::End) => LATEST,
            Some(Seek::Timestamp(ts)) => ts,
            Some(Seek::Offset(o)) => {
                // A negative offset: treat like the reset policy would.
                if o >= 0 {
                    found.push((tp, epoch, o));
                    continue;
                }
                LATEST
            }
            None => {
                if let Some(c) = committed.get(&tp) {
                    found.push((tp, epoch, c.offset));
                    continue;
                }
                match shared.cfg.auto_offset_reset {
                    OffsetReset::Earliest => EARLIEST,
                    OffsetReset::Latest => LATEST,
                    OffsetReset::None => {
                        shared.state.lock().error = Some(Error::kafka(
                            1,
                            Some("no committed offset and auto.offset.reset is none".into()),
                            format!("position of {}-{}", tp.0, tp.1),
                        ));
                        continue;
                    }
                }
            }
        };
        lookup_epochs.insert(tp.clone(), epoch);
        lookups.push((tp, spec));
    }
    if !lookups.is_empty() {
        let read_committed = shared.cfg.isolation_level == IsolationLevel::ReadCommitted;
        match offsets::list_offsets(&shared.cluster, &lookups, read_committed).await {
            Ok(listed) => {
                let mut ends = Vec::new();
                for (tp, spec) in &lookups {
                    let epoch = lookup_epochs[tp];
                    match listed.get(tp) {
                        Some(l) if l.offset >= 0 => found.push((tp.clone(), epoch, l.offset)),
                        _ if *spec >= 0 => ends.push((tp.clone(), LATEST)),
                        _ => {}
                    }
                }
                if !ends.is_empty() {
                    if let Ok(l) =
                        offsets::list_offsets(&shared.cluster, &ends, read_committed).await
                    {
                        for (tp, _) in ends {
                            if let Some(o) = l.get(&tp) {
                                found.push((tp.clone(), lookup_epochs[&tp], o.offset));
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if e.is_retriable() {
                    tracing::debug!("list offsets: {e}");
                    shared.cluster.backoff().await;
                } else {
                    shared.state.lock().error = Some(e);
                }
            }
        }
    }
    let mut st = shared.state.lock();
    for (tp, epoch, offset) in found {
        if let Some(p) = st.parts.get_mut(&tp) {
            if p.epoch == epoch && p.position.is_none() {
                p.position = Some(offset);
                p.fetch_pos = Some(offset);
                p.seek = None;
            }
        }
    }
}

struct FetchResult {
    tp: TopicPartition,
    epoch: u64,
    from: i64,
    outcome: Result<(crate::record::Decoded, i64)>,
}

async fn fetch_from(
    shared: Arc<Shared>,
    node: i32,
    items: Vec<(TopicPartition, u64, i64)>,
) -> Vec<FetchResult> {
    let cfg = &shared.cfg;
    let fail = |e: Error, items: Vec<(TopicPartition, u64, i64)>| {
        items
            .into_iter()
            .map(|(tp, epoch, from)| FetchResult {
                tp,
                epoch,
                from,
                outcome: Err(e.clone()),
            })
            .collect::<Vec<_>>()
    };
    let conn = match shared.cluster.node(node).await {
        Ok(c) => c,
        Err(e) => return fail(e, items),
    };
    let v = match conn.version::<FetchRequest>(12) {
        Ok(v) => v,
        Err(e) => return fail(e, items),
    };
    let mut topics: Vec<FetchTopic> = Vec::new();
    for (tp, _, from) in &items {
        let p = FetchPartition::default()
            .with_partition(tp.1)
            .with_current_leader_epoch(-1)
            .with_fetch_offset(*from)
            .with_last_fetched_epoch(-1)
            .with_log_start_offset(-1)
            .with_partition_max_bytes(cfg.max_partition_fetch_bytes);
        match topics.iter_mut().find(|t| *t.topic.0 == *tp.0) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(tp.0.clone())))
                    .with_partitions(vec![p]),
            ),
        }
    }
    let read_committed = cfg.isolation_level == IsolationLevel::ReadCommitted;
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(cfg.fetch_max_wait.as_millis() as i32)
        .with_min_bytes(cfg.fetch_min_bytes)
        .with_max_bytes(cfg.fetch_max_bytes)
        .with_isolation_level(i8::from(read_committed))
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(topics);
    let timeout = cfg.client.request_timeout + cfg.fetch_max_wait;
    let resp = match conn.send_timeout(&req, v, timeout).await {
        Ok(r) => r,
        Err(e) => return fail(e, items),
    };
    if resp.error_code != 0 {
        return fail(Error::kafka(resp.error_code, None, "fetch"), items);
    }
    let mut out = Vec::new();
    for (tp, epoch, from) in items {
        let pd = resp
            .responses
            .iter()
            .filter(|t| *t.topic.0 == *tp.0)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == tp.1);
        let outcome = match pd {
            None => Err(Error::Protocol(format!(
                "fetch: no answer for {}-{}",
                tp.0, tp.1
            ))),
            Some(pd) if pd.error_code != 0 => Err(Error::kafka(
                pd.error_code,
                None,
                format!("fetch {}-{} at {from}", tp.0, tp.1),
            )),
            Some(pd) => {
                let aborted: Option<Vec<AbortedTxn>> = read_committed.then(|| {
                    pd.aborted_transactions
                        .iter()
                        .flatten()
                        .map(|a| AbortedTxn {
                            producer_id: a.producer_id.0,
                            first_offset: a.first_offset,
                        })
                        .collect()
                });
                let topic: Arc<str> = Arc::from(tp.0.as_str());
                decode_records(
                    &topic,
                    tp.1,
                    pd.records.clone().unwrap_or_default(),
                    from,
                    aborted.as_deref(),
                    cfg.header_filter.as_ref(),
                )
                .map(|d| (d, pd.high_watermark))
            }
        };
        out.push(FetchResult {
            tp,
            epoch,
            from,
            outcome,
        });
    }
    out
}

async fn fetcher(shared: Arc<Shared>, tx: mpsc::Sender<Chunk>) {
    while !shared.closed.load(Ordering::Acquire) {
        let changed = shared.changed.notified();
        let (need, ready) = {
            let st = shared.state.lock();
            let need: Vec<(TopicPartition, u64, Option<Seek>)> = st
                .parts
                .iter()
                .filter(|(_, p)| p.position.is_none())
                .map(|(tp, p)| (tp.clone(), p.epoch, p.seek))
                .collect();
            let ready: Vec<(TopicPartition, u64, i64)> = st
                .parts
                .iter()
                .filter(|(_, p)| !p.paused && !p.revoking)
                .filter_map(|(tp, p)| Some((tp.clone(), p.epoch, p.fetch_pos?)))
                .collect();
            (need, ready)
        };
        if !need.is_empty() {
            resolve_positions(&shared, need).await;
        }
        if ready.is_empty() {
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        let mut by_node: HashMap<i32, Vec<(TopicPartition, u64, i64)>> = HashMap::new();
        let mut failed = false;
        for item in ready {
            match shared.cluster.leader(&item.0 .0, item.0 .1).await {
                Ok(n) => by_node.entry(n).or_default().push(item),
                Err(e) => {
                    tracing::debug!("leader of {}-{}: {e}", item.0 .0, item.0 .1);
                    failed = true;
                }
            }
        }
        let mut set = tokio::task::JoinSet::new();
        for (node, items) in by_node {
            set.spawn(fetch_from(shared.clone(), node, items));
        }
        while let Some(res) = set.join_next().await {
            let Ok(results) = res else { continue };
            for r in results {
                match r.outcome {
                    Ok((decoded, hw)) => {
                        let next = decoded.next_offset.unwrap_or(r.from).max(r.from);
                        {
                            let mut st = shared.state.lock();
                            let Some(p) = st.parts.get_mut(&r.tp) else {
                                continue;
                            };
                            if p.epoch != r.epoch || p.fetch_pos != Some(r.from) {
                                continue;
                            }
                            p.high_watermark = hw;
                            p.fetch_pos = Some(next);
                        }
                        if next == r.from {
                            continue;
                        }
                        let chunk = Chunk {
                            tp: r.tp,
                            epoch: r.epoch,
                            from: r.from,
                            next,
                            records: decoded.records,
                        };
                        if tx.send(chunk).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        failed = true;
                        match e.code() {
                            // OFFSET_OUT_OF_RANGE: apply auto.offset.reset.
                            Some(1) => {
                                let mut st = shared.state.lock();
                                let reset = shared.cfg.auto_offset_reset;
                                if let Some(p) = st.parts.get_mut(&r.tp) {
                                    if p.epoch == r.epoch {
                                        if reset == OffsetReset::None {
                                            st.error = Some(e);
                                        } else {
                                            p.position = None;
                                            p.fetch_pos = None;
                                            p.seek = Some(if reset == OffsetReset::Earliest {
                                                Seek::Beginning
                                            } else {
                                                Seek::End
                                            });
                                        }
                                    }
                                }
                            }
                            _ if e.is_retriable() => {
                                tracing::debug!("{e}");
                                shared.cluster.invalidate(&r.tp.0);
                            }
                            _ => {
                                shared.state.lock().error = Some(e);
                            }
                        }
                    }
                }
            }
        }
        if failed {
            shared.cluster.backoff().await;
        }
    }
}
