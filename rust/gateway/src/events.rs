//! Building events and turning stream events into event-log records and back (replay).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pbjson_types::{Duration as PbDuration, Timestamp};
use prost::Message as _;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::*;
use rtbcore_proto::{pbjson_types, prost};

use crate::auth::MAX_ID_LEN;
use crate::evlog::*;

/// Event type bits of a subscription (`Subscribe.event_types`).
pub const T_AUCTION_STARTED: u16 = 1;
pub const T_BID_ACCEPTED: u16 = 2;
pub const T_BID_REJECTED: u16 = 4;
pub const T_AUCTION_WON: u16 = 8;
pub const T_AUCTION_LOST: u16 = 16;
pub const T_BID_UPDATE: u16 = 32;
pub const T_AUCTION_CLOSED: u16 = 64;
/// Stream events that are only ever answers (AuctionOpened): delivered to the asking connection.
pub const T_ANSWER: u16 = 128;
pub const T_ALL: u16 = 127;
/// What a connection that has not subscribed still receives: the outcomes of its buyer's bids
/// and auctions (announcements need a subscription).
pub const T_OWN_RESULTS: u16 = T_AUCTION_WON | T_AUCTION_LOST | T_BID_UPDATE | T_AUCTION_CLOSED;

pub const TYPE_NAMES: [(u16, &str); 7] = [
    (T_AUCTION_STARTED, "auction_started"),
    (T_BID_ACCEPTED, "bid_accepted"),
    (T_BID_REJECTED, "bid_rejected"),
    (T_AUCTION_WON, "auction_won"),
    (T_AUCTION_LOST, "auction_lost"),
    (T_BID_UPDATE, "bid_update"),
    (T_AUCTION_CLOSED, "auction_closed"),
];

pub fn type_bit(e: &Event) -> u16 {
    match e {
        Event::AuctionStarted(_) => T_AUCTION_STARTED,
        Event::BidAccepted(_) => T_BID_ACCEPTED,
        Event::BidRejected(_) => T_BID_REJECTED,
        Event::AuctionWon(_) => T_AUCTION_WON,
        Event::AuctionLost(_) => T_AUCTION_LOST,
        Event::BidUpdate(_) => T_BID_UPDATE,
        Event::AuctionClosed(_) => T_AUCTION_CLOSED,
        _ => T_ANSWER,
    }
}

pub fn unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

pub fn ts(ns: u64) -> Timestamp {
    Timestamp { seconds: (ns / 1_000_000_000) as i64, nanos: (ns % 1_000_000_000) as i32 }
}

/// Nanoseconds since the epoch of a timestamp (0 for one before it).
pub fn ts_ns(t: &Timestamp) -> u64 {
    if t.seconds < 0 {
        return 0;
    }
    (t.seconds as u64).saturating_mul(1_000_000_000).saturating_add(t.nanos.max(0) as u64)
}

pub fn dur(d: std::time::Duration) -> PbDuration {
    PbDuration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }
}

/// A protobuf Duration in ns, or None when negative or out of range.
pub fn dur_ns(d: &PbDuration) -> Option<u64> {
    if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 || d.seconds > 1_000_000_000 {
        return None;
    }
    Some(d.seconds as u64 * 1_000_000_000 + d.nanos as u64)
}

/// An amount in currency units as micros (rounded to the nearest).
pub fn to_micros(x: f64) -> i64 {
    (x * 1e6).round() as i64
}

/// The one `&'static str` of a currency code. Events carry their currency by reference with no
/// count to keep, which a shared `Arc` would make every thread touch; currency codes are a
/// small fixed set (ISO 4217, checked in the config), so the strings kept are bounded.
pub fn currency_code(code: &str) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut codes = CODES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = codes.iter().find(|c| **c == code) {
        return c;
    }
    let c: &'static str = Box::leak(code.to_string().into_boxed_str());
    codes.push(c);
    c
}

pub fn money(currency: &str, micros: i64) -> Money {
    Money { currency: currency.to_string(), micros }
}

pub fn bid_id(n: u64) -> String {
    prefixed("b", "", n)
}

/// The event id of a buyer's stream event: `<buyer>:<seq>`.
pub fn stream_event_id(buyer: &str, seq: u64) -> String {
    prefixed(buyer, ":", seq)
}

