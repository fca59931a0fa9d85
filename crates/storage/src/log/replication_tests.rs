//! Tests of what replication needs from the log: follower appends of a leader's batches,
//! truncation, and the leader-epoch cache (assign, OffsetsForLeaderEpoch).

use super::tests::all_records;
use super::*;
use crate::testing::{build_batch, make_transactional, TestRecord};

fn config(segment_bytes: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        ..LogConfig::default()
    }
}

/// A batch of `n` records from `pid` (-1: none) with timestamps around `ts` that go up and down.
fn records_batch(n: usize, ts: i64, pid: i64, producer_epoch: i16, seq: i32) -> Vec<u8> {
    let recs: Vec<TestRecord> = (0..n)
        .map(|j| (None, Some(&b"payload"[..]), ts + (j as i64 * 13) % 20))
        .collect();
    build_batch(0, &recs, pid, producer_epoch, seq)
}

/// A leader log with a bit of everything, over several segments: leader epochs 0, 2, 4 and 6,
/// timestamps that go back and forth, an idempotent producer whose epoch is bumped, aborted
/// and committed transactions, a LogAppendTime batch, and a transaction left open at the end.
fn leader_log(dir: &Path, cfg: LogConfig) -> Log {
    let mut log = Log::open(dir, cfg, 0, true).unwrap();
    let mut seq11 = 0;
    let mut seq21 = 0;
    let mut seq22 = 0;
    for i in 0..90i64 {
        let epoch = (i / 25) as i32 * 2;
        let ts = 1000 + i * 10 + if i % 7 == 3 { -45 } else { 0 };
        let n = (i % 3 + 1) as usize;
        let mut b = match i % 10 {
            1 | 4 => {
                let pe = i16::from(i >= 50);
                if i == 51 {
                    seq11 = 0;
                }
                let b = records_batch(n, ts, 11, pe, seq11);
                seq11 += n as i32;
                b
            }
            2 => {
                let mut b = records_batch(n, ts, 21, 0, seq21);
                make_transactional(&mut b);
                seq21 += n as i32;
                b
            }
            6 => {
                let mut b = records_batch(n, ts, 22, 0, seq22);
                make_transactional(&mut b);
                seq22 += n as i32;
                b
            }
            _ => records_batch(n, ts, -1, -1, -1),
        };
        log.append_as_leader(&mut b, epoch, 5000 + i, i == 33)
            .unwrap();
        if i % 10 == 5 {
            // Aborted in even decades, committed in odd ones.
            log.append_marker(21, 0, (i / 10) % 2 == 1, 0, epoch, 5000)
                .unwrap();
        }
        if i % 10 == 8 {
            log.append_marker(22, 0, true, 0, epoch, 5000).unwrap();
        }
    }
    let mut open = records_batch(2, 2000, 23, 0, 0);
    make_transactional(&mut open);
    log.append_as_leader(&mut open, 6, 6000, false).unwrap();
    log
}

/// A tiny deterministic generator for fetch sizes.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

/// Copies `from` into `to` by fetches of about `fetch_bytes` from the follower's log end up to
/// `upto`, each cut at a random byte past its first batch (so most end in a partial batch,
/// which the follower ignores and fetches again).
fn replicate(from: &Log, to: &mut Log, fetch_bytes: usize, upto: i64, seed: u64) {
    let mut rng = Lcg(seed);
    loop {
        let leo = to.log_end_offset();
        if leo >= upto {
            break;
        }
        let r = from.read(leo, fetch_bytes, upto).unwrap();
        assert!(!r.records.is_empty(), "nothing to fetch at {leo}");
        let first = BatchHeader::parse(&r.records).unwrap().size_bytes();
        // The next batch's bytes too, so that the cut can fall inside it.
        let more = from.read(leo, r.records.len() + 200, upto).unwrap().records;
        let cut = first + rng.next(more.len() - first + 1);
        let info = to.append_as_follower(&more[..cut], 7000).unwrap();
        // Past the log end when the leader's log has a gap there (a cleaned log).
        assert!(info.first_offset >= leo);
        assert!(info.valid_bytes >= first && info.valid_bytes <= cut);
        assert_eq!(to.log_end_offset(), info.last_offset + 1);
    }
}

