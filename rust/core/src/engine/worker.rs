//! One worker thread: receives blocks of its shard, applies them to its open auctions (a
//! software pipeline over the table and the arenas), closes auctions at their deadline or when
//! every expected bidder answered, and publishes rows, rejections and events.

use std::collections::BinaryHeap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::arena::{find_bidder, prefetch, tag_of, Bid, MIN_CAP};
use super::config::{EngineConfig, Mechanism};
use super::event_log::{
    EventRecord, EventSink, EV_AUCTION_STARTED, EV_BID_CANCELLED, EV_BID_DECLINED, EV_BID_PLACED,
    EV_BID_UPDATED,
};
use super::intake::{Block, Msg, OpenRequest};
use super::mono_ns;
use super::rows::*;
use super::shared::Shared;
use super::stats::EngineCounters;
use super::table::{fib_hash, filter_bit, Entry, HotTable};
use crate::record::{BidRecord, KIND_CANCEL, KIND_DECLINE, KIND_PLACE};

/// The rest of an auction's state, read when it opens and closes.
#[derive(Default, Clone, Copy)]
pub(super) struct Cold {
    pub(super) id: u64,
    pub(super) open_ns: u64,
    pub(super) reserve: f64,
    pub(super) gen: u32,
    pub(super) open: bool,
}

pub(super) const CLOSED_CACHE: usize = 1 << 16;

/// "Not in the table" as a position hint.
pub(super) const NO_POS: usize = usize::MAX;

pub(super) struct Worker {
    pub(super) id: usize,
    pub(super) mechanism: Mechanism,
    pub(super) increment: f64,
    pub(super) shared: Arc<Shared>,
    pub(super) res_tx: Sender<Vec<AuctionResult>>,
    pub(super) rej_tx: Sender<Vec<RejectedBid>>,
    /// `Some` when the engine makes per-bid outcome rows.
    pub(super) outcome_tx: Option<Sender<Vec<BidOutcome>>>,
    pub(super) sink: Option<Arc<dyn EventSink>>,
    pub(super) table: HotTable,
    /// per slot (stable while the auction is open, unlike its table position)
    pub(super) cold: Vec<Cold>,
    /// the bid storage of every auction: an auction's `cap` bids at `Entry::off` of
    /// `store_bids`, the 16-bit tags of their bidders at the same offset of `store_tags`
    pub(super) store_bids: Vec<Bid>,
    pub(super) store_tags: Vec<u16>,
    /// free storage by size class (capacity `MIN_CAP << class`)
    pub(super) store_free: Vec<Vec<u32>>,
    /// the latest submit stamp processed (the deadline watermark while the queue is not empty)
    pub(super) seen_ns: u64,
    /// cold slots of closed auctions, reused by the next opens
    pub(super) free: Vec<u32>,
    pub(super) heap: BinaryHeap<std::cmp::Reverse<(u64, u32, u32)>>,
    pub(super) closed: Vec<u64>,
    pub(super) out: Vec<AuctionResult>,
    /// last-event timestamps of the rows in `out` (for the latency histogram at publish time)
    pub(super) out_last: Vec<u64>,
    pub(super) rejected: Vec<RejectedBid>,
    pub(super) outcomes: Vec<BidOutcome>,
    pub(super) events: Vec<EventRecord>,
    pub(super) c: EngineCounters,
    // scratch for clearing
    pub(super) s_bidders: Vec<u64>,
    pub(super) s_prices: Vec<f64>,
    pub(super) s_quality: Vec<f64>,
    pub(super) s_order: Vec<u32>,
    pub(super) s_mtw: Vec<f64>,
    pub(super) s_loss: Vec<i32>,
    pub(super) s_slots: Vec<(f64, usize)>,
    pub(super) s_winner: Vec<i64>,
    pub(super) s_price: Vec<f64>,
}

pub(super) enum BidPlace {
    Placed,
    Updated,
}