/// `<a><b><n>` in one allocation.
fn prefixed(a: &str, b: &str, n: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let d = digits.format(n);
    let mut s = String::with_capacity(a.len() + b.len() + d.len());
    s.push_str(a);
    s.push_str(b);
    s.push_str(d);
    s
}

/// The number of a bid id `b<n>`.
pub fn parse_bid_id(s: &str) -> Option<u64> {
    let n = s.strip_prefix('b')?;
    if n.is_empty() || n.len() > 19 || !n.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// An auction id held in the event itself. Ids are at most [`MAX_ID_LEN`] bytes, so an event
/// needs no allocation and no shared count for it (an `Arc` per event had the threads contend
/// for its counter); a longer id, which no auction source makes, is kept on the heap.
#[derive(Clone)]
pub enum AuctionId {
    Inline { len: u8, bytes: [u8; MAX_ID_LEN] },
    Heap(Box<str>),
}

impl AuctionId {
    pub fn new(s: &str) -> AuctionId {
        if s.len() > MAX_ID_LEN {
            return AuctionId::Heap(s.into());
        }
        let mut bytes = [0; MAX_ID_LEN];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        AuctionId::Inline { len: s.len() as u8, bytes }
    }

    pub fn as_str(&self) -> &str {
        match self {
            // the bytes were a whole `str`, so this never falls back
            AuctionId::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..*len as usize]).unwrap_or_default()
            }
            AuctionId::Heap(s) => s,
        }
    }
}

impl std::fmt::Debug for AuctionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// What a stream event says. The frequent ones are held without strings of their own: the
/// auction id and announcement shared with the auction, the bid id as its number
/// ([`StreamEvent::bid`]), amounts as micros. They become prost messages only where one is
/// needed (JSON, the Redis mirror, a remembered answer); the binary encoder writes them as they
/// are, so an event costs no allocation of its own.
#[derive(Debug, Clone)]
pub enum Body {
    Event(Event),
    Started(Arc<AuctionStarted>),
    Accepted {
        auction_id: AuctionId,
        amount: i64,
        currency: &'static str,
    },
    Won {
        auction_id: AuctionId,
        price: i64,
        min_to_win: Option<i64>,
        slot: u32,
        currency: &'static str,
    },
    Lost {
        auction_id: AuctionId,
        reason: i32,
        min_to_win: Option<i64>,
        currency: &'static str,
    },
}

impl From<Event> for Body {
    fn from(e: Event) -> Body {
        Body::Event(e)
    }
}

impl Body {
    /// The event as a prost message (`bid`: the number of its bid).
    pub fn to_event(&self, bid: u64) -> Event {
        let opt = |c: &str, v: Option<i64>| v.map(|v| money(c, v));
        match self {
            Body::Event(e) => e.clone(),
            Body::Started(s) => Event::AuctionStarted(AuctionStarted::clone(s)),
            Body::Accepted { auction_id, amount, currency } => Event::BidAccepted(BidAccepted {
                bid_id: bid_id(bid),
                auction_id: String::from(auction_id.as_str()),
                amount: Some(money(currency, *amount)),
            }),
            Body::Won { auction_id, price, min_to_win, slot, currency } => {
                Event::AuctionWon(AuctionWon {
                    auction_id: String::from(auction_id.as_str()),
                    bid_id: bid_id(bid),
                    price: Some(money(currency, *price)),
                    min_to_win: opt(currency, *min_to_win),
                    slot: *slot,
                })
            }
            Body::Lost { auction_id, reason, min_to_win, currency } => {
                Event::AuctionLost(AuctionLost {
                    auction_id: String::from(auction_id.as_str()),
                    bid_id: bid_id(bid),
                    loss_reason: *reason,
                    min_to_win: opt(currency, *min_to_win),
                })
            }
        }
    }

    pub fn into_event(self, bid: u64) -> Event {
        match self {
            Body::Event(e) => e,
            other => other.to_event(bid),
        }
    }

    pub fn type_bit(&self) -> u16 {
        match self {
            Body::Event(e) => type_bit(e),
            Body::Started(_) => T_AUCTION_STARTED,
            Body::Accepted { .. } => T_BID_ACCEPTED,
            Body::Won { .. } => T_AUCTION_WON,
            Body::Lost { .. } => T_AUCTION_LOST,
        }
    }
}

