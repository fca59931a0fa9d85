//! Tests of the log cleaner: the offset map, the cleanable range, the record rules (keys,
//! tombstones and their delete horizon, transactions, idempotent producers, codecs), a seeded
//! property test over random logs, and a crash injected at every file operation of a cleaning.

use std::collections::BTreeMap;

use super::*;
use crate::batch::{check_batch, BatchHeader};
use crate::log::LogConfig;
use crate::testing::Rng;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 64,
        ..LogConfig::default()
    }
}

/// A record as a test writes and reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// A record's key and value (None: null).
type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A batch of records (key, value, header value) with timestamps `ts`, `ts + 1`, ….
#[allow(clippy::too_many_arguments)]
fn make_batch(
    records: &[KeyValue<'_>],
    ts: i64,
    pid: i64,
    epoch: i16,
    seq: i32,
    codec: u8,
    transactional: bool,
) -> Vec<u8> {
    let mut body = BytesMut::new();
    for (i, (k, v)) in records.iter().enumerate() {
        let headers: Vec<(&[u8], Option<&[u8]>)> = if i % 2 == 0 {
            vec![(&b"h"[..], Some(&b"x"[..])), (&b"h"[..], None)]
        } else {
            vec![]
        };
        put_record(&mut body, i as i64, i as i64, *k, *v, &headers);
    }
    let n = records.len() as i32;
    let mut attributes = codec as i16;
    if transactional {
        attributes |= ATTR_TRANSACTIONAL;
    }
    let mut out = BytesMut::new();
    BatchHeader {
        attributes,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..BatchHeader::new(n, ts, ts + n as i64 - 1)
    }
    .put(&mut out);
    compress(codec, &body, &mut out).unwrap();
    let mut b = out.to_vec();
    finish_batch(&mut b);
    b
}

/// Appends `records` as one plain batch.
fn append(log: &mut Log, records: &[(&str, Option<&str>)], ts: i64, codec: u8) -> i64 {
    let recs: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let mut b = make_batch(&recs, ts, -1, -1, -1, codec, false);
    log.append_as_leader(&mut b, 0, ts, false)
        .unwrap()
        .first_offset
}

/// Every batch of the log, checked (CRC, ascending offsets), with its records.
fn batches(log: &Log) -> Vec<(BatchHeader, Vec<Rec>)> {
    let res = log
        .read(log.log_start_offset(), 1 << 40, log.log_end_offset())
        .unwrap();
    let bytes = res.records;
    let mut out = Vec::new();
    let mut pos = 0;
    let mut next = i64::MIN;
    while pos < bytes.len() {
        let h = check_batch(&bytes[pos..]).unwrap();
        assert!(h.base_offset >= next, "batch offsets ascend");
        next = h.next_offset();
        let b = &bytes[pos..pos + h.size_bytes()];
        let (body, views) = decode_records(&h, b).unwrap();
        let mut last = i64::MIN;
        let recs = views
            .iter()
            .map(|r| {
                let offset = h.base_offset + r.offset_delta;
                assert!(
                    offset > last && offset <= h.last_offset(),
                    "record offsets ascend inside the batch"
                );
                last = offset;
                Rec {
                    offset,
                    timestamp: h.base_timestamp + r.timestamp_delta,
                    key: r.key.clone().map(|k| body[k].to_vec()),
                    value: r.value.clone().map(|v| body[v].to_vec()),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (
                                body[k.clone()].to_vec(),
                                v.clone().map(|v| body[v].to_vec()),
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        out.push((h, recs));
        pos += h.size_bytes();
    }
    out
}

/// The data records a read_committed consumer sees.
fn read_committed(log: &Log) -> Vec<Rec> {
    let aborted = log.aborted_txn_entries().to_vec();
    batches(log)
        .into_iter()
        .filter(|(h, _)| !h.is_control())
        .filter(|(h, _)| {
            !h.is_transactional()
                || !aborted.iter().any(|a| {
                    a.producer_id == h.producer_id
                        && a.first_offset <= h.base_offset
                        && h.base_offset <= a.last_offset
                })
        })
        .flat_map(|(_, r)| r)
        .collect()
}

fn options(now_ms: i64) -> CleanOptions {
    CleanOptions {
        delete_retention_ms: 1000,
        now_ms,
    }
}

/// One full cleaning round from `checkpoint`; returns the new checkpoint.
fn round(log: &mut Log, map: &mut OffsetMap, checkpoint: Option<i64>, now_ms: i64) -> i64 {
    let lso = log.last_stable_offset();
    let range = cleanable_range(log, checkpoint, lso, 0, now_ms);
    clean(log, map, &range, options(now_ms)).unwrap().end_offset
}

fn latest_by_key(recs: &[Rec]) -> BTreeMap<Vec<u8>, Rec> {
    let mut m = BTreeMap::new();
    for r in recs {
        m.insert(r.key.clone().unwrap(), r.clone());
    }
    m
}

#[test]
fn offset_map_sized_for_a_range_takes_what_it_needs_within_the_buffer() {
    // 1000 offsets at load factor 0.5: 2000 slots and 2 spare, every key fits.
    let mut m = OffsetMap::sized_for(1000, 128 << 20, 0.5);
    assert_eq!(m.slots(), 2002);
    assert!((0..1000).all(|i| m.put(format!("k{i}").as_bytes(), i)));
    // A huge range gets the whole buffer and no more.
    let m = OffsetMap::sized_for(u64::MAX / 2, 24 * 1000, 0.5);
    assert_eq!(m.slots(), 1000);
    // An empty range still gets a usable map.
    let mut m = OffsetMap::sized_for(0, 128 << 20, DEFAULT_LOAD_FACTOR);
    assert!(m.put(b"k", 0));
}

#[test]
fn offset_map_keeps_the_latest_offset_within_its_memory() {
    let mut m = OffsetMap::new(24 * 10, 0.5);
    assert_eq!((m.slots(), m.len()), (10, 0));
    for i in 0..5 {
        assert!(m.put(format!("k{i}").as_bytes(), i));
    }
    assert!(!m.put(b"k9", 9), "full at the load factor");
    assert!(m.put(b"k1", 50), "a known key is updated when full");
    assert_eq!(
        (m.get(b"k1"), m.get(b"k4"), m.get(b"k9")),
        (Some(50), Some(4), None)
    );
    assert_eq!(m.utilization(), 1.0);
    m.update_latest_offset(7);
    m.update_latest_offset(3);
    assert_eq!(m.latest_offset(), 7);
    m.clear();
    assert!(m.is_empty() && m.get(b"k1").is_none() && m.latest_offset() == -1);
    // Many keys in a large map.
    let mut m = OffsetMap::new(24 * 100_000, DEFAULT_LOAD_FACTOR);
    for i in 0..80_000i64 {
        assert!(m.put(&i.to_be_bytes(), i));
    }
    assert!((0..80_000i64).all(|i| m.get(&i.to_be_bytes()) == Some(i)));
}

#[test]
fn cleaner_checkpoint_round_trips_and_may_be_missing() {
    let d = tempfile::tempdir().unwrap();
    assert!(read_cleaner_checkpoint(d.path()).unwrap().is_empty());
    let mut e = HashMap::new();
    e.insert(("__consumer_offsets".to_string(), 7), 1234);
    e.insert(("t".to_string(), 0), 0);
    write_cleaner_checkpoint(d.path(), &e).unwrap();
    assert_eq!(read_cleaner_checkpoint(d.path()).unwrap(), e);
    let text = std::fs::read_to_string(d.path().join(CLEANER_CHECKPOINT_FILE)).unwrap();
    assert_eq!(text, "0\n2\n__consumer_offsets 7 1234\nt 0 0\n");
}

#[test]
fn cleanable_range_stops_at_the_active_segment_the_stable_offset_and_the_lag() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), config(300), 0, true).unwrap();
    for i in 0..30 {
        append(&mut log, &[("k", Some("0123456789"))], 1000 + i * 100, 0);
    }
    let views = log.segment_views();
    assert!(views.len() >= 4);
    let active = views.last().unwrap().base_offset;
    let leo = log.log_end_offset();
    let r = cleanable_range(&log, None, leo, 0, 10_000);
    assert_eq!(
        (r.first_dirty_offset, r.first_uncleanable_offset),
        (0, active)
    );
    assert_eq!(r.clean_bytes, 0);
    assert_eq!(r.dirty_ratio(), 1.0);
    // The stable offset inside a segment: back to that segment's base.
    let r = cleanable_range(&log, None, views[2].base_offset + 1, 0, 10_000);
    assert_eq!(r.first_uncleanable_offset, views[2].base_offset);
    // The compaction lag: segments with records newer than now - lag are not cleanable.
    let lag_from = views[1].max_timestamp;
    let r = cleanable_range(&log, None, leo, 10_000 + 1000 - lag_from + 1, 11_000);
    assert_eq!(r.first_uncleanable_offset, views[1].base_offset);
    // From a checkpoint: the bytes before it are clean.
    let r = cleanable_range(&log, Some(views[2].base_offset), leo, 0, 10_000);
    assert_eq!(r.first_dirty_offset, views[2].base_offset);
    assert_eq!(r.clean_bytes, views[0].size + views[1].size);
    assert!(r.dirty_ratio() > 0.0 && r.dirty_ratio() < 1.0);
    assert!(!r.reset_checkpoint);
    // A checkpoint past the log end starts over.
    let r = cleanable_range(&log, Some(leo + 5), leo, 0, 10_000);
    assert!(r.reset_checkpoint && r.first_dirty_offset == 0);
    // max.compaction.lag.ms: the oldest dirty segment's first timestamp.
    assert_eq!(max_compaction_delay_ms(&log, 0, 500, 2000), 500);
    assert_eq!(max_compaction_delay_ms(&log, 0, 5000, 2000), 0);
}

#[test]
fn compaction_keeps_the_latest_record_of_each_key_at_its_offset_with_every_codec() {
    for codec in 0..=4u8 {
        let d = tempfile::tempdir().unwrap();
        let mut log = Log::open(d.path(), config(500), 0, true).unwrap();
        for i in 0..60i64 {
            let key = format!("key-{}", i % 7);
            let value = format!("value-{i}");
            let second = format!("key-{}", (i + 3) % 7);
            append(
                &mut log,
                &[
                    (key.as_str(), Some(value.as_str())),
                    (second.as_str(), Some("x")),
                ],
                1000 + i,
                codec,
            );
        }
        let before = read_committed(&log);
        let mut map = OffsetMap::new(1 << 20, DEFAULT_LOAD_FACTOR);
        let end = round(&mut log, &mut map, None, 5000);
        let active = log.segment_views().last().unwrap().base_offset;
        assert_eq!(end, active);
        let after = read_committed(&log);
        assert!(after.len() < before.len());
        // Every record kept is one that was written, at its offset.
        for r in &after {
            assert!(before.contains(r), "{r:?} was written");
        }
        // Below the end: one record per key, the latest below the end.
        let below: Vec<&Rec> = after.iter().filter(|r| r.offset < end).collect();
        let expected = latest_by_key(
            &before
                .iter()
                .filter(|r| r.offset < end)
                .cloned()
                .collect::<Vec<_>>(),
        );
        assert_eq!(below.len(), expected.len(), "codec {codec}");
        for r in below {
            assert_eq!(expected[r.key.as_ref().unwrap()], *r);
        }
        // The rest is untouched; batches keep their codec.
        assert!(before
            .iter()
            .filter(|r| r.offset >= end)
            .all(|r| after.contains(r)));
        assert!(batches(&log)
            .iter()
            .all(|(h, r)| r.is_empty() || h.compression() == codec));
        // The same after a reopen (indexes rebuilt or loaded).
        log.close().unwrap();
        let log = Log::open(d.path(), config(500), 0, false).unwrap();
        assert_eq!(read_committed(&log), after);
        assert_eq!(
            log.read(end - 1, 1, i64::MAX)
                .unwrap()
                .first_batch_base_offset
                .map(|o| o < end),
            Some(true)
        );
    }
}

#[test]
fn tombstones_get_a_delete_horizon_and_go_after_delete_retention() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), config(400), 0, true).unwrap();
    append(&mut log, &[("a", Some("1")), ("b", Some("1"))], 1000, 0);
    append(&mut log, &[("a", None)], 1001, 0);
    for i in 0..20 {
        append(
            &mut log,
            &[("c", Some("filler-filler-filler"))],
            1002 + i,
            0,
        );
    }
    let mut map = OffsetMap::new(1 << 16, DEFAULT_LOAD_FACTOR);
    let cp = round(&mut log, &mut map, None, 10_000);
    let recs = read_committed(&log);
    let tomb = recs
        .iter()
        .find(|r| r.key.as_deref() == Some(b"a"))
        .unwrap();
    assert_eq!(
        (tomb.offset, tomb.value.clone()),
        (2, None),
        "kept, the old value gone"
    );
    let (h, _) = batches(&log)
        .into_iter()
        .find(|(h, _)| h.base_offset == 2)
        .unwrap();
    assert!(h.attributes & ATTR_DELETE_HORIZON != 0);
    assert_eq!(h.base_timestamp, 11_000, "now + delete.retention.ms");
    // Cleaned again before the horizon: still there; after it: gone (b stays).
    for i in 0..20 {
        append(
            &mut log,
            &[("c", Some("filler-filler-filler"))],
            2000 + i,
            0,
        );
    }
    let cp = round(&mut log, &mut map, Some(cp), 10_999);
    assert!(read_committed(&log)
        .iter()
        .any(|r| r.key.as_deref() == Some(b"a")));
    for i in 0..20 {
        append(
            &mut log,
            &[("c", Some("filler-filler-filler"))],
            3000 + i,
            0,
        );
    }
    round(&mut log, &mut map, Some(cp), 11_000);
    let recs = read_committed(&log);
    assert!(!recs.iter().any(|r| r.key.as_deref() == Some(b"a")));
    assert!(recs
        .iter()
        .any(|r| r.key.as_deref() == Some(b"b") && r.offset == 1));
}

