//! The OpenRTB 2.6 door over real sockets: requests from the spec's examples, pricing,
//! floors and currencies, deals, block lists, adjustments, macros and notices, bidders that are
//! late or answer garbage, and every validation rule. Mock bidders and notice endpoints are
//! small axum servers on 127.0.0.1:0.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::Subscribe;
use serde_json::{json, Value};

type Reply = Arc<dyn Fn(&Value) -> (u16, String, u64) + Send + Sync>;
type BidderState = (Reply, Arc<AtomicU64>, Arc<Mutex<Option<Value>>>);
type NoticeState = (Arc<Mutex<Vec<String>>>, Arc<AtomicU64>, u64);
type Edit = Box<dyn Fn(&mut Value)>;

/// A mock OpenRTB bidder: `reply(request)` gives (status, body, delay ms); counts requests.
struct Bidder {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    last: Arc<Mutex<Option<Value>>>,
}

async fn bidder(reply: Reply) -> Bidder {
    let hits = Arc::new(AtomicU64::new(0));
    let last = Arc::new(Mutex::new(None));
    let st = (reply, hits.clone(), last.clone());
    let app = Router::new()
        .route(
            "/bid",
            post(|State((reply, hits, last)): State<BidderState>, body: Bytes| async move {
                hits.fetch_add(1, Ordering::Relaxed);
                let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                *last.lock().unwrap() = Some(req.clone());
                let (status, body, delay) = reply(&req);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                (StatusCode::from_u16(status).unwrap(), body).into_response()
            }),
        )
        .with_state(st);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Bidder { addr, hits, last }
}

/// A bidder answering one bid per imp at `price`, the bid merged with `extra`.
async fn pricing(seat: &str, price: f64, extra: Value) -> Bidder {
    let seat = seat.to_string();
    bidder(Arc::new(move |req: &Value| {
        let bids: Vec<Value> = req["imp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|imp| {
                let mut b = json!({
                    "id": format!("{seat}-{}", imp["id"].as_str().unwrap()),
                    "impid": imp["id"],
                    "price": price,
                    "adid": "ad-7",
                    "crid": "cr-7",
                    "adomain": ["brand.example"],
                });
                if let (Value::Object(m), Value::Object(e)) = (&mut b, &extra) {
                    for (k, v) in e {
                        m.insert(k.clone(), v.clone());
                    }
                }
                b
            })
            .collect();
        let body = json!({"id": req["id"], "bidid": format!("resp-{seat}"), "seatbid": [{"seat": seat, "bid": bids}]});
        (200, body.to_string(), 0)
    }))
    .await
}