/// A stream event with what the log needs beside it: the engine ids of its auction and bid.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub event: Body,
    pub request_id: String,
    pub auction: u64,
    pub bid: u64,
}

/// The `BidEvent` a buyer's stream event `seq`, made at `time_ns`, is sent as.
pub fn bid_event(buyer: &str, seq: u64, time_ns: u64, se: StreamEvent) -> BidEvent {
    BidEvent {
        event_id: stream_event_id(buyer, seq),
        seq,
        timestamp: Some(ts(time_ns)),
        request_id: se.request_id,
        event: Some(se.event.into_event(se.bid)),
    }
}

const NONE_I64: i64 = i64::MIN;

/// The log form of a stream event of `buyer` with `seq`: a compact record or a header + blob.
pub fn to_record(buyer: u64, seq: u64, time_ns: u64, se: &StreamEvent) -> (Rec, Option<Vec<u8>>) {
    let mut r = Rec {
        buyer,
        seq,
        time_ns,
        auction: se.auction,
        bid: se.bid,
        amount2: NONE_I64,
        ..Default::default()
    };
    let m = |x: &Option<Money>| x.as_ref().map_or(NONE_I64, |m| m.micros);
    match &se.event {
        Body::Event(e) => match e {
            Event::AuctionStarted(_) => r.kind = K_AUCTION_STARTED,
            Event::BidAccepted(a) => {
                r.kind = K_BID_ACCEPTED;
                r.amount = m(&a.amount);
            }
            Event::AuctionWon(w) => {
                r.kind = K_AUCTION_WON;
                r.amount = m(&w.price);
                r.amount2 = m(&w.min_to_win);
                r.n = w.slot;
            }
            Event::AuctionLost(l) => {
                r.kind = K_AUCTION_LOST;
                r.reason = l.loss_reason.clamp(0, u16::MAX as i32) as u16;
                r.amount2 = m(&l.min_to_win);
            }
            Event::BidUpdate(u) => {
                r.kind = K_BID_UPDATE;
                r.reason = u.status as u16;
                r.amount = m(&u.amount);
            }
            other => {
                r.kind = K_EVENT;
                let ev = BidEvent { event: Some(other.clone()), ..Default::default() };
                return (r, Some(ev.encode_to_vec()));
            }
        },
        Body::Started(_) => r.kind = K_AUCTION_STARTED,
        Body::Accepted { amount, .. } => {
            r.kind = K_BID_ACCEPTED;
            r.amount = *amount;
        }
        Body::Won { price, min_to_win, slot, .. } => {
            r.kind = K_AUCTION_WON;
            r.amount = *price;
            r.amount2 = min_to_win.unwrap_or(NONE_I64);
            r.n = *slot;
        }
        Body::Lost { reason, min_to_win, .. } => {
            r.kind = K_AUCTION_LOST;
            r.reason = (*reason).clamp(0, u16::MAX as i32) as u16;
            r.amount2 = min_to_win.unwrap_or(NONE_I64);
        }
    }
    r.flags = (r.amount2 != NONE_I64) as u8;
    (r, None)
}

/// What replay needs to know about an auction: its id and announcement.
pub trait AuctionLookup {
    fn started(&self, auction: u64) -> Option<AuctionStarted>;
}