#[test]
fn aborted_transactions_go_and_their_markers_after_the_horizon() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), config(4000), 0, true).unwrap();
    let k = |s: &'static str| (Some(s.as_bytes()), Some(&b"v"[..]));
    // Producer 7 aborts, producer 8 commits, producer 9 (idempotent) writes twice.
    log.append_as_leader(
        &mut make_batch(&[k("a"), k("b")], 1000, 7, 0, 0, 0, true),
        0,
        1000,
        false,
    )
    .unwrap();
    log.append_as_leader(
        &mut make_batch(&[k("c")], 1000, 8, 0, 0, 0, true),
        0,
        1000,
        false,
    )
    .unwrap();
    let abort_at = log.append_marker(7, 0, false, 1, 0, 1000).unwrap();
    let commit_at = log.append_marker(8, 0, true, 1, 0, 1000).unwrap();
    log.append_as_leader(
        &mut make_batch(&[k("d")], 1000, 9, 0, 0, 0, false),
        0,
        1000,
        false,
    )
    .unwrap();
    log.append_as_leader(
        &mut make_batch(&[k("d")], 1000, 9, 0, 1, 0, false),
        0,
        1000,
        false,
    )
    .unwrap();
    // Later records of c and d supersede the committed and idempotent ones.
    for i in 0..100 {
        append(
            &mut log,
            &[("c", Some("later")), ("d", Some("later"))],
            2000 + i,
            0,
        );
    }
    assert_eq!(log.aborted_txns(0, 100), vec![(7, 0)]);
    let producers_before = producer_view(&log);
    let mut map = OffsetMap::new(1 << 16, DEFAULT_LOAD_FACTOR);
    let mut cp = round(&mut log, &mut map, None, 5000);
    let offsets = |log: &Log| -> Vec<(i64, bool, i32)> {
        batches(log)
            .iter()
            .filter(|(h, _)| h.base_offset <= commit_at + 2)
            .map(|(h, r)| (h.base_offset, h.is_control(), r.len() as i32))
            .collect()
    };
    // The aborted batch is emptied but kept (the last data of producer 7), as are the batches
    // of producer 8 and 9's latest; the abort marker stays (a batch of its transaction was met)
    // and so does the commit marker.
    assert_eq!(
        offsets(&log),
        vec![
            (0, false, 0),
            (2, false, 0),
            (abort_at, true, 1),
            (commit_at, true, 1),
            (commit_at + 2, false, 0)
        ]
    );
    assert_eq!(
        log.aborted_txns(0, 100),
        vec![(7, 0)],
        "kept in the cleaned .txnindex"
    );
    // Producer state survives a replay of the cleaned log (snapshots deleted).
    log.close().unwrap();
    for (_, p) in crate::producer::list_snapshots(d.path()).unwrap() {
        std::fs::remove_file(p).unwrap();
    }
    let mut log = Log::open(d.path(), config(4000), 0, true).unwrap();
    assert_eq!(producer_view(&log), producers_before);
    assert_eq!(log.aborted_txns(0, 100), vec![(7, 0)]);
    // Producer 7 writes again: its aborted batch goes, then its marker gets a horizon (7500)
    // and goes once it passed. Producer 8's emptied batch stays (its last), so its commit
    // marker stays.
    log.append_as_leader(
        &mut make_batch(&[k("z")], 5000, 7, 0, 2, 0, true),
        0,
        5000,
        false,
    )
    .unwrap();
    log.append_marker(7, 0, true, 1, 0, 5000).unwrap();
    let mut seen = Vec::new();
    for now in [5500, 6500, 7000, 7500] {
        for i in 0..60 {
            append(&mut log, &[("e", Some("filler-filler"))], now + i, 0);
        }
        cp = round(&mut log, &mut map, Some(cp), now);
        seen.push(offsets(&log));
    }
    assert_eq!(
        seen,
        vec![
            vec![
                (2, false, 0),
                (abort_at, true, 1),
                (commit_at, true, 1),
                (commit_at + 2, false, 0)
            ],
            vec![
                (2, false, 0),
                (abort_at, true, 1),
                (commit_at, true, 1),
                (commit_at + 2, false, 0)
            ],
            vec![
                (2, false, 0),
                (abort_at, true, 1),
                (commit_at, true, 1),
                (commit_at + 2, false, 0)
            ],
            vec![
                (2, false, 0),
                (commit_at, true, 1),
                (commit_at + 2, false, 0)
            ],
        ]
    );
}

