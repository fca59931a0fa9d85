//! What the pages show, read from the cluster through the Rust client (so from any
//! Kafka-compatible cluster): the overview, topics with sizes and record estimates, partitions,
//! records in offset ranges (browse, search, export, live tail), consumer groups with lag, ACLs,
//! SCRAM users and quotas. Never everything at once: topics a page at a time, records in bounded
//! ranges, log-dir sizes cached for a few seconds.

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runnel_client::admin::LogDirDescription;
use runnel_client::cluster::TopicInfo;
use runnel_client::offsets::{EARLIEST, LATEST};
use runnel_client::{Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Error, Seek};
use serde::Serialize;

/// How long log-dir sizes are reused.
const LOG_DIRS_TTL: Duration = Duration::from_secs(5);

/// Topics per page of the topic list.
pub const TOPICS_PER_PAGE: usize = 100;

/// Every broker's log dirs, by node id.
pub type LogDirs = Arc<HashMap<i32, Vec<LogDirDescription>>>;

/// Sizes of every partition replica, per broker, with the time they were read.
#[derive(Default)]
pub struct LogDirsCache {
    cached: Mutex<Option<(Instant, LogDirs)>>,
}

impl LogDirsCache {
    /// The sizes, read again when older than [`LOG_DIRS_TTL`]. A broker that does not answer
    /// (or does not serve DescribeLogDirs to this user) is left out.
    pub async fn get(&self, admin: &Admin) -> LogDirs {
        if let Some((at, v)) = &*self.cached.lock() {
            if at.elapsed() < LOG_DIRS_TTL {
                return v.clone();
            }
        }
        let mut all = HashMap::new();
        for b in admin.cluster().brokers() {
            match admin.describe_log_dirs(b.node_id).await {
                Ok(dirs) => {
                    all.insert(b.node_id, dirs);
                }
                Err(e) => tracing::debug!(broker = b.node_id, error = %e, "describe log dirs"),
            }
        }
        let v = Arc::new(all);
        *self.cached.lock() = Some((Instant::now(), v.clone()));
        v
    }
}

/// The size of each partition on its leader (what a reader reads), from the log dirs.
fn leader_sizes(
    dirs: &HashMap<i32, Vec<LogDirDescription>>,
    topics: &[Arc<TopicInfo>],
) -> HashMap<(String, i32), i64> {
    let mut per_broker: HashMap<(i32, &str, i32), i64> = HashMap::new();
    for (b, ds) in dirs {
        for d in ds {
            for ((t, p), size) in &d.partitions {
                per_broker.insert((*b, t.as_str(), *p), *size);
            }
        }
    }
    let mut out = HashMap::new();
    for t in topics {
        for p in &t.partitions {
            let holder = if p.leader >= 0 {
                p.leader
            } else {
                p.replicas.first().copied().unwrap_or(-1)
            };
            if let Some(s) = per_broker.get(&(holder, t.name.as_str(), p.partition)) {
                out.insert((t.name.clone(), p.partition), *s);
            }
        }
    }
    out
}

/// A broker on the overview.
#[derive(Serialize)]
pub struct BrokerRow {
    /// Node id.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack.
    pub rack: String,
    /// Whether it is the active controller.
    pub controller: bool,
    /// Partitions it leads.
    pub leaders: usize,
    /// Bytes of partition data in its log dirs (-1: unknown).
    pub disk: i64,
    /// Its log dirs: path, bytes used by partitions, free bytes of the volume.
    pub dirs: Vec<(String, i64, i64)>,
}

/// The overview page.
#[derive(Serialize)]
pub struct Overview {
    /// Cluster id.
    pub cluster_id: String,
    /// Active controller's id (-1: unknown).
    pub controller: i32,
    /// Brokers.
    pub brokers: Vec<BrokerRow>,
    /// Topics (internal ones included).
    pub topics: usize,
    /// Partitions.
    pub partitions: usize,
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: usize,
    /// Partitions without a leader.
    pub offline: usize,
    /// Finalized feature levels (`metadata.version`, `kraft.version`, ...): the versions the
    /// cluster runs at.
    pub features: Vec<(String, i16)>,
}

