//! Tests of the partition log: appends and reads, rolling and indexes, retention and DeleteRecords, recovery after a crash, producer and transaction state.

use super::*;
use crate::testing::build_batch;

fn batch(n: usize, ts: i64) -> Vec<u8> {
    let vals: Vec<Vec<u8>> = (0..n).map(|i| format!("value-{i}").into_bytes()).collect();
    let recs: Vec<crate::testing::TestRecord> = vals
        .iter()
        .enumerate()
        .map(|(i, v)| (None, Some(v.as_slice()), ts + i as i64))
        .collect();
    build_batch(0, &recs, -1, -1, -1)
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

fn offsets_of(records: &[u8]) -> Vec<(i64, i64)> {
    crate::batch::validate_batches(records)
        .unwrap()
        .iter()
        .map(|h| (h.base_offset, h.last_offset()))
        .collect()
}

/// Appends batches of 1..=4 records; returns each batch's (first, last) offsets.
fn fill(log: &mut Log, batches: usize) -> Vec<(i64, i64)> {
    (0..batches)
        .map(|i| {
            let mut b = batch(i % 4 + 1, 1000 + i as i64 * 10);
            let info = log.append_as_leader(&mut b, 0, 5000, false).unwrap();
            (info.first_offset, info.last_offset)
        })
        .collect()
}

/// A transactional batch of `n` records from `pid` (sequence `seq`).
fn txn_batch(pid: i64, seq: i32, n: usize) -> Vec<u8> {
    let recs: Vec<crate::testing::TestRecord> =
        (0..n).map(|_| (None, Some(&b"v"[..]), 1000)).collect();
    let mut b = build_batch(0, &recs, pid, 0, seq);
    crate::testing::make_transactional(&mut b);
    b
}

/// The coordinator epoch of the latest marker of `producer_id`, as DescribeProducers shows it.
fn coordinator_epoch(log: &Log, producer_id: i64) -> i32 {
    log.producers()
        .iter()
        .find(|p| p.producer_id == producer_id)
        .map_or(-1, |p| p.coordinator_epoch)
}

#[test]
fn transactions_hold_the_lso_and_aborts_are_indexed_across_restarts() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    log.append_as_leader(&mut txn_batch(7, 0, 3), 0, 5000, false)
        .unwrap();
    log.append_as_leader(&mut batch(1, 1000), 0, 5000, false)
        .unwrap();
    assert_eq!((log.last_stable_offset(), log.log_end_offset()), (0, 4));
    assert_eq!(log.open_txns(), vec![(7, 0, 0)]);
    assert_eq!(log.append_marker(7, 0, false, 0, 0, 5000).unwrap(), 4);
    assert_eq!(log.last_stable_offset(), 5);
    assert_eq!(log.aborted_txns(0, 5), vec![(7, 0)]);
    assert_eq!(log.aborted_txns(5, 5), vec![], "ends before the range");
    // A committed transaction leaves no trace in the aborted list.
    log.append_as_leader(&mut txn_batch(8, 0, 1), 0, 5000, false)
        .unwrap();
    assert_eq!(log.append_marker(8, 0, true, 3, 0, 5000).unwrap(), 6);
    assert_eq!(coordinator_epoch(&log, 8), 3);
    // A marker from an older coordinator than the last one is fenced.
    assert!(matches!(
        log.append_marker(8, 0, true, 2, 0, 5000),
        Err(AppendError::CoordinatorFenced)
    ));
    log.append_as_leader(&mut txn_batch(9, 0, 2), 0, 5000, false)
        .unwrap();
    assert_eq!(log.last_stable_offset(), 7, "pid 9's transaction is open");
    // An old epoch's marker is fenced.
    log.producers.producers.get_mut(&9).unwrap().epoch = 2;
    assert!(matches!(
        log.append_marker(9, 1, false, 0, 0, 5000),
        Err(AppendError::InvalidProducerEpoch)
    ));
    log.producers.producers.get_mut(&9).unwrap().epoch = 0;
    let leo = log.log_end_offset();
    // Clean restart: snapshot and .txnindex.
    log.close().unwrap();
    let log = Log::open(d.path(), small(), leo, true).unwrap();
    assert_eq!(log.aborted_txns(0, leo), vec![(7, 0)]);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(coordinator_epoch(&log, 8), 3, "kept in the snapshot");
    // Unclean restart with every snapshot and index gone: rebuilt by replaying the log.
    drop(log);
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ext == "snapshot" || ext == "txnindex" {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut log = Log::open(d.path(), small(), 0, false).unwrap();
    assert_eq!(log.aborted_txns(0, leo), vec![(7, 0)]);
    assert_eq!(log.last_stable_offset(), 7);
    assert_eq!(coordinator_epoch(&log, 8), 3, "read back from the marker");
    assert_eq!(log.append_marker(9, 0, false, 0, 0, 5000).unwrap(), leo);
    assert_eq!(log.last_stable_offset(), leo + 1);
    assert_eq!(log.aborted_txns(0, leo + 1), vec![(7, 0), (9, 7)]);
    // Retention below an abort forgets it.
    log.delete_records_before(leo).unwrap();
    assert_eq!(log.aborted_txns(0, leo + 1), vec![(9, 7)]);
}

#[test]
fn a_planned_read_survives_truncation_and_deletion_after_the_plan() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    let spans = fill(&mut log, 60);
    // Planned, then the log cut in the middle of the range: the read ends at the cut.
    let plan = log.plan_read(0, 1 << 20, i64::MAX).unwrap();
    let cut = spans[40].0;
    log.truncate_to(cut).unwrap();
    let read = offsets_of(&plan.execute().unwrap().records);
    assert!(!read.is_empty() && read.len() <= 40, "{read:?}");
    assert_eq!(
        read,
        spans[..read.len()].to_vec(),
        "whole batches, in order"
    );
    // Planned, then every segment it reads deleted by DeleteRecords: the open files still read.
    let plan = log.plan_read(0, 1 << 20, i64::MAX).unwrap();
    let before = log.segment_count();
    log.delete_records_before(cut).unwrap();
    assert!(log.segment_count() < before, "segments went");
    let read = offsets_of(&plan.execute().unwrap().records);
    assert_eq!(read, spans[..40].to_vec());
}

