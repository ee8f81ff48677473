//! The main flow over real sockets: auth, subscribe, announcement, bids, results, the
//! publisher's AuctionClosed; update, cancel, ttl; both subprotocols; idempotent request ids.

mod common;

use std::time::Duration;

use common::*;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;

#[test]
fn an_auction_from_open_to_results_over_both_subprotocols() {
    let dir = TempDir::new("happy");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        let mut bolt = Client::connect(addr, Proto::Json).await;
        assert!(bolt.auth("key-bolt").await.ok);
        let ack = acme
            .subscribe(Subscribe {
                filters: [("vertical".into(), "news,sports".into())].into(),
                ..Default::default()
            })
            .await;
        assert_eq!(ack.filters["vertical"], "news,sports");
        bolt.subscribe(Subscribe {
            filters: [("min_quality_score".into(), "0.5".into())].into(),
            ..Default::default()
        })
        .await;

        publisher.req("open-1", open("a1", 1_000, 2_000, 2)).await;
        let opened = publisher.event().await;
        assert_eq!(opened.request_id, "open-1");
        assert_eq!(opened.seq, 1);
        assert!(matches!(opened.event, Some(Event::AuctionOpened(ref o)) if o.auction_id == "a1"));

        for c in [&mut acme, &mut bolt] {
            let ev = c.event().await;
            match ev.event {
                Some(Event::AuctionStarted(s)) => {
                    assert_eq!(s.auction_id, "a1");
                    assert_eq!(s.floor.unwrap().micros, 1_000);
                    assert_eq!(s.expected_bids, 2);
                    assert_eq!(s.attributes["vertical"], "news");
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(ev.seq, 1);
        }
        acme.req("r1", place("a1", 5_000)).await;
        let acc = acme.event().await;
        assert_eq!((kind(&acc), acc.seq, acc.request_id.as_str()), ("bid_accepted", 2, "r1"));
        let Some(Event::BidAccepted(a)) = acc.event else { unreachable!() };
        bolt.req("r2", place("a1", 3_000)).await;
        let bacc = bolt.event().await;
        assert_eq!(kind(&bacc), "bid_accepted");
        let Some(Event::BidAccepted(b)) = bacc.event else { unreachable!() };

        // two distinct bidders: closed by ALL_BIDS, cleared second price
        let won = acme.event().await;
        match won.event {
            Some(Event::AuctionWon(w)) => {
                assert_eq!(w.bid_id, a.bid_id);
                assert_eq!(w.price.unwrap().micros, 3_000);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(won.seq, 3);
        match bolt.event().await.event {
            Some(Event::AuctionLost(l)) => {
                assert_eq!(l.bid_id, b.bid_id);
                assert_eq!(l.loss_reason, 102);
                assert_eq!(l.min_to_win.unwrap().micros, 5_001);
            }
            other => panic!("{other:?}"),
        }
        let closed = publisher.event().await;
        assert_eq!(closed.seq, 2);
        match closed.event {
            Some(Event::AuctionClosed(c)) => {
                assert_eq!(c.n_bids, 2);
                assert_eq!(c.closed_by, ClosedBy::AllBids as i32);
                assert_eq!(c.winners[0].buyer_id, "acme");
                assert_eq!(c.winners[0].price.as_ref().unwrap().micros, 3_000);
            }
            other => panic!("{other:?}"),
        }
    });
    let out = gw.next_outcome(Duration::from_secs(2)).unwrap();
    assert_eq!(out.auction_id, "a1");
    assert_eq!(out.winner.unwrap().0, "acme");
    assert_eq!(out.price_micros, 3_000);
    drop(gw);
}

#[test]
fn update_cancel_and_ttl_reach_the_engine() {
    let dir = TempDir::new("update");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        let mut bolt = Client::login(addr, "key-bolt").await;
        let mut cato = Client::login(addr, "key-cato").await;
        publisher.one(open("u1", 100, 400, 0)).await;
        publisher.event().await;
        acme.one(place("u1", 1_000)).await;
        let Some(Event::BidAccepted(a)) = acme.event().await.event else { panic!() };
        bolt.one(place("u1", 2_000)).await;
        let Some(Event::BidAccepted(b)) = bolt.event().await.event else { panic!() };
        // acme raises above bolt; bolt cancels; cato bids with a short ttl
        acme.one(Msg::UpdateBid(UpdateBid {
            bid_id: a.bid_id.clone(),
            amount: usd(4_000),
            ttl: None,
        }))
        .await;
        match acme.event().await.event {
            Some(Event::BidUpdate(u)) => {
                assert_eq!(u.status, BidStatus::Updated as i32);
                assert_eq!(u.amount.unwrap().micros, 4_000);
            }
            other => panic!("{other:?}"),
        }
        bolt.one(Msg::CancelBid(CancelBid { bid_id: b.bid_id.clone() })).await;
        match bolt.event().await.event {
            Some(Event::BidUpdate(u)) => assert_eq!(u.status, BidStatus::Cancelled as i32),
            other => panic!("{other:?}"),
        }
        cato.one(Msg::PlaceBid(PlaceBid {
            auction_id: "u1".into(),
            amount: usd(3_000),
            ttl: Some(rtbcore_gateway::pbjson_types::Duration { seconds: 0, nanos: 50_000_000 }),
            ..Default::default()
        }))
        .await;
        assert_eq!(kind(&cato.event().await), "bid_accepted");
        match cato.event().await.event {
            Some(Event::BidUpdate(u)) => assert_eq!(u.status, BidStatus::Expired as i32),
            other => panic!("{other:?}"),
        }
        // a cancelled bid cannot be updated
        bolt.one(Msg::UpdateBid(UpdateBid {
            bid_id: b.bid_id.clone(),
            amount: usd(9_000),
            ttl: None,
        }))
        .await;
        assert_eq!(reason(&bolt.event().await), RejectReason::UnknownBid);
        // at the deadline: acme alone is live; second price falls to the floor
        match acme.event().await.event {
            Some(Event::AuctionWon(w)) => assert_eq!(w.price.unwrap().micros, 100),
            other => panic!("{other:?}"),
        }
        match publisher.event().await.event {
            Some(Event::AuctionClosed(c)) => {
                assert_eq!(c.n_bids, 1);
                assert_eq!(c.closed_by, ClosedBy::Deadline as i32);
            }
            other => panic!("{other:?}"),
        }
        // neither bolt (cancelled) nor cato (expired) get a result
        assert_eq!(bolt.recv(Duration::from_millis(200)).await, Got::Timeout);
        assert_eq!(cato.recv(Duration::from_millis(50)).await, Got::Timeout);
    });
}

