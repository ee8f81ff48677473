//! Criterion benches of the auction engine through its public API (the Python-side table with
//! baselines lives in benches/bench_engine.py).
//!
//! - `engine prepare`: the submitting thread's cost per bid to validate a 1M-bid block and
//!   partition it by shard (the prepared block is dropped, which hands its buffers back).
//! - `engine submit+poll`: per auction, end to end: open 10k auctions, submit their 1M bids
//!   (100 per auction, shuffled) and poll until every result is out, with one worker (the
//!   worker's own cost per bid) and with two.
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rtbcore_core::engine::{mono_ns, AuctionResult, BidArrays, Engine, EngineConfig, OpenRequest};

const AUCTIONS: u64 = 10_000;
const PER: u64 = 100;

fn xorshift(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// A block of `AUCTIONS * PER` bids (auction index 0-based, bidder, price), shuffled.
fn shuffled_block() -> (Vec<u64>, Vec<u64>, Vec<f64>) {
    let mut x = 88172645463325252u64;
    let mut order: Vec<u64> = (0..AUCTIONS * PER).collect();
    for i in (1..order.len()).rev() {
        let j = (xorshift(&mut x) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let a = order.iter().map(|&k| k / PER).collect();
    let b = order.iter().map(|&k| k % PER).collect();
    let p =
        order.iter().map(|&k| 0.1 + (k.wrapping_mul(0x9E37_79B9) % 1000) as f64 / 100.0).collect();
    (a, b, p)
}

fn engine(workers: usize) -> Engine {
    Engine::start(EngineConfig {
        workers,
        pin: false,
        tmax_ns: 600_000_000_000,
        capacity: 1 << 22,
        ..Default::default()
    })
    .unwrap()
}

fn bench_prepare(c: &mut Criterion) {
    let (a, b, p) = shuffled_block();
    let q = vec![1.0; a.len()];
    let eng = engine(2);
    let mut g = c.benchmark_group("engine prepare");
    g.throughput(Throughput::Elements(a.len() as u64));
    g.sample_size(20);
    let compact =
        BidArrays { auction_ids: &a, bidder_ids: &b, prices: &p, quality: None, kinds: None };
    g.bench_function("prices only, 1M bids", |bn| {
        bn.iter(|| eng.prepare(&compact, mono_ns()).unwrap())
    });
    let full =
        BidArrays { auction_ids: &a, bidder_ids: &b, prices: &p, quality: Some(&q), kinds: None };
    g.bench_function("with quality, 1M bids", |bn| {
        bn.iter(|| eng.prepare(&full, mono_ns()).unwrap())
    });
    g.finish();
}

/// Opens the next `AUCTIONS` auctions (ids from `base`), submits their bids and polls every
/// result row.
fn submit_and_poll(
    eng: &Engine,
    block: &(Vec<u64>, Vec<u64>, Vec<f64>),
    base: u64,
    out: &mut Vec<AuctionResult>,
) {
    let now = mono_ns();
    let reqs: Vec<OpenRequest> =
        (0..AUCTIONS).map(|i| eng.open_request(base + i, None, None, PER as u32, now)).collect();
    eng.open(&reqs).unwrap();
    let ids: Vec<u64> = block.0.iter().map(|&a| a + base).collect();
    let arrays = BidArrays {
        auction_ids: &ids,
        bidder_ids: &block.1,
        prices: &block.2,
        quality: None,
        kinds: None,
    };
    eng.submit(&arrays, Duration::from_secs(60)).unwrap();
    out.clear();
    while out.len() < AUCTIONS as usize {
        if !eng.wait_results(Duration::from_secs(60)) {
            panic!("only {} of {AUCTIONS} results", out.len());
        }
        eng.poll_into(out, usize::MAX);
    }
}

fn bench_end_to_end(c: &mut Criterion) {
    let block = shuffled_block();
    let mut g = c.benchmark_group("engine submit+poll");
    g.throughput(Throughput::Elements(AUCTIONS));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    for workers in [1usize, 2] {
        let eng = engine(workers);
        let mut base = 0u64;
        let mut out = Vec::with_capacity(AUCTIONS as usize);
        g.bench_function(format!("{workers} worker(s), 10k auctions x 100 bids"), |bn| {
            bn.iter_batched(
                || {
                    base += AUCTIONS;
                    base
                },
                |b| submit_and_poll(&eng, &block, b, &mut out),
                BatchSize::PerIteration,
            )
        });
        eng.close().unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench_prepare, bench_end_to_end);
criterion_main!(benches);