#[test]
fn offsets_dense_and_every_offset_reads_its_batch() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    let spans = fill(&mut log, 60);
    let mut expect = 0;
    for (f, l) in &spans {
        assert_eq!(*f, expect, "dense offsets");
        assert!(l >= f);
        expect = l + 1;
    }
    assert!(log.segment_count() > 3, "rolled by size");
    assert_eq!(log.log_end_offset(), expect);
    for (f, l) in &spans {
        for o in *f..=*l {
            let r = log.read(o, 1, i64::MAX).unwrap();
            assert_eq!(offsets_of(&r.records), vec![(*f, *l)], "offset {o}");
        }
    }
    // A big read crosses segments and returns contiguous batches.
    let all = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(offsets_of(&all.records), spans);
    // max_offset bounds the read; the end is empty; beyond is out of range.
    let r = log.read(0, 1 << 20, spans[2].0).unwrap();
    assert_eq!(offsets_of(&r.records), spans[..2].to_vec());
    assert!(log.read(expect, 100, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(expect + 1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Reopen after a clean close: same offsets, same reads, indexes loaded.
    log.close().unwrap();
    let log = Log::open(d.path(), small(), expect, true).unwrap();
    assert_eq!(log.log_end_offset(), expect);
    assert_eq!(
        offsets_of(&log.read(0, 1 << 20, i64::MAX).unwrap().records),
        spans
    );
}

#[test]
fn recovery_of_a_tail_cut_at_every_byte() {
    let d = tempfile::tempdir().unwrap();
    let spans = {
        let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
        let s = fill(&mut log, 4);
        log.close().unwrap();
        s
    };
    let seg = d.path().join(format!("{:020}.log", 0));
    let full = std::fs::read(&seg).unwrap();
    let last_len = crate::batch::validate_batches(&full)
        .unwrap()
        .last()
        .unwrap()
        .size_bytes();
    let keep = full.len() - last_len;
    for cut in keep..full.len() {
        std::fs::write(&seg, &full[..cut]).unwrap();
        let _ = std::fs::remove_file(d.path().join(format!("{:020}.index", 0)));
        let mut log = Log::open(d.path(), LogConfig::default(), 0, false).unwrap();
        assert_eq!(log.log_end_offset(), spans[2].1 + 1, "cut at {cut}");
        assert_eq!(
            offsets_of(&log.read(0, 1 << 20, i64::MAX).unwrap().records),
            spans[..3].to_vec()
        );
        let mut b = batch(1, 1);
        assert_eq!(
            log.append_as_leader(&mut b, 0, 1, false)
                .unwrap()
                .first_offset,
            spans[2].1 + 1
        );
    }
}

#[test]
fn garbage_tail_is_truncated_and_indexes_rebuilt() {
    let d = tempfile::tempdir().unwrap();
    let spans = {
        let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
        let s = fill(&mut log, 10);
        log.close().unwrap();
        s
    };
    let seg = d.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 20..] {
        *b = 0xAB;
    }
    std::fs::write(&seg, &bytes).unwrap();
    std::fs::remove_file(d.path().join(format!("{:020}.index", 0))).unwrap();
    std::fs::remove_file(d.path().join(format!("{:020}.timeindex", 0))).unwrap();
    let log = Log::open(d.path(), LogConfig::default(), 0, false).unwrap();
    assert_eq!(log.log_end_offset(), spans[8].1 + 1);
    assert!(d.path().join(format!("{:020}.index", 0)).exists());
    for (f, l) in &spans[..9] {
        assert_eq!(
            offsets_of(&log.read(*l, 1, i64::MAX).unwrap().records),
            vec![(*f, *l)]
        );
    }
}

#[test]
fn roll_by_time_retention_and_delete_records() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 0,
        retention_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    for i in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut b = batch(2, 10_000 + i * 1000);
        log.append_as_leader(&mut b, 0, now_ms(), false).unwrap();
    }
    assert_eq!(log.segment_count(), 5, "rolled by time");
    // Segments whose newest record is older than 1 s before now=12_500 go: the first two.
    assert_eq!(log.apply_retention(12_500).unwrap(), 2);
    assert_eq!(log.log_start_offset(), 4);
    assert!(matches!(
        log.read(0, 10, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Retention by size keeps at most 2 segments' worth.
    let seg_size = log.segments.values().next().unwrap().size as i64;
    log.set_config(LogConfig {
        retention_ms: -1,
        retention_bytes: seg_size * 2,
        ..LogConfig::default()
    });
    assert_eq!(log.apply_retention(0).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 6);
    // DeleteRecords moves the start inside a segment and survives a reopen.
    assert_eq!(log.delete_records_before(7).unwrap(), 7);
    assert_eq!(log.delete_records_before(5).unwrap(), 7, "never moves back");
    assert!(log.delete_records_before(11).is_err());
    log.close().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), 10, true).unwrap();
    assert_eq!(log.log_start_offset(), 7);
    assert_eq!(log.log_end_offset(), 10);
    let r = log.read(7, 100, i64::MAX).unwrap();
    assert_eq!(offsets_of(&r.records)[0], (6, 7), "the batch containing 7");
}

