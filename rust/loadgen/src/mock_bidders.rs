//! `rtbcore-mock-bidders`: OpenRTB 2.6 bidders for load tests. One process serves `--bidders`
//! HTTP/1.1 endpoints on 127.0.0.1 (one port each, `POST` any path), each answering a
//! `BidRequest` with one bid per imp after a latency drawn from `--latency-ms`, at a price drawn
//! from `--price`, or 204 (no bid) with probability `--no-bid`.
//!
//! Distributions: `fixed:X`, `uniform:A:B`, `lognormal:MEDIAN:SIGMA` (the median and the
//! sigma of the underlying normal), `exp:MEAN`. Latencies are tokio timers: an answer is never
//! sent before its drawn latency, and at most about a millisecond after (the timer's grain).
//!
//! Prints `{"ports": [...]}` on stdout once every port listens; on SIGTERM or SIGINT prints
//! `{"requests": [...], "bids": [...], "no_bids": [...], "invalid": [...]}` (per bidder, in
//! port order) and exits. A `GET` on any bidder's port answers that bidder's counts so far
//! (`{"requests": n, "bids": n, "no_bids": n, "invalid": n}`).
//!
//! ```text
//! rtbcore-mock-bidders --bidders 5 --latency-ms fixed:10 --price uniform:0.5:3
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Largest request body read.
const MAX_BODY: usize = 4 << 20;

#[derive(Parser, Debug)]
#[command(name = "rtbcore-mock-bidders", about = "Mock OpenRTB 2.6 bidders for load tests")]
struct Args {
    /// bidders, one loopback port each
    #[arg(long, default_value_t = 5)]
    bidders: usize,
    /// first port (bidder i listens on PORT + i); 0: ports of the OS's choice
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// the time before answering, ms: fixed:X, uniform:A:B, lognormal:MEDIAN:SIGMA, exp:MEAN
    #[arg(long, default_value = "fixed:0")]
    latency_ms: Dist,
    /// the bid price (CPM, in --currency), same forms; bidder i adds i * --price-step
    #[arg(long, default_value = "uniform:0.5:3")]
    price: Dist,
    /// added to bidder i's price, times i (so that bidders differ)
    #[arg(long, default_value_t = 0.0)]
    price_step: f64,
    /// probability of answering 204 (no bid)
    #[arg(long, default_value_t = 0.0)]
    no_bid: f64,
    /// the BidResponse's cur
    #[arg(long, default_value = "USD")]
    currency: String,
    /// runtime worker threads
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// A distribution of non-negative values.
#[derive(Clone, Copy, Debug)]
enum Dist {
    Fixed(f64),
    Uniform(f64, f64),
    LogNormal { median: f64, sigma: f64 },
    Exp(f64),
}

impl std::str::FromStr for Dist {
    type Err = String;

    fn from_str(s: &str) -> Result<Dist, String> {
        let mut it = s.split(':');
        let kind = it.next().unwrap_or_default();
        let xs: Vec<f64> = it
            .map(|x| x.parse::<f64>().map_err(|_| format!("{s:?}: {x:?} is not a number")))
            .collect::<Result<_, _>>()?;
        if xs.iter().any(|x| !x.is_finite() || *x < 0.0) {
            return Err(format!("{s:?}: values must be finite and >= 0"));
        }
        match (kind, xs.as_slice()) {
            ("fixed", [x]) => Ok(Dist::Fixed(*x)),
            ("uniform", [a, b]) if a <= b => Ok(Dist::Uniform(*a, *b)),
            ("lognormal", [m, s]) if *m > 0.0 => Ok(Dist::LogNormal { median: *m, sigma: *s }),
            ("exp", [m]) => Ok(Dist::Exp(*m)),
            _ => Err(format!(
                "{s:?}: expected fixed:X, uniform:A:B (A <= B), lognormal:MEDIAN:SIGMA \
                 (MEDIAN > 0) or exp:MEAN"
            )),
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        // distinct per thread: the address of a local and the time
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        (t ^ (&t as *const u64 as u64)) | 1
    });
}

/// A uniform draw in [0, 1) (xorshift64*).
fn unit() -> f64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

impl Dist {
    fn sample(self) -> f64 {
        match self {
            Dist::Fixed(x) => x,
            Dist::Uniform(a, b) => a + (b - a) * unit(),
            Dist::LogNormal { median, sigma } => {
                // Box-Muller
                let (u1, u2) = (1.0 - unit(), unit());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                median * (sigma * z).exp()
            }
            Dist::Exp(mean) => -mean * (1.0 - unit()).ln(),
        }
    }
}

#[derive(Deserialize)]
struct BidRequest<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(default, borrow)]
    imp: Vec<Imp<'a>>,
}

