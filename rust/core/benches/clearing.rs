//! Criterion benches of the clearing kernels (the Python-side table with baselines lives in
//! benches/bench_clearing.py). Outputs are preallocated: this measures the kernels alone.
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rtbcore_core::clearing::{
    clear_single_into, clear_slots_into, Batch, Reserve, SinglePrice, SlotPrice,
};

fn bench(c: &mut Criterion) {
    let n_bids = 2_000_000usize;
    let mut x = 0x9E3779B97F4A7C15u64;
    let prices: Vec<f64> = (0..n_bids)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 5.0
        })
        .collect();
    let mut g = c.benchmark_group("clearing");
    g.throughput(Throughput::Elements(n_bids as u64));
    for per in [10usize, 100] {
        let n = n_bids / per;
        let offsets: Vec<i64> = (0..=n).map(|a| (a * per) as i64).collect();
        let batch = Batch::new(&offsets, &prices, None, Reserve::Scalar(0.1)).unwrap();
        let (mut w, mut p) = (vec![0i64; n], vec![0.0; n]);
        let (mut m, mut r) = (vec![0.0; n_bids], vec![0i32; n_bids]);
        g.bench_function(format!("second_price_{per}"), |b| {
            b.iter(|| {
                clear_single_into(&batch, SinglePrice::Second, 0.01, &mut w, &mut p, &mut m, &mut r)
                    .unwrap()
            })
        });
        let ctrs = [1.0, 0.8, 0.6, 0.4, 0.2];
        let (mut ws, mut ps) = (vec![0i64; n * 5], vec![0.0; n * 5]);
        g.bench_function(format!("gsp5_{per}"), |b| {
            b.iter(|| {
                clear_slots_into(&batch, SlotPrice::Gsp, &ctrs, 0.0, &mut ws, &mut ps).unwrap()
            })
        });
        g.bench_function(format!("vcg5_{per}"), |b| {
            b.iter(|| {
                clear_slots_into(&batch, SlotPrice::Vcg, &ctrs, 0.0, &mut ws, &mut ps).unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
