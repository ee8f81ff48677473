//! The OpenRTB door's transport over real loopback sockets: HTTPS bidders (a private CA made
//! by rcgen at test time, trusted through `ca_file` or not), gzip in and out of the door and
//! towards the bidders, bounded inflation, and `wseat` / `bseat` for HTTP bidders and WebSocket
//! buyers. Mock bidders are hyper servers, plain or behind tokio-rustls, that record the
//! headers they were sent.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use common::*;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::{RejectReason, Subscribe};
use serde_json::{json, Value};

/// What a mock bidder answers: (status, body bytes, gzip the body?).
type Reply = Arc<dyn Fn(&Value) -> (u16, Vec<u8>, bool) + Send + Sync>;

/// What a mock bidder was sent.
#[derive(Clone, Debug)]
struct Seen {
    content_encoding: Option<String>,
    accept_encoding: Option<String>,
    body: Value,
}

struct Mock {
    addr: SocketAddr,
    hits: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn gz(b: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

/// A mock bidder on 127.0.0.1:0, plain or TLS. It inflates a gzip request itself (with flate2,
/// not the gateway's code) and records what it got.
async fn mock(tls: Option<Arc<rustls::ServerConfig>>, reply: Reply) -> Mock {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (h, s) = (hits.clone(), seen.clone());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (reply, hits, seen) = (reply.clone(), h.clone(), s.clone());
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (reply, hits, seen) = (reply.clone(), hits.clone(), seen.clone());
                        async move {
                            hits.fetch_add(1, Ordering::Relaxed);
                            let header = |n: &str| {
                                req.headers().get(n).map(|v| v.to_str().unwrap().to_string())
                            };
                            let content_encoding = header("content-encoding");
                            let accept_encoding = header("accept-encoding");
                            let raw = req.into_body().collect().await.unwrap().to_bytes();
                            let plain = if content_encoding.as_deref() == Some("gzip") {
                                gunzip(&raw)
                            } else {
                                raw.to_vec()
                            };
                            let body: Value = serde_json::from_slice(&plain).unwrap_or(Value::Null);
                            let (status, out, zip) = reply(&body);
                            seen.lock().unwrap().push(Seen {
                                content_encoding,
                                accept_encoding,
                                body,
                            });
                            let mut resp = hyper::Response::builder().status(status);
                            let out = if zip {
                                resp = resp.header("content-encoding", "gzip");
                                gz(&out)
                            } else {
                                out
                            };
                            Ok::<_, std::convert::Infallible>(
                                resp.body(Full::new(Bytes::from(out))).unwrap(),
                            )
                        }
                    },
                );
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    Some(a) => {
                        // a client that does not trust the certificate aborts the handshake
                        if let Ok(stream) = a.accept(tcp).await {
                            let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    Mock { addr, hits, seen }
}

/// One bid per imp at `price` from `seat`, merged with `extra`.
fn bids(req: &Value, seat: &str, price: f64, extra: &Value) -> Value {
    let bids: Vec<Value> = req["imp"]
        .as_array()
        .map(|imps| {
            imps.iter()
                .map(|imp| {
                    let mut b = json!({"id": format!("{seat}-{}", imp["id"].as_str().unwrap()),
                        "impid": imp["id"], "price": price, "adid": "ad-1", "crid": "cr-1"});
                    if let (Value::Object(m), Value::Object(e)) = (&mut b, extra) {
                        m.extend(e.clone());
                    }
                    b
                })
                .collect()
        })
        .unwrap_or_default();
    json!({"id": req["id"], "bidid": format!("resp-{seat}"), "seatbid": [{"seat": seat, "bid": bids}]})
}

fn pricing(seat: &str, price: f64, zip: bool, extra: Value) -> Reply {
    let seat = seat.to_string();
    Arc::new(move |req: &Value| {
        (200, bids(req, &seat, price, &extra).to_string().into_bytes(), zip)
    })
}

/// A private CA and a server certificate it signed for 127.0.0.1.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "rtbcore test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    leaf.distinguished_name.push(DnType::CommonName, "bidder.test");
    let leaf = leaf.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(ring))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    Pki { ca_pem: ca.pem(), server: Arc::new(server) }
}

