//! The reader side: a named persistent cursor, zero-copy batches (backpressure mode) or
//! validated copies (broadcast mode), replay, and skipping the slots of dead writers.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::*;
use super::shared::Inner;
use super::writer::abandon_range;
use super::RingMode;
use crate::error::CoreError;
use crate::record::BidRecord;

/// One reader's view of the ring through a persistent named cursor. Not shareable between
/// threads (`&mut self`); open one reader per consuming thread or process.
pub struct RingReader {
    inner: Arc<Inner>,
    entry: u32,
    /// The batch handed out by the last read: [pending_start, pending_end), not yet acknowledged.
    pending_start: u64,
    pending_end: u64,
    copy_buf: Vec<u8>,
    abandon_after: Duration,
    /// A stall on an uncommitted slot: (seq, since, tail when first seen).
    stall: Option<(u64, Instant, u64)>,
}

/// A batch of committed records starting at `start_seq`. Borrowed from the reader: in
/// backpressure mode a zero-copy view of the mapping, stable until the next read or commit; in
/// broadcast mode a validated copy in the reader's buffer.
pub struct RingBatch<'a> {
    start_seq: u64,
    n: usize,
    rec_size: usize,
    data: &'a [u8],
}

impl<'a> RingBatch<'a> {
    pub fn start_seq(&self) -> u64 {
        self.start_seq
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn record_size(&self) -> usize {
        self.rec_size
    }
    /// The raw bytes of the records.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    /// The records as [`BidRecord`]s; empty unless the ring holds 48-byte records.
    pub fn records(&self) -> &'a [BidRecord] {
        if self.rec_size != BidRecord::SIZE || self.n == 0 {
            return &[];
        }
        // SAFETY: the data is n * 48 bytes, 8-aligned (slots start on a page plus a multiple of
        // 48; the copy buffer is built from u64s), and every bit pattern is a valid BidRecord.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr() as *const BidRecord, self.n) }
    }
}

impl RingReader {
    pub(super) fn new(inner: Arc<Inner>, entry: u32) -> Self {
        let c = inner.entry_cursor(entry).load(Ordering::SeqCst);
        RingReader {
            inner,
            entry,
            pending_start: c,
            pending_end: c,
            copy_buf: Vec::new(),
            abandon_after: DEFAULT_ABANDON_AFTER,
            stall: None,
        }
    }

    /// Bytes per record of the ring.
    pub fn record_size(&self) -> usize {
        self.inner.rec_size
    }
    /// The reader's name.
    pub fn name(&self) -> String {
        self.inner.entry_name(self.entry)
    }
    /// How long an uncommitted reserved slot may stall this reader before it is abandoned.
    pub fn set_abandon_after(&mut self, d: Duration) {
        self.abandon_after = d;
    }
    pub fn abandon_after(&self) -> Duration {
        self.abandon_after
    }
    /// The next sequence number a read would return (the end of the held batch).
    pub fn position(&self) -> u64 {
        self.pending_end
    }
    /// Whether the ring was sealed (no more appends from any process).
    pub fn is_closed(&self) -> bool {
        self.inner.closed()
    }
    /// The persistent acknowledged cursor.
    pub fn acknowledged(&self) -> u64 {
        self.inner.entry_cursor(self.entry).load(Ordering::SeqCst)
    }
    /// Committed records between the reader's position and the tail (ignores uncommitted gaps).
    pub fn lag(&self) -> u64 {
        self.inner.tail().load(Ordering::SeqCst).saturating_sub(self.pending_end)
    }

    /// Checks that the file is still the ring this reader mapped (see [`super::BidRing::check`]).
    pub fn check(&self) -> Result<(), CoreError> {
        self.inner.verify()
    }

    fn check_registered(&self) -> Result<(), CoreError> {
        self.inner.check()?;
        if self.inner.entry_state(self.entry).load(Ordering::SeqCst) != ENTRY_ACTIVE {
            return Err(CoreError::invalid("reader", "this reader was removed from the ring"));
        }
        Ok(())
    }

    fn store_cursor(&mut self, c: u64) {
        self.inner.entry_cursor(self.entry).store(c, Ordering::SeqCst);
        if self.inner.mode == RingMode::Backpressure {
            self.inner.wake(OFF_SPACE_FUTEX, OFF_SPACE_WAITERS);
        }
    }

