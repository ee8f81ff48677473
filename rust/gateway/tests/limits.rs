//! Connection limits: rate limit, heartbeat, slow consumer, connection caps; the shutdown
//! drain; SSE with Last-Event-ID resume; /metrics, /healthz, /readyz.

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use rtbcore_gateway::prost::Message as _;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[test]
fn the_rate_limit_rejects_what_is_over_the_bucket() {
    let dir = TempDir::new("rate");
    let gw = start(config_with(&dir.0, "rate_limit_per_s = 1\nrate_limit_burst = 3", "", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut c = Client::login(addr, "key-acme").await;
        c.send(
            (0..5)
                .map(|_| BidMessage { request_id: String::new(), message: Some(place("z", 5)) })
                .collect(),
        )
        .await;
        let evs = c.events_until(5).await;
        let reasons: Vec<RejectReason> = evs.iter().map(reason).collect();
        use RejectReason::*;
        assert_eq!(
            reasons,
            vec![UnknownAuction, UnknownAuction, UnknownAuction, RateLimited, RateLimited]
        );
    });
    assert!(gw.metrics_text().contains("reason=\"RATE_LIMITED\"} 2"));
}

#[test]
fn a_client_that_does_not_answer_pings_is_closed_4009() {
    let dir = TempDir::new("hb");
    let gw =
        start(config_with(&dir.0, "heartbeat_interval_s = 0.1\nheartbeat_timeout_s = 0.3", "", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut c = Client::login(addr, "key-acme").await;
        // a reading client answers pings (tungstenite does): it stays open
        assert_eq!(c.recv(Duration::from_millis(600)).await, Got::Timeout);
        // not reading means not answering
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(c.close_code().await, Some(4009));
    });
    assert!(gw.metrics_text().contains("rtbcore_gateway_closes_total{code=\"4009\"} 1"));
}

#[test]
fn a_slow_consumer_is_closed_4008_and_resumes_by_replay() {
    let dir = TempDir::new("slow");
    let mut cfg = config_with(
        &dir.0,
        "outbound_queue_frames = 4\noutbound_queue_events = 256\nslow_consumer_timeout_s = 0.2",
        "",
        "max_tmax_ms = 600000",
    );
    // room in the log for every announcement (about 50 records each), so that all replay
    cfg.events.max_records = 1 << 20;
    let gw = start(cfg);
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut slow = Client::login(addr, "key-acme").await;
        slow.subscribe(Subscribe::default()).await;
        let mut publisher = Client::login(addr, "key-pub").await;
        let big: String = "x".repeat(3_000);
        // announcements reach a connection in batches (one per publisher frame), so it takes
        // more than the socket buffers hold for a client that does not read to fall behind
        let n = 3_000;
        for batch in 0..(n / 100) {
            let msgs = (0..100)
                .map(|i| {
                    let mut o = open(&format!("s{batch}-{i}"), 10, 60_000, 0);
                    if let Msg::OpenAuction(ref mut o) = o {
                        o.attributes.insert("pad".into(), big.clone());
                    }
                    BidMessage { request_id: String::new(), message: Some(o) }
                })
                .collect();
            publisher.send(msgs).await;
            publisher.events_until(100).await;
        }
        // the slow client's reads now find its close after what was buffered
        let mut got = 0;
        let code = loop {
            match slow.recv(Duration::from_secs(5)).await {
                Got::Events(e) => got += e.len(),
                Got::Closed(c) => break c,
                Got::Timeout => panic!("no close"),
            }
        };
        assert_eq!(code, Some(4008));
        assert!(got < n, "got {got}");
        // it resumes by replay with no gap
        let mut back = Client::login(addr, "key-acme").await;
        let ack = back
            .subscribe(Subscribe {
                replay_missed: true,
                since: Some(subscribe::Since::SinceSeq(got as u64)),
                ..Default::default()
            })
            .await;
        assert_eq!((ack.replay_from, ack.replay_to), (got as u64 + 1, n as u64));
        let rest = back.events_until(n - got).await;
        assert_eq!(rest.first().unwrap().seq, got as u64 + 1);
        assert_eq!(rest.last().unwrap().seq, n as u64);
    });
    assert!(gw.metrics_text().contains("rtbcore_gateway_closes_total{code=\"4008\"} 1"));
}

