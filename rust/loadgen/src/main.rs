//! `rtbcore-loadgen`: drives an rtbcore exchange server (`rtbcore serve`, or any server of the
//! protocol in `proto/rtbcore/v1/bidding.proto`) from the outside and prints one JSON object.
//!
//! One publisher connection opens auctions; `--buyers` buyer connections (one key each) bid
//! once on every auction announced to them, `--bids-per-frame` bids per WebSocket frame. The
//! publisher paces auctions to `--rate` bids/s offered (open loop), or without `--rate` keeps
//! `--window` auctions in flight (closed loop, the maximum rate). `--idle N` first opens N
//! authenticated idle connections and reports the server's memory per connection. How the
//! latencies are measured: the `load` module's documentation and `docs/loadgen.md`.

mod conn;
mod idle;
mod lean;
mod load;
mod stats;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::conn::{Error, Target};
use crate::load::{Close, Settings, Shared};
use crate::stats::Tally;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CloseArg {
    /// every buyer bids, the auction closes on `expected_bids` (the throughput set-up)
    Expected,
    /// `expected_bids = 0`: the auction closes at its deadline (measures close -> AuctionWon)
    Deadline,
}

#[derive(Parser, Debug)]
#[command(name = "rtbcore-loadgen", about = "Load generator for rtbcore exchange servers")]
struct Args {
    /// the server's bidding endpoint, e.g. ws://127.0.0.1:8080/v1/bidding
    #[arg(long)]
    url: String,
    /// a file with one buyer API key a line (scope "bid" and "subscribe"); buyer i uses line i
    #[arg(long)]
    keys: PathBuf,
    /// the publisher's API key (scopes "publish" and "subscribe")
    #[arg(long)]
    publisher_key: Option<String>,
    /// buyer connections (at most the number of keys); 0 with --idle: only the idle test
    #[arg(long, default_value_t = 10)]
    buyers: usize,
    /// PlaceBid messages per frame (at most; a buyer sends what it was announced)
    #[arg(long, default_value_t = 100)]
    bids_per_frame: usize,
    /// offered bids/s (open loop); without it, closed loop at the maximum rate
    #[arg(long)]
    rate: Option<f64>,
    /// closed loop: auctions in flight (default 4 x bids-per-frame)
    #[arg(long)]
    window: Option<usize>,
    /// seconds of load (the publisher stops opening auctions then; results are drained)
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// stop after about this many bids (0: no limit)
    #[arg(long, default_value_t = 0)]
    max_bids: u64,
    /// seconds at the start not recorded in the latency histograms
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// seconds a buyer keeps reading for answers and results once the load is over
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// the auctions' tmax, ms
    #[arg(long, default_value_t = 1000)]
    tmax_ms: u64,
    #[arg(long, value_enum, default_value_t = CloseArg::Expected)]
    close: CloseArg,
    /// the JSON subprotocol (rtbcore.v1.json) instead of binary protobuf
    #[arg(long)]
    json: bool,
    /// the server's limit of messages per frame (OpenAuction blocks are cut to it)
    #[arg(long, default_value_t = 4096)]
    max_messages_per_frame: usize,
    /// comma-separated local addresses to connect from (e.g. 127.0.0.1,127.0.0.2), round-robin
    #[arg(long, value_delimiter = ',')]
    source_addrs: Vec<IpAddr>,
    /// authenticated idle connections to open first (keys are cycled)
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// the server's pid, to read its RSS before and after the idle connections
    #[arg(long)]
    server_pid: Option<u32>,
    /// runtime worker threads
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Raises RLIMIT_NOFILE to what `need` descriptors require, as far as allowed (the hard limit
/// too, with CAP_SYS_RESOURCE); returns the soft limit in force.
fn raise_nofile(need: usize) -> u64 {
    use rlimit::Resource;
    let want = need as u64;
    let Ok((soft, hard)) = Resource::NOFILE.get() else { return 0 };
    if want > hard && Resource::NOFILE.set(want, want).is_ok() {
        return want;
    }
    rlimit::increase_nofile_limit(want).unwrap_or(soft)
}

fn read_keys(path: &PathBuf) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--keys {path:?}: {e}"))?;
    let keys: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    if keys.is_empty() {
        return Err(format!("--keys {path:?}: no key in the file").into());
    }
    Ok(keys)
}

async fn run(args: Args) -> Result<Value, Error> {
    let target = Target::parse(&args.url, args.json)?;
    let keys = read_keys(&args.keys)?;
    if args.buyers > keys.len() {
        return Err(format!(
            "--buyers {}: only {} keys in {:?} (one buyer, one key)",
            args.buyers,
            keys.len(),
            args.keys
        )
        .into());
    }
    let nofile = raise_nofile(args.idle + args.buyers + 64);
    let source = |i: usize| {
        (!args.source_addrs.is_empty()).then(|| args.source_addrs[i % args.source_addrs.len()])
    };

    let (idle_conns, idle_report) = if args.idle > 0 {
        let (c, r) =
            idle::open_idle(&target, &keys, args.idle, &args.source_addrs, args.server_pid).await;
        (c, r)
    } else {
        (Vec::new(), Value::Null)
    };

    let mut report = json!({
        "url": args.url,
        "subprotocol": if args.json { "rtbcore.v1.json" } else { "rtbcore.v1.proto" },
        "nofile_limit": nofile,
        "idle": idle_report,
        "errors": [],
    });
    if args.buyers > 0 {
        let Some(pub_key) = args.publisher_key.as_deref() else {
            return Err("--publisher-key is required with --buyers > 0".into());
        };
        let load = bidding(&args, &target, &keys, pub_key, &source).await?;
        if let (Value::Object(r), Value::Object(l)) = (&mut report, load) {
            r.extend(l);
        }
    }
    for c in idle_conns {
        c.close().await;
    }
    Ok(report)
}

async fn bidding(
    args: &Args,
    target: &Target,
    keys: &[String],
    pub_key: &str,
    source: &dyn Fn(usize) -> Option<IpAddr>,
) -> Result<Value, Error> {
    let bids_per_frame = args.bids_per_frame.max(1);
    let settings = Arc::new(Settings {
        buyers: args.buyers,
        bids_per_frame,
        rate: args.rate.filter(|r| *r > 0.0),
        window: args.window.unwrap_or(4 * bids_per_frame).max(bids_per_frame),
        max_bids: (args.max_bids > 0).then_some(args.max_bids),
        tmax_ms: args.tmax_ms,
        close: match args.close {
            CloseArg::Expected => Close::Expected,
            CloseArg::Deadline => Close::Deadline,
        },
        warmup: Duration::from_secs_f64(args.warmup),
        drain: Duration::from_secs_f64(args.drain),
        max_messages_per_frame: args.max_messages_per_frame.max(1),
        prefix: load::run_prefix(),
    });
    let mut buyers = Vec::with_capacity(args.buyers);
    for (i, key) in keys.iter().enumerate().take(args.buyers) {
        let mut c = target.connect(source(i)).await?;
        c.login(key, Some(&["auction_started", "auction_won", "auction_lost"])).await?;
        buyers.push(c);
    }
    let mut publisher = target.connect(source(args.buyers)).await?;
    publisher.login(pub_key, Some(&["auction_closed"])).await?;

    // (this process, the server): CPU seconds so far
    let cpu_now = || (stats::cpu_s(None), args.server_pid.and_then(|p| stats::cpu_s(Some(p))));
    let cpu0 = cpu_now();
    let (finish_tx, finish_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(finish_rx));
    let mut tasks = Vec::new();
    for (i, c) in buyers.into_iter().enumerate() {
        tasks.push(tokio::spawn(load::buyer(c, i, settings.clone(), shared.clone())));
    }
    let pub_task = tokio::spawn(load::publisher(publisher, settings.clone(), shared.clone()));

    // the publisher drains early when --max-bids is reached or it fails
    shared.wait_drained(Duration::from_secs_f64(args.duration)).await;
    shared.stop_opening.store(true, Ordering::Relaxed);
    let send_phase = shared.start.elapsed();
    let drain = Duration::from_millis(args.tmax_ms) + Duration::from_secs(3);
    shared.wait_drained(drain).await;
    let _ = finish_tx.send(true);

    let mut total = Tally::default();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(t)) => total.merge(&t),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let publisher = match pub_task.await {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            errors.push(e.to_string());
            Tally::default()
        }
        Err(e) => {
            errors.push(e.to_string());
            Tally::default()
        }
    };
    let mut report = summarize(args, &settings, &shared, &total, publisher, send_phase, errors);
    report["cpu"] = cpu_report(cpu0, cpu_now(), total.bids_acked);
    Ok(report)
}