/// A notice endpoint: the first `fail_first` hits answer 500; records every path+query.
struct Notices {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

async fn notices(fail_first: u64) -> Notices {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let n = Arc::new(AtomicU64::new(0));
    let st = (seen.clone(), n, fail_first);
    let app = Router::new()
        .fallback(get(
            |State((seen, n, fail)): State<NoticeState>, u: axum::http::Uri| async move {
                seen.lock().unwrap().push(u.to_string());
                if n.fetch_add(1, Ordering::Relaxed) < fail {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::OK
                }
            },
        ))
        .with_state(st);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    Notices { addr, seen }
}

fn bidder_toml(name: &str, b: &Bidder, timeout_ms: u64, extra: &str) -> String {
    format!(
        "[[openrtb.bidders]]\nname = \"{name}\"\nendpoint = \"http://{}/bid\"\ntimeout_ms = {timeout_ms}\n{extra}\n",
        b.addr
    )
}

async fn post_body(addr: SocketAddr, body: impl Into<Bytes>) -> (u16, String) {
    let c = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::post(format!("http://{addr}/openrtb2/auction"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// Sends `n` bytes of body over a raw socket (declared with Content-Length, or chunked) while
/// reading the answer: the server may answer before the body is through.
async fn post_huge(addr: SocketAddr, n: usize, declared: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let head = if declared {
        format!("POST /openrtb2/auction HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n")
    } else {
        "POST /openrtb2/auction HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_string()
    };
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent < n {
            if declared {
                wr.write_all(&chunk).await?;
            } else {
                wr.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                wr.write_all(&chunk).await?;
                wr.write_all(b"\r\n").await?;
            }
            sent += chunk.len();
        }
        Ok::<_, std::io::Error>(())
    });
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        match rd.read(&mut tmp).await {
            Ok(0) | Err(_) => break,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some((h, body)) = text.split_once("\r\n\r\n") {
            let len = h
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok());
            if len.is_some_and(|l| body.len() >= l) {
                break;
            }
        }
    }
    writer.abort();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    (status, body)
}

async fn post_json(addr: SocketAddr, v: &Value) -> (u16, Value) {
    let (s, b) = post_body(addr, v.to_string()).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

/// A simple banner request (OpenRTB 2.6 section 6.2.1's shape).
fn banner_request(id: &str) -> Value {
    json!({
        "id": id,
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250, "pos": 1}, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "site": {"id": "102855", "domain": "news.example", "page": "https://news.example/a", "publisher": {"id": "8953"}},
        "device": {"ua": "Mozilla/5.0", "ip": "192.0.2.1", "geo": {"country": "USA"}},
        "user": {"id": "55816b39711f9b5acf3b90e313ed29e51665623f"},
        "at": 2,
        "tmax": 150,
        "cur": ["USD"],
        "ext": {"exchange": {"keep": true}}
    })
}

fn start_with(dir: &TempDir, extra: &str) -> rtbcore_gateway::Gateway {
    start(config(&dir.0, extra))
}

fn price_of(resp: &Value, imp: &str) -> f64 {
    resp["seatbid"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["bid"].as_array().unwrap().iter())
        .find(|b| b["impid"] == imp)
        .unwrap_or_else(|| panic!("no bid for imp {imp} in {resp}"))["price"]
        .as_f64()
        .unwrap()
}

#[test]
fn the_specs_example_requests_round_trip() {
    let rt = runtime();
    let b = rt.block_on(pricing("seat-a", 2.0, json!({})));
    let dir = TempDir::new("ortb-spec");
    let gw = start_with(&dir, &format!("[openrtb]\n{}", bidder_toml("a", &b, 100, "")));
    let addr = gw.local_addr();
    let video = json!({
        "id": "video-1", "tmax": 150,
        "imp": [{"id": "1", "video": {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30,
                 "protocols": [2, 3], "w": 640.0, "h": 480, "plcmt": 1}, "bidfloor": 1.0}],
        "app": {"id": "a1", "bundle": "com.example.game", "publisher": {"id": "p"}},
        "device": {"geo": {"country": "DEU"}}
    });
    let native = json!({
        "id": "native-1", "tmax": 150,
        "imp": [{"id": "n1", "native": {"request": "{\"ver\":\"1.2\",\"assets\":[{\"id\":1,\"title\":{\"len\":90}}]}", "ver": "1.2"}}],
        "site": {"domain": "blog.example"}
    });
    let pmp = json!({
        "id": "pmp-1", "tmax": 150,
        "imp": [{"id": "1", "banner": {"format": [{"w": 728, "h": 90}]}, "bidfloor": 0.1,
                 "pmp": {"private_auction": 0, "deals": [{"id": "deal-1", "bidfloor": 1.5, "wseat": ["seat-a"]}]}}],
        "site": {"domain": "news.example"}
    });
    rt.block_on(async {
        for req in [banner_request("banner-1"), video, native, pmp] {
            let (s, r) = post_json(addr, &req).await;
            assert_eq!(s, 200, "{req} -> {r}");
            assert_eq!(r["id"], req["id"]);
            assert_eq!(r["cur"], "USD");
            let imp = req["imp"][0]["id"].as_str().unwrap();
            let bid = &r["seatbid"][0]["bid"][0];
            assert_eq!(r["seatbid"][0]["seat"], "seat-a");
            assert_eq!(bid["impid"], imp);
            assert_eq!(bid["adid"], "ad-7");
            // one bidder: second price falls to the floor
            let floor = req["imp"][0]["bidfloor"].as_f64().unwrap_or(0.0);
            assert_eq!(bid["price"].as_f64().unwrap(), floor);
        }
        // the bidder saw the request's ext untouched and its own tmax
        let seen = b.last.lock().unwrap().clone().unwrap();
        assert_eq!(seen["id"], "pmp-1");
        assert!(seen["tmax"].as_u64().unwrap() <= 100);
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"bid\"}"), 4.0);
    });
    assert_eq!(b.hits.load(Ordering::Relaxed), 4);
}

#[test]
fn first_and_second_price_are_exact() {
    let rt = runtime();
    let hi = rt.block_on(pricing("hi", 5.25, json!({})));
    let lo = rt.block_on(pricing("lo", 3.10, json!({})));
    let dir = TempDir::new("ortb-price");
    let extra = format!(
        "[openrtb]\n{}{}",
        bidder_toml("hi", &hi, 100, ""),
        bidder_toml("lo", &lo, 100, "")
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("p2");
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "hi");
        assert_eq!(price_of(&r, "1"), 3.10);
        req["id"] = json!("p1");
        req["at"] = json!(1);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(price_of(&r, "1"), 5.25);
        // a floor above the second bid: the second price is the floor
        req["id"] = json!("p3");
        req["at"] = json!(2);
        req["imp"][0]["bidfloor"] = json!(4.0);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 4.0);
        // with no WebSocket subscriber the answer comes once the bidders have answered, long
        // before the deadline; and two imps are both priced
        req["id"] = json!("p5");
        req["tmax"] = json!(2000);
        req["imp"][0]["bidfloor"] = json!(0.5);
        let mut second = req["imp"][0].clone();
        second["id"] = json!("2");
        req["imp"].as_array_mut().unwrap().push(second);
        let t = std::time::Instant::now();
        let (s, r) = post_json(addr, &req).await;
        assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
        assert_eq!(s, 200, "{r}");
        assert_eq!((price_of(&r, "1"), price_of(&r, "2")), (3.10, 3.10));
        assert_eq!(r["seatbid"][0]["bid"].as_array().unwrap().len(), 2);
        req["imp"].as_array_mut().unwrap().truncate(1);
        req["tmax"] = json!(150);
        // a floor above both: no bid
        req["id"] = json!("p4");
        req["imp"][0]["bidfloor"] = json!(6.0);
        let (s, _) = post_body(addr, req.to_string()).await;
        assert_eq!(s, 204);
    });
}

