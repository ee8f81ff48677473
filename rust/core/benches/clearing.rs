//! Criterion benches of the clearing kernels (the Python-side table lives in benches/).
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtbcore_core::clearing::{clear_second_price, Batch, Reserve};

fn bench(c: &mut Criterion) {
    let per = 100usize;
    let n = 100_000usize;
    let offsets: Vec<i64> = (0..=n).map(|a| (a * per) as i64).collect();
    let mut x = 0x9E3779B97F4A7C15u64;
    let prices: Vec<f64> = (0..n * per)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 5.0
        })
        .collect();
    let batch = Batch::new(&offsets, &prices, None, Reserve::Scalar(0.1)).unwrap();
    let mut g = c.benchmark_group("clearing");
    g.throughput(Throughput::Elements((n * per) as u64));
    g.bench_function("second_price_100", |b| b.iter(|| clear_second_price(&batch, 0.01)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