/// The producer state that replaying a cleaned log must give back: id, epoch, last sequence
/// and open transaction (timestamps and coordinator epochs may come from batches and markers a
/// cleaning removed).
fn producer_view(log: &Log) -> Vec<(i64, i16, i32, Option<i64>)> {
    log.producers()
        .into_iter()
        .map(|p| (p.producer_id, p.epoch, p.last_sequence, p.txn_first_offset))
        .collect()
}

#[test]
fn a_full_offset_map_cleans_up_to_where_it_got() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), config(300), 0, true).unwrap();
    for i in 0..120i64 {
        let key = format!("k{}", i % 40);
        append(&mut log, &[(key.as_str(), Some("v"))], 1000 + i, 0);
    }
    let active = log.segment_views().last().unwrap().base_offset;
    let before = read_committed(&log);
    // Room for 10 keys: each round maps about 10 keys and cleans up to there.
    let mut map = OffsetMap::new(24 * 12, 0.9);
    let mut cp = None;
    let mut ends = Vec::new();
    for round_no in 0..100 {
        let end = round(&mut log, &mut map, cp, 5000 + round_no);
        ends.push(end);
        cp = Some(end);
        if end == active {
            break;
        }
    }
    assert!(ends.len() > 3, "several rounds: {ends:?}");
    assert!(ends.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*ends.last().unwrap(), active);
    let after = read_committed(&log);
    let expected = latest_by_key(
        &before
            .iter()
            .filter(|r| r.offset < active)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let below: Vec<&Rec> = after.iter().filter(|r| r.offset < active).collect();
    assert_eq!(below.len(), expected.len());
    assert!(below
        .iter()
        .all(|r| expected[r.key.as_ref().unwrap()] == **r));
}

