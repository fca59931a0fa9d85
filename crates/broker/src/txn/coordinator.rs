//! The transaction coordinator: transactional ids, their producer id and epoch (fencing older
//! instances), the partitions of the open transaction, and its end. A transactional id is
//! coordinated by the leader of its `__transaction_state` partition, which loads the partition's
//! state when it becomes leader and drops it when it stops; elsewhere the id gets
//! NOT_COORDINATOR. EndTxn goes Ongoing → PrepareCommit/PrepareAbort, waits until the Prepare
//! state is committed in the in-sync replicas, then writes the markers (WriteTxnMarkers to the
//! leaders of partitions led elsewhere) and stores CompleteCommit/CompleteAbort; a Prepare state
//! whose markers could not all be written (or that a new coordinator loaded) is finished by the
//! timer. Transactions open longer than their timeout are aborted with a bumped epoch, which
//! fences the producer that let them expire; transactional ids unused for
//! `transactional.id.expiration.ms` are forgotten.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError;
use parking_lot::{Mutex, MutexGuard};
use tracing::{info, warn};

use super::records::{decode_key, decode_value, encode_key, encode_value, TxnStatus, TxnValue};
use crate::broker::{now_ms, Broker};
use crate::group::records::partition_for;
use crate::group::OFFSETS_TOPIC;
use crate::internal_topics::{self, Shards};

/// Name of the internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// One transactional id's state.
#[derive(Debug, Clone)]
struct TxnMeta {
    producer_id: i64,
    producer_epoch: i16,
    timeout_ms: i32,
    status: TxnStatus,
    partitions: BTreeSet<(String, i32)>,
    last_update_ms: i64,
    start_ms: i64,
    /// The producer id before an epoch overflow replaced it (transactions v2 retries).
    prev_producer_id: i64,
    /// In a Prepare state whose markers could not all be written: when to try again (not
    /// stored).
    retry_at_ms: i64,
}

impl TxnMeta {
    fn to_value(&self) -> TxnValue {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.partitions {
            by_topic.entry(t.clone()).or_default().push(*p);
        }
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            status: self.status,
            partitions: by_topic.into_iter().collect(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }
}

/// A transaction as DescribeTransactions shows it.
#[derive(Debug, Clone)]
pub struct TxnDescription {
    /// State name.
    pub state: &'static str,
    /// Timeout.
    pub timeout_ms: i32,
    /// Start time (-1 when none is open).
    pub start_ms: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Partitions of the open transaction, by topic.
    pub partitions: Vec<(String, Vec<i32>)>,
}

/// The transaction coordinator of this broker.
pub struct TxnCoordinator {
    partitions: i32,
    max_timeout_ms: i32,
    id_expiration_ms: i64,
    txns: Mutex<HashMap<String, TxnMeta>>,
    /// The `__transaction_state` partitions this broker leads and has loaded.
    shards: Shards,
}

/// The epoch past which a producer id is replaced rather than bumped.
const MAX_EPOCH: i16 = i16::MAX - 1;

impl TxnCoordinator {
    /// A coordinator configured from the broker's settings.
    pub fn new(config: &runnel_config::BrokerConfig) -> TxnCoordinator {
        TxnCoordinator {
            partitions: config.transaction_state_log_num_partitions,
            max_timeout_ms: config.transaction_max_timeout_ms,
            id_expiration_ms: config.transactional_id_expiration_ms as i64,
            txns: Mutex::new(HashMap::new()),
            shards: Shards::new(TRANSACTION_STATE_TOPIC),
        }
    }

    /// The `__transaction_state` partition of a transactional id.
    fn partition_of(&self, broker: &Broker, id: &str) -> i32 {
        let n = internal_topics::partition_count(broker, TRANSACTION_STATE_TOPIC, self.partitions);
        partition_for(id, n)
    }

    /// The transactions, locked, once this broker is checked to coordinate `id` (else
    /// NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS), under the lock.
    fn locked_for(
        &self,
        broker: &Broker,
        id: &str,
    ) -> Result<MutexGuard<'_, HashMap<String, TxnMeta>>, ResponseError> {
        let txns = self.txns.lock();
        self.shards.check(self.partition_of(broker, id))?;
        Ok(txns)
    }

