//! Loom model of the batch-reserving Vyukov queue: every interleaving of a few producers and
//! consumers delivers each record exactly once, in each producer's order, with no data race on
//! a slot. Run with `make test-loom` (RUSTFLAGS="--cfg rtbcore_loom").
#![cfg(rtbcore_loom)]

use loom::sync::Arc;
use loom::thread;
use rtbcore_core::queue::BidQueue;
use rtbcore_core::record::{BidRecord, KIND_PLACE};

fn rec(producer: u64, i: u64) -> BidRecord {
    BidRecord::new(producer, i, 1.0, 1.0, KIND_PLACE)
}

/// Bounded preemptions keep the state space finite and the run short (tokio and crossbeam
/// bound theirs the same way); 3 covers every interleaving bug these models have caught.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn check(mut got: Vec<BidRecord>, producers: u64, per: u64) {
    got.sort_by_key(|r| (r.auction_id, r.bidder_id));
    let want: Vec<_> = (0..producers).flat_map(|p| (0..per).map(move |i| (p, i))).collect();
    assert_eq!(got.iter().map(|r| (r.auction_id, r.bidder_id)).collect::<Vec<_>>(), want);
}

/// Two producers push a block each into a queue of 2 while a consumer pops concurrently.
#[test]
fn two_batch_producers_one_consumer() {
    model(|| {
        let q = Arc::new(BidQueue::new(2).unwrap());
        let hs: Vec<_> = (0..2u64)
            .map(|p| {
                let q = q.clone();
                thread::spawn(move || {
                    let block = [rec(p, 0), rec(p, 1)];
                    let mut i = 0;
                    // bounded retries: loom explores every schedule of them
                    for _ in 0..3 {
                        i += q.push_many(&block[i..]).unwrap();
                        if i == 2 {
                            break;
                        }
                        thread::yield_now();
                    }
                    i
                })
            })
            .collect();
        let mut got = Vec::new();
        q.pop_many(&mut got, 2);
        let pushed: Vec<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        q.pop_many(&mut got, 4);
        // each producer's accepted prefix arrives, in order, exactly once
        let mut want = Vec::new();
        for (p, &n) in pushed.iter().enumerate() {
            want.extend((0..n as u64).map(|i| (p as u64, i)));
            let mine: Vec<_> =
                got.iter().filter(|r| r.auction_id == p as u64).map(|r| r.bidder_id).collect();
            assert_eq!(mine, (0..n as u64).collect::<Vec<_>>());
        }
        assert_eq!(got.len(), want.len());
        assert!(q.is_empty());
    });
}

/// One producer, two consumers racing over a queue of 1 that wraps on every record.
#[test]
fn one_producer_two_batch_consumers() {
    model(|| {
        let q = Arc::new(BidQueue::new(1).unwrap());
        let cs: Vec<_> = (0..2)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    q.pop_many(&mut got, 2);
                    got
                })
            })
            .collect();
        let mut pushed = 0;
        for i in 0..2 {
            if q.push(rec(0, i)).unwrap() {
                pushed += 1;
            } else {
                break;
            }
        }
        let mut got: Vec<BidRecord> = cs.into_iter().flat_map(|h| h.join().unwrap()).collect();
        q.pop_many(&mut got, 4);
        check(got, 1, pushed);
    });
}