#[test]
fn a_cleaning_is_abandoned_when_the_log_is_truncated_meanwhile() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), config(300), 0, true).unwrap();
    for i in 0..40i64 {
        append(&mut log, &[("k", Some("some value"))], 1000 + i, 0);
    }
    let range = cleanable_range(&log, None, log.log_end_offset(), 0, 5000);
    let mut map = OffsetMap::new(1 << 16, 0.9);
    let cleaned = plan(&log, &range, options(5000)).execute(&mut map).unwrap();
    assert!(leftovers(d.path()) > 0, ".cleaned files written");
    let before = read_committed(&log);
    log.truncate_to(5).unwrap();
    let stats = cleaned.commit(&mut log).unwrap();
    assert_eq!((stats.groups_swapped, stats.end_offset), (0, 0));
    assert!(stats.groups_abandoned > 0);
    assert_eq!(leftovers(d.path()), 0);
    assert_eq!(read_committed(&log), before[..5].to_vec());
}

/// `.cleaned` and `.swap` files in a directory.
fn leftovers(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            let n = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            n.ends_with(".cleaned") || n.ends_with(".swap")
        })
        .count()
}

/// What the property test knows of a record it wrote.
#[derive(Debug, Clone)]
struct Written {
    rec: Rec,
    /// None: in an open transaction; Some(true): visible; Some(false): aborted.
    visible: Option<bool>,
    producer: i64,
    /// The clock of the first cleaning after it was written.
    first_clean_ms: Option<i64>,
    /// The clock of the first cleaning that ended past it (its batch was rewritten then, a
    /// tombstone given its delete horizon).
    below_end_ms: Option<i64>,
}

