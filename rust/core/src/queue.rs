//! The bounded lock-free MPMC bid queue, and the validation every bid record passes on its way
//! into the queue or the ring.
//!
//! [`BidQueue`] is Dmitry Vyukov's bounded MPMC queue (the algorithm behind crossbeam's
//! `ArrayQueue`: every slot carries a sequence stamp that says whose turn it is) extended with
//! batch reservation, so that `push_many` / `pop_into` of a block cost one CAS instead of one per
//! record:
//! - a producer at tail `t` scans forward over the slots whose stamp says "free for position
//!   `t + k`" (stamp == 2·position), then claims them all with one CAS `tail: t -> t + k`,
//!   copies the records and publishes each slot with a Release store of `2·position + 1`;
//! - a consumer at head `h` scans forward over the slots whose stamp says "filled for position
//!   `h + k`" (stamp == 2·position + 1), claims them with one CAS on `head`, copies them out and
//!   frees each slot with a Release store of `2·(position + capacity)`.
//!
//! (Doubling the positions keeps "filled for p" and "free for p + capacity" distinct even for
//! a capacity of 1, where Vyukov's original `p + 1` / `p + capacity` stamps coincide; loom
//! found that case.)
//!
//! A scanned slot cannot change hands between the scan and the CAS: only the owner of its
//! position changes its stamp, and owning it takes the CAS that would then fail. Positions are
//! u64 and never wrap, so there is no ABA. Neither side ever waits for the other: a slot still
//! being filled (or emptied) simply ends the scan, and the call takes what it found. The model
//! is checked with loom (`make test-loom`, `rust/core/tests/queue_loom.rs`).
//!
//! Semantics:
//! - [`BidQueue::push`] never blocks: a full queue returns `Ok(false)` (the caller keeps it).
//! - [`BidQueue::push_many`] accepts a prefix of the block, in order, and returns its length;
//!   the rest remain the caller's. The block is validated first; a bad record refuses the whole
//!   call and nothing is enqueued.
//! - [`BidQueue::close`] refuses later pushes with [`CoreError::Closed`]; pops drain what is
//!   left. A push racing with `close` either lands before it (and is drained) or is refused.
//!
//! ```
//! use rtbcore_core::queue::BidQueue;
//! use rtbcore_core::record::{BidRecord, KIND_PLACE};
//! let q = BidQueue::new(4).unwrap();
//! assert_eq!(q.push_many(&[BidRecord::new(1, 2, 3.0, 1.0, KIND_PLACE); 6]).unwrap(), 4);
//! let mut out = Vec::new();
//! assert_eq!(q.pop_many(&mut out, 10), 4);
//! q.close();
//! assert!(q.push(BidRecord::new(1, 2, 3.0, 1.0, KIND_PLACE)).is_err());
//! ```

use crossbeam_utils::CachePadded;

use self::primitive::{copy_in, copy_out, AtomicBool, AtomicU64, Ordering, SlotCell};
use crate::error::CoreError;
use crate::record::{validate_records, BidRecord};

/// std atomics normally; loom's under `--cfg rtbcore_loom` so that loom can model the queue.
#[cfg(not(rtbcore_loom))]
mod primitive {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    #[repr(transparent)]
    pub(crate) struct SlotCell<T>(std::cell::UnsafeCell<T>);

    impl<T: Copy> SlotCell<T> {
        pub(crate) fn new(v: T) -> Self {
            SlotCell(std::cell::UnsafeCell::new(v))
        }
    }

    /// Copies `src` into `cells` (same length) with one memcpy.
    ///
    /// # Safety
    /// The caller owns every cell: claimed by CAS, stamps saying free.
    #[inline]
    pub(crate) unsafe fn copy_in<T: Copy>(cells: &[SlotCell<T>], src: &[T]) {
        debug_assert_eq!(cells.len(), src.len());
        // SAFETY: SlotCell<T> is repr(transparent) over UnsafeCell<T>, itself over T, so the
        // cells are `len` contiguous Ts that we own; `src` is a distinct borrow.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), cells.as_ptr() as *mut T, src.len()) }
    }

