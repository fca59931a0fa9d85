//! The replication decisions that need no I/O beyond reading a log's epoch cache, kept apart so
//! that the broker and the replication simulation (`tests/replication_sim.rs`) run the same code:
//! the leader's diverging-epoch check of a follower fetch (KIP-320) and the follower's
//! truncation target once told its log diverged.

use runnel_storage::log::Log;

/// The leader's check of a follower fetch at `fetch_offset` whose last fetched batch was in
/// `last_fetched_epoch`: `Some((epoch, end_offset))` (the largest epoch of the leader's history
/// at or below it and where that epoch ends) when the follower's log diverged, i.e. the leader
/// knows no such epoch or it ends before `fetch_offset`; `None` when the follower may read on
/// (or sent no epoch: -1).
pub fn diverging_epoch(
    log: &Log,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Option<(i32, i64)> {
    if last_fetched_epoch < 0 {
        return None;
    }
    let (epoch, end) = log.end_offset_for_epoch(last_fetched_epoch);
    if epoch != last_fetched_epoch || end < fetch_offset {
        Some((epoch, end))
    } else {
        None
    }
}

/// The follower's truncation offset after the leader answered a fetch with the diverging epoch
/// `diverging_epoch` ending at `leader_end_offset`: where the local history of that epoch ends,
/// capped by the leader's end (the leader's end alone when the local log knows no epoch at or
/// below it), kept within the local log (between its start and end offsets).
pub fn truncation_target(log: &Log, diverging_epoch: i32, leader_end_offset: i64) -> i64 {
    let (epoch, end) = log.end_offset_for_epoch(diverging_epoch);
    let target = if epoch < 0 {
        leader_end_offset
    } else {
        end.min(leader_end_offset)
    };
    target.min(log.log_end_offset()).max(log.log_start_offset())
}