#[test]
fn every_validation_rule_answers_400_naming_the_field() {
    let rt = runtime();
    let dir = TempDir::new("ortb-valid");
    let gw = start_with(&dir, "[openrtb]\nmax_body_bytes = 1048576\n");
    let addr = gw.local_addr();
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|r| r["imp"][0]["banner"]["w"] = json!(0)),
            "request.imp[0].banner.w must be a positive number",
        ),
        (
            Box::new(|r| r["imp"][0]["banner"]["h"] = json!("250")),
            "request.imp[0].banner.h must be a positive number",
        ),
        (Box::new(|r| r["imp"] = json!([])), "request.imp must contain at least one element"),
        (
            Box::new(|r| r.as_object_mut().unwrap().remove("imp").map(|_| ()).unwrap()),
            "request.imp must contain at least one element",
        ),
        (
            Box::new(|r| {
                let i = r["imp"][0].clone();
                r["imp"].as_array_mut().unwrap().push(i)
            }),
            "request.imp[1].id \"1\" duplicates request.imp[0].id",
        ),
        (
            Box::new(|r| {
                r["imp"][0].as_object_mut().unwrap().remove("banner").map(|_| ()).unwrap()
            }),
            "request.imp[0] must have one of banner, video, audio, native",
        ),
        (Box::new(|r| r["tmax"] = json!(-5)), "request.tmax must be a positive integer"),
        (
            Box::new(|r| r["at"] = json!(3)),
            "request.at must be 1 (first price) or 2 (second price)",
        ),
        (Box::new(|r| r["id"] = json!("")), "request.id must be a non-empty string"),
        (
            Box::new(|r| r["app"] = json!({"bundle": "x"})),
            "request must contain exactly one of site, app, dooh; got site, app",
        ),
        (
            Box::new(|r| r.as_object_mut().unwrap().remove("site").map(|_| ()).unwrap()),
            "request must contain exactly one of site, app, dooh; got none",
        ),
        (
            Box::new(|r| r["imp"][0]["bidfloor"] = json!(-1)),
            "request.imp[0].bidfloor must be a number >= 0",
        ),
        (
            Box::new(|r| r["imp"][0]["bidfloorcur"] = json!("usd")),
            "request.imp[0].bidfloorcur must be an ISO 4217 code",
        ),
        (Box::new(|r| r["bcat"] = json!(["IAB1", 7])), "request.bcat[1] must be a string"),
        (
            Box::new(|r| r["imp"][0]["pmp"] = json!({"deals": [{"bidfloor": 1}]})),
            "request.imp[0].pmp.deals[0].id must be a non-empty string",
        ),
        (
            Box::new(|r| r["imp"][0]["banner"]["format"] = json!([{"w": 300, "h": -1}])),
            "request.imp[0].banner.format[0].h must be a positive number",
        ),
        (
            Box::new(|r| r["imp"][0]["bidfloorcur"] = json!("JPY")),
            "request.imp[0].bidfloorcur: no conversion rate from JPY to USD",
        ),
        (
            Box::new(|r| r["cur"] = json!(["EUR"])),
            "request.cur: the exchange clears in USD and has no rate",
        ),
    ];
    rt.block_on(async {
        for (i, (edit, want)) in cases.iter().enumerate() {
            let mut req = banner_request(&format!("v{i}"));
            edit(&mut req);
            let (s, r) = post_json(addr, &req).await;
            assert_eq!(s, 400, "case {i}: {r}");
            let msg = r["error"]["message"].as_str().unwrap();
            assert!(msg.starts_with(want), "case {i}: {msg:?} does not start with {want:?}");
        }
        let m = metrics(addr).await;
        assert_eq!(
            metric(&m, "rtbcore_openrtb_requests_total{outcome=\"invalid\"}"),
            cases.len() as f64
        );
    });
}

#[test]
fn garbage_bytes_get_400_with_the_offset_and_a_huge_body_413() {
    let rt = runtime();
    let dir = TempDir::new("ortb-garbage");
    let gw = start_with(&dir, "");
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, b) = post_body(addr, &b"{\"id\": \"x\",\n \"imp\": [}\xff\x00"[..]).await;
        assert_eq!(s, 400, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("at byte 21 (line 2, column 10)"), "{msg}");
        let (s, _) = post_body(addr, vec![0xffu8; 64]).await;
        assert_eq!(s, 400);
        let (s, b) = post_body(addr, "[1, 2]").await;
        assert_eq!((s, b.contains("request must be a JSON object")), (400, true), "{b}");
        let (s, b) = post_huge(addr, 20 << 20, true).await;
        assert_eq!(s, 413, "{b}");
        assert!(b.contains("larger than 1048576 bytes"), "{b}");
        // no declared length (chunked): refused once the limit is read
        let (s, b) = post_huge(addr, 2 << 20, false).await;
        assert_eq!(s, 413, "{b}");
        // the server is still answering
        let (s, _) = post_json(addr, &banner_request("after")).await;
        assert_eq!(s, 204);
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"malformed\"}"), 2.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"too_large\"}"), 2.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"no_bid\"}"), 1.0);
    });
}