#[test]
fn a_repeated_request_id_is_answered_not_applied_again() {
    let dir = TempDir::new("idem");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        publisher.one(open("i1", 100, 2_000, 0)).await;
        publisher.event().await;
        acme.req("same", place("i1", 1_000)).await;
        let first = acme.event().await;
        acme.req("same", place("i1", 1_000)).await;
        let again = acme.event().await;
        assert_eq!(first, again, "the original answer, same seq");
        // a third, different request id: ALREADY_BID proves the first was applied once only
        acme.req("other", place("i1", 1_000)).await;
        let third = acme.event().await;
        assert_eq!(reason(&third), RejectReason::AlreadyBid);
        assert_eq!(third.seq, first.seq + 1);
        // also within one frame
        acme.send(vec![
            msg("dup", Msg::CancelBid(CancelBid { bid_id: "b999".into() })),
            msg("dup", Msg::CancelBid(CancelBid { bid_id: "b999".into() })),
        ])
        .await;
        let evs = acme.events_until(2).await;
        assert_eq!(evs[0], evs[1]);
    });
    assert!(gw.metrics_text().contains("rtbcore_gateway_idempotent_replays_total 2"));
}

#[test]
fn a_frame_is_a_batch_answered_in_order() {
    let dir = TempDir::new("batch");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let n = 50;
        publisher
            .send(
                (0..n)
                    .map(|i| msg(&format!("o{i}"), open(&format!("k{i}"), 10, 2_000, 0)))
                    .collect(),
            )
            .await;
        publisher.events_until(n).await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.send(
            (0..n)
                .map(|i| msg(&format!("p{i}"), place(&format!("k{i}"), 100 + i as i64)))
                .collect(),
        )
        .await;
        let evs = acme.events_until(n).await;
        for (i, e) in evs.iter().enumerate() {
            assert_eq!(e.request_id, format!("p{i}"));
            assert_eq!(e.seq, i as u64 + 1);
            assert_eq!(kind(e), "bid_accepted");
        }
    });
    let m = gw.metrics_text();
    assert!(m.contains("rtbcore_gateway_engine_records_total 50"), "{m}");
}