#[test]
fn producer_state_rules_survive_reopen() {
    let d = tempfile::tempdir().unwrap();
    let idem = |seq: i32, epoch: i16| {
        build_batch(
            0,
            &[(None, Some(b"v"), 1), (None, Some(b"w"), 2)],
            42,
            epoch,
            seq,
        )
    };
    for clean in [true, false] {
        let _ = std::fs::remove_dir_all(d.path());
        {
            let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
            assert_eq!(
                log.append_as_leader(&mut idem(0, 0), 0, 1, false)
                    .unwrap()
                    .first_offset,
                0
            );
            assert_eq!(
                log.append_as_leader(&mut idem(2, 0), 0, 1, false)
                    .unwrap()
                    .first_offset,
                2
            );
            if clean {
                log.close().unwrap();
            }
        }
        let mut log = Log::open(d.path(), LogConfig::default(), 0, clean).unwrap();
        match log.append_as_leader(&mut idem(0, 0), 0, 1, false) {
            Err(AppendError::DuplicateSequence {
                first_offset,
                last_offset,
            }) => assert_eq!((first_offset, last_offset), (0, 1)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert!(matches!(
            log.append_as_leader(&mut idem(7, 0), 0, 1, false),
            Err(AppendError::OutOfOrderSequence)
        ));
        assert_eq!(
            log.append_as_leader(&mut idem(4, 0), 0, 1, false)
                .unwrap()
                .first_offset,
            4
        );
        assert_eq!(
            log.append_as_leader(&mut idem(0, 1), 0, 1, false)
                .unwrap()
                .first_offset,
            6
        );
        assert!(matches!(
            log.append_as_leader(&mut idem(6, 0), 0, 1, false),
            Err(AppendError::InvalidProducerEpoch)
        ));
        assert_eq!(log.log_end_offset(), 8);
        assert_eq!(log.producer_count(), 1);
        assert_eq!(log.remove_expired_producers(1000, 5000), 0, "fresh");
        assert_eq!(
            log.remove_expired_producers(
                2 + DEFAULT_PRODUCER_ID_EXPIRATION_MS,
                DEFAULT_PRODUCER_ID_EXPIRATION_MS
            ),
            1
        );
        assert_eq!(log.producer_count(), 0);
    }
}

#[test]
fn timestamps_epochs_and_log_append_time() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    for i in 0..10 {
        log.append_as_leader(&mut batch(3, 1000 + i * 100), (i / 4) as i32, 1, false)
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(1201).unwrap(), Some((7, 1201)));
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 1000)));
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((29, 1902)));
    assert_eq!(log.end_offset_for_epoch(0), (0, 12));
    assert_eq!(log.end_offset_for_epoch(1), (1, 24));
    assert_eq!(log.end_offset_for_epoch(2), (2, 30));
    assert_eq!(
        log.end_offset_for_epoch(9),
        (-1, -1),
        "newer than any known"
    );
    assert_eq!(log.end_offset_for_epoch(-1), (-1, -1));
    let mut b = batch(2, 5);
    let info = log.append_as_leader(&mut b, 2, 777_000, true).unwrap();
    assert_eq!(info.log_append_time_ms, 777_000);
    let r = log.read(info.first_offset, 100, i64::MAX).unwrap();
    let h = check_batch(&r.records).expect("CRC still valid");
    assert!(h.timestamp_type_log_append());
    assert_eq!(h.max_timestamp, 777_000);
    log.close().unwrap();
    let log = Log::open(d.path(), small(), 0, true).unwrap();
    assert_eq!(
        log.end_offset_for_epoch(1),
        (1, 24),
        "epoch cache persisted"
    );
}