    /// A producer id taken before the coordinator's lock, when the id's state says its request
    /// will need one (`new_id`: the id is not known yet; or its epoch is exhausted). Taking one
    /// may ask the controller and wait for this broker's metadata, whose publishing takes the
    /// lock to load `__transaction_state` partitions: under the lock, that wait stalled the
    /// broker until its 30 s deadline (its handlers' threads blocked on the lock in turn). A
    /// spare that goes unused is only a producer id skipped.
    fn spare_producer_id(
        &self,
        broker: &Broker,
        id: &str,
        new_id: bool,
    ) -> Result<Option<i64>, ResponseError> {
        let needed = match self.locked_for(broker, id)?.get(id) {
            None => new_id,
            Some(m) => m.producer_epoch >= MAX_EPOCH,
        };
        if !needed {
            return Ok(None);
        }
        broker
            .allocate_producer_id()
            .map(Some)
            .map_err(|_| ResponseError::UnknownServerError)
    }

    /// Waits until this broker's writes to the id's `__transaction_state` partition are
    /// committed in the in-sync replicas: what a handler awaits before acknowledging a change.
    pub async fn committed(&self, broker: &Broker, id: &str) -> Result<(), ResponseError> {
        internal_topics::committed(
            broker,
            TRANSACTION_STATE_TOPIC,
            self.partition_of(broker, id),
        )
        .await
    }

    /// Follows the leadership of `__transaction_state` partitions: the ids of partitions no
    /// longer led here are dropped, partitions newly led are read back from the log (the timer
    /// then finishes the transactions they left in a Prepare state).
    pub fn sync_leadership(&self, broker: &Broker) {
        let (_transition, t) = self.shards.begin(broker);
        if !t.unload.is_empty() {
            let mut txns = self.txns.lock();
            txns.retain(|id, _| !t.unload.contains(&self.partition_of(broker, id)));
        }
        for (index, epoch) in t.load {
            match self.read_partition(broker, index) {
                Ok(loaded) => {
                    let mut txns = self.txns.lock();
                    txns.retain(|id, _| self.partition_of(broker, id) != index);
                    txns.extend(loaded);
                    self.shards.activate(index, epoch);
                }
                Err(e) => {
                    warn!(partition = index, error = %e, "loading transactions failed");
                    self.shards.abandon(index);
                }
            }
        }
    }

    /// Creates `__transaction_state` if it does not exist yet.
    pub fn ensure_topic(&self, broker: &Broker) -> Result<(), ResponseError> {
        internal_topics::ensure(broker, TRANSACTION_STATE_TOPIC, self.partitions)
    }

    fn store(&self, broker: &Broker, id: &str, m: &TxnMeta) -> Result<(), ResponseError> {
        self.ensure_topic(broker)?;
        internal_topics::append(
            broker,
            TRANSACTION_STATE_TOPIC,
            self.partition_of(broker, id),
            &[(encode_key(id), Some(encode_value(&m.to_value())))],
            None,
        )
    }

    /// Rebuilds the transactional ids of one `__transaction_state` partition from its log.
    fn read_partition(
        &self,
        broker: &Broker,
        index: i32,
    ) -> anyhow::Result<HashMap<String, TxnMeta>> {
        let mut loaded: HashMap<String, Option<TxnValue>> = HashMap::new();
        let records = internal_topics::replay(broker, TRANSACTION_STATE_TOPIC, index, |r| {
            if let Some(id) = r.key.as_deref().and_then(decode_key) {
                loaded.insert(id, r.value.as_deref().and_then(decode_value));
            }
        })?;
        let mut txns = HashMap::new();
        for (id, v) in loaded {
            let Some(v) = v else { continue };
            txns.insert(
                id,
                TxnMeta {
                    producer_id: v.producer_id,
                    producer_epoch: v.producer_epoch,
                    timeout_ms: v.timeout_ms,
                    status: v.status,
                    partitions: v
                        .partitions
                        .into_iter()
                        .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                        .collect(),
                    last_update_ms: v.last_update_ms,
                    start_ms: v.start_ms,
                    prev_producer_id: -1,
                    retry_at_ms: 0,
                },
            );
        }
        info!(
            partition = index,
            records,
            transactional_ids = txns.len(),
            "loaded transactions"
        );
        Ok(txns)
    }

