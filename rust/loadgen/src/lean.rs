//! The fields of the server's events that the load loops read. A frame decoded into these
//! skips the rest of each event (event ids, timestamps, money) instead of allocating it, and
//! takes auction ids as slices of the received message: the load generator decodes three or
//! more events per bid, and decoding whole messages cost it more CPU than anything else.

use bytes::Bytes;
use rtbcore_proto::v1::{bid_event, BidEvent};

#[derive(Clone, PartialEq, prost::Message)]
pub struct Frame {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<Event>,
}

/// A `BidEvent` with only its case (None: a case the load loops ignore).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(oneof = "Kind", tags = "12, 13, 14, 15, 16, 19, 20")]
    pub kind: Option<Kind>,
}

/// The cases of `BidEvent.event` the load loops act on (same tags as the protocol).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(message, tag = "12")]
    AuctionStarted(Auction),
    #[prost(message, tag = "13")]
    BidAccepted(Nothing),
    #[prost(message, tag = "14")]
    BidRejected(Rejected),
    #[prost(message, tag = "15")]
    AuctionWon(Auction),
    #[prost(message, tag = "16")]
    AuctionLost(Nothing),
    #[prost(message, tag = "19")]
    AuctionOpened(Opened),
    #[prost(message, tag = "20")]
    AuctionClosed(Nothing),
}

/// `auction_id` (field 1 of AuctionStarted and AuctionWon).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Auction {
    #[prost(bytes = "bytes", tag = "1")]
    pub auction_id: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Nothing {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Rejected {
    #[prost(int32, tag = "1")]
    pub reason: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(string, tag = "3")]
    pub auction_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Opened {
    #[prost(bytes = "bytes", tag = "1")]
    pub auction_id: Bytes,
    #[prost(message, optional, tag = "2")]
    pub deadline: Option<Time>,
}

/// google.protobuf.Timestamp
#[derive(Clone, PartialEq, prost::Message)]
pub struct Time {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Time {
    pub fn ns(&self) -> i64 {
        self.seconds * 1_000_000_000 + i64::from(self.nanos)
    }
}

/// The lean form of a whole event (the JSON subprotocol is decoded whole, then narrowed).
pub fn narrow(ev: BidEvent) -> Event {
    use bid_event::Event as E;
    let id = |s: String| Auction { auction_id: Bytes::from(s) };
    let kind = match ev.event {
        Some(E::AuctionStarted(a)) => Some(Kind::AuctionStarted(id(a.auction_id))),
        Some(E::BidAccepted(_)) => Some(Kind::BidAccepted(Nothing {})),
        Some(E::BidRejected(r)) => Some(Kind::BidRejected(Rejected {
            reason: r.reason,
            message: r.message,
            auction_id: r.auction_id,
        })),
        Some(E::AuctionWon(w)) => Some(Kind::AuctionWon(id(w.auction_id))),
        Some(E::AuctionLost(_)) => Some(Kind::AuctionLost(Nothing {})),
        Some(E::AuctionOpened(o)) => Some(Kind::AuctionOpened(Opened {
            auction_id: Bytes::from(o.auction_id),
            deadline: o.deadline.map(|t| Time { seconds: t.seconds, nanos: t.nanos }),
        })),
        Some(E::AuctionClosed(_)) => Some(Kind::AuctionClosed(Nothing {})),
        _ => None,
    };
    Event { kind }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;
    use rtbcore_proto::pbjson_types::Timestamp;
    use rtbcore_proto::v1::*;

    fn full(e: bid_event::Event) -> BidEvent {
        BidEvent {
            event_id: "acme:7".into(),
            seq: 7,
            timestamp: Some(Timestamp { seconds: 1, nanos: 2 }),
            request_id: "r1".into(),
            event: Some(e),
        }
    }

    #[test]
    fn a_frame_decodes_to_the_same_fields_as_the_whole_messages() {
        use bid_event::Event as E;
        let usd = |m| Some(Money { currency: "USD".into(), micros: m });
        let events = vec![
            full(E::AuthResult(AuthResult { ok: true, ..Default::default() })),
            full(E::AuctionStarted(AuctionStarted {
                auction_id: "lg1-42".into(),
                attributes: [("geo".to_string(), "FR".to_string())].into(),
                floor: usd(10),
                ..Default::default()
            })),
            full(E::BidAccepted(BidAccepted {
                bid_id: "b9".into(),
                auction_id: "lg1-42".into(),
                amount: usd(5),
            })),
            full(E::BidRejected(BidRejected {
                reason: RejectReason::BelowFloor as i32,
                message: "below the floor".into(),
                auction_id: "lg1-43".into(),
                bid_id: String::new(),
            })),
            full(E::AuctionWon(AuctionWon {
                auction_id: "lg1-42".into(),
                bid_id: "b9".into(),
                price: usd(4),
                min_to_win: usd(3),
                slot: 0,
            })),
            full(E::AuctionLost(AuctionLost { auction_id: "lg1-44".into(), ..Default::default() })),
            full(E::AuctionOpened(AuctionOpened {
                auction_id: "lg1-45".into(),
                deadline: Some(Timestamp { seconds: 1_700_000_000, nanos: 5 }),
            })),
            full(E::AuctionClosed(AuctionClosed {
                auction_id: "lg1-45".into(),
                n_bids: 3,
                ..Default::default()
            })),
        ];
        let bytes = Bytes::from(ServerFrame { events: events.clone() }.encode_to_vec());
        let lean = Frame::decode(bytes).unwrap().events;
        let narrowed: Vec<Event> = events.into_iter().map(narrow).collect();
        assert_eq!(lean, narrowed);
        assert_eq!(lean[0].kind, None);
        let Some(Kind::AuctionOpened(o)) = &lean[6].kind else { panic!("{:?}", lean[6]) };
        assert_eq!(
            (&o.auction_id[..], o.deadline.as_ref().unwrap().ns()),
            (&b"lg1-45"[..], 1_700_000_000_000_000_005)
        );
    }
}