/// Reads the overview.
pub async fn overview(admin: &Admin, cache: &LogDirsCache) -> Result<Overview, Error> {
    let desc = admin.describe_cluster().await?;
    let features = admin.cluster().any().await?.finalized_features().to_vec();
    let topics = admin.list_topics(true).await?;
    let dirs = cache.get(admin).await;
    let mut leaders: HashMap<i32, usize> = HashMap::new();
    let (mut partitions, mut under, mut offline) = (0, 0, 0);
    for t in &topics {
        for p in &t.partitions {
            partitions += 1;
            if p.leader < 0 {
                offline += 1;
            } else {
                *leaders.entry(p.leader).or_default() += 1;
            }
            if p.isr.len() < p.replicas.len() {
                under += 1;
            }
        }
    }
    let brokers = desc
        .brokers
        .iter()
        .map(|b| {
            let ds = dirs.get(&b.node_id);
            BrokerRow {
                id: b.node_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone().unwrap_or_default(),
                controller: b.node_id == desc.controller,
                leaders: leaders.get(&b.node_id).copied().unwrap_or(0),
                disk: ds.map_or(-1, |ds| {
                    ds.iter()
                        .flat_map(|d| d.partitions.iter().map(|(_, s)| *s))
                        .sum()
                }),
                dirs: ds.map_or_else(Vec::new, |ds| {
                    ds.iter()
                        .map(|d| {
                            (
                                d.path.clone(),
                                d.partitions.iter().map(|(_, s)| *s).sum(),
                                d.usable_bytes,
                            )
                        })
                        .collect()
                }),
            }
        })
        .collect();
    Ok(Overview {
        cluster_id: desc.cluster_id,
        controller: desc.controller,
        brokers,
        topics: topics.len(),
        partitions,
        under_replicated: under,
        offline,
        features,
    })
}

/// A topic's health from its partitions.
fn health(t: &TopicInfo) -> &'static str {
    if t.partitions.iter().any(|p| p.leader < 0) {
        "offline"
    } else if t.partitions.iter().any(|p| p.isr.len() < p.replicas.len()) {
        "under-replicated"
    } else {
        "healthy"
    }
}

/// A row of the topic list.
#[derive(Serialize)]
pub struct TopicRow {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: usize,
    /// Replication factor (of its first partition).
    pub replication: usize,
    /// Bytes on the leaders (-1: unknown).
    pub size: i64,
    /// Records: the sum of end minus start offsets (an estimate: compaction and transaction
    /// markers leave gaps).
    pub records: i64,
    /// healthy, under-replicated or offline.
    pub health: &'static str,
    /// Internal topic.
    pub internal: bool,
}

/// A page of the topic list.
#[derive(Serialize)]
pub struct TopicPage {
    /// The rows.
    pub rows: Vec<TopicRow>,
    /// Topics matching the filter.
    pub matching: usize,
    /// This page (0-based).
    pub page: usize,
    /// Whether a next page exists.
    pub has_next: bool,
}

/// Start and end offsets of partitions, in one ListOffsets round per kind.
async fn offset_ranges(
    admin: &Admin,
    tps: &[(String, i32)],
) -> Result<HashMap<(String, i32), (i64, i64)>, Error> {
    if tps.is_empty() {
        return Ok(HashMap::new());
    }
    let ask = |ts: i64| tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>();
    let starts = admin.list_offsets(&ask(EARLIEST)).await?;
    let ends = admin.list_offsets(&ask(LATEST)).await?;
    Ok(tps
        .iter()
        .map(|tp| {
            let lo = starts.get(tp).map_or(0, |l| l.offset);
            let hi = ends.get(tp).map_or(lo, |l| l.offset);
            (tp.clone(), (lo, hi))
        })
        .collect())
}