/// Every (offset, timestamp) in the log, by reading it all.
pub(super) fn all_records(log: &Log) -> Vec<(i64, i64)> {
    let r = log
        .read(log.log_start_offset(), usize::MAX, i64::MAX)
        .unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < r.records.len() {
        let h = check_batch(&r.records[pos..]).unwrap();
        out.extend(record_timestamps(&r.records[pos..pos + h.size_bytes()]).unwrap());
        pos += h.size_bytes();
    }
    out
}

/// Timestamps that go up and down, as producers' clocks do.
fn wobbly_log(dir: &Path, cfg: LogConfig) -> Log {
    let mut log = Log::open(dir, cfg, 0, true).unwrap();
    for i in 0..80i64 {
        let base = 1000 + i * 10 + if i % 7 == 3 { -45 } else { 0 };
        let recs: Vec<crate::testing::TestRecord> = (0..(i % 3 + 1))
            .map(|j| (None, Some(&b"payload"[..]), base + (j * 13) % 20))
            .collect();
        log.append_as_leader(&mut build_batch(0, &recs, -1, -1, -1), 0, 1, false)
            .unwrap();
    }
    log
}

fn check_timestamps_against_brute_force(log: &Log) {
    let recs = all_records(log);
    for ts in 900..1900 {
        let expect = recs.iter().find(|(_, t)| *t >= ts).copied();
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), expect, "ts {ts}");
    }
    let max = recs.iter().map(|r| r.1).max().unwrap();
    let first_max = recs.iter().find(|r| r.1 == max).copied();
    assert_eq!(log.max_timestamp(), first_max);
}

#[test]
fn timestamp_lookups_match_a_full_scan_across_segments() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 2000,
        index_interval_bytes: 150,
        ..LogConfig::default()
    };
    let log = wobbly_log(d.path(), cfg.clone());
    assert!(log.segment_count() > 3);
    check_timestamps_against_brute_force(&log);
    log.close().unwrap();
    // Loaded from the index files, then rebuilt without them: the same answers.
    let log = Log::open(d.path(), cfg.clone(), 0, true).unwrap();
    check_timestamps_against_brute_force(&log);
    drop(log);
    for e in std::fs::read_dir(d.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension()
            .is_some_and(|x| x == "timeindex" || x == "index")
        {
            std::fs::remove_file(p).unwrap();
        }
    }
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    check_timestamps_against_brute_force(&log);
    // Below the log start nothing is found.
    let start = log.delete_records_before(40).unwrap();
    let found = log.offset_for_timestamp(0).unwrap().unwrap();
    assert_eq!(found.0, start);
    assert!(log.max_timestamp().unwrap().0 >= start);
}