    /// InitProducerId with a transactional id: a producer id (new, or the id's own) with its
    /// epoch bumped; a transaction the previous instance left open is aborted first.
    pub fn init_producer_id(
        &self,
        broker: &Broker,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        self.ensure_topic(broker)?;
        let mut spare = self.spare_producer_id(broker, id, true)?;
        let mut txns = self.locked_for(broker, id)?;
        let now = now_ms();
        // The state changed since the spare was taken (or not): the producer retries.
        let mut take_spare = || spare.take().ok_or(ResponseError::ConcurrentTransactions);
        let Some(m) = txns.get_mut(id) else {
            let producer_id = take_spare()?;
            let m = TxnMeta {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                status: TxnStatus::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now,
                start_ms: -1,
                prev_producer_id: -1,
                retry_at_ms: 0,
            };
            self.store(broker, id, &m)?;
            txns.insert(id.to_string(), m);
            return Ok((producer_id, 0));
        };
        if let Some((pid, epoch)) = expected {
            // KIP-360: a producer that knows its id may only bump from its own epoch.
            // After an abort that bumped the epoch (a fence or a timeout), the producer still
            // knows the epoch before it.
            let bumped_abort =
                m.status == TxnStatus::CompleteAbort && epoch == m.producer_epoch - 1;
            if pid != m.producer_id || (epoch != m.producer_epoch && !bumped_abort) {
                return Err(ResponseError::ProducerFenced);
            }
        }
        let before = m.clone();
        if matches!(
            m.status,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence
        ) {
            // Markers still being written: the producer retries.
            return Err(ResponseError::ConcurrentTransactions);
        }
        if m.status == TxnStatus::Ongoing {
            // Fence the previous instance: abort its transaction with a bumped epoch.
            m.producer_epoch = m.producer_epoch.saturating_add(1).min(MAX_EPOCH);
            m.status = TxnStatus::PrepareEpochFence;
            info!(
                transactional_id = id,
                "aborting the transaction of a fenced producer"
            );
            // Stored, then aborted by the timer once committed; the producer retries meanwhile.
            m.last_update_ms = now;
            let snapshot = m.clone();
            if let Err(e) = self.store(broker, id, &snapshot) {
                *m = before;
                return Err(e);
            }
            return Err(ResponseError::ConcurrentTransactions);
        } else if m.producer_epoch >= MAX_EPOCH {
            m.producer_id = take_spare()?;
            m.producer_epoch = -1;
        }
        m.producer_epoch += 1;
        m.timeout_ms = timeout_ms;
        m.status = TxnStatus::Empty;
        m.partitions.clear();
        m.start_ms = -1;
        m.last_update_ms = now;
        if let Err(e) = self.store(broker, id, m) {
            *m = before;
            return Err(e);
        }
        Ok((m.producer_id, m.producer_epoch))
    }

