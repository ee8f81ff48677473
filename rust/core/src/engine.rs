//! The auction engine: a CPU-pinned, sharded worker pool that turns an interleaved bid stream
//! into cleared auctions.
//!
//! ```text
//!  submit(block) ──partition by shard(auction_id)──▶ intake[w] (FIFO of record blocks) ──▶ worker w
//!                                                                                        │
//!  poll() ◀── result channel (blocks of AuctionResult) ◀── clear_segment / clear_segment_slots
//! ```
//!
//! - **Sharding.** An auction lives on worker `shard_of(auction_id, workers)` (a Fibonacci hash),
//!   so every event of one auction is handled by one thread, in submission order, with no lock
//!   per bid. A submitted block is validated and partitioned in one pass and travels as one
//!   message per shard — as 24-byte places stamped once per block when it has no `quality` /
//!   `kinds`, else as full records; buffers are recycled, so the steady state allocates nothing
//!   per bid.
//! - **Per-auction state.** Each worker keeps an open-addressing table (`HotTable`: linear
//!   probing, backward-shift deletion) keyed by auction id whose bucket holds the open
//!   auction's hot `Entry`: one 64-byte line with the deadline, the counts, a 128-bit filter
//!   of the bidders seen and where its bids are. The rest (id, reserve, open time) is cold, in
//!   a slot read at open and close. Bids of all auctions live in two arenas: 24-byte records in
//!   arrival order and 16-bit bidder tags, in size classes (room for `expected_bids` up front,
//!   doubling beyond), recycled. A block is applied as a software pipeline, one stage per
//!   dependent load, 8 records apart: the bucket is prefetched 16 records ahead, read 8 ahead
//!   (prefetching the line the bid will be written to, and the tags only if the filter cannot
//!   rule the bidder out), then the record is applied in arrival order — the work is
//!   memory-bound, so hiding the misses is what counts; the table, the arenas and the intake
//!   blocks ask for transparent huge pages, since with 4 KB pages the random accesses were TLB
//!   misses too. A bidder's latest bid replaces its earlier one in place (found by comparing 16
//!   tags per step), a cancel marks it dead. Slots and storage are reused, so memory stays flat
//!   under a soak.
//! - **Closing.** An auction closes when `expected_bids` distinct bidders have answered (a
//!   bidder counts once, from its first place/update; a later cancel does not un-answer it), or
//!   at its deadline `open + tmax` (a binary heap of deadlines with lazy deletion; the worker
//!   parks in `recv_timeout` until the next deadline or the next block, it never spins), or at
//!   shutdown. Deadlines are judged on the bid's submit timestamp: a bid stamped after its
//!   auction's deadline is late even if the timer has not fired yet, and while blocks are still
//!   queued the timer only closes auctions whose deadline precedes the latest stamp processed,
//!   so a worker lagging behind a burst never rejects a bid that was submitted in time.
//! - **Clearing.** With the kernels of [`crate::clearing`]: `clear_segment` for first / second
//!   price, `clear_segment_slots` for GSP / VCG. Ties are broken by the lowest `bidder_id`, so the
//!   result does not depend on the arrival order (the kernels break ties by position; the engine
//!   re-clears in bidder order in the rare case of a tie at the top).
//! - **Rejections.** A bid for an auction that is unknown, already closed, or stamped after its
//!   deadline is not applied; it is counted (`rejected_late` / `rejected_unknown`) and reported
//!   as a [`RejectedBid`] with OpenRTB loss reason 2 (expired). "Late" versus "unknown" uses a
//!   per-worker cache of the last 65536 closed auction ids (direct-mapped); a late bid for an
//!   auction evicted from that cache is reported as unknown (both are loss reason 2).
//! - **Results.** One [`AuctionResult`] row per auction (per slot for GSP / VCG: `slot` is the
//!   position, `winner_bidder = -1` for an empty slot), published in blocks to a channel that
//!   [`Engine::poll_into`] drains. Latencies go into HDR histograms: `open_to_close` and
//!   `last_bid_to_result` (from the submit timestamp of the auction's last applied event to the
//!   moment its result is published).
//! - **Ingress and event log.** [`Engine::attach`] consumes any [`BidSource`] on a thread of its
//!   own — [`RingSource`] reads a `BidRing` that other processes append to. With an
//!   [`EventSink`] ([`RingEventLog`]: a broadcast-mode `BidRing`) every worker appends
//!   AuctionStarted / BidPlaced / BidUpdated / BidCancelled / AuctionWon / AuctionLost records
//!   once per processed block, so each auction's events are in order.

use std::collections::BinaryHeap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;

use crate::clearing::{
    check_increment, check_slot_ctrs, clear_segment, clear_segment_slots, SinglePrice, SlotPrice,
};
use crate::error::CoreError;
use crate::record::{
    check_fields, fields_ok, price_ok, quality_ok, validate_records, BidRecord, Value, KIND_CANCEL,
    KIND_PLACE, MAX_ID,
};
use crate::ring::{BidRing, RingMode, RingOptions, RingReader, Start};

/// `closed_by`: the auction's deadline passed.
pub const CLOSED_BY_DEADLINE: u8 = 0;
/// `closed_by`: `expected_bids` distinct bidders answered.
pub const CLOSED_BY_ALL_BIDS: u8 = 1;
/// `closed_by`: the engine was closed with the auction still open.
pub const CLOSED_BY_SHUTDOWN: u8 = 2;

/// `RejectedBid::cause`: the auction had closed or the bid was stamped after its deadline.
pub const REJECT_LATE: u8 = 1;
/// `RejectedBid::cause`: no such auction was open (never opened, or closed too long ago).
pub const REJECT_UNKNOWN: u8 = 2;
/// OpenRTB loss reason 2: impression opportunity expired.
pub const LOSS_EXPIRED: i32 = 2;

/// Event-log record kinds (carried in [`BidRecord::kind`], disjoint from the bid kinds).
pub const EV_AUCTION_STARTED: u8 = 16;
pub const EV_BID_PLACED: u8 = 17;
pub const EV_BID_UPDATED: u8 = 18;
pub const EV_BID_CANCELLED: u8 = 19;
pub const EV_AUCTION_WON: u8 = 20;
pub const EV_AUCTION_LOST: u8 = 21;

/// How each auction is cleared.
#[derive(Debug, Clone, PartialEq)]
pub enum Mechanism {
    FirstPrice,
    SecondPrice,
    /// Generalized second price over `ctrs.len()` slots.
    Gsp(Vec<f64>),
    /// VCG over `ctrs.len()` slots.
    Vcg(Vec<f64>),
}

impl Mechanism {
    /// Result rows per auction: 1, or the number of slots.
    pub fn rows_per_auction(&self) -> usize {
        match self {
            Mechanism::FirstPrice | Mechanism::SecondPrice => 1,
            Mechanism::Gsp(c) | Mechanism::Vcg(c) => c.len(),
        }
    }
}

/// Receives the engine's event log: each worker appends its events in processing order (so
/// every auction's events are in order), one batch per processed block.
pub trait EventSink: Send + Sync {
    /// Appends the events in order; returns how many were taken (the rest are counted as
    /// `event_log_dropped`).
    fn append(&self, events: &[BidRecord]) -> Result<usize, CoreError>;
}

/// Engine configuration; see [`Engine::start`].
#[derive(Clone)]
pub struct EngineConfig {
    pub workers: usize,
    pub pin: bool,
    pub mechanism: Mechanism,
    /// Default reserve (floor) of an auction opened without one.
    pub reserve: f64,
    pub increment: f64,
    /// Default time from open to deadline.
    pub tmax_ns: u64,
    /// Soft bound on records (bids + opens) queued for the workers, over all workers.
    pub capacity: usize,
    pub event_sink: Option<Arc<dyn EventSink>>,
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("workers", &self.workers)
            .field("pin", &self.pin)
            .field("mechanism", &self.mechanism)
            .field("reserve", &self.reserve)
            .field("increment", &self.increment)
            .field("tmax_ns", &self.tmax_ns)
            .field("capacity", &self.capacity)
            .field("event_sink", &self.event_sink.is_some())
            .finish()
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 2,
            pin: true,
            mechanism: Mechanism::SecondPrice,
            reserve: 0.0,
            increment: 0.01,
            tmax_ns: 80_000_000,
            capacity: 1 << 20,
            event_sink: None,
        }
    }
}

/// One result row, `repr(C)` and mirrored by `rtbcore.RESULT_DTYPE` (56 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AuctionResult {
    pub auction_id: i64,
    /// The winning bidder, -1 for no sale (or an empty slot).
    pub winner_bidder: i64,
    /// Price paid (per unit for a slot); 0.0 when there is no sale.
    pub price: f64,
    /// The winner's minimum bid to win (keep its slot); NaN when there is no sale.
    pub min_to_win: f64,
    pub open_to_close_ns: i64,
    /// From the submit timestamp of the auction's last applied event (its open if none) to the
    /// moment the result was published.
    pub last_bid_to_result_ns: i64,
    /// Live bids at close (after updates and cancels).
    pub n_bids: u32,
    /// Slot position (0 for single-slot mechanisms).
    pub slot: u16,
    pub closed_by: u8,
    pub _pad: u8,
}

const _: () = assert!(std::mem::size_of::<AuctionResult>() == 56);

/// A bid the engine did not apply, `repr(C)`, mirrored by `rtbcore.REJECTED_DTYPE` (40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RejectedBid {
    pub auction_id: i64,
    pub bidder_id: i64,
    pub price: f64,
    pub timestamp_ns: u64,
    /// Always [`LOSS_EXPIRED`].
    pub loss_reason: i32,
    /// [`REJECT_LATE`] or [`REJECT_UNKNOWN`].
    pub cause: u8,
    /// The record's kind (place / update / cancel).
    pub kind: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<RejectedBid>() == 40);

/// An auction to open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenRequest {
    pub auction_id: u64,
    pub reserve: f64,
    pub tmax_ns: u64,
    /// Close as soon as this many distinct bidders answered; 0 = only at the deadline.
    pub expected_bids: u32,
    pub open_ns: u64,
}

enum Msg {
    Open(Vec<OpenRequest>),
    Bids(Block),
}

