//! The client against a real Runnel broker (started in this process on an ephemeral port, over
//! TCP): produce and consume with every codec, keyed placement, consumer groups with both
//! assignors, commits, seeks, the header filter, the admin calls, and finding a moved leader
//! again (through a stand-in broker that has lost leadership).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runnel_client::admin::{AlterOp, ConfigResource, NewTopic, ResetTarget};
use runnel_client::config::AssignorKind;
use runnel_client::kafka_protocol::messages::describe_producers_request::TopicRequest;
use runnel_client::kafka_protocol::messages::{DescribeProducersRequest, TopicName};
use runnel_client::kafka_protocol::protocol::StrBytes;
use runnel_client::partitioner::partition_for_key;
use runnel_client::{
    Admin, ClientConfig, Compression, Consumer, ConsumerConfig, ConsumerRecord, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, Seek,
};

struct Broker {
    handle: Option<runnel_broker::BrokerHandle>,
    addr: String,
    dir: tempfile::TempDir,
}

async fn start_on(dir: &std::path::Path, port: u16) -> runnel_broker::BrokerHandle {
    let o: Vec<(String, String)> = [
        ("listeners", format!("PLAINTEXT://127.0.0.1:{port}")),
        ("log.dirs", dir.join("data").display().to_string()),
        ("node.id", "1".into()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        ("offsets.topic.num.partitions", "2".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = runnel_config::BrokerConfig::load(None, &[], &o)
        .unwrap()
        .config;
    runnel_broker::Broker::start(cfg).await.unwrap()
}

async fn broker() -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let handle = start_on(dir.path(), 0).await;
    let addr = handle.bound[0].1.to_string();
    Broker {
        handle: Some(handle),
        addr,
        dir,
    }
}

impl Broker {
    /// A clean shutdown, a pause with the port closed, and a start on the same port and data.
    async fn restart(&mut self, down_for: Duration) {
        self.handle.take().unwrap().shutdown().await.unwrap();
        tokio::time::sleep(down_for).await;
        let port = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        self.handle = Some(start_on(self.dir.path(), port).await);
    }
}

/// Creates `topic` with `partitions` partitions and writes `n` keyless records with the values
/// `value(i)`; returns an admin client.
async fn topic_with(
    b: &Broker,
    topic: &str,
    partitions: i32,
    n: usize,
    value: impl Fn(usize) -> String,
) -> Admin {
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin
        .create_topic(&NewTopic::new(topic, partitions))
        .await
        .unwrap();
    let p = Producer::new(ProducerConfig::new(ClientConfig::new(&b.addr)))
        .await
        .unwrap();
    for i in 0..n {
        p.send(ProducerRecord::new(topic).value(value(i)))
            .await
            .unwrap();
    }
    p.close().await.unwrap();
    admin
}

fn consumer_cfg(addr: &str, group: Option<&str>) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(ClientConfig::new(addr));
    c.group_id = group.map(str::to_string);
    c.auto_offset_reset = OffsetReset::Earliest;
    c.fetch_max_wait = Duration::from_millis(100);
    c.heartbeat_interval = Duration::from_millis(300);
    c.session_timeout = Duration::from_millis(6000);
    c
}

/// Polls until `n` records came or `secs` passed.
/// A record's value, written as a decimal number.
fn value_num(r: &ConsumerRecord) -> i64 {
    std::str::from_utf8(r.value.as_ref().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

async fn take(c: &Consumer, n: usize, secs: u64) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_read_back_in_every_codec() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("codecs", 3))
        .await
        .unwrap();
    let mut sent = 0usize;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let mut cfg = ProducerConfig::new(ClientConfig::new(&b.addr));
        cfg.compression = Compression::parse(codec).unwrap();
        let p = Producer::new(cfg).await.unwrap();
        let mut futs = Vec::new();
        for i in 0..200 {
            let r = ProducerRecord::new("codecs")
                .key(format!("key-{i}"))
                .value(format!("{codec}-{i}"))
                .header("codec", codec.to_string());
            futs.push((i, p.send(r).await.unwrap()));
        }
        for (i, f) in futs {
            let m = f.await.unwrap();
            // The Java client's placement: murmur2 of the key bytes.
            assert_eq!(
                m.partition,
                partition_for_key(format!("key-{i}").as_bytes(), 3)
            );
            assert!(m.offset >= 0);
        }
        p.close().await.unwrap();
        sent += 200;
    }
    let c = Consumer::new(consumer_cfg(&b.addr, None)).await.unwrap();
    c.assign(&[
        ("codecs".into(), 0),
        ("codecs".into(), 1),
        ("codecs".into(), 2),
    ])
    .unwrap();
    let got = take(&c, sent, 30).await;
    assert_eq!(got.len(), sent);
    let mut per_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &got {
        per_part.entry(r.partition).or_default().push(r.offset);
        let v = String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap();
        let codec = v.split('-').next().unwrap();
        assert_eq!(r.headers[0].key, "codec");
        assert_eq!(r.headers[0].value.as_deref(), Some(codec.as_bytes()));
        let key = String::from_utf8(r.key.as_ref().unwrap().to_vec()).unwrap();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 3));
    }
    for (p, offs) in per_part {
        let want: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(offs, want, "partition {p}: offsets in order, none twice");
    }
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeks_commits_and_the_header_filter() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin.create_topic(&NewTopic::new("seek", 1)).await.unwrap();
    let p = Producer::new(ProducerConfig::new(ClientConfig::new(&b.addr)))
        .await
        .unwrap();
    for i in 0..100i64 {
        let r = ProducerRecord::new("seek")
            .value(format!("v{i}"))
            .timestamp(1_000_000 + i * 10)
            .header("kind", if i % 10 == 0 { "keep" } else { "drop" });
        p.send(r).await.unwrap();
    }
    p.flush().await.unwrap();
    let tp = ("seek".to_string(), 0);
    let mut cfg = consumer_cfg(&b.addr, Some("g-seek"));
    cfg.enable_auto_commit = false;
    cfg.max_poll_records = 30;
    let c = Consumer::new(cfg).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let first = c.poll(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.len(), 30, "max.poll.records caps a poll");
    assert_eq!(first[0].offset, 0);
    assert_eq!(c.positions()[&tp], 30);
    c.commit_sync().await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        30
    );
    c.seek(&tp, Seek::Timestamp(1_000_000 + 555)).unwrap();
    let r = take(&c, 1, 5).await;
    assert_eq!(r[0].offset, 56, "first record at or after the timestamp");
    c.seek(&tp, Seek::End).unwrap();
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(c.positions()[&tp], 100);
    c.seek(&tp, Seek::Offset(95)).unwrap();
    assert_eq!(
        take(&c, 5, 5)
            .await
            .iter()
            .map(|r| r.offset)
            .collect::<Vec<_>>(),
        vec![95, 96, 97, 98, 99]
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    c.commit_async(move |r| {
        let _ = tx.send(r);
    });
    rx.await.unwrap().unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp)).await.unwrap()[&tp],
        100
    );
    c.close().await.unwrap();

    // A new consumer in the group starts from the commit; the header filter keeps 1 in 10.
    let mut cfg = consumer_cfg(&b.addr, Some("g-seek"));
    cfg.header_filter = Some(Arc::new(|h: &[runnel_client::Header]| {
        h.iter()
            .any(|h| h.key == "kind" && h.value.as_deref() == Some(&b"keep"[..]))
    }));
    let c = Consumer::new(cfg).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    c.seek(&tp, Seek::Beginning).unwrap();
    let kept = take(&c, 10, 5).await;
    assert_eq!(
        kept.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..10).map(|i| i * 10).collect::<Vec<i64>>()
    );
    c.close().await.unwrap();
}