#[test]
fn missing_or_corrupt_indexes_are_rebuilt_on_a_clean_open() {
    let d = tempfile::tempdir().unwrap();
    let spans = {
        let mut log = Log::open(d.path(), small(), 0, true).unwrap();
        let s = fill(&mut log, 50);
        log.close().unwrap();
        s
    };
    let index = |base: i64, ext: &str| d.path().join(format!("{base:020}.{ext}"));
    let bases: Vec<i64> = spans.iter().map(|s| s.0).collect();
    let mut damaged = 0;
    for b in &bases {
        if index(*b, "index").exists() {
            match damaged % 3 {
                0 => std::fs::remove_file(index(*b, "index")).unwrap(),
                1 => std::fs::write(index(*b, "index"), [0u8, 0, 0, 9, 0, 0, 0, 7]).unwrap(),
                _ => std::fs::write(index(*b, "timeindex"), [1u8; 13]).unwrap(),
            }
            damaged += 1;
        }
    }
    assert!(damaged >= 3);
    let log = Log::open(d.path(), small(), 0, true).unwrap();
    assert_eq!(log.log_end_offset(), spans.last().unwrap().1 + 1);
    for (f, l) in &spans {
        for o in *f..=*l {
            let r = log.read(o, 1, i64::MAX).unwrap();
            assert_eq!(offsets_of(&r.records), vec![(*f, *l)], "offset {o}");
        }
    }
    for b in &bases {
        if index(*b, "log").exists() {
            assert_eq!(std::fs::read(index(*b, "index")).unwrap().len() % 8, 0);
            assert!(std::fs::metadata(index(*b, "index")).unwrap().len() > 0);
        }
    }
}

#[test]
fn roll_rules_time_by_record_timestamps_and_full_index() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    for ts in [0, 500, 1000] {
        log.append_as_leader(&mut batch(1, ts), 0, 1, false)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 1, "waited exactly segment.ms: no roll");
    log.append_as_leader(&mut batch(1, 1001), 0, 1, false)
        .unwrap();
    assert_eq!(log.segment_count(), 2, "rolled by time");
    // LogAppendTime: the broker clock is the record time.
    log.append_as_leader(&mut batch(1, 0), 0, 2002, true)
        .unwrap();
    assert_eq!(log.segment_count(), 3);
    drop(log);

    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        index_interval_bytes: 1,
        segment_index_bytes: 8 * 4,
        ..LogConfig::default()
    };
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    let spans = fill(&mut log, 12);
    assert!(log.segment_count() >= 4, "rolled on a full index");
    for seg in log.segments.values() {
        assert!(seg.index_entries().0 * 8 <= 32);
    }
    let r = log.read(0, usize::MAX, i64::MAX).unwrap();
    assert_eq!(offsets_of(&r.records), spans);
}

#[test]
fn reads_respect_max_bytes_and_max_offset() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    let spans = fill(&mut log, 30);
    let sizes: Vec<usize> = {
        let r = log.read(0, usize::MAX, i64::MAX).unwrap();
        crate::batch::validate_batches(&r.records)
            .unwrap()
            .iter()
            .map(|h| h.size_bytes())
            .collect()
    };
    for first in 0..spans.len() {
        for n in 1..6.min(spans.len() - first) {
            let exact: usize = sizes[first..first + n].iter().sum();
            let r = log.read(spans[first].0, exact, i64::MAX).unwrap();
            assert_eq!(offsets_of(&r.records), spans[first..first + n].to_vec());
            let r = log.read(spans[first].0, exact + 1, i64::MAX).unwrap();
            assert_eq!(offsets_of(&r.records).len(), n, "no partial batch");
            assert_eq!(r.first_batch_base_offset, Some(spans[first].0));
            // max_offset inside a batch keeps the batches that start below it.
            let bound = spans[first + n - 1].0 + 1;
            let r = log.read(spans[first].0, usize::MAX, bound).unwrap();
            assert_eq!(offsets_of(&r.records), spans[first..first + n].to_vec());
        }
    }
    let r = log.read(spans[3].0, usize::MAX, spans[3].0).unwrap();
    assert!(r.records.is_empty() && r.first_batch_base_offset.is_none());
}

#[test]
fn a_plan_covers_exactly_the_bytes_its_read_returns() {
    // What a Fetch sends straight from the files (the plan's ranges, its length announced
    // first) must be the very bytes the read would have returned, whole batches only, for any
    // start, byte limit and offset bound, across segments.
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    let spans = fill(&mut log, 40);
    assert!(log.segment_count() > 3);
    let leo = log.log_end_offset();
    for start in 0..leo {
        for max_bytes in [0, 1, 60, 100, 333, 1000, 2500, usize::MAX] {
            for max_offset in [start, start + 1, start + 7, leo - 3, leo, i64::MAX] {
                let plan = log.plan_read(start, max_bytes, max_offset).unwrap();
                let mut from_ranges = Vec::new();
                for (file, pos, len) in plan.ranges() {
                    let mut buf = vec![0u8; len];
                    std::os::unix::fs::FileExt::read_exact_at(&**file, &mut buf, pos).unwrap();
                    from_ranges.extend_from_slice(&buf);
                }
                let len = plan.len();
                let read = plan.execute().unwrap().records;
                let case = format!("start {start} max_bytes {max_bytes} max_offset {max_offset}");
                assert_eq!(len, read.len(), "{case}");
                assert_eq!(&from_ranges[..], &read[..], "{case}");
                let got = offsets_of(&read);
                if let Some(&(first, _)) = got.first() {
                    assert!(first <= start, "{case}: starts at the batch holding start");
                    assert!(
                        got.iter().all(|&(b, _)| b < max_offset.max(start + 1)),
                        "{case}"
                    );
                    assert!(
                        got.len() == 1 || read.len() <= max_bytes,
                        "{case}: over max_bytes"
                    );
                }
            }
        }
    }
    assert!(!spans.is_empty());
}

