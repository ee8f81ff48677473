use rtbcore_core::clearing::*;
use std::time::Instant;
fn main() {
    let n_bids = 10_000_000usize;
    for per in [10usize, 100] {
        let n = n_bids / per;
        let offsets: Vec<i64> = (0..=n).map(|a| (a * per) as i64).collect();
        let mut x = 0x9E3779B97F4A7C15u64;
        let prices: Vec<f64> = (0..n_bids).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 }).collect();
        let batch = Batch::new(&offsets, &prices, None, Reserve::Scalar(0.5)).unwrap();
        let mut w = vec![0i64; n]; let mut p = vec![0.0; n]; let mut m = vec![0.0; n_bids]; let mut r = vec![0i32; n_bids];
        for _ in 0..2 { clear_single_into(&batch, SinglePrice::Second, 0.01, &mut w, &mut p, &mut m, &mut r); }
        let t = Instant::now();
        for _ in 0..5 { clear_single_into(&batch, SinglePrice::Second, 0.01, &mut w, &mut p, &mut m, &mut r); }
        println!("per {per}: prealloc single {:.1} ms", t.elapsed().as_secs_f64() * 200.0);
        let ctrs = [1.0, 0.8, 0.6, 0.4, 0.2];
        let mut ws = vec![0i64; n * 5]; let mut ps = vec![0.0; n * 5];
        let t = Instant::now();
        for _ in 0..5 { clear_slots_into(&batch, SlotPrice::Vcg, &ctrs, 0.0, &mut ws, &mut ps); }
        println!("per {per}: vcg {:.1} ms", t.elapsed().as_secs_f64() * 200.0);
    }
}
