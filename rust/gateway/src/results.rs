//! The result thread: polls the engine and turns each cleared auction into `AuctionWon` /
//! `AuctionLost` for every buyer with a live bid, `AuctionClosed` for its publisher, and an
//! [`AuctionOutcome`] for the embedding program.

use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rtbcore_core::engine::{
    mono_ns, AuctionResult, RejectedBid, CLOSED_BY_ALL_BIDS, CLOSED_BY_DEADLINE, LOSS_EXPIRED,
    NO_BIDDER, REJECT_LATE,
};
use rtbcore_core::record::KIND_PLACE;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::*;

use crate::auctions::Auction;
use crate::events::*;
use crate::hub::{AuctionOutcome, ClosedBid, Hub};

/// OpenRTB loss reason 102: lost to a higher bid.
pub const LOSS_HIGHER_BID: i32 = 102;

/// Runs until the engine is closed and drained.
pub fn run(hub: Arc<Hub>) {
    let mut rows = Vec::with_capacity(4096);
    let mut rejected = Vec::new();
    loop {
        let ready = hub.engine.wait_results(Duration::from_millis(20));
        rows.clear();
        if ready {
            hub.engine.poll_into(&mut rows, 4096);
        }
        // Rejections after results: a worker queues a late bid's rejection before the result
        // of its auction, so every rejection of an auction polled here is seen before it closes.
        // The gateway checks deadlines itself, so these are the few bids whose engine stamp
        // fell past the deadline after the gateway's check passed.
        rejected.clear();
        hub.engine.poll_rejected_into(&mut rejected, 4096);
        if !rejected.is_empty() {
            mark_late(&hub, &rejected);
        }
        if !rows.is_empty() {
            close_all(&hub, &rows);
        }
        if !ready && hub.engine.is_drained() {
            break;
        }
    }
}