#[test]
fn a_batch_over_half_a_mebibyte_goes_out_in_frames_clients_accept() {
    let dir = TempDir::new("bigframes");
    let gw = start(config_with(&dir.0, "", "", "max_tmax_ms = 600000"));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut bin = Client::login(addr, "key-acme").await;
        bin.subscribe(Subscribe::default()).await;
        let mut json = Client::connect(addr, Proto::Json).await;
        json.auth("key-bolt").await;
        json.subscribe(Subscribe::default()).await;
        let mut publisher = Client::login(addr, "key-pub").await;
        // one publisher frame (under the 1 MiB inbound limit) whose announcements make ~0.95 MB
        // for each buyer in binary, more in JSON: one batch per buyer
        let pad: String = "x".repeat(3_900);
        let n = 240;
        let msgs = (0..n)
            .map(|i| {
                let mut o = open(&format!("big{i}"), 10, 60_000, 0);
                if let Msg::OpenAuction(ref mut o) = o {
                    o.attributes.insert("pad".into(), pad.clone());
                }
                BidMessage { request_id: String::new(), message: Some(o) }
            })
            .collect();
        publisher.send(msgs).await;
        publisher.events_until(n).await;
        for c in [&mut bin, &mut json] {
            let (mut events, mut frames) = (Vec::new(), 0);
            while events.len() < n {
                let m = tokio::time::timeout(Duration::from_secs(5), c.ws.next())
                    .await
                    .expect("a frame")
                    .expect("open")
                    .expect("a message");
                let (size, evs) = match m {
                    Message::Binary(b) => (b.len(), ServerFrame::decode(&b[..]).unwrap().events),
                    Message::Text(t) => {
                        (t.len(), serde_json::from_str::<ServerFrame>(t.as_str()).unwrap().events)
                    }
                    _ => continue,
                };
                assert!(size <= 512 * 1024, "a frame of {size} bytes");
                frames += 1;
                events.extend(evs);
            }
            assert!(frames >= 2, "{frames} frames");
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
            assert!(events.iter().all(|e| kind(e) == "auction_started"));
        }
    });
}