#[test]
fn a_late_bidder_is_dropped_and_counted_and_garbage_is_rejected() {
    let rt = runtime();
    let on_time = rt.block_on(pricing("ok", 1.0, json!({})));
    let late = rt.block_on(bidder(Arc::new(|req: &Value| {
        let body = json!({"id": req["id"], "seatbid": [{"bid": [{"id": "l", "impid": "1", "price": 50.0}]}]});
        (200, body.to_string(), 300)
    })));
    let garbage = rt.block_on(bidder(Arc::new(|_: &Value| (200, "<html>oops".into(), 0))));
    let wrong = rt.block_on(bidder(Arc::new(|req: &Value| {
        let body = json!({"id": req["id"], "cur": "JPY", "seatbid": [{"bid": [
            {"id": "a", "impid": "nope", "price": 9.0},
            {"id": "b", "impid": "1", "price": 0.0},
            {"id": "c", "impid": "1", "price": 30.0}
        ]}]});
        (200, body.to_string(), 0)
    })));
    let dir = TempDir::new("ortb-late");
    let extra = format!(
        "[openrtb]\n{}{}{}{}",
        bidder_toml("ok", &on_time, 100, ""),
        bidder_toml("late", &late, 60, ""),
        bidder_toml("garbage", &garbage, 100, ""),
        bidder_toml("wrong", &wrong, 100, ""),
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, r) = post_json(addr, &banner_request("late-1")).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "ok");
        assert_eq!(price_of(&r, "1"), 0.5);
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_bidder_late_total{bidder=\"late\"}"), 1.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_bidder_late_total{bidder=\"ok\"}"), 0.0);
        assert_eq!(
            metric(&m, "rtbcore_openrtb_bidder_invalid_responses_total{bidder=\"garbage\"}"),
            1.0
        );
        let rej = |why: &str| {
            metric(&m, &format!("rtbcore_openrtb_bidder_bids_rejected_total{{bidder=\"wrong\",reason=\"{why}\"}}"))
        };
        assert_eq!(rej("unknown_imp"), 1.0);
        // the zero price is refused first; the JPY one has no rate
        assert_eq!(rej("invalid_price"), 1.0);
        assert_eq!(rej("currency"), 1.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_bidder_bids_total{bidder=\"ok\"}"), 1.0);
    });
}

#[test]
fn private_deals_admit_deal_bids_only_at_their_own_floor() {
    let rt = runtime();
    let open = rt.block_on(pricing("open", 9.0, json!({})));
    let deal = rt.block_on(pricing("dealer", 2.0, json!({"dealid": "d-1"})));
    let cheap = rt.block_on(pricing("cheap", 1.0, json!({"dealid": "d-1"})));
    let unknown = rt.block_on(pricing("unknown", 8.0, json!({"dealid": "d-9"})));
    let dir = TempDir::new("ortb-deals");
    let extra = format!(
        "[openrtb]\n{}{}{}{}",
        bidder_toml("open", &open, 100, ""),
        bidder_toml("dealer", &deal, 100, ""),
        bidder_toml("cheap", &cheap, 100, ""),
        bidder_toml("unknown", &unknown, 100, ""),
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("deal-1");
        req["imp"][0]["bidfloor"] = json!(5.0);
        req["imp"][0]["pmp"] =
            json!({"private_auction": 1, "deals": [{"id": "d-1", "bidfloor": 1.5, "bidfloorcur": "USD"}]});
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "dealer");
        assert_eq!(r["seatbid"][0]["bid"][0]["dealid"], "d-1");
        // the only other admitted bid is below the deal floor: the deal floor is the price
        assert_eq!(price_of(&r, "1"), 1.5);
        // an open auction with the same deal: the open bid wins at the open floor
        req["id"] = json!("deal-2");
        req["imp"][0]["pmp"]["private_auction"] = json!(0);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(r["seatbid"][0]["seat"], "open");
        assert_eq!(price_of(&r, "1"), 5.0);
        let m = metrics(addr).await;
        let rej = |b: &str, why: &str| {
            metric(&m, &format!("rtbcore_openrtb_bidder_bids_rejected_total{{bidder=\"{b}\",reason=\"{why}\"}}"))
        };
        assert_eq!(rej("open", "deal"), 1.0);
        assert_eq!(rej("unknown", "deal"), 2.0);
        assert_eq!(rej("cheap", "below_floor"), 2.0);
    });
}

