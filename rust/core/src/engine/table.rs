//! The per-worker table of open auctions: [`HotTable`] of one-cache-line [`Entry`]s, keyed by
//! auction id.

use super::arena::{huge_vec, prefetch};

#[inline]
pub(super) fn fib_hash(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

pub(super) const EMPTY_KEY: u64 = u64::MAX;

/// The part of an open auction that applying a bid reads and writes, in one cache line: the
/// deadline, the counts, a 128-bit filter of the bidders seen (a bidder whose bit is clear is
/// certainly new, so most places skip the tag scan) and where its bids are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
pub(super) struct Entry {
    /// auction id; [`EMPTY_KEY`] marks an empty bucket
    pub(super) id: u64,
    pub(super) deadline_ns: u64,
    pub(super) last_event_ns: u64,
    pub(super) filter: [u64; 2],
    /// bids stored = distinct bidders that placed (the auction's `answered` count)
    pub(super) n: u32,
    pub(super) expected: u32,
    pub(super) n_live: u32,
    /// the auction's slot (index of its cold state)
    pub(super) slot: u32,
    /// its storage: `cap` bids and tags at offset `off` of the worker's arenas
    pub(super) off: u32,
    pub(super) cap: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl Entry {
    pub(super) const EMPTY: Entry = Entry {
        id: EMPTY_KEY,
        deadline_ns: 0,
        last_event_ns: 0,
        filter: [0; 2],
        n: 0,
        expected: 0,
        n_live: 0,
        slot: 0,
        off: 0,
        cap: 0,
    };

    /// False when `bidder` has certainly no bid here.
    #[inline(always)]
    pub(super) fn may_have(&self, bidder: u64) -> bool {
        let (w, m) = filter_bit(bidder);
        self.filter[w] & m != 0
    }
}

/// The bidder's bit in [`Entry::filter`]: word and mask (bits independent of [`tag_of`]).
#[inline(always)]
pub(super) fn filter_bit(bidder: u64) -> (usize, u64) {
    let h = fib_hash(bidder) >> 40;
    (((h >> 6) & 1) as usize, 1u64 << (h & 63))
}

/// Open-addressing table (linear probing, Fibonacci hashing) of the open auctions' hot
/// [`Entry`]s, keyed by auction id: the entry sits in the bucket, so one cache line, whose
/// address is known from the key alone, is all a lookup touches, and the worker prefetches it a
/// few bids ahead. Keys are < 2^63, so `u64::MAX` marks an empty bucket; a removal shifts the
/// rest of its probe run back (Knuth's algorithm R), so the churn of opens and closes leaves no
/// tombstones behind — and an entry can move, so a position is only a hint once something was
/// removed. The load factor stays <= 1/2.
pub(super) struct HotTable {
    pub(super) buckets: Vec<Entry>,
    pub(super) shift: u32,
    pub(super) len: usize,
}

impl HotTable {
    pub(super) fn new() -> Self {
        HotTable { buckets: huge_vec(Entry::EMPTY, 1024), shift: 64 - 10, len: 0 }
    }

    #[inline(always)]
    pub(super) fn home(&self, k: u64) -> usize {
        (fib_hash(k) >> self.shift) as usize
    }

    #[inline(always)]
    pub(super) fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    #[inline(always)]
    pub(super) fn prefetch(&self, k: u64) {
        prefetch(self.buckets.as_ptr().wrapping_add(self.home(k)));
    }

    /// Position of `k`'s entry.
    #[inline]
    pub(super) fn find(&self, k: u64) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(k);
        loop {
            let kk = self.buckets[i].id;
            if kk == k {
                return Some(i);
            }
            if kk == EMPTY_KEY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Inserts `e` (its id must not be in the table yet).
    pub(super) fn insert(&mut self, e: Entry) {
        if (self.len + 1) * 2 > self.buckets.len() {
            let bigger = huge_vec(Entry::EMPTY, self.buckets.len() * 2);
            let old = std::mem::replace(&mut self.buckets, bigger);
            self.shift -= 1;
            self.len = 0;
            for o in old {
                if o.id != EMPTY_KEY {
                    self.insert(o);
                }
            }
        }
        let mask = self.mask();
        let mut i = self.home(e.id);
        while self.buckets[i].id != EMPTY_KEY {
            debug_assert_ne!(self.buckets[i].id, e.id);
            i = (i + 1) & mask;
        }
        self.buckets[i] = e;
        self.len += 1;
    }

    /// Removes the entry at position `i` (entries after it in its probe run may move).
    pub(super) fn remove_at(&mut self, i: usize) {
        debug_assert_ne!(self.buckets[i].id, EMPTY_KEY);
        let mask = self.mask();
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let kj = self.buckets[j].id;
            if kj == EMPTY_KEY {
                break;
            }
            let h = self.home(kj);
            // kj may move into the hole unless its home lies cyclically in (hole, j]
            let stays = if hole <= j { hole < h && h <= j } else { hole < h || h <= j };
            if !stays {
                self.buckets[hole] = self.buckets[j];
                hole = j;
            }
        }
        self.buckets[hole] = Entry::EMPTY;
        self.len -= 1;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }
}