fn bidder_toml(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[openrtb.bidders]]\nname = \"{name}\"\nendpoint = \"{url}\"\ntimeout_ms = 200\n{extra}\n"
    )
}

fn banner_request(id: &str) -> Value {
    json!({
        "id": id,
        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5, "bidfloorcur": "USD"}],
        "site": {"id": "s1", "domain": "news.example", "page": "https://news.example/a"},
        "device": {"ua": "Mozilla/5.0", "ip": "192.0.2.1", "geo": {"country": "USA"}},
        "at": 2,
        "tmax": 300,
        "cur": ["USD"]
    })
}

/// An HTTP answer: status, headers, body as sent (not inflated).
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        let plain = if self.headers.get("content-encoding").is_some_and(|v| v == "gzip") {
            gunzip(&self.body)
        } else {
            self.body.clone()
        };
        serde_json::from_slice(&plain).unwrap_or(Value::Null)
    }
}

async fn post(addr: SocketAddr, body: Vec<u8>, headers: &[(&str, &str)]) -> Answer {
    let c = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = hyper::Request::post(format!("http://{addr}/openrtb2/auction"))
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = c.request(req.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes().to_vec();
    Answer { status, headers, body }
}

async fn post_json(addr: SocketAddr, v: &Value) -> (u16, Value) {
    let a = post(addr, v.to_string().into_bytes(), &[]).await;
    (a.status, a.json())
}

fn errors(m: &str, bidder: &str, kind: &str) -> f64 {
    metric(
        m,
        &format!("rtbcore_openrtb_bidder_errors_total{{bidder=\"{bidder}\",kind=\"{kind}\"}}"),
    )
}

/// Every kind of error of `bidder` but `except` is zero.
fn no_other_errors(m: &str, bidder: &str, except: &str) {
    for k in rtbcore_gateway::openrtb::metrics::ERROR_KINDS.iter().filter(|k| **k != except) {
        assert_eq!(errors(m, bidder, k), 0.0, "{bidder} {k}");
    }
}

#[test]
fn an_https_bidder_trusted_through_ca_file_bids_and_wins() {
    let rt = runtime();
    let pki = pki();
    let tls =
        rt.block_on(mock(Some(pki.server.clone()), pricing("tls-seat", 3.0, false, json!({}))));
    let plain = rt.block_on(mock(None, pricing("plain-seat", 1.0, false, json!({}))));
    let dir = TempDir::new("ortb-https-ok");
    std::fs::write(dir.0.join("ca.pem"), &pki.ca_pem).unwrap();
    let extra = format!(
        "[openrtb]\n{}{}",
        bidder_toml("tls", &format!("https://{}/bid", tls.addr), "ca_file = \"ca.pem\""),
        bidder_toml("plain", &format!("http://{}/bid", plain.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        for n in 0..2 {
            let (s, r) = post_json(addr, &banner_request(&format!("tls-{n}"))).await;
            assert_eq!(s, 200, "{r}");
            assert_eq!(r["seatbid"][0]["seat"], "tls-seat", "{r}");
            // second price: the plain bidder's 1.0
            assert_eq!(r["seatbid"][0]["bid"][0]["price"].as_f64(), Some(1.0));
        }
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_bidder_bids_total{bidder=\"tls\"}"), 2.0);
        no_other_errors(&m, "tls", "");
    });
    assert_eq!(tls.hits.load(Ordering::Relaxed), 2);
    assert_eq!(tls.seen.lock().unwrap()[1].body["id"], "tls-1");
}

#[test]
fn an_untrusted_https_bidder_is_counted_as_tls_and_the_auction_still_answers() {
    let rt = runtime();
    let pki = pki();
    let other = pki_other_ca();
    let tls =
        rt.block_on(mock(Some(pki.server.clone()), pricing("tls-seat", 9.0, false, json!({}))));
    let plain = rt.block_on(mock(None, pricing("plain-seat", 1.0, false, json!({}))));
    let dir = TempDir::new("ortb-https-bad");
    std::fs::write(dir.0.join("other.pem"), other).unwrap();
    // one bidder trusts only the webpki roots, the other a CA that did not sign the certificate
    let extra = format!(
        "[openrtb]\n{}{}{}",
        bidder_toml("roots", &format!("https://{}/bid", tls.addr), ""),
        bidder_toml("wrongca", &format!("https://{}/bid", tls.addr), "ca_file = \"other.pem\""),
        bidder_toml("plain", &format!("http://{}/bid", plain.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let t = Instant::now();
        let (s, r) = post_json(addr, &banner_request("untrusted")).await;
        // tmax is 300 ms: the failed handshakes do not hold the answer
        assert!(t.elapsed() < Duration::from_millis(300), "{:?}", t.elapsed());
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "plain-seat");
        let m = metrics(addr).await;
        for b in ["roots", "wrongca"] {
            assert_eq!(errors(&m, b, "tls"), 1.0, "{b}\n{m}");
            no_other_errors(&m, b, "tls");
            assert_eq!(
                metric(&m, &format!("rtbcore_openrtb_bidder_bids_total{{bidder=\"{b}\"}}")),
                0.0
            );
        }
        no_other_errors(&m, "plain", "");
    });
    // no request got through the handshake
    assert_eq!(tls.hits.load(Ordering::Relaxed), 0);
}

fn pki_other_ca() -> String {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let k = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.self_signed(&k).unwrap().pem()
}

#[test]
fn a_missing_or_garbage_ca_file_is_a_config_error_naming_the_key() {
    let dir = TempDir::new("ortb-cafile");
    std::fs::write(dir.0.join("text.pem"), "not a certificate at all\n").unwrap();
    std::fs::write(
        dir.0.join("bad.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.0.join("good.pem"), pki_other_ca()).unwrap();
    let load = |url: &str, ca: &str| {
        let t = format!(
            "[[openrtb.bidders]]\nname = \"ok\"\nendpoint = \"http://127.0.0.1:1/bid\"\ntimeout_ms = 50\n\
             [[openrtb.bidders]]\nname = \"b\"\nendpoint = \"{url}\"\ntimeout_ms = 50\nca_file = \"{ca}\"\n"
        );
        rtbcore_gateway::Config::from_toml(&t, &dir.0)
    };
    for (ca, why) in [
        ("missing.pem", "cannot read"),
        ("text.pem", "holds no PEM certificate"),
        ("bad.pem", "certificate 0 is not usable as a CA"),
    ] {
        let e = load("https://127.0.0.1:1/bid", ca).unwrap_err();
        assert!(e.0.starts_with("openrtb.bidders[1].ca_file: "), "{e}");
        assert!(e.0.contains(why), "{e}");
    }
    let e = load("http://127.0.0.1:1/bid", "good.pem").unwrap_err();
    assert_eq!(e.0, "openrtb.bidders[1].ca_file: is only for an https:// endpoint");
    assert!(load("https://127.0.0.1:1/bid", "good.pem").is_ok());
    let e =
        rtbcore_gateway::Config::from_toml("[openrtb]\nmax_bidder_response_bytes = 10\n", &dir.0)
            .unwrap_err();
    assert!(e.0.starts_with("openrtb.max_bidder_response_bytes: "), "{e}");
}

#[test]
fn gzip_bidders_get_gzip_and_may_answer_gzip() {
    let rt = runtime();
    let zipped = rt.block_on(mock(None, pricing("zip", 4.0, true, json!({"adm": "<b>ad</b>"}))));
    let plain = rt.block_on(mock(None, pricing("plain", 2.0, false, json!({}))));
    let dir = TempDir::new("ortb-gzip-bidders");
    let extra = format!(
        "[openrtb]\n{}{}",
        bidder_toml("zip", &format!("http://{}/bid", zipped.addr), "gzip = true"),
        bidder_toml("plain", &format!("http://{}/bid", plain.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, r) = post_json(addr, &banner_request("gz-1")).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "zip");
        assert_eq!(r["seatbid"][0]["bid"][0]["adm"], "<b>ad</b>");
        assert_eq!(r["seatbid"][0]["bid"][0]["price"].as_f64(), Some(2.0));
        let m = metrics(addr).await;
        no_other_errors(&m, "zip", "");
        no_other_errors(&m, "plain", "");
    });
    let z = zipped.seen.lock().unwrap()[0].clone();
    assert_eq!(z.content_encoding.as_deref(), Some("gzip"));
    // the mock inflated it with its own decoder: the request came through whole
    assert_eq!(z.body["id"], "gz-1");
    assert_eq!(z.body["imp"][0]["banner"]["w"], 300);
    let p = plain.seen.lock().unwrap()[0].clone();
    assert_eq!(p.content_encoding, None);
    assert_eq!(p.body["id"], "gz-1");
    assert_eq!(p.accept_encoding.as_deref(), Some("gzip"));
}

#[test]
fn bidder_answers_over_the_bound_or_corrupt_are_dropped_and_counted_by_kind() {
    let rt = runtime();
    let big = |req: &Value| {
        // 64 KiB of markup: far over the 4 KiB bound once inflated, about 100 bytes on the wire
        let b = bids(req, "big", 9.0, &json!({"adm": " ".repeat(64 << 10)}));
        b.to_string().into_bytes()
    };
    let bomb = rt.block_on(mock(None, Arc::new(move |req: &Value| (200, big(req), true))));
    let bulky = rt.block_on(mock(None, Arc::new(move |req: &Value| (200, big(req), false))));
    // bytes that are neither JSON nor declared as gzip
    let notjson = rt.block_on(mock(None, Arc::new(|_: &Value| (200, gz(b"{}"), false))));
    let failing = rt.block_on(mock(None, Arc::new(|_: &Value| (500, b"down".to_vec(), false))));
    let ok = rt.block_on(mock(None, pricing("ok", 1.0, true, json!({}))));
    let dir = TempDir::new("ortb-gzip-bound");
    let url = |m: &Mock| format!("http://{}/bid", m.addr);
    let extra = format!(
        "[openrtb]\nmax_bidder_response_bytes = 4096\n{}{}{}{}{}",
        bidder_toml("bomb", &url(&bomb), ""),
        bidder_toml("bulky", &url(&bulky), ""),
        bidder_toml("notjson", &url(&notjson), ""),
        bidder_toml("failing", &url(&failing), ""),
        bidder_toml("ok", &url(&ok), ""),
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, r) = post_json(addr, &banner_request("bound-1")).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "ok");
        let m = metrics(addr).await;
        assert_eq!(errors(&m, "bomb", "too_large"), 1.0, "{m}");
        no_other_errors(&m, "bomb", "too_large");
        assert_eq!(errors(&m, "bulky", "too_large"), 1.0);
        no_other_errors(&m, "bulky", "too_large");
        assert_eq!(errors(&m, "notjson", "bad_body"), 1.0);
        no_other_errors(&m, "notjson", "bad_body");
        assert_eq!(
            metric(&m, "rtbcore_openrtb_bidder_invalid_responses_total{bidder=\"notjson\"}"),
            1.0
        );
        assert_eq!(errors(&m, "failing", "http_status"), 1.0);
        no_other_errors(&m, "failing", "http_status");
        no_other_errors(&m, "ok", "");
    });
}

