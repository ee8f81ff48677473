//! The writer side: reserving sequence numbers, claiming and filling slots, committing stamps,
//! backpressure waits, and marking the slots of dead writers abandoned.

use std::sync::atomic::{fence, Ordering};
use std::time::{Duration, Instant};

use super::layout::*;
use super::record_type::RecordType;
use super::shared::Inner;
use super::{BidRing, RingMode};
use crate::error::CoreError;
use crate::record::{validate_records, BidRecord};

impl BidRing {
    /// Reserves up to `want` sequence numbers; returns (first, n, exclusive). `exclusive` means
    /// the reservation was bounded by the registered readers' acknowledged cursors, so every
    /// previous occupant of these slots was committed (or abandoned) and read: no other writer
    /// can be in them, and the slots need no claim.
    fn reserve(&self, want: u64) -> Result<(u64, u64, bool), CoreError> {
        let inn = &self.inner;
        if inn.closed() {
            return Err(CoreError::Closed);
        }
        if want == 0 {
            return Ok((inn.tail().load(Ordering::SeqCst), 0, false));
        }
        let tail = inn.tail();
        loop {
            let t = tail.load(Ordering::SeqCst);
            let (n, exclusive) = match inn.mode {
                RingMode::Broadcast => (want, false),
                RingMode::Backpressure => {
                    let epoch = inn.u32_at(OFF_EPOCH).load(Ordering::SeqCst);
                    let mut limit = self.limit_cache.load(Ordering::Relaxed);
                    if epoch != self.epoch_cache.load(Ordering::Relaxed) || t + want > limit {
                        limit = inn.min_cursor().map_or(u64::MAX, |c| c + inn.cap);
                        self.limit_cache.store(limit, Ordering::Relaxed);
                        self.epoch_cache.store(epoch, Ordering::Relaxed);
                    }
                    (want.min(limit.saturating_sub(t)), limit != u64::MAX)
                }
            };
            if n == 0 {
                return Ok((t, 0, exclusive));
            }
            if tail.compare_exchange_weak(t, t + n, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                return Ok((t, n, exclusive));
            }
        }
    }

    /// Claims slot `seq` for writing; false if the slot belongs to a newer record or was
    /// declared abandoned (the record is then counted in `lost_writes`).
    fn claim(&self, seq: u64) -> bool {
        let st = self.inner.stamp(seq);
        let mine = seq + 1;
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        loop {
            let cur = st.load(Ordering::Acquire);
            let cs = cur & SEQ_BITS;
            if cs >= mine {
                // Abandoned by a reader (our writer was too slow) or lapped in broadcast mode.
                return false;
            }
            if cur & WRITING != 0 {
                // An older writer is still filling the slot a whole lap behind us (broadcast
                // mode only); wait for it, and take the slot over if it died.
                spins += 1;
                if spins < 1000 {
                    std::hint::spin_loop();
                    continue;
                }
                let t0 = *since.get_or_insert_with(Instant::now);
                if t0.elapsed() < DEFAULT_ABANDON_AFTER {
                    std::thread::yield_now();
                    continue;
                }
            }
            if st.compare_exchange(cur, WRITING | mine, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                // The record bytes written next must not become visible before the claim.
                fence(Ordering::Release);
                return true;
            }
        }
    }

    /// Copies raw records (`bytes.len()` a multiple of the record size) into reserved slots.
    fn write_reserved(&self, first: u64, n: u64, bytes: &[u8], exclusive: bool) {
        let inn = &self.inner;
        let lost = if exclusive && self.write_exclusive(first, n, bytes) {
            0
        } else {
            self.write_claimed(first, n, bytes)
        };
        if lost > 0 {
            inn.u64_at(OFF_LOST_WRITES).fetch_add(lost, Ordering::Relaxed);
        }
        inn.wake(OFF_DATA_FUTEX, OFF_DATA_WAITERS);
    }