#[derive(Deserialize)]
struct Imp<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

#[derive(Serialize)]
struct BidResponse<'a> {
    id: &'a str,
    cur: &'a str,
    seatbid: [SeatBid<'a>; 1],
}

#[derive(Serialize)]
struct SeatBid<'a> {
    seat: &'a str,
    bid: Vec<Bid<'a>>,
}

#[derive(Serialize)]
struct Bid<'a> {
    id: String,
    impid: &'a str,
    price: f64,
    adm: &'a str,
    adomain: [&'a str; 1],
    crid: &'a str,
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bids: AtomicU64,
    no_bids: AtomicU64,
    invalid: AtomicU64,
}

impl Counts {
    fn json(&self) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "requests": get(&self.requests),
            "bids": get(&self.bids),
            "no_bids": get(&self.no_bids),
            "invalid": get(&self.invalid),
        })
    }
}

struct Bidder {
    n: usize,
    seat: String,
    args: Arc<Args>,
    counts: Counts,
}

fn answer(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if status == StatusCode::OK {
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    r
}

async fn handle(
    b: Arc<Bidder>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == hyper::Method::GET {
        return Ok(answer(StatusCode::OK, Bytes::from(b.counts.json().to_string())));
    }
    b.counts.requests.fetch_add(1, Ordering::Relaxed);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            b.counts.invalid.fetch_add(1, Ordering::Relaxed);
            return Ok(answer(StatusCode::BAD_REQUEST, Bytes::new()));
        }
    };
    let a = &b.args;
    let latency = a.latency_ms.sample();
    let no_bid = a.no_bid > 0.0 && unit() < a.no_bid;
    // parse first: the latency is the bidder's whole time, its own work included
    let out = match serde_json::from_slice::<BidRequest>(&body) {
        Err(_) => None,
        Ok(_) if no_bid => Some(Bytes::new()),
        Ok(r) => {
            let bids = r
                .imp
                .iter()
                .enumerate()
                .map(|(k, imp)| Bid {
                    id: format!("{}-{k}", b.n),
                    impid: &imp.id,
                    price: ((a.price.sample() + a.price_step * b.n as f64) * 1e4).round() / 1e4,
                    adm: "<div>ad</div>",
                    adomain: ["brand.example"],
                    crid: "creative-1",
                })
                .collect();
            let resp = BidResponse {
                id: &r.id,
                cur: &a.currency,
                seatbid: [SeatBid { seat: &b.seat, bid: bids }],
            };
            serde_json::to_vec(&resp).ok().map(Bytes::from)
        }
    };
    if latency > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(latency / 1e3)).await;
    }
    Ok(match out {
        None => {
            b.counts.invalid.fetch_add(1, Ordering::Relaxed);
            answer(StatusCode::BAD_REQUEST, Bytes::new())
        }
        Some(body) if body.is_empty() => {
            b.counts.no_bids.fetch_add(1, Ordering::Relaxed);
            answer(StatusCode::NO_CONTENT, body)
        }
        Some(body) => {
            b.counts.bids.fetch_add(1, Ordering::Relaxed);
            answer(StatusCode::OK, body)
        }
    })
}

async fn serve(l: TcpListener, b: Arc<Bidder>) {
    loop {
        let Ok((stream, _)) = l.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let b = b.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(b.clone(), req));
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}

fn main() {
    let args = Arc::new(Args::parse());
    if args.bidders == 0 || args.threads == 0 {
        eprintln!("rtbcore-mock-bidders: --bidders and --threads must be > 0");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let mut bidders = Vec::new();
        let mut ports = Vec::new();
        for n in 0..args.bidders {
            let port = if args.port == 0 { 0 } else { args.port + n as u16 };
            let l = match TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("rtbcore-mock-bidders: bind 127.0.0.1:{port}: {e}");
                    std::process::exit(1);
                }
            };
            ports.push(l.local_addr().expect("a bound address").port());
            let b = Arc::new(Bidder {
                n,
                seat: format!("seat{n}"),
                args: args.clone(),
                counts: Counts::default(),
            });
            bidders.push(b.clone());
            tokio::spawn(serve(l, b));
        }
        println!("{}", json!({ "ports": ports }));
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let count = |f: fn(&Counts) -> &AtomicU64| -> Vec<u64> {
            bidders.iter().map(|b| f(&b.counts).load(Ordering::Relaxed)).collect()
        };
        println!(
            "{}",
            json!({
                "requests": count(|c| &c.requests),
                "bids": count(|c| &c.bids),
                "no_bids": count(|c| &c.no_bids),
                "invalid": count(|c| &c.invalid),
            })
        );
        let _ = std::io::stdout().flush();
        std::process::exit(0);
    });
}