/// Rebuilds the event a record was logged from (replay). The request id and a rejection's
/// message are not kept for compact kinds (rejections are blobs, so theirs are).
pub fn from_record(
    buyer: &str,
    e: &Entry,
    currency: &str,
    aux: &dyn AuctionLookup,
) -> Option<BidEvent> {
    let r = &e.rec;
    let started = || aux.started(r.auction);
    let aid = || started().map(|s| s.auction_id).unwrap_or_default();
    let opt = |v: i64| (v != NONE_I64).then(|| money(currency, v));
    let event = match r.kind {
        K_AUCTION_STARTED => Event::AuctionStarted(started()?),
        K_BID_ACCEPTED => Event::BidAccepted(BidAccepted {
            bid_id: bid_id(r.bid),
            auction_id: aid(),
            amount: opt(r.amount),
        }),
        K_AUCTION_WON => Event::AuctionWon(AuctionWon {
            auction_id: aid(),
            bid_id: bid_id(r.bid),
            price: opt(r.amount),
            min_to_win: opt(r.amount2),
            slot: r.n,
        }),
        K_AUCTION_LOST => Event::AuctionLost(AuctionLost {
            auction_id: aid(),
            bid_id: bid_id(r.bid),
            loss_reason: r.reason as i32,
            min_to_win: opt(r.amount2),
        }),
        K_BID_UPDATE => Event::BidUpdate(BidUpdate {
            bid_id: bid_id(r.bid),
            auction_id: aid(),
            status: r.reason as i32,
            amount: opt(r.amount),
        }),
        K_EVENT => BidEvent::decode(e.blob.as_slice()).ok()?.event?,
        _ => return None,
    };
    Some(BidEvent {
        event_id: stream_event_id(buyer, r.seq),
        seq: r.seq,
        timestamp: Some(ts(r.time_ns)),
        request_id: String::new(),
        event: Some(event),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct One(AuctionStarted);
    impl AuctionLookup for One {
        fn started(&self, a: u64) -> Option<AuctionStarted> {
            (a == 5).then(|| self.0.clone())
        }
    }

    #[test]
    fn stream_events_survive_the_log_form() {
        let st =
            AuctionStarted { auction_id: "a-5".into(), expected_bids: 2, ..Default::default() };
        let look = One(st.clone());
        let cases = vec![
            Event::AuctionStarted(st.clone()),
            Event::BidAccepted(BidAccepted {
                bid_id: "b9".into(),
                auction_id: "a-5".into(),
                amount: Some(money("USD", 7)),
            }),
            Event::AuctionWon(AuctionWon {
                auction_id: "a-5".into(),
                bid_id: "b9".into(),
                price: Some(money("USD", 3)),
                min_to_win: Some(money("USD", 4)),
                slot: 0,
            }),
            Event::AuctionLost(AuctionLost {
                auction_id: "a-5".into(),
                bid_id: "b9".into(),
                loss_reason: 102,
                min_to_win: None,
            }),
            Event::BidUpdate(BidUpdate {
                bid_id: "b9".into(),
                auction_id: "a-5".into(),
                status: BidStatus::Cancelled as i32,
                amount: Some(money("USD", 1)),
            }),
            Event::BidRejected(BidRejected {
                reason: RejectReason::BelowFloor as i32,
                message: "x".into(),
                auction_id: "zz".into(),
                bid_id: String::new(),
            }),
        ];
        let aid = AuctionId::new("a-5");
        let usd = currency_code("USD");
        let compact = vec![
            Body::Started(Arc::new(st.clone())),
            Body::Accepted { auction_id: aid.clone(), amount: 7, currency: usd },
            Body::Won {
                auction_id: aid.clone(),
                price: 3,
                min_to_win: Some(4),
                slot: 2,
                currency: usd,
            },
            Body::Won {
                auction_id: aid.clone(),
                price: 0,
                min_to_win: None,
                slot: 0,
                currency: usd,
            },
            Body::Lost { auction_id: aid.clone(), reason: 102, min_to_win: Some(8), currency: usd },
            Body::Lost { auction_id: aid, reason: 2, min_to_win: None, currency: usd },
        ];
        let bodies = cases.into_iter().map(Body::Event).chain(compact);
        for (i, body) in bodies.enumerate() {
            let ev = body.to_event(9);
            let se = StreamEvent { event: body, request_id: "r".into(), auction: 5, bid: 9 };
            let (rec, blob) = to_record(1, i as u64 + 1, 1_500_000_000, &se);
            let rec = Rec::decode(&rec.encode());
            let back =
                from_record("acme", &Entry { rec, blob: blob.unwrap_or_default() }, "USD", &look)
                    .unwrap();
            assert_eq!(back.event, Some(ev));
            assert_eq!(back.seq, i as u64 + 1);
            assert_eq!(back.event_id, format!("acme:{}", i + 1));
        }
    }

    #[test]
    fn ids_are_formatted_like_format() {
        assert_eq!(bid_id(0), "b0");
        assert_eq!(bid_id(u64::MAX), format!("b{}", u64::MAX));
        assert_eq!(stream_event_id("acme", 42), "acme:42");
    }

    #[test]
    fn bid_ids_parse_strictly() {
        assert_eq!(parse_bid_id("b12"), Some(12));
        for bad in ["", "b", "12", "b-1", "b1x", "b99999999999999999999"] {
            assert_eq!(parse_bid_id(bad), None, "{bad}");
        }
    }
}