/// What a consumer of the log can observe (bytes, reads from every offset, timestamp lookups),
/// compared between two logs.
fn assert_same_data(a: &Log, b: &Log) {
    let (start, end) = (a.log_start_offset(), a.log_end_offset());
    assert_eq!((start, end), (b.log_start_offset(), b.log_end_offset()));
    let all = |l: &Log| l.read(start, usize::MAX, i64::MAX).unwrap().records;
    assert_eq!(all(a), all(b), "same bytes");
    for o in start..end {
        assert_eq!(
            a.read(o, 1, i64::MAX).unwrap().records,
            b.read(o, 1, i64::MAX).unwrap().records,
            "read at {o}"
        );
    }
    for ts in (900..2100).step_by(7) {
        assert_eq!(
            a.offset_for_timestamp(ts).unwrap(),
            b.offset_for_timestamp(ts).unwrap(),
            "timestamp {ts}"
        );
    }
    assert_eq!(a.max_timestamp(), b.max_timestamp());
}

/// Everything a reader of the log can observe, the epoch cache and the producer state too,
/// compared between two logs.
fn assert_same_log(a: &Log, b: &Log) {
    assert_same_data(a, b);
    let (start, end) = (a.log_start_offset(), a.log_end_offset());
    assert_eq!(a.epoch_entries(), b.epoch_entries());
    for e in -1..10 {
        assert_eq!(
            a.end_offset_for_epoch(e),
            b.end_offset_for_epoch(e),
            "epoch {e}"
        );
    }
    assert_eq!(a.producers(), b.producers());
    assert_eq!(a.open_txns(), b.open_txns());
    assert_eq!(a.aborted_txns(start, end), b.aborted_txns(start, end));
    assert_eq!(a.last_stable_offset(), b.last_stable_offset());
}

/// Timestamp lookups against a scan of every record.
fn assert_timestamps_by_brute_force(log: &Log) {
    let recs = all_records(log);
    for ts in 900..2100 {
        let expect = recs.iter().find(|(_, t)| *t >= ts).copied();
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), expect, "ts {ts}");
    }
    let max = recs.iter().map(|r| r.1).max();
    let first_max = max.and_then(|m| recs.iter().find(|r| r.1 == m).copied());
    assert_eq!(log.max_timestamp(), first_max);
}

/// The segments' in-memory state equals what a rebuild from their files gives.
fn assert_segments_as_rebuilt(log: &Log) {
    for seg in log.segments.values() {
        let file = seg.file.try_clone().unwrap();
        let mut fresh = Segment::empty(seg.base_offset, file, seg.size, 0);
        let (valid, batches) = scan(&fresh.file, seg.base_offset, 0, seg.size, 0, true);
        assert_eq!(valid, seg.size, "segment {} is whole", seg.base_offset);
        for (pos, h) in &batches {
            fresh.index_batch(h, *pos, log.config.index_interval_bytes);
        }
        let b = seg.base_offset;
        assert_eq!(fresh.next_offset, seg.next_offset, "next offset of {b}");
        assert_eq!(fresh.max_timestamp, seg.max_timestamp, "max ts of {b}");
        assert_eq!(
            fresh.offset_of_max_timestamp, seg.offset_of_max_timestamp,
            "offset of max ts of {b}"
        );
        assert_eq!(fresh.first_batch_timestamp, seg.first_batch_timestamp);
        assert_eq!(fresh.ix().index, seg.ix().index, "offset index of {b}");
        assert_eq!(fresh.bytes_since_index, seg.bytes_since_index);
        let on_disk = std::fs::read(seg_path(&log.dir, b, "index")).unwrap();
        assert_eq!(on_disk, encode_index(&seg.ix().index[..seg.index_on_disk]));
    }
}

/// Removes the producer snapshots and the index files of a log directory.
fn remove_snapshots_and_indexes(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let ext = p.extension().and_then(|x| x.to_str()).unwrap_or("");
        if ["snapshot", "index", "timeindex", "txnindex"].contains(&ext) {
            std::fs::remove_file(p).unwrap();
        }
    }
}