/// CPU seconds used during the load by this process and by the server (`--server-pid`), and
/// each per bid acknowledged (in microseconds).
fn cpu_report(
    before: (Option<f64>, Option<f64>),
    after: (Option<f64>, Option<f64>),
    bids: u64,
) -> Value {
    let used = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| b - a);
    let (own, server) = (used(before.0, after.0), used(before.1, after.1));
    let per_bid = |s: Option<f64>| s.filter(|_| bids > 0).map(|s| s * 1e6 / bids as f64);
    json!({
        "loadgen_s": own,
        "server_s": server,
        "loadgen_us_per_bid": per_bid(own),
        "server_us_per_bid": per_bid(server),
    })
}

fn per_s(n: u64, since: Instant, until: Option<Instant>) -> Value {
    match until {
        Some(u) if u > since && n > 0 => json!(n as f64 / (u - since).as_secs_f64()),
        _ => Value::Null,
    }
}

fn summarize(
    args: &Args,
    s: &Settings,
    sh: &Shared,
    b: &Tally,
    p: Tally,
    send_phase: Duration,
    errors: Vec<String>,
) -> Value {
    let results = b.won + b.lost;
    json!({
        "buyers": s.buyers,
        "bids_per_frame": s.bids_per_frame,
        "mode": if s.rate.is_some() { "open_loop" } else { "closed_loop" },
        "offered_bids_per_s": s.rate,
        "window": s.window,
        "close": format!("{:?}", args.close).to_lowercase(),
        "tmax_ms": s.tmax_ms,
        "send_phase_s": send_phase.as_secs_f64(),
        "bids_sent": b.bids_sent,
        "frames_sent": b.frames_sent,
        "bids_acked": b.bids_acked,
        "bids_rejected": b.bids_rejected,
        "bids_unanswered": b.bids_unanswered,
        "results": results,
        "won": b.won,
        "lost": b.lost,
        "auctions_opened": p.auctions_opened,
        "auctions_closed": p.auctions_closed,
        "bids_sent_per_s": b.bids_sent as f64 / send_phase.as_secs_f64(),
        "bids_acked_per_s": per_s(b.bids_acked, sh.start, b.last_ack),
        "results_per_s": per_s(results, sh.start, b.last_result),
        "latency": {
            "place_to_accept": b.place_to_accept.report(),
            "close_to_won": b.close_to_won.report(),
            "last_bid_to_won": b.last_bid_to_won.report(),
        },
        "reject_reasons": b.reject_reasons.iter().chain(p.reject_reasons.iter())
            .map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errors": errors,
    })
}

fn main() {
    let args = Args::parse();
    // A 2 MB transparent huge page is zeroed in one fault on first touch: milliseconds on a
    // virtual machine, which would land in the latencies this process measures. 4 KB pages
    // spread that cost evenly.
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes one integer flag and reads or writes no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match rt.block_on(run(args)) {
        Ok(report) => println!("{report}"),
        Err(e) => {
            eprintln!("rtbcore-loadgen: {e}");
            std::process::exit(1);
        }
    }
}