    /// Checks a request's producer id and epoch against the transactional id.
    fn validate<'a>(
        txns: &'a mut HashMap<String, TxnMeta>,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        fenced_error: ResponseError,
    ) -> Result<&'a mut TxnMeta, ResponseError> {
        let m = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if producer_epoch != m.producer_epoch {
            return Err(fenced_error);
        }
        if matches!(
            m.status,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence
        ) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn: the partitions join the open transaction (opening it if needed).
    /// Returns one error per partition.
    pub fn add_partitions(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        fenced_error: ResponseError,
    ) -> Vec<i16> {
        let image = broker.image();
        let missing: Vec<bool> = partitions
            .iter()
            .map(|(t, p)| {
                !image
                    .topic(t)
                    .is_some_and(|tt| *p >= 0 && (*p as usize) < tt.partitions.len())
            })
            .collect();
        let mut txns = match self.locked_for(broker, id) {
            Ok(t) => t,
            Err(e) => return vec![e.code(); partitions.len()],
        };
        if missing.iter().any(|m| *m) {
            return missing
                .iter()
                .map(|m| {
                    if *m {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        ResponseError::OperationNotAttempted.code()
                    }
                })
                .collect();
        }
        let result = Self::validate(&mut txns, id, producer_id, producer_epoch, fenced_error)
            .and_then(|m| {
                let before = m.clone();
                if m.status != TxnStatus::Ongoing {
                    m.status = TxnStatus::Ongoing;
                    m.start_ms = now_ms();
                    m.partitions.clear();
                }
                m.partitions.extend(partitions.iter().cloned());
                m.last_update_ms = now_ms();
                let snapshot = m.clone();
                self.store(broker, id, &snapshot).inspect_err(|_| {
                    *m = before;
                })
            });
        let code = match result {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        vec![code; partitions.len()]
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    pub fn add_offsets(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        fenced_error: ResponseError,
    ) -> Result<(), ResponseError> {
        broker.groups.ensure_offsets_topic(broker)?;
        let p = broker.groups.partition_of(broker, group_id);
        let errors = self.add_partitions(
            broker,
            id,
            producer_id,
            producer_epoch,
            &[(OFFSETS_TOPIC.to_string(), p)],
            fenced_error,
        );
        match errors.first().copied().unwrap_or(0) {
            0 => Ok(()),
            code => {
                Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
            }
        }
    }

    /// EndTxn: commits or aborts the open transaction (markers written to every partition).
    pub fn end_txn(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        fenced_error: ResponseError,
    ) -> Result<(), ResponseError> {
        let mut txns = self.locked_for(broker, id)?;
        let m = Self::validate(&mut txns, id, producer_id, producer_epoch, fenced_error)?;
        match (m.status, commit) {
            (TxnStatus::Ongoing, _) => {
                let before = m.clone();
                m.status = if commit {
                    TxnStatus::PrepareCommit
                } else {
                    TxnStatus::PrepareAbort
                };
                m.last_update_ms = now_ms();
                let snapshot = m.clone();
                if let Err(e) = self.store(broker, id, &snapshot) {
                    *m = before;
                    return Err(e);
                }
                // The handler waits until the Prepare state is committed, then calls
                // `complete`; markers that cannot be written then are retried by the timer
                // (the producer sees CONCURRENT_TRANSACTIONS until then).
                Ok(())
            }
            // A retried EndTxn after its transaction completed the same way.
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => Ok(()),
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Transactions v2 (KIP-890): a transactional Produce v12 or TxnOffsetCommit v5 adds its
    /// partition to the transaction implicitly. A fenced epoch is reported as
    /// INVALID_PRODUCER_EPOCH, as a Kafka partition leader rewrites it.
    pub fn add_partition_implicitly(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        if let Some(addr) = coordinator_elsewhere(broker, id) {
            // The partition leader is not the transaction's coordinator: it asks the coordinator
            // to add the partition (AddPartitionsToTxn), as a Kafka leader verifies with it.
            return add_partition_remotely(
                broker,
                &addr,
                id,
                producer_id,
                producer_epoch,
                topic,
                partition,
            );
        }
        {
            let txns = self.locked_for(broker, id)?;
            if let Some(m) = txns.get(id) {
                if m.status == TxnStatus::Ongoing
                    && m.producer_id == producer_id
                    && m.producer_epoch == producer_epoch
                    && m.partitions.contains(&(topic.to_string(), partition))
                {
                    return Ok(());
                }
            }
        }
        let errors = self.add_partitions(
            broker,
            id,
            producer_id,
            producer_epoch,
            &[(topic.to_string(), partition)],
            ResponseError::InvalidProducerEpoch,
        );
        match errors.first().copied().unwrap_or(0) {
            0 => Ok(()),
            code => {
                Err(ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError))
            }
        }
    }

    /// EndTxn v5 (transactions v2): every commit or abort bumps the epoch (a new producer id
    /// when it would overflow); the markers carry the bumped epoch and the answer is the id and
    /// epoch to use next. A retry (the epoch just before) gets the same answer; an abort with
    /// nothing open only bumps the epoch.
    pub fn end_txn_v2(
        &self,
        broker: &Broker,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(i64, i16), ResponseError> {
        let mut spare = self.spare_producer_id(broker, id, false)?;
        let mut txns = self.locked_for(broker, id)?;
        let m = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let overflow_retry = producer_id == m.prev_producer_id
            && producer_epoch == MAX_EPOCH
            && m.producer_epoch == 0;
        if producer_id != m.producer_id && !overflow_retry {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        let is_retry = overflow_retry || producer_epoch == m.producer_epoch - 1;
        match m.status {
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnStatus::CompleteCommit | TxnStatus::CompleteAbort if is_retry => {
                let same = (m.status == TxnStatus::CompleteCommit) == commit;
                if same {
                    Ok((m.producer_id, m.producer_epoch))
                } else {
                    Err(ResponseError::InvalidTxnState)
                }
            }
            _ if producer_epoch != m.producer_epoch => Err(ResponseError::ProducerFenced),
            TxnStatus::Ongoing => {
                let before = m.clone();
                Self::bump_for_v2(m, &mut spare)?;
                m.status = if commit {
                    TxnStatus::PrepareCommit
                } else {
                    TxnStatus::PrepareAbort
                };
                m.last_update_ms = now_ms();
                let snapshot = m.clone();
                if let Err(e) = self.store(broker, id, &snapshot) {
                    *m = before;
                    return Err(e);
                }
                // Completed by `complete` once the Prepare state is committed.
                Ok(if m.producer_epoch == i16::MAX {
                    (m.prev_producer_id, 0)
                } else {
                    (m.producer_id, m.producer_epoch)
                })
            }
            // Nothing open: an abort just moves to a new epoch; a commit is an error.
            _ if !commit => {
                let before = m.clone();
                Self::bump_for_v2(m, &mut spare)?;
                self.finish_overflow(broker, id, m);
                m.status = TxnStatus::CompleteAbort;
                m.last_update_ms = now_ms();
                let snapshot = m.clone();
                if let Err(e) = self.store(broker, id, &snapshot) {
                    *m = before;
                    return Err(e);
                }
                Ok((m.producer_id, m.producer_epoch))
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Bumps the epoch for a v2 end; at the last epoch the markers use it and a new producer id,
    /// `spare` (see `spare_producer_id`), is switched to afterwards (`finish_overflow`).
    fn bump_for_v2(m: &mut TxnMeta, spare: &mut Option<i64>) -> Result<(), ResponseError> {
        if m.producer_epoch >= MAX_EPOCH {
            // Markers at i16::MAX; the id is replaced once they are written.
            m.prev_producer_id = spare.take().ok_or(ResponseError::ConcurrentTransactions)?;
            m.producer_epoch = i16::MAX;
        } else {
            m.producer_epoch += 1;
        }
        Ok(())
    }

    /// After an overflowing end: switch to the new producer id at epoch 0, remembering the old
    /// one so that a retry is recognised.
    fn finish_overflow(&self, broker: &Broker, id: &str, m: &mut TxnMeta) {
        if m.producer_epoch != i16::MAX {
            return;
        }
        // prev_producer_id held the new id while the markers were written.
        std::mem::swap(&mut m.prev_producer_id, &mut m.producer_id);
        m.producer_epoch = 0;
        let snapshot = m.clone();
        if let Err(e) = self.store(broker, id, &snapshot) {
            warn!(transactional_id = id, error = ?e, "storing a new producer id failed");
        }
    }

    /// After EndTxn's Prepare state is committed (the handler has waited for it): writes the
    /// markers and stores the Complete state, unless that is done already. A marker that
    /// cannot be written leaves the Prepare state to the timer.
    pub fn complete(&self, broker: &Broker, id: &str) {
        let job = match self.locked_for(broker, id) {
            Ok(mut txns) => txns
                .get_mut(id)
                .and_then(|m| self.take_job(broker, id, m, now_ms())),
            Err(_) => None,
        };
        if let Some(job) = job {
            self.run_job(broker, job);
        }
    }

    /// The markers a transaction in a Prepare state needs, once that state is committed in the
    /// in-sync replicas (checked, never waited for: this runs under the coordinator's lock) and
    /// no other writer is on it; the transaction is marked in flight.
    fn take_job(&self, broker: &Broker, id: &str, m: &mut TxnMeta, now: i64) -> Option<MarkerJob> {
        let commit = match m.status {
            TxnStatus::PrepareCommit => true,
            TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => false,
            _ => return None,
        };
        if now < m.retry_at_ms
            || !internal_topics::is_committed(
                broker,
                TRANSACTION_STATE_TOPIC,
                self.partition_of(broker, id),
            )
        {
            return None;
        }
        let coordinator_epoch = self.shards.epoch(self.partition_of(broker, id))?;
        // In flight: nobody else writes these markers for a while.
        m.retry_at_ms = now + 30_000;
        Some(MarkerJob {
            coordinator_epoch,
            id: id.to_string(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            commit,
            partitions: m.partitions.iter().cloned().collect(),
        })
    }

    /// Writes a job's markers without holding the coordinator's lock (some go over the network,
    /// and the broker on the other end may be waiting for this one), then stores the Complete
    /// state if the transaction is still the one the job was taken from.
    fn run_job(&self, broker: &Broker, job: MarkerJob) {
        let written = write_markers(broker, &job);
        let Ok(mut txns) = self.locked_for(broker, &job.id) else {
            return;
        };
        let Some(m) = txns.get_mut(&job.id) else {
            return;
        };
        let prepared = matches!(
            m.status,
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence
        );
        if !prepared || m.producer_id != job.producer_id || m.producer_epoch != job.producer_epoch {
            return;
        }
        if !written {
            m.retry_at_ms = now_ms() + 500;
            return;
        }
        m.status = if job.commit {
            TxnStatus::CompleteCommit
        } else {
            TxnStatus::CompleteAbort
        };
        // Kafka keeps a completed transaction's start time (DescribeTransactions shows it).
        m.partitions.clear();
        m.last_update_ms = now_ms();
        m.retry_at_ms = 0;
        let snapshot = m.clone();
        if let Err(e) = self.store(broker, &job.id, &snapshot) {
            warn!(transactional_id = %job.id, error = ?e, "storing a completed transaction failed");
        }
        self.finish_overflow(broker, &job.id, m);
    }

    /// Aborts transactions open longer than their timeout, bumping the epoch so that the
    /// producer that let them expire is fenced.
    pub fn tick(&self, broker: &Broker) {
        let now = now_ms();
        let mut txns = self.txns.lock();
        // Transactional ids unused for transactional.id.expiration.ms, with nothing open, are
        // forgotten (a tombstone makes the replay agree).
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, m)| {
                matches!(
                    m.status,
                    TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
                ) && now - m.last_update_ms > self.id_expiration_ms
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let n =
                internal_topics::partition_count(broker, TRANSACTION_STATE_TOPIC, self.partitions);
            let tombstone = [(encode_key(&id), None)];
            let stored = internal_topics::append(
                broker,
                TRANSACTION_STATE_TOPIC,
                partition_for(&id, n),
                &tombstone,
                None,
            );
            if stored.is_ok() {
                txns.remove(&id);
                info!(transactional_id = %id, "expired an unused transactional id");
            }
        }
        for (id, m) in txns.iter_mut() {
            if m.status != TxnStatus::Ongoing || m.start_ms < 0 {
                continue;
            }
            if now - m.start_ms <= m.timeout_ms as i64 {
                continue;
            }
            info!(transactional_id = %id, "aborting a transaction past its timeout");
            m.producer_epoch = m.producer_epoch.saturating_add(1).min(MAX_EPOCH);
            m.status = TxnStatus::PrepareAbort;
            let snapshot = m.clone();
            if let Err(e) = self.store(broker, id, &snapshot) {
                warn!(transactional_id = %id, error = ?e, "storing an aborted transaction failed");
            }
        }
        // Transactions in a Prepare state (an expired one above, markers not all written, or
        // loaded by a new coordinator) are finished once it is committed, outside the lock.
        let jobs: Vec<MarkerJob> = txns
            .iter_mut()
            .filter_map(|(id, m)| self.take_job(broker, id, m, now))
            .collect();
        drop(txns);
        for job in jobs {
            info!(transactional_id = %job.id, commit = job.commit, "writing the markers of a prepared transaction");
            self.run_job(broker, job);
        }
    }

    /// DescribeTransactions: `None` for an unknown transactional id.
    pub fn describe(
        &self,
        broker: &Broker,
        id: &str,
    ) -> Result<Option<TxnDescription>, ResponseError> {
        let txns = self.locked_for(broker, id)?;
        let Some(m) = txns.get(id) else {
            return Ok(None);
        };
        Ok(Some(TxnDescription {
            state: m.status.name(),
            timeout_ms: m.timeout_ms,
            start_ms: m.start_ms,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            partitions: m.to_value().partitions,
        }))
    }

    /// ListTransactions: (transactional id, producer id, state name), sorted by id.
    pub fn list(&self) -> Vec<(String, i64, &'static str, i64)> {
        let txns = self.txns.lock();
        let mut out: Vec<_> = txns
            .iter()
            .map(|(id, m)| (id.clone(), m.producer_id, m.status.name(), m.start_ms))
            .collect();
        out.sort();
        out
    }
}

/// The markers of one transaction, as taken from its Prepare state.
struct MarkerJob {
    id: String,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    partitions: Vec<(String, i32)>,
    /// The leader epoch of the id's `__transaction_state` partition here: the markers carry it
    /// so that a partition refuses those of a deposed coordinator.
    coordinator_epoch: i32,
}

/// How long a marker appended here may take to reach the in-sync replicas before the job is
/// retried.
const MARKER_REPLICATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes a job's markers: appended to the partitions led here, WriteTxnMarkers to the leaders
/// of the others, each written only once it is in the partition's ISR (as Kafka's acks=-1
/// marker appends: a marker only its leader held could be truncated away by a new leader, and
/// the transaction would be complete with records that read as aborted). False if one could
/// not be written: the job is retried.
fn write_markers(broker: &Broker, job: &MarkerJob) -> bool {
    let now = now_ms();
    let mut touched_offsets = false;
    let mut appended = Vec::new();
    for (topic, index) in &job.partitions {
        if broker.image().topic(topic).is_none() {
            // Deleted since: nothing to mark.
            continue;
        }
        let local = broker
            .replicas
            .partition(topic, *index)
            .filter(|p| p.is_leader());
        let Some(partition) = local else {
            // Led by another broker: WriteTxnMarkers to it, as Kafka's coordinator does. Its
            // group coordinator completes any offsets of the transaction.
            if let Err(e) = send_marker(broker, topic, *index, job) {
                warn!(transactional_id = %job.id, topic, partition = index, error = %e, "writing a transaction marker on its leader failed");
                return false;
            }
            continue;
        };
        if let Some((isr, min)) = partition.isr_shortfall() {
            warn!(transactional_id = %job.id, topic, partition = index, isr, min, "not writing a transaction marker: too few in-sync replicas");
            return false;
        }
        let epoch = partition.leader_epoch();
        let result = partition.log.lock().append_marker(
            job.producer_id,
            job.producer_epoch,
            job.commit,
            job.coordinator_epoch,
            epoch,
            now,
        );
        partition.leader_appended();
        match result {
            Ok(offset) => appended.push((partition, offset + 1, epoch)),
            Err(e) => {
                warn!(transactional_id = %job.id, topic, partition = index, error = %e, "writing a transaction marker failed");
                return false;
            }
        }
        touched_offsets |= topic == OFFSETS_TOPIC;
    }
    for (partition, end, epoch) in appended {
        let r = partition.wait_replication_blocking(end, epoch, MARKER_REPLICATION_TIMEOUT);
        if r != crate::partition::Replication::Committed {
            warn!(transactional_id = %job.id, topic = %partition.topic, partition = partition.index, outcome = ?r, "a transaction marker did not reach the in-sync replicas");
            return false;
        }
    }
    if touched_offsets {
        broker
            .groups
            .complete_txn_offsets(job.producer_id, job.commit);
    }
    true
}

/// Sends a transaction marker for one partition to its leader (WriteTxnMarkers v1).
fn send_marker(broker: &Broker, topic: &str, index: i32, job: &MarkerJob) -> Result<(), String> {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
    let image = broker.image();
    let leader = image
        .topic(topic)
        .and_then(|t| t.partitions.iter().find(|p| p.partition == index))
        .map_or(-1, |p| p.leader);
    let listener = &broker.config.cluster.inter_broker_listener_name;
    let addr = image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(listener))
        .map(|e| format!("{}:{}", e.host, e.port))
        .ok_or_else(|| format!("{topic}-{index} has no live leader"))?;
    let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
        .with_producer_id(ProducerId(job.producer_id))
        .with_producer_epoch(job.producer_epoch)
        .with_transaction_result(job.commit)
        .with_coordinator_epoch(job.coordinator_epoch)
        .with_topics(vec![WritableTxnMarkerTopic::default()
            .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                topic.to_string(),
            )))
            .with_partition_indexes(vec![index])])]);
    let resp = crate::internode::blocking(|| {
        let security = broker.outbound.for_brokers();
        crate::internode::blocking_kafka_request(&addr, &security, &req, 1)
    })
    .map_err(|e| e.to_string())?;
    let code = resp
        .markers
        .first()
        .and_then(|mk| mk.topics.first())
        .and_then(|t| t.partitions.first())
        .map_or(-1, |p| p.error_code);
    if code == 0 {
        Ok(())
    } else {
        Err(format!("leader {leader} answered error {code}"))
    }
}

/// The inter-broker address of a transactional id's coordinator when it is another broker.
fn coordinator_elsewhere(broker: &Broker, id: &str) -> Option<String> {
    let image = broker.image();
    let t = image.topic(TRANSACTION_STATE_TOPIC)?;
    let index = partition_for(id, t.partitions.len() as i32);
    let leader = t.partitions.iter().find(|p| p.partition == index)?.leader;
    if leader == broker.config.node_id {
        return None;
    }
    let listener = &broker.config.cluster.inter_broker_listener_name;
    image
        .brokers
        .get(&leader)
        .and_then(|b| b.endpoint(listener))
        .map(|e| format!("{}:{}", e.host, e.port))
}

/// Adds a partition to a transaction on its coordinator at `addr` (AddPartitionsToTxn v3).
fn add_partition_remotely(
    broker: &Broker,
    addr: &str,
    id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
) -> Result<(), ResponseError> {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, ProducerId, TopicName, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_string(id.to_string())))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(producer_epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![partition])]);
    let resp = crate::internode::blocking(|| {
        let security = broker.outbound.for_brokers();
        crate::internode::blocking_kafka_request(addr, &security, &req, 3)
    })
    .map_err(|e| {
        warn!(transactional_id = id, error = %e, "asking the transaction coordinator failed");
        ResponseError::CoordinatorNotAvailable
    })?;
    let code = resp
        .results_by_topic_v3_and_below
        .first()
        .and_then(|t| t.results_by_partition.first())
        .map_or(0, |p| p.partition_error_code);
    match code {
        0 => Ok(()),
        // A fenced producer, as the leader reports it in Transactions v2.
        c if c == ResponseError::ProducerFenced.code() => Err(ResponseError::InvalidProducerEpoch),
        c => Err(ResponseError::try_from_code(c).unwrap_or(ResponseError::UnknownServerError)),
    }
}
