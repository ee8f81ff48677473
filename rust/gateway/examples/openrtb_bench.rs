//! Load on the OpenRTB door: an exchange with `--bidders` mock HTTP bidders (in this process,
//! each answering one bid per imp after `--bidder-delay-ms`), and `--concurrency` callers
//! posting banner requests for `--seconds`. Prints requests per second, answer counts and
//! latency percentiles.
//!
//! ```text
//! cargo run --release -p rtbcore-gateway --example openrtb_bench -- --bidders 3 --concurrency 32 --seconds 5
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rtbcore_gateway::{Config, Gateway, Options};
use serde_json::{json, Value};

struct Args {
    bidders: usize,
    concurrency: usize,
    seconds: f64,
    bidder_delay_ms: u64,
    tmax_ms: u64,
}

fn args() -> Result<Args, String> {
    let mut a =
        Args { bidders: 3, concurrency: 32, seconds: 5.0, bidder_delay_ms: 0, tmax_ms: 120 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        let bad = format!("{k}: not a number: {v:?}");
        match k.as_str() {
            "--bidders" => a.bidders = v.parse().map_err(|_| bad.clone())?,
            "--concurrency" => a.concurrency = v.parse().map_err(|_| bad.clone())?,
            "--seconds" => a.seconds = v.parse().map_err(|_| bad.clone())?,
            "--bidder-delay-ms" => a.bidder_delay_ms = v.parse().map_err(|_| bad.clone())?,
            "--tmax-ms" => a.tmax_ms = v.parse().map_err(|_| bad.clone())?,
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.concurrency == 0 || a.seconds <= 0.0 {
        return Err("--concurrency and --seconds must be > 0".into());
    }
    Ok(a)
}

async fn mock_bidder(n: usize, delay: u64) -> SocketAddr {
    let app = Router::new().route(
        "/bid",
        post(move |body: Bytes| async move {
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let bids: Vec<Value> = req["imp"]
                .as_array()
                .map(|imps| {
                    imps.iter()
                        .map(|imp| {
                            json!({"id": "b", "impid": imp["id"], "price": 1.0 + n as f64 * 0.25,
                                   "adm": "<a/>", "adomain": ["brand.example"]})
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({"id": req["id"], "seatbid": [{"seat": format!("s{n}"), "bid": bids}]})
                .to_string()
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a mock bidder");
    let addr = l.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("openrtb_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let bidders: Vec<SocketAddr> = rt.block_on(async {
        futures_util::future::join_all((0..a.bidders).map(|n| mock_bidder(n, a.bidder_delay_ms)))
            .await
    });
    let mut toml = String::from("[server]\nport = 0\n[openrtb]\n");
    for (n, addr) in bidders.iter().enumerate() {
        toml += &format!(
            "[[openrtb.bidders]]\nname = \"b{n}\"\nendpoint = \"http://{addr}/bid\"\ntimeout_ms = {}\n",
            a.tmax_ms
        );
    }
    let cfg = Config::from_toml(&toml, std::path::Path::new(".")).expect("the bench config");
    let gw = Gateway::start(Options { config: cfg, dev_key: false, threads: 2 }).expect("start");
    let addr = gw.local_addr();
    let done = Arc::new(AtomicU64::new(0));
    let (ok, empty, other) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let started = Instant::now();
    let mut lat: Vec<u64> = rt.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let tasks = (0..a.concurrency).map(|c| {
            let client = client.clone();
            let (done, ok, empty, other) = (done.clone(), ok.clone(), empty.clone(), other.clone());
            let tmax = a.tmax_ms;
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0u64;
                while Instant::now() < until {
                    i += 1;
                    let body = json!({
                        "id": format!("r{c}-{i}"), "tmax": tmax, "at": 2,
                        "imp": [{"id": "1", "banner": {"w": 300, "h": 250}, "bidfloor": 0.5}],
                        "site": {"domain": "news.example"}, "device": {"geo": {"country": "USA"}}
                    })
                    .to_string();
                    let req = hyper::Request::post(format!("http://{addr}/openrtb2/auction"))
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body)))
                        .expect("a request");
                    let t = Instant::now();
                    match client.request(req).await {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            let _ = r.into_body().collect().await;
                            match s {
                                200 => ok.fetch_add(1, Ordering::Relaxed),
                                204 => empty.fetch_add(1, Ordering::Relaxed),
                                _ => other.fetch_add(1, Ordering::Relaxed),
                            };
                        }
                        Err(_) => {
                            other.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lat.push(t.elapsed().as_micros() as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                }
                lat
            })
        });
        let mut all = Vec::new();
        for t in futures_util::future::join_all(tasks).await {
            all.extend(t.unwrap_or_default());
        }
        all
    });
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let n = done.load(Ordering::Relaxed);
    println!(
        "openrtb_bench: {} bidders, concurrency {}, tmax {} ms, bidder delay {} ms",
        a.bidders, a.concurrency, a.tmax_ms, a.bidder_delay_ms
    );
    println!(
        "requests {n} in {secs:.1} s = {:.0}/s; 200: {}, 204: {}, other: {}",
        n as f64 / secs,
        ok.load(Ordering::Relaxed),
        empty.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed)
    );
    println!(
        "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    drop(gw);
}