#[test]
fn connection_caps_close_4029() {
    let dir = TempDir::new("caps");
    let gw =
        start(config_with(&dir.0, "max_connections = 3\nmax_connections_per_buyer = 1", "", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let _a = Client::login(addr, "key-acme").await;
        let mut a2 = Client::connect(addr, Proto::Binary).await;
        a2.one(Msg::Auth(Auth { credential: Some(auth::Credential::ApiKey("key-acme".into())) }))
            .await;
        assert_eq!(a2.close_code().await, Some(4029));
        // a closed connection gives its slot back
        drop(a2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _b = Client::login(addr, "key-bolt").await;
        let _c = Client::login(addr, "key-cato").await;
        let mut d = Client::connect(addr, Proto::Binary).await;
        assert_eq!(d.close_code().await, Some(4029));
    });
    assert!(gw.metrics_text().contains("rtbcore_gateway_closes_total{code=\"4029\"} 2"));
}

async fn http_get(addr: std::net::SocketAddr, path: &str, headers: &str, want: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !String::from_utf8_lossy(&buf).contains(want) {
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[test]
fn sse_streams_the_buyer_events_and_resumes_from_last_event_id() {
    let dir = TempDir::new("sse");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        for i in 0..3 {
            publisher.one(open(&format!("e{i}"), 10, 5_000, 0)).await;
            publisher.event().await;
        }
        acme.events_until(3).await;
        let body = http_get(
            addr,
            "/v1/events",
            "Authorization: Bearer key-acme\r\nLast-Event-ID: acme:1\r\n",
            "id: acme:3",
        )
        .await;
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(body.contains("text/event-stream"), "{body}");
        assert!(!body.contains("id: acme:1\n"), "{body}");
        assert!(body.contains("id: acme:2\n") && body.contains("event: auction_started"), "{body}");
        assert!(body.contains(r#""auctionId":"e2""#), "{body}");
        // live after the replay
        let live = tokio::spawn(async move {
            http_get(addr, "/v1/events?api_key=key-acme&since_seq=3", "", "id: acme:4").await
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        publisher.one(open("e3", 10, 5_000, 0)).await;
        let body = live.await.unwrap();
        assert!(body.contains("id: acme:4\n") && !body.contains("id: acme:3\n"), "{body}");
        let denied =
            http_get(addr, "/v1/events", "Authorization: Bearer nope\r\n", "\r\n\r\n").await;
        assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
        let m = http_get(addr, "/metrics", "", "rtbcore_gateway_buyers").await;
        assert!(m.contains("rtbcore_gateway_auctions_opened_total 4"), "{m}");
        assert!(http_get(addr, "/healthz", "", "ok").await.starts_with("HTTP/1.1 200"));
        assert!(http_get(addr, "/readyz", "", "ready").await.starts_with("HTTP/1.1 200"));
    });
}

#[test]
fn failed_sse_logins_count_toward_the_per_address_limit() {
    let dir = TempDir::new("sse-limit");
    let gw = start(config_with(&dir.0, "failed_auth_limit = 3", "", ""));
    let addr = gw.local_addr();
    runtime().block_on(async move {
        for _ in 0..3 {
            let r =
                http_get(addr, "/v1/events", "Authorization: Bearer nope\r\n", "\r\n\r\n").await;
            assert!(r.starts_with("HTTP/1.1 401"), "{r}");
        }
        // over the limit: refused before the credential is looked at, even a good one
        let r =
            http_get(addr, "/v1/events", "Authorization: Bearer key-acme\r\n", "\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 429"), "{r}");
        // and the WebSocket door shares the limit
        let mut ws = Client::connect(addr, Proto::Binary).await;
        assert_eq!(ws.close_code().await, Some(4003));
    });
    let m = gw.metrics_text();
    assert!(m.contains("rtbcore_gateway_auth_failed_total 3"), "{m}");
    assert!(m.contains("rtbcore_gateway_sse_auth_limited_total 1"), "{m}");
}

#[test]
fn shutdown_cancel_closes_open_auctions_delivers_results_and_closes_1001() {
    let dir = TempDir::new("drain");
    let mut gw = start(config_with(&dir.0, "shutdown = \"cancel\"", "", ""));
    let addr = gw.local_addr();
    let rt = runtime();
    let (mut publisher, mut acme) = rt.block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        let mut acme = Client::login(addr, "key-acme").await;
        publisher.one(open("long", 10, 50_000, 0)).await;
        publisher.event().await;
        acme.one(place("long", 500)).await;
        assert_eq!(kind(&acme.event().await), "bid_accepted");
        (publisher, acme)
    });
    let t0 = std::time::Instant::now();
    gw.stop();
    assert!(t0.elapsed() < Duration::from_secs(3));
    rt.block_on(async move {
        match acme.event().await.event {
            Some(Event::AuctionWon(w)) => assert_eq!(w.price.unwrap().micros, 10),
            other => panic!("{other:?}"),
        }
        assert_eq!(acme.close_code().await, Some(1001));
        match publisher.event().await.event {
            Some(Event::AuctionClosed(c)) => assert_eq!(c.closed_by, ClosedBy::Shutdown as i32),
            other => panic!("{other:?}"),
        }
        assert_eq!(publisher.close_code().await, Some(1001));
    });
}

#[test]
fn shutdown_finish_lets_open_auctions_reach_their_deadline() {
    let dir = TempDir::new("finish");
    let mut gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    let rt = runtime();
    let mut publisher = rt.block_on(async move {
        let mut publisher = Client::login(addr, "key-pub").await;
        publisher.one(open("soon", 10, 300, 0)).await;
        publisher.event().await;
        publisher
    });
    gw.stop();
    rt.block_on(async move {
        match publisher.event().await.event {
            Some(Event::AuctionClosed(c)) => assert_eq!(c.closed_by, ClosedBy::Deadline as i32),
            other => panic!("{other:?}"),
        }
        assert_eq!(publisher.close_code().await, Some(1001));
    });
}
