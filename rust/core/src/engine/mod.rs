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
//!   auction evicted from that cache is reported as unknown (both are loss reason 2). At most
//!   `rejected_capacity` rows wait to be polled (an exact bound over all workers, reserved per
//!   row); beyond it a rejection is counted (`rejected_unreported`) and reported once as a
//!   drop count by [`Engine::poll_rejected_batch`].
//! - **Results.** One [`AuctionResult`] row per auction (per slot for GSP / VCG: `slot` is the
//!   position, `winner_bidder = NO_BIDDER` for an empty slot), published in blocks to a channel that
//!   [`Engine::poll_into`] drains. After [`Engine::close`] the engine is drained
//!   ([`Engine::is_drained`]) once every worker has finished and every row is polled; then
//!   [`Engine::wait_results`] returns at once. Latencies go into HDR histograms: `open_to_close` and
//!   `last_bid_to_result` (from the submit timestamp of the auction's last applied event to the
//!   moment its result is published).
//! - **Ingress and event log.** [`Engine::attach`] consumes any [`BidSource`] on a thread of its
//!   own — [`RingSource`] reads a `BidRing` that other processes append to. With an
//!   [`EventSink`] ([`RingEventLog`]: a broadcast-mode `BidRing`) every worker appends
//!   AuctionStarted / BidPlaced / BidUpdated / BidCancelled / AuctionWon / AuctionLost
//!   [`EventRecord`]s (one meaning per field) once per processed block, so each auction's
//!   events are in order.

mod arena;
mod close;
mod config;
mod event_log;
mod ingress;
mod intake;
mod output;
mod rows;
mod shared;
mod stats;
mod table;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

pub use config::{EngineConfig, Mechanism};
pub use event_log::{
    EventRecord, EventSink, RingEventLog, EV_AUCTION_LOST, EV_AUCTION_STARTED, EV_AUCTION_WON,
    EV_BID_CANCELLED, EV_BID_DECLINED, EV_BID_PLACED, EV_BID_UPDATED, NOT_CLOSED, NO_BIDDER,
    NO_LOSS_REASON, NO_SLOT,
};
pub use ingress::{BidSource, RingSource};
pub use intake::{shard_of, BidArrays, OpenRequest, Prepared};
pub use rows::{
    AuctionResult, BidOutcome, RejectedBid, CLOSED_BY_ALL_BIDS, CLOSED_BY_DEADLINE,
    CLOSED_BY_SHUTDOWN, LOSS_EXPIRED, OUTCOME_NO_SLOT, REJECT_LATE, REJECT_UNKNOWN,
};
pub use stats::{EngineCounters, EngineStats, LatencySummary};

use crate::clearing::{check_increment, check_slot_ctrs};
use crate::error::CoreError;
use crate::record::{price_ok, BidRecord, Value, MAX_ID};
use ingress::{AttachCounters, Attached};
use intake::{bad_value, Intake, Msg};
use output::Pending;
use shared::{Shared, WorkerShared};
use stats::{new_hist, Hists, SharedCounters};
use worker::Worker;
/// The monotonic clock (CLOCK_MONOTONIC, shared by every process on the machine) in ns.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusive pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The engine handle. Dropping it closes the engine (see [`Engine::close`]).
pub struct Engine {
    cfg: EngineConfig,
    intake: Arc<Intake>,
    results_rx: Receiver<Vec<AuctionResult>>,
    rejected_rx: Receiver<Vec<RejectedBid>>,
    /// `None` when the engine was started without per-bid outcomes.
    outcomes_rx: Option<Receiver<Vec<BidOutcome>>>,
    pending: Mutex<Pending>,
    /// Threads holding a result block taken from the channel but not yet in `pending`.
    receiving: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
    attached: Mutex<Vec<Attached>>,
    shared: Arc<Shared>,
}

impl Engine {
    /// Starts the worker threads. Pinning failures are recorded in [`Engine::stats`], not fatal.
    pub fn start(cfg: EngineConfig) -> Result<Engine, CoreError> {
        Engine::start_with_outcomes(cfg, None)
    }

    /// [`Engine::start`], plus with `Some(bound)` a per-bid outcome stream: every live bid of a
    /// cleared auction yields one [`BidOutcome`], polled with [`Engine::poll_outcomes_batch`].
    /// At most `bound` rows wait to be polled (an exact bound over all workers); a row beyond
    /// it is dropped and counted (`outcomes_dropped`), and reported once as a drop count.
    pub fn start_with_outcomes(
        cfg: EngineConfig,
        outcome_capacity: Option<usize>,
    ) -> Result<Engine, CoreError> {
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
            return Err(CoreError::invalid("tmax_ns", "tmax_ns = 0: must be > 0 (nanoseconds)"));
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
            free_outcomes: ArrayQueue::new(64),
            outcome_outstanding: AtomicUsize::new(0),
            outcome_cap: outcome_capacity.unwrap_or(0),
            outcome_dropped: AtomicU64::new(0),
            rejected_outstanding: AtomicUsize::new(0),
            rejected_cap: cfg.rejected_bound(),
            rejected_dropped: AtomicU64::new(0),
            live_workers: AtomicUsize::new(n),
            pin_error: Mutex::new(None),
            pin_failed: AtomicUsize::new(0),
            attach: AttachCounters::default(),
            panicked: AtomicUsize::new(0),
        });
        let (res_tx, results_rx) = crossbeam_channel::unbounded();
        let (rej_tx, rejected_rx) = crossbeam_channel::unbounded();
        let (out_tx, outcomes_rx) = match outcome_capacity {
            Some(_) => {
                let (tx, rx) = crossbeam_channel::unbounded();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
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
            let worker = Worker::new(
                w,
                &cfg,
                shared.clone(),
                res_tx.clone(),
                rej_tx.clone(),
                out_tx.clone(),
            );
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
                    // the worker (and its senders) is gone: everything it produced is sent
                    sh.live_workers.fetch_sub(1, Ordering::SeqCst);
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
            closing: AtomicBool::new(false),
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
            outcomes_rx,
            pending: Mutex::new(Pending::default()),
            receiving: AtomicUsize::new(0),
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
    /// is empty always has room, so an oversized block is never refused forever). Returns
    /// true at once when the engine is closing, so that the send that follows is refused.
    pub fn wait_room(&self, p: &Prepared, timeout: Duration) -> bool {
        self.intake.wait_room(p, timeout)
    }

    /// Queues a prepared submission (no capacity check; see [`Engine::wait_room`]).
    /// Returns the number of records queued, or [`CoreError::Closed`].
    pub fn send(&self, p: Prepared) -> Result<usize, CoreError> {
        self.intake.send(p)
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

    /// Stops intake, lets every worker finish its queue and close its open auctions
    /// (`closed_by = shutdown`), and joins every thread. Results stay pollable. Idempotent.
    /// Returns an error if a worker had panicked (an engine bug).
    pub fn close(&self) -> Result<(), CoreError> {
        // submitters waiting for room stop waiting (their block is refused once intake stops)
        self.intake.closing.store(true, Ordering::Release);
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

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