    /// The fast path of a reader-bounded reservation: no per-slot claim, one bulk copy, then a
    /// Release store of each stamp. Returns false (having written nothing) if a slot was
    /// already declared abandoned, leaving the reservation to the claiming path.
    fn write_exclusive(&self, first: u64, n: u64, bytes: &[u8]) -> bool {
        let inn = &self.inner;
        let rs = inn.rec_size;
        // A reader declares a slot abandoned only after it stalled for abandon_after; a
        // writer that slow takes the careful path.
        if (first..first + n).any(|seq| inn.stamp(seq).load(Ordering::Acquire) & SEQ_BITS > seq) {
            return false;
        }
        let head = ((inn.cap - (first & inn.mask)).min(n)) as usize;
        // SAFETY: the reservation bounded by every reader's acknowledged cursor makes these
        // slots ours alone (their previous records were read by everyone); `head` slots fit
        // before the end of the ring and the rest wrap to slot 0; no overlap with `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), inn.slot_ptr(first), head * rs);
            if (head as u64) < n {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(head * rs),
                    inn.slot_ptr(first + head as u64),
                    (n as usize - head) * rs,
                );
            }
        }
        for seq in first..first + n {
            // Release: the record bytes are visible before the stamp that says "committed".
            inn.stamp(seq).store(seq + 1, Ordering::Release);
        }
        true
    }

    /// The general path: claim each slot with a CAS (other writers may be a lap behind in
    /// broadcast mode, or with no reader registered), copy, commit with a CAS. Returns how many
    /// records could not be committed.
    fn write_claimed(&self, first: u64, n: u64, bytes: &[u8]) -> u64 {
        let inn = &self.inner;
        let rs = inn.rec_size;
        let mut lost = 0u64;
        for k in 0..n {
            let seq = first + k;
            if !self.claim(seq) {
                lost += 1;
                continue;
            }
            // SAFETY: the claim gives this writer exclusive ownership of the slot until the
            // commit store below; source and destination are rs bytes and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(k as usize * rs),
                    inn.slot_ptr(seq),
                    rs,
                )
            };
            if inn
                .stamp(seq)
                .compare_exchange(
                    WRITING | (seq + 1),
                    seq + 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                lost += 1;
            }
        }
        lost
    }

    /// Appends raw records of the ring's record size; returns how many fit.
    pub fn append_bytes(&self, bytes: &[u8]) -> Result<usize, CoreError> {
        let rs = self.inner.rec_size;
        if bytes.len() % rs != 0 {
            return Err(CoreError::invalid(
                "records",
                format!("{} bytes is not a whole number of {rs}-byte records", bytes.len()),
            ));
        }
        self.inner.check()?;
        let (first, n, exclusive) = self.reserve((bytes.len() / rs) as u64)?;
        self.write_reserved(first, n, &bytes[..n as usize * rs], exclusive);
        // The file may have shrunk under the copy: then the records went to zero pages.
        self.inner.check()?;
        Ok(n as usize)
    }

    fn bid_ring(&self) -> Result<(), CoreError> {
        if !self.inner.bids {
            return Err(CoreError::invalid(
                "records",
                format!(
                    "this ring holds records of type {}, not bids ({})",
                    self.inner.record_type,
                    RecordType::BID
                ),
            ));
        }
        Ok(())
    }

    /// Appends validated bid records; returns how many fit (a prefix, in order). A bad record
    /// refuses the whole call and nothing is appended.
    pub fn append_many(&self, recs: &[BidRecord]) -> Result<usize, CoreError> {
        self.bid_ring()?;
        validate_records(recs)?;
        // SAFETY: BidRecord is repr(C), 48 bytes, with no uninitialised bytes (the pad is a field).
        let bytes = unsafe {
            std::slice::from_raw_parts(recs.as_ptr() as *const u8, std::mem::size_of_val(recs))
        };
        self.append_bytes(bytes)
    }

    /// Appends one validated bid record; Ok(false) when there is no room (backpressure).
    pub fn append(&self, rec: &BidRecord) -> Result<bool, CoreError> {
        Ok(self.append_many(std::slice::from_ref(rec))? == 1)
    }

    /// Waits until at least `n` records would fit (backpressure mode), or the timeout. True if
    /// they fit when it returned; false also when the call is refused (see
    /// [`wait_for_room`](Self::wait_for_room), which says why).
    pub fn wait_for_space(&self, n: u64, timeout: Duration) -> bool {
        matches!(self.wait_for_room(n, timeout), Ok(true))
    }

    /// Waits until at least `n` records would fit, or the timeout; Ok(true) if they fit when
    /// it returned. In broadcast mode (and on a sealed ring) at once. `n` above the capacity
    /// can never fit and is refused; a file that shrank under the mapping is `CorruptFile`.
    pub fn wait_for_room(&self, n: u64, timeout: Duration) -> Result<bool, CoreError> {
        let cap = self.inner.cap;
        if n > cap {
            return Err(CoreError::invalid(
                "n",
                format!("{n} records can never fit in a ring of capacity {cap}"),
            ));
        }
        self.inner.check()?;
        let fits = self.wait_space(n, timeout);
        self.inner.check()?;
        Ok(fits)
    }

    fn wait_space(&self, n: u64, timeout: Duration) -> bool {
        let inn = self.inner.clone();
        let mut ready = || {
            if inn.closed() || inn.mode == RingMode::Broadcast {
                return true;
            }
            let t = inn.tail().load(Ordering::SeqCst);
            inn.min_cursor().is_none_or(|c| c + inn.cap >= t + n)
        };
        self.inner.wait_until(OFF_SPACE_FUTEX, OFF_SPACE_WAITERS, timeout, &mut ready)
    }

    /// Reserves `n` slots and never commits them: what a writer killed between its reservation
    /// and its commits leaves behind. For crash tests only.
    #[doc(hidden)]
    pub fn reserve_and_die(&self, n: u64) -> Result<u64, CoreError> {
        Ok(self.reserve(n)?.1)
    }

    /// Marks every reserved but uncommitted slot abandoned now, without waiting. Call it only
    /// when no writer is alive (e.g. at start-up after a crash); returns how many were marked.
    pub fn abandon_incomplete(&self) -> u64 {
        let inn = &self.inner;
        let tail = inn.tail().load(Ordering::SeqCst);
        let lo = tail.saturating_sub(inn.cap);
        abandon_range(inn, lo, tail)
    }
}

/// Marks each uncommitted slot of `[lo, hi)` abandoned; returns how many this call marked.
/// At most one lap from `lo`: past it the slots repeat, and a tail word corrupted far ahead
/// of the records must not keep the caller busy for ever.
pub(super) fn abandon_range(inn: &Inner, lo: u64, hi: u64) -> u64 {
    let mut marked = 0;
    for seq in lo..hi.min(lo.saturating_add(inn.cap)) {
        let st = inn.stamp(seq);
        loop {
            let cur = st.load(Ordering::Acquire);
            let cs = cur & SEQ_BITS;
            if cs > seq + 1 || (cs == seq + 1 && cur & WRITING == 0) {
                break; // committed, already abandoned, or reused by a newer record
            }
            if st
                .compare_exchange(cur, ABANDONED | (seq + 1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                marked += 1;
                break;
            }
        }
    }
    if marked > 0 {
        inn.u64_at(OFF_ABANDONED).fetch_add(marked, Ordering::Relaxed);
    }
    marked
}
