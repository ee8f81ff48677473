//! Frames on the wire: a `ClientFrame` from a binary (protobuf) or text (canonical JSON)
//! WebSocket message, and a `ServerFrame` to one. Decoding never panics on any input (fuzzed in
//! `tests/fuzz_codec.rs`).

use rtbcore_proto::prost::Message as _;
use rtbcore_proto::v1::{BidEvent, ClientFrame, ServerFrame};

/// Which subprotocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    Proto,
    Json,
}

/// Why a message did not decode.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeError {
    /// A text message on the binary subprotocol or the reverse (close 1003).
    WrongType,
    /// Bytes that are not a `ClientFrame` (answered with `Error{MALFORMED}`).
    Malformed(String),
}

pub fn decode_binary(wire: Wire, data: &[u8]) -> Result<ClientFrame, DecodeError> {
    match wire {
        Wire::Proto => ClientFrame::decode(data)
            .map_err(|e| DecodeError::Malformed(format!("client frame: {e}"))),
        Wire::Json => Err(DecodeError::WrongType),
    }
}

pub fn decode_text(wire: Wire, text: &str) -> Result<ClientFrame, DecodeError> {
    match wire {
        Wire::Json => serde_json::from_str(text)
            .map_err(|e| DecodeError::Malformed(format!("client frame: {e}"))),
        Wire::Proto => Err(DecodeError::WrongType),
    }
}

/// Appends events to `buf` as they stand in an encoded `ServerFrame` (its repeated field 1).
/// Encoded frames concatenate: the bytes of two frames are the frame holding both's events.
///
/// The bytes are prost's, written in one pass: prost measures each nested message before it
/// writes it, at every level, which made encoding the largest single cost of an event. Here a
/// nested message's length is written after its body (a one-byte slot, widened in the rare
/// case the body is 128 bytes or more). Cases other than the frequent ones go through prost.
pub fn encode_events_into<'a>(evs: impl IntoIterator<Item = &'a BidEvent>, buf: &mut Vec<u8>) {
    for ev in evs {
        pb::nested(buf, 1, |b| pb::event(b, ev));
    }
}

/// A `BidEvent.timestamp` field, encoded once for the events of one emission (they share it).
pub struct Stamp(Vec<u8>);

impl Stamp {
    pub fn new(time_ns: u64) -> Stamp {
        let mut b = Vec::with_capacity(16);
        pb::time(&mut b, 3, &Some(crate::events::ts(time_ns)));
        Stamp(b)
    }
}

/// Appends a buyer's stream event as [`encode_events_into`] appends the `BidEvent` it stands
/// for (event id `<buyer>:<seq>`, `seq`, the timestamp `stamp`, its request id and event),
/// without making that `BidEvent`.
pub fn encode_stream_event_into(
    buf: &mut Vec<u8>,
    buyer: &str,
    seq: u64,
    stamp: &Stamp,
    se: &crate::events::StreamEvent,
) {
    pb::nested(buf, 1, |b| pb::stream_event(b, buyer, seq, &stamp.0, se));
}

/// Protobuf wire format for the event messages (field order and defaults as prost writes them).
mod pb {
    use crate::events::Body;
    use rtbcore_proto::pbjson_types::Timestamp;
    use rtbcore_proto::v1::bid_event::Event;
    use rtbcore_proto::v1::{AuctionStarted, BidEvent, Money};

    const VARINT: u32 = 0;
    const LEN: u32 = 2;

    #[inline]
    fn varint(buf: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        buf.push(v as u8);
    }

    #[inline]
    fn key(buf: &mut Vec<u8>, tag: u32, wire_type: u32) {
        varint(buf, u64::from(tag << 3 | wire_type));
    }

    #[inline]
    fn string(buf: &mut Vec<u8>, tag: u32, s: &str) {
        if !s.is_empty() {
            key(buf, tag, LEN);
            varint(buf, s.len() as u64);
            buf.extend_from_slice(s.as_bytes());
        }
    }