#[test]
fn block_lists_drop_matching_bids() {
    let rt = runtime();
    let cat = rt.block_on(pricing("cat", 9.0, json!({"cat": ["IAB25-3"]})));
    let adv = rt.block_on(pricing("adv", 8.0, json!({"adomain": ["shop.bad.example"]})));
    let app = rt.block_on(pricing("app", 7.0, json!({"bundle": "com.bad.app"})));
    let clean = rt.block_on(pricing("clean", 1.0, json!({"cat": ["IAB1"]})));
    let dir = TempDir::new("ortb-block");
    let extra = format!(
        "[openrtb]\n{}{}{}{}",
        bidder_toml("cat", &cat, 100, ""),
        bidder_toml("adv", &adv, 100, ""),
        bidder_toml("app", &app, 100, ""),
        bidder_toml("clean", &clean, 100, ""),
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("blk");
        req["bcat"] = json!(["IAB25-3"]);
        req["badv"] = json!(["bad.example"]);
        req["bapp"] = json!(["com.bad.app"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"].as_array().unwrap().len(), 1);
        assert_eq!(r["seatbid"][0]["seat"], "clean");
        // without the lists the highest bid wins
        let (_, r) = post_json(addr, &banner_request("unblk")).await;
        assert_eq!(r["seatbid"][0]["seat"], "cat");
        assert_eq!(price_of(&r, "1"), 8.0);
    });
}

#[test]
fn floor_rules_and_rates_apply_and_rates_reload_without_restart() {
    let rt = runtime();
    let usd = rt.block_on(pricing("usd", 4.0, json!({})));
    let eur = rt.block_on(pricing("eur", 2.0, json!({})));
    let dir = TempDir::new("ortb-floors");
    let rates = dir.0.join("rates.json");
    std::fs::write(&rates, r#"{"conversions": {"EUR": {"USD": 1.5}}}"#).unwrap();
    let extra = format!(
        "[openrtb]\nrates_file = \"rates.json\"\n{}{}\
         [[openrtb.floors]]\ndomain = \"news.example\"\nmedia_type = \"banner\"\nsize = \"300x250\"\ncountry = \"USA\"\nfloor = 2.0\ncurrency = \"EUR\"\n\
         [[openrtb.floors]]\nfloor = 4.5\n",
        bidder_toml("usd", &usd, 100, ""),
        bidder_toml("eur", &eur, 100, "currency = \"EUR\""),
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        // floor 2 EUR = 3 USD; the EUR bid is 3 USD: second price 3
        let (s, r) = post_json(addr, &banner_request("f1")).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "usd");
        assert_eq!(price_of(&r, "1"), 3.0);
        // the same answered in EUR
        let mut req = banner_request("f2");
        req["cur"] = json!(["EUR"]);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(r["cur"], "EUR");
        assert_eq!(price_of(&r, "1"), 2.0);
        // new rates, no restart: floor 5 USD, the EUR bid is 5 USD, the USD bid is below
        tokio::time::sleep(Duration::from_millis(20)).await;
        std::fs::write(&rates, r#"{"conversions": {"EUR": {"USD": 2.5}}}"#).unwrap();
        let (_, r) = post_json(addr, &banner_request("f3")).await;
        assert_eq!(r["seatbid"][0]["seat"], "eur");
        assert_eq!(price_of(&r, "1"), 5.0);
        // another domain: the second rule (first match wins), above the imp's own floor
        let mut req = banner_request("f4");
        req["site"]["domain"] = json!("other.example");
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(r["seatbid"][0]["seat"], "eur");
        assert_eq!(price_of(&r, "1"), 4.5);
        let m = metrics(addr).await;
        assert_eq!(
            metric(
                &m,
                "rtbcore_openrtb_bidder_bids_rejected_total{bidder=\"usd\",reason=\"below_floor\"}"
            ),
            2.0
        );
    });
}

#[test]
fn prebid_bid_adjustments_apply_with_prebids_vector() {
    let rt = runtime();
    let a = rt.block_on(pricing("bidderA", 10.0, json!({"dealid": "dealId"})));
    let dir = TempDir::new("ortb-adjust");
    std::fs::write(dir.0.join("rates.json"), r#"{"conversions": {"EUR": {"USD": 2.5}}}"#).unwrap();
    let extra =
        format!("[openrtb]\nrates_file = \"rates.json\"\n{}", bidder_toml("bidderA", &a, 100, ""));
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("adj-1");
        req["at"] = json!(1);
        req["imp"][0]["pmp"] = json!({"deals": [{"id": "dealId", "bidfloor": 0.5}]});
        req["ext"] = json!({"prebid": {"bidadjustments": {"mediatype": {"banner": {"bidderA": {
            "dealId": [{"adjtype": "cpm", "value": 1.0, "currency": "EUR"}],
            "*": [{"adjtype": "multiplier", "value": 2.0}]
        }}}}}});
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(price_of(&r, "1"), 7.5);
        // a negative cpm is invalid: the whole set is dropped and the bid stands at 10
        req["id"] = json!("adj-2");
        req["ext"]["prebid"]["bidadjustments"]["mediatype"]["banner"]["bidderA"]["dealId"][0]
            ["value"] = json!(-1.0);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 10.0);
    });
}

#[test]
fn macros_are_substituted_and_notices_fired_once_and_retried_after_a_500() {
    let rt = runtime();
    let win = rt.block_on(notices(1));
    let loss = rt.block_on(notices(0));
    let nurl = format!(
        "http://{}/win?id=${{AUCTION_ID}}&bid=${{AUCTION_BID_ID}}&imp=${{AUCTION_IMP_ID}}&seat=${{AUCTION_SEAT_ID}}&ad=${{AUCTION_AD_ID}}&p=${{AUCTION_PRICE}}&cur=${{AUCTION_CURRENCY}}&mbr=${{AUCTION_MBR}}",
        win.addr
    );
    let lurl = format!(
        "http://{}/loss?r=${{AUCTION_LOSS}}&mtw=${{AUCTION_MIN_TO_WIN}}&p=${{AUCTION_PRICE}}",
        loss.addr
    );
    let w = rt.block_on(pricing(
        "w",
        5.0,
        json!({"nurl": nurl, "burl": "http://bill.example/b?p=${AUCTION_PRICE}&id=${AUCTION_ID}",
               "adm": "<img src=\"http://x.example/i?p=${AUCTION_PRICE}&c=${AUCTION_CURRENCY}\">"}),
    ));
    let l = rt.block_on(pricing("l", 3.0, json!({"lurl": lurl})));
    let dir = TempDir::new("ortb-notice");
    let extra = format!(
        "[openrtb]\nnotice_backoff_ms = 20\n{}{}",
        bidder_toml("w", &w, 100, ""),
        bidder_toml("l", &l, 100, "")
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, r) = post_json(addr, &banner_request("m1")).await;
        assert_eq!(s, 200, "{r}");
        let bid = &r["seatbid"][0]["bid"][0];
        assert_eq!(bid["price"].as_f64().unwrap(), 3.0);
        assert_eq!(bid["adm"], "<img src=\"http://x.example/i?p=3&c=USD\">");
        assert_eq!(bid["burl"], "http://bill.example/b?p=3&id=m1");
        assert!(bid.get("nurl").is_none() && bid.get("lurl").is_none(), "{bid}");
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while (win.seen.lock().unwrap().len() < 2 || loss.seen.lock().unwrap().is_empty())
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let want = "/win?id=m1&bid=resp-w&imp=1&seat=w&ad=ad-7&p=3&cur=USD&mbr=0.6";
        assert_eq!(*win.seen.lock().unwrap(), vec![want.to_string(), want.to_string()]);
        assert_eq!(*loss.seen.lock().unwrap(), vec!["/loss?r=102&mtw=5&p=3".to_string()]);
        // a test request is not billable: no notices
        let mut req = banner_request("m2");
        req["test"] = json!(1);
        let (s, _) = post_json(addr, &req).await;
        assert_eq!(s, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(win.seen.lock().unwrap().len(), 2);
        assert_eq!(loss.seen.lock().unwrap().len(), 1);
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_notices_total{result=\"sent\"}"), 2.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_notices_total{result=\"retried\"}"), 1.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_notices_total{result=\"failed\"}"), 0.0);
    });
}