#[test]
fn a_corrupt_gzip_answer_or_an_unknown_encoding_is_bad_encoding() {
    let rt = runtime();
    // a raw HTTP/1.1 server: the answers' headers are written by hand
    let raw = |answer: &'static [u8]| async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let mut got = Vec::new();
                    // the request's head and its body (Content-Length) before answering
                    loop {
                        let n = s.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&got).to_string();
                        if let Some((h, b)) = text.split_once("\r\n\r\n") {
                            let len = h
                                .lines()
                                .find_map(|l| {
                                    l.to_ascii_lowercase()
                                        .strip_prefix("content-length: ")
                                        .map(str::to_string)
                                })
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if b.len() >= len {
                                break;
                            }
                        }
                    }
                    let _ = s.write_all(answer).await;
                });
            }
        });
        addr
    };
    let corrupt = rt.block_on(raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\ncontent-length: 12\r\nconnection: close\r\n\r\n\x1f\x8b\x08\x00garbage!",
    ));
    let brotli = rt.block_on(raw(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: br\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    ));
    let ok = rt.block_on(mock(None, pricing("ok", 1.0, false, json!({}))));
    let dir = TempDir::new("ortb-gzip-corrupt");
    let extra = format!(
        "[openrtb]\n{}{}{}",
        bidder_toml("corrupt", &format!("http://{corrupt}/bid"), ""),
        bidder_toml("brotli", &format!("http://{brotli}/bid"), ""),
        bidder_toml("ok", &format!("http://{}/bid", ok.addr), ""),
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let (s, r) = post_json(addr, &banner_request("enc-1")).await;
        assert_eq!(s, 200, "{r}");
        let m = metrics(addr).await;
        for b in ["corrupt", "brotli"] {
            assert_eq!(errors(&m, b, "bad_encoding"), 1.0, "{b}\n{m}");
            no_other_errors(&m, b, "bad_encoding");
        }
    });
}