#[test]
fn a_follower_copy_of_a_leader_reads_the_same_and_survives_reopening() {
    let d = tempfile::tempdir().unwrap();
    let leader = leader_log(&d.path().join("leader"), config(1000, 100));
    assert!(leader.segment_count() > 5);
    let end = leader.log_end_offset();
    // Followers with other segment and index settings, and one with the leader's.
    for (i, cfg) in [config(1500, 300), config(1000, 100), config(700, 1)]
        .into_iter()
        .enumerate()
    {
        let dir = d.path().join(format!("follower-{i}"));
        let mut follower = Log::open(&dir, cfg.clone(), 0, true).unwrap();
        replicate(&leader, &mut follower, 64 + 400 * i, end, i as u64);
        assert_same_log(&leader, &follower);
        assert_timestamps_by_brute_force(&follower);
        assert_segments_as_rebuilt(&follower);
        // Segments rolled between batches of one fetch: none is past segment.bytes unless it
        // holds a single batch.
        for seg in follower.segments.values() {
            let one_batch = seg.read_header(0).map(|h| h.size_bytes() as u64) == Some(seg.size);
            assert!(seg.size <= cfg.segment_bytes || one_batch);
        }
        // One fetch of everything: the same log again.
        let dir2 = d.path().join(format!("follower-{i}-whole"));
        let mut whole = Log::open(&dir2, cfg.clone(), 0, true).unwrap();
        let all = leader.read(0, usize::MAX, i64::MAX).unwrap().records;
        let info = whole.append_as_follower(&all, 7000).unwrap();
        assert_eq!((info.first_offset, info.last_offset), (0, end - 1));
        assert_eq!(info.valid_bytes, all.len());
        assert_eq!(info.max_timestamp, leader.max_timestamp().unwrap().1);
        assert_same_log(&leader, &whole);
        assert_segments_as_rebuilt(&whole);
        assert!(whole.segment_count() > 1, "rolled inside one append");
        drop(whole);

        // A clean reopen, an unclean one, and one without snapshots or indexes.
        follower.close().unwrap();
        let follower = Log::open(&dir, cfg.clone(), end, true).unwrap();
        assert_same_log(&leader, &follower);
        drop(follower);
        let follower = Log::open(&dir, cfg.clone(), 0, false).unwrap();
        assert_same_log(&leader, &follower);
        drop(follower);
        remove_snapshots_and_indexes(&dir);
        let follower = Log::open(&dir, cfg, 0, false).unwrap();
        assert_same_log(&leader, &follower);
    }
}

#[test]
fn a_follower_copies_a_cleaned_leader_log_with_its_gaps() {
    let d = tempfile::tempdir().unwrap();
    let mut leader = Log::open(&d.path().join("leader"), config(600, 64), 0, true).unwrap();
    for i in 0..120i64 {
        let key = format!("k{}", i % 4);
        let value = format!("v{i}");
        let recs: Vec<TestRecord> = (0..(i % 3 + 1))
            .map(|j| {
                (
                    Some(key.as_bytes()),
                    Some(value.as_bytes()),
                    1000 + i * 10 + j,
                )
            })
            .collect();
        let mut b = build_batch(0, &recs, -1, -1, -1);
        leader
            .append_as_leader(&mut b, (i / 40) as i32, 5000 + i, false)
            .unwrap();
    }
    let end = leader.log_end_offset();
    let range = crate::cleaner::cleanable_range(&leader, None, end, 0, 9000);
    let mut map = crate::cleaner::OffsetMap::new(1 << 16, 0.9);
    let options = crate::cleaner::CleanOptions {
        delete_retention_ms: 0,
        now_ms: 9000,
    };
    let stats = crate::cleaner::clean(&mut leader, &mut map, &range, options).unwrap();
    assert!(stats.groups_swapped > 0 && stats.records_retained < stats.records_read);
    let offsets: Vec<i64> = all_records(&leader).into_iter().map(|(o, _)| o).collect();
    assert!(
        offsets.windows(2).any(|w| w[1] > w[0] + 1),
        "the cleaning left gaps"
    );
    assert_eq!(leader.log_end_offset(), end);
    for (i, (cfg, fetch)) in [(config(600, 64), 100), (config(2000, 300), 5000)]
        .into_iter()
        .enumerate()
    {
        let dir = d.path().join(format!("follower-{i}"));
        let mut follower = Log::open(&dir, cfg.clone(), 0, true).unwrap();
        replicate(&leader, &mut follower, fetch, end, i as u64);
        // The epoch cache starts where the follower's first batch does (the cleaning may have
        // removed the leader's first batches of an epoch), as on Kafka.
        assert_same_data(&leader, &follower);
        assert_segments_as_rebuilt(&follower);
        drop(follower);
        let follower = Log::open(&dir, cfg, 0, false).unwrap();
        assert_same_data(&leader, &follower);
    }
    // A gap right at the log end: the first batch may start past it.
    let mut f = Log::open(&d.path().join("gap"), LogConfig::default(), 0, true).unwrap();
    let mut b = records_batch(2, 10, -1, -1, -1);
    set_base_offset(&mut b, 40);
    let info = f.append_as_follower(&b, 1).unwrap();
    assert_eq!((info.first_offset, info.last_offset), (40, 41));
    assert_eq!(f.log_end_offset(), 42);
    assert_eq!(f.read(3, 1000, i64::MAX).unwrap().records, b);
}

