//! Every bad input gets a BidRejected / Error event or a documented close code, is counted in
//! /metrics, and leaves the server serving.

mod common;

use std::time::Duration;

use common::*;
use rtbcore_gateway::auth::sign_token;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;
use tokio_tungstenite::tungstenite::Message;

#[test]
fn bid_requests_that_break_a_rule_are_rejected_with_their_reason() {
    let dir = TempDir::new("bad");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher.one(open("a1", 1_000, 3_000, 0)).await;
        publisher.event().await;
        publisher.one(open("short", 10, 20, 0)).await;
        publisher.event().await;
        let mut acme = Client::login(addr, "key-acme").await;
        let mut bolt = Client::login(addr, "key-bolt").await;
        let bid = |a: &str, m: Option<Money>| {
            Msg::PlaceBid(PlaceBid { auction_id: a.into(), amount: m, ..Default::default() })
        };
        let cases: Vec<(Msg, RejectReason)> = vec![
            (place("nope", 5_000), RejectReason::UnknownAuction),
            (place("a1", 0), RejectReason::InvalidAmount),
            (place("a1", -5), RejectReason::InvalidAmount),
            (bid("a1", None), RejectReason::InvalidAmount),
            (place("a1", i64::MAX), RejectReason::InvalidAmount),
            (
                bid("a1", Some(Money { currency: "EUR".into(), micros: 5_000 })),
                RejectReason::CurrencyMismatch,
            ),
            (place("a1", 999), RejectReason::BelowFloor),
            (
                Msg::PlaceBid(PlaceBid {
                    auction_id: "a1".into(),
                    amount: usd(5_000),
                    buyer_id: "bolt".into(),
                    ..Default::default()
                }),
                RejectReason::Forbidden,
            ),
            (
                Msg::PlaceBid(PlaceBid {
                    auction_id: "a1".into(),
                    amount: usd(5_000),
                    ttl: Some(rtbcore_gateway::pbjson_types::Duration { seconds: -1, nanos: 0 }),
                    ..Default::default()
                }),
                RejectReason::InvalidField,
            ),
            (
                Msg::UpdateBid(UpdateBid { bid_id: "b77777".into(), amount: usd(5), ttl: None }),
                RejectReason::UnknownBid,
            ),
            (Msg::CancelBid(CancelBid { bid_id: "not-a-bid".into() }), RejectReason::UnknownBid),
            (open("x", 1, 10, 0), RejectReason::Forbidden),
            (Msg::Auth(Auth::default()), RejectReason::InvalidField),
        ];
        for (i, (m, want)) in cases.into_iter().enumerate() {
            let rid = format!("c{i}");
            acme.req(&rid, m).await;
            let ev = acme.event().await;
            assert_eq!(ev.request_id, rid);
            assert_eq!(reason(&ev), want, "case {i}: {ev:?}");
            if let Some(Event::BidRejected(r)) = &ev.event {
                assert!(!r.message.is_empty());
            }
        }
        // a live bid: a second place is ALREADY_BID; another buyer may not touch it
        acme.one(place("a1", 5_000)).await;
        let Some(Event::BidAccepted(a)) = acme.event().await.event else { panic!() };
        acme.one(place("a1", 6_000)).await;
        assert_eq!(reason(&acme.event().await), RejectReason::AlreadyBid);
        bolt.one(Msg::UpdateBid(UpdateBid {
            bid_id: a.bid_id.clone(),
            amount: usd(9_000),
            ttl: None,
        }))
        .await;
        assert_eq!(reason(&bolt.event().await), RejectReason::Forbidden);
        bolt.one(Msg::CancelBid(CancelBid { bid_id: a.bid_id.clone() })).await;
        assert_eq!(reason(&bolt.event().await), RejectReason::Forbidden);
        // a closed auction
        tokio::time::sleep(Duration::from_millis(100)).await;
        acme.one(place("short", 5_000)).await;
        assert_eq!(reason(&acme.event().await), RejectReason::AuctionClosed);
        // an empty message
        acme.send(vec![BidMessage { request_id: "e".into(), message: None }]).await;
        assert_eq!(reason(&acme.event().await), RejectReason::UnknownMessage);
        // a duplicate auction id, and a bad one
        publisher.one(open("a1", 1, 100, 0)).await;
        assert_eq!(
            reason(&publisher.event_except("auction_closed").await),
            RejectReason::DuplicateAuction
        );
        publisher.one(open("short", 1, 100, 0)).await;
        assert_eq!(
            reason(&publisher.event_except("auction_closed").await),
            RejectReason::DuplicateAuction
        );
        publisher.one(open("bad id", 1, 100, 0)).await;
        assert_eq!(
            reason(&publisher.event_except("auction_closed").await),
            RejectReason::InvalidField
        );
        // a scope the key lacks: bolt has no "metrics"
        bolt.one(Msg::Metrics(MetricsRequest {})).await;
        assert_eq!(reason(&bolt.event().await), RejectReason::Forbidden);
        let mut nosub = Client::login(addr, "key-nosub").await;
        nosub.one(Msg::Subscribe(Subscribe::default())).await;
        assert_eq!(reason(&nosub.event().await), RejectReason::Forbidden);
        // a bad filter
        acme.one(Msg::Subscribe(Subscribe {
            filters: [("min_q".into(), "high".into())].into(),
            ..Default::default()
        }))
        .await;
        assert_eq!(reason(&acme.event().await), RejectReason::InvalidField);
        // still serving: the metrics answer
        acme.one(Msg::Metrics(MetricsRequest {})).await;
        match acme.event().await.event {
            Some(Event::MetricsUpdate(m)) => assert!(m.metrics["bids_rejected"] >= 10.0, "{m:?}"),
            other => panic!("{other:?}"),
        }
    });
    let m = gw.metrics_text();
    for r in [
        "INVALID_AMOUNT\"} 4",
        "UNKNOWN_AUCTION\"} 1",
        "BELOW_FLOOR\"} 1",
        "CURRENCY_MISMATCH\"} 1",
        "ALREADY_BID\"} 1",
    ] {
        assert!(
            m.contains(&format!("rtbcore_gateway_rejections_total{{reason=\"{r}")),
            "{r} in\n{m}"
        );
    }
}