#[test]
fn gzip_requests_are_inflated_within_the_body_bound() {
    let rt = runtime();
    let b = rt.block_on(mock(None, pricing("seat-a", 2.0, false, json!({}))));
    let dir = TempDir::new("ortb-gzip-in");
    let extra = format!(
        "[openrtb]\nmax_body_bytes = 65536\n{}",
        bidder_toml("a", &format!("http://{}/bid", b.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let plain = banner_request("in-1").to_string();
        let a = post(addr, gz(plain.as_bytes()), &[("content-encoding", "gzip")]).await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(a.json()["seatbid"][0]["seat"], "seat-a");
        // the bidder got the request as sent, inflated
        assert_eq!(b.seen.lock().unwrap()[0].body["id"], "in-1");

        // a zip bomb: 64 MiB of JSON whitespace, a few tens of KiB compressed
        let mut bomb = banner_request("bomb").to_string().into_bytes();
        bomb.extend(std::iter::repeat_n(b' ', 64 << 20));
        let z = gz(&bomb);
        assert!(z.len() < 65536, "{}", z.len());
        let t = Instant::now();
        let a = post(addr, z, &[("content-encoding", "gzip")]).await;
        assert_eq!(a.status, 413);
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
        assert_eq!(msg, "request body is larger than 65536 bytes once gzip is undone");

        // just at the bound still passes
        let mut fits = plain.clone().into_bytes();
        fits.extend(std::iter::repeat_n(b' ', 65536 - fits.len()));
        let a = post(addr, gz(&fits), &[("content-encoding", "gzip")]).await;
        assert_eq!(a.status, 200);

        // corrupt gzip: 400 naming the problem
        let mut z = gz(plain.as_bytes());
        let n = z.len();
        z.truncate(n / 2);
        let a = post(addr, z, &[("content-encoding", "gzip")]).await;
        assert_eq!(a.status, 400);
        let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with(
                "request body: Content-Encoding is gzip but the body is not valid gzip"
            ),
            "{msg}"
        );
        // a plain body declared gzip is corrupt too
        let a = post(addr, plain.clone().into_bytes(), &[("content-encoding", "gzip")]).await;
        assert_eq!(a.status, 400);

        // unknown codings: 415 naming the coding
        for enc in ["br", "gzip, br", "deflate"] {
            let a = post(addr, plain.clone().into_bytes(), &[("content-encoding", enc)]).await;
            assert_eq!(a.status, 415, "{enc}");
            let msg = a.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(msg.contains(&format!("{enc:?}")), "{msg}");
        }
        // identity is no coding at all
        let a = post(addr, plain.clone().into_bytes(), &[("content-encoding", "identity")]).await;
        assert_eq!(a.status, 200);

        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"too_large\"}"), 1.0);
        assert_eq!(metric(&m, "rtbcore_openrtb_requests_total{outcome=\"malformed\"}"), 2.0);
        assert_eq!(
            metric(&m, "rtbcore_openrtb_requests_total{outcome=\"unsupported_encoding\"}"),
            3.0
        );
    });
}