    /// Copies `cells` into `dst` (same length) with one memcpy.
    ///
    /// # Safety
    /// The caller owns every cell: claimed by CAS, stamps saying filled.
    #[inline]
    pub(crate) unsafe fn copy_out<T: Copy>(cells: &[SlotCell<T>], dst: &mut [T]) {
        debug_assert_eq!(cells.len(), dst.len());
        // SAFETY: as in `copy_in`; `dst` is an exclusive borrow distinct from the cells.
        unsafe {
            std::ptr::copy_nonoverlapping(cells.as_ptr() as *const T, dst.as_mut_ptr(), dst.len())
        }
    }
}

#[cfg(rtbcore_loom)]
mod primitive {
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    pub(crate) struct SlotCell<T>(loom::cell::UnsafeCell<T>);

    impl<T: Copy> SlotCell<T> {
        pub(crate) fn new(v: T) -> Self {
            SlotCell(loom::cell::UnsafeCell::new(v))
        }
        /// # Safety
        /// As in the std version; loom checks it.
        pub(crate) unsafe fn read(&self) -> T {
            // SAFETY: loom tracks the access and reports a race.
            self.0.with(|p| unsafe { *p })
        }
        /// # Safety
        /// As in the std version; loom checks it.
        pub(crate) unsafe fn write(&self, v: T) {
            // SAFETY: loom tracks the access and reports a race.
            self.0.with_mut(|p| unsafe { *p = v })
        }
    }

    /// # Safety
    /// As in the std version; one tracked write per cell.
    pub(crate) unsafe fn copy_in<T: Copy>(cells: &[SlotCell<T>], src: &[T]) {
        for (c, v) in cells.iter().zip(src) {
            // SAFETY: forwarded contract.
            unsafe { c.write(*v) }
        }
    }

    /// # Safety
    /// As in the std version; one tracked read per cell.
    pub(crate) unsafe fn copy_out<T: Copy>(cells: &[SlotCell<T>], dst: &mut [T]) {
        for (c, d) in cells.iter().zip(dst) {
            // SAFETY: forwarded contract.
            *d = unsafe { c.read() }
        }
    }
}

/// Largest capacity a queue may have (records). 2^30 records is 48 GiB.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 30;

/// A bounded lock-free multi-producer multi-consumer queue of [`BidRecord`]s.
pub struct BidQueue {
    head: CachePadded<AtomicU64>,
    tail: CachePadded<AtomicU64>,
    /// Per slot: `2·pos` when free for the producer of position `pos`; `2·pos + 1` when filled
    /// by it. Kept apart from the records so that a block's records are contiguous.
    stamps: Box<[AtomicU64]>,
    recs: Box<[SlotCell<BidRecord>]>,
    cap: u64,
    closed: AtomicBool,
    /// Records refused because the queue was full (push returned false / push_many a short count).
    refused_full: AtomicU64,
}

// SAFETY: a slot's record is only touched by the thread that claimed its position with a CAS,
// between an Acquire load and a Release store of its stamp (see the module docs).
unsafe impl Sync for BidQueue {}
// SAFETY: as above; the queue owns its slots.
unsafe impl Send for BidQueue {}

impl BidQueue {
    /// A queue holding at most `capacity` records (1 ..= [`MAX_QUEUE_CAPACITY`]).
    pub fn new(capacity: usize) -> Result<Self, CoreError> {
        if capacity == 0 || capacity > MAX_QUEUE_CAPACITY {
            return Err(CoreError::invalid(
                "capacity",
                format!("must be in 1..={MAX_QUEUE_CAPACITY}, got {capacity}"),
            ));
        }
        let stamps = (0..capacity as u64).map(|i| AtomicU64::new(2 * i)).collect();
        let recs = (0..capacity).map(|_| SlotCell::new(BidRecord::default())).collect();
        Ok(BidQueue {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            stamps,
            recs,
            cap: capacity as u64,
            closed: AtomicBool::new(false),
            refused_full: AtomicU64::new(0),
        })
    }

