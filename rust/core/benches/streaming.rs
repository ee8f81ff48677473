//! Criterion benches of the bid queue and the bid ring (the Python-side table lives in benches/).
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtbcore_core::queue::BidQueue;
use rtbcore_core::record::{BidRecord, KIND_PLACE};
use rtbcore_core::ring::{BidRing, RingOptions, Start};

const BLOCK: usize = 10_000;

fn block() -> Vec<BidRecord> {
    (0..BLOCK as u64)
        .map(|i| BidRecord::new(i, i % 100, (i % 1000) as f64 * 0.01, 1.0, KIND_PLACE))
        .collect()
}

fn bench_queue(c: &mut Criterion) {
    let recs = block();
    let q = BidQueue::new(BLOCK).unwrap();
    let mut out = vec![BidRecord::default(); BLOCK];
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.bench_function("push_many+pop_into 10k", |b| {
        b.iter(|| {
            assert_eq!(q.push_many(&recs).unwrap(), BLOCK);
            assert_eq!(q.pop_into(&mut out), BLOCK);
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("push+pop one", |b| {
        b.iter(|| {
            q.push(recs[0]).unwrap();
            q.pop().unwrap()
        })
    });
    g.finish();
}

fn bench_ring(c: &mut Criterion) {
    let recs = block();
    let path = std::env::temp_dir().join(format!("rtbcore-crit-{}.ring", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let ring =
        BidRing::create(&path, RingOptions { capacity: 1 << 16, ..Default::default() }).unwrap();
    let mut r = ring.reader("bench", Start::Oldest).unwrap();
    let mut g = c.benchmark_group("ring");
    g.throughput(Throughput::Elements(BLOCK as u64));
    g.bench_function("append_many+read 10k", |b| {
        b.iter(|| {
            assert_eq!(ring.append_many(&recs).unwrap(), BLOCK);
            let mut n = 0;
            while n < BLOCK {
                n += r.read(BLOCK - n).unwrap().len();
            }
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("append+read one", |b| {
        b.iter(|| {
            assert!(ring.append(&recs[0]).unwrap());
            assert_eq!(r.read(1).unwrap().len(), 1);
        })
    });
    g.finish();
    // Cross-thread hand-off of blocks: a writer thread against this reader.
    let mut g = c.benchmark_group("ring threads");
    g.throughput(Throughput::Elements(100 * BLOCK as u64));
    g.sample_size(10);
    g.bench_function("writer thread -> reader, 100 x 10k", |b| {
        b.iter(|| {
            let w = {
                let path = path.clone();
                let recs = recs.clone();
                std::thread::spawn(move || {
                    let ring = BidRing::open(&path, None).unwrap();
                    for _ in 0..100 {
                        let mut i = 0;
                        while i < BLOCK {
                            let k = ring.append_many(&recs[i..]).unwrap();
                            i += k;
                            if k == 0 {
                                ring.wait_for_space(1, Duration::from_millis(10));
                            }
                        }
                    }
                })
            };
            let mut n = 0;
            while n < 100 * BLOCK {
                let got = r.read(65536).unwrap().len();
                n += got;
                if got == 0 {
                    r.wait(Duration::from_millis(10));
                }
            }
            w.join().unwrap();
        })
    });
    g.finish();
    drop(r);
    drop(ring);
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, bench_queue, bench_ring);
criterion_main!(benches);