#[test]
fn follower_appends_refuse_offsets_that_go_back_and_corrupt_batches() {
    let d = tempfile::tempdir().unwrap();
    let leader = leader_log(&d.path().join("leader"), config(1 << 20, 100));
    let all = leader.read(0, usize::MAX, i64::MAX).unwrap().records;
    let headers = crate::batch::validate_batches(&all).unwrap();
    let span = |i: usize| {
        let start: usize = headers[..i].iter().map(|h| h.size_bytes()).sum();
        start..start + headers[i].size_bytes()
    };
    let mut f = Log::open(&d.path().join("f"), LogConfig::default(), 0, true).unwrap();
    // Behind the log end.
    f.append_as_follower(&all[span(0)], 1).unwrap();
    match f.append_as_follower(&all[span(0)], 1) {
        Err(AppendError::OffsetMismatch { expected, got }) => {
            assert_eq!((expected, got), (headers[0].next_offset(), 0))
        }
        other => panic!("expected an offset mismatch, got {other:?}"),
    }
    // A fetch whose second batch goes back: nothing of it is written.
    let mut backwards = all[span(1)].to_vec();
    backwards.extend_from_slice(&all[span(1)]);
    assert!(matches!(
        f.append_as_follower(&backwards, 1),
        Err(AppendError::OffsetMismatch { expected, got })
            if expected == headers[2].base_offset && got == headers[1].base_offset
    ));
    assert_eq!(f.log_end_offset(), headers[1].base_offset);
    // A flipped bit in the records of the second batch: nothing written either.
    let mut corrupt = all[span(1).start..span(2).end].to_vec();
    let n = corrupt.len();
    corrupt[n - 3] ^= 0x10;
    assert!(matches!(
        f.append_as_follower(&corrupt, 1),
        Err(AppendError::Batch(BatchError::CorruptCrc))
    ));
    // A length that cannot be a batch; a batch of another format.
    let mut bad_len = all[span(1)].to_vec();
    bad_len[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert!(matches!(
        f.append_as_follower(&bad_len, 1),
        Err(AppendError::Batch(BatchError::InvalidLength(10)))
    ));
    let mut bad_magic = all[span(1)].to_vec();
    bad_magic[16] = 1;
    assert!(matches!(
        f.append_as_follower(&bad_magic, 1),
        Err(AppendError::Batch(BatchError::UnsupportedMagic(1)))
    ));
    assert_eq!(f.log_end_offset(), headers[1].base_offset);
    assert_eq!(f.size_bytes(), headers[0].size_bytes() as u64);
    // The log goes on as if nothing had happened.
    let rest = &all[span(1).start..];
    f.append_as_follower(rest, 1).unwrap();
    assert_same_log(&leader, &f);
}

#[test]
fn a_partial_trailing_batch_is_ignored_and_empty_input_is_a_no_op() {
    let d = tempfile::tempdir().unwrap();
    let leader = leader_log(&d.path().join("leader"), config(1 << 20, 100));
    let all = leader.read(0, usize::MAX, i64::MAX).unwrap().records;
    let headers = crate::batch::validate_batches(&all).unwrap();
    let whole: usize = headers[..3].iter().map(|h| h.size_bytes()).sum();
    let mut f = Log::open(&d.path().join("f"), LogConfig::default(), 0, true).unwrap();
    let info = f.append_as_follower(&[], 1).unwrap();
    assert_eq!(
        info,
        FollowerAppendInfo {
            first_offset: 0,
            last_offset: -1,
            valid_bytes: 0,
            max_timestamp: -1
        }
    );
    // Every cut inside the fourth batch (its length field too) keeps the first three.
    let mut pos = 0;
    for cut in whole..whole + headers[3].size_bytes() {
        let info = f.append_as_follower(&all[pos..cut], 1).unwrap();
        pos += info.valid_bytes;
        assert_eq!(pos, whole, "cut at {cut}");
        assert_eq!(f.log_end_offset(), headers[3].base_offset);
    }
    // Only a partial batch: nothing.
    let info = f.append_as_follower(&all[whole..whole + 70], 1).unwrap();
    assert_eq!(info.valid_bytes, 0);
    assert_eq!(info.first_offset, headers[3].base_offset);
    assert_eq!(info.last_offset, headers[3].base_offset - 1);
    assert_eq!(f.log_end_offset(), headers[3].base_offset);
    // The rest, fetched again from the log end.
    f.append_as_follower(&all[whole..], 1).unwrap();
    assert_same_log(&leader, &f);
}

#[test]
fn follower_producer_state_is_the_leaders_and_its_checks_are_the_leaders_job() {
    let d = tempfile::tempdir().unwrap();
    let mut leader = leader_log(&d.path().join("leader"), config(1000, 100));
    let mut f = Log::open(&d.path().join("f"), config(1500, 300), 0, true).unwrap();
    let end = leader.log_end_offset();
    replicate(&leader, &mut f, 300, end, 9);
    assert_eq!(f.producers(), leader.producers());
    assert!(f
        .producers()
        .iter()
        .any(|p| p.producer_id == 11 && p.epoch == 1));
    // The follower, become leader, judges a retry or a gap as the leader would.
    let last11 = leader
        .producers()
        .into_iter()
        .find(|p| p.producer_id == 11)
        .unwrap();
    let retry = |seq: i32| records_batch(1, 5, 11, 1, seq);
    for log in [&mut leader, &mut f] {
        let first = log.read(0, usize::MAX, i64::MAX).unwrap().records;
        let original = crate::batch::validate_batches(&first)
            .unwrap()
            .into_iter()
            .rfind(|h| h.producer_id == 11)
            .unwrap();
        let mut again = records_batch(
            original.records_count as usize,
            5,
            11,
            1,
            original.base_sequence,
        );
        match log.append_as_leader(&mut again, 6, 1, false) {
            Err(AppendError::DuplicateSequence { first_offset, .. }) => {
                assert_eq!(first_offset, original.base_offset)
            }
            other => panic!("expected a duplicate, got {other:?}"),
        }
        assert!(matches!(
            log.append_as_leader(&mut retry(last11.last_sequence + 5), 6, 1, false),
            Err(AppendError::OutOfOrderSequence)
        ));
    }
    // A follower writes what the leader wrote, sequence gaps, repeats and old epochs included:
    // the leader already made its checks.
    let mut g = Log::open(&d.path().join("g"), LogConfig::default(), 0, true).unwrap();
    let mut next = 0;
    for (pe, seq) in [(3, 0), (3, 7), (3, 7), (2, 0), (3, 1)] {
        let mut b = records_batch(2, 10, 5, pe, seq);
        set_base_offset(&mut b, next);
        g.append_as_follower(&b, 1).unwrap();
        next += 2;
    }
    assert_eq!(g.log_end_offset(), 10);
    let p = &g.producers()[0];
    assert_eq!((p.producer_id, p.epoch, p.last_sequence), (5, 3, 2));
}

#[test]
fn follower_transactions_markers_and_aborted_index_match_the_leader() {
    let d = tempfile::tempdir().unwrap();
    let leader = leader_log(&d.path().join("leader"), config(1000, 100));
    let end = leader.log_end_offset();
    let aborted = leader.aborted_txns(0, end);
    assert!(aborted.len() >= 4, "aborted transactions: {aborted:?}");
    assert_eq!(leader.open_txns().len(), 1);
    assert!(leader.last_stable_offset() < end);
    let dir = d.path().join("f");
    let mut f = Log::open(&dir, config(1500, 300), 0, true).unwrap();
    // Stop the copy right after an abort marker, and right before one.
    let (pid, first) = aborted[1];
    let marker = leader
        .aborted
        .iter()
        .find(|a| a.producer_id == pid && a.first_offset == first)
        .unwrap()
        .last_offset;
    replicate(&leader, &mut f, 200, marker, 3);
    assert_eq!(
        f.last_stable_offset(),
        first,
        "transaction open before its marker"
    );
    assert_eq!(f.aborted_txns(0, marker), aborted[..1].to_vec());
    replicate(&leader, &mut f, 200, marker + 1, 3);
    assert_eq!(f.aborted_txns(0, marker + 1), aborted[..2].to_vec());
    replicate(&leader, &mut f, 200, end, 4);
    assert_same_log(&leader, &f);
    // The follower's .txnindex files alone bring the aborted list back.
    f.reap_background_flush(true).unwrap();
    drop(f);
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let f = Log::open(&dir, config(1500, 300), end, true).unwrap();
    assert_same_log(&leader, &f);
}

/// Batch boundaries of a log, ascending.
fn boundaries(log: &Log) -> Vec<i64> {
    let all = log
        .read(log.log_start_offset(), usize::MAX, i64::MAX)
        .unwrap()
        .records;
    crate::batch::validate_batches(&all)
        .unwrap()
        .iter()
        .map(|h| h.base_offset)
        .collect()
}

#[test]
fn truncation_in_the_middle_equals_a_log_that_stopped_there_and_goes_on_after_reopening() {
    let d = tempfile::tempdir().unwrap();
    let leader = leader_log(&d.path().join("leader"), config(1000, 100));
    // The followers' index is sparser, so that cuts fall between its entries.
    let cfg = config(1000, 350);
    let end = leader.log_end_offset();
    let bases: Vec<i64> = {
        let mut f = Log::open(&d.path().join("layout"), cfg.clone(), 0, true).unwrap();
        replicate(&leader, &mut f, usize::MAX, end, 0);
        f.segments.keys().copied().collect()
    };
    let batches = boundaries(&leader);
    // Inside the second segment, at the third's base, just above the first batch, the last,
    // and every fifth batch boundary.
    let inside = *batches.iter().find(|b| **b > bases[1] + 3).unwrap();
    let mut targets = vec![inside, bases[2], batches[1], *batches.last().unwrap()];
    targets.extend(batches.iter().skip(2).step_by(5));
    for (i, &at) in targets.iter().enumerate() {
        for clean in [true, false] {
            let dir = d.path().join(format!("t{i}-{clean}"));
            let mut f = Log::open(&dir, cfg.clone(), 0, true).unwrap();
            replicate(&leader, &mut f, usize::MAX, end, 0);
            f.close().unwrap();
            let mut f = Log::open(&dir, cfg.clone(), end, true).unwrap();
            let segments_before = f.segment_count();
            assert!(segments_before > 5);
            f.truncate_to(at).unwrap();
            assert_eq!(f.log_end_offset(), at);
            let below = f.segments.keys().filter(|b| **b < at).count();
            assert!(f.segment_count() <= below + 1, "no segment above the cut");
            assert!(f.recovery_point() <= at);
            assert!(list_snapshots(&dir).unwrap().iter().all(|(o, _)| *o <= at));
            // The same as a log that was only ever copied up to `at`.
            let reference_dir = d.path().join(format!("r{i}-{clean}"));
            let mut reference = Log::open(&reference_dir, cfg.clone(), 0, true).unwrap();
            replicate(&leader, &mut reference, 500, at, i as u64);
            assert_same_log(&reference, &f);
            assert_segments_as_rebuilt(&f);
            assert_timestamps_by_brute_force(&f);
            // The rest fetched again from the leader: the leader's log.
            for log in [&mut f, &mut reference] {
                replicate(&leader, log, 300, end, 77);
                assert_same_log(&leader, log);
            }
            f.truncate_to(at).unwrap();
            reference.truncate_to(at).unwrap();
            assert_same_log(&reference, &f);
            // Both go on with a new leader epoch's batches.
            for log in [&mut f, &mut reference] {
                for j in 0..6 {
                    let mut b = records_batch(2, 1500 + j * 30, 11, 9, j as i32 * 2);
                    log.append_as_leader(&mut b, 8, 1, false).unwrap();
                }
            }
            assert_same_log(&reference, &f);
            let leo = f.log_end_offset();
            let rp = f.recovery_point();
            if clean {
                f.close().unwrap();
            } else {
                // A crash; the roll's background flush must not write a snapshot after the
                // files are edited below.
                f.reap_background_flush(true).unwrap();
                drop(f);
            }
            let f = Log::open(&dir, cfg.clone(), if clean { leo } else { rp }, clean).unwrap();
            assert_same_log(&reference, &f);
            assert_timestamps_by_brute_force(&f);
            drop(f);
            // And again without snapshots or indexes: rebuilt from the segments.
            remove_snapshots_and_indexes(&dir);
            let f = Log::open(&dir, cfg.clone(), 0, false).unwrap();
            assert_same_log(&reference, &f);
        }
    }
}

#[test]
fn truncation_rebuilds_transactions_and_producer_state() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("log");
    let mut log = Log::open(&dir, config(400, 50), 0, true).unwrap();
    let mut t = records_batch(3, 100, 7, 0, 0);
    make_transactional(&mut t);
    log.append_as_leader(&mut t, 0, 1, false).unwrap();
    for seq in 0..4 {
        log.append_as_leader(&mut records_batch(1, 100, 9, 0, seq), 0, 1, false)
            .unwrap();
    }
    let marker = log.append_marker(7, 0, false, 0, 0, 1).unwrap();
    assert_eq!(log.aborted_txns(0, marker + 1), vec![(7, 0)]);
    log.append_as_leader(&mut records_batch(1, 100, 9, 0, 4), 0, 1, false)
        .unwrap();
    // Snapshots past the cut (a clean close writes one at the end).
    log.close().unwrap();
    let mut log = Log::open(&dir, config(400, 50), 0, true).unwrap();
    assert!(log.segment_count() > 1);
    assert!(list_snapshots(&dir)
        .unwrap()
        .iter()
        .any(|(o, _)| *o > marker));
    log.truncate_to(marker).unwrap();
    assert!(list_snapshots(&dir)
        .unwrap()
        .iter()
        .all(|(o, _)| *o <= marker));
    // The abort is gone: the transaction is open again and holds the LSO.
    assert_eq!(log.open_txns(), vec![(7, 0, 0)]);
    assert_eq!(log.last_stable_offset(), 0);
    assert_eq!(log.aborted_txns(0, marker), vec![]);
    // Producer 9's last batch went too: its sequence 4 is new again, 5 a gap.
    assert!(matches!(
        log.append_as_leader(&mut records_batch(1, 100, 9, 0, 5), 0, 1, false),
        Err(AppendError::OutOfOrderSequence)
    ));
    // This time the transaction commits.
    assert_eq!(log.append_marker(7, 0, true, 0, 1, 1).unwrap(), marker);
    log.append_as_leader(&mut records_batch(1, 100, 9, 0, 4), 1, 1, false)
        .unwrap();
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    assert_eq!(log.aborted_txns(0, i64::MAX), vec![]);
    let leo = log.log_end_offset();
    drop(log);
    for clean in [true, false] {
        let log = Log::open(&dir, config(400, 50), 0, clean).unwrap();
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(
            log.aborted_txns(0, i64::MAX),
            vec![],
            "no stale .txnindex entry"
        );
        assert_eq!(log.open_txns(), vec![]);
        assert_eq!(log.producers()[1].last_sequence, 4);
    }
}