/// Random keyed records, tombstones, transactions committed and aborted and idempotent
/// producers, cleaned in rounds with small offset maps; after each round the log must hold
/// only records that were written, at their offsets, every key's latest one (a tombstone only
/// goes after delete.retention.ms, and does once that passed), one record per key below the
/// checkpoint, everything past it, and the same producer state when replayed without snapshots.
#[test]
fn property_random_logs_clean_to_the_latest_value_of_every_key() {
    for seed in 0..24u64 {
        property_run(seed);
    }
}

fn property_run(seed: u64) {
    let mut rng = Rng(seed);
    let d = tempfile::tempdir().unwrap();
    let cfg = config(300 + rng.below(600));
    let mut log = Log::open(d.path(), cfg.clone(), 0, true).unwrap();
    let mut written: Vec<Written> = Vec::new();
    let mut now = 1000i64;
    let mut seqs: HashMap<i64, i32> = HashMap::new();
    let mut open_txn: HashMap<i64, bool> = HashMap::new();
    let mut cp: Option<i64> = None;
    let mut map = OffsetMap::new(24 * (4 + rng.below(60) as usize), 0.9);
    let keys = 3 + rng.below(12);
    for step in 0..300 {
        now += rng.below(50) as i64;
        let op = rng.below(100);
        if op < 70 {
            // A batch: plain, idempotent (producers 1, 2) or transactional (10, 11).
            let (pid, txn) = match rng.below(6) {
                0..=2 => (-1, false),
                3 => (1 + rng.below(2) as i64, false),
                _ => (10 + rng.below(2) as i64, true),
            };
            let n = 1 + rng.below(4) as usize;
            let recs: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..n)
                .map(|i| {
                    let k = format!("key-{}", rng.below(keys)).into_bytes();
                    let v = (!rng.chance(15)).then(|| format!("v{step}-{i}").into_bytes());
                    (k, v)
                })
                .collect();
            let refs: Vec<KeyValue<'_>> = recs
                .iter()
                .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
                .collect();
            let seq = if pid >= 0 {
                *seqs.entry(pid).or_insert(0)
            } else {
                -1
            };
            let codec = rng.below(5) as u8;
            let epoch = if pid >= 0 { 0 } else { -1 };
            let mut b = make_batch(&refs, now, pid, epoch, seq, codec, txn);
            let first = log
                .append_as_leader(&mut b, 0, now, false)
                .unwrap()
                .first_offset;
            if pid >= 0 {
                seqs.insert(pid, seq + n as i32);
            }
            if txn {
                open_txn.insert(pid, true);
            }
            for (i, (k, v)) in recs.into_iter().enumerate() {
                let headers = if i % 2 == 0 {
                    vec![(b"h".to_vec(), Some(b"x".to_vec())), (b"h".to_vec(), None)]
                } else {
                    vec![]
                };
                written.push(Written {
                    rec: Rec {
                        offset: first + i as i64,
                        timestamp: now + i as i64,
                        key: Some(k),
                        value: v,
                        headers,
                    },
                    visible: if txn { None } else { Some(true) },
                    producer: pid,
                    first_clean_ms: None,
                    below_end_ms: None,
                });
            }
        } else if op < 85 {
            // End a transaction.
            let pid = 10 + rng.below(2) as i64;
            if open_txn.remove(&pid).is_some() {
                let commit = rng.chance(60);
                log.append_marker(pid, 0, commit, 1, 0, now).unwrap();
                for w in written
                    .iter_mut()
                    .filter(|w| w.producer == pid && w.visible.is_none())
                {
                    w.visible = Some(commit);
                }
            }
        } else {
            // A cleaning round.
            let producers_before = producer_view(&log);
            let before = read_committed(&log);
            for w in written.iter_mut() {
                w.first_clean_ms.get_or_insert(now);
            }
            if rng.chance(30) {
                map = OffsetMap::new(24 * (4 + rng.below(60) as usize), 0.9);
            }
            let end = round(&mut log, &mut map, cp, now);
            // Only a round with something dirty cleans (and removes expired tombstones).
            let cleaned = end > cp.unwrap_or(0);
            cp = Some(end);
            let after = read_committed(&log);
            check_round(&before, &after, &written, (end, cleaned), now, seed);
            for w in written.iter_mut().filter(|w| w.rec.offset < end) {
                w.below_end_ms.get_or_insert(now);
            }
            // Producer state replayed from the cleaned log alone.
            if rng.chance(30) {
                log.close().unwrap();
                for (_, p) in crate::producer::list_snapshots(d.path()).unwrap() {
                    std::fs::remove_file(p).unwrap();
                }
                log = Log::open(d.path(), cfg.clone(), 0, rng.chance(50)).unwrap();
                assert_eq!(producer_view(&log), producers_before, "seed {seed}");
                assert_eq!(read_committed(&log), after, "seed {seed}: reopened");
            }
        }
    }
}

