//! Closing an auction: gather its live bids, clear them with the kernels of
//! [`crate::clearing`], queue its result rows and its outcome events, and free its state.

use super::config::Mechanism;
use super::event_log::{EventRecord, EV_AUCTION_LOST, EV_AUCTION_WON, NO_BIDDER};
use super::mono_ns;
use super::rows::*;
use super::table::{fib_hash, Entry};
use super::worker::{Worker, CLOSED_CACHE};
use crate::clearing::{
    clear_segment, clear_segment_slots, SinglePrice, SlotPrice, LOSS_BELOW_FLOOR, LOSS_INVALID,
    LOSS_OUTBID, LOSS_WON,
};
use crate::record::{price_ok, quality_ok};

impl Worker {
    /// Copies the live bids of `e` into the scratch columns, in bidder-id order if `sorted`.
    pub(super) fn gather(&mut self, e: &Entry, sorted: bool) {
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
    pub(super) fn close_auction(&mut self, pos: usize, closed_by: u8, now: u64) {
        let e = self.table.buckets[pos];
        let slot = e.slot;
        let (id, open_ns, reserve) = {
            let c = &self.cold[slot as usize];
            (c.id, c.open_ns, c.reserve)
        };
        let (last_ns, n_live) = (e.last_event_ns, e.n_live);
        let base = AuctionResult {
            auction_id: id,
            winner_bidder: NO_BIDDER,
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

    /// Event-log records of a cleared auction: AuctionWon per filled slot, AuctionLost per other
    /// live bid (with its OpenRTB loss reason); an auction without bids logs one AuctionLost
    /// about no bidder. `winners` = (scratch index, price paid, min_to_win) per slot.
    pub(super) fn emit_outcome(
        &mut self,
        base: &AuctionResult,
        winners: &[(i64, f64, f64)],
        reserve: f64,
        single: bool,
    ) {
        if self.sink.is_none() {
            return;
        }
        let outcome = |kind| EventRecord {
            reserve,
            closed_by: base.closed_by,
            ..EventRecord::new(kind, base.auction_id, mono_ns())
        };
        for (s, &(w, paid, mtw)) in winners.iter().enumerate() {
            if w >= 0 {
                let i = w as usize;
                self.events.push(EventRecord {
                    bidder_id: self.s_bidders[i],
                    price: self.s_prices[i],
                    quality: self.s_quality[i],
                    clearing_price: paid,
                    min_to_win: mtw,
                    loss_reason: LOSS_WON,
                    slot: s as u16,
                    ..outcome(EV_AUCTION_WON)
                });
            }
        }
        let mut any_lost = false;
        for i in 0..self.s_bidders.len() {
            if winners.iter().any(|w| w.0 == i as i64) {
                continue;
            }
            any_lost = true;
            let (bp, bq) = (self.s_prices[i], self.s_quality[i]);
            let reason = if single && i < self.s_loss.len() {
                self.s_loss[i]
            } else if !(price_ok(bp) && quality_ok(bq)) {
                LOSS_INVALID
            } else if bp > 0.0 && bp >= reserve {
                LOSS_OUTBID
            } else {
                LOSS_BELOW_FLOOR
            };
            self.events.push(EventRecord {
                bidder_id: self.s_bidders[i],
                price: bp,
                quality: bq,
                loss_reason: reason,
                ..outcome(EV_AUCTION_LOST)
            });
        }
        if !any_lost && winners.iter().all(|w| w.0 < 0) {
            // no bids at all: one AuctionLost about no bidder marks the close
            self.events.push(outcome(EV_AUCTION_LOST));
        }
    }

    pub(super) fn clear_single(
        &mut self,
        e: &Entry,
        rule: SinglePrice,
        reserve: f64,
        base: AuctionResult,
    ) {
        self.gather(e, false);
        let n = self.s_prices.len();
        self.s_mtw.resize(n, 0.0);
        self.s_loss.resize(n, 0);
        let clear = |s: &mut Self| {
            clear_segment(
                rule,
                &s.s_prices,
                Some(&s.s_quality),
                reserve,
                s.increment,
                &mut s.s_mtw[..n],
                &mut s.s_loss[..n],
            )
        };
        let mut out = clear(self);
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
                out = clear(self);
            }
        }
        let mut row = base;
        if out.winner >= 0 {
            row.winner_bidder = self.s_bidders[out.winner as usize];
            row.price = out.price;
            row.min_to_win = out.winner_min_to_win;
        }
        self.out.push(row);
        if self.outcome_tx.is_some() {
            for i in 0..n {
                let won = i as i64 == out.winner;
                self.outcomes.push(BidOutcome {
                    auction_id: base.auction_id,
                    bidder_id: self.s_bidders[i],
                    price: self.s_prices[i],
                    price_paid: if won { out.price } else { f64::NAN },
                    min_to_win: self.s_mtw[i],
                    loss_reason: self.s_loss[i],
                    slot: if won { 0 } else { OUTCOME_NO_SLOT },
                    won: won as u8,
                    closed_by: base.closed_by,
                });
            }
        }
        if self.sink.is_some() {
            self.emit_outcome(
                &base,
                &[(out.winner, out.price, out.winner_min_to_win)],
                reserve,
                true,
            );
        }
    }

    pub(super) fn clear_slots(
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
        let first_row = self.out.len();
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
                row.winner_bidder = self.s_bidders[wi];
                row.price = self.s_price[s];
                row.min_to_win = reserve.max(next / self.s_quality[wi]);
            }
            if self.sink.is_some() {
                rows.push((w, row.price, row.min_to_win));
            }
            self.out.push(row);
        }
        if self.outcome_tx.is_some() {
            self.slot_outcomes(&base, first_row, k, reserve);
        }
        if self.sink.is_some() {
            self.emit_outcome(&base, &rows, reserve, false);
        }
    }

    /// Outcome rows of a position auction whose `k` result rows start at `self.out[first]`: a
    /// winner's from its slot's row; a loser's `min_to_win` is the lowest price that ties the
    /// last slot's adjusted bid when every slot is filled (never below the reserve), else the
    /// reserve; NaN for an invalid bid.
    fn slot_outcomes(&mut self, base: &AuctionResult, first: usize, k: usize, reserve: f64) {
        let last = if k > 0 && self.s_winner[k - 1] >= 0 {
            let j = self.s_winner[k - 1] as usize;
            Some(self.s_prices[j] * self.s_quality[j])
        } else {
            None
        };
        for i in 0..self.s_bidders.len() {
            let (bp, bq) = (self.s_prices[i], self.s_quality[i]);
            let mut o = BidOutcome {
                auction_id: base.auction_id,
                bidder_id: self.s_bidders[i],
                price: bp,
                price_paid: f64::NAN,
                min_to_win: f64::NAN,
                loss_reason: LOSS_WON,
                slot: OUTCOME_NO_SLOT,
                won: 0,
                closed_by: base.closed_by,
            };
            if let Some(s) = self.s_winner[..k].iter().position(|&w| w == i as i64) {
                let row = &self.out[first + s];
                o.price_paid = row.price;
                o.min_to_win = row.min_to_win;
                o.slot = s as u16;
                o.won = 1;
            } else if !(price_ok(bp) && quality_ok(bq)) {
                o.loss_reason = LOSS_INVALID;
            } else {
                o.loss_reason =
                    if bp > 0.0 && bp >= reserve { LOSS_OUTBID } else { LOSS_BELOW_FLOOR };
                o.min_to_win = match last {
                    Some(adj) => reserve.max(adj / bq),
                    None => reserve,
                };
            }
            self.outcomes.push(o);
        }
    }
}
