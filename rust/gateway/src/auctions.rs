//! The gateway's auction table (string id <-> engine id, floor, deadline, the bids per buyer) and
//! the requests on it: opening auctions, and placing, updating, cancelling and expiring bids.
//! Bid requests are validated and applied to the table one by one, then a frame's records go to
//! the engine as one block; if the engine refuses the block, the table changes are undone.

use std::collections::{HashMap, HashSet, VecDeque};

use rustc_hash::FxHashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rtbcore_core::engine::{mono_ns, BidArrays, Prepared};
use rtbcore_core::record::{KIND_CANCEL, KIND_PLACE, KIND_UPDATE};
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::*;

use crate::auth::{valid_id, Identity};
use crate::events::*;
use crate::evlog::{buyer_key, Rec, K_AUCTION};
use crate::hub::Hub;
use crate::prost::Message as _;

/// A refused request: the reason code and a message saying what and where.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub reason: RejectReason,
    pub msg: String,
    pub auction_id: String,
    pub bid_id: String,
}

pub fn reject(reason: RejectReason, msg: impl Into<String>) -> Reject {
    Reject { reason, msg: msg.into(), auction_id: String::new(), bid_id: String::new() }
}

impl Reject {
    pub fn on_auction(mut self, a: &str) -> Self {
        self.auction_id = a.chars().take(64).collect();
        self
    }
    pub fn on_bid(mut self, b: &str) -> Self {
        self.bid_id = b.chars().take(64).collect();
        self
    }
    pub fn event(self) -> Event {
        Event::BidRejected(BidRejected {
            reason: self.reason as i32,
            message: self.msg,
            auction_id: self.auction_id,
            bid_id: self.bid_id,
        })
    }
}

pub struct BidState {
    pub bid: u64,
    pub buyer: Arc<str>,
    pub amount: i64,
    pub live: bool,
    /// The engine judged the place late (stamped past the deadline the gateway had checked):
    /// it took no part in the clearing.
    pub late: bool,
    /// Bumped by every update, so that a ttl timer of an earlier version does nothing.
    pub gen: u32,
    /// The ad the bid offers, when its criteria name one (boxed: most bids carry none).
    pub creative: Option<Box<Creative>>,
}

/// What a buyer's bid says of its ad, from `PlaceBid.criteria` (`adm`, `adomain`, `crid`,
/// `cid`, `burl`, `cat`): given back in an OpenRTB answer the bid wins, and checked against the
/// request's block lists. Other criteria are ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Creative {
    pub adm: Option<String>,
    pub adomain: Vec<String>,
    pub crid: Option<String>,
    pub cid: Option<String>,
    pub burl: Option<String>,
    pub cat: Vec<String>,
}

/// The creative named by a bid's criteria, or a rejection naming the criterion that is wrong.
pub fn creative_of(
    criteria: &HashMap<String, pbjson_types::Value>,
) -> Result<Option<Box<Creative>>, Reject> {
    use pbjson_types::value::Kind;
    if criteria.is_empty() {
        return Ok(None);
    }
    let field = |k: &str| format!("place_bid.criteria.{k}");
    let text = |k: &str| -> Result<Option<String>, Reject> {
        match criteria.get(k).map(|v| &v.kind) {
            None | Some(None) | Some(Some(Kind::NullValue(_))) => Ok(None),
            Some(Some(Kind::StringValue(s))) => Ok(Some(s.clone())),
            Some(_) => {
                Err(reject(RejectReason::InvalidField, format!("{} must be a string", field(k))))
            }
        }
    };
    let list = |k: &str| -> Result<Vec<String>, Reject> {
        let bad = || {
            reject(RejectReason::InvalidField, format!("{} must be a list of strings", field(k)))
        };
        match criteria.get(k).map(|v| &v.kind) {
            None | Some(None) | Some(Some(Kind::NullValue(_))) => Ok(Vec::new()),
            Some(Some(Kind::ListValue(l))) => l
                .values
                .iter()
                .map(|v| match &v.kind {
                    Some(Kind::StringValue(s)) => Ok(s.clone()),
                    _ => Err(bad()),
                })
                .collect(),
            Some(_) => Err(bad()),
        }
    };
    if !["adm", "adomain", "crid", "cid", "burl", "cat"].iter().any(|k| criteria.contains_key(*k)) {
        return Ok(None);
    }
    let c = Creative {
        adm: text("adm")?,
        adomain: list("adomain")?,
        crid: text("crid")?,
        cid: text("cid")?,
        burl: text("burl")?,
        cat: list("cat")?,
    };
    Ok((c != Creative::default()).then(|| Box::new(c)))
}