    /// An integer field (int32 and enums sign-extend, as protobuf requires).
    #[inline]
    fn int(buf: &mut Vec<u8>, tag: u32, v: i64) {
        if v != 0 {
            key(buf, tag, VARINT);
            varint(buf, v as u64);
        }
    }

    /// A length-delimited field whose body `f` writes.
    #[inline]
    pub fn nested(buf: &mut Vec<u8>, tag: u32, f: impl FnOnce(&mut Vec<u8>)) {
        key(buf, tag, LEN);
        let at = buf.len();
        buf.push(0);
        f(buf);
        let len = buf.len() - at - 1;
        if len < 0x80 {
            buf[at] = len as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            varint(&mut prefix, len as u64);
            buf.splice(at..at + 1, prefix);
        }
    }

    fn money(buf: &mut Vec<u8>, tag: u32, m: &Option<Money>) {
        if let Some(m) = m {
            money_of(buf, tag, &m.currency, m.micros);
        }
    }

    /// A `Money` field from its parts.
    fn money_of(buf: &mut Vec<u8>, tag: u32, currency: &str, micros: i64) {
        nested(buf, tag, |b| {
            string(b, 1, currency);
            int(b, 2, micros);
        });
    }

    /// A bid id field, `b<n>`.
    fn bid_id(buf: &mut Vec<u8>, tag: u32, n: u64) {
        let mut digits = itoa::Buffer::new();
        let d = digits.format(n);
        key(buf, tag, LEN);
        varint(buf, 1 + d.len() as u64);
        buf.push(b'b');
        buf.extend_from_slice(d.as_bytes());
    }

    pub fn time(buf: &mut Vec<u8>, tag: u32, t: &Option<Timestamp>) {
        if let Some(t) = t {
            nested(buf, tag, |b| {
                int(b, 1, t.seconds);
                int(b, 2, i64::from(t.nanos));
            });
        }
    }

    pub fn event(b: &mut Vec<u8>, ev: &BidEvent) {
        string(b, 1, &ev.event_id);
        int(b, 2, ev.seq as i64);
        time(b, 3, &ev.timestamp);
        string(b, 4, &ev.request_id);
        if let Some(e) = &ev.event {
            case(b, e);
        }
    }

    /// A stream event's `BidEvent` fields, the event id written from its parts.
    pub fn stream_event(
        b: &mut Vec<u8>,
        buyer: &str,
        seq: u64,
        stamp: &[u8],
        se: &crate::events::StreamEvent,
    ) {
        let mut digits = itoa::Buffer::new();
        let d = digits.format(seq);
        key(b, 1, LEN);
        varint(b, (buyer.len() + 1 + d.len()) as u64);
        b.extend_from_slice(buyer.as_bytes());
        b.push(b':');
        b.extend_from_slice(d.as_bytes());
        int(b, 2, seq as i64);
        b.extend_from_slice(stamp);
        string(b, 4, &se.request_id);
        match &se.event {
            Body::Event(e) => case(b, e),
            Body::Started(s) => started(b, s),
            Body::Accepted { auction_id, amount, currency } => nested(b, 13, |b| {
                bid_id(b, 1, se.bid);
                string(b, 2, auction_id.as_str());
                money_of(b, 3, currency, *amount);
            }),
            Body::Won { auction_id, price, min_to_win, slot, currency } => nested(b, 15, |b| {
                string(b, 1, auction_id.as_str());
                bid_id(b, 2, se.bid);
                money_of(b, 3, currency, *price);
                if let Some(m) = min_to_win {
                    money_of(b, 4, currency, *m);
                }
                int(b, 5, i64::from(*slot));
            }),
            Body::Lost { auction_id, reason, min_to_win, currency } => nested(b, 16, |b| {
                string(b, 1, auction_id.as_str());
                bid_id(b, 2, se.bid);
                int(b, 3, i64::from(*reason));
                if let Some(m) = min_to_win {
                    money_of(b, 4, currency, *m);
                }
            }),
        }
    }