/// Marks the places the engine refused as late, so that their buyers learn at close that the
/// bid expired (OpenRTB loss reason 2) rather than that it lost to a higher bid.
fn mark_late(hub: &Hub, rejected: &[RejectedBid]) {
    let mut t = hub.table.lock();
    for r in rejected.iter().filter(|r| r.cause == REJECT_LATE && r.kind == KIND_PLACE) {
        let Some(a) = t.open.get_mut(&r.auction_id) else { continue };
        if let Some(b) = a.bids.get_mut(&r.bidder_id) {
            b.late = true;
            hub.metrics.bids_late.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn closed_by(c: u8) -> (ClosedBy, &'static str) {
    match c {
        CLOSED_BY_DEADLINE => (ClosedBy::Deadline, "deadline"),
        CLOSED_BY_ALL_BIDS => (ClosedBy::AllBids, "all_bids"),
        _ => (ClosedBy::Shutdown, "shutdown"),
    }
}

/// Closes a poll's auctions: the events of all of them are gathered per buyer and each buyer's
/// go out as one emission (in the order of the results), then the outcomes are published.
fn close_all(hub: &Arc<Hub>, rows: &[AuctionResult]) {
    let closed: Vec<(&AuctionResult, Auction)> = {
        let mut t = hub.table.lock();
        rows.iter().filter_map(|r| Some((r, t.close(r.auction_id)?))).collect()
    };
    let mut per_buyer: FxHashMap<Arc<str>, Vec<StreamEvent>> = FxHashMap::default();
    let mut outcomes = Vec::with_capacity(closed.len());
    let deadlines: Vec<u64> = closed
        .iter()
        .filter(|(r, _)| r.closed_by == CLOSED_BY_DEADLINE)
        .map(|(_, a)| a.deadline_mono)
        .collect();
    // a buyer gets about one event per auction closed here
    let n = closed.len();
    for (r, a) in closed {
        outcomes.push(close_one(hub, r, a, n, &mut per_buyer));
    }
    for (name, evs) in per_buyer {
        let b = hub.streams.buyer(&name);
        let mut b = b.lock();
        hub.streams.emit(&mut b, evs, None);
    }
    let now = mono_ns();
    for d in deadlines {
        hub.metrics.close_delay.observe(Duration::from_nanos(now.saturating_sub(d)));
    }
    for o in outcomes {
        hub.publish_outcome(o);
    }
}

fn close_one(
    hub: &Arc<Hub>,
    r: &AuctionResult,
    a: Auction,
    n: usize,
    per_buyer: &mut FxHashMap<Arc<str>, Vec<StreamEvent>>,
) -> AuctionOutcome {
    if let Some(w) = hub.closed_waiters.lock().remove(&a.id) {
        let bids = a
            .bids
            .values()
            .map(|b| ClosedBid {
                buyer: String::from(&*b.buyer),
                bid: b.bid,
                amount: b.amount,
                counted: b.live && !b.late,
                creative: b.creative.clone(),
            })
            .collect();
        let _ = w.send(bids);
    }
    hub.metrics.auctions_closed.fetch_add(1, Ordering::Relaxed);
    hub.metrics.auctions_open.fetch_sub(1, Ordering::Relaxed);
    let cur = hub.currency;
    let price = if r.price.is_finite() { r.price.round() as i64 } else { 0 };
    let winner_key = (r.winner_bidder != NO_BIDDER).then_some(r.winner_bidder);
    let winner = winner_key
        .and_then(|k| a.bids.get(&k).map(|b| (k, String::from(&*b.buyer), b.bid, b.amount)));
    let (cb, cb_name) = closed_by(r.closed_by);
    // an auction cancelled by shutdown says nothing about its floor
    if let (Some(fl), Some(l), false) = (&hub.floors, a.learn, cb == ClosedBy::Shutdown) {
        fl.learn(l, winner.is_some(), price);
    }
    for (key, b) in &a.bids {
        if !b.live {
            continue;
        }
        let ev = if b.late {
            Body::Lost {
                auction_id: a.held_id.clone(),
                reason: LOSS_EXPIRED,
                min_to_win: None,
                currency: cur,
            }
        } else if Some(*key) == winner_key {
            Body::Won {
                auction_id: a.held_id.clone(),
                price,
                min_to_win: r.min_to_win.is_finite().then(|| r.min_to_win.round() as i64),
                slot: r.slot as u32,
                currency: cur,
            }
        } else {
            Body::Lost {
                auction_id: a.held_id.clone(),
                reason: if winner.is_some() { LOSS_HIGHER_BID } else { LOSS_EXPIRED },
                // one micro above the winning bid (ties go to the winner)
                min_to_win: winner.as_ref().map(|w| w.3 + 1),
                currency: cur,
            }
        };
        per_buyer.entry(b.buyer.clone()).or_insert_with(|| Vec::with_capacity(n)).push(
            StreamEvent { event: ev, request_id: String::new(), auction: a.engine_id, bid: b.bid },
        );
    }
    if let Some(p) = &a.publisher {
        let closed = AuctionClosed {
            auction_id: String::from(&*a.id),
            winners: winner
                .iter()
                .map(|w| Winner {
                    buyer_id: w.1.clone(),
                    bid_id: bid_id(w.2),
                    price: Some(money(cur, price)),
                    slot: 0,
                })
                .collect(),
            n_bids: r.n_bids,
            closed_by: cb as i32,
        };
        per_buyer.entry(p.as_str().into()).or_insert_with(|| Vec::with_capacity(n)).push(
            StreamEvent {
                event: Body::Event(Event::AuctionClosed(closed)),
                request_id: String::new(),
                auction: a.engine_id,
                bid: 0,
            },
        );
    }
    AuctionOutcome {
        auction_id: String::from(&*a.id),
        attributes: a.attributes,
        winner: winner.map(|w| (w.1, bid_id(w.2))),
        price_micros: if winner_key.is_some() { price } else { 0 },
        n_bids: r.n_bids,
        closed_by: cb_name,
        publisher: a.publisher,
    }
}
