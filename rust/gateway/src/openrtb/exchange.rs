//! One OpenRTB request end to end: an engine auction per imp, the HTTP bidders called in
//! parallel, their bids admitted (currency, adjustments, block lists, deals, floors) and placed
//! beside the WebSocket buyers' bids, and each imp's winner priced by `at`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use futures_util::future::join_all;
use rtbcore_proto::pbjson_types;
use rtbcore_proto::v1::OpenAuction;
use sonic_rs::Value;
use tokio::sync::oneshot;

use super::adjust::Rules;
use super::admit::{admit, blocked, Candidate};
use super::bidders;
use super::model::{Bid, BidRequest, BidResponse, SeatBid};
use super::notices::{fire, price_text, Macros};
use super::rates::Table;
use super::{OpenRtb, Refusal};
use crate::auctions::{SeatRule, Seats, Staged};
use crate::events::{bid_id, money, to_micros};
use crate::floors::{Floors, Learn};
use crate::hub::ClosedBid;
use rtbcore_core::engine::mono_ns;

/// The prefix of the engine buyer an HTTP bidder bids as.
pub const BIDDER_PREFIX: &str = "openrtb.";

/// OpenRTB loss reason 102: lost to a higher bid.
const LOSS_HIGHER_BID: i64 = 102;

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// A deal of an imp: its floor in micros of the exchange's currency, and the seats it admits
/// (empty: any).
pub(super) struct DealTerms {
    pub(super) floor: i64,
    pub(super) wseat: Vec<String>,
}

/// One imp's auction.
pub(super) struct Slot {
    pub(super) auction_id: String,
    pub(super) imp_id: String,
    pub(super) media_type: &'static str,
    /// The media type as bid adjustments name it (video: video-instream / video-outstream).
    pub(super) adj_media_type: &'static str,
    /// Open-market floor, exchange micros.
    pub(super) floor: i64,
    /// Deal id -> floor, exchange micros.
    pub(super) deals: HashMap<String, DealTerms>,
    pub(super) private: bool,
    /// A WebSocket or SSE subscriber was told of the auction when it opened.
    pub(super) audience: bool,
    /// The request's `wseat` / `bseat`.
    pub(super) seats: Option<Arc<SeatRule>>,
    pub(super) closed: Option<oneshot::Receiver<Vec<ClosedBid>>>,
    /// What the imp's outcome teaches the learned floors (None: nothing).
    pub(super) learn: Option<Learn>,
}

/// A bid that took part in an imp's clearing.
struct Entry {
    amount: i64,
    floor: i64,
    engine_bid: u64,
    /// Index into the candidates, or None for a WebSocket buyer's bid (its buyer id).
    candidate: Option<usize>,
    buyer: String,
    /// A WebSocket buyer's ad, from its bid's criteria.
    creative: Option<Box<crate::auctions::Creative>>,
}

fn convert(rates: &Table, amount: f64, from: &str, to: &str, what: &str) -> Result<f64, Refusal> {
    rates
        .rate(from, to)
        .map(|r| amount * r)
        .ok_or_else(|| Refusal::invalid(format!("{what}: no conversion rate from {from} to {to}")))
}

/// The first matching floor rule's floor in exchange micros.
fn rule_floor(
    ortb: &OpenRtb,
    rates: &Table,
    req: &BidRequest,
    media: &str,
    size: Option<&str>,
) -> Result<i64, Refusal> {
    let cur: &str = ortb.hub.currency;
    let eq = |want: &Option<String>, got: Option<&str>| {
        want.as_deref().is_none_or(|w| got.is_some_and(|g| g.eq_ignore_ascii_case(w)))
    };
    for (i, r) in ortb.hub.cfg.openrtb.floors.iter().enumerate() {
        if eq(&r.domain, req.domain())
            && eq(&r.media_type, Some(media))
            && eq(&r.size, size)
            && eq(&r.country, req.country())
        {
            let from = if r.currency.is_empty() { cur } else { r.currency.as_str() };
            let what = format!("openrtb.floors[{i}].currency");
            return Ok(to_micros(convert(rates, r.floor, from, cur, &what)?));
        }
    }
    Ok(0)
}

fn clip(s: &str) -> String {
    s.chars().take(256).collect()
}

