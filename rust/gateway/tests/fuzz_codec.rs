//! Fuzzing of the frame decoder and the JSON mapping with a stable harness (proptest): random
//! bytes, mutated valid frames (bit flips, truncations, splices) and random JSON-shaped text
//! must decode to a frame or an error, never panic; what decodes re-encodes and decodes to the
//! same frame; a decoded frame's messages pass through the event log's record form.
//!
//! A longer run: `CODEC_FUZZ_CASES=200000 cargo test --release -p rtbcore-gateway --test fuzz_codec`.

use proptest::prelude::*;
use rtbcore_gateway::codec::{
    decode_binary, decode_text, encode, encode_events_into, encode_stream_event_into, Encoded, Wire,
};
use rtbcore_gateway::prost::Message as _;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;

fn cases() -> u32 {
    std::env::var("CODEC_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2000)
}

fn sample_frame(micros: i64, n: usize, id: String) -> ClientFrame {
    let mut messages = Vec::new();
    for i in 0..n {
        let m = match i % 6 {
            0 => Msg::PlaceBid(PlaceBid {
                auction_id: id.clone(),
                amount: Some(Money { currency: "USD".into(), micros }),
                ttl: Some(rtbcore_gateway::pbjson_types::Duration { seconds: 1, nanos: 5 }),
                ..Default::default()
            }),
            1 => Msg::UpdateBid(UpdateBid {
                bid_id: format!("b{i}"),
                amount: Some(Money { currency: String::new(), micros }),
                ttl: None,
            }),
            2 => Msg::CancelBid(CancelBid { bid_id: id.clone() }),
            3 => Msg::Subscribe(Subscribe {
                event_types: vec!["auction_won".into()],
                filters: [(id.clone(), "x".into())].into(),
                replay_missed: true,
                since: Some(subscribe::Since::SinceSeq(micros as u64)),
            }),
            4 => Msg::OpenAuction(OpenAuction {
                auction_id: id.clone(),
                expected_bids: i as u32,
                ..Default::default()
            }),
            _ => Msg::Ack(Ack { seq: micros as u64 }),
        };
        messages.push(BidMessage { request_id: format!("r{i}"), message: Some(m) });
    }
    ClientFrame { messages }
}

fn duration_ok(d: &Option<rtbcore_gateway::pbjson_types::Duration>) -> bool {
    d.as_ref().is_none_or(|d| {
        d.nanos.abs() < 1_000_000_000
            && (d.seconds == 0 || d.nanos == 0 || (d.seconds > 0) == (d.nanos > 0))
            && d.seconds.abs() <= 315_576_000_000
    })
}

/// Durations and timestamps within protobuf's ranges: the JSON mapping only has text for
/// those (pbjson writes an out-of-range one as text it cannot read back; the gateway rejects
/// such values as INVALID_FIELD, it never re-serialises client frames).
fn in_range(f: &ClientFrame) -> bool {
    f.messages.iter().all(|m| match &m.message {
        Some(Msg::PlaceBid(p)) => duration_ok(&p.ttl),
        Some(Msg::UpdateBid(u)) => duration_ok(&u.ttl),
        Some(Msg::OpenAuction(o)) => duration_ok(&o.tmax),
        Some(Msg::Subscribe(s)) => match &s.since {
            Some(subscribe::Since::SinceTime(t)) => {
                (0..1_000_000_000).contains(&t.nanos)
                    && (-62_135_596_800..=253_402_300_799).contains(&t.seconds)
            }
            _ => true,
        },
        _ => true,
    })
}

fn round_trips(f: &ClientFrame) {
    let bytes = f.encode_to_vec();
    assert_eq!(&decode_binary(Wire::Proto, &bytes).unwrap(), f);
    if let Ok(text) = serde_json::to_string(f) {
        match decode_text(Wire::Json, &text) {
            Ok(back) => assert_eq!(&back, f),
            Err(e) => assert!(!in_range(f), "{e:?} for {text}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(f) = decode_binary(Wire::Proto, &data) {
            round_trips(&f);
        }
        if let Ok(s) = std::str::from_utf8(&data) {
            if let Ok(f) = decode_text(Wire::Json, s) {
                round_trips(&f);
            }
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        micros in any::<i64>(),
        n in 1usize..12,
        id in "[ -~]{0,70}",
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let f = sample_frame(micros, n, id);
        round_trips(&f);
        let mut bytes = f.encode_to_vec();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let cut_at = cut.index(bytes.len() + 1);
        for data in [&bytes[..], &bytes[..cut_at]] {
            if let Ok(f) = decode_binary(Wire::Proto, data) {
                round_trips(&f);
            }
        }
        let mut text = serde_json::to_string(&f).unwrap().into_bytes();
        for (at, x) in &flips {
            let i = at.index(text.len());
            text[i] = 0x20 + (x % 0x5f);
        }
        let cut_at = cut.index(text.len() + 1);
        for data in [&text[..], &text[..cut_at]] {
            if let Ok(s) = std::str::from_utf8(data) {
                if let Ok(f) = decode_text(Wire::Json, s) {
                    round_trips(&f);
                }
            }
        }
    }

    #[test]
    fn json_shaped_text_never_panics(
        key in prop::sample::select(vec!["placeBid", "updateBid", "subscribe", "openAuction", "auth", "ack", "metrics", "x"]),
        field in prop::sample::select(vec!["micros", "auctionId", "ttl", "sinceSeq", "sinceTime", "filters", "tmax", "seq", "apiKey"]),
        value in prop::sample::select(vec!["\"NaN\"", "1e400", "-1", "\"9223372036854775808\"", "null", "[]", "{}", "\"1.5s\"", "\"2024-13-01T00:00:00Z\"", "true", "\"\\u0000\""]),
    ) {
        let text = format!(r#"{{"messages":[{{"requestId":"r","{key}":{{"{field}":{value},"amount":{{"{field}":{value}}}}}}}]}}"#);
        if let Ok(f) = decode_text(Wire::Json, &text) {
            round_trips(&f);
        }
    }
}

#[test]
fn server_frames_encode_in_both_wires() {
    let ev = BidEvent {
        event_id: "c1:1".into(),
        seq: 0,
        timestamp: None,
        request_id: "r".into(),
        event: None,
    };
    match encode(Wire::Proto, vec![ev.clone()]) {
        Encoded::Binary(b) => {
            assert_eq!(ServerFrame::decode(&b[..]).unwrap().events, vec![ev.clone()])
        }
        Encoded::Text(_) => panic!(),
    }
    match encode(Wire::Json, vec![ev.clone()]) {
        Encoded::Text(t) => {
            assert_eq!(serde_json::from_str::<ServerFrame>(&t).unwrap().events, vec![ev])
        }
        Encoded::Binary(_) => panic!(),
    }
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9:-]{0,12}",
        1 => Just(String::new()),
        1 => "\\PC{100,300}",
    ]
}

fn money() -> impl Strategy<Value = Option<Money>> {
    proptest::option::of(
        (text(), any::<i64>()).prop_map(|(currency, micros)| Money { currency, micros }),
    )
}

fn time() -> impl Strategy<Value = Option<rtbcore_gateway::pbjson_types::Timestamp>> {
    proptest::option::of(
        (any::<i64>(), any::<i32>()).prop_map(|(seconds, nanos)| {
            rtbcore_gateway::pbjson_types::Timestamp { seconds, nanos }
        }),
    )
}

/// Every case of `BidEvent.event`: those the gateway encodes itself and some prost encodes.
fn event_case() -> impl Strategy<Value = bid_event::Event> {
    use bid_event::Event as E;
    prop_oneof![
        (
            text(),
            proptest::collection::hash_map(text(), text(), 0..64),
            money(),
            time(),
            any::<u32>(),
            any::<i32>()
        )
            .prop_map(
                |(auction_id, attributes, floor, deadline, expected_bids, auction_type)| {
                    E::AuctionStarted(AuctionStarted {
                        auction_id,
                        attributes,
                        floor,
                        deadline,
                        expected_bids,
                        auction_type,
                    })
                }
            ),
        (text(), text(), money()).prop_map(|(bid_id, auction_id, amount)| {
            E::BidAccepted(BidAccepted { bid_id, auction_id, amount })
        }),
        (any::<i32>(), text(), text(), text()).prop_map(|(reason, message, auction_id, bid_id)| {
            E::BidRejected(BidRejected { reason, message, auction_id, bid_id })
        }),
        (text(), text(), money(), money(), any::<u32>()).prop_map(
            |(auction_id, bid_id, price, min_to_win, slot)| {
                E::AuctionWon(AuctionWon { auction_id, bid_id, price, min_to_win, slot })
            }
        ),
        (text(), text(), any::<i32>(), money()).prop_map(
            |(auction_id, bid_id, loss_reason, min_to_win)| {
                E::AuctionLost(AuctionLost { auction_id, bid_id, loss_reason, min_to_win })
            }
        ),
        (text(), time()).prop_map(|(auction_id, deadline)| E::AuctionOpened(AuctionOpened {
            auction_id,
            deadline
        })),
        (
            text(),
            proptest::collection::vec(
                (text(), text(), money(), any::<u32>()).prop_map(
                    |(buyer_id, bid_id, price, slot)| Winner { buyer_id, bid_id, price, slot }
                ),
                0..4
            ),
            any::<u32>(),
            any::<i32>()
        )
            .prop_map(|(auction_id, winners, n_bids, closed_by)| {
                E::AuctionClosed(AuctionClosed { auction_id, winners, n_bids, closed_by })
            }),
        (text(), text(), any::<i32>(), money()).prop_map(|(bid_id, auction_id, status, amount)| {
            E::BidUpdate(BidUpdate { bid_id, auction_id, status, amount })
        }),
        (any::<bool>(), text(), any::<u64>()).prop_map(|(ok, buyer_id, last_seq)| {
            E::AuthResult(AuthResult { ok, buyer_id, last_seq, ..Default::default() })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The gateway's own event encoding is byte for byte prost's.
    #[test]
    fn events_encode_exactly_as_prost_does(
        evs in proptest::collection::vec(
            (text(), any::<u64>(), time(), text(), proptest::option::of(event_case())).prop_map(
                |(event_id, seq, timestamp, request_id, event)| BidEvent { event_id, seq, timestamp, request_id, event },
            ),
            0..4,
        )
    ) {
        let mut ours = Vec::new();
        encode_events_into(&evs, &mut ours);
        let theirs = ServerFrame { events: evs.clone() }.encode_to_vec();
        prop_assert_eq!(&ours, &theirs);
        prop_assert_eq!(ServerFrame::decode(&ours[..]).unwrap().events, evs);
    }
}

/// The events held without strings of their own, with any bid number.
fn compact_body() -> impl Strategy<Value = rtbcore_gateway::events::Body> {
    use rtbcore_gateway::events::Body;
    use std::sync::Arc;
    let id = || text().prop_map(|s| rtbcore_gateway::events::AuctionId::new(&s));
    let cur = || text().prop_map(|s| rtbcore_gateway::events::currency_code(&s));
    prop_oneof![
        (
            text(),
            proptest::collection::hash_map(text(), text(), 0..8),
            money(),
            time(),
            any::<u32>()
        )
            .prop_map(|(auction_id, attributes, floor, deadline, expected_bids)| {
                Body::Started(Arc::new(AuctionStarted {
                    auction_id,
                    attributes,
                    floor,
                    deadline,
                    expected_bids,
                    auction_type: 0,
                }))
            }),
        (id(), any::<i64>(), cur()).prop_map(|(auction_id, amount, currency)| Body::Accepted {
            auction_id,
            amount,
            currency
        }),
        (id(), any::<i64>(), proptest::option::of(any::<i64>()), any::<u32>(), cur()).prop_map(
            |(auction_id, price, min_to_win, slot, currency)| Body::Won {
                auction_id,
                price,
                min_to_win,
                slot,
                currency
            }
        ),
        (id(), any::<i32>(), proptest::option::of(any::<i64>()), cur()).prop_map(
            |(auction_id, reason, min_to_win, currency)| Body::Lost {
                auction_id,
                reason,
                min_to_win,
                currency
            }
        ),
    ]
}

proptest! {
    // both kinds of body, each as often as a test of its own would draw it
    #![proptest_config(ProptestConfig { cases: 2 * cases(), ..ProptestConfig::default() })]

    /// A stream event encoded straight from its parts is the `BidEvent` it stands for, whether
    /// it holds a prost message or one of the forms without strings of their own.
    #[test]
    fn stream_events_encode_as_their_bid_events(
        buyer in "[a-z0-9_.-]{1,64}",
        seq in any::<u64>(),
        time_ns in any::<u64>(),
        request_id in text(),
        body in prop_oneof![event_case().prop_map(Into::into), compact_body()],
        bid in any::<u64>(),
    ) {
        use rtbcore_gateway::codec::Stamp;
        use rtbcore_gateway::events::{bid_event, StreamEvent};
        let se = StreamEvent { event: body, request_id, auction: 1, bid };
        let mut ours = Vec::new();
        encode_stream_event_into(&mut ours, &buyer, seq, &Stamp::new(time_ns), &se);
        let mut theirs = Vec::new();
        encode_events_into(&[bid_event(&buyer, seq, time_ns, se)], &mut theirs);
        prop_assert_eq!(ours, theirs);
    }
}