#[test]
fn bids_refused_before_the_auction_get_a_loss_notice_with_the_reason() {
    let rt = runtime();
    let loss = rt.block_on(notices(0));
    let lurl = |who: &str| {
        format!(
            "http://{}/{who}?r=${{AUCTION_LOSS}}&imp=${{AUCTION_IMP_ID}}&seat=${{AUCTION_SEAT_ID}}&p=${{AUCTION_PRICE}}",
            loss.addr
        )
    };
    // under the 0.5 floor; on a blocked advertiser; a winner without an lurl
    let low = rt.block_on(pricing("low", 0.2, json!({"lurl": lurl("low")})));
    let blk = rt.block_on(pricing(
        "blk",
        9.0,
        json!({"lurl": lurl("blk"), "adomain": ["shop.banned.example"]}),
    ));
    let ok = rt.block_on(pricing("ok", 2.0, json!({})));
    let dir = TempDir::new("ortb-refused-notice");
    let extra = format!(
        "[openrtb]\n{}{}{}",
        bidder_toml("low", &low, 100, ""),
        bidder_toml("blk", &blk, 100, ""),
        bidder_toml("ok", &ok, 100, "")
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("r1");
        req["badv"] = json!(["banned.example"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "ok");
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        while loss.seen.lock().unwrap().len() < 2 && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut seen = loss.seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(seen, vec!["/blk?r=205&imp=1&seat=blk&p=", "/low?r=100&imp=1&seat=low&p="]);
        // a test request fires none
        let mut req = banner_request("r2");
        req["badv"] = json!(["banned.example"]);
        req["test"] = json!(1);
        let (s, _) = post_json(addr, &req).await;
        assert_eq!(s, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(loss.seen.lock().unwrap().len(), 2);
    });
}

#[test]
fn websocket_buyers_see_the_imp_and_bid_in_the_same_auction() {
    let rt = runtime();
    let http = rt.block_on(pricing("http", 2.0, json!({})));
    let dir = TempDir::new("ortb-ws");
    let gw = start_with(&dir, &format!("[openrtb]\n{}", bidder_toml("http", &http, 100, "")));
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        let mut req = banner_request("ws-1");
        req["tmax"] = json!(400);
        let post = tokio::spawn(async move { post_json(addr, &req).await });
        let started = match acme.event().await.event {
            Some(Event::AuctionStarted(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(started.attributes["media_type"], "banner");
        assert_eq!(started.attributes["size"], "300x250");
        assert_eq!(started.attributes["domain"], "news.example");
        assert_eq!(started.attributes["country"], "USA");
        assert_eq!(started.attributes["openrtb_request_id"], "ws-1");
        assert_eq!(started.floor.as_ref().unwrap().micros, 500_000);
        acme.one(place(&started.auction_id, 6_000_000)).await;
        assert_eq!(kind(&acme.event().await), "bid_accepted");
        let (s, r) = post.await.unwrap();
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "acme");
        assert_eq!(price_of(&r, "1"), 2.0);
        match acme.event().await.event {
            Some(Event::AuctionWon(w)) => assert_eq!(w.price.unwrap().micros, 2_000_000),
            other => panic!("{other:?}"),
        }
    });
}

/// A `PlaceBid` on `auction` carrying `criteria` (JSON values as protobuf `Value`s).
fn place_with(auction: &str, micros: i64, criteria: Value) -> Msg {
    use rtbcore_gateway::pbjson_types::{value::Kind, ListValue, Value as PbValue};
    fn pb(v: &Value) -> PbValue {
        let kind = match v {
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Array(xs) => Kind::ListValue(ListValue { values: xs.iter().map(pb).collect() }),
            other => panic!("not used here: {other}"),
        };
        PbValue { kind: Some(kind) }
    }
    let Msg::PlaceBid(mut p) = place(auction, micros) else { unreachable!() };
    for (k, v) in criteria.as_object().unwrap() {
        p.criteria.insert(k.clone(), pb(v));
    }
    Msg::PlaceBid(p)
}

#[test]
fn a_websocket_buyers_ad_comes_from_its_bid_criteria() {
    let rt = runtime();
    let http = rt.block_on(pricing("http", 2.0, json!({})));
    let dir = TempDir::new("ortb-ws-ad");
    let gw = start_with(&dir, &format!("[openrtb]\n{}", bidder_toml("http", &http, 100, "")));
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        let ad = json!({
            "adm": "<img src='https://brand.example/i?p=${AUCTION_PRICE}&s=${AUCTION_SEAT_ID}&b=${AUCTION_BID_ID}'>",
            "burl": "https://brand.example/bill?p=${AUCTION_PRICE}&c=${AUCTION_CURRENCY}",
            "adomain": ["shop.example"], "crid": "cr-7", "cid": "camp-1", "cat": ["IAB1"],
            "exclusive": true
        });
        async fn announced(acme: &mut Client) -> String {
            match acme.event().await.event {
                Some(Event::AuctionStarted(s)) => s.auction_id,
                other => panic!("{other:?}"),
            }
        }

        // a criterion of the wrong type is refused, naming it
        let mut req = banner_request("ws-ad-0");
        req["tmax"] = json!(300);
        let post = tokio::spawn(async move { post_json(addr, &req).await });
        let aid = announced(&mut acme).await;
        acme.one(place_with(&aid, 6_000_000, json!({"adomain": "brand.example"}))).await;
        match acme.event().await.event {
            Some(Event::BidRejected(r)) => {
                assert!(r.message.contains("place_bid.criteria.adomain must be a list of strings"), "{r:?}")
            }
            other => panic!("{other:?}"),
        }
        let (s, r) = post.await.unwrap();
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "http");

        // the winning buyer's answer carries its ad, macros substituted
        let mut req = banner_request("ws-ad-1");
        req["tmax"] = json!(400);
        let post = tokio::spawn(async move { post_json(addr, &req).await });
        let aid = announced(&mut acme).await;
        acme.one(place_with(&aid, 6_000_000, ad.clone())).await;
        let accepted = match acme.event().await.event {
            Some(Event::BidAccepted(a)) => a.bid_id,
            other => panic!("{other:?}"),
        };
        let (s, r) = post.await.unwrap();
        assert_eq!(s, 200, "{r}");
        let bid = &r["seatbid"][0]["bid"][0];
        assert_eq!(r["seatbid"][0]["seat"], "acme", "{r}");
        assert_eq!(bid["id"], accepted.as_str());
        assert_eq!(
            bid["adm"],
            format!("<img src='https://brand.example/i?p=2&s=acme&b={accepted}'>").as_str()
        );
        assert_eq!(bid["burl"], "https://brand.example/bill?p=2&c=USD");
        assert_eq!(bid["adomain"], json!(["shop.example"]));
        assert_eq!(bid["crid"], "cr-7");
        assert_eq!(bid["cid"], "camp-1");
        assert_eq!(bid["cat"], json!(["IAB1"]));
        assert!(bid.get("exclusive").is_none(), "other criteria stay out: {bid}");
        let _ = acme.event().await; // its AuctionWon

        // the same ad on a request that blocks its advertiser takes no part: the HTTP bid wins
        let mut req = banner_request("ws-ad-2");
        req["tmax"] = json!(400);
        req["badv"] = json!(["shop.example"]);
        let post = tokio::spawn(async move { post_json(addr, &req).await });
        let aid = announced(&mut acme).await;
        acme.one(place_with(&aid, 6_000_000, ad)).await;
        assert_eq!(kind(&acme.event().await), "bid_accepted");
        let (s, r) = post.await.unwrap();
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "http", "{r}");
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_buyer_bids_blocked_total"), 1.0);
    });
}