/// The checks of one property-test round (see the test's docs).
fn check_round(
    before: &[Rec],
    after: &[Rec],
    written: &[Written],
    (end, cleaned): (i64, bool),
    now: i64,
    seed: u64,
) {
    let ctx = format!("seed {seed}, end {end}");
    assert!(
        after.windows(2).all(|w| w[0].offset < w[1].offset),
        "{ctx}: offsets ascend"
    );
    for r in after {
        assert!(before.contains(r), "{ctx}: {r:?} was there before");
    }
    let present: HashMap<i64, &Rec> = after.iter().map(|r| (r.offset, r)).collect();
    // Visible (or undecided) records, in offset order.
    let live: Vec<&Written> = written
        .iter()
        .filter(|w| w.visible != Some(false))
        .collect();
    // Everything from the end on stays.
    for w in live.iter().filter(|w| w.rec.offset >= end) {
        assert_eq!(
            present.get(&w.rec.offset),
            Some(&&w.rec),
            "{ctx}: kept past the end"
        );
    }
    // Every key's latest record stays (a tombstone at least delete.retention.ms after the first
    // cleaning that could have seen it).
    let mut latest: HashMap<&[u8], &Written> = HashMap::new();
    let mut latest_below: HashMap<&[u8], &Written> = HashMap::new();
    for w in &live {
        let k = w.rec.key.as_deref().unwrap();
        latest.insert(k, *w);
        if w.rec.offset < end {
            latest_below.insert(k, *w);
        }
    }
    for w in latest.values() {
        if !present.contains_key(&w.rec.offset) {
            let gone_after = w.first_clean_ms.map(|t| t + 1000);
            assert!(
                w.rec.value.is_none() && gone_after.is_some_and(|t| now >= t),
                "{ctx}: the latest record of its key {:?} went",
                w.rec
            );
        }
    }
    // A tombstone cleaned delete.retention.ms ago is gone after a round that cleaned.
    for w in latest_below.values() {
        if cleaned && w.rec.value.is_none() && w.below_end_ms.is_some_and(|t| now >= t + 1000) {
            assert!(
                !present.contains_key(&w.rec.offset),
                "{ctx}: {:?} expired",
                w.rec
            );
        }
    }
    // Below the end: at most one record per key, the latest below the end.
    let mut seen = HashSet::new();
    for r in after.iter().filter(|r| r.offset < end) {
        let k = r.key.as_deref().unwrap();
        assert!(
            seen.insert(k.to_vec()),
            "{ctx}: one record of {k:?} below the end"
        );
        assert_eq!(latest_below[k].rec, *r, "{ctx}: the latest below the end");
    }
}