pub struct Auction {
    pub engine_id: u64,
    pub id: Arc<str>,
    /// The id as events hold it, made once for all of them.
    pub held_id: AuctionId,
    pub publisher: Option<String>,
    pub floor: i64,
    pub deadline_mono: u64,
    pub expected: u32,
    pub answered: u32,
    pub attributes: HashMap<String, String>,
    /// What its close teaches the learned floors (None: nothing).
    pub learn: Option<crate::floors::Learn>,
    /// By buyer key.
    pub bids: FxHashMap<u64, BidState>,
    /// The buyer seats it is limited to (an OpenRTB request's `wseat` or `bseat`).
    pub seats: Option<Arc<SeatRule>>,
}

/// An allow or block list of buyer seats (OpenRTB `wseat` / `bseat`). A WebSocket buyer's seat
/// is its buyer id, as in the door's answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Seats {
    Allow(HashSet<String>),
    Block(HashSet<String>),
}

/// The seats an auction is limited to, and where the exclusions it causes are counted.
pub struct SeatRule {
    pub seats: Seats,
    pub excluded: Arc<crate::openrtb::metrics::SeatExcluded>,
}

impl SeatRule {
    pub fn excludes(&self, seat: &str) -> bool {
        match &self.seats {
            Seats::Allow(s) => !s.contains(seat),
            Seats::Block(s) => s.contains(seat),
        }
    }
}

/// Closed auction ids remembered (AUCTION_CLOSED rather than UNKNOWN_AUCTION; no id reuse).
const CLOSED_MEMORY: usize = 65_536;
/// Attributes of an auction: count and size bounds.
pub const MAX_ATTRIBUTES: usize = 64;
pub const MAX_ATTRIBUTE_BYTES: usize = 4096;

pub struct Table {
    by_id: foldhash::HashMap<Arc<str>, u64>,
    pub open: FxHashMap<u64, Auction>,
    /// Bid number -> (auction engine id, buyer key).
    bids: FxHashMap<u64, (u64, u64)>,
    closed: foldhash::HashSet<Arc<str>>,
    closed_order: VecDeque<Arc<str>>,
    /// Announcements by engine id, with their log position (for replay; pruned with the log).
    /// Sized at start for a few hundred thousand boxed entries, so that it does not rehash
    /// (copy every entry, under the table lock) while the log fills.
    started: FxHashMap<u64, (u64, Arc<AuctionStarted>)>,
    /// (log position, engine id) of `started`, oldest first (positions grow with each
    /// announcement): pruning pops what the log dropped, a few entries per announcement,
    /// instead of scanning the whole map at once.
    started_order: VecDeque<(u64, u64)>,
}

impl Table {
    pub fn new(recovered: HashMap<u64, (u64, Vec<u8>)>) -> Table {
        let mut started = FxHashMap::with_capacity_and_hasher(
            (4 * CLOSED_MEMORY).max(recovered.len()),
            Default::default(),
        );
        started.extend(recovered.into_iter().filter_map(|(id, (pos, blob))| {
            Some((id, (pos, Arc::new(AuctionStarted::decode(blob.as_slice()).ok()?))))
        }));
        let mut started_order: Vec<(u64, u64)> =
            started.iter().map(|(&id, (pos, _))| (*pos, id)).collect();
        started_order.sort_unstable();
        Table {
            by_id: Default::default(),
            open: FxHashMap::default(),
            bids: FxHashMap::default(),
            closed: Default::default(),
            closed_order: VecDeque::new(),
            started,
            started_order: started_order.into(),
        }
    }

    /// Takes a closed auction out of the table.
    pub fn close(&mut self, engine_id: u64) -> Option<Auction> {
        let a = self.open.remove(&engine_id)?;
        self.by_id.remove(&a.id);
        for b in a.bids.values() {
            self.bids.remove(&b.bid);
        }
        self.closed.insert(a.id.clone());
        self.closed_order.push_back(a.id.clone());
        while self.closed_order.len() > CLOSED_MEMORY {
            if let Some(old) = self.closed_order.pop_front() {
                self.closed.remove(&old);
            }
        }
        Some(a)
    }

    /// Records an announcement logged at `pos` (after every earlier one) and drops those
    /// the log no longer holds (before `oldest_pos`).
    fn add_started(&mut self, eid: u64, pos: u64, st: Arc<AuctionStarted>, oldest_pos: u64) {
        self.started.insert(eid, (pos, st));
        self.started_order.push_back((pos, eid));
        while let Some(&(p, id)) = self.started_order.front() {
            if p >= oldest_pos {
                break;
            }
            self.started_order.pop_front();
            self.started.remove(&id);
        }
    }

