//! Admission of an HTTP bidder's bids: each is checked (imp, price, currency, adjustments,
//! block lists, deal, floor), the best per imp is kept and staged for its engine auction; the
//! request's staged bids, all bidders', go to the engine as one block beside the WebSocket
//! buyers' bids.

use std::collections::HashMap;
use std::sync::Arc;

use rtbcore_core::engine::mono_ns;
use rtbcore_proto::v1::PlaceBid;

use super::adjust::Rules;
use super::exchange::{to_micros, Slot, BIDDER_PREFIX};
use super::model::{Bid, BidRequest, BidResponse};
use super::rates::Table;
use super::OpenRtb;
use crate::auctions::Staged;
use crate::auth::Identity;
use crate::events::money;

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

fn blocked(req: &BidRequest, bid: &Bid) -> bool {
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    bid.cat.iter().any(|c| req.bcat.iter().any(|b| eq(b, c)))
        || bid.adomain.iter().any(|d| {
            req.badv.iter().any(|b| {
                eq(b, d)
                    || d.to_ascii_lowercase().ends_with(&format!(".{}", b.to_ascii_lowercase()))
            })
        })
        || bid.bundle.as_deref().is_some_and(|x| req.bapp.iter().any(|b| eq(b, x)))
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
            if !(bid.price.is_finite() && bid.price > 0.0) {
                c.reject("invalid_price");
                continue;
            }
            let Some(rate) = rates.rate(&bid_cur, cur) else {
                c.reject("currency");
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
                c.reject("invalid_price");
                continue;
            }
            let amount = to_micros(price * rate);
            if amount <= 0 || amount > hub.cfg.engine.max_amount_micros {
                c.reject("invalid_price");
                continue;
            }
            if blocked(req, &bid) {
                c.reject("blocked");
                continue;
            }
            let floor = match bid.dealid.as_deref().filter(|d| !d.is_empty()) {
                Some(d) => match s.deals.get(d) {
                    Some(f) => *f,
                    None => {
                        c.reject("deal");
                        continue;
                    }
                },
                None if s.private => {
                    c.reject("deal");
                    continue;
                }
                None => s.floor,
            };
            if amount < floor {
                c.reject("below_floor");
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
            match best.get(&i) {
                Some(prev) if prev.amount >= cand.amount => c.reject("duplicate"),
                Some(_) => {
                    c.reject("duplicate");
                    best.insert(i, cand);
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
        let staged = match hub.place(&who, &p, "", now) {
            Ok(s) => s,
            Err(_) => {
                c.reject("engine");
                continue;
            }
        };
        cand.engine_bid = staged.answer.bid;
        out.push((cand, staged));
    }
}