thread_local! {
    /// Whether the last cleaning of the crash test had a group of several segments.
    static MULTI_SEGMENT_GROUP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Copies the files of a log directory.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A crash after each file operation of a cleaning (writing the `.cleaned` files, renaming,
/// deleting, renaming back), then `Log::open`: every group of segments is found either as it
/// was or as cleaned, nothing lost, nothing twice, no `.cleaned` or `.swap` file left, and
/// cleaning again reaches the uncrashed result.
#[test]
fn a_crash_at_any_step_of_a_cleaning_recovers_the_old_or_the_new_segments() {
    let d = tempfile::tempdir().unwrap();
    let pristine = d.path().join("pristine");
    let cfg = config(400);
    let mut rng = Rng(7);
    {
        let mut log = Log::open(&pristine, cfg.clone(), 0, true).unwrap();
        let mut fill = |log: &mut Log, n: i64, t: i64| {
            for i in 0..n {
                let key = format!("k{}", rng.below(9));
                let value = (!rng.chance(10)).then(|| format!("value-{t}-{i}"));
                append(
                    log,
                    &[(key.as_str(), value.as_deref())],
                    t + i,
                    (i % 5) as u8,
                );
            }
        };
        fill(&mut log, 40, 1000);
        let k = |s: &'static str| (Some(s.as_bytes()), Some(&b"txn"[..]));
        log.append_as_leader(
            &mut make_batch(&[k("k1"), k("k2")], 1100, 5, 0, 0, 2, true),
            0,
            1100,
            false,
        )
        .unwrap();
        log.append_marker(5, 0, false, 1, 0, 1100).unwrap();
        // A first cleaning leaves small segments, so the next one groups several.
        let mut map = OffsetMap::new(1 << 16, 0.9);
        let cp = round(&mut log, &mut map, None, 2000);
        fill(&mut log, 12, 3000);
        std::fs::write(pristine.join("checkpoint"), cp.to_string()).unwrap();
        log.close().unwrap();
    }
    let cp: i64 = std::fs::read_to_string(pristine.join("checkpoint"))
        .unwrap()
        .parse()
        .unwrap();
    let run =
        |dir: &Path, crash_at: Option<usize>| -> (Result<CleanStats, LogError>, Vec<(i64, i64)>) {
            let mut log = Log::open(dir, cfg.clone(), 0, true).unwrap();
            let range = cleanable_range(&log, Some(cp), log.last_stable_offset(), 0, 4000);
            let mut p = plan(&log, &range, options(4000));
            p.faults.crash_at = crash_at;
            let mut map = OffsetMap::new(1 << 16, 0.9);
            let cleaned = match p.execute(&mut map) {
                Ok(c) => c,
                Err(e) => return (Err(e), Vec::new()),
            };
            let ranges = cleaned
                .groups
                .iter()
                .map(|(_, g)| (g[0].base_offset, g.last().unwrap().next_offset))
                .collect();
            MULTI_SEGMENT_GROUP.with(|m| m.set(cleaned.groups.iter().any(|(_, g)| g.len() > 1)));
            (cleaned.commit(&mut log), ranges)
        };
    let old_dir = d.path().join("old");
    copy_dir(&pristine, &old_dir);
    let old = read_committed(&Log::open(&old_dir, cfg.clone(), 0, true).unwrap());
    let clean_dir = d.path().join("uncrashed");
    copy_dir(&pristine, &clean_dir);
    let (stats, ranges) = run(&clean_dir, None);
    let stats = stats.unwrap();
    assert!(
        ranges.len() >= 2 && MULTI_SEGMENT_GROUP.with(|m| m.get()),
        "{ranges:?}"
    );
    assert_eq!(stats.groups_swapped, ranges.len());
    let new = read_committed(&Log::open(&clean_dir, cfg.clone(), 0, true).unwrap());
    assert_ne!(old, new);
    let within = |recs: &[Rec], (a, b): (i64, i64)| -> Vec<Rec> {
        recs.iter()
            .filter(|r| r.offset >= a && r.offset < b)
            .cloned()
            .collect()
    };
    let mut crashes = 0;
    for k in 0..1000 {
        let dir = d.path().join(format!("crash-{k}"));
        copy_dir(&pristine, &dir);
        let (result, _) = run(&dir, Some(k));
        match result {
            Ok(_) => break,
            Err(e) => assert!(e.to_string().contains("crash injected"), "{e}"),
        }
        crashes += 1;
        let mut log = Log::open(&dir, cfg.clone(), 0, k % 2 == 0).unwrap();
        assert_eq!(leftovers(&dir), 0, "step {k}");
        let got = read_committed(&log);
        let outside = |recs: &[Rec]| -> Vec<Rec> {
            recs.iter()
                .filter(|r| !ranges.iter().any(|&(a, b)| r.offset >= a && r.offset < b))
                .cloned()
                .collect()
        };
        assert_eq!(outside(&got), outside(&old), "step {k}");
        for &g in &ranges {
            let part = within(&got, g);
            assert!(
                part == within(&old, g) || part == within(&new, g),
                "step {k}: group {g:?}"
            );
        }
        // Cleaning again gets to the same records.
        let mut map = OffsetMap::new(1 << 16, 0.9);
        let range = cleanable_range(&log, Some(cp), log.last_stable_offset(), 0, 4000);
        clean(&mut log, &mut map, &range, options(4000)).unwrap();
        assert_eq!(read_committed(&log), new, "step {k}: cleaned again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert!(crashes > 20, "{crashes} steps");
}

/// After a cleaning (and after a reopen that loads the swapped-in index files), a read from any
/// offset starts at the first batch that ends at or after it, and a timestamp lookup finds the
/// first record at or after the timestamp, across the gaps the cleaning left.
#[test]
fn reads_and_timestamp_lookups_find_their_way_across_the_gaps() {
    let d = tempfile::tempdir().unwrap();
    let cfg = config(600);
    let mut log = Log::open(d.path(), cfg.clone(), 0, true).unwrap();
    let mut rng = Rng(3);
    for i in 0..150i64 {
        let n = 1 + rng.below(3) as usize;
        let recs: Vec<(String, Option<String>)> = (0..n)
            .map(|j| (format!("k{}", rng.below(15)), Some(format!("v{i}-{j}"))))
            .collect();
        let refs: Vec<(&str, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        append(&mut log, &refs, 1000 + i * 10, rng.below(5) as u8);
    }
    let mut map = OffsetMap::new(1 << 16, 0.9);
    round(&mut log, &mut map, None, 5000);
    for reopened in [false, true] {
        if reopened {
            log.close().unwrap();
            log = Log::open(d.path(), cfg.clone(), 0, true).unwrap();
        }
        let all = batches(&log);
        let leo = log.log_end_offset();
        for o in 0..leo {
            let want = all
                .iter()
                .find(|(h, _)| h.last_offset() >= o)
                .map(|(h, _)| h.base_offset);
            let got = log.read(o, 1, leo).unwrap().first_batch_base_offset;
            assert_eq!(got, want, "read from {o} (reopened: {reopened})");
        }
        for ts in (990..2600).step_by(7) {
            let want = all.iter().find_map(|(h, recs)| {
                if h.compression() != 0 {
                    return (h.max_timestamp >= ts && !recs.is_empty())
                        .then_some((h.base_offset, h.max_timestamp));
                }
                recs.iter()
                    .find(|r| r.timestamp >= ts)
                    .map(|r| (r.offset, r.timestamp))
            });
            assert_eq!(
                log.offset_for_timestamp(ts).unwrap(),
                want,
                "timestamp {ts}"
            );
        }
    }
}