    fn find(&self, auction_id: &str, now: u64) -> Result<u64, Reject> {
        let Some(&eid) = self.by_id.get(auction_id) else {
            let r = if self.closed.contains(auction_id) {
                reject(RejectReason::AuctionClosed, format!("auction {auction_id:?} is closed"))
            } else {
                reject(RejectReason::UnknownAuction, format!("no open auction {auction_id:?}"))
            };
            return Err(r.on_auction(auction_id));
        };
        let a = &self.open[&eid];
        if now > a.deadline_mono || (a.expected > 0 && a.answered >= a.expected) {
            return Err(reject(
                RejectReason::AuctionClosed,
                format!("auction {auction_id:?} is closed"),
            )
            .on_auction(auction_id));
        }
        Ok(eid)
    }
}

impl AuctionLookup for Table {
    fn started(&self, auction: u64) -> Option<AuctionStarted> {
        self.started.get(&auction).map(|(_, s)| (**s).clone())
    }
}

/// A bid request applied to the table, waiting for its frame's block to reach the engine.
pub struct Staged {
    pub auction: u64,
    pub buyer_key: u64,
    pub price: f64,
    pub kind: u8,
    pub answer: StreamEvent,
    /// The ttl to arm once the block is in the engine: (bid, gen, after).
    pub ttl: Option<(u64, u32, Duration)>,
    undo: Undo,
}

enum Undo {
    Place,
    Update { amount: i64, gen: u32 },
    Cancel,
}

fn ttl_of(
    d: &Option<pbjson_types::Duration>,
    max_ns: u64,
    field: &str,
) -> Result<Option<Duration>, Reject> {
    let Some(d) = d else { return Ok(None) };
    match dur_ns(d) {
        Some(ns) if ns > 0 && ns <= max_ns => Ok(Some(Duration::from_nanos(ns))),
        _ => Err(reject(
            RejectReason::InvalidField,
            format!(
                "{field} must be > 0 and at most {} ms, got {}s {}ns",
                max_ns / 1_000_000,
                d.seconds,
                d.nanos
            ),
        )),
    }
}

use rtbcore_proto::pbjson_types;

impl Hub {
    /// Checks a `Money`: present, the exchange's currency, 0 < micros <= the maximum.
    pub fn check_amount(&self, m: &Option<Money>, field: &str) -> Result<i64, Reject> {
        let Some(m) = m else {
            return Err(reject(RejectReason::InvalidAmount, format!("{field} is missing")));
        };
        if !m.currency.is_empty() && m.currency != self.currency {
            return Err(reject(
                RejectReason::CurrencyMismatch,
                format!(
                    "{field}.currency is {:?}, the exchange clears in {:?}",
                    m.currency, self.currency
                ),
            ));
        }
        let max = self.cfg.engine.max_amount_micros;
        if m.micros <= 0 || m.micros > max {
            return Err(reject(
                RejectReason::InvalidAmount,
                format!("{field}.micros must be > 0 and <= {max}, got {}", m.micros),
            ));
        }
        Ok(m.micros)
    }

    fn max_tmax_ns(&self) -> u64 {
        self.cfg.engine.max_tmax_ms * 1_000_000
    }

    /// Places a bid under the table lock the caller holds: a frame's run of bids takes it once,
    /// where a lock per bid had the connections' threads contend for it.
    pub fn place_locked(
        &self,
        t: &mut Table,
        who: &Identity,
        p: &PlaceBid,
        rid: &str,
        now: u64,
    ) -> Result<Staged, Reject> {
        self.place_checked(t, who, p, rid, now, true)
    }

    /// [`Hub::place_locked`] for the OpenRTB door's HTTP bidders, whose seats it has checked itself
    /// (a bidder's seats are in its response, not its engine buyer id).
    pub fn place_for_bidder(
        &self,
        who: &Identity,
        p: &PlaceBid,
        now: u64,
    ) -> Result<Staged, Reject> {
        self.place_checked(&mut self.table.lock(), who, p, "", now, false)
    }