    #[inline]
    fn stamp(&self, idx: u64) -> &AtomicU64 {
        &self.stamps[idx as usize]
    }

    /// The (at most two) slot index ranges of `k` positions starting at slot `idx`.
    #[inline]
    fn segments(&self, idx: u64, k: u64) -> [(usize, usize); 2] {
        let first = (self.cap - idx).min(k);
        [(idx as usize, first as usize), (0, (k - first) as usize)]
    }

    /// Claims up to `want` consecutive positions whose slots have stamp `2·pos + offset`
    /// (offset 0: free, for producers; offset 1: filled, for consumers) by CAS on `counter`.
    /// Returns (first position, its slot index, count).
    #[inline]
    fn claim(&self, counter: &AtomicU64, want: u64, offset: u64) -> (u64, u64, u64) {
        loop {
            let pos = counter.load(Ordering::Relaxed);
            let first_idx = pos % self.cap;
            let mut idx = first_idx;
            let mut k = 0;
            while k < want {
                if self.stamp(idx).load(Ordering::Acquire) != 2 * (pos + k) + offset {
                    break;
                }
                k += 1;
                idx += 1;
                if idx == self.cap {
                    idx = 0;
                }
            }
            if k == 0 {
                // Either the queue is full / empty here, or `counter` moved under us.
                let stamp = self.stamp(first_idx).load(Ordering::Acquire);
                if stamp < 2 * pos + offset && counter.load(Ordering::Relaxed) == pos {
                    return (pos, first_idx, 0);
                }
                continue;
            }
            if counter
                .compare_exchange_weak(pos, pos + k, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return (pos, first_idx, k);
            }
        }
    }

    /// Enqueues one record without blocking. `Ok(true)` when it went in, `Ok(false)` when the
    /// queue is full (the caller keeps the record), `Err(Closed)` after [`close`](Self::close),
    /// `Err(InvalidBid)` for a bad record.
    #[inline]
    pub fn push(&self, rec: BidRecord) -> Result<bool, CoreError> {
        rec.validate().map_err(|b| b.at(0))?;
        Ok(self.push_valid(std::slice::from_ref(&rec))? == 1)
    }

    /// Enqueues the longest prefix of `recs` that fits and returns its length. The whole block
    /// is validated first: a bad record refuses the call and nothing is enqueued.
    pub fn push_many(&self, recs: &[BidRecord]) -> Result<usize, CoreError> {
        validate_records(recs)?;
        self.push_valid(recs)
    }