#[test]
fn truncation_drops_epoch_entries_at_and_after_the_new_end() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("log");
    let mut log = Log::open(&dir, config(300, 50), 0, true).unwrap();
    for (epoch, n) in [(0, 4), (1, 4), (3, 4)] {
        for _ in 0..n {
            log.append_as_leader(&mut records_batch(2, 10, -1, -1, -1), epoch, 1, false)
                .unwrap();
        }
    }
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8), (3, 16)]);
    log.truncate_to(20).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8), (3, 16)]);
    log.truncate_to(16).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 16));
    assert_eq!(log.end_offset_for_epoch(3), (-1, -1));
    // Persisted: a reopen, clean or not, sees the truncated cache.
    drop(log);
    let mut log = Log::open(&dir, config(300, 50), 0, false).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8)]);
    // A new leader's epoch, assigned before it appends, then its batches.
    log.assign_epoch(4, 16).unwrap();
    log.append_as_leader(&mut records_batch(2, 10, -1, -1, -1), 4, 1, false)
        .unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8), (4, 16)]);
    // Cutting inside epoch 1 keeps its entry; cutting at its start removes it.
    log.truncate_to(10).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0), (1, 8)]);
    log.truncate_to(8).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0)]);
    log.close().unwrap();
    let log = Log::open(&dir, config(300, 50), 0, true).unwrap();
    assert_eq!(log.epoch_entries(), &[(0, 0)]);
    assert_eq!(log.end_offset_for_epoch(0), (0, 8));
}