/// One page of topics whose name contains `filter`.
pub async fn topics(
    admin: &Admin,
    cache: &LogDirsCache,
    filter: &str,
    internal: bool,
    page: usize,
) -> Result<TopicPage, Error> {
    let mut all = admin.list_topics(internal).await?;
    all.retain(|t| t.name.contains(filter));
    all.sort_by(|a, b| a.name.cmp(&b.name));
    let matching = all.len();
    let shown: Vec<Arc<TopicInfo>> = all
        .into_iter()
        .skip(page * TOPICS_PER_PAGE)
        .take(TOPICS_PER_PAGE + 1)
        .collect();
    let has_next = shown.len() > TOPICS_PER_PAGE;
    let shown = &shown[..shown.len().min(TOPICS_PER_PAGE)];
    let sizes = leader_sizes(&*cache.get(admin).await, shown);
    let tps: Vec<(String, i32)> = shown
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.partition)))
        .collect();
    let ranges = offset_ranges(admin, &tps).await?;
    let rows = shown
        .iter()
        .map(|t| {
            let known: Vec<i64> = t
                .partitions
                .iter()
                .filter_map(|p| sizes.get(&(t.name.clone(), p.partition)).copied())
                .collect();
            TopicRow {
                name: t.name.clone(),
                partitions: t.partitions.len(),
                replication: t.partitions.first().map_or(0, |p| p.replicas.len()),
                size: if known.is_empty() {
                    -1
                } else {
                    known.iter().sum()
                },
                records: t
                    .partitions
                    .iter()
                    .filter_map(|p| ranges.get(&(t.name.clone(), p.partition)))
                    .map(|(lo, hi)| (hi - lo).max(0))
                    .sum(),
                health: health(t),
                internal: t.internal,
            }
        })
        .collect();
    Ok(TopicPage {
        rows,
        matching,
        page,
        has_next,
    })
}

/// A partition on the topic page.
#[derive(Serialize)]
pub struct PartitionRow {
    /// Index.
    pub partition: i32,
    /// Leader (-1: none).
    pub leader: i32,
    /// Replicas.
    pub replicas: String,
    /// In-sync replicas.
    pub isr: String,
    /// Log start offset.
    pub start: i64,
    /// Log end offset (high watermark).
    pub end: i64,
    /// Bytes on the leader (-1: unknown).
    pub size: i64,
}

/// A config on the topic page.
#[derive(Serialize)]
pub struct ConfigRow {
    /// Key.
    pub name: String,
    /// Value (empty for a sensitive one).
    pub value: String,
    /// Kafka's name of its source.
    pub source: &'static str,
    /// Whether it is the topic's own (set on it), not a default.
    pub own: bool,
    /// Read-only.
    pub read_only: bool,
}

/// The topic page.
#[derive(Serialize)]
pub struct TopicDetail {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: String,
    /// Internal.
    pub internal: bool,
    /// Health.
    pub health: &'static str,
    /// Partitions.
    pub partitions: Vec<PartitionRow>,
    /// Configs: the topic's own first, then the defaults.
    pub configs: Vec<ConfigRow>,
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A topic as it is now; [`Error::NotFound`]-like errors when it does not exist.
pub async fn topic(admin: &Admin, cache: &LogDirsCache, name: &str) -> Result<TopicDetail, Error> {
    let t = admin.describe_topic(name).await?;
    let sizes = leader_sizes(&*cache.get(admin).await, std::slice::from_ref(&t));
    let tps: Vec<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (name.to_string(), p.partition))
        .collect();
    let ranges = offset_ranges(admin, &tps).await?;
    let partitions = t
        .partitions
        .iter()
        .map(|p| {
            let (start, end) = ranges
                .get(&(name.to_string(), p.partition))
                .copied()
                .unwrap_or((-1, -1));
            PartitionRow {
                partition: p.partition,
                leader: p.leader,
                replicas: join(&p.replicas),
                isr: join(&p.isr),
                start,
                end,
                size: sizes
                    .get(&(name.to_string(), p.partition))
                    .copied()
                    .unwrap_or(-1),
            }
        })
        .collect();
    let mut configs: Vec<ConfigRow> = admin
        .describe_configs(runnel_client::admin::ConfigResource::Topic, name)
        .await?
        .into_iter()
        .map(|c| ConfigRow {
            own: c.source == "DYNAMIC_TOPIC_CONFIG",
            value: if c.sensitive {
                String::new()
            } else {
                c.value.unwrap_or_default()
            },
            name: c.name,
            source: c.source,
            read_only: c.read_only,
        })
        .collect();
    configs.sort_by(|a, b| b.own.cmp(&a.own).then(a.name.cmp(&b.name)));
    Ok(TopicDetail {
        name: t.name.clone(),
        id: t.id.to_string(),
        internal: t.internal,
        health: health(&t),
        partitions,
        configs,
    })
}

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// The newest records.
    Newest,
    /// An offset (in each partition read).
    Offset(i64),
    /// The first record at or after a time (ms).
    Time(i64),
}