    fn push_valid(&self, recs: &[BidRecord]) -> Result<usize, CoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoreError::Closed);
        }
        if recs.is_empty() {
            return Ok(0);
        }
        let (pos, idx, k) = self.claim(&self.tail, recs.len() as u64, 0);
        // Records first (a plain copy loop the compiler vectorises), then the stamps: each
        // Release store publishes every record written before it.
        let mut done = 0;
        for (start, len) in self.segments(idx, k) {
            // SAFETY: the CAS in `claim` made these positions ours, and their stamps said free:
            // no other thread touches these cells until we publish them.
            unsafe { copy_in(&self.recs[start..start + len], &recs[done..done + len]) };
            done += len;
        }
        let mut p = 2 * pos + 1;
        for (start, len) in self.segments(idx, k) {
            for st in &self.stamps[start..start + len] {
                st.store(p, Ordering::Release);
                p += 2;
            }
        }
        if (k as usize) < recs.len() {
            self.refused_full.fetch_add(recs.len() as u64 - k, Ordering::Relaxed);
        }
        Ok(k as usize)
    }

    /// Dequeues one record, `None` when empty.
    #[inline]
    pub fn pop(&self) -> Option<BidRecord> {
        let mut r = [BidRecord::default()];
        (self.pop_into(&mut r) == 1).then_some(r[0])
    }

    /// Appends up to `max_n` dequeued records to `out`; returns how many.
    pub fn pop_many(&self, out: &mut Vec<BidRecord>, max_n: usize) -> usize {
        let start = out.len();
        out.resize(start + max_n.min(self.cap as usize), BidRecord::default());
        let n = self.pop_into(&mut out[start..]);
        out.truncate(start + n);
        n
    }

    /// Dequeues up to `out.len()` records into `out` (front first); returns how many.
    pub fn pop_into(&self, out: &mut [BidRecord]) -> usize {
        if out.is_empty() {
            return 0;
        }
        let (pos, idx, k) = self.claim(&self.head, out.len() as u64, 1);
        let mut done = 0;
        for (start, len) in self.segments(idx, k) {
            // SAFETY: the CAS in `claim` made these positions ours, and their stamps said
            // filled: no other thread touches these cells until we free them.
            unsafe { copy_out(&self.recs[start..start + len], &mut out[done..done + len]) };
            done += len;
        }
        // Free the slots for the producers of the next lap (after the reads above).
        let mut p = 2 * (pos + self.cap);
        for (start, len) in self.segments(idx, k) {
            for st in &self.stamps[start..start + len] {
                st.store(p, Ordering::Release);
                p += 2;
            }
        }
        k as usize
    }

    /// Records currently queued (a snapshot under concurrency).
    pub fn len(&self) -> usize {
        let h = self.head.load(Ordering::Acquire);
        let t = self.tail.load(Ordering::Acquire);
        t.saturating_sub(h).min(self.cap) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap as usize
    }

    /// Refuses every later push; what is queued can still be popped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// How many records pushes refused because the queue was full.
    pub fn refused_full(&self) -> u64 {
        self.refused_full.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Field;
    use crate::record::KIND_PLACE;

    fn rec(i: u64) -> BidRecord {
        BidRecord::new(i, i * 7, i as f64, 1.0, KIND_PLACE)
    }

    #[test]
    fn fifo_full_and_close() {
        let q = BidQueue::new(3).unwrap();
        assert!(q.push(rec(1)).unwrap());
        assert_eq!(q.push_many(&[rec(2), rec(3), rec(4)]).unwrap(), 2);
        assert!(!q.push(rec(5)).unwrap());
        assert_eq!(q.refused_full(), 2);
        assert_eq!(q.len(), 3);
        q.close();
        assert_eq!(q.push(rec(6)), Err(CoreError::Closed));
        let mut out = Vec::new();
        assert_eq!(q.pop_many(&mut out, 10), 3);
        assert_eq!(out.iter().map(|r| r.auction_id).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn capacity_one_wraps_without_overwriting() {
        let q = BidQueue::new(1).unwrap();
        for i in 0..5 {
            assert!(q.push(rec(i)).unwrap());
            assert!(!q.push(rec(100 + i)).unwrap(), "a full queue of 1 took a second record");
            assert_eq!(q.pop().unwrap().auction_id, i);
            assert!(q.pop().is_none());
        }
    }

    #[test]
    fn bad_record_refuses_whole_block() {
        let q = BidQueue::new(8).unwrap();
        let mut block = vec![rec(1), rec(2), rec(3)];
        block[2].price = f64::NAN;
        match q.push_many(&block) {
            Err(CoreError::InvalidBid { field: Field::Price, index: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        block[2].price = 1.0;
        block[1].kind = 9;
        assert!(matches!(
            q.push_many(&block),
            Err(CoreError::InvalidBid { field: Field::Kind, index: 1, .. })
        ));
        assert_eq!(q.len(), 0);
        assert!(BidQueue::new(0).is_err());
    }
}
