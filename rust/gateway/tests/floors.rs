//! Learned floors (`[floors]`) on a publisher's auctions over real sockets: the floor a segment
//! learns from its results is the floor `AuctionStarted` announces and the engine enforces.

mod common;

use std::time::Duration;

use common::*;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::{OpenAuction, RejectReason, Subscribe};

const FLOORS: &str = "[floors]\nenabled = true\nsegment_by = [\"vertical\"]\n\
    grid = [0.0, 0.001]\nexplore = 0.5\nexplore_steps = 1\nmin_weight = 1\nseed = 3\n";

/// Opens `msg` and returns the floor its AuctionStarted announced (micros).
async fn announced(
    publisher: &mut Client,
    buyer: &mut Client,
    msg: rtbcore_proto::v1::bid_message::Message,
) -> (String, i64) {
    publisher.one(msg).await;
    assert_eq!(kind(&publisher.event().await), "auction_opened");
    match buyer.event_except("auction_closed").await.event {
        Some(Event::AuctionStarted(s)) => (s.auction_id, s.floor.map_or(0, |m| m.micros)),
        other => panic!("expected AuctionStarted, got {other:?}"),
    }
}

#[test]
fn a_learned_floor_raises_the_announced_and_enforced_floor_after_results() {
    let dir = TempDir::new("floors-ws");
    let mut gw = start(config(&dir.0, FLOORS));
    let addr = gw.local_addr();
    let rt = runtime();
    rt.block_on(async {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        // one bidder at 1500 micros: at floor 0 it pays 0, at floor 1000 it pays 1000, so the
        // segment must learn 0.001
        let mut floors = Vec::new();
        for i in 0..60 {
            let (aid, floor) =
                announced(&mut publisher, &mut acme, open(&format!("n{i}"), 0, 2_000, 1)).await;
            assert!(floor == 0 || floor == 1_000, "{floor}");
            floors.push(floor);
            acme.one(place(&aid, 1_500)).await;
            assert_eq!(kind(&acme.event().await), "bid_accepted");
            match acme.event().await.event {
                Some(Event::AuctionWon(w)) => assert_eq!(w.price.unwrap().micros, floor),
                other => panic!("{other:?}"),
            }
            assert_eq!(kind(&publisher.event().await), "auction_closed");
        }
        // learned: only explored auctions (half of them, half of those a step down) get 0
        let late = &floors[30..];
        let high = late.iter().filter(|f| **f == 1_000).count();
        assert!(high >= 18, "{floors:?}");
        assert!(floors[..2].contains(&0), "{floors:?}");
        let m = gw.metrics_text();
        assert_eq!(metric(&m, "rtbcore_gateway_floor{segment=\"vertical=news\"}"), 0.001);
        assert_eq!(metric(&m, "rtbcore_gateway_floor_segments"), 1.0);
        assert_eq!(metric(&m, "rtbcore_gateway_floor_auctions_learned_total"), 60.0);
        assert!(metric(&m, "rtbcore_gateway_floor_auctions_floored_total") >= high as f64);

        // the engine enforces it: a bid below a learned floor is refused as below the floor
        let mut aid = String::new();
        for i in 0..20 {
            let (a, floor) =
                announced(&mut publisher, &mut acme, open(&format!("b{i}"), 0, 300, 1)).await;
            if floor == 1_000 {
                aid = a;
                break;
            }
        }
        assert!(!aid.is_empty(), "no auction at the learned floor");
        acme.one(place(&aid, 999)).await;
        match acme.event_except("auction_started").await.event {
            Some(Event::BidRejected(r)) => assert_eq!(r.reason, RejectReason::BelowFloor as i32),
            other => panic!("{other:?}"),
        }
        // a higher own floor stays; another segment starts from the initial floor (0)
        let (_, f) = announced(&mut publisher, &mut acme, open("own", 5_000, 300, 1)).await;
        assert_eq!(f, 5_000);
        let mut sports = open("s0", 0, 300, 1);
        if let rtbcore_proto::v1::bid_message::Message::OpenAuction(OpenAuction {
            attributes,
            ..
        }) = &mut sports
        {
            attributes.insert("vertical".into(), "sports".into());
        }
        announced(&mut publisher, &mut acme, sports).await;
        let m = gw.metrics_text();
        assert_eq!(metric(&m, "rtbcore_gateway_floor{segment=\"vertical=sports\"}"), 0.0);
        assert_eq!(metric(&m, "rtbcore_gateway_floor_segments"), 2.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    });
    gw.stop();
}