impl Worker {
    pub(super) fn new(
        id: usize,
        cfg: &EngineConfig,
        shared: Arc<Shared>,
        res_tx: Sender<Vec<AuctionResult>>,
        rej_tx: Sender<Vec<RejectedBid>>,
        outcome_tx: Option<Sender<Vec<BidOutcome>>>,
    ) -> Self {
        let k = cfg.mechanism.rows_per_auction();
        Worker {
            id,
            mechanism: cfg.mechanism.clone(),
            increment: cfg.increment,
            shared,
            res_tx,
            rej_tx,
            outcome_tx,
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
            outcomes: Vec::new(),
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

    pub(super) fn run(&mut self, rx: Receiver<Msg>) {
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

    pub(super) fn handle(&mut self, msg: Msg) {
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
        if self.out.len() >= 4096 || self.outcomes.len() >= 16384 {
            self.flush();
        }
    }

    /// Applies a block in arrival order (`get` reads its `i`th record) as a software pipeline,
    /// one stage per dependent load, D records apart: the table bucket is prefetched 2D
    /// records ahead, the entry is read D ahead (prefetching the line the record's bid would be
    /// written to, and the tags if the filter cannot rule the bidder out), then the record is
    /// applied.
    #[inline(always)]
    pub(super) fn apply_block<T>(&mut self, block: &[T], get: impl Fn(&T) -> BidRecord) {
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
    pub(super) fn lookup(&mut self, r: &BidRecord) -> usize {
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

    pub(super) fn open(&mut self, r: &OpenRequest) {
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
            self.events.push(EventRecord {
                reserve: r.reserve,
                tmax_ns: r.tmax_ns,
                expected_bids: r.expected_bids,
                ..EventRecord::new(EV_AUCTION_STARTED, r.auction_id, r.open_ns)
            });
        }
    }

    pub(super) fn reject(&mut self, r: &BidRecord, cause: u8) {
        if cause == REJECT_LATE {
            self.c.rejected_late += 1;
        } else {
            self.c.rejected_unknown += 1;
        }
        // reserve the row's place under the bound, shared by every worker, before making it
        let sh = &self.shared;
        let cap = sh.rejected_cap;
        let reserved = sh
            .rejected_outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < cap).then_some(held + 1)
            })
            .is_ok();
        if !reserved {
            self.c.rejected_unreported += 1;
            sh.rejected_dropped.fetch_add(1, Ordering::AcqRel);
            return;
        }
        self.rejected.push(RejectedBid {
            auction_id: r.auction_id,
            bidder_id: r.bidder_id,
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
    pub(super) fn apply(&mut self, r: &BidRecord, hint: usize) {
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
                    // the cancelled bid is logged as it stood, stamped with the cancel
                    let withdrawn = BidRecord { price: b.price, quality: b.quality, ..*r };
                    b.quality = -b.quality;
                    e.n_live -= 1;
                    self.c.bids_cancelled += 1;
                    if self.sink.is_some() {
                        self.events.push(EventRecord::bid(EV_BID_CANCELLED, &withdrawn));
                    }
                }
                _ => self.c.cancel_without_bid += 1,
            }
            return;
        }
        if r.kind == KIND_DECLINE {
            self.decline(pos, found, r);
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
            let kind = match how {
                BidPlace::Placed => EV_BID_PLACED,
                BidPlace::Updated => EV_BID_UPDATED,
            };
            self.events.push(EventRecord::bid(kind, r));
        }
        if full {
            self.close_auction(pos, CLOSED_BY_ALL_BIDS, mono_ns());
        }
    }

    /// A bidder's explicit no-bid: its answer counts toward the expected bids (an entry that
    /// is not live, like a cancelled bid) and withdraws a bid it had placed; a bidder that
    /// already answered adds nothing to the count.
    #[cold]
    fn decline(&mut self, pos: usize, found: Option<usize>, r: &BidRecord) {
        let e = &mut self.table.buckets[pos];
        let off = e.off as usize;
        match found {
            Some(i) => {
                let b = &mut self.store_bids[off + i];
                if b.live() {
                    b.quality = -b.quality;
                    e.n_live -= 1;
                }
            }
            None => {
                if e.n == e.cap {
                    self.grow(pos);
                }
                let e = &mut self.table.buckets[pos];
                let at = e.off as usize + e.n as usize;
                self.store_bids[at] = Bid { bidder: r.bidder_id, price: 0.0, quality: -1.0 };
                self.store_tags[at] = tag_of(r.bidder_id);
                let (w, m) = filter_bit(r.bidder_id);
                e.filter[w] |= m;
                e.n += 1;
            }
        }
        self.c.bids_declined += 1;
        if self.sink.is_some() {
            let none = BidRecord { price: f64::NAN, quality: f64::NAN, ..*r };
            self.events.push(EventRecord::bid(EV_BID_DECLINED, &none));
        }
        let e = &self.table.buckets[pos];
        if e.expected > 0 && e.n >= e.expected {
            self.close_auction(pos, CLOSED_BY_ALL_BIDS, mono_ns());
        }
    }

    /// Drops the heap entries of auctions that closed before their deadline (lazy deletion
    /// leaves them behind) once they outnumber the open auctions, so memory follows the number
    /// of open auctions rather than the opens of the last `tmax`. Amortized O(1) per close.
    pub(super) fn compact_deadlines(&mut self) {
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

    pub(super) fn expire(&mut self, now: u64) {
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

    /// Publishes what the last blocks produced. Order matters to observers: the event log is
    /// appended first and the counters are published next, so that once a result row or a
    /// rejection can be polled, `stats()` already counts it and the log already holds it.
    pub(super) fn flush(&mut self) {
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
        let outcomes = self.take_outcomes();
        self.c.open_auctions = self.table.len() as u64;
        self.shared.workers[self.id].counters.publish(&self.c);
        // rejections and outcomes before results: a consumer that has polled a result can
        // then poll every rejection and outcome row of its auction
        if !self.rejected.is_empty() {
            let block = std::mem::take(&mut self.rejected);
            let _ = self.rej_tx.send(block);
        }
        if let (Some(block), Some(tx)) = (outcomes, &self.outcome_tx) {
            let _ = tx.send(block);
        }
        if let Some(block) = results {
            let _ = self.res_tx.send(block);
        }
    }

    /// The outcome rows of the last blocks that fit under the bound, reserved in one step for
    /// the whole flush; the newest rows beyond it are dropped and counted.
    fn take_outcomes(&mut self) -> Option<Vec<BidOutcome>> {
        if self.outcomes.is_empty() {
            return None;
        }
        let want = self.outcomes.len();
        let sh = &self.shared;
        let cap = sh.outcome_cap;
        let mut got = 0;
        let _ = sh.outcome_outstanding.fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            got = want.min(cap.saturating_sub(held));
            (got > 0).then_some(held + got)
        });
        self.c.outcomes += want as u64;
        if got < want {
            let lost = (want - got) as u64;
            self.c.outcomes_dropped += lost;
            sh.outcome_dropped.fetch_add(lost, Ordering::AcqRel);
            self.outcomes.truncate(got);
        }
        if got == 0 {
            return None;
        }
        let mut next = sh.free_outcomes.pop().unwrap_or_default();
        next.clear();
        Some(std::mem::replace(&mut self.outcomes, next))
    }
}