#[test]
fn answers_are_gzip_when_accept_encoding_allows_it() {
    let rt = runtime();
    let b = rt.block_on(mock(None, pricing("seat-a", 2.0, false, json!({}))));
    let dir = TempDir::new("ortb-gzip-out");
    let extra = format!("[openrtb]\n{}", bidder_toml("a", &format!("http://{}/bid", b.addr), ""));
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        let body = banner_request("out").to_string().into_bytes();
        for (accept, zipped) in [
            (Some("gzip"), true),
            (Some("gzip, deflate, br"), true),
            (Some("br;q=1.0, gzip;q=0.2"), true),
            (Some("br, *;q=0.5"), true),
            (Some("gzip;q=0"), false),
            (Some("gzip;q=0, *;q=1"), false),
            (Some("*;q=0"), false),
            (Some("br"), false),
            (None, false),
        ] {
            let h: Vec<(&str, &str)> = accept.map(|a| ("accept-encoding", a)).into_iter().collect();
            let a = post(addr, body.clone(), &h).await;
            assert_eq!(a.status, 200, "{accept:?}");
            let enc = a.headers.get("content-encoding").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(enc.as_deref(), zipped.then_some("gzip"), "{accept:?}");
            assert_eq!(a.headers.get("vary").unwrap(), "accept-encoding");
            let v: Value = if zipped {
                // gzip magic, then a JSON object once inflated
                assert_eq!(&a.body[..2], &[0x1f, 0x8b]);
                serde_json::from_slice(&gunzip(&a.body)).unwrap()
            } else {
                serde_json::from_slice(&a.body).unwrap()
            };
            assert_eq!(v["id"], "out");
            assert_eq!(v["seatbid"][0]["seat"], "seat-a");
        }
    });
}