#[test]
fn recovery_drops_segments_after_a_corrupt_one_and_keeps_producer_state() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 600,
        ..LogConfig::default()
    };
    let idem = |seq: i32| build_batch(0, &[(None, Some(&[7u8; 100][..]), 5)], 9, 0, seq);
    let mut log = Log::open(d.path(), cfg.clone(), 0, true).unwrap();
    for seq in 0..20 {
        log.append_as_leader(&mut idem(seq), 0, 1, false).unwrap();
    }
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    assert!(bases.len() >= 5);
    assert!(list_snapshots(d.path()).unwrap().len() <= SNAPSHOTS_KEPT);
    log.flush().unwrap();
    drop(log); // a crash: no close
               // Flip one byte inside the third segment's second batch.
    let third = d.path().join(format!("{:020}.log", bases[2]));
    let mut bytes = std::fs::read(&third).unwrap();
    let first = BatchHeader::parse(&bytes).unwrap().size_bytes();
    bytes[first + 70] ^= 0xFF;
    std::fs::write(&third, &bytes).unwrap();
    let mut log = Log::open(d.path(), cfg, bases[1], false).unwrap();
    assert_eq!(
        log.log_end_offset(),
        bases[2] + 1,
        "kept the first batch only"
    );
    assert_eq!(log.segment_count(), 3);
    assert!(!d.path().join(format!("{:020}.log", bases[3])).exists());
    // Producer state is what the surviving batches say: sequence bases[2] is next.
    let next = bases[2] as i32 + 1;
    assert!(matches!(
        log.append_as_leader(&mut idem(next + 1), 0, 1, false),
        Err(AppendError::OutOfOrderSequence)
    ));
    match log.append_as_leader(&mut idem(next - 1), 0, 1, false) {
        Err(AppendError::DuplicateSequence { first_offset, .. }) => {
            assert_eq!(first_offset, next as i64 - 1)
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let info = log.append_as_leader(&mut idem(next), 0, 1, false).unwrap();
    assert_eq!(info.first_offset, next as i64);
}

#[test]
fn sequences_wrap_and_delete_records_to_the_end() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
    let two = |seq: i32| {
        build_batch(
            0,
            &[(None, Some(b"a"), 1), (None, Some(b"b"), 2)],
            3,
            0,
            seq,
        )
    };
    // An unknown producer may start anywhere; the sequence wraps past i32::MAX to 0.
    log.append_as_leader(&mut two(i32::MAX - 1), 1, 1, false)
        .unwrap();
    log.append_as_leader(&mut two(1), 2, 1, false).unwrap_err();
    assert_eq!(
        log.append_as_leader(&mut two(0), 2, 1, false)
            .unwrap()
            .first_offset,
        2
    );
    assert_eq!(log.end_offset_for_epoch(1), (1, 2));
    assert_eq!(log.end_offset_for_epoch(0), (0, 0), "older than any known");
    // DeleteRecords up to the log end: everything goes, appends continue at the end.
    assert_eq!(log.delete_records_before(4).unwrap(), 4);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.epoch_entries(), &[(2, 4)]);
    assert!(log.read(4, 100, i64::MAX).unwrap().records.is_empty());
    assert_eq!(
        log.append_as_leader(&mut two(2), 2, 1, false)
            .unwrap()
            .first_offset,
        4
    );
    log.close().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), 0, false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (4, 6));
    assert_eq!(log.end_offset_for_epoch(2), (2, 6));
}

