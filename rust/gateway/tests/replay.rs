//! Durable streams: contiguous seq per buyer, replay after a disconnect with no gap and no
//! duplicate, replay from the last Ack, and the event log surviving a restart.

mod common;

use std::time::Duration;

use common::*;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;

/// Opens `n` auctions that acme's filters match and bids on each, so acme's stream grows by
/// AuctionStarted + BidAccepted + AuctionWon per auction.
async fn traffic(publisher: &mut Client, bidder: &mut Client, tag: &str, n: usize) {
    for i in 0..n {
        publisher.one(open(&format!("{tag}{i}"), 10, 5_000, 1)).await;
        let _ = publisher.event_except("auction_closed").await;
        bidder.one(place(&format!("{tag}{i}"), 100)).await;
    }
}

#[test]
fn a_disconnected_buyer_replays_exactly_what_it_missed_then_goes_live() {
    let dir = TempDir::new("replay");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        // an independent bidding connection of acme, which stays
        let mut acme_bids = Client::login(addr, "key-acme").await;
        traffic(&mut publisher, &mut acme_bids, "a", 3).await;
        let seen = acme.events_until(9).await;
        let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
        acme.one(Msg::Ack(Ack { seq: 6 })).await;
        // a round trip after the Ack: frames are handled in order, so the Ack is in before the
        // drop (a socket dropped with unread data is reset, and a reset can discard the Ack)
        acme.subscribe(Subscribe::default()).await;
        drop(acme);
        // events while away: the subscription is durable, so announcements keep being logged
        traffic(&mut publisher, &mut acme_bids, "b", 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut again = Client::connect(addr, Proto::Json).await;
        let r = again.auth("key-acme").await;
        assert_eq!((r.last_seq, r.acked_seq), (15, 6));
        // no since: from the last ack
        let ack = again.subscribe(Subscribe { replay_missed: true, ..Default::default() }).await;
        assert_eq!((ack.replay_from, ack.replay_to, ack.truncated), (7, 15, false));
        let replayed = again.events_until(9).await;
        let seqs: Vec<u64> = replayed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (7..=15).collect::<Vec<_>>());
        // replayed events equal the live ones (bar the request id, which is not logged)
        for (live, rep) in seen[6..9].iter().zip(&replayed[..3]) {
            assert_eq!(live.event, rep.event);
            assert_eq!(live.event_id, rep.event_id);
            assert_eq!(live.timestamp, rep.timestamp);
        }
        assert!(replayed.iter().any(|e| matches!(&e.event, Some(Event::AuctionStarted(s)) if s.auction_id == "b0" && s.attributes["vertical"] == "news")));
        // then live, continuing at 16
        traffic(&mut publisher, &mut acme_bids, "c", 1).await;
        let live = again.events_until(3).await;
        assert_eq!(live.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![16, 17, 18]);
        // since_seq, filtered by event type
        let mut third = Client::login(addr, "key-acme").await;
        third
            .subscribe(Subscribe { replay_missed: true, since: Some(subscribe::Since::SinceSeq(12)), event_types: vec!["auction_won".into()], ..Default::default() })
            .await;
        let won = third.events_until(2).await;
        assert!(won.iter().all(|e| kind(e) == "auction_won"), "{won:?}");
        let want: Vec<u64> =
            replayed.iter().chain(&live).filter(|e| e.seq > 12 && kind(e) == "auction_won").map(|e| e.seq).collect();
        assert_eq!(won.iter().map(|e| e.seq).collect::<Vec<_>>(), want);
    });
}

#[test]
fn the_log_survives_a_restart_and_seq_continues() {
    let dir = TempDir::new("restart");
    let cfg = config(&dir.0, "");
    let gw = start(cfg.clone());
    let addr = gw.local_addr();
    let before = runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe {
            filters: [("vertical".into(), "news".into())].into(),
            ..Default::default()
        })
        .await;
        traffic(&mut publisher, &mut acme, "r", 2).await;
        acme.events_until(6).await
    });
    drop(gw);
    let gw = start(cfg);
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut acme = Client::connect(addr, Proto::Binary).await;
        let r = acme.auth("key-acme").await;
        assert_eq!(r.last_seq, 6);
        let ack = acme
            .subscribe(Subscribe {
                replay_missed: true,
                since: Some(subscribe::Since::SinceSeq(0)),
                ..Default::default()
            })
            .await;
        assert_eq!((ack.replay_from, ack.replay_to), (1, 6));
        let replayed = acme.events_until(6).await;
        for (a, b) in before.iter().zip(&replayed) {
            assert_eq!((a.seq, &a.event, &a.event_id), (b.seq, &b.event, &b.event_id));
        }
        // the durable subscription came back from the log: a new auction is announced at seq 7
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher.one(open("after", 10, 5_000, 0)).await;
        let ev = acme.event().await;
        assert_eq!((kind(&ev), ev.seq), ("auction_started", 7));
        // auction ids of the previous run stay taken
        publisher.one(open("r0", 10, 5_000, 0)).await;
        let _ = publisher.event().await;
    });
}

#[test]
fn a_durable_subscription_collects_announcements_after_a_restart_before_its_buyer_returns() {
    let dir = TempDir::new("restart-away");
    let cfg = config(&dir.0, "");
    let gw = start(cfg.clone());
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe {
            filters: [("vertical".into(), "news".into())].into(),
            ..Default::default()
        })
        .await;
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher.one(open("before", 10, 5_000, 0)).await;
        assert_eq!(acme.event().await.seq, 1);
    });
    drop(gw);
    let gw = start(cfg);
    let addr = gw.local_addr();
    runtime().block_on(async move {
        // acme is away: the auction is announced to its recovered subscription all the same
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher.one(open("away", 10, 5_000, 0)).await;
        let _ = publisher.event().await;
        let mut acme = Client::connect(addr, Proto::Json).await;
        let r = acme.auth("key-acme").await;
        assert_eq!(r.last_seq, 2);
        let ack = acme
            .subscribe(Subscribe {
                replay_missed: true,
                since: Some(subscribe::Since::SinceSeq(1)),
                ..Default::default()
            })
            .await;
        assert_eq!((ack.replay_from, ack.replay_to), (2, 2));
        let ev = acme.event().await;
        assert!(
            matches!(&ev.event, Some(Event::AuctionStarted(s)) if s.auction_id == "away"),
            "{ev:?}"
        );
        // the event id names the buyer, as it would have live
        assert_eq!((ev.seq, ev.event_id.as_str()), (2, "acme:2"));
    });
}
