use super::dispatch::{Baseline, Kernel, Single, Slots};
use super::*;
use crate::error::CoreError;
use crate::record::Field;

/// The baseline (non-AVX2) single-slot kernels with increment 0.01, whatever the CPU has.
fn baseline_single(
    b: &Batch<'_>,
    rule: SinglePrice,
    (winner, price): (&mut [i64], &mut [f64]),
    (min_to_win, loss_reason): (&mut [f64], &mut [i32]),
) -> usize {
    let batch = b;
    let k = Single { batch, rule, increment: 0.01, winner, price, min_to_win, loss_reason };
    k.run(Baseline).unwrap()
}

/// The baseline position-auction kernels with increment 0.01.
fn baseline_slots(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    Slots { batch, rule, ctrs, increment: 0.01, winner, price }.run(Baseline).unwrap()
}

fn batch<'a>(off: &'a [i64], p: &'a [f64], q: Option<&'a [f64]>, r: f64) -> Batch<'a> {
    Batch::new(off, p, q, Reserve::Scalar(r)).unwrap()
}

#[test]
fn second_price_basic() {
    let off = [0, 3, 3, 4];
    let p = [1.0, 3.0, 2.0, 0.7];
    let r = clear_second_price(&batch(&off, &p, None, 0.5), 0.01);
    assert_eq!(r.winner, vec![1, -1, 3]);
    assert!((r.price[0] - 2.01).abs() < 1e-12);
    assert_eq!(r.price[1], 0.0);
    assert!((r.price[2] - 0.51).abs() < 1e-12);
    assert_eq!(r.loss_reason, vec![102, 0, 102, 0]);
    assert_eq!(r.min_to_win[1], 2.0);
}

#[test]
fn ties_go_to_lower_index() {
    let off = [0, 3];
    let p = [2.0, 2.0, 1.0];
    let r = clear_first_price(&batch(&off, &p, None, 0.0));
    assert_eq!(r.winner, vec![0]);
    let r = clear_second_price(&batch(&off, &p, None, 0.0), 0.0);
    assert_eq!(r.price, vec![2.0]);
}

#[test]
fn quality_scores_rank_and_price() {
    let off = [0, 2];
    let p = [2.0, 3.0];
    let q = [2.0, 1.0];
    let r = clear_second_price(&batch(&off, &p, Some(&q), 0.0), 0.0);
    assert_eq!(r.winner, vec![0]);
    assert!((r.price[0] - 1.5).abs() < 1e-12);
}

#[test]
fn invalid_bids_are_reported() {
    let off = [0, 3];
    let p = [f64::NAN, 1.0, -1.0];
    let b = batch(&off, &p, None, 0.0);
    assert!(matches!(b.first_invalid_bid(), Some(CoreError::InvalidBid { index: 0, .. })));
    let r = clear_first_price(&b);
    assert_eq!(r.winner, vec![1]);
    assert_eq!(r.loss_reason, vec![3, 0, 3]);
    assert!(r.min_to_win[0].is_nan());
}

#[test]
fn bad_structure_is_refused() {
    let p = [1.0, 2.0];
    assert!(Batch::new(&[1, 2], &p, None, Reserve::Scalar(0.0)).is_err());
    assert!(Batch::new(&[0, 2, 1], &p, None, Reserve::Scalar(0.0)).is_err());
    assert!(Batch::new(&[0, 3], &p, None, Reserve::Scalar(0.0)).is_err());
    assert!(Batch::new(&[0, 2], &p, None, Reserve::Scalar(-1.0)).is_err());
    assert!(check_slot_ctrs(&[1.0, 2.0]).is_err());
    assert!(check_slot_ctrs(&[]).is_err());
}

