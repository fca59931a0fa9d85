//! Reading a log: whole batches from an offset ([`Log::read`]), planned under the partition's
//! lock and read from the segment files outside it ([`Log::plan_read`], [`ReadPlan`]), and the
//! timestamp lookups of ListOffsets.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

use super::*;

/// A byte range of one segment file that a planned read covers.
#[derive(Debug)]
struct ReadPiece {
    file: Arc<File>,
    pos: u64,
    len: usize,
}

/// A read planned by [`Log::plan_read`] under the log's lock, to be done without it.
#[derive(Debug)]
pub struct ReadPlan {
    pieces: Vec<ReadPiece>,
    max_offset: i64,
}

impl ReadPlan {
    /// How many bytes the planned batches take: what [`ReadPlan::execute`] returns unless the
    /// log was cut since the plan.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// No batch planned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The planned byte ranges, in order: (segment file, position, length). For sending the
    /// batches straight from the files (`sendfile`) instead of reading them first.
    pub fn ranges(&self) -> impl Iterator<Item = (&Arc<File>, u64, usize)> {
        self.pieces.iter().map(|p| (&p.file, p.pos, p.len))
    }

    /// Reads the planned ranges and keeps the whole batches below the plan's max offset,
    /// stopping at the first range that ends inside a batch (by size, or because the log was
    /// truncated since the plan: a short read ends the records there, it is not an error).
    pub fn execute(self) -> Result<ReadResult, LogError> {
        let mut out: Vec<u8> = Vec::new();
        let mut first = None;
        for piece in self.pieces {
            let start = out.len();
            out.resize(start + piece.len, 0);
            let got = read_up_to(&piece.file, &mut out[start..], piece.pos)?;
            out.truncate(start + got);
            let mut end = start;
            while end + HEADER_SIZE <= out.len() {
                let Ok(b) = BatchHeader::parse(&out[end..]) else {
                    break;
                };
                if b.base_offset >= self.max_offset || end + b.size_bytes() > out.len() {
                    break;
                }
                first.get_or_insert(b.base_offset);
                end += b.size_bytes();
            }
            out.truncate(end);
            if end - start < piece.len {
                // Stopped inside this segment: by size, by max_offset or at a cut.
                break;
            }
        }
        Ok(ReadResult {
            records: Bytes::from(out),
            first_batch_base_offset: first,
        })
    }
}

/// Reads into `buf` from `pos` until it is full or the file ends; how many bytes were read.
fn read_up_to(file: &File, buf: &mut [u8], pos: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl Log {
    /// Reads whole batches from the one containing `start_offset`, up to `max_bytes` (at least
    /// one batch), stopping before `max_offset`.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadResult, LogError> {
        self.plan_read(start_offset, max_bytes, max_offset)?
            .execute()
    }

    /// Plans [`Log::read`]: which byte ranges of which segment files hold exactly the whole
    /// batches wanted. Cheap (index lookups and a few batch headers read), so it is what runs
    /// under the partition's lock; the file reads happen in [`ReadPlan::execute`], or the ranges
    /// are sent as they are ([`ReadPlan::ranges`]), outside it.
    pub fn plan_read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
    ) -> Result<ReadPlan, LogError> {
        let leo = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > leo {
            return Err(LogError::OffsetOutOfRange {
                requested: start_offset,
                log_start: self.log_start_offset,
                log_end: leo,
            });
        }
        let mut pieces = Vec::new();
        let mut planned = 0usize;
        let mut offset = start_offset;
        let segments = self
            .segments
            .range(..=start_offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(start_offset + 1..));
        for (_, seg) in segments {
            if offset >= max_offset || (planned > 0 && planned >= max_bytes) {
                break;
            }
            if seg.next_offset <= offset {
                continue;
            }
            let Some((pos, h)) = seg.find(offset.max(seg.base_offset)) else {
                continue;
            };
            if h.base_offset >= max_offset {
                break;
            }
            // Exactly the whole batches wanted: those below max_offset (a batch holding it is
            // in), within max_bytes, the first batch whole even when it exceeds max_bytes.
            let room = max_bytes.saturating_sub(planned);
            let room = if planned == 0 {
                room.max(h.size_bytes())
            } else {
                room
            };
            let by_size = seg.batch_end_at_or_below(pos, pos.saturating_add(room as u64));
            let by_offset = if max_offset < seg.next_offset {
                match seg.find(max_offset) {
                    Some((p, m)) if m.base_offset < max_offset => p + m.size_bytes() as u64,
                    Some((p, _)) => p,
                    None => seg.size,
                }
            } else {
                seg.size
            };
            let end = by_size.min(by_offset);
            if end <= pos {
                break;
            }
            pieces.push(ReadPiece {
                file: Arc::clone(&seg.file),
                pos,
                len: (end - pos) as usize,
            });
            planned += (end - pos) as usize;
            if end < seg.size {
                break;
            }
            offset = seg.next_offset;
        }
        Ok(ReadPlan { pieces, max_offset })
    }

    /// ListOffsets by timestamp: the first (offset, timestamp) at or above the log start whose
    /// record timestamp is at least `ts`. Uncompressed batches are searched record by record; for
    /// a compressed batch the answer is its base offset and max timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let mut buf = Vec::new();
        for seg in self.segments.values() {
            if seg.max_timestamp < ts || seg.next_offset <= self.log_start_offset {
                continue;
            }
            let Some((start_pos, _)) = seg.find(self.log_start_offset.max(seg.base_offset)) else {
                continue;
            };
            let mut pos = start_pos.max(seg.time_lookup_position(ts));
            while let Some(h) = seg.read_header(pos) {
                if h.max_timestamp >= ts {
                    buf.resize(h.size_bytes(), 0);
                    seg.file.read_exact_at(&mut buf, pos)?;
                    match record_timestamps(&buf) {
                        Some(records) => {
                            if let Some(&(o, t)) = records
                                .iter()
                                .find(|(o, t)| *t >= ts && *o >= self.log_start_offset)
                            {
                                return Ok(Some((o, t)));
                            }
                        }
                        None => {
                            return Ok(Some((
                                h.base_offset.max(self.log_start_offset),
                                h.max_timestamp,
                            )))
                        }
                    }
                }
                pos += h.size_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: the (offset, timestamp) of the first record with the largest
    /// timestamp at or above the log start (for a compressed batch, its last offset).
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut seg: Option<&Segment> = None;
        for s in self.segments.values() {
            if s.next_offset > self.log_start_offset
                && s.max_timestamp >= 0
                && seg.is_none_or(|best| s.max_timestamp > best.max_timestamp)
            {
                seg = Some(s);
            }
        }
        let seg = seg?;
        let from = seg
            .offset_of_max_timestamp
            .max(self.log_start_offset)
            .max(seg.base_offset);
        let (mut pos, _) = seg.find(from)?;
        let mut buf = Vec::new();
        while let Some(h) = seg.read_header(pos) {
            if h.max_timestamp == seg.max_timestamp {
                buf.resize(h.size_bytes(), 0);
                seg.file.read_exact_at(&mut buf, pos).ok()?;
                let exact = record_timestamps(&buf).and_then(|r| {
                    r.into_iter()
                        .find(|&(o, t)| t == h.max_timestamp && o >= self.log_start_offset)
                });
                return Some(exact.unwrap_or((h.last_offset(), h.max_timestamp)));
            }
            pos += h.size_bytes() as u64;
        }
        None
    }
}