#[test]
fn frames_that_do_not_decode_or_are_too_big() {
    let dir = TempDir::new("frames");
    let gw =
        start(config_with(&dir.0, "max_frame_bytes = 4096\nmax_messages_per_frame = 8", "", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        // before auth: NOT_AUTHENTICATED, seq 0, and the connection stays usable
        let mut c = Client::connect(addr, Proto::Binary).await;
        c.req("early", place("a", 1)).await;
        let ev = c.event().await;
        assert_eq!(
            (reason(&ev), ev.seq, ev.request_id.as_str()),
            (RejectReason::NotAuthenticated, 0, "early")
        );
        assert!(c.auth("key-acme").await.ok);
        // malformed protobuf: Error{MALFORMED}, still open
        c.send_raw(Message::Binary(vec![0x0a, 0xff, 0xff, 0x01].into())).await;
        let ev = c.event().await;
        assert_eq!((reason(&ev), ev.seq), (RejectReason::Malformed, 0));
        // too many messages in one frame
        c.send(
            (0..9)
                .map(|_| BidMessage { request_id: String::new(), message: Some(place("a", 1)) })
                .collect(),
        )
        .await;
        assert_eq!(reason(&c.event().await), RejectReason::TooManyMessages);
        c.one(Msg::Ack(Ack { seq: 0 })).await;
        // a frame over max_frame_bytes: close 1009
        c.send_raw(Message::Binary(vec![0u8; 10_000].into())).await;
        assert_eq!(c.close_code().await, Some(1009));

        // a text frame on the binary subprotocol: 1003
        let mut c = Client::login(addr, "key-acme").await;
        c.send_raw(Message::Text("{}".into())).await;
        assert_eq!(c.close_code().await, Some(1003));

        // JSON: NaN micros and garbage are MALFORMED; a binary frame is 1003
        let mut j = Client::connect(addr, Proto::Json).await;
        assert!(j.auth("key-acme").await.ok);
        j.send_raw(Message::Text(
            r#"{"messages":[{"placeBid":{"auctionId":"a","amount":{"micros":"NaN"}}}]}"#.into(),
        ))
        .await;
        assert_eq!(reason(&j.event().await), RejectReason::Malformed);
        j.send_raw(Message::Text("not json".into())).await;
        assert_eq!(reason(&j.event().await), RejectReason::Malformed);
        j.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
        assert_eq!(j.close_code().await, Some(1003));

        // no subprotocol asked: binary protobuf
        let mut d = Client::connect(addr, Proto::None).await;
        assert!(d.auth("key-acme").await.ok);
    });
    let m = gw.metrics_text();
    assert!(m.contains("rtbcore_gateway_closes_total{code=\"1009\"} 1"), "{m}");
    assert!(m.contains("rtbcore_gateway_closes_total{code=\"1003\"} 2"), "{m}");
    assert!(m.contains("reason=\"MALFORMED\"} 3"), "{m}");
}

#[test]
fn authentication_failures_close_with_their_codes() {
    let dir = TempDir::new("auth");
    let gw = start(config_with(&dir.0, "failed_auth_limit = 3", "auth_timeout_s = 0.3", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        // a token signed with the exchange's secret works; a forged or expired one does not
        let mut c = Client::connect(addr, Proto::Binary).await;
        let t = sign_token("tok-secret", "tokbuyer", &["bid", "subscribe"], 4_000_000_000);
        c.one(Msg::Auth(Auth { credential: Some(auth::Credential::Token(t)) })).await;
        match c.event().await.event {
            Some(Event::AuthResult(r)) => {
                assert!(r.ok);
                assert_eq!(r.buyer_id, "tokbuyer");
                assert_eq!(r.scopes, vec!["bid", "subscribe"]);
                assert!(r.heartbeat_interval.is_some());
            }
            other => panic!("{other:?}"),
        }
        // no Auth in time: 4002
        let mut c = Client::connect(addr, Proto::Binary).await;
        assert_eq!(c.close_code().await, Some(4002));
        // wrong credentials: AuthResult{ok: false} then 4001, three times; then 4003
        for cred in [
            auth::Credential::ApiKey("wrong".into()),
            auth::Credential::Token(sign_token("other-secret", "x", &["bid"], 4_000_000_000)),
            auth::Credential::Token(sign_token("tok-secret", "x", &["bid"], 1)),
        ] {
            let mut c = Client::connect(addr, Proto::Binary).await;
            c.one(Msg::Auth(Auth { credential: Some(cred) })).await;
            match c.event().await.event {
                Some(Event::AuthResult(r)) => assert!(!r.ok && !r.message.is_empty()),
                other => panic!("{other:?}"),
            }
            assert_eq!(c.close_code().await, Some(4001));
        }
        let mut c = Client::connect(addr, Proto::Binary).await;
        assert_eq!(c.close_code().await, Some(4003));
    });
    let m = gw.metrics_text();
    assert!(m.contains("rtbcore_gateway_closes_total{code=\"4001\"} 3"), "{m}");
    assert!(m.contains("rtbcore_gateway_closes_total{code=\"4002\"} 1"), "{m}");
    assert!(m.contains("rtbcore_gateway_closes_total{code=\"4003\"} 1"), "{m}");
    assert!(m.contains("rtbcore_gateway_auth_failed_total 3"), "{m}");
}
