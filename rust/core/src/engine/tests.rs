//! Unit tests of the engine internals.

mod internals {
    use super::super::arena::{find_bidder, tag_of, Bid};
    use super::super::table::{Entry, HotTable};
    use super::super::*;

    #[test]
    fn find_bidder_finds_every_position() {
        let n = 77;
        let mut bids: Vec<Bid> =
            (0..n as u64).map(|i| Bid { bidder: i * 3, ..Default::default() }).collect();
        let mut tags: Vec<u16> = bids.iter().map(|b| tag_of(b.bidder)).collect();
        // storage past n holds leftovers of an earlier auction: never reported
        bids.resize(80, Bid { bidder: 1, ..Default::default() });
        tags.resize(80, tag_of(1));
        for i in 0..n {
            assert_eq!(find_bidder(&tags, &bids, n, bids[i].bidder), Some(i));
        }
        for x in (1..1000).filter(|x| x % 3 != 0) {
            assert_eq!(find_bidder(&tags, &bids, n, x), None);
        }
        assert_eq!(find_bidder(&tags, &bids, 0, 0), None);
        assert_eq!(find_bidder(&[], &[], 0, 1), None);
    }

    #[test]
    fn hot_table_matches_a_hashmap_under_churn() {
        let mut m = HotTable::new();
        let mut r = std::collections::HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 5000;
            if x % 3 == 0 {
                let had = m.find(k).map(|p| {
                    let slot = m.buckets[p].slot;
                    m.remove_at(p);
                    slot
                });
                assert_eq!(had, r.remove(&k));
            } else {
                match m.find(k) {
                    Some(p) => m.buckets[p].slot = step,
                    None => m.insert(Entry { id: k, slot: step, ..Entry::EMPTY }),
                }
                r.insert(k, step);
            }
            assert_eq!(m.len(), r.len());
        }
        for k in 0..5000 {
            assert_eq!(m.find(k).map(|p| m.buckets[p].slot), r.get(&k).copied());
        }
    }

    #[test]
    fn shard_of_is_in_range_and_spreads() {
        let mut counts = [0usize; 3];
        for a in 0..30_000u64 {
            counts[shard_of(a, 3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 9_000), "{counts:?}");
    }
}

#[cfg(test)]
mod worker_bench {
    use super::super::intake::{Block, CompactBid, Msg};
    use super::super::table::fib_hash;
    use super::super::*;

    pub(super) fn thread_cpu_ns() -> u64 {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes one timespec into the valid, exclusive pointer we pass.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    }

    /// One worker's CPU time per bid on the end-to-end bench's layout (5k auctions of 100 bids
    /// per 500k-bid block, shuffled): `cargo test --release -p rtbcore-core worker_ns_per_bid
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn worker_ns_per_bid() {
        let cfg = EngineConfig::default();
        let shared = Arc::new(Shared {
            workers: vec![WorkerShared {
                queued: CachePadded::new(AtomicUsize::new(0)),
                counters: SharedCounters::new(),
                hists: Mutex::new(Hists {
                    last_bid_to_result: new_hist(),
                    open_to_close: new_hist(),
                }),
                pinned: AtomicBool::new(false),
            }],
            free_bids: ArrayQueue::new(8),
            free_compact: ArrayQueue::new(8),
            free_results: ArrayQueue::new(64),
            rejected_outstanding: AtomicUsize::new(0),
            rejected_cap: 1 << 20,
            pin_error: Mutex::new(None),
            pin_failed: AtomicUsize::new(0),
            attach: AttachCounters::default(),
            panicked: AtomicUsize::new(0),
        });
        let (res_tx, res_rx) = crossbeam_channel::unbounded();
        let (rej_tx, _rej_rx) = crossbeam_channel::unbounded();
        let mut w = Worker::new(0, &cfg, shared, res_tx, rej_tx);
        let (na, per) = (5_000u64, 100u64);
        let mut x = 88172645463325252u64;
        let mut order: Vec<u64> = (0..na * per).collect();
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut times = Vec::new();
        for round in 0..12u64 {
            let base = round * na;
            let now = mono_ns();
            let reqs: Vec<OpenRequest> = (0..na)
                .map(|a| OpenRequest {
                    auction_id: base + a,
                    reserve: 0.0,
                    tmax_ns: 10_000_000_000,
                    expected_bids: per as u32,
                    open_ns: now,
                })
                .collect();
            let bids: Vec<CompactBid> = order
                .iter()
                .map(|&k| CompactBid {
                    auction_id: base + k / per,
                    bidder_id: k % per,
                    price: 0.1 + (fib_hash(k) >> 11) as f64 / (1u64 << 53) as f64,
                })
                .collect();
            let block = Block::Compact { bids, ts: now };
            w.handle(Msg::Open(reqs));
            let t0 = thread_cpu_ns();
            w.handle(Msg::Bids(block));
            w.flush();
            let dt = thread_cpu_ns() - t0;
            while res_rx.try_recv().is_ok() {}
            if round >= 2 {
                times.push(dt as f64 / (na * per) as f64);
            }
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("worker ns/bid: median {:.1}, min {:.1}", times[times.len() / 2], times[0]);
    }
}

#[cfg(test)]
mod prepare_bench {
    use super::super::table::fib_hash;
    use super::super::*;

    /// The submitting thread's CPU time per bid in `prepare` (validate + partition) on a
    /// 1M-bid block: `cargo test --release -p rtbcore-core prepare_ns_per_bid -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn prepare_ns_per_bid() {
        let eng = Engine::start(EngineConfig { pin: false, ..Default::default() }).unwrap();
        let n = 1_000_000u64;
        let a: Vec<i64> = (0..n).map(|k| ((fib_hash(k) >> 20) % 10_000) as i64).collect();
        let b: Vec<i64> = (0..n).map(|k| (k % 100) as i64).collect();
        let p: Vec<f64> = (0..n).map(|k| 0.1 + (k % 1000) as f64 / 100.0).collect();
        let arrays =
            BidArrays { auction_ids: &a, bidder_ids: &b, prices: &p, quality: None, kinds: None };
        let mut times = Vec::new();
        for _ in 0..12 {
            let t0 = super::worker_bench::thread_cpu_ns();
            let pr = eng.prepare(&arrays, mono_ns()).unwrap();
            let dt = super::worker_bench::thread_cpu_ns() - t0;
            for b in pr.blocks {
                b.recycle(&eng.shared);
            }
            times.push(dt as f64 / n as f64);
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("prepare ns/bid: median {:.1}, min {:.1}", times[times.len() / 2], times[0]);
    }
}