#[test]
fn flush_interval_messages_moves_the_recovery_point() {
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_interval_messages: 5,
        ..LogConfig::default()
    };
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    log.append_as_leader(&mut batch(3, 1), 0, 1, false).unwrap();
    assert_eq!(log.recovery_point(), 0, "3 messages: not yet");
    log.append_as_leader(&mut batch(3, 1), 0, 1, false).unwrap();
    assert_eq!(log.recovery_point(), 6, "6 messages: flushed");
    assert!(!log.maybe_flush(i64::MAX).unwrap(), "flush.ms unset");
    log.set_config(LogConfig {
        flush_interval_ms: 10,
        ..LogConfig::default()
    });
    log.append_as_leader(&mut batch(1, 1), 0, 1, false).unwrap();
    assert!(log.maybe_flush(now_ms() + 1000).unwrap());
    assert_eq!(log.recovery_point(), 7);
}

#[test]
fn flush_messages_1_leaves_the_leader_fsync_to_the_caller() {
    // flush.messages=1: the partition fsyncs outside its lock (group commit), from the files
    // that may hold what is not yet synced.
    let d = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        flush_interval_messages: 1,
        segment_bytes: 300,
        ..LogConfig::default()
    };
    let mut log = Log::open(d.path(), cfg, 0, true).unwrap();
    assert!(log.syncs_every_append());
    assert!(log.unsynced_files(0).is_empty(), "nothing written");
    log.append_as_leader(&mut batch(3, 1), 0, 1, false).unwrap();
    assert_eq!(log.recovery_point(), 0, "not synced under the lock");
    assert_eq!(log.unsynced_files(0).len(), 1);
    for _ in 0..6 {
        log.append_as_leader(&mut batch(3, 1), 0, 1, false).unwrap();
    }
    assert!(log.segment_count() > 2);
    // Every segment written since offset 3 (or since the recovery point, which the background
    // fsync of rolled segments moves), and nothing at the log end.
    let from = log.recovery_point().max(3);
    let since = log
        .segments
        .values()
        .filter(|s| s.next_offset > from)
        .count();
    assert!(since >= 1);
    assert_eq!(log.unsynced_files(3).len(), since);
    assert!(log.unsynced_files(log.log_end_offset()).is_empty());
}

#[test]
fn a_torn_tail_is_cut_even_after_a_clean_shutdown_claim() {
    let d = tempfile::tempdir().unwrap();
    let spans = {
        let mut log = Log::open(d.path(), small(), 0, true).unwrap();
        let s = fill(&mut log, 30);
        log.close().unwrap();
        s
    };
    let last_seg = {
        let log = Log::open(d.path(), small(), 0, true).unwrap();
        *log.segments.keys().next_back().unwrap()
    };
    let seg = d.path().join(format!("{last_seg:020}.log"));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes.truncate(n - 3);
    std::fs::write(&seg, &bytes).unwrap();
    let mut log = Log::open(d.path(), small(), i64::MAX, true).unwrap();
    let (f, l) = spans[spans.len() - 2];
    assert_eq!(log.log_end_offset(), l + 1);
    assert_eq!(
        offsets_of(&log.read(f, usize::MAX, i64::MAX).unwrap().records),
        vec![(f, l)]
    );
    let info = log.append_as_leader(&mut batch(2, 9), 0, 1, false).unwrap();
    assert_eq!(info.first_offset, l + 1);
    assert_eq!(
        offsets_of(&log.read(l + 1, 1, i64::MAX).unwrap().records),
        vec![(l + 1, l + 2)]
    );
}

/// Every read, timestamp lookup and the largest timestamp of a log, to compare two opens.
fn answers(log: &Log, last: i64) -> Vec<String> {
    let mut out: Vec<String> = (0..last)
        .map(|o| {
            format!(
                "{o}: {:?}",
                offsets_of(&log.read(o, 1, i64::MAX).unwrap().records)
            )
        })
        .collect();
    for ts in (990..1700).step_by(7) {
        out.push(format!(
            "ts {ts}: {:?}",
            log.offset_for_timestamp(ts).unwrap()
        ));
    }
    out.push(format!("max ts: {:?}", log.max_timestamp()));
    out
}