    /// Acknowledges the batch handed out by the last read. In backpressure mode it first checks
    /// that the batch was not overwritten while held (only possible if this cursor was moved
    /// backwards by a replay racing with writers); if it was, the error says so.
    pub fn commit(&mut self) -> Result<(), CoreError> {
        self.inner.check()?;
        let (s, e) = (self.pending_start, self.pending_end);
        if e == s {
            return Ok(());
        }
        // Check before acknowledging: once the cursor moves, writers may reuse the slots.
        let mut bad = None;
        if self.inner.mode == RingMode::Backpressure {
            bad = (s..e).find(|&seq| self.inner.stamp(seq).load(Ordering::Acquire) != seq + 1);
            // Stamps read from pages the file no longer has are zeros, not an overrun.
            self.inner.check()?;
        }
        self.pending_start = e;
        self.store_cursor(e);
        match bad {
            Some(seq) => Err(CoreError::Overrun { lost: e - seq, next_seq: e }),
            None => Ok(()),
        }
    }

    /// Hands the batch of the last read back without acknowledging it: the next read returns
    /// the same records again (in broadcast mode, unless they were overwritten meanwhile).
    /// For a caller that could not deliver the batch, e.g. because it was interrupted.
    pub fn unread(&mut self) {
        self.pending_end = self.pending_start;
    }

    /// Moves the cursor to `from_seq` (back to replay, or forward to skip). Drops the held batch.
    /// `from_seq` must lie within `[oldest, tail]`.
    pub fn replay(&mut self, from_seq: u64) -> Result<(), CoreError> {
        // Rare, and touches no slot: the full check of the file.
        self.inner.verify()?;
        self.check_registered()?;
        let tail = self.inner.tail().load(Ordering::SeqCst);
        let oldest = tail.saturating_sub(self.inner.cap);
        if from_seq > tail {
            return Err(CoreError::invalid(
                "from_seq",
                format!("{from_seq} is past the tail {tail}"),
            ));
        }
        if from_seq < oldest {
            return Err(CoreError::Overrun { lost: oldest - from_seq, next_seq: oldest });
        }
        self.pending_start = from_seq;
        self.pending_end = from_seq;
        self.stall = None;
        self.store_cursor(from_seq);
        Ok(())
    }

    /// Whether a read would return at least one record now (or the ring is closed and drained).
    fn ready(inner: &Inner, pos: u64) -> bool {
        let cur = inner.stamp(pos).load(Ordering::Acquire);
        let cs = cur & SEQ_BITS;
        // Committed (or abandoned, which read skips), lapped (read reports it), or closed.
        cs > pos + 1
            || (cs == pos + 1 && cur & WRITING == 0)
            || inner.closed()
            || inner.tail().load(Ordering::Acquire) > pos + inner.cap
    }

