//! Broker metrics: what the broker counts and times, in one registry per broker, exposed in the
//! Prometheus text format by [`http`] on `metrics.listeners`. Names follow Apache Kafka's JMX
//! metrics as the Prometheus JMX exporter's usual rules spell them
//! (`kafka_server_brokertopicmetrics_bytesin_total{topic}`,
//! `kafka_network_requestmetrics_totaltimems{request}`, ...), so that dashboards built for Kafka
//! read them; Runnel's own have the `runnel_` prefix. Counters and histograms are updated where
//! things happen (the connection loop, Produce, Fetch, the follower fetcher); gauges that
//! describe state (leaders, under-replicated partitions, log sizes) are computed when scraped.

pub mod http;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use parking_lot::{Mutex, RwLock};
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::broker::Broker;

/// The stages of a request in the broker, in order: each has a histogram per API (its `request`
/// label), in milliseconds.
const STAGES: [(&str, &str); 7] = [
    (
        "runnel_network_requestmetrics_requestreadtimems",
        "Runnel only: ms from a request's first bytes to its last (the network read).",
    ),
    (
        "kafka_network_requestmetrics_requestqueuetimems",
        "ms from a request read whole to its handling starting.",
    ),
    (
        "kafka_network_requestmetrics_localtimems",
        "ms handling a request on this broker: decoding, appending or reading, encoding.",
    ),
    (
        "kafka_network_requestmetrics_remotetimems",
        "ms a handled request then waited on others: fsyncs (flush.messages=1, runnel.fsync.on.ack) and followers (acks=all).",
    ),
    (
        "kafka_network_requestmetrics_responsequeuetimems",
        "ms a ready response waited to be written, behind the earlier responses of its connection.",
    ),
    (
        "kafka_network_requestmetrics_responsesendtimems",
        "ms writing a response to the connection.",
    ),
    (
        "kafka_network_requestmetrics_totaltimems",
        "ms from a request read whole to its response written.",
    ),
];

/// Histogram buckets for the stage times, in milliseconds: 50 µs to 30 s.
const MS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    5000.0, 10000.0, 30000.0,
];

/// API keys with a cache slot for their histograms (every key Kafka 4.x defines is below).
const API_KEY_SLOTS: usize = 128;

/// When a request reached each stage, filled in by its connection; [`Metrics::request_done`]
/// files it once the response is written.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimes {
    /// The request's API key.
    pub api_key: i16,
    /// When its first bytes (the size prefix) were read.
    pub first_byte: Instant,
    /// When it was read whole.
    pub read: Instant,
    /// When its handling started.
    pub handling: Instant,
    /// When its handling returned (a Produce's batches appended, its answer possibly waiting).
    pub handled: Instant,
}

impl RequestTimes {
    /// Times for a request read whole at `read` whose first bytes came at `first_byte`; the
    /// handling instants are set to `read` until the connection fills them in.
    pub fn new(api_key: i16, first_byte: Instant, read: Instant) -> RequestTimes {
        RequestTimes {
            api_key,
            first_byte,
            read,
            handling: read,
            handled: read,
        }
    }
}

/// One topic's counters (what Kafka's `BrokerTopicMetrics` with a `topic` tag counts).
pub struct TopicMetrics {
    /// Record bytes produced to the topic (leader appends from clients).
    pub bytes_in: IntCounter,
    /// Records produced to the topic.
    pub messages_in: IntCounter,
    /// Record bytes fetched from the topic by consumers.
    pub bytes_out: IntCounter,
    /// Produce requests that wrote to the topic.
    pub produce_requests: IntCounter,
    /// Consumer fetch requests that read the topic.
    pub fetch_requests: IntCounter,
}