#[test]
fn truncate_fully_and_start_at_and_the_edges_of_truncate_to() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("log");
    let cfg = config(300, 50);
    let mut log = Log::open(&dir, cfg.clone(), 0, true).unwrap();
    for i in 0..10 {
        let mut b = records_batch(3, 10 + i, 4, 0, i as i32 * 3);
        log.append_as_leader(&mut b, i as i32 / 4, 1, false)
            .unwrap();
    }
    let leo = log.log_end_offset();
    // At or past the end: nothing happens; negative: refused.
    log.truncate_to(leo).unwrap();
    log.truncate_to(leo + 100).unwrap();
    assert_eq!(log.log_end_offset(), leo);
    assert!(matches!(
        log.truncate_to(-1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Inside a batch: the whole batch goes.
    log.truncate_to(leo - 2).unwrap();
    assert_eq!(log.log_end_offset(), leo - 3);
    // At or below the log start: the log is empty from the offset asked.
    log.delete_records_before(6).unwrap();
    log.truncate_to(6).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 6));
    assert_eq!(log.size_bytes(), 0);
    log.truncate_to(2).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    // And from scratch somewhere else entirely.
    log.append_as_leader(&mut records_batch(3, 10, 4, 0, 0), 5, 1, false)
        .unwrap();
    log.close().unwrap();
    let mut log = Log::open(&dir, cfg.clone(), 0, true).unwrap();
    assert!(!list_snapshots(&dir).unwrap().is_empty());
    log.truncate_fully_and_start_at(500).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.recovery_point(), 500);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.epoch_entries(), &[]);
    assert_eq!(log.producers(), vec![]);
    assert!(list_snapshots(&dir).unwrap().is_empty());
    assert!(log.read(500, 100, i64::MAX).unwrap().records.is_empty());
    assert!(matches!(
        log.read(2, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // A follower continues at 500 with the leader's batches.
    let mut b = records_batch(2, 10, -1, -1, -1);
    set_base_offset(&mut b, 0);
    assert!(matches!(
        log.append_as_follower(&b, 1),
        Err(AppendError::OffsetMismatch {
            expected: 500,
            got: 0
        })
    ));
    set_base_offset(&mut b, 500);
    set_partition_leader_epoch(&mut b, 7);
    log.append_as_follower(&b, 1).unwrap();
    assert_eq!(log.epoch_entries(), &[(7, 500)]);
    drop(log);
    for (rp, clean) in [(0, false), (502, true)] {
        let log = Log::open(&dir, cfg.clone(), rp, clean).unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 502));
        assert_eq!(log.epoch_entries(), &[(7, 500)]);
        assert_eq!(log.segment_count(), 1);
    }
    // Starting over below the old start is fine too.
    let mut log = Log::open(&dir, cfg.clone(), 0, false).unwrap();
    log.truncate_fully_and_start_at(0).unwrap();
    drop(log);
    let log = Log::open(&dir, cfg, 0, false).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
}