    /// Waits until a read would return records, or the timeout: spins briefly, then sleeps on
    /// a futex. True if records are there. A reserved slot whose writer stalls is also reported
    /// as ready once `abandon_after` has passed, so that the next read can skip it.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let inner = self.inner.clone();
        let pos = self.pending_end;
        let tail = inner.tail().load(Ordering::SeqCst);
        // The stall clock starts when a read or a wait first finds the slot reserved, so that
        // waits in short slices still reach `abandon_after`.
        let stall_deadline = if tail > pos {
            let since = match self.stall {
                Some((s, since, _)) if s == pos => since,
                _ => {
                    let now = Instant::now();
                    self.stall = Some((pos, now, tail));
                    now
                }
            };
            since.checked_add(self.abandon_after)
        } else {
            None
        };
        let mut ready =
            || Self::ready(&inner, pos) || stall_deadline.is_some_and(|d| Instant::now() >= d);
        inner.wait_until(OFF_DATA_FUTEX, OFF_DATA_WAITERS, timeout, &mut ready)
    }

    /// Acknowledges the held batch, then returns up to `max_n` committed records from the
    /// cursor on (contiguous: never past the end of the ring). Empty when nothing is committed.
    /// Broadcast mode: a lapped reader gets `Overrun { lost, next_seq }` and resumes at
    /// `next_seq`.
    pub fn read(&mut self, max_n: usize) -> Result<RingBatch<'_>, CoreError> {
        self.check_registered()?;
        self.commit()?;
        let inn = self.inner.clone();
        let mut pos = self.pending_end;
        if inn.mode == RingMode::Broadcast {
            let oldest = inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap);
            if pos < oldest {
                return Err(self.overrun(pos, oldest));
            }
        }
        let mut skipped = 0u64;
        let (n, start) = loop {
            let room = (inn.cap - (pos & inn.mask)).min(max_n as u64);
            let mut n = 0u64;
            let mut skip = false;
            while n < room {
                let seq = pos + n;
                let cur = inn.stamp(seq).load(Ordering::Acquire);
                let cs = cur & SEQ_BITS;
                if cur == seq + 1 {
                    n += 1;
                    continue;
                }
                if cur == ABANDONED | (seq + 1) {
                    skip = n == 0;
                    break;
                }
                if cs > seq + 1 {
                    // The slot was reused: we were lapped (broadcast) mid-scan.
                    if n == 0 {
                        let oldest =
                            inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap).max(seq + 1);
                        return Err(self.overrun(seq, oldest));
                    }
                    break;
                }
                if n == 0 && self.check_stall(seq) {
                    skip = true;
                }
                break;
            }
            if skip {
                // An abandoned slot at the cursor: acknowledge it and look again.
                pos += 1;
                self.pending_start = pos;
                self.pending_end = pos;
                self.store_cursor(pos);
                // At most one lap of skips per call: a tail corrupted far ahead of the records
                // must not keep one read busy for ever (the next read goes on).
                skipped += 1;
                if skipped >= inn.cap {
                    break (0, pos);
                }
                continue;
            }
            break (n, pos);
        };
        // A page that faulted during the scan (the file shrank) read as zeros: not a record.
        inn.check()?;
        if n > 0 {
            self.stall = None;
        }
        let rs = inn.rec_size;
        let len = n as usize * rs;
        let data: &[u8] = if inn.mode == RingMode::Broadcast && n > 0 {
            // Copy, then confirm every slot still holds the record we expected (seqlock).
            self.copy_buf.clear();
            self.copy_buf.reserve(len + 8);
            let off = self.copy_buf.as_ptr().align_offset(8);
            self.copy_buf.resize(off + len, 0);
            // SAFETY: source is n contiguous slots inside the mapping; destination has room.
            // A concurrent overwrite can race with this copy; the stamps checked below tell us
            // and the bytes of such slots are discarded.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    inn.slot_ptr(start),
                    self.copy_buf.as_mut_ptr().add(off),
                    len,
                )
            };
            fence(Ordering::Acquire);
            inn.check()?;
            let mut good = n;
            for k in 0..n {
                if inn.stamp(start + k).load(Ordering::Relaxed) != start + k + 1 {
                    good = k;
                    break;
                }
            }
            if good == 0 {
                let oldest =
                    inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap).max(start + 1);
                return Err(self.overrun(start, oldest));
            }
            self.pending_start = start;
            self.pending_end = start + good;
            return Ok(RingBatch {
                start_seq: start,
                n: good as usize,
                rec_size: rs,
                data: &self.copy_buf[off..off + good as usize * rs],
            });
        } else if n > 0 {
            // SAFETY: the n slots are committed and, in backpressure mode, protected from
            // writers by our acknowledged cursor (= start) until the next read/commit, which
            // needs `&mut self` and so ends this borrow first.
            unsafe { std::slice::from_raw_parts(inn.slot_ptr(start), len) }
        } else {
            &[]
        };
        self.pending_start = start;
        self.pending_end = start + n;
        Ok(RingBatch { start_seq: start, n: n as usize, rec_size: rs, data })
    }

    /// Like [`read`](Self::read) but copies into `out` (whole records); returns how many.
    pub fn read_into(&mut self, out: &mut [u8]) -> Result<usize, CoreError> {
        let rs = self.inner.rec_size;
        let b = self.read(out.len() / rs)?;
        let n = b.len();
        out[..n * rs].copy_from_slice(b.bytes());
        Ok(n)
    }

    /// Reports an overrun at `pos` and moves the cursor to `oldest`.
    fn overrun(&mut self, pos: u64, oldest: u64) -> CoreError {
        self.pending_start = oldest;
        self.pending_end = oldest;
        self.stall = None;
        self.store_cursor(oldest);
        CoreError::Overrun { lost: oldest - pos, next_seq: oldest }
    }

    /// Called when the slot at the cursor is not committed. Returns true if it was (or has just
    /// been) declared abandoned.
    fn check_stall(&mut self, seq: u64) -> bool {
        let inn = &self.inner;
        let tail = inn.tail().load(Ordering::SeqCst);
        if tail <= seq {
            self.stall = None;
            return false; // nothing reserved there yet: just empty
        }
        match self.stall {
            Some((s, since, t0)) if s == seq || (seq < t0 && s < seq) => {
                if since.elapsed() >= self.abandon_after {
                    abandon_range(inn, seq, t0);
                    let cur = inn.stamp(seq).load(Ordering::Acquire);
                    return cur == ABANDONED | (seq + 1);
                }
                false
            }
            _ => {
                self.stall = Some((seq, Instant::now(), tail));
                if self.abandon_after.is_zero() {
                    return self.check_stall(seq);
                }
                false
            }
        }
    }
}
