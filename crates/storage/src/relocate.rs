//! Moving a partition's log to another directory while it keeps serving (what AlterReplicaLogDirs
//! asks for). Kafka copies into a future replica fed by a fetcher thread; Runnel copies the files:
//!
//! 1. [`LogCopy::start`] makes the future directory (`<topic>-<partition>.<id>-future` beside
//!    the target, Kafka's name) and [`LogCopy::copy_pass`] copies the log's files into it without
//!    the log's lock, as often as wanted: a file seen before is copied again only if it changed,
//!    and a segment or index that only grew (no truncation since, [`Log::rewrites`]) gets only
//!    its new tail. Appends and reads go on meanwhile.
//! 2. [`LogCopy::finish`] runs with the log locked by its owner (a short pause): the log is
//!    flushed with a producer snapshot, what changed since the last pass is copied, the copy is
//!    fsynced and renamed into place (`<target>/<topic>-<partition>`), the log is reopened there
//!    and the old directory is renamed to a `-delete` name for the caller to remove.
//!
//! The old directory stays authoritative until the rename of the copy: a crash before it leaves
//! the old log untouched and a future directory to remove at start-up. A crash between the two
//! renames leaves two identical complete copies (nothing was appended in between: the log was
//! locked); either one is a valid log.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::log::{Log, LogError};

/// Suffix of a future log directory (Kafka's `FutureDirSuffix`).
pub const FUTURE_DIR_SUFFIX: &str = "-future";
/// Suffix of a log directory waiting to be deleted (Kafka's `DeleteDirSuffix`).
pub const DELETE_DIR_SUFFIX: &str = "-delete";

/// Bytes copied at a time (the pace callback is called after each chunk).
const CHUNK_BYTES: usize = 1 << 20;

/// What was copied of one file: its length and modification time when it was read, and the
/// log's rewrite count then.
#[derive(Debug, Clone, Copy)]
struct Copied {
    len: u64,
    modified: Option<SystemTime>,
    rewrites: u64,
}