#[test]
fn sealed_segments_read_their_indexes_on_first_lookup() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), small(), 0, true).unwrap();
    let spans = fill(&mut log, 60);
    let end = log.log_end_offset();
    let segments = log.segment_count();
    assert!(segments > 3);
    let expected = answers(&log, end);
    let loaded = |log: &Log| log.segments.values().filter(|s| s.indexes_loaded()).count();
    log.close().unwrap();

    // A clean open reads only the active segment's indexes; lookups read the others'.
    let log = Log::open(d.path(), small(), end, true).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segment_count(), segments);
    assert_eq!(
        loaded(&log),
        1,
        "only the active segment's indexes are read"
    );
    assert_eq!(
        log.max_timestamp(),
        Some((spans[59].1, 1000 + 59 * 10 + 59 % 4))
    );
    assert_eq!(
        loaded(&log),
        1,
        "the largest timestamp comes from the index files' tails"
    );
    assert_eq!(answers(&log, end), expected);
    assert_eq!(loaded(&log), segments);
    log.close().unwrap();

    // Index files that went wrong after the open (unsorted, or cut short) are not trusted:
    // the segment's indexes are rebuilt from its batches on first lookup.
    let mut log = Log::open(d.path(), small(), end, true).unwrap();
    assert_eq!(loaded(&log), 1);
    let bases: Vec<i64> = log.segments.keys().copied().collect();
    let index = |b: i64| d.path().join(format!("{b:020}.index"));
    let bytes = std::fs::read(index(bases[0])).unwrap();
    assert!(bytes.len() >= 16);
    let swapped: Vec<u8> = [&bytes[8..16], &bytes[0..8], &bytes[16..]].concat();
    std::fs::write(index(bases[0]), swapped).unwrap();
    let bytes = std::fs::read(index(bases[1])).unwrap();
    std::fs::write(index(bases[1]), &bytes[..8]).unwrap();
    assert_eq!(answers(&log, end), expected);
    // Appends, and a truncation into a sealed segment opened lazily, work as before.
    let cut = spans[5].0;
    log.truncate_to(cut).unwrap();
    assert_eq!(log.log_end_offset(), cut);
    let mut b = batch(2, 5000);
    assert_eq!(
        log.append_as_leader(&mut b, 0, 1, false)
            .unwrap()
            .first_offset,
        cut
    );
    log.close().unwrap();
    let log = Log::open(d.path(), small(), cut + 2, true).unwrap();
    assert_eq!(log.log_end_offset(), cut + 2);
    let read = offsets_of(&log.read(0, 1 << 20, i64::MAX).unwrap().records);
    assert_eq!(read[..5], spans[..5]);
    assert_eq!(read[5], (cut, cut + 1));
}

#[test]
fn epoch_entries_dropped_at_open_are_persisted_before_the_log_grows() {
    let d = tempfile::tempdir().unwrap();
    let epochs_file = d.path().join("leader-epoch-checkpoint");
    let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
    log.assign_epoch(0, 0).unwrap();
    let spans = fill(&mut log, 3);
    let end = spans[2].1 + 1;
    // A later epoch that started at the log end (a leader that wrote nothing before stopping).
    log.assign_epoch(5, end).unwrap();
    log.close().unwrap();
    let written = std::fs::read_to_string(&epochs_file).unwrap();
    assert_eq!(written, format!("0\n2\n0 0\n5 {end}\n"));

    // The open drops the entry at the log end without rewriting the file.
    let mut log = Log::open(d.path(), LogConfig::default(), end, true).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0)]);
    assert_eq!(std::fs::read_to_string(&epochs_file).unwrap(), written);
    // Growing the log in epoch 0 persists the cache first, so the dropped entry cannot come
    // back at the next open with data under it.
    let mut b = batch(2, 1);
    assert_eq!(
        log.append_as_leader(&mut b, 0, 1, false)
            .unwrap()
            .first_offset,
        end
    );
    assert_eq!(
        std::fs::read_to_string(&epochs_file).unwrap(),
        "0\n1\n0 0\n"
    );
    log.close().unwrap();
    let log = Log::open(d.path(), LogConfig::default(), end + 2, true).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, end + 2));
}

#[test]
fn a_new_leadership_assigning_the_entry_dropped_at_open_again_writes_nothing() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let epochs_file = d.path().join("leader-epoch-checkpoint");
    let inode = || std::fs::metadata(&epochs_file).unwrap().ino();
    // An empty partition led in epoch 3: its only entry is at the log end.
    let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
    log.assign_epoch(3, 0).unwrap();
    log.close().unwrap();
    let before = inode();
    // At the next start the entry is dropped at open and the same leadership assigns it again
    // (what every partition of a restarted broker does): the file already says so.
    let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
    assert!(log.epoch_entries().is_empty());
    log.assign_epoch(3, 0).unwrap();
    assert_eq!(log.epoch_entries(), &[(3, 0)]);
    assert_eq!(inode(), before, "the checkpoint was rewritten");
    // A new epoch is written (atomically: a new file).
    log.assign_epoch(4, 0).unwrap();
    assert_ne!(inode(), before);
    assert_eq!(
        std::fs::read_to_string(&epochs_file).unwrap(),
        "0\n1\n4 0\n"
    );
}
