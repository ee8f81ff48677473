//! Where a worker keeps the bids of every open auction: two arenas (24-byte [`Bid`]s and 16-bit
//! bidder tags) in size classes, plus the huge-page and prefetch helpers the hot path uses.

use super::table::{fib_hash, Entry};
use super::worker::Worker;

/// Hints the CPU to fetch the cache line holding `p` (no-op off x86_64).
#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    #[allow(unused_unsafe)]
    // SAFETY: a prefetch is only a hint: it never faults and reads nothing into the program,
    // whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks the kernel to back the whole 2 MB pages inside `v`'s allocation (its capacity, touched
/// or not) with transparent huge pages. The worker's table and bid storage and the intake blocks
/// are read at random over tens of MB: with 4 KB pages nearly every bid costs a TLB miss (a
/// two-level page walk under virtualization), which prefetching cannot hide. Only advice:
/// where THP is off or the range holds no whole huge page, nothing changes.
pub(super) fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let start = v.as_ptr() as usize;
    let end = start + v.capacity() * std::mem::size_of::<T>();
    let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
    #[cfg(target_os = "linux")]
    if hi > lo {
        // SAFETY: [lo, hi) lies inside the allocation `v` owns (page-aligned, non-empty);
        // MADV_HUGEPAGE changes only how the kernel backs those pages, never their contents.
        unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (lo, hi);
}

/// `n` copies of `x` in an allocation advised to use huge pages (before any page is touched).
pub(super) fn huge_vec<T: Clone>(x: T, n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&v);
    v.resize(n, x);
    v
}

/// Makes room for `extra` more elements in `v`, growing geometrically into a fresh allocation
/// advised to use huge pages.
pub(super) fn reserve_huge<T: Copy>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() >= extra {
        return;
    }
    let mut bigger = Vec::with_capacity((v.len() + extra).max(2 * v.capacity()));
    advise_huge_pages(&bigger);
    bigger.extend_from_slice(v);
    *v = bigger;
}

/// One bidder's current bid in an auction (24 bytes). A live bid's quality is > 0 (validated
/// on the way in); a cancel negates it, and an update writes a fresh one.
#[derive(Clone, Copy, Default)]
pub(super) struct Bid {
    pub(super) bidder: u64,
    pub(super) price: f64,
    pub(super) quality: f64,
}

impl Bid {
    #[inline(always)]
    pub(super) fn live(&self) -> bool {
        self.quality > 0.0
    }
}

/// A bidder's 16-bit fingerprint (the top bits of its hash).
#[inline(always)]
pub(super) fn tag_of(bidder: u64) -> u16 {
    (fib_hash(bidder) >> 48) as u16
}

/// Tags compared per step of [`find_bidder`]; storage capacities are multiples of it.
pub(super) const TAG_STEP: usize = 16;

/// Position of `bidder` among the first `n` bids: compares 16 two-byte tags per step without
/// branching (a vector compare and a movemask), then checks the candidates — with 16-bit tags
/// there is almost never a false one, whose check would be a cache miss. `tags` and `bids`
/// are the auction's whole storage (a multiple of [`TAG_STEP`] long), so every step is a full
/// one; tags past `n` (left over from an earlier auction) are masked out.
#[inline]
pub(super) fn find_bidder(tags: &[u16], bids: &[Bid], n: usize, bidder: u64) -> Option<usize> {
    let t = tag_of(bidder);
    let end = n.next_multiple_of(TAG_STEP);
    for (ci, c) in tags[..end].chunks_exact(TAG_STEP).enumerate() {
        let mut m = 0u32;
        for (j, &y) in c.iter().enumerate() {
            m |= ((y == t) as u32) << j;
        }
        let base = ci * TAG_STEP;
        if base + TAG_STEP > n {
            m &= (1u32 << (n - base)) - 1;
        }
        while m != 0 {
            let j = base + m.trailing_zeros() as usize;
            if bids[j].bidder == bidder {
                return Some(j);
            }
            m &= m - 1;
        }
    }
    None
}

/// Smallest bid storage of an auction (a power of two; storage grows by doubling).
pub(super) const MIN_CAP: usize = 16;

impl Worker {
    /// Storage for `cap` (a power of two >= `MIN_CAP`) bids: its offset in the arenas.
    pub(super) fn alloc_store(&mut self, cap: usize) -> u32 {
        let class = (cap / MIN_CAP).trailing_zeros() as usize;
        if self.store_free.len() <= class {
            self.store_free.resize_with(class + 1, Vec::new);
        }
        if let Some(off) = self.store_free[class].pop() {
            return off;
        }
        let off = self.store_bids.len();
        let off32 =
            u32::try_from(off + cap).map(|_| off as u32).expect("bid storage over 2^32 bids");
        reserve_huge(&mut self.store_bids, cap);
        reserve_huge(&mut self.store_tags, cap);
        self.store_bids.resize(off + cap, Bid::default());
        self.store_tags.resize(off + cap, 0);
        off32
    }

    pub(super) fn free_store(&mut self, off: u32, cap: u32) {
        let class = (cap as usize / MIN_CAP).trailing_zeros() as usize;
        self.store_free[class].push(off);
    }

    /// Doubles the bid capacity of the auction at `pos` (cold path: it outgrew its storage).
    #[cold]
    pub(super) fn grow(&mut self, pos: usize) {
        let Entry { off, cap, n, .. } = self.table.buckets[pos];
        let (o, n) = (off as usize, n as usize);
        let new_off = self.alloc_store(2 * cap as usize);
        let no = new_off as usize;
        self.store_bids.copy_within(o..o + n, no);
        self.store_tags.copy_within(o..o + n, no);
        self.free_store(off, cap);
        let e = &mut self.table.buckets[pos];
        e.off = new_off;
        e.cap = 2 * cap;
    }
}