/// Whether a file only ever grows at its end between truncations (segments and their indexes);
/// other files (checkpoints, snapshots, `partition.metadata`) are replaced whole.
fn append_only(name: &str) -> bool {
    [".log", ".index", ".timeindex", ".txnindex"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// A copy of a log's directory in progress (see the module docs).
#[derive(Debug)]
pub struct LogCopy {
    src: PathBuf,
    future: PathBuf,
    copied: HashMap<OsString, Copied>,
    bytes: u64,
}

impl LogCopy {
    /// Starts copying `log` into `future`, which must not exist yet (a leftover from an
    /// abandoned move is removed first).
    pub fn start(log: &Log, future: &Path) -> std::io::Result<LogCopy> {
        if future.exists() {
            std::fs::remove_dir_all(future)?;
        }
        std::fs::create_dir_all(future)?;
        Ok(LogCopy {
            src: log.dir().to_path_buf(),
            future: future.to_path_buf(),
            copied: HashMap::new(),
            bytes: 0,
        })
    }

    /// The future directory.
    pub fn future_dir(&self) -> &Path {
        &self.future
    }

    /// Bytes written into the future directory so far.
    pub fn bytes_copied(&self) -> u64 {
        self.bytes
    }

    /// Bytes the future directory holds now.
    pub fn future_size(&self) -> u64 {
        self.copied.values().map(|c| c.len).sum()
    }

    /// One copy pass without the log's lock: copies every file of the log's directory that is
    /// new or changed since it was last copied, and removes from the copy the files the log
    /// no longer has. `rewrites` is the log's [`Log::rewrites`] read before the pass; `pace` is
    /// called with the bytes of each chunk written (a throttle may sleep there) and stops the
    /// pass with an `Interrupted` error by returning false. Files that vanish meanwhile
    /// (retention) are skipped. Returns the bytes copied.
    pub fn copy_pass(
        &mut self,
        rewrites: u64,
        pace: &mut dyn FnMut(u64) -> bool,
    ) -> std::io::Result<u64> {
        self.pass(rewrites, true, pace)
    }

    fn pass(
        &mut self,
        rewrites: u64,
        sync: bool,
        pace: &mut dyn FnMut(u64) -> bool,
    ) -> std::io::Result<u64> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(&self.src)? {
            let e = e?;
            if e.file_type()?.is_file() && !e.file_name().to_string_lossy().ends_with(".tmp") {
                names.push(e.file_name());
            }
        }
        names.sort();
        let mut total = 0;
        for name in &names {
            match self.copy_file(name, rewrites, sync, pace) {
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // Deleted under us (retention, a roll of an empty segment).
                    self.copied.remove(name);
                    let _ = std::fs::remove_file(self.future.join(name));
                }
                Err(e) => return Err(e),
            }
        }
        let stale: Vec<OsString> = self
            .copied
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in stale {
            self.copied.remove(&name);
            match std::fs::remove_file(self.future.join(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(total)
    }

    /// Copies one file if it changed: its new tail when it only grew, else the whole of it.
    fn copy_file(
        &mut self,
        name: &OsString,
        rewrites: u64,
        sync: bool,
        pace: &mut dyn FnMut(u64) -> bool,
    ) -> std::io::Result<u64> {
        let src_path = self.src.join(name);
        let mut src = File::open(&src_path)?;
        let meta = src.metadata()?;
        let (len, modified) = (meta.len(), meta.modified().ok());
        let before = self.copied.get(name).copied();
        if let Some(b) = before {
            if b.len == len && b.modified == modified && modified.is_some() {
                return Ok(0);
            }
        }
        let from = match before {
            Some(b)
                if append_only(&name.to_string_lossy())
                    && b.rewrites == rewrites
                    && len >= b.len =>
            {
                b.len
            }
            _ => 0,
        };
        let dst_path = self.future.join(name);
        let mut dst = if from == 0 {
            File::create(&dst_path)?
        } else {
            let mut f = OpenOptions::new().write(true).open(&dst_path)?;
            f.set_len(from)?;
            f.seek(SeekFrom::Start(from))?;
            f
        };
        src.seek(SeekFrom::Start(from))?;
        let mut left = len - from;
        let mut buf = vec![0u8; CHUNK_BYTES.min(left as usize).max(1)];
        while left > 0 {
            let want = buf.len().min(left as usize);
            let n = src.read(&mut buf[..want])?;
            if n == 0 {
                // Shorter than it was a moment ago: cut meanwhile, copy it again next time.
                break;
            }
            dst.write_all(&buf[..n])?;
            left -= n as u64;
            if !pace(n as u64) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the copy was stopped",
                ));
            }
        }
        let copied_len = len - left;
        if sync {
            dst.sync_data()?;
        }
        self.copied.insert(
            name.clone(),
            Copied {
                len: copied_len,
                // A short read must not pass for an up-to-date copy.
                modified: if left == 0 { modified } else { None },
                rewrites,
            },
        );
        self.bytes += copied_len - from;
        Ok(copied_len - from)
    }

    /// Completes the move with `log` locked by the caller: flush and producer snapshot, a last
    /// copy pass, fsync of the copy, the copy renamed to `final_dir`, the log reopened there
    /// (it must show the same offsets) and the old directory renamed to `retired` (the caller
    /// deletes it). On an error before the switch the copy is removed and `log` keeps serving
    /// from its old directory.
    pub fn finish(self, log: &mut Log, final_dir: &Path, retired: &Path) -> Result<(), LogError> {
        let future = self.future.clone();
        match self.finish_inner(log, final_dir, retired) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&future);
                Err(e)
            }
        }
    }

    fn finish_inner(
        mut self,
        log: &mut Log,
        final_dir: &Path,
        retired: &Path,
    ) -> Result<(), LogError> {
        if log.dir() != self.src {
            return Err(LogError::Corrupt(format!(
                "the log moved to {} during the copy",
                log.dir().display()
            )));
        }
        if final_dir.exists() {
            return Err(LogError::Io(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} already exists", final_dir.display()),
            )));
        }
        log.flush_and_snapshot()?;
        let rewrites = log.rewrites();
        // Copied in the unlocked passes: already synced. Copied now: synced below.
        let before: HashMap<OsString, Copied> = self.copied.clone();
        self.pass(rewrites, false, &mut |_| true)?;
        for (name, c) in &self.copied {
            let unchanged = before
                .get(name)
                .is_some_and(|b| b.len == c.len && b.modified == c.modified);
            if !unchanged {
                File::open(self.future.join(name))?.sync_all()?;
            }
        }
        sync_dir(&self.future)?;
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        std::fs::rename(&self.future, final_dir)?;
        sync_parent(final_dir)?;
        let reopened = Log::open(final_dir, log.config().clone(), end, true).and_then(|l| {
            if (l.log_start_offset(), l.log_end_offset()) == (start, end) {
                Ok(l)
            } else {
                Err(LogError::Corrupt(format!(
                    "the copy in {} holds offsets {}..{}, the log {start}..{end}",
                    final_dir.display(),
                    l.log_start_offset(),
                    l.log_end_offset()
                )))
            }
        });
        let reopened = match reopened {
            Ok(l) => l,
            Err(e) => {
                let _ = std::fs::rename(final_dir, &self.future);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&self.src, retired).and_then(|()| sync_parent(retired)) {
            drop(reopened);
            let _ = std::fs::rename(final_dir, &self.future);
            return Err(e.into());
        }
        tracing::info!(from = %self.src.display(), to = %final_dir.display(), offsets = ?(start, end), "log moved");
        *log = reopened;
        Ok(())
    }
}