    fn place_checked(
        &self,
        t: &mut Table,
        who: &Identity,
        p: &PlaceBid,
        rid: &str,
        now: u64,
        check_seat: bool,
    ) -> Result<Staged, Reject> {
        let on = |r: Reject| r.on_auction(&p.auction_id);
        if !p.buyer_id.is_empty() && p.buyer_id != who.buyer {
            return Err(on(reject(
                RejectReason::Forbidden,
                format!(
                    "place_bid.buyer_id {:?} is not the authenticated buyer {:?}",
                    p.buyer_id, who.buyer
                ),
            )));
        }
        let amount = self.check_amount(&p.amount, "place_bid.amount").map_err(on)?;
        let ttl = ttl_of(&p.ttl, self.max_tmax_ns(), "place_bid.ttl").map_err(on)?;
        let creative = creative_of(&p.criteria).map_err(on)?;
        let key = buyer_key(&who.buyer);
        let eid = t.find(&p.auction_id, now)?;
        let bid = self.next_bid.fetch_add(1, Ordering::Relaxed);
        let a = t.open.get_mut(&eid).expect("found above");
        if let Some(rule) = a.seats.as_ref().filter(|r| check_seat && r.excludes(&who.buyer)) {
            rule.excluded.count("buyer_bid");
            return Err(on(reject(
                RejectReason::Forbidden,
                format!(
                    "buyer {:?} may not bid on auction {:?}: the request's wseat/bseat excludes its seat",
                    who.buyer, a.id
                ),
            )));
        }
        if amount < a.floor {
            return Err(on(reject(
                RejectReason::BelowFloor,
                format!("place_bid.amount.micros {amount} is below the floor {}", a.floor),
            )));
        }
        if let Some(b) = a.bids.get(&key) {
            if b.live {
                return Err(on(reject(
                    RejectReason::AlreadyBid,
                    format!("bid {} is live on this auction: use update_bid", bid_id(b.bid)),
                ))
                .on_bid(&bid_id(b.bid)));
            }
            let old = b.bid;
            t.bids.remove(&old);
        }
        let a = t.open.get_mut(&eid).expect("found above");
        if !a.bids.contains_key(&key) {
            a.answered += 1;
        }
        a.bids.insert(
            key,
            BidState {
                bid,
                buyer: who.buyer.as_str().into(),
                amount,
                live: true,
                late: false,
                gen: 0,
                creative,
            },
        );
        let auction_id = a.held_id.clone();
        t.bids.insert(bid, (eid, key));
        Ok(Staged {
            auction: eid,
            buyer_key: key,
            price: amount as f64,
            kind: KIND_PLACE,
            answer: StreamEvent {
                event: Body::Accepted { auction_id, amount, currency: self.currency },
                request_id: rid.to_string(),
                auction: eid,
                bid,
            },
            ttl: ttl.map(|d| (bid, 0, d)),
            undo: Undo::Place,
        })
    }

    /// The live bid `bid_id` of `who`: (bid number, auction engine id).
    fn own_bid(&self, t: &Table, who: &Identity, id: &str, now: u64) -> Result<(u64, u64), Reject> {
        let unknown = || reject(RejectReason::UnknownBid, format!("no live bid {id:?}")).on_bid(id);
        let n = parse_bid_id(id).ok_or_else(unknown)?;
        let &(eid, key) = t.bids.get(&n).ok_or_else(unknown)?;
        let a = &t.open[&eid];
        if key != buyer_key(&who.buyer)
            || a.bids.get(&key).is_none_or(|b| &*b.buyer != who.buyer.as_str())
        {
            return Err(reject(
                RejectReason::Forbidden,
                format!("bid {id:?} belongs to another buyer"),
            )
            .on_bid(id));
        }
        if !a.bids[&key].live {
            return Err(unknown());
        }
        if now > a.deadline_mono {
            return Err(reject(
                RejectReason::AuctionClosed,
                format!("auction {:?} is closed", a.id),
            )
            .on_auction(&a.id)
            .on_bid(id));
        }
        Ok((n, eid))
    }