/// Runs the request's auctions; `None` when no imp was won.
/// `waited` is set to the time spent waiting for the HTTP bidders' answers and for the
/// auctions to close (the rest is the door's own).
pub async fn run(
    ortb: &Arc<OpenRtb>,
    req: BidRequest,
    raw: Value,
    waited: &mut Duration,
) -> Result<Option<BidResponse>, Refusal> {
    let hub = &ortb.hub;
    let cfg = &hub.cfg;
    let cur = hub.currency.to_string();
    let rates = ortb.rates.current();
    let resp_cur = if req.cur.is_empty() || req.cur.contains(&cur) {
        cur.clone()
    } else {
        req.cur.iter().find(|c| rates.rate(&cur, c).is_some()).cloned().ok_or_else(|| {
            Refusal::invalid(format!(
                "request.cur: the exchange clears in {cur} and has no rate to any of {:?}",
                req.cur
            ))
        })?
    };
    let tmax = (req.tmax.unwrap_or(cfg.engine.tmax_ms as i64) as u64).min(cfg.engine.max_tmax_ms);
    let allowance = cfg.openrtb.network_allowance_ms;
    let budget_ms = if tmax > 2 * allowance { tmax - allowance } else { (tmax / 2).max(1) };
    let budget = Duration::from_millis(budget_ms);

    let seat_set = |xs: &[String]| xs.iter().cloned().collect();
    let seats = match (req.wseat.is_empty(), req.bseat.is_empty()) {
        (false, _) => Some(Seats::Allow(seat_set(&req.wseat))),
        (true, false) => Some(Seats::Block(seat_set(&req.bseat))),
        (true, true) => None,
    }
    .map(|seats| Arc::new(SeatRule { seats, excluded: ortb.metrics.seat_excluded.clone() }));

    // the floors first: a bad currency refuses the request before any auction opens
    let mut slots = Vec::with_capacity(req.imp.len());
    let n = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed);
    let nonce = crate::events::unix_ns() % 1_000_000_000;
    for (i, imp) in req.imp.iter().enumerate() {
        let media = imp.media_type();
        let size = imp.size();
        let mut floor = 0;
        if let Some(f) = imp.bidfloor.filter(|f| *f > 0.0) {
            let from = imp.bidfloorcur.as_deref().unwrap_or("USD");
            let what = format!("request.imp[{i}].bidfloorcur");
            floor = to_micros(convert(&rates, f, from, &cur, &what)?);
        }
        floor = floor.max(rule_floor(ortb, &rates, &req, media, size.as_deref())?);
        let mut deals = HashMap::new();
        let mut private = false;
        if let Some(pmp) = &imp.pmp {
            private = pmp.private_auction == Some(1);
            if private && pmp.deals.is_empty() {
                return Err(Refusal::invalid(format!(
                    "request.imp[{i}].pmp.private_auction is 1 but request.imp[{i}].pmp.deals is empty"
                )));
            }
            for (k, d) in pmp.deals.iter().enumerate() {
                let f = d.bidfloor.unwrap_or(0.0);
                let from = d.bidfloorcur.as_deref().unwrap_or("USD");
                let what = format!("request.imp[{i}].pmp.deals[{k}].bidfloorcur");
                let floor = to_micros(convert(&rates, f, from, &cur, &what)?);
                deals.insert(d.id.clone(), DealTerms { floor, wseat: d.wseat.clone() });
            }
        }
        // the learned floor raises the open-market floor; deal and test traffic gets it
        // without exploring, and is not learned from
        let mut learn = None;
        if let (Some(fl), false) = (&hub.floors, private) {
            let name = Floors::segment_name(&cfg.floors.openrtb_segment_by, |k| match k {
                "domain" => req.domain(),
                "bundle" => req.app.as_ref().and_then(|a| a.bundle.as_deref()),
                "media_type" => Some(media),
                "size" => size.as_deref(),
                "country" => req.country(),
                _ => None,
            });
            if let Some(name) = name {
                let plain = deals.is_empty() && req.test != Some(1);
                (floor, learn) = fl.apply(&name, floor, plain, plain);
            }
        }
        slots.push(Slot {
            auction_id: format!("ortb-{nonce}-{n}-{i}"),
            imp_id: imp.id.clone(),
            media_type: media,
            adj_media_type: imp.adjustment_media_type(),
            floor,
            deals,
            private,
            audience: false,
            seats: seats.clone(),
            closed: None,
            learn,
        });
    }

    // open the auctions (WebSocket buyers are told now)
    let max_amount = cfg.engine.max_amount_micros;
    for (i, s) in slots.iter_mut().enumerate() {
        let imp = &req.imp[i];
        let deal_min = s.deals.values().map(|d| d.floor).min();
        let engine_floor = match (s.private, deal_min) {
            (true, Some(d)) => d,
            (_, Some(d)) => d.min(s.floor),
            (_, None) => s.floor,
        }
        .min(max_amount);
        let mut attributes = HashMap::new();
        let mut put = |k: &str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                attributes.insert(k.to_string(), clip(v));
            }
        };
        put("openrtb_request_id", Some(&req.id));
        put("imp_id", Some(&imp.id));
        put("media_type", Some(s.media_type));
        put("size", imp.size().as_deref());
        put("country", req.country());
        put("domain", req.domain());
        put("bundle", req.app.as_ref().and_then(|a| a.bundle.as_deref()));
        put("tagid", imp.tagid.as_deref());
        put("private_auction", s.private.then_some("1"));
        let ids: Vec<&str> = s.deals.keys().map(String::as_str).collect();
        put("deals", Some(&ids.join(",")));
        s.audience = hub
            .streams
            .subscribers(&attributes)
            .iter()
            .any(|b| s.seats.as_ref().is_none_or(|r| !r.excludes(&b.lock().name)));
        let (tx, rx) = oneshot::channel();
        let aid: Arc<str> = s.auction_id.as_str().into();
        hub.closed_waiters.lock().insert(aid.clone(), tx);
        let o = OpenAuction {
            auction_id: s.auction_id.clone(),
            attributes,
            floor: Some(money(&cur, engine_floor)),
            tmax: Some(pbjson_types::Duration {
                seconds: (budget_ms / 1000) as i64,
                nanos: ((budget_ms % 1000) * 1_000_000) as i32,
            }),
            expected_bids: 0,
        };
        if let Err(r) = hub.open_auction_for_seats(None, &o, s.seats.clone()) {
            hub.closed_waiters.lock().remove(&aid);
            return Err(Refusal {
                status: StatusCode::SERVICE_UNAVAILABLE,
                outcome: "unavailable",
                message: format!("request.imp[{i}]: the auction could not open: {}", r.msg),
            });
        }
        s.closed = Some(rx);
    }

    // the HTTP bidders, in parallel, each within its time and before the auctions close
    let bidder_budget =
        budget.saturating_sub(Duration::from_millis(5)).max(Duration::from_millis(1));
    // one body per distinct bidder time and encoding (usually one for all): written once,
    // shared
    let mut bodies: Vec<(Duration, bool, Option<Bytes>)> = Vec::with_capacity(1);
    let calls: Vec<_> = cfg
        .openrtb
        .bidders
        .iter()
        .map(|b| {
            let within = Duration::from_millis(b.timeout_ms).min(bidder_budget);
            let body = match bodies.iter().find(|(w, z, _)| *w == within && *z == b.gzip) {
                Some((_, _, body)) => body.clone(),
                None => {
                    let mut body = bidders::request_body(&raw, within.as_millis() as u64);
                    if b.gzip {
                        body = body.map(|p| Bytes::from(super::gzip::deflate(&p)));
                    }
                    bodies.push((within, b.gzip, body.clone()));
                    body
                }
            };
            (b, within, body)
        })
        .collect();
    let calls = calls.into_iter().map(|(b, within, body)| {
        let id = &req.id;
        async move {
            let resp = match body {
                Some(body) => bidders::call(ortb, b, body, id, within).await,
                None => None,
            };
            (b, resp)
        }
    });
    let asked = Instant::now();
    let answers = join_all(calls).await;
    *waited = asked.elapsed();
    let adjust = Rules::from_ext(req.ext.as_ref());
    let mut admitted: Vec<(Candidate, Staged)> = Vec::new();
    for (b, resp) in answers {
        let Some(resp) = resp else { continue };
        admit(ortb, &rates, &req, &slots, b, resp, &adjust, &mut admitted);
    }
    // every bidder's admitted bids go to the engine as one block
    let (mut candidates, staged): (Vec<Candidate>, Vec<Staged>) = admitted.into_iter().unzip();
    let placed = hub.submit(&staged, mono_ns()).await.is_ok();
    for c in &candidates {
        let m = &ortb.metrics.bidders[&c.bidder];
        if placed {
            m.bids.fetch_add(1, Ordering::Relaxed);
        } else {
            m.reject("engine");
        }
    }
    if !placed {
        candidates.clear();
    }

    // with nobody else told of the auctions, the HTTP bids are all there is: answer now rather
    // than at the deadline (the engine still closes them with these bids)
    let mut results = Vec::with_capacity(slots.len());
    let early = !slots.iter().any(|s| s.audience);
    if early {
        for s in &slots {
            results.push(
                candidates
                    .iter()
                    .filter(|c| c.bid.impid == s.imp_id)
                    .map(|c| ClosedBid {
                        buyer: format!("{BIDDER_PREFIX}{}", c.bidder),
                        bid: c.engine_bid,
                        amount: c.amount,
                        counted: true,
                        creative: None,
                    })
                    .collect(),
            );
        }
    }
    // else wait for every auction to close
    let closing = Instant::now();
    for s in slots.iter_mut().filter(|_| !early) {
        let rx = s.closed.take().expect("opened above");
        let bids = tokio::time::timeout(budget + Duration::from_secs(2), rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        results.push(bids);
    }
    if !early {
        *waited += closing.elapsed();
    }

    let ctx = Settle {
        ortb,
        req: &req,
        rates: &rates,
        cur: &cur,
        rate_out: rates.rate(&cur, &resp_cur).unwrap_or(1.0),
        at: req.at.unwrap_or(2),
        test: req.test == Some(1),
    };
    let mut seats: Vec<SeatBid> = Vec::new();
    for (s, bids) in slots.iter().zip(results) {
        let Some((seat, bid)) = ctx.settle(s, bids, &candidates) else { continue };
        match seats.iter_mut().find(|sb| sb.seat.as_deref() == Some(seat.as_str())) {
            Some(sb) => sb.bid.push(bid),
            None => seats.push(SeatBid { bid: vec![bid], seat: Some(seat) }),
        }
    }
    if seats.is_empty() {
        return Ok(None);
    }
    Ok(Some(BidResponse {
        id: req.id.clone(),
        seatbid: seats,
        bidid: Some(format!("ortb-{nonce}-{n}")),
        cur: Some(resp_cur),
        nbr: None,
        ext: None,
    }))
}