/// fsyncs a directory.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// fsyncs the directory holding `path`.
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => sync_dir(p),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::testing::build_batch;
    use std::sync::{Arc, Mutex};

    fn small() -> LogConfig {
        LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    fn append(log: &mut Log, i: usize) -> i64 {
        let value = format!("record-{i:06}");
        let mut b = build_batch(
            0,
            &[(None, Some(value.as_bytes()), 1_700_000_000_000 + i as i64)],
            -1,
            -1,
            -1,
        );
        log.append_as_leader(&mut b, 3, 1_700_000_000_000, false)
            .unwrap()
            .first_offset
    }

    /// Every record of the log, as (offset, value).
    fn records(log: &Log) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = log.log_start_offset();
        while at < log.log_end_offset() {
            let r = log.read(at, 1 << 20, i64::MAX).unwrap();
            let mut buf = &r.records[..];
            assert!(!buf.is_empty());
            while !buf.is_empty() {
                let h = crate::batch::BatchHeader::parse(buf).unwrap();
                let batch = &buf[..h.size_bytes()];
                let mut pos = crate::batch::HEADER_SIZE;
                while let Some(rec) = crate::batch::read_record(batch, &mut pos) {
                    let value = batch[rec.value.unwrap()].to_vec();
                    out.push((h.base_offset + rec.offset_delta, value));
                }
                at = h.next_offset();
                buf = &buf[h.size_bytes()..];
            }
        }
        out
    }

    #[test]
    fn a_move_with_concurrent_appends_keeps_every_record() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&b).unwrap();
        let mut log = Log::open(&a.join("t-0"), small(), 0, false).unwrap();
        for i in 0..300 {
            append(&mut log, i);
        }
        log.assign_epoch(3, 0).unwrap();
        assert!(log.segment_count() > 3);
        let log = Arc::new(Mutex::new(log));
        let future = b.join("t-0.abc-future");
        let mut copy = LogCopy::start(&log.lock().unwrap(), &future).unwrap();
        // A writer appends throughout; retention-free config keeps every segment.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 300;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    append(&mut log.lock().unwrap(), i);
                    i += 1;
                    if i % 50 == 0 {
                        std::thread::yield_now();
                    }
                }
                i
            })
        };
        let mut paced = 0;
        for _ in 0..3 {
            let rewrites = log.lock().unwrap().rewrites();
            copy.copy_pass(rewrites, &mut |n| {
                paced += n;
                true
            })
            .unwrap();
        }
        assert!(paced > 0 && copy.bytes_copied() == paced);
        // The old directory is still the log's until the switch.
        assert_eq!(log.lock().unwrap().dir(), a.join("t-0"));
        {
            let mut l = log.lock().unwrap();
            copy.finish(&mut l, &b.join("t-0"), &a.join("t-0.xyz-delete"))
                .unwrap();
            assert_eq!(l.dir(), b.join("t-0"));
        }
        // Appends continue in the new directory.
        std::thread::sleep(std::time::Duration::from_millis(20));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written = writer.join().unwrap();
        let l = log.lock().unwrap();
        let got = records(&l);
        assert_eq!(got.len(), written);
        for (i, (offset, value)) in got.iter().enumerate() {
            assert_eq!(*offset, i as i64);
            assert_eq!(value, format!("record-{i:06}").as_bytes());
        }
        assert_eq!(l.epoch_entries(), &[(3, 0)]);
        assert!(!future.exists() && !a.join("t-0").exists());
        assert!(a.join("t-0.xyz-delete").exists());
        drop(l);
        // Reopened after a crash (no clean shutdown), the moved log has it all.
        assert_eq!(Arc::strong_count(&log), 1);
        drop(log);
        let reopened = Log::open(&b.join("t-0"), small(), 0, false).unwrap();
        assert_eq!(records(&reopened).len(), written);
    }

    #[test]
    fn a_crash_mid_copy_leaves_the_old_log_whole() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let mut log = Log::open(&a.join("t-0"), small(), 0, false).unwrap();
        for i in 0..200 {
            append(&mut log, i);
        }
        let future = b.join("t-0.abc-future");
        let mut copy = LogCopy::start(&log, &future).unwrap();
        copy.copy_pass(log.rewrites(), &mut |_| true).unwrap();
        for i in 200..250 {
            append(&mut log, i);
        }
        // The process dies here: no finish, no clean shutdown.
        drop(copy);
        drop(log);
        assert!(future.exists());
        let reopened = Log::open(&a.join("t-0"), small(), 0, false).unwrap();
        assert_eq!(reopened.log_end_offset(), 250);
        assert_eq!(records(&reopened).len(), 250);
    }

    #[test]
    fn a_truncation_during_the_copy_is_copied_whole() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(&b).unwrap();
        let mut log = Log::open(&a.join("t-0"), small(), 0, false).unwrap();
        for i in 0..100 {
            append(&mut log, i);
        }
        let mut copy = LogCopy::start(&log, &b.join("t-0.f-future")).unwrap();
        copy.copy_pass(log.rewrites(), &mut |_| true).unwrap();
        // A follower's truncation, then different records at the same offsets: same sizes.
        log.truncate_to(90).unwrap();
        for i in 0..10 {
            append(&mut log, 900_000 + i);
        }
        let before = records(&log);
        copy.finish(&mut log, &b.join("t-0"), &a.join("t-0.d-delete"))
            .unwrap();
        assert_eq!(records(&log), before);
        assert_eq!(
            before[95].1,
            format!("record-{:06}", 900_005).as_bytes().to_vec()
        );
    }

    #[test]
    fn finish_refuses_an_existing_target_and_keeps_the_old_log() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        let mut log = Log::open(&a.join("t-0"), small(), 0, false).unwrap();
        append(&mut log, 0);
        std::fs::create_dir_all(b.join("t-0")).unwrap();
        let copy = LogCopy::start(&log, &b.join("t-0.f-future")).unwrap();
        assert!(copy
            .finish(&mut log, &b.join("t-0"), &a.join("t-0.d-delete"))
            .is_err());
        assert_eq!(log.dir(), a.join("t-0"));
        assert!(!b.join("t-0.f-future").exists());
        append(&mut log, 1);
        assert_eq!(log.log_end_offset(), 2);
    }
}