/// A place with quality 1.0 and its block's stamp: what `submit` without `quality` / `kinds`
/// sends, half the bytes of a [`BidRecord`] for the submitting thread to write and the worker
/// to read.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct CompactBid {
    auction_id: u64,
    bidder_id: u64,
    price: f64,
}

/// One shard's part of a submission.
enum Block {
    Records(Vec<BidRecord>),
    /// Places, every one stamped `ts`.
    Compact {
        bids: Vec<CompactBid>,
        ts: u64,
    },
}

impl Block {
    fn len(&self) -> usize {
        match self {
            Block::Records(v) => v.len(),
            Block::Compact { bids, .. } => bids.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands the buffer back to the pool for the next submission.
    fn recycle(self, shared: &Shared) {
        match self {
            Block::Records(mut v) => {
                v.clear();
                let _ = shared.free_bids.push(v);
            }
            Block::Compact { mut bids, .. } => {
                bids.clear();
                let _ = shared.free_compact.push(bids);
            }
        }
    }
}

/// The monotonic clock (CLOCK_MONOTONIC, shared by every process on the machine) in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusive pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[inline]
fn fib_hash(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The worker that owns `auction_id` among `workers` (stable for a given worker count).
#[inline]
pub fn shard_of(auction_id: u64, workers: usize) -> usize {
    ((fib_hash(auction_id) as u128 * workers as u128) >> 64) as usize
}

/// Hints the CPU to fetch the cache line holding `p` (no-op off x86_64).
#[inline(always)]
fn prefetch<T>(p: *const T) {
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

const EMPTY_KEY: u64 = u64::MAX;

/// Asks the kernel to back the whole 2 MB pages inside `v`'s allocation (its capacity, touched
/// or not) with transparent huge pages. The worker's table and bid storage and the intake blocks
/// are read at random over tens of MB: with 4 KB pages nearly every bid costs a TLB miss (a
/// two-level page walk under virtualization), which prefetching cannot hide. Only advice:
/// where THP is off or the range holds no whole huge page, nothing changes.
fn advise_huge_pages<T>(v: &Vec<T>) {
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
fn huge_vec<T: Clone>(x: T, n: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(n);
    advise_huge_pages(&v);
    v.resize(n, x);
    v
}

/// Makes room for `extra` more elements in `v`, growing geometrically into a fresh allocation
/// advised to use huge pages.
fn reserve_huge<T: Copy>(v: &mut Vec<T>, extra: usize) {
    if v.capacity() - v.len() >= extra {
        return;
    }
    let mut bigger = Vec::with_capacity((v.len() + extra).max(2 * v.capacity()));
    advise_huge_pages(&bigger);
    bigger.extend_from_slice(v);
    *v = bigger;
}

/// The part of an open auction that applying a bid reads and writes, in one cache line: the
/// deadline, the counts, a 128-bit filter of the bidders seen (a bidder whose bit is clear is
/// certainly new, so most places skip the tag scan) and where its bids are stored.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C, align(64))]
struct Entry {
    /// auction id; [`EMPTY_KEY`] marks an empty bucket
    id: u64,
    deadline_ns: u64,
    last_event_ns: u64,
    filter: [u64; 2],
    /// bids stored = distinct bidders that placed (the auction's `answered` count)
    n: u32,
    expected: u32,
    n_live: u32,
    /// the auction's slot (index of its cold state)
    slot: u32,
    /// its storage: `cap` bids and tags at offset `off` of the worker's arenas
    off: u32,
    cap: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64);

impl Entry {
    const EMPTY: Entry = Entry {
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
    fn may_have(&self, bidder: u64) -> bool {
        let (w, m) = filter_bit(bidder);
        self.filter[w] & m != 0
    }
}

/// The bidder's bit in [`Entry::filter`]: word and mask (bits independent of [`tag_of`]).
#[inline(always)]
fn filter_bit(bidder: u64) -> (usize, u64) {
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
struct HotTable {
    buckets: Vec<Entry>,
    shift: u32,
    len: usize,
}

impl HotTable {
    fn new() -> Self {
        HotTable { buckets: huge_vec(Entry::EMPTY, 1024), shift: 64 - 10, len: 0 }
    }

    #[inline(always)]
    fn home(&self, k: u64) -> usize {
        (fib_hash(k) >> self.shift) as usize
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    #[inline(always)]
    fn prefetch(&self, k: u64) {
        prefetch(self.buckets.as_ptr().wrapping_add(self.home(k)));
    }

    /// Position of `k`'s entry.
    #[inline]
    fn find(&self, k: u64) -> Option<usize> {
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
    fn insert(&mut self, e: Entry) {
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
    fn remove_at(&mut self, i: usize) {
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

    fn len(&self) -> usize {
        self.len
    }
}

/// Counters of one worker (or the sum over the workers, see [`Engine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub opened: u64,
    pub open_duplicate: u64,
    pub bids_placed: u64,
    pub bids_updated: u64,
    pub bids_cancelled: u64,
    pub cancel_without_bid: u64,
    pub rejected_late: u64,
    pub rejected_unknown: u64,
    pub rejected_unreported: u64,
    pub closed_deadline: u64,
    pub closed_all_bids: u64,
    pub closed_shutdown: u64,
    pub results: u64,
    pub event_log_dropped: u64,
    pub open_auctions: u64,
    pub events_logged: u64,
}

const N_COUNTERS: usize = 16;

impl EngineCounters {
    fn to_array(self) -> [u64; N_COUNTERS] {
        [
            self.opened,
            self.open_duplicate,
            self.bids_placed,
            self.bids_updated,
            self.bids_cancelled,
            self.cancel_without_bid,
            self.rejected_late,
            self.rejected_unknown,
            self.rejected_unreported,
            self.closed_deadline,
            self.closed_all_bids,
            self.closed_shutdown,
            self.results,
            self.event_log_dropped,
            self.open_auctions,
            self.events_logged,
        ]
    }
    fn from_array(a: [u64; N_COUNTERS]) -> Self {
        EngineCounters {
            opened: a[0],
            open_duplicate: a[1],
            bids_placed: a[2],
            bids_updated: a[3],
            bids_cancelled: a[4],
            cancel_without_bid: a[5],
            rejected_late: a[6],
            rejected_unknown: a[7],
            rejected_unreported: a[8],
            closed_deadline: a[9],
            closed_all_bids: a[10],
            closed_shutdown: a[11],
            results: a[12],
            event_log_dropped: a[13],
            open_auctions: a[14],
            events_logged: a[15],
        }
    }
    /// `(name, value)` pairs, the keys of `stats()`.
    pub fn items(&self) -> [(&'static str, u64); N_COUNTERS] {
        let a = self.to_array();
        let names = [
            "opened",
            "open_duplicate",
            "bids_placed",
            "bids_updated",
            "bids_cancelled",
            "cancel_without_bid",
            "rejected_late",
            "rejected_unknown",
            "rejected_unreported",
            "closed_deadline",
            "closed_all_bids",
            "closed_shutdown",
            "results",
            "event_log_dropped",
            "open_auctions",
            "events_logged",
        ];
        std::array::from_fn(|i| (names[i], a[i]))
    }
}

/// Published counters of one worker: written only by it (once per block), read by `stats()`.
struct SharedCounters {
    c: [AtomicU64; N_COUNTERS],
}

impl SharedCounters {
    fn new() -> Self {
        SharedCounters { c: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
    fn publish(&self, local: &EngineCounters) {
        for (slot, v) in self.c.iter().zip(local.to_array()) {
            slot.store(v, Ordering::Release);
        }
    }
    fn load(&self) -> EngineCounters {
        EngineCounters::from_array(std::array::from_fn(|i| self.c[i].load(Ordering::Acquire)))
    }
}

/// Percentiles of one latency histogram, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

fn new_hist() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds")
}

/// A snapshot of the engine's state, see [`Engine::stats`].
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    pub counters: EngineCounters,
    pub workers: usize,
    pub submitted: u64,
    pub queued: u64,
    pub attached: usize,
    pub attach_records: u64,
    pub attach_invalid: u64,
    pub attach_errors: u64,
    pub attach_last_error: Option<String>,
    pub pinned: usize,
    pub pin_failures: usize,
    pub pin_error: Option<String>,
    pub last_bid_to_result: LatencySummary,
    pub open_to_close: LatencySummary,
}

struct Hists {
    last_bid_to_result: Histogram<u64>,
    open_to_close: Histogram<u64>,
}

/// What a worker shares with the engine handle.
struct WorkerShared {
    queued: CachePadded<AtomicUsize>,
    counters: SharedCounters,
    hists: Mutex<Hists>,
    pinned: AtomicBool,
}

struct Shared {
    workers: Vec<WorkerShared>,
    free_bids: ArrayQueue<Vec<BidRecord>>,
    free_compact: ArrayQueue<Vec<CompactBid>>,
    free_results: ArrayQueue<Vec<AuctionResult>>,
    rejected_outstanding: AtomicUsize,
    rejected_cap: usize,
    pin_error: Mutex<Option<String>>,
    pin_failed: AtomicUsize,
    attach: AttachCounters,
    /// Workers that hit an internal panic (never expected; reported by `stats` and `close`).
    panicked: AtomicUsize,
}

/// A validated submission, partitioned by shard; see [`Engine::prepare`].
pub struct Prepared {
    blocks: Vec<Block>,
    n: usize,
}

impl Prepared {
    /// Records in the submission.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The engine handle. Dropping it closes the engine (see [`Engine::close`]).
pub struct Engine {
    cfg: EngineConfig,
    intake: Arc<Intake>,
    results_rx: Receiver<Vec<AuctionResult>>,
    rejected_rx: Receiver<Vec<RejectedBid>>,
    pending: Mutex<Pending>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    attached: Mutex<Vec<Attached>>,
    shared: Arc<Shared>,
}

/// The submitting side, shared by the handle and the attach threads.
struct Intake {
    senders: RwLock<Option<Vec<Sender<Msg>>>>,
    shared: Arc<Shared>,
    workers: usize,
    cap_per_worker: usize,
    submitted: AtomicU64,
}

/// An ingress thread consuming a [`BidSource`].
struct Attached {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Counters of the attach threads (all sources summed).
#[derive(Default)]
struct AttachCounters {
    records: AtomicU64,
    invalid: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A stream of bid records from outside the process (e.g. a `BidRing` that other processes
/// append to), consumed by [`Engine::attach`] on a thread of its own.
pub trait BidSource: Send + 'static {
    /// Waits up to `timeout` for records and appends at most `max_n` of them to `out`;
    /// returns how many were appended (0 on timeout).
    fn fill(
        &mut self,
        out: &mut Vec<BidRecord>,
        max_n: usize,
        timeout: Duration,
    ) -> Result<usize, CoreError>;
}

#[derive(Default)]
struct Pending {
    results: std::collections::VecDeque<AuctionResult>,
    rejected: std::collections::VecDeque<RejectedBid>,
}

/// Bid arrays as the caller holds them (struct of arrays); `quality`/`kinds` default to 1.0 /
/// place.
pub struct BidArrays<'a> {
    pub auction_ids: &'a [i64],
    pub bidder_ids: &'a [i64],
    pub prices: &'a [f64],
    pub quality: Option<&'a [f64]>,
    pub kinds: Option<&'a [u8]>,
}

fn bad_value(field: &'static str, index: usize, value: Value, msg: &'static str) -> CoreError {
    CoreError::InvalidValue { field, index, value, msg }
}

impl Engine {
    /// Starts the worker threads. Pinning failures are recorded in [`Engine::stats`], not fatal.
    pub fn start(cfg: EngineConfig) -> Result<Engine, CoreError> {
        if cfg.workers == 0 || cfg.workers > 1024 {
            return Err(CoreError::invalid(
                "workers",
                format!("workers = {}: must be in 1..=1024", cfg.workers),
            ));
        }
        if !(cfg.reserve.is_finite() && cfg.reserve >= 0.0) {
            return Err(CoreError::invalid(
                "reserve",
                format!("reserve = {}: must be finite and >= 0", cfg.reserve),
            ));
        }
        check_increment(cfg.increment)?;
        match &cfg.mechanism {
            Mechanism::Gsp(c) | Mechanism::Vcg(c) => {
                check_slot_ctrs(c)?;
                if c.len() > u16::MAX as usize {
                    return Err(CoreError::invalid("slot_ctrs", "at most 65535 slots"));
                }
            }
            _ => {}
        }
        if cfg.tmax_ns == 0 {
            return Err(CoreError::invalid("tmax_ms", "tmax must be > 0"));
        }
        if cfg.capacity == 0 {
            return Err(CoreError::invalid("capacity", "capacity must be > 0"));
        }
        let n = cfg.workers;
        let shared = Arc::new(Shared {
            workers: (0..n)
                .map(|_| WorkerShared {
                    queued: CachePadded::new(AtomicUsize::new(0)),
                    counters: SharedCounters::new(),
                    hists: Mutex::new(Hists {
                        last_bid_to_result: new_hist(),
                        open_to_close: new_hist(),
                    }),
                    pinned: AtomicBool::new(false),
                })
                .collect(),
            free_bids: ArrayQueue::new(4 * n + 8),
            free_compact: ArrayQueue::new(4 * n + 8),
            free_results: ArrayQueue::new(64),
            rejected_outstanding: AtomicUsize::new(0),
            rejected_cap: cfg.capacity.max(1024),
            pin_error: Mutex::new(None),
            pin_failed: AtomicUsize::new(0),
            attach: AttachCounters::default(),
            panicked: AtomicUsize::new(0),
        });
        let (res_tx, results_rx) = crossbeam_channel::unbounded();
        let (rej_tx, rejected_rx) = crossbeam_channel::unbounded();
        let cores = if cfg.pin { core_affinity::get_core_ids() } else { None };
        if cfg.pin && cores.as_ref().is_none_or(|c| c.is_empty()) {
            *shared.pin_error.lock().unwrap() = Some("could not list the CPU cores".into());
        }
        let mut senders = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for w in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            senders.push(tx);
            let core = cores.as_ref().and_then(|c| (!c.is_empty()).then(|| c[w % c.len()]));
            let pin = cfg.pin;
            let worker = Worker::new(w, &cfg, shared.clone(), res_tx.clone(), rej_tx.clone());
            let sh = shared.clone();
            let h = std::thread::Builder::new()
                .name(format!("rtbcore-engine-{w}"))
                .spawn(move || {
                    if pin {
                        match core {
                            Some(c) if core_affinity::set_for_current(c) => {
                                sh.workers[w].pinned.store(true, Ordering::Release)
                            }
                            Some(c) => {
                                sh.pin_failed.fetch_add(1, Ordering::AcqRel);
                                *sh.pin_error.lock().unwrap() =
                                    Some(format!("worker {w}: pinning to core {} failed", c.id))
                            }
                            None => {
                                sh.pin_failed.fetch_add(1, Ordering::AcqRel);
                            }
                        }
                    }
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                        let mut worker = worker;
                        worker.run(rx)
                    }));
                    if r.is_err() {
                        sh.panicked.fetch_add(1, Ordering::AcqRel);
                    }
                })
                .map_err(|e| CoreError::Io {
                    context: "spawning a worker".into(),
                    msg: e.to_string(),
                });
            match h {
                Ok(h) => threads.push(h),
                Err(e) => {
                    drop(senders);
                    for t in threads {
                        let _ = t.join();
                    }
                    return Err(e);
                }
            }
        }
        let cap_per_worker = cfg.capacity.div_ceil(n);
        let intake = Arc::new(Intake {
            senders: RwLock::new(Some(senders)),
            shared: shared.clone(),
            workers: n,
            cap_per_worker,
            submitted: AtomicU64::new(0),
        });
        Ok(Engine {
            cfg,
            intake,
            results_rx,
            rejected_rx,
            pending: Mutex::new(Pending::default()),
            threads: Mutex::new(threads),
            attached: Mutex::new(Vec::new()),
            shared,
        })
    }

    /// Validates a submission and partitions it by shard, stamping every record with `now_ns`.
    /// Nothing is queued: on error nothing of the block is taken.
    pub fn prepare(&self, bids: &BidArrays<'_>, now_ns: u64) -> Result<Prepared, CoreError> {
        self.intake.prepare(bids, now_ns)
    }

    /// Validates records (e.g. read from a ring) and partitions them; a record with
    /// `timestamp_ns == 0` is stamped with `now_ns`. Nothing is queued: on error nothing of the
    /// block is taken.
    pub fn prepare_records(&self, recs: &[BidRecord], now_ns: u64) -> Result<Prepared, CoreError> {
        self.intake.prepare_records(recs, now_ns)
    }

    /// Waits up to `timeout` until every shard the submission touches has room (a shard that
    /// is empty always has room, so an oversized block is never refused forever).
    pub fn wait_room(&self, p: &Prepared, timeout: Duration) -> bool {
        self.intake.wait_room(p, timeout)
    }

    /// Queues a prepared submission (no capacity check; see [`Engine::wait_room`]).
    /// Returns the number of records queued, or [`CoreError::Closed`].
    pub fn send(&self, p: Prepared) -> Result<usize, CoreError> {
        self.intake.send(p)
    }

    /// Consumes `source` on a thread of its own until [`Engine::close`]: its records are
    /// validated one by one (an invalid record is counted in `attach_invalid` and skipped, the
    /// rest go on), stamped with the time they were read when their `timestamp_ns` is 0, and
    /// queued like a submission (waiting for room). A source error (e.g. a ring overrun) is
    /// counted in `attach_errors` with its message, and the thread goes on reading.
    pub fn attach(&self, source: Box<dyn BidSource>) -> Result<(), CoreError> {
        if self.is_closed() {
            return Err(CoreError::Closed);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let intake = self.intake.clone();
        let st = stop.clone();
        let id = self.attached.lock().unwrap().len();
        let thread = std::thread::Builder::new()
            .name(format!("rtbcore-attach-{id}"))
            .spawn(move || attach_loop(intake, source, st))
            .map_err(|e| CoreError::Io {
                context: "spawning an attach thread".into(),
                msg: e.to_string(),
            })?;
        self.attached.lock().unwrap().push(Attached { stop, thread });
        Ok(())
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn workers(&self) -> usize {
        self.cfg.workers
    }

    /// True once [`Engine::close`] has started.
    pub fn is_closed(&self) -> bool {
        self.intake.senders.read().unwrap().is_none()
    }

    /// Validates, waits for room (at most `timeout`; `Full` after it) and queues a submission.
    pub fn submit(&self, bids: &BidArrays<'_>, timeout: Duration) -> Result<usize, CoreError> {
        let p = self.prepare(bids, mono_ns())?;
        if !self.wait_room(&p, timeout) {
            for b in p.blocks {
                b.recycle(&self.intake.shared);
            }
            return Err(CoreError::Full);
        }
        self.send(p)
    }

    /// Opens auctions. Each request's `open_ns` starts its clock; `tmax_ns` / `reserve` must be
    /// set (use [`Engine::open_request`] for the engine's defaults).
    pub fn open(&self, reqs: &[OpenRequest]) -> Result<usize, CoreError> {
        for (i, r) in reqs.iter().enumerate() {
            if r.auction_id > MAX_ID {
                let v = Value::Int(r.auction_id.into());
                return Err(bad_value("auction_ids", i, v, "must be in 0..=2**63-1"));
            }
            if !price_ok(r.reserve) {
                let v = Value::Float(r.reserve);
                return Err(bad_value("reserve", i, v, "must be finite and >= 0"));
            }
            if r.tmax_ns == 0 {
                return Err(bad_value("tmax_ns", i, Value::Int(0), "must be > 0"));
            }
        }
        let w = self.cfg.workers;
        let mut parts: Vec<Vec<OpenRequest>> = vec![Vec::new(); w];
        for r in reqs {
            parts[shard_of(r.auction_id, w)].push(*r);
        }
        let guard = self.intake.senders.read().unwrap();
        let Some(senders) = guard.as_ref() else {
            return Err(CoreError::Closed);
        };
        for (s, part) in parts.into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            self.shared.workers[s].queued.fetch_add(part.len(), Ordering::AcqRel);
            if senders[s].send(Msg::Open(part)).is_err() {
                return Err(CoreError::Closed);
            }
        }
        Ok(reqs.len())
    }

    /// An open request with the engine's defaults for what is `None`.
    pub fn open_request(
        &self,
        auction_id: u64,
        reserve: Option<f64>,
        tmax_ns: Option<u64>,
        expected_bids: u32,
        open_ns: u64,
    ) -> OpenRequest {
        OpenRequest {
            auction_id,
            reserve: reserve.unwrap_or(self.cfg.reserve),
            tmax_ns: tmax_ns.unwrap_or(self.cfg.tmax_ns),
            expected_bids,
            open_ns,
        }
    }

    fn refill_pending(&self, pending: &mut Pending, want: usize) {
        while pending.results.len() < want {
            match self.results_rx.try_recv() {
                Ok(mut block) => {
                    pending.results.extend(block.drain(..));
                    let _ = self.shared.free_results.push(block);
                }
                Err(_) => break,
            }
        }
    }

    /// Waits up to `timeout` for at least one result to be available (without taking any).
    /// Returns whether one is.
    pub fn wait_results(&self, timeout: Duration) -> bool {
        {
            let mut p = self.pending.lock().unwrap();
            if !p.results.is_empty() {
                return true;
            }
            self.refill_pending(&mut p, 1);
            if !p.results.is_empty() {
                return true;
            }
        }
        if timeout.is_zero() {
            return false;
        }
        match self.results_rx.recv_timeout(timeout) {
            Ok(mut block) => {
                let mut p = self.pending.lock().unwrap();
                p.results.extend(block.drain(..));
                let _ = self.shared.free_results.push(block);
                true
            }
            Err(_) => false,
        }
    }

    /// Moves up to `max_n` available result rows into `out` (whole auctions only when
    /// `max_n >= rows per auction`). Never blocks. Returns how many were moved.
    pub fn poll_into(&self, out: &mut Vec<AuctionResult>, max_n: usize) -> usize {
        let k = self.cfg.mechanism.rows_per_auction();
        let max_n = if max_n >= k { max_n - max_n % k } else { max_n };
        let mut p = self.pending.lock().unwrap();
        self.refill_pending(&mut p, max_n);
        let n = p.results.len().min(max_n);
        out.extend(p.results.drain(..n));
        n
    }

    /// Moves up to `max_n` rejected bids into `out`. Never blocks.
    pub fn poll_rejected_into(&self, out: &mut Vec<RejectedBid>, max_n: usize) -> usize {
        let mut p = self.pending.lock().unwrap();
        while p.rejected.len() < max_n {
            match self.rejected_rx.try_recv() {
                Ok(block) => p.rejected.extend(block),
                Err(_) => break,
            }
        }
        let n = p.rejected.len().min(max_n);
        out.extend(p.rejected.drain(..n));
        self.shared.rejected_outstanding.fetch_sub(n, Ordering::AcqRel);
        n
    }

    /// Counters (summed over the workers), pinning and latency percentiles.
    pub fn stats(&self) -> EngineStats {
        let mut sum = [0u64; N_COUNTERS];
        let mut l2r = new_hist();
        let mut o2c = new_hist();
        let mut queued = 0u64;
        let mut pinned = 0usize;
        for w in &self.shared.workers {
            for (s, v) in sum.iter_mut().zip(w.counters.load().to_array()) {
                *s += v;
            }
            let h = w.hists.lock().unwrap();
            let _ = l2r.add(&h.last_bid_to_result);
            let _ = o2c.add(&h.open_to_close);
            queued += w.queued.load(Ordering::Acquire) as u64;
            pinned += w.pinned.load(Ordering::Acquire) as usize;
        }
        let pin_error = self.shared.pin_error.lock().unwrap().clone();
        EngineStats {
            counters: EngineCounters::from_array(sum),
            workers: self.cfg.workers,
            submitted: self.intake.submitted.load(Ordering::Relaxed),
            attached: self.attached.lock().unwrap().len(),
            attach_records: self.shared.attach.records.load(Ordering::Acquire),
            attach_invalid: self.shared.attach.invalid.load(Ordering::Acquire),
            attach_errors: self.shared.attach.errors.load(Ordering::Acquire),
            attach_last_error: self.shared.attach.last_error.lock().unwrap().clone(),
            queued,
            pinned,
            pin_failures: self.shared.pin_failed.load(Ordering::Acquire),
            pin_error,
            last_bid_to_result: summarize(&l2r),
            open_to_close: summarize(&o2c),
        }
    }

    /// Resets both latency histograms (e.g. after a warm-up).
    pub fn reset_latency(&self) {
        for w in &self.shared.workers {
            let mut h = w.hists.lock().unwrap();
            h.last_bid_to_result.reset();
            h.open_to_close.reset();
        }
    }

    /// Stops intake, lets every worker finish its queue and close its open auctions
    /// (`closed_by = shutdown`), and joins every thread. Results stay pollable. Idempotent.
    /// Returns an error if a worker had panicked (an engine bug).
    pub fn close(&self) -> Result<(), CoreError> {
        // ingress threads first: what they already read is queued before intake stops
        let attached: Vec<Attached> = std::mem::take(&mut *self.attached.lock().unwrap());
        for a in &attached {
            a.stop.store(true, Ordering::Release);
        }
        for a in attached {
            let _ = a.thread.join();
        }
        drop(self.intake.senders.write().unwrap().take());
        let threads: Vec<_> = std::mem::take(&mut *self.threads.lock().unwrap());
        for t in threads {
            let _ = t.join();
        }
        let p = self.shared.panicked.load(Ordering::Acquire);
        if p > 0 {
            return Err(CoreError::Io {
                context: "engine".into(),
                msg: format!("{p} worker(s) panicked; their open auctions were lost"),
            });
        }
        Ok(())
    }

    /// Worker threads still running (0 after `close`).
    pub fn live_threads(&self) -> usize {
        self.threads.lock().unwrap().iter().filter(|t| !t.is_finished()).count()
    }
}

impl Intake {
    fn take_block(&self, n: usize) -> Vec<BidRecord> {
        let mut v = self.shared.free_bids.pop().unwrap_or_default();
        v.clear();
        reserve_huge(&mut v, n);
        v
    }

    fn take_compact(&self, n: usize) -> Vec<CompactBid> {
        let mut v = self.shared.free_compact.pop().unwrap_or_default();
        v.clear();
        reserve_huge(&mut v, n);
        v
    }

    /// Validates a submission and partitions it by shard, stamping every record with `now_ns`.
    /// Nothing is queued: on error nothing of the block is taken.
    fn prepare(&self, bids: &BidArrays<'_>, now_ns: u64) -> Result<Prepared, CoreError> {
        let n = bids.auction_ids.len();
        for (name, len) in [("bidder_ids", bids.bidder_ids.len()), ("prices", bids.prices.len())] {
            if len != n {
                return Err(CoreError::invalid(
                    name,
                    format!("has {len} entries but auction_ids has {n}"),
                ));
            }
        }
        if let Some(q) = bids.quality {
            if q.len() != n {
                return Err(CoreError::invalid(
                    "quality",
                    format!("has {} entries but auction_ids has {n}", q.len()),
                ));
            }
        }
        if let Some(k) = bids.kinds {
            if k.len() != n {
                return Err(CoreError::invalid(
                    "kinds",
                    format!("has {} entries but auction_ids has {n}", k.len()),
                ));
            }
        }
        // One pass validates (a branch-free flag; the exact error is looked for only if it is
        // raised) and scatters into per-shard blocks. With one or two shards each block gets
        // room for the whole submission (virtual memory; only what is written is touched);
        // with more, a counting pass over the ids sizes them exactly.
        let w = self.workers;
        let (aids, bidders, prices) =
            (&bids.auction_ids[..n], &bids.bidder_ids[..n], &bids.prices[..n]);
        let caps = if w <= 2 {
            vec![n; w]
        } else {
            let mut counts = vec![0usize; w];
            for &a in aids {
                counts[shard_of(a as u64, w)] += 1;
            }
            counts
        };
        let mut ok = true;
        let blocks = if bids.quality.is_none() && bids.kinds.is_none() {
            let mut parts: Vec<Vec<CompactBid>> =
                caps.iter().map(|&c| self.take_compact(c)).collect();
            for i in 0..n {
                let (a, b, p) = (aids[i], bidders[i], prices[i]);
                ok &= fields_ok(a as u64, b as u64, p, 1.0, KIND_PLACE);
                parts[shard_of(a as u64, w)].push(CompactBid {
                    auction_id: a as u64,
                    bidder_id: b as u64,
                    price: p,
                });
            }
            parts.into_iter().map(|bids| Block::Compact { bids, ts: now_ns }).collect::<Vec<_>>()
        } else {
            let mut parts: Vec<Vec<BidRecord>> = caps.iter().map(|&c| self.take_block(c)).collect();
            for i in 0..n {
                let (a, b, p) = (aids[i], bidders[i], prices[i]);
                let q = bids.quality.map_or(1.0, |q| q[i]);
                let k = bids.kinds.map_or(KIND_PLACE, |k| k[i]);
                ok &= fields_ok(a as u64, b as u64, p, q, k);
                parts[shard_of(a as u64, w)].push(BidRecord {
                    auction_id: a as u64,
                    bidder_id: b as u64,
                    price: p,
                    quality: q,
                    timestamp_ns: now_ns,
                    kind: k,
                    _pad: [0; 7],
                });
            }
            parts.into_iter().map(Block::Records).collect()
        };
        if !ok {
            for b in blocks {
                b.recycle(&self.shared);
            }
            for i in 0..n {
                let q = bids.quality.map_or(1.0, |q| q[i]);
                let k = bids.kinds.map_or(KIND_PLACE, |k| k[i]);
                check_fields(aids[i].into(), bidders[i].into(), prices[i], q, k)
                    .map_err(|e| e.at(i))?;
            }
            // the flag is check_fields' rule, so this is not reached; no panic if it were
            return Err(CoreError::invalid("prices", "invalid bid"));
        }
        Ok(Prepared { blocks, n })
    }

    /// Validates records (e.g. read from a ring) and partitions them; a record with
    /// `timestamp_ns == 0` is stamped with `now_ns`.
    fn prepare_records(&self, recs: &[BidRecord], now_ns: u64) -> Result<Prepared, CoreError> {
        validate_records(recs)?;
        let w = self.workers;
        let mut counts = vec![0usize; w];
        for r in recs {
            counts[shard_of(r.auction_id, w)] += 1;
        }
        let mut blocks: Vec<Vec<BidRecord>> = counts.iter().map(|&c| self.take_block(c)).collect();
        for r in recs {
            let mut r = *r;
            if r.timestamp_ns == 0 {
                r.timestamp_ns = now_ns;
            }
            blocks[shard_of(r.auction_id, w)].push(r);
        }
        Ok(Prepared { blocks: blocks.into_iter().map(Block::Records).collect(), n: recs.len() })
    }

    /// Waits up to `timeout` until every shard the submission touches has room (a shard that
    /// is empty always has room, so an oversized block is never refused forever).
    fn wait_room(&self, p: &Prepared, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let ok = p.blocks.iter().enumerate().all(|(w, b)| {
                let q = self.shared.workers[w].queued.load(Ordering::Acquire);
                b.is_empty() || q == 0 || q + b.len() <= self.cap_per_worker
            });
            if ok {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            spins += 1;
            if spins < 16 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Queues a prepared submission (no capacity check; see [`Engine::wait_room`]).
    /// Returns the number of records queued, or [`CoreError::Closed`].
    fn send(&self, p: Prepared) -> Result<usize, CoreError> {
        let guard = self.senders.read().unwrap();
        let Some(senders) = guard.as_ref() else {
            for b in p.blocks {
                b.recycle(&self.shared);
            }
            return Err(CoreError::Closed);
        };
        for (w, b) in p.blocks.into_iter().enumerate() {
            if b.is_empty() {
                b.recycle(&self.shared);
                continue;
            }
            self.shared.workers[w].queued.fetch_add(b.len(), Ordering::AcqRel);
            if senders[w].send(Msg::Bids(b)).is_err() {
                return Err(CoreError::Closed);
            }
        }
        self.submitted.fetch_add(p.n as u64, Ordering::Relaxed);
        Ok(p.n)
    }
}

fn attach_loop(intake: Arc<Intake>, mut source: Box<dyn BidSource>, stop: Arc<AtomicBool>) {
    let counters = &intake.shared.attach;
    let mut buf: Vec<BidRecord> = Vec::with_capacity(1 << 16);
    let mut good: Vec<BidRecord> = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Acquire) {
        buf.clear();
        match source.fill(&mut buf, 1 << 16, Duration::from_millis(20)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::AcqRel);
                *counters.last_error.lock().unwrap() = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        good.clear();
        let mut bad = 0u64;
        for r in &buf {
            if r.is_valid() {
                good.push(*r);
            } else {
                bad += 1;
            }
        }
        counters.invalid.fetch_add(bad, Ordering::AcqRel);
        let Ok(p) = intake.prepare_records(&good, mono_ns()) else {
            continue;
        };
        // wait for room, but give up if the engine is closing
        while !intake.wait_room(&p, Duration::from_millis(20)) {
            if stop.load(Ordering::Acquire) {
                break;
            }
        }
        let n = p.len() as u64;
        if intake.send(p).is_err() {
            return;
        }
        counters.records.fetch_add(n, Ordering::AcqRel);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

// ---------------------------------------------------------------------------------------------
// the worker

/// One bidder's current bid in an auction (24 bytes). A live bid's quality is > 0 (validated
/// on the way in); a cancel negates it, and an update writes a fresh one.
#[derive(Clone, Copy, Default)]
struct Bid {
    bidder: u64,
    price: f64,
    quality: f64,
}

impl Bid {
    #[inline(always)]
    fn live(&self) -> bool {
        self.quality > 0.0
    }
}

/// The rest of an auction's state, read when it opens and closes.
#[derive(Default, Clone, Copy)]
struct Cold {
    id: u64,
    open_ns: u64,
    reserve: f64,
    gen: u32,
    open: bool,
}

/// A bidder's 16-bit fingerprint (the top bits of its hash).
#[inline(always)]
fn tag_of(bidder: u64) -> u16 {
    (fib_hash(bidder) >> 48) as u16
}

/// Tags compared per step of [`find_bidder`]; storage capacities are multiples of it.
const TAG_STEP: usize = 16;

/// Position of `bidder` among the first `n` bids: compares 16 two-byte tags per step without
/// branching (a vector compare and a movemask), then checks the candidates — with 16-bit tags
/// there is almost never a false one, whose check would be a cache miss. `tags` and `bids`
/// are the auction's whole storage (a multiple of [`TAG_STEP`] long), so every step is a full
/// one; tags past `n` (left over from an earlier auction) are masked out.
#[inline]
fn find_bidder(tags: &[u16], bids: &[Bid], n: usize, bidder: u64) -> Option<usize> {
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

const CLOSED_CACHE: usize = 1 << 16;

/// Smallest bid storage of an auction (a power of two; storage grows by doubling).
const MIN_CAP: usize = 16;

/// "Not in the table" as a position hint.
const NO_POS: usize = usize::MAX;

struct Worker {
    id: usize,
    mechanism: Mechanism,
    increment: f64,
    shared: Arc<Shared>,
    res_tx: Sender<Vec<AuctionResult>>,
    rej_tx: Sender<Vec<RejectedBid>>,
    sink: Option<Arc<dyn EventSink>>,
    table: HotTable,
    /// per slot (stable while the auction is open, unlike its table position)
    cold: Vec<Cold>,
    /// the bid storage of every auction: an auction's `cap` bids at `Entry::off` of
    /// `store_bids`, the 16-bit tags of their bidders at the same offset of `store_tags`
    store_bids: Vec<Bid>,
    store_tags: Vec<u16>,
    /// free storage by size class (capacity `MIN_CAP << class`)
    store_free: Vec<Vec<u32>>,
    /// the latest submit stamp processed (the deadline watermark while the queue is not empty)
    seen_ns: u64,
    /// cold slots of closed auctions, reused by the next opens
    free: Vec<u32>,
    heap: BinaryHeap<std::cmp::Reverse<(u64, u32, u32)>>,
    closed: Vec<u64>,
    out: Vec<AuctionResult>,
    /// last-event timestamps of the rows in `out` (for the latency histogram at publish time)
    out_last: Vec<u64>,
    rejected: Vec<RejectedBid>,
    events: Vec<BidRecord>,
    c: EngineCounters,
    // scratch for clearing
    s_bidders: Vec<u64>,
    s_prices: Vec<f64>,
    s_quality: Vec<f64>,
    s_order: Vec<u32>,
    s_mtw: Vec<f64>,
    s_loss: Vec<i32>,
    s_slots: Vec<(f64, usize)>,
    s_winner: Vec<i64>,
    s_price: Vec<f64>,
}

enum BidPlace {
    Placed,
    Updated,
}

impl Worker {
    fn new(
        id: usize,
        cfg: &EngineConfig,
        shared: Arc<Shared>,
        res_tx: Sender<Vec<AuctionResult>>,
        rej_tx: Sender<Vec<RejectedBid>>,
    ) -> Self {
        let k = cfg.mechanism.rows_per_auction();
        Worker {
            id,
            mechanism: cfg.mechanism.clone(),
            increment: cfg.increment,
            shared,
            res_tx,
            rej_tx,
            sink: cfg.event_sink.clone(),
            table: HotTable::new(),
            seen_ns: 0,
            cold: Vec::new(),
            store_bids: Vec::new(),
            store_tags: Vec::new(),
            store_free: Vec::new(),
            free: Vec::new(),
            heap: BinaryHeap::new(),
            closed: vec![u64::MAX; CLOSED_CACHE],
            out: Vec::new(),
            out_last: Vec::new(),
            rejected: Vec::new(),
            events: Vec::new(),
            c: EngineCounters::default(),
            s_bidders: Vec::new(),
            s_prices: Vec::new(),
            s_quality: Vec::new(),
            s_order: Vec::new(),
            s_mtw: Vec::new(),
            s_loss: Vec::new(),
            s_slots: Vec::with_capacity(k + 1),
            s_winner: vec![-1; k],
            s_price: vec![0.0; k],
        }
    }

    fn run(&mut self, rx: Receiver<Msg>) {
        loop {
            let timeout = match self.heap.peek() {
                Some(std::cmp::Reverse((d, _, _))) => {
                    Duration::from_nanos(d.saturating_sub(mono_ns()))
                }
                None => Duration::from_secs(3600),
            };
            match rx.recv_timeout(timeout) {
                Ok(msg) => {
                    self.handle(msg);
                    // drain what is already queued before looking at the clock again, but
                    // publish at least every few blocks so results are not held back
                    for _ in 0..8 {
                        match rx.try_recv() {
                            Ok(m) => self.handle(m),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            // Deadlines are judged on submit stamps: while blocks are still queued, close only
            // the auctions whose deadline precedes everything processed so far, so a bid
            // stamped in time is not turned away because the worker lagged behind.
            let now = mono_ns();
            let upto = if rx.is_empty() { now } else { self.seen_ns.min(now) };
            self.expire(upto);
            self.flush();
        }
        // intake closed and drained: close what is still open
        let now = mono_ns();
        let open: Vec<u64> = self.cold.iter().filter(|c| c.open).map(|c| c.id).collect();
        for id in open {
            if let Some(pos) = self.table.find(id) {
                self.close_auction(pos, CLOSED_BY_SHUTDOWN, now);
            }
        }
        self.flush();
    }

    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Open(reqs) => {
                for r in &reqs {
                    self.seen_ns = self.seen_ns.max(r.open_ns);
                    self.open(r);
                }
                self.shared.workers[self.id].queued.fetch_sub(reqs.len(), Ordering::AcqRel);
            }
            Msg::Bids(block) => {
                match &block {
                    Block::Records(v) => self.apply_block(v, |r| *r),
                    &Block::Compact { ref bids, ts } => self.apply_block(bids, |c| BidRecord {
                        auction_id: c.auction_id,
                        bidder_id: c.bidder_id,
                        price: c.price,
                        quality: 1.0,
                        timestamp_ns: ts,
                        kind: KIND_PLACE,
                        _pad: [0; 7],
                    }),
                }
                self.shared.workers[self.id].queued.fetch_sub(block.len(), Ordering::AcqRel);
                block.recycle(&self.shared);
            }
        }
        if self.out.len() >= 4096 {
            self.flush();
        }
    }

    /// Applies a block in arrival order (`get` reads its `i`th record) as a software pipeline,
    /// one stage per dependent load, D records apart: the table bucket is prefetched 2D
    /// records ahead, the entry is read D ahead (prefetching the line the record's bid would be
    /// written to, and the tags if the filter cannot rule the bidder out), then the record is
    /// applied.
    #[inline(always)]
    fn apply_block<T>(&mut self, block: &[T], get: impl Fn(&T) -> BidRecord) {
        const D: usize = 8;
        const RING: usize = 16;
        const INPUT_AHEAD: usize = 64;
        const _: () = assert!(RING > D);
        let n = block.len();
        let mut ring = [NO_POS; RING];
        for r in block.iter().take(2 * D) {
            self.table.prefetch(get(r).auction_id);
        }
        for (j, r) in block.iter().take(D).enumerate() {
            ring[j % RING] = self.lookup(&get(r));
        }
        for i in 0..n {
            // the block itself: sequential, but written by another core, and the hardware
            // prefetcher stops at every 4 KB page
            prefetch(block.as_ptr().wrapping_add(i + INPUT_AHEAD));
            if let Some(r) = block.get(i + 2 * D) {
                self.table.prefetch(get(r).auction_id);
            }
            if let Some(r) = block.get(i + D) {
                ring[(i + D) % RING] = self.lookup(&get(r));
            }
            self.apply(&get(&block[i]), ring[i % RING]);
        }
    }

    /// The table position of the record's auction (`NO_POS` if it is not open), prefetching
    /// the line its bid would be written to and, unless the filter rules the bidder out, the
    /// tags.
    #[inline(always)]
    fn lookup(&mut self, r: &BidRecord) -> usize {
        self.seen_ns = self.seen_ns.max(r.timestamp_ns);
        let Some(pos) = self.table.find(r.auction_id) else {
            return NO_POS;
        };
        let e = &self.table.buckets[pos];
        let off = e.off as usize;
        // the bid's 24 bytes may straddle two lines
        let at = self.store_bids.as_ptr().wrapping_add(off + e.n as usize).cast::<u8>();
        prefetch(at);
        prefetch(at.wrapping_add(std::mem::size_of::<Bid>() - 1));
        if e.may_have(r.bidder_id) {
            // the tags of the bids so far: n * 2 bytes
            let t = self.store_tags.as_ptr().wrapping_add(off).cast::<u8>();
            for line in 0..(e.n as usize * 2).div_ceil(64).min(4) {
                prefetch(t.wrapping_add(64 * line));
            }
        } else if e.n + 1 == e.expected {
            // a new bidder that completes the auction: closing it reads the cold slot and
            // gathers its bids (the first 4 KB here; the hardware prefetcher follows a longer
            // run)
            prefetch(self.cold.as_ptr().wrapping_add(e.slot as usize));
            let b = self.store_bids.as_ptr().wrapping_add(off).cast::<u8>();
            for line in 0..(e.n as usize * std::mem::size_of::<Bid>()).div_ceil(64).min(64) {
                prefetch(b.wrapping_add(64 * line));
            }
        }
        pos
    }

    /// Storage for `cap` (a power of two >= `MIN_CAP`) bids: its offset in the arenas.
    fn alloc_store(&mut self, cap: usize) -> u32 {
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

    fn free_store(&mut self, off: u32, cap: u32) {
        let class = (cap as usize / MIN_CAP).trailing_zeros() as usize;
        self.store_free[class].push(off);
    }

    /// Doubles the bid capacity of the auction at `pos` (cold path: it outgrew its storage).
    #[cold]
    fn grow(&mut self, pos: usize) {
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

    fn open(&mut self, r: &OpenRequest) {
        if self.table.find(r.auction_id).is_some() {
            self.c.open_duplicate += 1;
            return;
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.cold.push(Cold::default());
                (self.cold.len() - 1) as u32
            }
        };
        let deadline = r.open_ns.saturating_add(r.tmax_ns);
        let c = &mut self.cold[slot as usize];
        c.id = r.auction_id;
        c.open_ns = r.open_ns;
        c.reserve = r.reserve;
        c.gen = c.gen.wrapping_add(1);
        c.open = true;
        let gen = c.gen;
        self.heap.push(std::cmp::Reverse((deadline, slot, gen)));
        // room for the expected bids up front (up to a point), so most auctions never grow
        let cap = (r.expected_bids as usize).clamp(MIN_CAP, 256).next_power_of_two();
        let off = self.alloc_store(cap);
        self.table.insert(Entry {
            id: r.auction_id,
            deadline_ns: deadline,
            last_event_ns: r.open_ns,
            filter: [0; 2],
            n: 0,
            expected: r.expected_bids,
            n_live: 0,
            slot,
            off,
            cap: cap as u32,
        });
        let ci = (fib_hash(r.auction_id) >> 48) as usize & (CLOSED_CACHE - 1);
        if self.closed[ci] == r.auction_id {
            self.closed[ci] = u64::MAX;
        }
        self.c.opened += 1;
        if self.sink.is_some() {
            self.events.push(BidRecord {
                auction_id: r.auction_id,
                bidder_id: r.expected_bids as u64,
                price: r.reserve,
                quality: r.tmax_ns as f64,
                timestamp_ns: r.open_ns,
                kind: EV_AUCTION_STARTED,
                _pad: [0; 7],
            });
        }
    }

    fn reject(&mut self, r: &BidRecord, cause: u8) {
        if cause == REJECT_LATE {
            self.c.rejected_late += 1;
        } else {
            self.c.rejected_unknown += 1;
        }
        let sh = &self.shared;
        if sh.rejected_outstanding.load(Ordering::Acquire) + self.rejected.len() >= sh.rejected_cap
        {
            self.c.rejected_unreported += 1;
            return;
        }
        self.rejected.push(RejectedBid {
            auction_id: r.auction_id as i64,
            bidder_id: r.bidder_id as i64,
            price: r.price,
            timestamp_ns: r.timestamp_ns,
            loss_reason: LOSS_EXPIRED,
            cause,
            kind: r.kind,
            _pad: [0; 2],
        });
    }

    /// Applies one record; `hint` is its auction's table position as looked up a few records
    /// earlier (`NO_POS` = not open then: an auction never opens within a block of bids). The
    /// auction may have closed since (by its last expected bid or its deadline earlier in the
    /// block), and a removal may have moved its entry: the id at `hint` tells.
    #[inline(always)]
    fn apply(&mut self, r: &BidRecord, hint: usize) {
        let pos = match self.table.buckets.get(hint) {
            None => None,
            Some(e) if e.id == r.auction_id => Some(hint),
            Some(_) => self.table.find(r.auction_id),
        };
        let Some(pos) = pos else {
            let ci = (fib_hash(r.auction_id) >> 48) as usize & (CLOSED_CACHE - 1);
            let cause = if self.closed[ci] == r.auction_id { REJECT_LATE } else { REJECT_UNKNOWN };
            self.reject(r, cause);
            return;
        };
        let e = &mut self.table.buckets[pos];
        if r.timestamp_ns > e.deadline_ns {
            // the timer has not fired yet, but the deadline has passed for this bid
            self.close_auction(pos, CLOSED_BY_DEADLINE, mono_ns());
            self.reject(r, REJECT_LATE);
            return;
        }
        e.last_event_ns = e.last_event_ns.max(r.timestamp_ns);
        let (off, n) = (e.off as usize, e.n as usize);
        let found = if e.may_have(r.bidder_id) {
            let cap = e.cap as usize;
            find_bidder(
                &self.store_tags[off..off + cap],
                &self.store_bids[off..off + cap],
                n,
                r.bidder_id,
            )
        } else {
            None
        };
        if r.kind == KIND_CANCEL {
            match found {
                Some(i) if self.store_bids[off + i].live() => {
                    let b = &mut self.store_bids[off + i];
                    b.quality = -b.quality;
                    e.n_live -= 1;
                    self.c.bids_cancelled += 1;
                    if self.sink.is_some() {
                        let mut ev = *r;
                        ev.kind = EV_BID_CANCELLED;
                        self.events.push(ev);
                    }
                }
                _ => self.c.cancel_without_bid += 1,
            }
            return;
        }
        let how = match found {
            Some(i) => {
                let b = &mut self.store_bids[off + i];
                if !b.live() {
                    e.n_live += 1;
                }
                b.price = r.price;
                b.quality = r.quality;
                self.c.bids_updated += 1;
                BidPlace::Updated
            }
            None => {
                if n == e.cap as usize {
                    self.grow(pos);
                }
                let e = &mut self.table.buckets[pos];
                let at = e.off as usize + n;
                self.store_bids[at] =
                    Bid { bidder: r.bidder_id, price: r.price, quality: r.quality };
                self.store_tags[at] = tag_of(r.bidder_id);
                let (w, m) = filter_bit(r.bidder_id);
                e.filter[w] |= m;
                e.n += 1;
                e.n_live += 1;
                self.c.bids_placed += 1;
                BidPlace::Placed
            }
        };
        let e = &self.table.buckets[pos];
        let full = e.expected > 0 && e.n >= e.expected;
        if self.sink.is_some() {
            let mut ev = *r;
            ev.kind = match how {
                BidPlace::Placed => EV_BID_PLACED,
                BidPlace::Updated => EV_BID_UPDATED,
            };
            self.events.push(ev);
        }
        if full {
            self.close_auction(pos, CLOSED_BY_ALL_BIDS, mono_ns());
        }
    }

    /// Drops the heap entries of auctions that closed before their deadline (lazy deletion
    /// leaves them behind) once they outnumber the open auctions, so memory follows the number
    /// of open auctions rather than the opens of the last `tmax`. Amortized O(1) per close.
    fn compact_deadlines(&mut self) {
        if self.heap.len() <= 2 * self.table.len() + 4096 {
            return;
        }
        let cold = &self.cold;
        let live: Vec<_> = std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .filter(|std::cmp::Reverse((_, slot, gen))| {
                let c = &cold[*slot as usize];
                c.open && c.gen == *gen
            })
            .collect();
        self.heap = BinaryHeap::from(live);
    }

    fn expire(&mut self, now: u64) {
        self.compact_deadlines();
        while let Some(&std::cmp::Reverse((d, slot, gen))) = self.heap.peek() {
            if d > now {
                break;
            }
            self.heap.pop();
            // lazy deletion: the slot may have closed (and been reused) since
            let c = self.cold[slot as usize];
            if c.open && c.gen == gen {
                let pos = self.table.find(c.id).expect("an open auction is in the table");
                self.close_auction(pos, CLOSED_BY_DEADLINE, now);
            }
        }
    }

    /// Copies the live bids of `e` into the scratch columns, in bidder-id order if `sorted`.
    fn gather(&mut self, e: &Entry, sorted: bool) {
        let bids = &self.store_bids[e.off as usize..(e.off + e.n) as usize];
        self.s_bidders.clear();
        self.s_prices.clear();
        self.s_quality.clear();
        if sorted {
            self.s_order.clear();
            self.s_order.extend((0..bids.len() as u32).filter(|&i| bids[i as usize].live()));
            self.s_order.sort_unstable_by_key(|&i| bids[i as usize].bidder);
            for &i in &self.s_order {
                let b = &bids[i as usize];
                self.s_bidders.push(b.bidder);
                self.s_prices.push(b.price);
                self.s_quality.push(b.quality);
            }
        } else {
            for b in bids.iter().filter(|b| b.live()) {
                self.s_bidders.push(b.bidder);
                self.s_prices.push(b.price);
                self.s_quality.push(b.quality);
            }
        }
    }

    /// Clears the auction at table position `pos`, queues its result rows and frees its state.
    fn close_auction(&mut self, pos: usize, closed_by: u8, now: u64) {
        let e = self.table.buckets[pos];
        let slot = e.slot;
        let (id, open_ns, reserve) = {
            let c = &self.cold[slot as usize];
            (c.id, c.open_ns, c.reserve)
        };
        let (last_ns, n_live) = (e.last_event_ns, e.n_live);
        let base = AuctionResult {
            auction_id: id as i64,
            winner_bidder: -1,
            price: 0.0,
            min_to_win: f64::NAN,
            open_to_close_ns: now.saturating_sub(open_ns) as i64,
            last_bid_to_result_ns: 0,
            n_bids: n_live,
            slot: 0,
            closed_by,
            _pad: 0,
        };
        let first_row = self.out.len();
        match self.mechanism.clone() {
            Mechanism::FirstPrice | Mechanism::SecondPrice => {
                let rule = if self.mechanism == Mechanism::FirstPrice {
                    SinglePrice::First
                } else {
                    SinglePrice::Second
                };
                self.clear_single(&e, rule, reserve, base);
            }
            Mechanism::Gsp(ctrs) => self.clear_slots(&e, SlotPrice::Gsp, &ctrs, reserve, base),
            Mechanism::Vcg(ctrs) => self.clear_slots(&e, SlotPrice::Vcg, &ctrs, reserve, base),
        }
        for _ in first_row..self.out.len() {
            self.out_last.push(last_ns);
        }
        match closed_by {
            CLOSED_BY_DEADLINE => self.c.closed_deadline += 1,
            CLOSED_BY_ALL_BIDS => self.c.closed_all_bids += 1,
            _ => self.c.closed_shutdown += 1,
        }
        self.table.remove_at(pos);
        self.free_store(e.off, e.cap);
        self.cold[slot as usize].open = false;
        self.free.push(slot);
        let ci = (fib_hash(id) >> 48) as usize & (CLOSED_CACHE - 1);
        self.closed[ci] = id;
    }

    /// Event-log records of a cleared auction: AuctionWon per filled slot (price paid,
    /// `quality` = min_to_win, `_pad[1]` = slot), AuctionLost per other live bid (its own price
    /// and quality, `_pad[1]` = 0xFF, `_pad[2]` = its OpenRTB loss reason); `_pad[0]` =
    /// closed_by. An auction without bids logs one
    /// AuctionLost with `bidder_id = u64::MAX`. `winners` = (scratch index, price, min_to_win).
    fn emit_outcome(
        &mut self,
        base: &AuctionResult,
        winners: &[(i64, f64, f64)],
        reserve: f64,
        single: bool,
    ) {
        if self.sink.is_none() {
            return;
        }
        let ts = mono_ns();
        let mut pad = [0u8; 7];
        pad[0] = base.closed_by;
        for (s, &(w, price, mtw)) in winners.iter().enumerate() {
            if w >= 0 {
                let mut p = pad;
                p[1] = s as u8;
                self.events.push(BidRecord {
                    auction_id: base.auction_id as u64,
                    bidder_id: self.s_bidders[w as usize],
                    price,
                    quality: mtw,
                    timestamp_ns: ts,
                    kind: EV_AUCTION_WON,
                    _pad: p,
                });
            }
        }
        let won: Vec<i64> = winners.iter().map(|w| w.0).collect();
        let mut any_lost = false;
        for i in 0..self.s_bidders.len() {
            if won.contains(&(i as i64)) {
                continue;
            }
            any_lost = true;
            let mut p = pad;
            p[1] = 0xFF;
            let (bp, bq) = (self.s_prices[i], self.s_quality[i]);
            let reason = if single && i < self.s_loss.len() {
                self.s_loss[i]
            } else if !(price_ok(bp) && quality_ok(bq)) {
                crate::clearing::LOSS_INVALID
            } else if bp > 0.0 && bp >= reserve {
                crate::clearing::LOSS_OUTBID
            } else {
                crate::clearing::LOSS_BELOW_FLOOR
            };
            p[2] = reason as u8;
            self.events.push(BidRecord {
                auction_id: base.auction_id as u64,
                bidder_id: self.s_bidders[i],
                price: self.s_prices[i],
                quality: self.s_quality[i],
                timestamp_ns: ts,
                kind: EV_AUCTION_LOST,
                _pad: p,
            });
        }
        if !any_lost && won.iter().all(|&w| w < 0) {
            // no bids at all: one AuctionLost with bidder_id = u64::MAX marks the close
            let mut p = pad;
            p[1] = 0xFF;
            self.events.push(BidRecord {
                auction_id: base.auction_id as u64,
                bidder_id: u64::MAX,
                price: 0.0,
                quality: 0.0,
                timestamp_ns: ts,
                kind: EV_AUCTION_LOST,
                _pad: p,
            });
        }
    }

    fn clear_single(&mut self, e: &Entry, rule: SinglePrice, reserve: f64, base: AuctionResult) {
        self.gather(e, false);
        let n = self.s_prices.len();
        self.s_mtw.resize(n, 0.0);
        self.s_loss.resize(n, 0);
        let mut out = clear_segment(
            rule,
            &self.s_prices,
            Some(&self.s_quality),
            reserve,
            self.increment,
            &mut self.s_mtw[..n],
            &mut self.s_loss[..n],
        );
        if out.winner >= 0 {
            // ties go to the lowest bidder id, whatever the arrival order
            let w = out.winner as usize;
            let top = self.s_prices[w] * self.s_quality[w];
            let bw = self.s_bidders[w];
            let tie = (0..n).any(|i| {
                i != w && self.s_prices[i] * self.s_quality[i] == top && self.s_bidders[i] < bw
            });
            if tie {
                self.gather(e, true);
                out = clear_segment(
                    rule,
                    &self.s_prices,
                    Some(&self.s_quality),
                    reserve,
                    self.increment,
                    &mut self.s_mtw[..n],
                    &mut self.s_loss[..n],
                );
            }
        }
        let mut row = base;
        if out.winner >= 0 {
            row.winner_bidder = self.s_bidders[out.winner as usize] as i64;
            row.price = out.price;
            row.min_to_win = out.winner_min_to_win;
        }
        self.out.push(row);
        if self.sink.is_some() {
            self.emit_outcome(
                &base,
                &[(out.winner, out.price, out.winner_min_to_win)],
                reserve,
                true,
            );
        }
    }

    fn clear_slots(
        &mut self,
        e: &Entry,
        rule: SlotPrice,
        ctrs: &[f64],
        reserve: f64,
        base: AuctionResult,
    ) {
        self.gather(e, true);
        let k = ctrs.len();
        clear_segment_slots(
            rule,
            &self.s_prices,
            Some(&self.s_quality),
            reserve,
            self.increment,
            ctrs,
            &mut self.s_slots,
            &mut self.s_winner[..k],
            &mut self.s_price[..k],
        );
        // the adjusted bid that ranks just below each slot: the next slot's winner, or for the
        // last filled slot the best eligible bid that won no slot (kernel's eligibility rule)
        let mut rest_best = 0.0f64;
        for i in 0..self.s_prices.len() {
            let (p, q) = (self.s_prices[i], self.s_quality[i]);
            let eligible = p.is_finite() && p > 0.0 && q.is_finite() && q > 0.0 && p >= reserve;
            if eligible && !self.s_winner[..k].contains(&(i as i64)) {
                rest_best = rest_best.max(p * q);
            }
        }
        let mut rows = Vec::with_capacity(if self.sink.is_some() { k } else { 0 });
        for s in 0..k {
            let w = self.s_winner[s];
            let mut row = base;
            row.slot = s as u16;
            if w >= 0 {
                let wi = w as usize;
                let next = if s + 1 < k && self.s_winner[s + 1] >= 0 {
                    let j = self.s_winner[s + 1] as usize;
                    self.s_prices[j] * self.s_quality[j]
                } else {
                    rest_best
                };
                row.winner_bidder = self.s_bidders[wi] as i64;
                row.price = self.s_price[s];
                row.min_to_win = reserve.max(next / self.s_quality[wi]);
            }
            if self.sink.is_some() {
                rows.push((w, row.price, row.min_to_win));
            }
            self.out.push(row);
        }
        if self.sink.is_some() {
            self.emit_outcome(&base, &rows, reserve, false);
        }
    }

    /// Publishes what the last blocks produced. Order matters to observers: the event log is
    /// appended first and the counters are published next, so that once a result row or a
    /// rejection can be polled, `stats()` already counts it and the log already holds it.
    fn flush(&mut self) {
        if let Some(sink) = &self.sink {
            if !self.events.is_empty() {
                let n = sink.append(&self.events).unwrap_or(0).min(self.events.len());
                self.c.events_logged += n as u64;
                self.c.event_log_dropped += (self.events.len() - n) as u64;
                self.events.clear();
            }
        }
        let results = if self.out.is_empty() {
            None
        } else {
            let now = mono_ns();
            {
                let mut h = self.shared.workers[self.id].hists.lock().unwrap();
                for (row, &last) in self.out.iter_mut().zip(&self.out_last) {
                    let lat = now.saturating_sub(last);
                    row.last_bid_to_result_ns = lat as i64;
                    if row.slot == 0 {
                        // one row per auction; both histograms under the one lock per flush
                        let _ = h.last_bid_to_result.record(lat.max(1));
                        let _ = h.open_to_close.record((row.open_to_close_ns as u64).max(1));
                    }
                }
            }
            self.c.results += self.out.len() as u64;
            let mut next = self.shared.free_results.pop().unwrap_or_default();
            next.clear();
            self.out_last.clear();
            Some(std::mem::replace(&mut self.out, next))
        };
        self.c.open_auctions = self.table.len() as u64;
        self.shared.workers[self.id].counters.publish(&self.c);
        if let Some(block) = results {
            let _ = self.res_tx.send(block);
        }
        if !self.rejected.is_empty() {
            self.shared.rejected_outstanding.fetch_add(self.rejected.len(), Ordering::AcqRel);
            let block = std::mem::take(&mut self.rejected);
            let _ = self.rej_tx.send(block);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// BidRing ingress and the event log

/// A [`BidSource`] reading a 48-byte [`BidRing`] through a named, persistent reader: another
/// process appends bids, the engine consumes them. At-least-once: a batch is acknowledged once
/// it is queued into the engine (at the next `fill`) or when the source is dropped.
pub struct RingSource {
    reader: RingReader,
    _ring: BidRing,
}

impl RingSource {
    /// Opens the ring at `path` (it must hold 48-byte bid records) and attaches to the reader
    /// `reader` (created at `start` on first use).
    pub fn open(path: &Path, reader: &str, start: Start) -> Result<Self, CoreError> {
        let ring = BidRing::open(path, Some(BidRecord::SIZE))?;
        let reader = ring.reader(reader, start)?;
        Ok(RingSource { reader, _ring: ring })
    }
}

impl BidSource for RingSource {
    fn fill(
        &mut self,
        out: &mut Vec<BidRecord>,
        max_n: usize,
        timeout: Duration,
    ) -> Result<usize, CoreError> {
        // `fill` is called again only once the previous batch is queued in the engine:
        // acknowledge it now, so a backpressure-mode writer can reuse its slots while we wait
        self.reader.commit()?;
        if !self.reader.wait(timeout) {
            return Ok(0);
        }
        let batch = self.reader.read(max_n)?;
        let recs = batch.records();
        out.extend_from_slice(recs);
        Ok(recs.len())
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        let _ = self.reader.commit();
    }
}

/// The engine's event log: a 48-byte [`BidRing`] (created in broadcast mode if the file does not
/// exist, so the engine never waits for a slow follower) receiving [`BidRecord`]-shaped events
/// with kinds [`EV_AUCTION_STARTED`] ..= [`EV_AUCTION_LOST`]:
///
/// | kind | bidder_id | price | quality | `_pad` |
/// |---|---|---|---|---|
/// | AuctionStarted | expected_bids | reserve | tmax_ns | |
/// | BidPlaced / BidUpdated / BidCancelled | bidder | price | quality | |
/// | AuctionWon | winner | price paid | min_to_win | [closed_by, slot] |
/// | AuctionLost | bidder (u64::MAX: no bids) | its price | its quality | [closed_by, 0xFF, loss reason] |
///
/// `timestamp_ns` is the submit stamp for bid events and the close time for outcomes. Each
/// auction's events are in order (one worker appends them, in processing order).
pub struct RingEventLog {
    ring: BidRing,
}

impl RingEventLog {
    /// Opens the ring at `path`, or creates it (broadcast mode, `capacity` records).
    pub fn open_or_create(path: &Path, capacity: u64) -> Result<Self, CoreError> {
        if !path.exists() {
            let opts = RingOptions {
                capacity,
                record_size: BidRecord::SIZE,
                mode: RingMode::Broadcast,
                ..Default::default()
            };
            match BidRing::create(path, opts) {
                Ok(ring) => return Ok(RingEventLog { ring }),
                Err(e) if !path.exists() => return Err(e),
                Err(_) => {} // created by someone else meanwhile: open it
            }
        }
        Ok(RingEventLog { ring: BidRing::open(path, Some(BidRecord::SIZE))? })
    }
}

impl EventSink for RingEventLog {
    fn append(&self, events: &[BidRecord]) -> Result<usize, CoreError> {
        // SAFETY: BidRecord is repr(C), 48 bytes, every byte initialized (the pad is a field);
        // the byte view borrows `events` for the call only.
        let bytes = unsafe {
            std::slice::from_raw_parts(events.as_ptr().cast::<u8>(), std::mem::size_of_val(events))
        };
        self.ring.append_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_bidder_finds_every_position() {
        let n = 77;
        let mut bids: Vec<Bid> =
            (0..n as u64).map(|i| Bid { bidder: i * 3, ..Default::default() }).collect();
        let mut tags: Vec<u16> = bids.iter().map(|b| tag_of(b.bidder)).collect();
        // storage past n holds leftovers of an earlier auction: never reported
        bids.resize(80, Bid { bidder: 1, ..Default::default() });
        tags.resize(80, tag_of(1));
        for i in 0..n {
            assert_eq!(find_bidder(&tags, &bids, n, bids[i].bidder), Some(i));
        }
        for x in (1..1000).filter(|x| x % 3 != 0) {
            assert_eq!(find_bidder(&tags, &bids, n, x), None);
        }
        assert_eq!(find_bidder(&tags, &bids, 0, 0), None);
        assert_eq!(find_bidder(&[], &[], 0, 1), None);
    }

    #[test]
    fn hot_table_matches_a_hashmap_under_churn() {
        let mut m = HotTable::new();
        let mut r = std::collections::HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 5000;
            if x % 3 == 0 {
                let had = m.find(k).map(|p| {
                    let slot = m.buckets[p].slot;
                    m.remove_at(p);
                    slot
                });
                assert_eq!(had, r.remove(&k));
            } else {
                match m.find(k) {
                    Some(p) => m.buckets[p].slot = step,
                    None => m.insert(Entry { id: k, slot: step, ..Entry::EMPTY }),
                }
                r.insert(k, step);
            }
            assert_eq!(m.len(), r.len());
        }
        for k in 0..5000 {
            assert_eq!(m.find(k).map(|p| m.buckets[p].slot), r.get(&k).copied());
        }
    }

    #[test]
    fn shard_of_is_in_range_and_spreads() {
        let mut counts = [0usize; 3];
        for a in 0..30_000u64 {
            counts[shard_of(a, 3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 9_000), "{counts:?}");
    }
}

#[cfg(test)]
mod worker_bench {
    use super::*;

    pub(super) fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into the valid, exclusive pointer we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// One worker's CPU time per bid on the end-to-end bench's layout (5k auctions of 100 bids
    /// per 500k-bid block, shuffled): `cargo test --release -p rtbcore-core worker_ns_per_bid
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn worker_ns_per_bid() {
        let cfg = EngineConfig::default();
        let shared = Arc::new(Shared {
            workers: vec![WorkerShared {
                queued: CachePadded::new(AtomicUsize::new(0)),
                counters: SharedCounters::new(),
                hists: Mutex::new(Hists {
                    last_bid_to_result: new_hist(),
                    open_to_close: new_hist(),
                }),
                pinned: AtomicBool::new(false),
            }],
            free_bids: ArrayQueue::new(8),
            free_compact: ArrayQueue::new(8),
            free_results: ArrayQueue::new(64),
            rejected_outstanding: AtomicUsize::new(0),
            rejected_cap: 1 << 20,
            pin_error: Mutex::new(None),
            pin_failed: AtomicUsize::new(0),
            attach: AttachCounters::default(),
            panicked: AtomicUsize::new(0),
        });
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let (rej_tx, _rej_rx) = crossbeam_channel::unbounded();
        let mut w = Worker::new(0, &cfg, shared, res_tx, rej_tx);
        let (na, per) = (5_000u64, 100u64);
        let mut x = 88172645463325252u64;
        let mut order: Vec<u64> = (0..na * per).collect();
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut times = Vec::new();
        for round in 0..12u64 {
            let base = round * na;
            let now = mono_ns();
            let reqs: Vec<OpenRequest> = (0..na)
                .map(|a| OpenRequest {
                    auction_id: base + a,
                    reserve: 0.0,
                    tmax_ns: 10_000_000_000,
                    expected_bids: per as u32,
                    open_ns: now,
                })
                .collect();
            let bids: Vec<CompactBid> = order
                .iter()
                .map(|&k| CompactBid {
                    auction_id: base + k / per,
                    bidder_id: k % per,
                    price: 0.1 + (fib_hash(k) >> 11) as f64 / (1u64 << 53) as f64,
                })
                .collect();
            let block = Block::Compact { bids, ts: now };
            w.handle(Msg::Open(reqs));
            let t0 = thread_cpu_ns();
            w.handle(Msg::Bids(block));
            w.flush();
            let dt = thread_cpu_ns() - t0;
            while res_rx.try_recv().is_ok() {}
            if round >= 2 {
                times.push(dt as f64 / (na * per) as f64);
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("worker ns/bid: median {:.1}, min {:.1}", times[times.len() / 2], times[0]);
    }
}

#[cfg(test)]
mod prepare_bench {
    use super::*;

    /// The submitting thread's CPU time per bid in `prepare` (validate + partition) on a
    /// 1M-bid block: `cargo test --release -p rtbcore-core prepare_ns_per_bid -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn prepare_ns_per_bid() {
        let eng = Engine::start(EngineConfig { pin: false, ..Default::default() }).unwrap();
        let n = 1_000_000u64;
        let a: Vec<i64> = (0..n).map(|k| ((fib_hash(k) >> 20) % 10_000) as i64).collect();
        let b: Vec<i64> = (0..n).map(|k| (k % 100) as i64).collect();
        let p: Vec<f64> = (0..n).map(|k| 0.1 + (k % 1000) as f64 / 100.0).collect();
        let arrays =
            BidArrays { auction_ids: &a, bidder_ids: &b, prices: &p, quality: None, kinds: None };
        let mut times = Vec::new();
        for _ in 0..12 {
            let t0 = worker_bench::thread_cpu_ns();
            let pr = eng.prepare(&arrays, mono_ns()).unwrap();
            let dt = worker_bench::thread_cpu_ns() - t0;
            for b in pr.blocks {
                b.recycle(&eng.shared);
            }
            times.push(dt as f64 / n as f64);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("prepare ns/bid: median {:.1}, min {:.1}", times[times.len() / 2], times[0]);
    }
}