#[test]
fn the_docs_config_and_rates_examples_load() {
    let page = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openrtb.md"),
    )
    .unwrap();
    let blocks = |tag: &str| -> Vec<String> {
        page.split(&format!("```{tag}\n"))
            .skip(1)
            .map(|b| b.split("```").next().unwrap().to_string())
            .collect()
    };
    let tomls = blocks("toml");
    assert_eq!(tomls.len(), 2);
    for t in &tomls {
        let c = rtbcore_gateway::Config::from_toml(t, std::path::Path::new("/etc/rtbcore"))
            .unwrap_or_else(|e| panic!("{e}\n{t}"));
        assert!(!c.openrtb.floors.is_empty() || !c.openrtb.bidders.is_empty());
    }
    let dir = TempDir::new("ortb-docs");
    let json = &blocks("json")[0];
    std::fs::write(dir.0.join("rates.json"), json).unwrap();
    let r = rtbcore_gateway::openrtb::rates::Rates::new(Some(dir.0.join("rates.json")));
    assert_eq!(r.current().rate("USD", "EUR"), Some(0.92));
    // a bad key is named
    let e = rtbcore_gateway::Config::from_toml(
        "[[openrtb.bidders]]\nname = \"a\"\nendpoint = \"ftp://x/bid\"\ntimeout_ms = 50\n",
        std::path::Path::new("."),
    )
    .unwrap_err();
    assert!(e.0.contains("openrtb.bidders[0].endpoint"), "{e}");
}