#[test]
fn end_offset_for_epoch_follows_kafka() {
    let d = tempfile::tempdir().unwrap();
    let mut log = Log::open(d.path(), LogConfig::default(), 0, true).unwrap();
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1), "nothing cached");
    for epoch in [1, 3, 6] {
        log.append_as_leader(&mut records_batch(5, 10, -1, -1, -1), epoch, 1, false)
            .unwrap();
    }
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 5), (6, 10)]);
    let cases = [
        (-1, (-1, -1)),
        (0, (0, 0)), // older than any known: the first start offset
        (1, (1, 5)),
        (2, (1, 5)),
        (3, (3, 10)),
        (5, (3, 10)),
        (6, (6, 15)), // the latest: the log end
        (7, (-1, -1)),
    ];
    for (epoch, expect) in cases {
        assert_eq!(log.end_offset_for_epoch(epoch), expect, "epoch {epoch}");
    }
    // A new leader assigns its epoch at the log end before appending.
    log.assign_epoch(8, 15).unwrap();
    assert_eq!(log.end_offset_for_epoch(6), (6, 15));
    assert_eq!(log.end_offset_for_epoch(7), (6, 15));
    assert_eq!(log.end_offset_for_epoch(8), (8, 15));
    assert_eq!(log.end_offset_for_epoch(9), (-1, -1));
    log.append_as_leader(&mut records_batch(5, 10, -1, -1, -1), 8, 1, false)
        .unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 5), (6, 10), (8, 15)]);
    assert_eq!(log.end_offset_for_epoch(8), (8, 20));
    // Below the log start the first entry starts at the log start.
    log.delete_records_before(7).unwrap();
    assert_eq!(log.epoch_entries(), &[(3, 7), (6, 10), (8, 15)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 7));
    assert_eq!(log.end_offset_for_epoch(3), (3, 10));
}