#[test]
fn wseat_and_bseat_together_are_refused_naming_both() {
    let rt = runtime();
    let dir = TempDir::new("ortb-seat-both");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut req = banner_request("both");
        req["wseat"] = json!(["a"]);
        req["bseat"] = json!(["b"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 400);
        assert_eq!(
            r["error"]["message"],
            "request.wseat and request.bseat are both given: use at most one of them"
        );
        req["bseat"] = json!([7]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 400);
        assert_eq!(r["error"]["message"], "request.bseat[0] must be a string");
        // an empty list restricts nothing
        req["bseat"] = json!([]);
        req["wseat"] = json!([]);
        let (s, _) = post_json(addr, &req).await;
        assert_eq!(s, 204);
    });
}

/// A notice endpoint recording every path+query.
async fn notices() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let app = axum::Router::new().fallback(axum::routing::get(move |u: axum::http::Uri| {
        let s = s.clone();
        async move {
            s.lock().unwrap().push(u.to_string());
            StatusCode::OK
        }
    }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (addr, seen)
}

#[test]
fn an_excluded_bidder_seat_is_refused_with_loss_104() {
    let rt = runtime();
    let (naddr, seen) = rt.block_on(notices());
    let lurl = |who: &str| json!({"lurl": format!("http://{naddr}/{who}?r=${{AUCTION_LOSS}}&seat=${{AUCTION_SEAT_ID}}")});
    let hi = rt.block_on(mock(None, pricing("hi-seat", 8.0, false, lurl("hi"))));
    let lo = rt.block_on(mock(None, pricing("lo-seat", 1.0, false, lurl("lo"))));
    let dir = TempDir::new("ortb-seat-http");
    let extra = format!(
        "[openrtb]\n{}{}",
        bidder_toml("hi", &format!("http://{}/bid", hi.addr), ""),
        bidder_toml("lo", &format!("http://{}/bid", lo.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    let wait_for = |n: usize| {
        let seen = seen.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(3);
            while seen.lock().unwrap().len() < n && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let mut v = seen.lock().unwrap().clone();
            v.sort();
            v
        }
    };
    rt.block_on(async {
        // the higher bid's seat is blocked: the lower one wins at the floor
        let mut req = banner_request("bseat-1");
        req["bseat"] = json!(["hi-seat"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "lo-seat");
        assert_eq!(r["seatbid"][0]["bid"][0]["price"].as_f64(), Some(0.5));
        assert_eq!(wait_for(1).await, vec!["/hi?r=104&seat=hi-seat"]);
        // an allow list without the seat excludes it too; the bidder named in it still bids
        let mut req = banner_request("wseat-1");
        req["wseat"] = json!(["lo-seat", "someone-else"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "lo-seat");
        assert_eq!(wait_for(2).await, vec!["/hi?r=104&seat=hi-seat", "/hi?r=104&seat=hi-seat"]);
        // allowed: the higher bid wins and the lower gets the ordinary 102
        let mut req = banner_request("wseat-2");
        req["wseat"] = json!(["hi-seat", "lo-seat"]);
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "hi-seat");
        assert_eq!(wait_for(3).await.last().unwrap(), "/lo?r=102&seat=lo-seat");
        let m = metrics(addr).await;
        assert_eq!(metric(&m, "rtbcore_openrtb_seat_excluded_total{what=\"bidder_bid\"}"), 2.0);
        assert_eq!(
            metric(&m, "rtbcore_openrtb_bidder_bids_rejected_total{bidder=\"hi\",reason=\"seat\"}"),
            2.0
        );
        assert_eq!(
            metric(&m, "rtbcore_openrtb_bidder_bids_rejected_total{bidder=\"lo\",reason=\"seat\"}"),
            0.0
        );
    });
}

#[test]
fn excluded_websocket_buyers_are_not_told_and_may_not_bid() {
    let rt = runtime();
    let dir = TempDir::new("ortb-seat-ws");
    let gw = start(config(&dir.0, ""));
    let addr = gw.local_addr();
    rt.block_on(async {
        let mut acme = Client::login(addr, "key-acme").await;
        acme.subscribe(Subscribe::default()).await;
        let mut bolt = Client::login(addr, "key-bolt").await;
        bolt.subscribe(Subscribe::default()).await;
        let mut req = banner_request("ws-bseat");
        req["tmax"] = json!(600);
        req["bseat"] = json!(["bolt"]);
        let post1 = tokio::spawn(async move { post_json(addr, &req).await });
        let started = match acme.event().await.event {
            Some(Event::AuctionStarted(s)) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(started.attributes["openrtb_request_id"], "ws-bseat");
        // bolt learns the id elsewhere and bids anyway: FORBIDDEN
        bolt.one(place(&started.auction_id, 9_000_000)).await;
        let e = bolt.event().await;
        assert_eq!(reason(&e), RejectReason::Forbidden, "{e:?}");
        acme.one(place(&started.auction_id, 3_000_000)).await;
        assert_eq!(kind(&acme.event().await), "bid_accepted");
        let (s, r) = post1.await.unwrap();
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "acme");
        assert_eq!(r["seatbid"][0]["bid"][0]["price"].as_f64(), Some(0.5));

        // an allow list naming bolt only: acme is not told, bolt is; bolt's next event is the
        // second auction's start, so it was never told of the first
        let mut req = banner_request("ws-wseat");
        req["tmax"] = json!(600);
        req["wseat"] = json!(["bolt"]);
        let post2 = tokio::spawn(async move { post_json(addr, &req).await });
        let st2 = loop {
            if let Some(Event::AuctionStarted(s)) = bolt.event().await.event {
                break s;
            }
        };
        assert_eq!(st2.attributes["openrtb_request_id"], "ws-wseat");
        acme.one(place(&st2.auction_id, 5_000_000)).await;
        let e = loop {
            let e = acme.event().await;
            match &e.event {
                Some(Event::AuctionStarted(s)) => panic!("acme was told of {s:?}"),
                Some(Event::BidRejected(_)) | Some(Event::Error(_)) => break e,
                _ => {}
            }
        };
        assert_eq!(reason(&e), RejectReason::Forbidden, "{e:?}");
        let (s, _) = post2.await.unwrap();
        assert_eq!(s, 204);
        // acme's stream never carried the second auction's start
        while let Got::Events(evs) = acme.recv(Duration::from_millis(200)).await {
            for e in evs {
                if let Some(Event::AuctionStarted(s)) = e.event {
                    panic!("acme was told of {s:?}");
                }
            }
        }
        // every subscriber excluded: nobody else can bid, so no wait for the 2 s deadline
        let mut req = banner_request("ws-none");
        req["tmax"] = json!(2000);
        req["bseat"] = json!(["acme", "bolt"]);
        let t = Instant::now();
        let (s, _) = post_json(addr, &req).await;
        assert_eq!(s, 204);
        assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
        let m = metrics(addr).await;
        let v =
            |w: &str| metric(&m, &format!("rtbcore_openrtb_seat_excluded_total{{what=\"{w}\"}}"));
        assert_eq!(v("buyer_announcement"), 4.0);
        assert_eq!(v("buyer_bid"), 2.0);
        assert_eq!(v("bidder_bid"), 0.0);
    });
}

#[test]
fn a_deal_admits_only_the_seats_of_its_wseat() {
    let rt = runtime();
    let (naddr, seen) = rt.block_on(notices());
    let deal_bid = |who: &str| {
        json!({"dealid": "d1",
               "lurl": format!("http://{naddr}/{who}?r=${{AUCTION_LOSS}}&seat=${{AUCTION_SEAT_ID}}")})
    };
    let hi = rt.block_on(mock(None, pricing("hi-seat", 8.0, false, deal_bid("hi"))));
    let lo = rt.block_on(mock(None, pricing("lo-seat", 3.0, false, deal_bid("lo"))));
    let dir = TempDir::new("ortb-deal-wseat");
    let extra = format!(
        "[openrtb]\n{}{}",
        bidder_toml("hi", &format!("http://{}/bid", hi.addr), ""),
        bidder_toml("lo", &format!("http://{}/bid", lo.addr), "")
    );
    let gw = start(config(&dir.0, &extra));
    let addr = gw.local_addr();
    rt.block_on(async {
        // the deal admits lo-seat only: hi's higher deal bid is refused with 104, lo wins
        let mut req = banner_request("deal-wseat-1");
        req["imp"][0]["pmp"] = json!({"private_auction": 1,
            "deals": [{"id": "d1", "bidfloor": 1.0, "bidfloorcur": "USD", "wseat": ["lo-seat"]}]});
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "lo-seat", "{r}");
        assert_eq!(r["seatbid"][0]["bid"][0]["dealid"], "d1", "{r}");
        let until = Instant::now() + Duration::from_secs(3);
        while seen.lock().unwrap().is_empty() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(seen.lock().unwrap().clone(), vec!["/hi?r=104&seat=hi-seat"]);
        // no wseat on the deal: both may bid on it and the higher wins
        let mut req = banner_request("deal-wseat-2");
        req["imp"][0]["pmp"] = json!({"private_auction": 1,
            "deals": [{"id": "d1", "bidfloor": 1.0, "bidfloorcur": "USD"}]});
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(r["seatbid"][0]["seat"], "hi-seat", "{r}");
        // a deal's wseat must be a list of strings
        let mut req = banner_request("deal-wseat-3");
        req["imp"][0]["pmp"] = json!({"deals": [{"id": "d1", "wseat": ["ok", 7]}]});
        let (s, r) = post_json(addr, &req).await;
        assert_eq!(s, 400, "{r}");
        let msg = r["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("request.imp[0].pmp.deals[0].wseat[1] must be a string"), "{msg}");
        let m = metrics(addr).await;
        assert_eq!(
            metric(&m, "rtbcore_openrtb_seat_excluded_total{what=\"bidder_deal_bid\"}"),
            1.0
        );
        assert_eq!(metric(&m, "rtbcore_openrtb_seat_excluded_total{what=\"bidder_bid\"}"), 0.0);
    });
}