/// Every metric of one broker.
pub struct Metrics {
    registry: Registry,
    stages: Vec<HistogramVec>,
    stage_cache: Box<[OnceLock<Vec<Histogram>>]>,
    requests: IntCounterVec,
    request_cache: Box<[OnceLock<IntCounter>]>,
    topics: RwLock<HashMap<String, Arc<TopicMetrics>>>,
    bytes_in: IntCounterVec,
    messages_in: IntCounterVec,
    bytes_out: IntCounterVec,
    produce_requests: IntCounterVec,
    fetch_requests: IntCounterVec,
    replication_bytes_in: IntCounter,
    replication_bytes_out: IntCounter,
    isr_shrinks: IntCounter,
    isr_expands: IntCounter,
    log_flush: Histogram,
    connections: IntGaugeVec,
    failed_authentications: IntCounterVec,
    leader_count: IntGauge,
    partition_count: IntGauge,
    under_replicated: IntGauge,
    under_min_isr: IntGauge,
    at_min_isr: IntGauge,
    offline_partitions: IntGauge,
    active_controller: IntGauge,
    global_topics: IntGauge,
    global_partitions: IntGauge,
    log_size: IntGaugeVec,
    log_start_offset: IntGaugeVec,
    log_end_offset: IntGaugeVec,
    group_offset: IntGaugeVec,
    group_lag: IntGaugeVec,
    network_idle: Gauge,
    handler_idle: Gauge,
    idle: Mutex<IdleWindow>,
    started: Instant,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(c.clone()))
        .expect("registered once");
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

fn float_gauge(registry: &Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::new(name, help).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("a unique metric");
    g
}

/// The idle ratio's window: the previous sample of the runtime's busy time, and the ratio it
/// gave (repeated when scrapes come less than a second apart).
#[derive(Default)]
struct IdleWindow {
    sample: Option<(Instant, Duration)>,
    ratio: f64,
}