#[test]
fn assign_epoch_works_as_kafkas_leader_epoch_cache() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("log");
    let mut log = Log::open(&dir, LogConfig::default(), 0, true).unwrap();
    for epoch in [1, 3] {
        log.append_as_leader(&mut records_batch(5, 10, -1, -1, -1), epoch, 1, false)
            .unwrap();
    }
    log.append_as_leader(&mut records_batch(5, 10, -1, -1, -1), 3, 1, false)
        .unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 5)]);
    // The latest epoch again, at or after its start: nothing to do.
    log.assign_epoch(3, 7).unwrap();
    log.assign_epoch(3, 5).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 5)]);
    // The latest epoch at an earlier start replaces it.
    log.assign_epoch(3, 4).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 4)]);
    log.assign_epoch(5, 12).unwrap();
    log.assign_epoch(5, 14).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 4), (5, 12)]);
    // A lower epoch drops the entries it conflicts with (by epoch or by start offset).
    log.assign_epoch(4, 12).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (3, 4), (4, 12)]);
    log.assign_epoch(2, 3).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (2, 3)]);
    assert!(matches!(
        log.assign_epoch(-1, 3),
        Err(LogError::InvalidEpochEntry { .. })
    ));
    assert!(matches!(
        log.assign_epoch(9, -3),
        Err(LogError::InvalidEpochEntry { .. })
    ));
    log.assign_epoch(6, 9).unwrap();
    log.assign_epoch(7, 15).unwrap();
    // Persisted; an entry at the log end does not survive a reopen (Kafka's truncateFromEnd).
    drop(log);
    let log = Log::open(&dir, LogConfig::default(), 0, false).unwrap();
    assert_eq!(log.epoch_entries(), &[(1, 0), (2, 3), (6, 9)]);
    // A follower's batch of a lower epoch than the latest entry is assigned the same way.
    drop(log);
    let mut f = Log::open(&d.path().join("f"), LogConfig::default(), 0, true).unwrap();
    f.assign_epoch(9, 0).unwrap();
    let mut b = records_batch(2, 10, -1, -1, -1);
    set_partition_leader_epoch(&mut b, 4);
    f.append_as_follower(&b, 1).unwrap();
    assert_eq!(f.epoch_entries(), &[(4, 0)]);
}