/// Every path of a JSON value, as JSON pointers.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{at}/{k}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(x, p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn any_field_of_any_type_gets_an_answer_never_a_5xx() {
    let rt = runtime();
    let b = rt.block_on(pricing("a", 2.0, json!({"dealid": "d"})));
    let dir = TempDir::new("ortb-mutate");
    let gw = start_with(&dir, &format!("[openrtb]\n{}", bidder_toml("a", &b, 100, "")));
    let addr = gw.local_addr();
    let mut base = banner_request("mut");
    base["imp"][0]["pmp"] = json!({"private_auction": 0, "deals": [{"id": "d", "bidfloor": 1.0}]});
    base["imp"][0]["video"] = json!({"w": 640, "h": 480, "plcmt": 2});
    base["imp"][0]["tagid"] = json!("t");
    base["bcat"] = json!(["IAB1"]);
    let mut paths = Vec::new();
    pointers(&base, String::new(), &mut paths);
    let weird = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1e300),
        json!("x"),
        json!([]),
        json!({}),
        json!(true),
    ];
    rt.block_on(async {
        let mut n = 0;
        for p in &paths {
            for w in &weird {
                let mut req = base.clone();
                *req.pointer_mut(p).unwrap() = w.clone();
                let (s, body) = post_body(addr, req.to_string()).await;
                assert!(matches!(s, 200 | 204 | 400), "{p} = {w}: {s} {body}");
                n += 1;
            }
        }
        assert!(n > 200, "{n}");
        // and the server still prices a good request
        let (s, r) = post_json(addr, &base).await;
        assert_eq!(s, 200, "{r}");
    });
}

#[test]
fn bidders_are_called_over_kept_alive_connections() {
    let rt = runtime();
    let peers = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let addr = rt.block_on(async {
        let p = peers.clone();
        let app = Router::new().route(
            "/bid",
            post(
                move |axum::extract::ConnectInfo(from): axum::extract::ConnectInfo<SocketAddr>,
                      body: Bytes| {
                    let p = p.clone();
                    async move {
                        p.lock().unwrap().insert(from);
                        let req: Value = serde_json::from_slice(&body).unwrap();
                        json!({"id": req["id"], "seatbid": [{"bid": [{"id": "x", "impid": "1", "price": 1.0}]}]})
                            .to_string()
                    }
                },
            ),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ =
                axum::serve(l, app.into_make_service_with_connect_info::<SocketAddr>()).await;
        });
        addr
    });
    let dir = TempDir::new("ortb-keepalive");
    let gw = start_with(
        &dir,
        &format!(
            "[openrtb]\n[[openrtb.bidders]]\nname = \"k\"\nendpoint = \"http://{addr}/bid\"\ntimeout_ms = 100\n"
        ),
    );
    let gw_addr = gw.local_addr();
    rt.block_on(async {
        for i in 0..5 {
            let (s, r) = post_json(gw_addr, &banner_request(&format!("k{i}"))).await;
            assert_eq!(s, 200, "{r}");
        }
    });
    assert_eq!(peers.lock().unwrap().len(), 1, "{:?}", peers.lock().unwrap());
}

#[test]
fn a_learned_floor_raises_an_imps_floor_and_is_learned_from_its_outcome() {
    let rt = runtime();
    let b = rt.block_on(pricing("seat-a", 2.0, json!({})));
    let dir = TempDir::new("ortb-learned");
    // explore this rare never reaches an auction here: every imp gets the learned floor, 0.8
    let extra = format!(
        "[openrtb]\n{}[floors]\nenabled = true\ninitial = 0.8\ngrid = [0.0, 0.5, 0.8, 1.0]\n\
         explore = 1e-12\n",
        bidder_toml("a", &b, 100, "")
    );
    let gw = start_with(&dir, &extra);
    let addr = gw.local_addr();
    rt.block_on(async {
        // one bidder: the second price falls to the floor, max(bidfloor 0.5, learned 0.8)
        let (s, r) = post_json(addr, &banner_request("l1")).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(price_of(&r, "1"), 0.8);
        // a higher own floor stays
        let mut req = banner_request("l2");
        req["imp"][0]["bidfloor"] = json!(0.9);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 0.9);
        // test traffic gets the floor but is not learned from
        let mut req = banner_request("l3");
        req["test"] = json!(1);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 0.8);
        // a deal imp: the open-market floor is raised, but the imp is not learned from
        let mut req = banner_request("l4");
        req["imp"][0]["pmp"] = json!({"deals": [{"id": "d-9", "bidfloor": 3.0}]});
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 0.8);
        // another segment (an app's bundle as the domain) has its own floor
        let mut req = banner_request("l5");
        req["site"]["domain"] = json!("other.example");
        req["imp"][0]["bidfloor"] = json!(0.1);
        let (_, r) = post_json(addr, &req).await;
        assert_eq!(price_of(&r, "1"), 0.8);
        let m = metrics(addr).await;
        let seg = "rtbcore_gateway_floor{segment=\"domain=news.example,media_type=banner\"}";
        assert_eq!(metric(&m, seg), 0.8);
        assert_eq!(metric(&m, "rtbcore_gateway_floor_segments"), 2.0);
        // learned: l1, l2 and l5 (not the test request, not the deal imp)
        assert_eq!(metric(&m, "rtbcore_gateway_floor_auctions_learned_total"), 3.0);
        // raised: l1, l3, l4, l5
        assert_eq!(metric(&m, "rtbcore_gateway_floor_auctions_floored_total"), 4.0);
    });
}