/// A range of one partition to read: `from` up to (not including) `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// The partition.
    pub partition: i32,
    /// First offset.
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
}

/// The ranges to read: partitions `only` (all when None), `per_partition` records each from
/// `from`; also the topic's partition count.
pub async fn plan(
    admin: &Admin,
    topic: &str,
    only: Option<i32>,
    from: From,
    per_partition: i64,
) -> Result<(Vec<Range>, usize), Error> {
    let t = admin.describe_topic(topic).await?;
    let parts: Vec<i32> = t
        .partitions
        .iter()
        .map(|p| p.partition)
        .filter(|p| only.is_none_or(|o| o == *p))
        .collect();
    if let Some(o) = only {
        if parts.is_empty() {
            return Err(Error::NotFound(format!(
                "topic {topic} has no partition {o}"
            )));
        }
    }
    let tps: Vec<(String, i32)> = parts.iter().map(|p| (topic.to_string(), *p)).collect();
    let ranges = offset_ranges(admin, &tps).await?;
    let by_time = match from {
        From::Time(ts) => Some(
            admin
                .list_offsets(&tps.iter().map(|tp| (tp.clone(), ts)).collect::<Vec<_>>())
                .await?,
        ),
        _ => None,
    };
    let mut out = Vec::new();
    for tp in &tps {
        let (lo, hi) = ranges[tp];
        let start = match from {
            From::Newest => (hi - per_partition).max(lo),
            From::Offset(o) => o.clamp(lo, hi),
            From::Time(_) => by_time
                .as_ref()
                .and_then(|m| m.get(tp))
                .map(|l| l.offset)
                .filter(|o| *o >= 0)
                .unwrap_or(hi)
                .clamp(lo, hi),
        };
        out.push(Range {
            partition: tp.1,
            from: start,
            to: (start + per_partition).min(hi),
        });
    }
    Ok((out, t.partitions.len()))
}

/// A consumer without a group, for reading ranges.
async fn reader(client: &ClientConfig) -> Result<Consumer, Error> {
    let mut cfg = ConsumerConfig::new(client.clone());
    cfg.enable_auto_commit = false;
    cfg.fetch_max_wait = Duration::from_millis(100);
    cfg.prefetch_chunks = 2;
    Consumer::new(cfg).await
}