async fn group_splits(assignor: AssignorKind) {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin.create_topic(&NewTopic::new("grp", 6)).await.unwrap();
    let p = Producer::new(ProducerConfig::new(ClientConfig::new(&b.addr)))
        .await
        .unwrap();
    for i in 0..600 {
        p.send(ProducerRecord::new("grp").key(format!("k{i}")).value("x"))
            .await
            .unwrap();
    }
    p.flush().await.unwrap();
    let group = format!("g-{}", assignor.name());
    let mk = || {
        let mut cfg = consumer_cfg(&b.addr, Some(&group));
        cfg.assignors = vec![assignor];
        cfg.auto_commit_interval = Duration::from_millis(200);
        cfg
    };
    let c1 = Consumer::new(mk()).await.unwrap();
    c1.subscribe(&["grp"]).unwrap();
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut delivered = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    while c1.assignment().len() < 6 && Instant::now() < deadline {
        for r in c1.poll(Duration::from_millis(100)).await.unwrap() {
            delivered += 1;
            seen.insert((r.partition, r.offset));
        }
    }
    assert_eq!(c1.assignment().len(), 6);
    let c2 = Consumer::new(mk()).await.unwrap();
    c2.subscribe(&["grp"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for c in [&c1, &c2] {
            for r in c.poll(Duration::from_millis(100)).await.unwrap() {
                delivered += 1;
                seen.insert((r.partition, r.offset));
            }
        }
        if c1.assignment().len() == 3 && c2.assignment().len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 3+3 split: {:?} {:?}",
            c1.assignment(),
            c2.assignment()
        );
    }
    let both: BTreeSet<_> = c1.assignment().into_iter().chain(c2.assignment()).collect();
    assert_eq!(both.len(), 6, "every partition once");
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 600 && Instant::now() < deadline {
        for c in [&c1, &c2] {
            for r in c.poll(Duration::from_millis(100)).await.unwrap() {
                delivered += 1;
                seen.insert((r.partition, r.offset));
            }
        }
    }
    assert_eq!(seen.len(), 600, "every record consumed");
    // Positions are committed before partitions are given up, and nothing is handed out
    // after that commit: the new owner starts where the old one stopped.
    assert_eq!(
        delivered, 600,
        "no record delivered twice across the rebalance"
    );
    let desc = admin.describe_group(&group).await.unwrap();
    assert_eq!(desc.state, "Stable");
    assert_eq!(desc.protocol, assignor.name());
    assert_eq!(desc.members.len(), 2);
    c1.close().await.unwrap();
    c2.close().await.unwrap();
    let (_, lag) = admin.group_lag(&group).await.unwrap();
    assert_eq!(lag.len(), 6);
    assert!(lag.iter().all(|r| r.lag == Some(0)), "{lag:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_group_splits_and_commits() {
    group_splits(AssignorKind::Range).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_group_splits_and_commits() {
    group_splits(AssignorKind::CooperativeSticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    let mut t = NewTopic::new("adm", 2);
    t.configs.push(("retention.ms".into(), "3600000".into()));
    admin.create_topic(&t).await.unwrap();
    let e = admin.create_topic(&t).await.unwrap_err();
    assert_eq!(e.code(), Some(36), "{e}");
    assert!(e.to_string().contains("TOPIC_ALREADY_EXISTS"), "{e}");
    assert!(admin
        .list_topics(false)
        .await
        .unwrap()
        .iter()
        .any(|t| t.name == "adm"));
    admin.create_partitions("adm", 4).await.unwrap();
    assert_eq!(
        admin.describe_topic("adm").await.unwrap().partitions.len(),
        4
    );
    let cfgs = admin
        .describe_configs(ConfigResource::Topic, "adm")
        .await
        .unwrap();
    let r = cfgs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(
        (r.value.as_deref(), r.source),
        (Some("3600000"), "DYNAMIC_TOPIC_CONFIG")
    );
    admin
        .alter_configs(
            ConfigResource::Topic,
            "adm",
            &[
                AlterOp::Set("cleanup.policy".into(), "compact".into()),
                AlterOp::Delete("retention.ms".into()),
            ],
        )
        .await
        .unwrap();
    let cfgs = admin
        .describe_configs(ConfigResource::Topic, "adm")
        .await
        .unwrap();
    assert_eq!(
        cfgs.iter()
            .find(|c| c.name == "cleanup.policy")
            .unwrap()
            .value
            .as_deref(),
        Some("compact")
    );
    assert_eq!(
        cfgs.iter()
            .find(|c| c.name == "retention.ms")
            .unwrap()
            .source,
        "DEFAULT_CONFIG"
    );

    let p = Producer::new(ProducerConfig::new(ClientConfig::new(&b.addr)))
        .await
        .unwrap();
    for i in 0..10 {
        p.send(
            ProducerRecord::new("adm")
                .partition(0)
                .key(format!("k{i}"))
                .value("v"),
        )
        .await
        .unwrap();
    }
    p.flush().await.unwrap();
    let low = admin
        .delete_records(&[(("adm".into(), 0), 4)])
        .await
        .unwrap();
    assert_eq!(low[&("adm".to_string(), 0)], 4);

    // Offsets of an empty group: plan, then execute.
    let plan = admin
        .reset_offsets("g-adm", &["adm".into()], ResetTarget::Earliest, false)
        .await
        .unwrap();
    assert_eq!(plan.iter().find(|p| p.tp.1 == 0).unwrap().target, 4);
    assert!(
        admin.committed_offsets("g-adm").await.unwrap().is_empty(),
        "dry run commits nothing"
    );
    admin
        .reset_offsets("g-adm", &["adm".into()], ResetTarget::ShiftBy(3), true)
        .await
        .unwrap();
    let committed = admin.committed_offsets("g-adm").await.unwrap();
    assert_eq!(committed[&("adm".to_string(), 0)].offset, 7);
    assert!(admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == "g-adm"));
    admin.delete_group("g-adm").await.unwrap();
    assert!(!admin
        .list_groups()
        .await
        .unwrap()
        .iter()
        .any(|g| g.group_id == "g-adm"));

    let cl = admin.describe_cluster().await.unwrap();
    assert_eq!(cl.brokers.len(), 1);
    assert_eq!(cl.controller, 1);
    admin.delete_topics(&["adm".into()]).await.unwrap();
    let e = admin.describe_topic("adm").await.unwrap_err();
    assert_eq!(e.code(), Some(3), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_rides_out_a_broker_restart() {
    let mut b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("restart", 2))
        .await
        .unwrap();
    drop(admin);
    let mut cfg = ProducerConfig::new(ClientConfig::new(&b.addr));
    cfg.linger = Duration::from_millis(2);
    cfg.batch_size = 2048;
    let p = Arc::new(Producer::new(cfg).await.unwrap());
    // The sender keeps going until 500 records after the restart, so records are in
    // flight across it however slow the machine is.
    let restarted = Arc::new(AtomicBool::new(false));
    let sender = {
        let p = p.clone();
        let restarted = restarted.clone();
        tokio::spawn(async move {
            let mut futs = Vec::new();
            let mut stop_at = i64::MAX;
            let mut i = 0i64;
            while i < stop_at {
                let r = ProducerRecord::new("restart")
                    .key(format!("k{}", i % 2))
                    .value(format!("{i}"));
                futs.push(p.send(r).await.unwrap());
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                if stop_at == i64::MAX && restarted.load(Ordering::Acquire) {
                    stop_at = (i + 500).max(3000);
                }
                i += 1;
            }
            let mut offsets = Vec::new();
            for f in futs {
                offsets.push(f.await);
            }
            offsets
        })
    };
    // A consumer reads along, and reconnects too.
    let c = Consumer::new(consumer_cfg(&b.addr, None)).await.unwrap();
    c.assign(&[("restart".into(), 0), ("restart".into(), 1)])
        .unwrap();
    let mut got = take(&c, 1, 5).await;
    b.restart(Duration::from_millis(300)).await;
    restarted.store(true, Ordering::Release);
    let results = sender.await.unwrap();
    let total = results.len() as i64;
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    p.close().await.unwrap();
    // Every record exactly once, and in send order within its partition.
    let more = take(&c, total as usize - got.len(), 30).await;
    got.extend(more);
    let mut values: Vec<i64> = got.iter().map(value_num).collect();
    for part in [0, 1] {
        let seq: Vec<i64> = got
            .iter()
            .filter(|r| r.partition == part)
            .map(value_num)
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "partition {part} out of order"
        );
    }
    values.sort();
    assert_eq!(
        values,
        (0..total).collect::<Vec<i64>>(),
        "no loss, no duplicate"
    );
    c.close().await.unwrap();
    // The batches carried the idempotent identity: the broker tracks one producer per
    // partition whose last sequence matches the records it holds.
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    let conn = admin.cluster().any().await.unwrap();
    let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
        .with_name(TopicName(StrBytes::from_static_str("restart")))
        .with_partition_indexes(vec![0, 1])]);
    let resp = conn.send(&req, 0).await.unwrap();
    for p in &resp.topics[0].partitions {
        let held = got
            .iter()
            .filter(|r| r.partition == p.partition_index)
            .count() as i32;
        if held == 0 {
            continue;
        }
        assert_eq!(
            p.active_producers.len(),
            1,
            "partition {}",
            p.partition_index
        );
        let st = &p.active_producers[0];
        assert!(st.producer_id.0 >= 0);
        assert_eq!(
            st.last_sequence + 1,
            held,
            "partition {}",
            p.partition_index
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_reset_none_is_an_error_and_a_commit_wins_over_the_policy() {
    let b = broker().await;
    topic_with(&b, "none", 1, 5, |i| format!("{i}")).await;
    let tp = ("none".to_string(), 0);
    let mut cfg = consumer_cfg(&b.addr, Some("g-none"));
    cfg.auto_offset_reset = OffsetReset::None;
    let c = Consumer::new(cfg.clone()).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match c.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(r) => assert!(r.is_empty() && Instant::now() < deadline, "no error came"),
        }
    };
    assert_eq!(err.code(), Some(1), "{err}");
    c.close().await.unwrap();
    // With a committed offset the policy is not consulted.
    let committer = Consumer::new(consumer_cfg(&b.addr, Some("g-none")))
        .await
        .unwrap();
    committer
        .commit_offsets(&BTreeMap::from([(tp.clone(), 3)]))
        .await
        .unwrap();
    committer.close().await.unwrap();
    let c = Consumer::new(cfg).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    let got = take(&c, 2, 5).await;
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4]);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fetcher_prefetches_into_a_bounded_buffer() {
    let b = broker().await;
    topic_with(&b, "pre", 1, 4000, |i| format!("{i:0100}")).await;
    let mut cfg = consumer_cfg(&b.addr, None);
    cfg.max_partition_fetch_bytes = 8 * 1024;
    cfg.max_poll_records = 10;
    cfg.prefetch_chunks = 4;
    let c = Consumer::new(cfg).await.unwrap();
    c.assign(&[("pre".into(), 0)]).unwrap();
    c.seek(&("pre".into(), 0), Seek::Beginning).unwrap();
    assert_eq!(take(&c, 1, 5).await.len(), 10);
    // While the application "processes", the fetcher fills the buffer up to its bound.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.prefetched() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.prefetched(), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.prefetched(),
        4,
        "bounded: the fetcher waits for the application"
    );
    // A seek drops what was prefetched past the old position.
    c.seek(&("pre".into(), 0), Seek::Offset(3990)).unwrap();
    let rest = take(&c, 10, 5).await;
    assert_eq!(rest.first().map(|r| r.offset), Some(3990));
    assert_eq!(rest.len(), 10);
    // Closing with a full buffer does not wait for the blocked fetcher.
    c.seek(&("pre".into(), 0), Seek::Beginning).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.prefetched() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(c.prefetched(), 4);
    let t = Instant::now();
    c.close().await.unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "close took {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_leader_notices_added_partitions() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin.create_topic(&NewTopic::new("grow", 2)).await.unwrap();
    let mut cfg = consumer_cfg(&b.addr, Some("g-grow"));
    cfg.client.metadata_max_age = Duration::from_millis(500);
    let c = Consumer::new(cfg).await.unwrap();
    c.subscribe(&["grow"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().len() < 2 && Instant::now() < deadline {
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.assignment().len(), 2);
    admin.create_partitions("grow", 5).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().len() < 5 && Instant::now() < deadline {
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.assignment().len(), 5, "the new partitions are assigned");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_auto_commit_on_its_interval() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin.create_topic(&NewTopic::new("fire", 1)).await.unwrap();
    let mut cfg = ProducerConfig::new(ClientConfig::new(&b.addr));
    cfg.acks = 0;
    let p = Producer::new(cfg).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..50 {
        futs.push(
            p.send(ProducerRecord::new("fire").value(format!("{i}")))
                .await
                .unwrap(),
        );
    }
    for f in futs {
        // No answer with acks=0: delivered to the socket, offset unknown.
        assert_eq!(f.await.unwrap().offset, -1);
    }
    p.close().await.unwrap();
    let tp = ("fire".to_string(), 0);
    let mut cfg = consumer_cfg(&b.addr, Some("g-auto"));
    cfg.auto_commit_interval = Duration::from_millis(300);
    let c = Consumer::new(cfg).await.unwrap();
    c.assign(std::slice::from_ref(&tp)).unwrap();
    assert_eq!(take(&c, 50, 10).await.len(), 50, "acks=0 records arrive");
    // Keep polling past the interval: the position is committed without an explicit commit.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut committed = None;
    while Instant::now() < deadline {
        c.poll(Duration::from_millis(100)).await.unwrap();
        committed = admin
            .committed_offsets("g-auto")
            .await
            .unwrap()
            .get(&tp)
            .map(|c| c.offset);
        if committed == Some(50) {
            break;
        }
    }
    assert_eq!(committed, Some(50));
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_polling_leaves_its_partitions_to_the_others() {
    let b = broker().await;
    let admin = Admin::new(ClientConfig::new(&b.addr)).await.unwrap();
    admin.create_topic(&NewTopic::new("slow", 4)).await.unwrap();
    let mk = || {
        let mut cfg = consumer_cfg(&b.addr, Some("g-slow"));
        cfg.max_poll_interval = Duration::from_millis(1500);
        cfg
    };
    let slow = Consumer::new(mk()).await.unwrap();
    slow.subscribe(&["slow"]).unwrap();
    let busy = Consumer::new(mk()).await.unwrap();
    busy.subscribe(&["slow"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(slow.assignment().len() == 2 && busy.assignment().len() == 2) {
        assert!(Instant::now() < deadline, "no 2+2 split");
        slow.poll(Duration::from_millis(50)).await.unwrap();
        busy.poll(Duration::from_millis(50)).await.unwrap();
    }
    // `slow` stops polling: past max.poll.interval.ms it leaves, and `busy` gets all four.
    let stopped = Instant::now();
    while busy.assignment().len() < 4 {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "busy never got all partitions"
        );
        busy.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert!(
        stopped.elapsed() >= Duration::from_millis(1400),
        "left too early"
    );
    assert!(slow.assignment().is_empty());
    // Its next poll brings it back: 2+2 again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(slow.assignment().len() == 2 && busy.assignment().len() == 2) {
        assert!(Instant::now() < deadline, "slow did not rejoin");
        slow.poll(Duration::from_millis(50)).await.unwrap();
        busy.poll(Duration::from_millis(50)).await.unwrap();
    }
    slow.close().await.unwrap();
    busy.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_stick_to_a_partition_per_batch_and_bootstrap_skips_dead_addresses() {
    let b = broker().await;
    // The first bootstrap address refuses connections; the second answers.
    let boot = format!("127.0.0.1:1,{}", b.addr);
    let admin = Admin::new(ClientConfig::new(&boot)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("sticky", 3))
        .await
        .unwrap();
    let mut cfg = ProducerConfig::new(ClientConfig::new(&boot));
    cfg.batch_size = 4096;
    cfg.linger = Duration::from_millis(50);
    let p = Producer::new(cfg).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..3000 {
        futs.push(
            p.send(ProducerRecord::new("sticky").value(format!("{i:040}")))
                .await
                .unwrap(),
        );
    }
    let mut parts = Vec::new();
    for f in futs {
        parts.push(f.await.unwrap().partition);
    }
    p.close().await.unwrap();
    let mut per = [0usize; 3];
    for p in &parts {
        per[*p as usize] += 1;
    }
    assert!(
        per.iter().all(|n| *n > 0),
        "keyless records spread over every partition: {per:?}"
    );
    // Sticky: the partition changes once per batch (~60 records of ~61 B in 4 KiB), not per record.
    let switches = parts.windows(2).filter(|w| w[0] != w[1]).count();
    assert!(
        switches < 3000 / 20,
        "{switches} partition switches for 3000 records"
    );
}

/// A stand-in for a broker that has lost leadership: node 2, in front of the real broker
/// (node 1). It lists itself in Metadata answers and, while `stale`, claims to lead every
/// partition. It leads nothing: every Produce or Fetch it gets is refused with `refuse_with`
/// for every partition, and the first refusal ends the stale phase (Metadata then shows the
/// real leader). A client that does not refresh its metadata keeps being refused. Other
/// requests are forwarded. Counts the refusals.
struct StaleLeader {
    addr: String,
    stale: Arc<AtomicBool>,
    refuse_with: Arc<std::sync::atomic::AtomicI16>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
}

mod stale_leader {
    use super::*;
    use bytes::{Buf, Bytes, BytesMut};
    use runnel_client::kafka_protocol::messages::fetch_response::{
        FetchableTopicResponse, PartitionData,
    };
    use runnel_client::kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use runnel_client::kafka_protocol::messages::produce_response::{
        PartitionProduceResponse, TopicProduceResponse,
    };
    use runnel_client::kafka_protocol::messages::{
        ApiKey, BrokerId, FetchRequest, FetchResponse, MetadataResponse, ProduceRequest,
        ProduceResponse, ResponseKind,
    };
    use runnel_client::kafka_protocol::protocol::Decodable;
    use runnel_protocol::frame::{
        encode_response_kind, parse_request_head, peek_prefix, request_header_version,
    };
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn read_frame(s: &mut TcpStream) -> std::io::Result<Bytes> {
        let n = s.read_i32().await? as usize;
        let mut b = BytesMut::zeroed(n);
        s.read_exact(&mut b).await?;
        Ok(b.freeze())
    }

    async fn write_frame(s: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
        s.write_i32(body.len() as i32).await?;
        s.write_all(body).await
    }

    impl StaleLeader {
        pub(super) async fn start(real: &str) -> StaleLeader {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let me = StaleLeader {
                addr: l.local_addr().unwrap().to_string(),
                stale: Arc::new(AtomicBool::new(false)),
                refuse_with: Arc::new(6.into()),
                refused: Arc::new(0.into()),
            };
            let (real, port) = (real.to_string(), l.local_addr().unwrap().port());
            let (stale, code, refused) =
                (me.stale.clone(), me.refuse_with.clone(), me.refused.clone());
            tokio::spawn(async move {
                while let Ok((down, _)) = l.accept().await {
                    let up = TcpStream::connect(&real).await.unwrap();
                    let st = (stale.clone(), code.clone(), refused.clone());
                    tokio::spawn(async move {
                        let _ = serve(down, up, port, st).await;
                    });
                }
            });
            me
        }
    }

    type Flags = (
        Arc<AtomicBool>,
        Arc<std::sync::atomic::AtomicI16>,
        Arc<std::sync::atomic::AtomicUsize>,
    );

    async fn serve(
        mut down: TcpStream,
        mut up: TcpStream,
        port: u16,
        (stale, code, refused): Flags,
    ) -> anyhow::Result<()> {
        loop {
            let frame = read_frame(&mut down).await?;
            let (key, version, corr) = peek_prefix(&frame)?;
            let api = ApiKey::try_from(key).map_err(|_| anyhow::anyhow!("api {key}"))?;
            if matches!(api, ApiKey::Produce | ApiKey::Fetch) {
                let head = parse_request_head(&frame, request_header_version(api, version))?;
                let mut body = frame.slice(head.header_len..);
                let err = code.load(Ordering::Acquire);
                let resp = if api == ApiKey::Produce {
                    let req = ProduceRequest::decode(&mut body, version)?;
                    ResponseKind::Produce(
                        ProduceResponse::default().with_responses(
                            req.topic_data
                                .into_iter()
                                .map(|t| {
                                    TopicProduceResponse::default()
                                        .with_name(t.name)
                                        .with_topic_id(t.topic_id)
                                        .with_partition_responses(
                                            t.partition_data
                                                .iter()
                                                .map(|p| {
                                                    PartitionProduceResponse::default()
                                                        .with_index(p.index)
                                                        .with_error_code(err)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    )
                } else {
                    let req = FetchRequest::decode(&mut body, version)?;
                    ResponseKind::Fetch(
                        FetchResponse::default().with_responses(
                            req.topics
                                .into_iter()
                                .map(|t| {
                                    FetchableTopicResponse::default()
                                        .with_topic(t.topic)
                                        .with_topic_id(t.topic_id)
                                        .with_partitions(
                                            t.partitions
                                                .iter()
                                                .map(|p| {
                                                    PartitionData::default()
                                                        .with_partition_index(p.partition)
                                                        .with_error_code(err)
                                                        .with_high_watermark(-1)
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        ),
                    )
                };
                stale.store(false, Ordering::Release);
                refused.fetch_add(1, Ordering::AcqRel);
                down.write_all(&encode_response_kind(api, version, corr, &resp)?)
                    .await?;
                continue;
            }
            write_frame(&mut up, &frame).await?;
            let answer = read_frame(&mut up).await?;
            if api != ApiKey::Metadata {
                write_frame(&mut down, &answer).await?;
                continue;
            }
            // Response header: correlation id, then tagged fields from header v1.
            let mut body = answer.clone();
            body.advance(4);
            if api.response_header_version(version) >= 1 {
                body.advance(1);
            }
            let mut m = MetadataResponse::decode(&mut body, version)?;
            m.brokers.push(
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(2))
                    .with_host("127.0.0.1".into())
                    .with_port(port as i32),
            );
            if stale.load(Ordering::Acquire) {
                for t in &mut m.topics {
                    for p in &mut t.partitions {
                        p.leader_id = BrokerId(2);
                    }
                }
            }
            let out = encode_response_kind(api, version, corr, &ResponseKind::Metadata(m))?;
            down.write_all(&out).await?;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_leader_is_found_again_after_not_leader_and_unknown_partition() {
    let b = broker().await;
    let fake = StaleLeader::start(&b.addr).await;
    // The clients know only the stand-in's address.
    let admin = Admin::new(ClientConfig::new(&fake.addr)).await.unwrap();
    admin
        .create_topic(&NewTopic::new("moved", 2))
        .await
        .unwrap();

    // Produce: the partitions' leader looks like node 2 until it answers NOT_LEADER_OR_FOLLOWER.
    fake.refuse_with.store(6, Ordering::Release);
    fake.stale.store(true, Ordering::Release);
    let mut cfg = ProducerConfig::new(ClientConfig::new(&fake.addr));
    cfg.delivery_timeout = Duration::from_secs(15);
    let p = Producer::new(cfg).await.unwrap();
    let mut futs = Vec::new();
    for i in 0..20 {
        let r = ProducerRecord::new("moved")
            .partition(i % 2)
            .value(format!("{i}"));
        futs.push(p.send(r).await.unwrap());
    }
    for f in futs {
        f.await.expect("delivered after the metadata refresh");
    }
    p.close().await.unwrap();
    // One Produce per partition at most went to the stale leader: then the metadata was
    // looked up again.
    let produce_refused = fake.refused.load(Ordering::Acquire);
    assert!((1..=2).contains(&produce_refused), "{produce_refused}");

    // Fetch: the same with UNKNOWN_TOPIC_OR_PARTITION.
    fake.refuse_with.store(3, Ordering::Release);
    fake.stale.store(true, Ordering::Release);
    let c = Consumer::new(consumer_cfg(&fake.addr, None)).await.unwrap();
    c.assign(&[("moved".into(), 0), ("moved".into(), 1)])
        .unwrap();
    c.seek(&("moved".into(), 0), Seek::Beginning).unwrap();
    c.seek(&("moved".into(), 1), Seek::Beginning).unwrap();
    let got = take(&c, 20, 15).await;
    let fetch_refused = fake.refused.load(Ordering::Acquire) - produce_refused;
    assert!((1..=2).contains(&fetch_refused), "{fetch_refused}");
    let mut values: Vec<i64> = got.iter().map(value_num).collect();
    values.sort();
    assert_eq!(values, (0..20).collect::<Vec<_>>());
    c.close().await.unwrap();
}