#[test]
fn vcg_matches_hand_computation() {
    // three bids 5, 3, 1 for two slots with factors 1.0, 0.5
    let off = [0, 3];
    let p = [5.0, 3.0, 1.0];
    let r = clear_vcg(&batch(&off, &p, None, 0.0), &[1.0, 0.5]);
    assert_eq!(r.winner, vec![0, 1]);
    // slot 2 pays (0.5 - 0) * 1 = 0.5 in total: 1.0 per unit
    assert!((r.price[1] - 1.0).abs() < 1e-12);
    // slot 1 pays (1 - 0.5) * 3 + 0.5 * 1 = 2.0 in total: 2.0 per unit
    assert!((r.price[0] - 2.0).abs() < 1e-12);
    let g = clear_gsp(&batch(&off, &p, None, 0.0), &[1.0, 0.5], 0.0);
    assert_eq!(g.price, vec![3.0, 1.0]);
}

/// Naive reference: eligible local indices sorted by (adjusted desc, index asc).
fn naive_rank(p: &[f64], q: &[f64], r: f64) -> Vec<(f64, usize)> {
    let mut v: Vec<(f64, usize)> = (0..p.len())
        .filter(|&i| {
            let finite = p[i].is_finite() && q[i].is_finite() && (p[i] * q[i]).is_finite();
            finite && p[i] > 0.0 && p[i] >= r && q[i] > 0.0
        })
        .map(|i| (p[i] * q[i], i))
        .collect();
    v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
    v
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Every segment length (the SIMD lanes, their merge and the scalar tail; the top-k
    /// network for k + 1 <= 8 and insertion above) against the naive sort.
    #[test]
    fn kernels_match_naive_sort(
        raw in proptest::collection::vec((0u8..13, 0u8..4), 0..70),
        r in proptest::sample::select(vec![0.0, 0.5, 1.5]),
        k in 1usize..11,
        use_q in proptest::bool::ANY,
    ) {
        let p: Vec<f64> = raw.iter().map(|&(x, _)| match x {
            10 => f64::NAN,
            11 => -1.0,
            12 => 1.5e308, // times a quality of 2: an adjusted bid that overflows
            x => f64::from(x) * 0.5,
        }).collect();
        let q: Vec<f64> = raw.iter().map(|&(_, y)| if use_q { [0.5, 1.0, 2.0, 0.0][y as usize] } else { 1.0 }).collect();
        let qs = if use_q { Some(&q[..]) } else { None };
        let rank = naive_rank(&p, &q, r);
        let n = p.len();
        let (mut mtw, mut reason) = (vec![0.0; n], vec![0; n]);
        let out = clear_segment(SinglePrice::Second, &p, qs, r, 0.0, &mut mtw, &mut reason);
        match rank.first() {
            None => proptest::prop_assert_eq!(out.winner, -1),
            Some(&(_, w)) => {
                proptest::prop_assert_eq!(out.winner, w as i64);
                let floor = rank.get(1).map_or(r, |&(a2, _)| r.max(a2 / q[w]));
                proptest::prop_assert_eq!(out.price, p[w].min(floor));
            }
        }
        let ctrs: Vec<f64> = (0..k).map(|s| 1.0 / (s as f64 + 1.0)).collect();
        let (mut w, mut pr, mut scratch) = (vec![0; k], vec![0.0; k], Vec::new());
        clear_segment_slots(SlotPrice::Gsp, &p, qs, r, 0.0, &ctrs, &mut scratch, &mut w, &mut pr);
        for (s, &ws) in w.iter().enumerate() {
            let expect = rank.get(s).map_or(-1, |&(_, i)| i as i64);
            proptest::prop_assert_eq!(ws, expect);
        }
        // the batch kernel (on x86_64 with AVX2: the rank-counting path for short
        // segments) agrees with the per-segment one
        let off = [0i64, n as i64];
        let b = Batch::new(&off, &p, qs, Reserve::Scalar(r)).unwrap();
        let g = clear_gsp(&b, &ctrs, 0.0);
        proptest::prop_assert_eq!(&g.winner, &w);
        proptest::prop_assert_eq!(&g.price, &pr);
        // the baseline (non-AVX2) batch kernels give the same answers as the dispatched ones
        for rule in [SlotPrice::Gsp, SlotPrice::Vcg] {
            let d = clear_slots(&b, rule, &ctrs, 0.01);
            let (mut bw, mut bp) = (vec![0; k], vec![0.0; k]);
            let bad = baseline_slots(&b, rule, &ctrs, &mut bw, &mut bp);
            proptest::prop_assert_eq!((&d.winner, &d.price, d.n_invalid), (&bw, &bp, bad));
        }
        let d = clear_second_price(&b, 0.01);
        let (mut bw, mut bp, mut bm, mut br) = (vec![0; 1], vec![0.0; 1], vec![0.0; n], vec![0; n]);
        let bad = baseline_single(&b, SinglePrice::Second, (&mut bw, &mut bp), (&mut bm, &mut br));
        proptest::prop_assert_eq!((&d.winner, &d.price, &d.loss_reason, d.n_invalid), (&bw, &bp, &br, bad));
        for (x, y) in d.min_to_win.iter().zip(&bm) {
            proptest::prop_assert!(x == y || (x.is_nan() && y.is_nan()));
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Many auctions of mixed lengths (every short-kernel chunk count and tail, empty
    /// auctions, the long path with its paired steps and masked tail), scalar or per-auction reserves, quality on/off, invalid
    /// prices and qualities: the dispatched single-slot kernels (AVX2 short path when the CPU
    /// has it) are bit-identical to the baseline ones for both rules, and so are the
    /// position-auction kernels for k = 1..=8.
    #[test]
    fn single_slot_batch_matches_baseline(
        sizes in proptest::collection::vec(0usize..60, 1..12),
        raw in proptest::collection::vec((0u8..15, 0u8..7), 720),
        reserves in proptest::collection::vec(proptest::sample::select(vec![0.0, 0.5, 1.5, 3.0]), 12),
        per_auction in proptest::bool::ANY,
        use_q in proptest::bool::ANY,
    ) {
        let n: usize = sizes.iter().sum();
        let p: Vec<f64> = raw[..n].iter().map(|&(x, _)| match x {
            10 => f64::NAN,
            11 => -1.0,
            12 => f64::INFINITY,
            13 => -0.0,
            14 => 1.5e308, // times a quality of 2 or 4: an adjusted bid that overflows
            x => f64::from(x) * 0.5,
        }).collect();
        let q: Vec<f64> = raw[..n].iter()
            .map(|&(_, y)| [0.5, 1.0, 2.0, 0.0, f64::NAN, 0.3, 4.0][y as usize])
            .collect();
        let qs = if use_q { Some(&q[..]) } else { None };
        let mut off = vec![0i64];
        for s in &sizes {
            off.push(off[off.len() - 1] + *s as i64);
        }
        let na = sizes.len();
        let res = if per_auction {
            Reserve::PerAuction(&reserves[..na])
        } else {
            Reserve::Scalar(reserves[0])
        };
        let b = Batch::new(&off, &p, qs, res).unwrap();
        for rule in [SinglePrice::First, SinglePrice::Second] {
            let d = clear_single(&b, rule, 0.01);
            let (mut bw, mut bp, mut bm, mut br) = (vec![0; na], vec![0.0; na], vec![0.0; n], vec![0; n]);
            let bad = baseline_single(&b, rule, (&mut bw, &mut bp), (&mut bm, &mut br));
            proptest::prop_assert_eq!((&d.winner, &d.loss_reason, d.n_invalid), (&bw, &br, bad));
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&d.price), bits(&bp));
            proptest::prop_assert_eq!(bits(&d.min_to_win), bits(&bm));
        }
        // position auctions: the dispatched kernels (AVX2 rank counting for short auctions,
        // the vector entry test for long ones) against the baseline ones
        let k = sizes[0] % 8 + 1;
        let ctrs: Vec<f64> = (0..k).map(|s| 1.0 / (s as f64 + 1.0)).collect();
        for rule in [SlotPrice::Gsp, SlotPrice::Vcg] {
            let d = clear_slots(&b, rule, &ctrs, 0.01);
            let (mut bw, mut bp) = (vec![0; na * k], vec![0.0; na * k]);
            let bad = baseline_slots(&b, rule, &ctrs, &mut bw, &mut bp);
            proptest::prop_assert_eq!((&d.winner, &d.price, d.n_invalid), (&bw, &bp, bad));
        }
    }
}

/// Long position auctions (past the stack buffer of the long kernel, and just inside it)
/// against the baseline kernels, with invalid bids and ties, for every k the long path takes.
#[test]
fn long_position_auctions_match_baseline() {
    let sizes = [17usize, 64, 255, 256, 257, 259, 300, 1000];
    let n: usize = sizes.iter().sum();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let p: Vec<f64> = (0..n)
        .map(|_| match next() % 50 {
            0 => f64::NAN,
            1 => -1.0,
            2 => 0.0,
            r => (r % 23) as f64 * 0.25, // many ties
        })
        .collect();
    let q: Vec<f64> = (0..n).map(|_| [1.0, 0.5, 2.0, 0.0][(next() % 4) as usize]).collect();
    let mut off = vec![0i64];
    for s in sizes {
        off.push(off[off.len() - 1] + s as i64);
    }
    for (qs, r) in [(None, 0.0), (Some(&q[..]), 1.0), (None, 2.5)] {
        let b = Batch::new(&off, &p, qs, Reserve::Scalar(r)).unwrap();
        for k in 1..=7 {
            let ctrs: Vec<f64> = (0..k).map(|s| 1.0 / (s as f64 + 1.0)).collect();
            for rule in [SlotPrice::Gsp, SlotPrice::Vcg] {
                let d = clear_slots(&b, rule, &ctrs, 0.01);
                let na = sizes.len();
                let (mut bw, mut bp) = (vec![0; na * k], vec![0.0; na * k]);
                let bad = baseline_slots(&b, rule, &ctrs, &mut bw, &mut bp);
                assert_eq!((&d.winner, &d.price, d.n_invalid), (&bw, &bp, bad), "k={k}");
            }
        }
    }
}

#[test]
fn vcg_reserve_is_a_phantom_competitor() {
    // bids 10 and 4, reserve 3, slots 1.0 / 0.5: the top bid keeps slot 1 above 4 and
    // slot 2 above its floor 3: 0.5 * 4 + 0.5 * 3 = 3.5 (the unfloored formula says 3)
    let off = [0, 2];
    let p = [10.0, 4.0];
    let r = clear_vcg(&batch(&off, &p, None, 3.0), &[1.0, 0.5]);
    assert_eq!(r.winner, vec![0, 1]);
    assert!((r.price[0] - 3.5).abs() < 1e-12);
    assert!((r.price[1] - 3.0).abs() < 1e-12);
    // reserve 0: the textbook VCG prices exactly
    let r = clear_vcg(&batch(&off, &p, None, 0.0), &[1.0, 0.5]);
    assert!((r.price[0] - 2.0).abs() < 1e-12 && r.price[1] == 0.0);
}

#[test]
fn invalid_count_and_first_invalid_across_fields() {
    let off = [0, 4];
    let p = [1.0, 2.0, f64::INFINITY, 3.0];
    let q = [1.0, 0.0, 1.0, 1.0];
    let b = batch(&off, &p, Some(&q), 0.0);
    assert!(matches!(
        b.first_invalid_bid(),
        Some(CoreError::InvalidBid { field: Field::Quality, index: 1, .. })
    ));
    let r = clear_second_price(&b, 0.0);
    assert_eq!(r.n_invalid, 2);
    assert_eq!(r.loss_reason, vec![102, 3, 3, 0]);
    assert_eq!(clear_gsp(&b, &[1.0], 0.0).n_invalid, 2);
}

#[test]
fn overflowing_adjusted_bids_are_invalid() {
    // 1e308 × 2 overflows to inf: the bid is invalid (reason 3, counted, named by the price),
    // and no output holds an infinity
    let off = [0, 3];
    let p = [1e308, 5.0, 1.5e308];
    let q = [2.0, 1.0, 1.0];
    let b = batch(&off, &p, Some(&q), 0.0);
    assert!(matches!(
        b.first_invalid_bid(),
        Some(CoreError::InvalidBid { field: Field::Price, index: 0, .. })
    ));
    for r in [clear_second_price(&b, 0.01), clear_first_price(&b)] {
        assert_eq!((r.winner[0], r.n_invalid), (2, 1));
        assert_eq!(r.loss_reason, vec![3, 102, 0]);
        assert!(r.price[0].is_finite() && r.min_to_win[0].is_nan(), "{r:?}");
        assert!(r.min_to_win[1..].iter().all(|m| m.is_finite()), "{r:?}");
    }
    let g = clear_gsp(&b, &[1.0, 0.5], 0.0);
    assert_eq!((&g.winner[..], g.n_invalid), (&[2, 1][..], 1));
    assert!(g.price.iter().all(|x| x.is_finite()), "{g:?}");
}

#[test]
fn offsets_changed_after_the_check_are_refused_not_a_panic() {
    // a batch whose offsets no longer hold what `Batch::new` checked, as when a caller's other
    // thread rewrites them during the call: every kernel refuses it, the baseline ones too
    let p = [1.0, 2.0, 3.0, 4.0];
    for bad in [[0i64, 3, 2, 4], [0, 9, 9, 4], [0, 1, -5, 4], [0, 1, 2, 3], [0, 1, 2, 5]] {
        let b = Batch { offsets: &bad, prices: &p, quality: None, reserve: Reserve::Scalar(0.0) };
        let (mut w, mut pr, mut m, mut l) = (vec![0; 3], vec![0.0; 3], vec![0.0; 4], vec![0; 4]);
        let r = clear_single_into(&b, SinglePrice::Second, 0.0, &mut w, &mut pr, &mut m, &mut l);
        assert!(matches!(r, Err(CoreError::InvalidInput { field: "offsets", .. })), "{r:?}");
        let r = Single {
            batch: &b,
            rule: SinglePrice::First,
            increment: 0.0,
            winner: &mut w,
            price: &mut pr,
            min_to_win: &mut m,
            loss_reason: &mut l,
        }
        .run(Baseline);
        assert!(matches!(r, Err(CoreError::InvalidInput { field: "offsets", .. })), "{r:?}");
        let (mut w, mut pr) = (vec![0; 6], vec![0.0; 6]);
        for rule in [SlotPrice::Gsp, SlotPrice::Vcg] {
            let r = clear_slots_into(&b, rule, &[1.0, 0.5], 0.0, &mut w, &mut pr);
            assert!(matches!(r, Err(CoreError::InvalidInput { field: "offsets", .. })), "{r:?}");
        }
    }
}

#[test]
fn vcg_with_extreme_slot_factors_and_qualities_stays_finite() {
    // bids 5, 3, 1 with qualities 1e300: the total payment (1e10 · 3e300) and its divisor
    // (1e10 · 1e300) both overflow, which gave NaN; the prices are those of factors 1 / 0.5
    let off = [0, 3];
    let p = [5.0, 3.0, 1.0];
    let q = [1e300; 3];
    let b = batch(&off, &p, Some(&q), 0.0);
    for ctrs in [[1e10, 5e9], [1e308, 5e307], [1.0, 0.5]] {
        let r = clear_vcg(&b, &ctrs);
        assert_eq!(r.winner, vec![0, 1]);
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * y;
        assert!(close(r.price[0], 2.0) && close(r.price[1], 1.0), "{ctrs:?}: {:?}", r.price);
    }
}