#[test]
fn bids_without_request_ids_are_placed_together_and_answered_in_order() {
    let dir = TempDir::new("run");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher
            .send((0..3).map(|i| msg("", open(&format!("k{i}"), 10, 2_000, 0))).collect())
            .await;
        publisher.events_until(3).await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.send(vec![
            msg("", place("k0", 100)),
            msg("", place("nope", 100)),
            msg("r2", place("k1", 100)),
            msg("", place("k1", 200)),
            msg("", place("k2", 5)),
            msg("", Msg::Ack(Ack { seq: 0 })),
            msg("", place("k2", 100)),
        ])
        .await;
        let evs = acme.events_until(6).await;
        let got: Vec<(String, &str, String)> = evs
            .iter()
            .map(|e| {
                let what = match &e.event {
                    Some(Event::BidAccepted(a)) => a.auction_id.clone(),
                    _ => format!("{:?}", reason(e)),
                };
                (e.request_id.clone(), kind(e), what)
            })
            .collect();
        let want = [
            ("", "bid_accepted", "k0"),
            ("", "bid_rejected", "UnknownAuction"),
            ("r2", "bid_accepted", "k1"),
            ("", "bid_rejected", "AlreadyBid"),
            ("", "bid_rejected", "BelowFloor"),
            ("", "bid_accepted", "k2"),
        ];
        let want: Vec<(String, &str, String)> =
            want.iter().map(|(r, k, w)| (r.to_string(), *k, w.to_string())).collect();
        assert_eq!(got, want);
        // a run longer than one hold of the table (128 bids) is answered whole and in order
        let n = 300;
        publisher
            .send((0..n).map(|i| msg("", open(&format!("l{i}"), 10, 2_000, 0))).collect())
            .await;
        publisher.events_until(n).await;
        acme.send((0..n).map(|i| msg("", place(&format!("l{i}"), 100))).collect()).await;
        let ids: Vec<String> = acme
            .events_until(n)
            .await
            .iter()
            .map(|e| match &e.event {
                Some(Event::BidAccepted(a)) => a.auction_id.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, (0..n).map(|i| format!("l{i}")).collect::<Vec<_>>());
    });
}

#[test]
fn frames_read_together_are_answered_in_order_in_fewer_frames() {
    use futures_util::SinkExt;
    use rtbcore_gateway::prost::Message as _;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let dir = TempDir::new("readahead");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let n = 32;
        publisher
            .send((0..n).map(|i| msg("", open(&format!("r{i}"), 10, 5_000, 0))).collect())
            .await;
        publisher.events_until(n).await;
        let mut acme = Client::login(addr, "key-acme").await;
        // n frames of one bid each, written to the socket at once
        for i in 0..n {
            let f = ClientFrame {
                messages: vec![msg(&format!("p{i}"), place(&format!("r{i}"), 100 + i as i64))],
            };
            acme.ws.feed(WsMessage::Binary(f.encode_to_vec().into())).await.unwrap();
        }
        acme.ws.flush().await.unwrap();
        let (mut evs, mut frames) = (Vec::new(), 0);
        while evs.len() < n {
            match acme.recv(Duration::from_secs(3)).await {
                Got::Events(e) => {
                    frames += 1;
                    evs.extend(e);
                }
                other => panic!("wanted {n} answers, got {} then {other:?}", evs.len()),
            }
        }
        for (i, e) in evs.iter().enumerate() {
            assert_eq!((e.request_id.as_str(), e.seq), (format!("p{i}").as_str(), i as u64 + 1));
            assert_eq!(kind(e), "bid_accepted");
        }
        // the frames already read are handled before their answers are written
        assert!(frames < n / 4, "{n} answers came in {frames} frames");
    });
}

#[test]
fn messages_after_auth_in_its_frame_are_processed() {
    let dir = TempDir::new("authframe");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut c = Client::connect(addr, Proto::Json).await;
        c.send(vec![
            msg(
                "a",
                Msg::Auth(Auth { credential: Some(auth::Credential::ApiKey("key-acme".into())) }),
            ),
            msg("s", Msg::Subscribe(Subscribe::default())),
            msg("m", Msg::Metrics(MetricsRequest {})),
        ])
        .await;
        let evs = c.events_until(3).await;
        let kinds: Vec<&str> = evs.iter().map(kind).collect();
        assert_eq!(kinds, vec!["auth_result", "subscription_ack", "metrics_update"]);
        assert_eq!(evs[1].request_id, "s");
    });
}

#[test]
fn a_client_close_is_answered_while_events_flow() {
    let dir = TempDir::new("closeflow");
    let mut cfg = config(&dir.0, "");
    cfg.demo.traffic = 500.0;
    let gw = start(cfg);
    let addr = gw.local_addr();
    runtime().block_on(async move {
        use futures_util::{SinkExt, StreamExt};
        let mut c = Client::connect(addr, Proto::Json).await;
        c.send(vec![
            msg(
                "",
                Msg::Auth(Auth { credential: Some(auth::Credential::ApiKey("key-acme".into())) }),
            ),
            msg("", Msg::Subscribe(Subscribe::default())),
        ])
        .await;
        c.event().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t0 = std::time::Instant::now();
        let bye = tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        };
        c.ws.send(tokio_tungstenite::tungstenite::Message::Close(Some(bye))).await.unwrap();
        let mut code = None;
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), c.ws.next()).await {
            match m {
                Ok(tokio_tungstenite::tungstenite::Message::Close(f)) => {
                    code = f.map(|f| u16::from(f.code));
                    break;
                }
                Ok(_) => continue,
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(code, Some(1000));
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(300)).await;
    });
}