    pub fn update(
        &self,
        who: &Identity,
        u: &UpdateBid,
        rid: &str,
        now: u64,
    ) -> Result<Staged, Reject> {
        let amount =
            self.check_amount(&u.amount, "update_bid.amount").map_err(|r| r.on_bid(&u.bid_id))?;
        let ttl = ttl_of(&u.ttl, self.max_tmax_ns(), "update_bid.ttl")
            .map_err(|r| r.on_bid(&u.bid_id))?;
        let mut t = self.table.lock();
        let (n, eid) = self.own_bid(&t, who, &u.bid_id, now)?;
        let key = buyer_key(&who.buyer);
        let a = t.open.get_mut(&eid).expect("own_bid found it");
        if amount < a.floor {
            return Err(reject(
                RejectReason::BelowFloor,
                format!("update_bid.amount.micros {amount} is below the floor {}", a.floor),
            )
            .on_auction(&a.id)
            .on_bid(&u.bid_id));
        }
        let aid = String::from(&*a.id);
        let b = a.bids.get_mut(&key).expect("own_bid found it");
        let undo = Undo::Update { amount: b.amount, gen: b.gen };
        b.amount = amount;
        b.gen += 1;
        let gen = b.gen;
        Ok(Staged {
            auction: eid,
            buyer_key: key,
            price: amount as f64,
            kind: KIND_UPDATE,
            answer: StreamEvent {
                event: Body::Event(Event::BidUpdate(BidUpdate {
                    bid_id: u.bid_id.clone(),
                    auction_id: aid,
                    status: BidStatus::Updated as i32,
                    amount: Some(money(self.currency, amount)),
                })),
                request_id: rid.to_string(),
                auction: eid,
                bid: n,
            },
            ttl: ttl.map(|d| (n, gen, d)),
            undo,
        })
    }