    /// The `AuctionStarted` case.
    fn started(b: &mut Vec<u8>, s: &AuctionStarted) {
        nested(b, 12, |b| {
            string(b, 1, &s.auction_id);
            for (k, v) in &s.attributes {
                nested(b, 2, |b| {
                    string(b, 1, k);
                    string(b, 2, v);
                });
            }
            money(b, 3, &s.floor);
            time(b, 4, &s.deadline);
            int(b, 5, i64::from(s.expected_bids));
            int(b, 6, i64::from(s.auction_type));
        })
    }

    /// The `BidEvent.event` field (the oneof case).
    fn case(b: &mut Vec<u8>, e: &Event) {
        match e {
            Event::AuctionStarted(s) => started(b, s),
            Event::BidAccepted(a) => nested(b, 13, |b| {
                string(b, 1, &a.bid_id);
                string(b, 2, &a.auction_id);
                money(b, 3, &a.amount);
            }),
            Event::BidRejected(r) => nested(b, 14, |b| {
                int(b, 1, i64::from(r.reason));
                string(b, 2, &r.message);
                string(b, 3, &r.auction_id);
                string(b, 4, &r.bid_id);
            }),
            Event::AuctionWon(w) => nested(b, 15, |b| {
                string(b, 1, &w.auction_id);
                string(b, 2, &w.bid_id);
                money(b, 3, &w.price);
                money(b, 4, &w.min_to_win);
                int(b, 5, i64::from(w.slot));
            }),
            Event::AuctionLost(l) => nested(b, 16, |b| {
                string(b, 1, &l.auction_id);
                string(b, 2, &l.bid_id);
                int(b, 3, i64::from(l.loss_reason));
                money(b, 4, &l.min_to_win);
            }),
            Event::AuctionOpened(o) => nested(b, 19, |b| {
                string(b, 1, &o.auction_id);
                time(b, 2, &o.deadline);
            }),
            Event::AuctionClosed(c) => nested(b, 20, |b| {
                string(b, 1, &c.auction_id);
                for w in &c.winners {
                    nested(b, 2, |b| {
                        string(b, 1, &w.buyer_id);
                        string(b, 2, &w.bid_id);
                        money(b, 3, &w.price);
                        int(b, 4, i64::from(w.slot));
                    });
                }
                int(b, 3, i64::from(c.n_bids));
                int(b, 4, i64::from(c.closed_by));
            }),
            other => other.encode(b),
        }
    }
}

/// A server frame as bytes (proto) or text (JSON).
pub enum Encoded {
    Binary(Vec<u8>),
    Text(String),
}

pub fn encode(wire: Wire, events: Vec<BidEvent>) -> Encoded {
    let f = ServerFrame { events };
    match wire {
        Wire::Proto => Encoded::Binary(f.encode_to_vec()),
        // serialising generated messages cannot fail (no maps with non-string keys, no floats
        // that JSON cannot hold: non-finite doubles are written as strings by pbjson)
        Wire::Json => {
            Encoded::Text(serde_json::to_string(&f).unwrap_or_else(|_| "{\"events\":[]}".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_events_concatenate_into_one_frame() {
        let ev = |seq| BidEvent { seq, event_id: format!("a:{seq}"), ..Default::default() };
        let mut buf = Vec::new();
        encode_events_into(&[ev(1), ev(2)], &mut buf);
        encode_events_into(&[ev(3)], &mut buf);
        let Encoded::Binary(whole) = encode(Wire::Proto, vec![ev(1), ev(2), ev(3)]) else {
            panic!("binary")
        };
        assert_eq!(buf, whole);
        assert_eq!(ServerFrame::decode(buf.as_slice()).unwrap().events.len(), 3);
    }

    #[test]
    fn wrong_frame_types_are_told_apart_from_garbage() {
        assert_eq!(decode_text(Wire::Proto, "{}"), Err(DecodeError::WrongType));
        assert_eq!(decode_binary(Wire::Json, b"\x0a"), Err(DecodeError::WrongType));
        assert!(matches!(decode_binary(Wire::Proto, b"\x0a\xff"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_text(Wire::Json, "{"), Err(DecodeError::Malformed(_))));
        assert_eq!(decode_text(Wire::Json, "{}").unwrap(), ClientFrame::default());
    }
}
