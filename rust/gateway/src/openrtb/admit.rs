//! Admission of an HTTP bidder's bids: each is checked (imp, seat, price, currency,
//! adjustments, block lists, deal, floor), the best per imp is kept and staged for its engine
//! auction; the request's staged bids, all bidders', go to the engine as one block beside the
//! WebSocket buyers' bids.

use std::collections::HashMap;
use std::sync::Arc;

use rtbcore_core::engine::mono_ns;
use rtbcore_proto::v1::PlaceBid;

use super::adjust::Rules;
use super::exchange::{Slot, BIDDER_PREFIX};
use super::model::{Bid, BidRequest, BidResponse};
use super::notices::{fire, Macros};
use super::rates::Table;
use super::OpenRtb;
use crate::auctions::Staged;
use crate::auth::Identity;
use crate::events::money;
use crate::events::to_micros;

/// An HTTP bidder's bid admitted to an auction.
pub(super) struct Candidate {
    pub(super) bidder: String,
    pub(super) seat: String,
    pub(super) response_bid_id: String,
    pub(super) bid: Bid,
    /// The bid's own currency and its price there (after adjustments), for the macros.
    pub(super) currency: String,
    pub(super) price: f64,
    pub(super) amount: i64,
    pub(super) floor: i64,
    pub(super) engine_bid: u64,
}

/// OpenRTB loss reasons of a bid refused before its auction (sent in its `lurl`).
const LOSS_INTERNAL: i64 = 1;
const LOSS_INVALID_RESPONSE: i64 = 3;
const LOSS_INVALID_DEAL: i64 = 4;
const LOSS_BELOW_FLOOR: i64 = 100;
const LOSS_BELOW_DEAL_FLOOR: i64 = 101;
const LOSS_HIGHER_BID: i64 = 102;
const LOSS_SEAT_BLOCKED: i64 = 104;
const LOSS_ADVERTISER_EXCLUDED: i64 = 205;
const LOSS_APP_EXCLUDED: i64 = 206;
const LOSS_CATEGORY_EXCLUDED: i64 = 209;

/// The block list a bid falls under, as its loss reason.
pub(super) fn blocked(req: &BidRequest, bid: &Bid) -> Option<i64> {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if bid.cat.iter().any(|c| req.bcat.iter().any(|b| eq(b, c))) {
        return Some(LOSS_CATEGORY_EXCLUDED);
    }
    if bid.adomain.iter().any(|d| {
        req.badv.iter().any(|b| {
            eq(b, d) || d.to_ascii_lowercase().ends_with(&format!(".{}", b.to_ascii_lowercase()))
        })
    }) {
        return Some(LOSS_ADVERTISER_EXCLUDED);
    }
    if bid.bundle.as_deref().is_some_and(|x| req.bapp.iter().any(|b| eq(b, x))) {
        return Some(LOSS_APP_EXCLUDED);
    }
    None
}

/// Fires a refused bid's `lurl` (not for a test request): the loss reason, the imp and the
/// bidder's ids; no price, since the bid took no part in the auction.
fn refused_notice(
    ortb: &Arc<OpenRtb>,
    req: &BidRequest,
    (imp_id, seat, response_bid_id, currency): (&str, &str, &str, &str),
    bid: &Bid,
    loss: i64,
) {
    let Some(lurl) = bid.lurl.as_deref() else { return };
    if req.test == Some(1) {
        return;
    }
    let m = Macros {
        auction_id: req.id.clone(),
        bid_id: response_bid_id.to_string(),
        imp_id: imp_id.to_string(),
        seat_id: seat.to_string(),
        ad_id: bid.adid.clone().unwrap_or_default(),
        price: String::new(),
        currency: currency.to_string(),
        mbr: String::new(),
        loss: loss.to_string(),
        min_to_win: String::new(),
    };
    fire(ortb, m.substitute(lurl));
}