    pub fn cancel(
        &self,
        who: &Identity,
        c: &CancelBid,
        rid: &str,
        now: u64,
    ) -> Result<Staged, Reject> {
        let mut t = self.table.lock();
        let (n, eid) = self.own_bid(&t, who, &c.bid_id, now)?;
        self.cancel_locked(
            &mut t,
            n,
            eid,
            buyer_key(&who.buyer),
            &c.bid_id,
            rid,
            BidStatus::Cancelled,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn cancel_locked(
        &self,
        t: &mut Table,
        n: u64,
        eid: u64,
        key: u64,
        id: &str,
        rid: &str,
        status: BidStatus,
    ) -> Result<Staged, Reject> {
        let a =
            t.open.get_mut(&eid).ok_or_else(|| reject(RejectReason::UnknownBid, "no live bid"))?;
        let aid = String::from(&*a.id);
        let b =
            a.bids.get_mut(&key).ok_or_else(|| reject(RejectReason::UnknownBid, "no live bid"))?;
        b.live = false;
        Ok(Staged {
            auction: eid,
            buyer_key: key,
            price: 0.0,
            kind: KIND_CANCEL,
            answer: StreamEvent {
                event: Body::Event(Event::BidUpdate(BidUpdate {
                    bid_id: id.to_string(),
                    auction_id: aid,
                    status: status as i32,
                    amount: Some(money(self.currency, b.amount)),
                })),
                request_id: rid.to_string(),
                auction: eid,
                bid: n,
            },
            ttl: None,
            undo: Undo::Cancel,
        })
    }

    /// Sends a frame's staged records to the engine as one block. On refusal the table changes
    /// are undone and the reason is returned.
    pub async fn submit(&self, staged: &[Staged], now: u64) -> Result<(), Reject> {
        let p = self.reserve(staged, now).await?;
        self.send_block(p, staged)
    }

    /// The first half of [`Hub::submit`]: prepares the block and waits for room in the
    /// engine's queues. The caller then takes its buyer's stream lock and calls
    /// [`Hub::send_block`], so that the engine cannot close an auction (and the buyer hear
    /// that it won) before the buyer has been told its bid was accepted.
    pub async fn reserve(&self, staged: &[Staged], now: u64) -> Result<Option<Prepared>, Reject> {
        if staged.is_empty() {
            return Ok(None);
        }
        let aids: Vec<u64> = staged.iter().map(|s| s.auction).collect();
        let bidders: Vec<u64> = staged.iter().map(|s| s.buyer_key).collect();
        let prices: Vec<f64> = staged.iter().map(|s| s.price).collect();
        let kinds: Vec<u8> = staged.iter().map(|s| s.kind).collect();
        let arrays = BidArrays {
            auction_ids: &aids,
            bidder_ids: &bidders,
            prices: &prices,
            quality: None,
            kinds: Some(&kinds),
        };
        let refused = match self.engine.prepare(&arrays, now) {
            Ok(p) => {
                // wait for room without holding a runtime thread: the engine's queue is
                // bounded, and a full one is back-pressure on this connection only
                for _ in 0..200 {
                    if self.engine.wait_room(&p, Duration::ZERO) {
                        return Ok(Some(p));
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
                reject(RejectReason::InternalError, "the engine is overloaded, retry")
            }
            Err(e) => reject(RejectReason::InternalError, format!("engine refused the block: {e}")),
        };
        self.undo(staged);
        Err(refused)
    }

    /// The second half of [`Hub::submit`]: queues the reserved block (never blocks). On
    /// refusal (the exchange is shutting down) the table changes are undone.
    pub fn send_block(&self, p: Option<Prepared>, staged: &[Staged]) -> Result<(), Reject> {
        let Some(p) = p else { return Ok(()) };
        match self.engine.send(p) {
            Ok(n) => {
                self.metrics.engine_records.fetch_add(n as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(_) => {
                self.undo(staged);
                Err(reject(RejectReason::ShuttingDown, "the exchange is shutting down"))
            }
        }
    }

    fn undo(&self, staged: &[Staged]) {
        let mut t = self.table.lock();
        for s in staged.iter().rev() {
            let Some(a) = t.open.get_mut(&s.auction) else { continue };
            match s.undo {
                Undo::Place => {
                    if let Some(b) = a.bids.remove(&s.buyer_key) {
                        a.answered = a.answered.saturating_sub(1);
                        t.bids.remove(&b.bid);
                    }
                }
                Undo::Update { amount, gen } => {
                    if let Some(b) = a.bids.get_mut(&s.buyer_key) {
                        b.amount = amount;
                        b.gen = gen;
                    }
                }
                Undo::Cancel => {
                    if let Some(b) = a.bids.get_mut(&s.buyer_key) {
                        b.live = true;
                    }
                }
            }
        }
    }

    /// Withdraws a bid whose ttl ran out (if it is still live in the same version) and tells
    /// its buyer with `BidUpdate{EXPIRED}`.
    pub async fn expire(self: &Arc<Self>, bid: u64, gen: u32) {
        let now = mono_ns();
        let staged = {
            let mut t = self.table.lock();
            let Some(&(eid, key)) = t.bids.get(&bid) else { return };
            let ok = t.open.get(&eid).is_some_and(|a| {
                now <= a.deadline_mono && a.bids.get(&key).is_some_and(|b| b.live && b.gen == gen)
            });
            if !ok {
                return;
            }
            match self.cancel_locked(&mut t, bid, eid, key, &bid_id(bid), "", BidStatus::Expired) {
                Ok(s) => s,
                Err(_) => return,
            }
        };
        let buyer = {
            let t = self.table.lock();
            t.open
                .get(&staged.auction)
                .and_then(|a| a.bids.get(&staged.buyer_key))
                .map(|b| String::from(&*b.buyer))
        };
        let staged = std::slice::from_ref(&staged);
        let Ok(p) = self.reserve(staged, now).await else { return };
        // sent under the buyer's stream lock, as a frame's bids are: the BidUpdate{EXPIRED}
        // is numbered before anything the engine reports on the auction afterwards
        let b = buyer.map(|name| self.streams.buyer(&name));
        let mut g = b.as_ref().map(|b| b.lock());
        if self.send_block(p, staged).is_ok() {
            self.metrics.bids_expired.fetch_add(1, Ordering::Relaxed);
            if let Some(g) = g.as_mut() {
                self.streams.emit(g, vec![staged[0].answer.clone()], None);
            }
        }
    }

    /// Arms the ttl timers of a frame's accepted bids.
    pub fn arm_ttls(self: &Arc<Self>, staged: &[Staged]) {
        for s in staged {
            if let Some((bid, gen, after)) = s.ttl {
                let hub = self.clone();
                self.rt.spawn(async move {
                    tokio::time::sleep(after).await;
                    hub.expire(bid, gen).await;
                });
            }
        }
    }

    /// Opens an auction for `publisher` (None: the exchange itself — demo traffic or the
    /// embedding program), announces it to matching subscribers and returns its engine id and
    /// `AuctionOpened`.
    pub fn open_auction(
        &self,
        publisher: Option<&str>,
        o: &OpenAuction,
    ) -> Result<(u64, AuctionOpened), Reject> {
        self.open_auction_for_seats(publisher, o, None)
    }

    /// [`Hub::open_auction`] limited to `seats`: buyers it excludes are not told of the auction
    /// and may not bid on it.
    pub fn open_auction_for_seats(
        &self,
        publisher: Option<&str>,
        o: &OpenAuction,
        seats: Option<Arc<SeatRule>>,
    ) -> Result<(u64, AuctionOpened), Reject> {
        let (eid, opened, started) = self.open_inner(publisher, o, seats.clone())?;
        self.announce_to(vec![(eid, started)], seats.as_deref());
        Ok((eid, opened))
    }

    /// Announces opened auctions to the buyers whose subscription matches: each buyer's
    /// announcements go out as one emission.
    pub fn announce(&self, opened: Vec<(u64, Arc<AuctionStarted>)>) {
        self.announce_to(opened, None)
    }

    fn announce_to(&self, opened: Vec<(u64, Arc<AuctionStarted>)>, seats: Option<&SeatRule>) {
        if opened.is_empty() {
            return;
        }
        for b in self.streams.all_buyers() {
            let mut b = b.lock();
            let Some(sub) = &b.sub else { continue };
            if let Some(rule) = seats.filter(|r| r.excludes(&b.name)) {
                for _ in opened.iter().filter(|(_, st)| sub.matches(&st.attributes)) {
                    rule.excluded.count("buyer_announcement");
                }
                continue;
            }
            let evs: Vec<StreamEvent> = opened
                .iter()
                .filter(|(_, st)| sub.matches(&st.attributes))
                .map(|(eid, st)| StreamEvent {
                    event: Body::Started(st.clone()),
                    request_id: String::new(),
                    auction: *eid,
                    bid: 0,
                })
                .collect();
            self.streams.emit(&mut b, evs, None);
        }
    }

    /// Opens an auction like [`Hub::open_auction`] without announcing it: returns its engine
    /// id, `AuctionOpened` and the `AuctionStarted` to hand to [`Hub::announce`].
    pub fn open_unannounced(
        &self,
        publisher: Option<&str>,
        o: &OpenAuction,
    ) -> Result<(u64, AuctionOpened, Arc<AuctionStarted>), Reject> {
        self.open_inner(publisher, o, None)
    }

    fn open_inner(
        &self,
        publisher: Option<&str>,
        o: &OpenAuction,
        seats: Option<Arc<SeatRule>>,
    ) -> Result<(u64, AuctionOpened, Arc<AuctionStarted>), Reject> {
        if self.is_draining() {
            return Err(reject(RejectReason::ShuttingDown, "the exchange is draining"));
        }
        let on = |r: Reject| r.on_auction(&o.auction_id);
        if !o.auction_id.is_empty() && !valid_id(&o.auction_id) {
            return Err(on(reject(
                RejectReason::InvalidField,
                "open_auction.auction_id must be 1..=64 printable ASCII bytes",
            )));
        }
        let size: usize = o.attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
        if o.attributes.len() > MAX_ATTRIBUTES || size > MAX_ATTRIBUTE_BYTES {
            return Err(on(reject(
                RejectReason::InvalidField,
                format!(
                    "open_auction.attributes: at most {MAX_ATTRIBUTES} entries and {MAX_ATTRIBUTE_BYTES} bytes, got {} and {size}",
                    o.attributes.len()
                ),
            )));
        }
        let floor = match &o.floor {
            None => 0,
            Some(m) if m.micros == 0 && (m.currency.is_empty() || m.currency == self.currency) => 0,
            f => self.check_amount(f, "open_auction.floor").map_err(on)?,
        };
        let tmax_ns = match &o.tmax {
            None => self.cfg.engine.tmax_ms * 1_000_000,
            Some(d) => match dur_ns(d) {
                Some(ns) if ns > 0 => ns.min(self.max_tmax_ns()),
                _ => {
                    return Err(on(reject(
                        RejectReason::InvalidField,
                        format!("open_auction.tmax must be > 0, got {}s {}ns", d.seconds, d.nanos),
                    )))
                }
            },
        };
        // a publisher's auction gets its segment's learned floor when it is higher
        let (floor, learn) = match (&self.floors, publisher) {
            (Some(fl), Some(_)) => {
                match crate::floors::Floors::segment_name(&self.cfg.floors.segment_by, |k| {
                    o.attributes.get(k).map(String::as_str)
                }) {
                    Some(name) => fl.apply(&name, floor, true, true),
                    None => (floor, None),
                }
            }
            _ => (floor, None),
        };
        let eid = self.next_auction.fetch_add(1, Ordering::Relaxed);
        let id: Arc<str> = if o.auction_id.is_empty() {
            format!("x{eid}").into()
        } else {
            o.auction_id.as_str().into()
        };
        let now_mono = mono_ns();
        let deadline_unix = unix_ns() + tmax_ns;
        let started = Arc::new(AuctionStarted {
            auction_id: String::from(&*id),
            attributes: o.attributes.clone(),
            floor: Some(money(self.currency, floor)),
            deadline: Some(ts(deadline_unix)),
            expected_bids: o.expected_bids,
            auction_type: if self.cfg.engine.mechanism == "first_price" {
                AuctionType::FirstPrice as i32
            } else {
                AuctionType::SecondPrice as i32
            },
        });
        {
            let mut t = self.table.lock();
            if t.by_id.contains_key(&id) || t.closed.contains(&id) {
                return Err(on(reject(
                    RejectReason::DuplicateAuction,
                    format!("auction id {id:?} is in use"),
                )));
            }
            let req = self.engine.open_request(
                eid,
                Some(floor as f64),
                Some(tmax_ns),
                o.expected_bids,
                now_mono,
            );
            self.engine.open(&[req]).map_err(|_| {
                on(reject(RejectReason::ShuttingDown, "the exchange is shutting down"))
            })?;
            let hdr =
                Rec { kind: K_AUCTION, auction: eid, time_ns: unix_ns(), ..Default::default() };
            let pos = self.log.append_blob(hdr, &started.encode_to_vec()).unwrap_or(0);
            let oldest = self.log.bounds().0;
            t.add_started(eid, pos, started.clone(), oldest);
            t.by_id.insert(id.clone(), eid);
            t.open.insert(
                eid,
                Auction {
                    engine_id: eid,
                    id: id.clone(),
                    held_id: AuctionId::new(&id),
                    publisher: publisher.map(str::to_string),
                    floor,
                    deadline_mono: now_mono + tmax_ns,
                    expected: o.expected_bids,
                    answered: 0,
                    attributes: o.attributes.clone(),
                    learn,
                    // sized for the bids it expects (bounded: the count is the publisher's)
                    bids: FxHashMap::with_capacity_and_hasher(
                        (o.expected_bids as usize).min(64),
                        Default::default(),
                    ),
                    seats,
                },
            );
        }
        self.metrics.auctions_opened.fetch_add(1, Ordering::Relaxed);
        self.metrics.auctions_open.fetch_add(1, Ordering::Relaxed);
        let opened =
            AuctionOpened { auction_id: String::from(&*id), deadline: Some(ts(deadline_unix)) };
        Ok((eid, opened, started))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bids_ad_is_read_from_its_criteria_and_wrong_types_are_named() {
        use pbjson_types::value::Kind;
        use pbjson_types::{ListValue, Value};
        let s = |x: &str| Value { kind: Some(Kind::StringValue(x.into())) };
        let crit = |pairs: Vec<(&str, Value)>| -> HashMap<String, Value> {
            pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
        };
        assert_eq!(creative_of(&crit(vec![])).unwrap(), None);
        assert_eq!(creative_of(&crit(vec![("exclusive", s("yes"))])).unwrap(), None);
        let ad = creative_of(&crit(vec![
            ("adm", s("<b>ad</b>")),
            (
                "adomain",
                Value { kind: Some(Kind::ListValue(ListValue { values: vec![s("a.example")] })) },
            ),
            ("other", s("kept out")),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(ad.adm.as_deref(), Some("<b>ad</b>"));
        assert_eq!(ad.adomain, vec!["a.example".to_string()]);
        assert_eq!(ad.crid, None);
        let number = Value { kind: Some(Kind::NumberValue(1.0)) };
        let e = creative_of(&crit(vec![("crid", number.clone())])).unwrap_err();
        assert!(e.msg.contains("place_bid.criteria.crid must be a string"), "{e:?}");
        let e = creative_of(&crit(vec![(
            "cat",
            Value { kind: Some(Kind::ListValue(ListValue { values: vec![s("IAB1"), number] })) },
        )]))
        .unwrap_err();
        assert!(e.msg.contains("place_bid.criteria.cat must be a list of strings"), "{e:?}");
    }

    #[test]
    fn announcements_are_dropped_as_the_log_drops_them() {
        let mut recovered = HashMap::new();
        for (id, pos) in [(7u64, 30u64), (5, 10), (6, 20)] {
            let st = AuctionStarted { auction_id: format!("r{id}"), ..Default::default() };
            recovered.insert(id, (pos, st.encode_to_vec()));
        }
        let mut t = Table::new(recovered);
        assert_eq!(t.started(6).map(|s| s.auction_id), Some("r6".to_string()));
        // the log still holds everything from 15 on: the recovered 5 (at 10) goes
        t.add_started(8, 40, Arc::default(), 15);
        let mut held: Vec<u64> = t.started.keys().copied().collect();
        held.sort_unstable();
        assert_eq!(held, vec![6, 7, 8]);
        for id in 20..1000u64 {
            // the log keeps the last 95 positions: the last 10 announcements (one every 10)
            t.add_started(id, id * 10, Arc::default(), id * 10 - 95);
            assert!(t.started.values().all(|(pos, _)| *pos >= id * 10 - 95));
            let want = (id - 19).min(10) as usize;
            assert_eq!((t.started.len(), t.started_order.len()), (want, want));
        }
        assert!(t.started(6).is_none() && t.started(999).is_some());
    }
}