/// What pricing an imp needs from its request.
struct Settle<'a> {
    ortb: &'a Arc<OpenRtb>,
    req: &'a BidRequest,
    rates: &'a Table,
    cur: &'a str,
    /// Exchange currency -> response currency.
    rate_out: f64,
    at: i64,
    test: bool,
}

impl Settle<'_> {
    /// Ranks an imp's bids at close, prices the winner by `at`, fires the notices; the winning
    /// seat and bid as the response shows them.
    fn settle(
        &self,
        s: &Slot,
        bids: Vec<ClosedBid>,
        candidates: &[Candidate],
    ) -> Option<(String, Bid)> {
        let (ortb, req, rates, cur, at, test) =
            (self.ortb, self.req, self.rates, self.cur, self.at, self.test);
        let rate_out = self.rate_out;
        let mut entries: Vec<Entry> = Vec::new();
        for cb in bids.into_iter().filter(|b| b.counted) {
            if let Some(name) = cb.buyer.strip_prefix(BIDDER_PREFIX) {
                if let Some(k) =
                    candidates.iter().position(|c| c.engine_bid == cb.bid && c.bidder == name)
                {
                    entries.push(Entry {
                        amount: candidates[k].amount,
                        floor: candidates[k].floor,
                        engine_bid: cb.bid,
                        candidate: Some(k),
                        buyer: cb.buyer,
                        creative: None,
                    });
                }
            } else if !s.private && cb.amount >= s.floor {
                // an ad the request's block lists exclude takes no part (it has no lurl to tell)
                if let Some(c) = &cb.creative {
                    let probe =
                        Bid { adomain: c.adomain.clone(), cat: c.cat.clone(), ..Bid::default() };
                    if blocked(req, &probe).is_some() {
                        ortb.metrics.buyer_bids_blocked.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                entries.push(Entry {
                    amount: cb.amount,
                    floor: s.floor,
                    engine_bid: cb.bid,
                    candidate: None,
                    buyer: cb.buyer,
                    creative: cb.creative,
                });
            }
        }
        // highest first; ties go to the earlier bid
        entries.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.engine_bid.cmp(&b.engine_bid)));
        let learn = |sold: bool, price: i64| {
            if let (Some(fl), Some(l)) = (&ortb.hub.floors, s.learn) {
                fl.learn(l, sold, price);
            }
        };
        let Some(win) = entries.first() else {
            learn(false, 0);
            return None;
        };
        let clearing = if at == 1 {
            win.amount
        } else {
            entries.get(1).map_or(win.floor, |e| e.amount.max(win.floor)).min(win.amount)
        };
        learn(true, clearing);
        let price_out = clearing as f64 / 1e6 * rate_out;
        // loss notices for the HTTP bidders outbid here
        for e in entries.iter().skip(1) {
            let Some(k) = e.candidate else { continue };
            let c = &candidates[k];
            let Some(lurl) = c.bid.lurl.as_deref() else { continue };
            if test {
                continue;
            }
            let m = macros(&req.id, s, c, clearing, rates, cur, LOSS_HIGHER_BID, win.amount);
            fire(ortb, m.substitute(lurl));
        }
        Some(match win.candidate {
            Some(k) => {
                let c = &candidates[k];
                let m = macros(&req.id, s, c, clearing, rates, cur, 0, 0);
                if let (Some(nurl), false) = (c.bid.nurl.as_deref(), test) {
                    fire(ortb, m.substitute(nurl));
                }
                let mut bid = c.bid.clone();
                bid.price = round6(price_out);
                bid.nurl = None;
                bid.lurl = None;
                bid.adm = bid.adm.map(|a| m.substitute(&a));
                bid.burl = bid.burl.map(|u| m.substitute(&u));
                (c.seat.clone(), bid)
            }
            None => {
                let mut bid = Bid {
                    id: bid_id(win.engine_bid),
                    impid: s.imp_id.clone(),
                    price: round6(price_out),
                    ..Default::default()
                };
                if let Some(c) = win.creative.as_deref() {
                    // the buyer bid in the exchange's currency: macros speak it
                    let price = clearing as f64 / 1e6;
                    let m = Macros {
                        auction_id: req.id.clone(),
                        bid_id: bid.id.clone(),
                        imp_id: s.imp_id.clone(),
                        seat_id: win.buyer.clone(),
                        ad_id: String::new(),
                        price: price_text(price),
                        currency: cur.to_string(),
                        mbr: price_text(price / (win.amount as f64 / 1e6)),
                        loss: String::new(),
                        min_to_win: String::new(),
                    };
                    bid.adm = c.adm.as_deref().map(|a| m.substitute(a));
                    bid.burl = c.burl.as_deref().map(|u| m.substitute(u));
                    bid.adomain = c.adomain.clone();
                    bid.cat = c.cat.clone();
                    bid.crid = c.crid.clone();
                    bid.cid = c.cid.clone();
                }
                (win.buyer.clone(), bid)
            }
        })
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// The macro values for candidate `c`: prices in the bid's own currency.
#[allow(clippy::too_many_arguments)]
fn macros(
    request_id: &str,
    s: &Slot,
    c: &Candidate,
    clearing: i64,
    rates: &Table,
    cur: &str,
    loss: i64,
    min_to_win: i64,
) -> Macros {
    let back = rates.rate(cur, &c.currency).unwrap_or(1.0);
    let price = clearing as f64 / 1e6 * back;
    Macros {
        auction_id: request_id.to_string(),
        bid_id: c.response_bid_id.clone(),
        imp_id: s.imp_id.clone(),
        seat_id: c.seat.clone(),
        ad_id: c.bid.adid.clone().unwrap_or_default(),
        price: price_text(price),
        currency: c.currency.clone(),
        mbr: if c.price > 0.0 { price_text(price / c.price) } else { String::new() },
        loss: if loss > 0 { loss.to_string() } else { String::new() },
        min_to_win: if min_to_win > 0 {
            price_text(min_to_win as f64 / 1e6 * back)
        } else {
            String::new()
        },
    }
}