/// Checks a bidder's bids and stages those admitted for their auctions (the caller submits
/// them to the engine together).
#[allow(clippy::too_many_arguments)]
pub(super) fn admit(
    ortb: &Arc<OpenRtb>,
    rates: &Table,
    req: &BidRequest,
    slots: &[Slot],
    b: &crate::config::BidderConfig,
    resp: BidResponse,
    adjust: &Rules,
    out: &mut Vec<(Candidate, Staged)>,
) {
    let hub = &ortb.hub;
    let c = &ortb.metrics.bidders[&b.name];
    let cur = &hub.currency;
    let bid_cur = resp.cur.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| b.currency.clone());
    let response_bid_id = resp.bidid.clone().unwrap_or_default();
    // the best admissible bid per imp
    let mut best: HashMap<usize, Candidate> = HashMap::new();
    for sb in resp.seatbid {
        let seat = sb.seat.clone().filter(|s| !s.is_empty()).unwrap_or_else(|| b.name.clone());
        for bid in sb.bid {
            let Some(i) = slots.iter().position(|s| s.imp_id == bid.impid) else {
                c.reject("unknown_imp");
                continue;
            };
            let s = &slots[i];
            let ids =
                (s.imp_id.as_str(), seat.as_str(), response_bid_id.as_str(), bid_cur.as_str());
            let refuse = |why: &str, loss: i64, bid: &Bid| {
                c.reject(why);
                refused_notice(ortb, req, ids, bid, loss);
            };
            if s.seats.as_ref().is_some_and(|r| r.excludes(&seat)) {
                ortb.metrics.seat_excluded.count("bidder_bid");
                refuse("seat", LOSS_SEAT_BLOCKED, &bid);
                continue;
            }
            if !(bid.price.is_finite() && bid.price > 0.0) {
                refuse("invalid_price", LOSS_INVALID_RESPONSE, &bid);
                continue;
            }
            let Some(rate) = rates.rate(&bid_cur, cur) else {
                refuse("currency", LOSS_INVALID_RESPONSE, &bid);
                continue;
            };
            let price = adjust.apply(
                s.adj_media_type,
                &b.name,
                bid.dealid.as_deref(),
                bid.price * b.adjustment,
                &bid_cur,
                rates,
            );
            if !(price.is_finite() && price > 0.0) {
                refuse("invalid_price", LOSS_INVALID_RESPONSE, &bid);
                continue;
            }
            let amount = to_micros(price * rate);
            if amount <= 0 || amount > hub.cfg.engine.max_amount_micros {
                refuse("invalid_price", LOSS_INVALID_RESPONSE, &bid);
                continue;
            }
            if let Some(loss) = blocked(req, &bid) {
                refuse("blocked", loss, &bid);
                continue;
            }
            let deal = bid.dealid.as_deref().filter(|d| !d.is_empty());
            let floor = match deal {
                Some(d) => match s.deals.get(d) {
                    Some(t) if !t.wseat.is_empty() && !t.wseat.contains(&seat) => {
                        ortb.metrics.seat_excluded.count("bidder_deal_bid");
                        refuse("seat", LOSS_SEAT_BLOCKED, &bid);
                        continue;
                    }
                    Some(t) => t.floor,
                    None => {
                        refuse("deal", LOSS_INVALID_DEAL, &bid);
                        continue;
                    }
                },
                None if s.private => {
                    refuse("deal", LOSS_INVALID_DEAL, &bid);
                    continue;
                }
                None => s.floor,
            };
            if amount < floor {
                let loss = if deal.is_some() { LOSS_BELOW_DEAL_FLOOR } else { LOSS_BELOW_FLOOR };
                refuse("below_floor", loss, &bid);
                continue;
            }
            let cand = Candidate {
                bidder: b.name.clone(),
                seat: seat.clone(),
                response_bid_id: response_bid_id.clone(),
                bid,
                currency: bid_cur.clone(),
                price,
                amount,
                floor,
                engine_bid: 0,
            };
            // a bidder's other bids on the imp lose to its best one
            match best.get(&i) {
                Some(prev) if prev.amount >= cand.amount => {
                    refuse("duplicate", LOSS_HIGHER_BID, &cand.bid)
                }
                Some(_) => {
                    if let Some(prev) = best.insert(i, cand) {
                        refuse("duplicate", LOSS_HIGHER_BID, &prev.bid);
                    }
                }
                None => {
                    best.insert(i, cand);
                }
            }
        }
    }
    let who = Identity { buyer: format!("{BIDDER_PREFIX}{}", b.name), scopes: 0 };
    for (i, mut cand) in best {
        let p = PlaceBid {
            auction_id: slots[i].auction_id.clone(),
            amount: Some(money(cur, cand.amount)),
            ..Default::default()
        };
        let now = mono_ns();
        let staged = match hub.place_for_bidder(&who, &p, now) {
            Ok(s) => s,
            Err(_) => {
                c.reject("engine");
                let ids = (
                    slots[i].imp_id.as_str(),
                    cand.seat.as_str(),
                    cand.response_bid_id.as_str(),
                    cand.currency.as_str(),
                );
                refused_notice(ortb, req, ids, &cand.bid, LOSS_INTERNAL);
                continue;
            }
        };
        cand.engine_bid = staged.answer.bid;
        out.push((cand, staged));
    }
}