/// Reads `ranges` of `topic`, handing each record to `each` until it says stop, every range is
/// read, or `deadline` passes (then the records so far stand). Returns how many were read.
pub async fn read<F>(
    client: &ClientConfig,
    topic: &str,
    ranges: &[Range],
    deadline: Instant,
    mut each: F,
) -> Result<u64, Error>
where
    F: FnMut(ConsumerRecord) -> ControlFlow<()>,
{
    let wanted: Vec<&Range> = ranges.iter().filter(|r| r.to > r.from).collect();
    if wanted.is_empty() {
        return Ok(0);
    }
    let consumer = reader(client).await?;
    let tps: Vec<(String, i32)> = wanted
        .iter()
        .map(|r| (topic.to_string(), r.partition))
        .collect();
    consumer.assign(&tps)?;
    for r in &wanted {
        consumer.seek(&(topic.to_string(), r.partition), Seek::Offset(r.from))?;
    }
    let stops: BTreeMap<i32, i64> = wanted.iter().map(|r| (r.partition, r.to)).collect();
    let mut done: BTreeMap<i32, bool> = stops.keys().map(|p| (*p, false)).collect();
    let mut n = 0u64;
    'outer: while Instant::now() < deadline && done.values().any(|d| !d) {
        let records = consumer.poll(Duration::from_millis(200)).await?;
        for r in records {
            let stop = stops.get(&r.partition).copied().unwrap_or(0);
            if r.offset >= stop {
                done.insert(r.partition, true);
                continue;
            }
            n += 1;
            if each(r).is_break() {
                break 'outer;
            }
        }
        for ((_, p), pos) in consumer.positions() {
            if pos >= stops.get(&p).copied().unwrap_or(i64::MAX) {
                done.insert(p, true);
            }
        }
        // Finished partitions stop fetching (their next records would be dropped anyway).
        let finished: Vec<(String, i32)> = done
            .iter()
            .filter(|(_, d)| **d)
            .map(|(p, _)| (topic.to_string(), *p))
            .collect();
        consumer.pause(&finished);
    }
    let _ = consumer.close().await;
    Ok(n)
}

/// Records to show: read from `ranges`, newest first or in time order, `limit` at most.
pub async fn records(
    client: &ClientConfig,
    topic: &str,
    ranges: &[Range],
    newest_first: bool,
    limit: usize,
) -> Result<Vec<ConsumerRecord>, Error> {
    let mut out = Vec::new();
    read(
        client,
        topic,
        ranges,
        Instant::now() + Duration::from_secs(15),
        |r| {
            out.push(r);
            ControlFlow::Continue(())
        },
    )
    .await?;
    if newest_first {
        out.sort_by(|a, b| {
            (b.timestamp, b.offset, b.partition).cmp(&(a.timestamp, a.offset, a.partition))
        });
    } else {
        out.sort_by(|a, b| {
            (a.timestamp, a.partition, a.offset).cmp(&(b.timestamp, b.partition, b.offset))
        });
    }
    out.truncate(limit);
    Ok(out)
}

/// A consumer positioned at the end of every partition of `topic`, for a live tail.
pub async fn tail(client: &ClientConfig, admin: &Admin, topic: &str) -> Result<Consumer, Error> {
    let t = admin.describe_topic(topic).await?;
    let consumer = reader(client).await?;
    let tps: Vec<(String, i32)> = t
        .partitions
        .iter()
        .map(|p| (topic.to_string(), p.partition))
        .collect();
    consumer.assign(&tps)?;
    for tp in &tps {
        consumer.seek(tp, Seek::End)?;
    }
    Ok(consumer)
}

/// A row of the group list.
#[derive(Serialize)]
pub struct GroupRow {
    /// Group id.
    pub id: String,
    /// State.
    pub state: String,
    /// Members.
    pub members: usize,
    /// Total lag (None: no commits or not readable).
    pub lag: Option<i64>,
    /// Protocol type (consumer, ...).
    pub protocol_type: String,
}

/// Every group with its members and total lag.
pub async fn groups(admin: &Admin) -> Result<Vec<GroupRow>, Error> {
    let mut out = Vec::new();
    for g in admin.list_groups().await? {
        let (members, lag, state) = match admin.group_lag(&g.group_id).await {
            Ok((desc, rows)) => {
                let lags: Vec<i64> = rows.iter().filter_map(|r| r.lag).collect();
                (
                    desc.members.len(),
                    (!lags.is_empty()).then(|| lags.iter().sum()),
                    desc.state,
                )
            }
            Err(_) => (0, None, g.state.clone()),
        };
        out.push(GroupRow {
            id: g.group_id,
            state: if state.is_empty() { g.state } else { state },
            members,
            lag,
            protocol_type: g.protocol_type,
        });
    }
    Ok(out)
}