/// Total time the current runtime's workers have been busy, and their number (None outside a
/// runtime).
fn runtime_busy() -> Option<(Duration, usize)> {
    let m = tokio::runtime::Handle::try_current().ok()?.metrics();
    let workers = m.num_workers();
    let busy = (0..workers).map(|w| m.worker_total_busy_duration(w)).sum();
    Some((busy, workers))
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// The name Kafka gives an API in its request metrics (`Produce`, `ListOffsets`, ...), or
/// `Unknown` for a key it does not define.
pub fn api_name(api_key: i16) -> String {
    match ApiKey::try_from(api_key) {
        Ok(k) => format!("{k:?}"),
        Err(_) => "Unknown".to_string(),
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&[])
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero (and the process's own: CPU, memory, files);
    /// the per-listener series of `listeners` are there from the start, at zero.
    pub fn new(listeners: &[&str]) -> Metrics {
        let metrics = Metrics::empty();
        for l in listeners {
            metrics.connections.with_label_values(&[l]);
            metrics.failed_authentications.with_label_values(&[l]);
        }
        metrics
    }

    fn empty() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let _ = r.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        let stages = STAGES
            .iter()
            .map(|(name, help)| {
                let h = HistogramVec::new(
                    HistogramOpts::new(*name, *help).buckets(MS_BUCKETS.to_vec()),
                    &["request"],
                )
                .expect("a valid metric");
                r.register(Box::new(h.clone())).expect("registered once");
                h
            })
            .collect();
        let topic = &["topic"];
        let partition = &["topic", "partition"];
        Metrics {
            stages,
            stage_cache: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            requests: counter_vec(
                &r,
                "kafka_network_requestmetrics_requests_total",
                "Requests answered (or, for acks=0 produce, handled), by API.",
                &["request"],
            ),
            request_cache: (0..API_KEY_SLOTS).map(|_| OnceLock::new()).collect(),
            topics: RwLock::new(HashMap::new()),
            bytes_in: counter_vec(
                &r,
                "kafka_server_brokertopicmetrics_bytesin_total",
                "Record bytes produced by clients, by topic.",
                topic,
            ),
            messages_in: counter_vec(
                &r,
                "kafka_server_brokertopicmetrics_messagesin_total",
                "Records produced by clients, by topic.",
                topic,
            ),
            bytes_out: counter_vec(
                &r,
                "kafka_server_brokertopicmetrics_bytesout_total",
                "Record bytes fetched by consumers, by topic.",
                topic,
            ),
            produce_requests: counter_vec(
                &r,
                "kafka_server_brokertopicmetrics_totalproducerequests_total",
                "Produce requests, by topic they wrote to.",
                topic,
            ),
            fetch_requests: counter_vec(
                &r,
                "kafka_server_brokertopicmetrics_totalfetchrequests_total",
                "Consumer fetch requests, by topic they read.",
                topic,
            ),
            replication_bytes_in: counter(
                &r,
                "kafka_server_brokertopicmetrics_replicationbytesin_total",
                "Record bytes this broker's followers fetched from leaders.",
            ),
            replication_bytes_out: counter(
                &r,
                "kafka_server_brokertopicmetrics_replicationbytesout_total",
                "Record bytes followers on other brokers fetched from this broker's leaders.",
            ),
            isr_shrinks: counter(
                &r,
                "kafka_server_replicamanager_isrshrinks_total",
                "ISR shrinks of partitions this broker leads.",
            ),
            isr_expands: counter(
                &r,
                "kafka_server_replicamanager_isrexpands_total",
                "ISR expansions of partitions this broker leads.",
            ),
            log_flush: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "kafka_log_logflushstats_logflushrateandtimems",
                        "ms per fsync of a partition's log before acknowledging (flush.messages=1, runnel.fsync.on.ack), one per group commit.",
                    )
                    .buckets(MS_BUCKETS.to_vec()),
                )
                .expect("a valid metric");
                r.register(Box::new(h.clone())).expect("registered once");
                h
            },
            connections: gauge_vec(
                &r,
                "kafka_server_socketservermetrics_connection_count",
                "Open client connections, by listener.",
                &["listener"],
            ),
            failed_authentications: counter_vec(
                &r,
                "kafka_server_socketservermetrics_failed_authentication_total",
                "Connections closed for a failed SASL authentication, by listener.",
                &["listener"],
            ),
            leader_count: gauge(
                &r,
                "kafka_server_replicamanager_leadercount",
                "Partitions this broker leads.",
            ),
            partition_count: gauge(
                &r,
                "kafka_server_replicamanager_partitioncount",
                "Partitions with a replica on this broker.",
            ),
            under_replicated: gauge(
                &r,
                "kafka_server_replicamanager_underreplicatedpartitions",
                "Partitions this broker leads whose ISR is smaller than their replica set.",
            ),
            under_min_isr: gauge(
                &r,
                "kafka_server_replicamanager_underminisrpartitioncount",
                "Partitions this broker leads whose ISR is smaller than min.insync.replicas.",
            ),
            at_min_isr: gauge(
                &r,
                "kafka_server_replicamanager_atminisrpartitioncount",
                "Partitions this broker leads whose ISR is exactly min.insync.replicas.",
            ),
            offline_partitions: gauge(
                &r,
                "kafka_controller_kafkacontroller_offlinepartitionscount",
                "On the active controller: partitions without a leader (0 on other nodes).",
            ),
            active_controller: gauge(
                &r,
                "kafka_controller_kafkacontroller_activecontrollercount",
                "1 on the node that is the active controller (the metadata quorum's leader), else 0.",
            ),
            global_topics: gauge(
                &r,
                "kafka_controller_kafkacontroller_globaltopiccount",
                "Topics in the cluster, as this node's metadata has them.",
            ),
            global_partitions: gauge(
                &r,
                "kafka_controller_kafkacontroller_globalpartitioncount",
                "Partitions in the cluster, as this node's metadata has them.",
            ),
            log_size: gauge_vec(
                &r,
                "kafka_log_log_size",
                "Bytes of a partition's log on this broker.",
                partition,
            ),
            log_start_offset: gauge_vec(
                &r,
                "kafka_log_log_logstartoffset",
                "A partition's log start offset on this broker.",
                partition,
            ),
            log_end_offset: gauge_vec(
                &r,
                "kafka_log_log_logendoffset",
                "A partition's log end offset on this broker.",
                partition,
            ),
            group_offset: gauge_vec(
                &r,
                "kafka_consumergroup_current_offset",
                "Committed offset of a consumer group on a partition, on the group's coordinator.",
                &["consumergroup", "topic", "partition"],
            ),
            group_lag: gauge_vec(
                &r,
                "kafka_consumergroup_lag",
                "A consumer group's lag on a partition (high watermark minus committed offset, as kafka-consumer-groups shows it), on the group's coordinator when it also hosts the partition.",
                &["consumergroup", "topic", "partition"],
            ),
            network_idle: float_gauge(
                &r,
                "kafka_network_socketserver_networkprocessoravgidlepercent",
                "Fraction of time (0 to 1) the broker's runtime workers were idle since the previous scrape. Runnel reads sockets and handles requests on the same workers, so this and the request-handler ratio are the same figure.",
            ),
            handler_idle: float_gauge(
                &r,
                "kafka_server_kafkarequesthandlerpool_requesthandleravgidlepercent",
                "Fraction of time (0 to 1) the broker's runtime workers were idle since the previous scrape (the same workers read sockets and handle requests).",
            ),
            idle: Mutex::new(IdleWindow::default()),
            started: Instant::now(),
            registry: r,
        }
    }

    /// The stage histograms of an API (None for a key past the cache).
    fn stage_histograms(&self, api_key: i16) -> Option<&[Histogram]> {
        let slot = self.stage_cache.get(usize::try_from(api_key).ok()?)?;
        Some(slot.get_or_init(|| {
            let name = api_name(api_key);
            self.stages
                .iter()
                .map(|v| v.with_label_values(&[name.as_str()]))
                .collect()
        }))
    }

    /// Files a request's stage times once its response is written (`written`), having started
    /// to be written at `writing`, its answer ready at `ready` (after any fsync or replication
    /// wait).
    pub fn request_done(
        &self,
        t: &RequestTimes,
        ready: Instant,
        writing: Instant,
        written: Instant,
    ) {
        let Some(h) = self.stage_histograms(t.api_key) else {
            return;
        };
        let ms =
            |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
        h[0].observe(ms(t.first_byte, t.read));
        h[1].observe(ms(t.read, t.handling));
        h[2].observe(ms(t.handling, t.handled));
        h[3].observe(ms(t.handled, ready));
        h[4].observe(ms(ready, writing));
        h[5].observe(ms(writing, written));
        h[6].observe(ms(t.read, written));
        if let Some(slot) = usize::try_from(t.api_key)
            .ok()
            .and_then(|i| self.request_cache.get(i))
        {
            slot.get_or_init(|| {
                self.requests
                    .with_label_values(&[api_name(t.api_key).as_str()])
            })
            .inc();
        }
    }

    /// A topic's counters, created at first use.
    pub fn topic(&self, name: &str) -> Arc<TopicMetrics> {
        if let Some(t) = self.topics.read().get(name) {
            return t.clone();
        }
        let mut topics = self.topics.write();
        topics
            .entry(name.to_string())
            .or_insert_with(|| {
                let l = &[name];
                Arc::new(TopicMetrics {
                    bytes_in: self.bytes_in.with_label_values(l),
                    messages_in: self.messages_in.with_label_values(l),
                    bytes_out: self.bytes_out.with_label_values(l),
                    produce_requests: self.produce_requests.with_label_values(l),
                    fetch_requests: self.fetch_requests.with_label_values(l),
                })
            })
            .clone()
    }

    /// Counts what a fetch sent: record bytes per topic (`(topic, bytes)`, every topic the
    /// request named), as consumer traffic or, for a follower's fetch, as replication.
    pub fn fetched<'a>(&self, topics: impl Iterator<Item = (&'a str, usize)>, follower: bool) {
        for (topic, bytes) in topics {
            if follower {
                self.replication_bytes_out.inc_by(bytes as u64);
            } else if !topic.is_empty() {
                let t = self.topic(topic);
                t.fetch_requests.inc();
                t.bytes_out.inc_by(bytes as u64);
            }
        }
    }

    /// The histogram of log fsync times, for the partitions to observe into.
    pub fn log_flush_histogram(&self) -> Histogram {
        self.log_flush.clone()
    }

    /// Counts an ISR change of a partition this broker leads, from `before` to `after` members.
    pub fn isr_changed(&self, before: usize, after: usize) {
        if after < before {
            self.isr_shrinks.inc();
        } else if after > before {
            self.isr_expands.inc();
        }
    }

    /// Counts record bytes a follower here appended from its leader.
    pub fn replicated_in(&self, bytes: usize) {
        self.replication_bytes_in.inc_by(bytes as u64);
    }

    /// Counts an open connection on `listener` until the guard drops.
    pub fn connection(&self, listener: &str) -> ConnectionGuard {
        let gauge = self.connections.with_label_values(&[listener]);
        gauge.inc();
        ConnectionGuard(gauge)
    }

    /// Counts a connection closed for a failed SASL authentication.
    pub fn failed_authentication(&self, listener: &str) {
        self.failed_authentications
            .with_label_values(&[listener])
            .inc();
    }

    /// Sets the gauges that describe the broker's state from what it holds now.
    pub fn refresh(&self, broker: &Broker) {
        let node = broker.config.node_id;
        let image = broker.image();
        let (mut leaders, mut under, mut under_min, mut at_min) = (0, 0, 0, 0);
        let partitions = broker.replicas.all_partitions();
        self.log_size.reset();
        self.log_start_offset.reset();
        self.log_end_offset.reset();
        for p in &partitions {
            let state = p.state();
            if state.leader == node {
                leaders += 1;
                let isr = state.isr.len();
                let min = p.config.read().min_insync_replicas.max(1) as usize;
                if isr < state.replicas.len() {
                    under += 1;
                }
                if isr < min {
                    under_min += 1;
                } else if isr == min {
                    at_min += 1;
                }
            }
            let (size, start, end) = {
                let log = p.log.lock();
                (
                    log.size_bytes(),
                    log.log_start_offset(),
                    log.log_end_offset(),
                )
            };
            let index = p.index.to_string();
            let l = &[p.topic.as_str(), index.as_str()];
            self.log_size.with_label_values(l).set(size as i64);
            self.log_start_offset.with_label_values(l).set(start);
            self.log_end_offset.with_label_values(l).set(end);
        }
        // Lag as kafka-consumer-groups computes it: the high watermark (the latest offset a
        // read_uncommitted consumer sees) minus the committed offset. Only for partitions with
        // a replica here: the coordinator does not ask other brokers.
        self.group_offset.reset();
        self.group_lag.reset();
        for (group, topic, partition, offset) in broker.groups.committed_offsets() {
            let index = partition.to_string();
            let l = &[group.as_str(), topic.as_str(), index.as_str()];
            self.group_offset.with_label_values(l).set(offset);
            if let Some(p) = broker.replicas.partition(&topic, partition) {
                let lag = (p.high_watermark() - offset).max(0);
                self.group_lag.with_label_values(l).set(lag);
            }
        }
        self.refresh_idle();
        self.leader_count.set(leaders);
        self.partition_count.set(partitions.len() as i64);
        self.under_replicated.set(under);
        self.under_min_isr.set(under_min);
        self.at_min_isr.set(at_min);
        let active = broker.controller_id() == Some(node);
        self.active_controller.set(active as i64);
        let all = image.topics.values().flat_map(|t| t.partitions.iter());
        let (count, offline) = all.fold((0, 0), |(n, off), p| (n + 1, off + (p.leader < 0) as i64));
        self.global_topics.set(image.topics.len() as i64);
        self.global_partitions.set(count);
        self.offline_partitions
            .set(if active { offline } else { 0 });
        // Counters of topics no longer hosted here go (as Kafka removes a deleted topic's).
        let hosted: std::collections::HashSet<&str> =
            partitions.iter().map(|p| p.topic.as_str()).collect();
        let gone: Vec<String> = self
            .topics
            .read()
            .keys()
            .filter(|t| !hosted.contains(t.as_str()))
            .cloned()
            .collect();
        if !gone.is_empty() {
            let mut topics = self.topics.write();
            for t in gone {
                topics.remove(&t);
                let l = &[t.as_str()];
                for v in [
                    &self.bytes_in,
                    &self.messages_in,
                    &self.bytes_out,
                    &self.produce_requests,
                    &self.fetch_requests,
                ] {
                    let _ = v.remove_label_values(l);
                }
            }
        }
    }

    /// Sets the idle ratios: the share of worker time not spent busy since the previous
    /// sample, taken at most once a second; the first sample counts from the runtime's start.
    fn refresh_idle(&self) {
        let Some((busy, workers)) = runtime_busy() else {
            return;
        };
        let now = Instant::now();
        let mut w = self.idle.lock();
        let (since, busy_before) = w.sample.unwrap_or((self.started, Duration::ZERO));
        let elapsed = now.saturating_duration_since(since);
        if w.sample.is_none() || elapsed >= Duration::from_secs(1) {
            let capacity = elapsed.as_secs_f64() * workers.max(1) as f64;
            let used = busy.saturating_sub(busy_before).as_secs_f64();
            w.ratio = if capacity > 0.0 {
                (1.0 - used / capacity).clamp(0.0, 1.0)
            } else {
                1.0
            };
            w.sample = Some((now, busy));
        }
        self.network_idle.set(w.ratio);
        self.handler_idle.set(w.ratio);
    }

    /// Every metric in the Prometheus text format (version 0.0.4), the gauges refreshed first.
    pub fn render(&self, broker: &Broker) -> String {
        self.refresh(broker);
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// An open connection counted in `kafka_server_socketservermetrics_connection_count`; the count
/// goes down when this drops.
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
