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
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::Subscribe;
use serde_json::{json, Value};

type Reply = Arc<dyn Fn(&Value) -> (u16, String, u64) + Send + Sync>;

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
            post(
                |State((reply, hits, last)): State<(
                    Reply,
                    Arc<AtomicU64>,
                    Arc<Mutex<Option<Value>>>,
                )>,
                 body: Bytes| async move {
                    hits.fetch_add(1, Ordering::Relaxed);
                    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    *last.lock().unwrap() = Some(req.clone());
                    let (status, body, delay) = reply(&req);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    (StatusCode::from_u16(status).unwrap(), body).into_response()
                },
            ),
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
            |State((seen, n, fail)): State<(Arc<Mutex<Vec<String>>>, Arc<AtomicU64>, u64)>,
             u: axum::http::Uri| async move {
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
    let c = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = hyper::Request::post(format!("http://{addr}/openrtb2/auction"))
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&b).into_owned())
}

async fn post_json(addr: SocketAddr, v: &Value) -> (u16, Value) {
    let (s, b) = post_body(addr, v.to_string()).await;
    (s, serde_json::from_str(&b).unwrap_or(Value::Null))
}

async fn metrics(addr: SocketAddr) -> String {
    let c = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = c.get(format!("http://{addr}/metrics").parse().unwrap()).await.unwrap();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
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
                 "protocols": [2, 3], "w": 640, "h": 480, "plcmt": 1}, "bidfloor": 1.0}],
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
        // a floor above both: no bid
        req["id"] = json!("p4");
        req["imp"][0]["bidfloor"] = json!(6.0);
        let (s, _) = post_body(addr, req.to_string()).await;
        assert_eq!(s, 204);
    });
}
