//! The single-slot AVX2 kernels: a segment of up to [`SHORT_MAX`] bids in registers, a longer
//! one in three passes. Both are bit-identical to [`crate::clearing::scalar::segment_single`]:
//! the same eligibility set (the bid rule of [`crate::record`]) and the same arithmetic.

use std::arch::x86_64::*;

use super::{
    classify4, eligible_floor, hsum_epi64, lanes_below, load, load4, load_tail, prefetch, store,
    store4, store4_i32, store_i32, store_tail, store_tail_i32, Avx2, PREFETCH_READ, PREFETCH_WRITE,
    SHORT_MAX,
};
use crate::clearing::pricing::{price_winner, NO_SALE};
use crate::clearing::scalar::{fmax, sel};
use crate::clearing::{
    SegmentOutcome, SinglePrice, LOSS_BELOW_FLOOR, LOSS_INVALID, LOSS_OUTBID, LOSS_WON,
};

impl Avx2 {
    /// [`crate::clearing::scalar::segment_single`] with the AVX2 kernels: `p`, `min_to_win`,
    /// `loss_reason` and (with `Q`) `q` are one segment's slices, all the same length.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn segment_single<const Q: bool>(
        self,
        rule: SinglePrice,
        p: &[f64],
        q: &[f64],
        reserve: f64,
        increment: f64,
        min_to_win: &mut [f64],
        loss_reason: &mut [i32],
    ) -> (SegmentOutcome, usize) {
        let (m, l) = (min_to_win, loss_reason);
        // SAFETY: an `Avx2` exists only when the CPU supports AVX2, all these kernels need.
        unsafe {
            if p.len() > SHORT_MAX {
                return long::<Q>(rule, p, q, reserve, increment, m, l);
            }
            match p.len().div_ceil(4) {
                0 => (NO_SALE, 0),
                1 => short::<Q, 1>(rule, p, q, reserve, increment, m, l),
                2 => short::<Q, 2>(rule, p, q, reserve, increment, m, l),
                3 => short::<Q, 3>(rule, p, q, reserve, increment, m, l),
                _ => short::<Q, 4>(rule, p, q, reserve, increment, m, l),
            }
        }
    }
}

/// A segment of `n` bids, 4 (NC - 1) < n <= 4 NC, with the whole segment in `NC` AVX2
/// registers: eligibility and adjusted bids for all lanes at once, the top bid by a
/// horizontal max and the first lane equal to it (ties to the lower index), the runner-up by a
/// second horizontal max with the winner's lane masked out, then the per-bid outputs from the
/// same registers. No serial chain through a running maximum and no data-dependent branch per
/// bid.
///
/// # Panics
/// If `p.len()` is outside that range, or the other slices are not `p.len()` long (`q` only
/// with `Q`).
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn short<const Q: bool, const NC: usize>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    let n = p.len();
    // once per segment; it also lets the compiler drop the bounds checks of the full chunks
    assert!(4 * (NC - 1) < n && n <= 4 * NC);
    assert!(min_to_win.len() == n && loss_reason.len() == n && (!Q || q.len() == n));
    let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
    let zero = _mm256_setzero_pd();
    let r = _mm256_set1_pd(reserve);
    let floor = _mm256_set1_pd(eligible_floor(reserve));
    let (base, up_v, up_e) = (
        _mm256_set1_pd(f64::from(LOSS_INVALID)),
        _mm256_set1_pd(f64::from(LOSS_BELOW_FLOOR - LOSS_INVALID)),
        _mm256_set1_pd(f64::from(LOSS_OUTBID - LOSS_BELOW_FLOOR)),
    );
    // the lanes of the last chunk that hold bids (1..=4)
    let tail = lanes_below(n - 4 * (NC - 1));
    let ones = _mm256_set1_epi64x(-1);
    let mut qv = [zero; NC];
    let mut valid = [zero; NC];
    let mut reason = [_mm_setzero_si128(); NC];
    let mut adj = [ninf; NC];
    let mut top = ninf;
    let mut bad = _mm256_setzero_si256();
    for c in 0..NC {
        let last = c == NC - 1;
        // lanes past the end read as 0.0: a valid price that is never eligible
        let ld = |s: &[f64]| if last { load_tail(&s[4 * c..]) } else { load4(s, 4 * c) };
        let x = ld(p);
        if Q {
            qv[c] = ld(q);
        }
        let (v, e, a) = classify4::<Q>(x, qv[c], floor);
        valid[c] = v;
        // the loser's reason (3 / 100 / 102), exact in f64, narrowed to i32
        reason[c] = _mm256_cvtpd_epi32(_mm256_add_pd(
            base,
            _mm256_add_pd(_mm256_and_pd(v, up_v), _mm256_and_pd(e, up_e)),
        ));
        adj[c] = a;
        top = _mm256_max_pd(top, a);
        // count invalid lanes (all ones = -1); a quality past the end reads 0.0 and is not
        // counted
        let mut b = _mm256_castpd_si256(v);
        if Q && last {
            b = _mm256_or_si256(b, _mm256_xor_si256(tail, ones));
        }
        bad = _mm256_sub_epi64(bad, _mm256_xor_si256(b, ones));
    }
    let n_bad = hsum_epi64(bad) as usize;
    let hmax = |v: __m256d| {
        let m = _mm256_max_pd(v, _mm256_permute2f128_pd::<1>(v, v));
        _mm256_max_pd(m, _mm256_permute_pd::<0b0101>(m))
    };
    let a1v = hmax(top);
    let a1 = _mm256_cvtsd_f64(a1v);
    // the winner is the first lane equal to the top; the runner-up is the top again when two
    // lanes tie with it, else the largest of the others (no dependency on the index)
    let mut bits = 0u32;
    let mut others = ninf;
    for (c, &a) in adj.iter().enumerate() {
        let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(a, a1v);
        bits |= (_mm256_movemask_pd(eq) as u32) << (4 * c);
        others = _mm256_max_pd(others, _mm256_blendv_pd(a, ninf, eq));
    }
    let tie = bits & bits.wrapping_sub(1) != 0;
    let a2 = sel(tie, a1, _mm256_cvtsd_f64(hmax(others)));
    let best = if a1 == f64::NEG_INFINITY { usize::MAX } else { bits.trailing_zeros() as usize };
    let (out, target_adj) = if best < n {
        let qw = if Q { q[best] } else { 1.0 };
        price_winner(rule, best, a1, a2, p[best], qw, reserve, increment)
    } else {
        (NO_SALE, 0.0)
    };
    let nan = _mm256_set1_pd(f64::NAN);
    let t = _mm256_set1_pd(target_adj);
    let lose = _mm256_set1_pd(fmax(reserve, target_adj));
    for c in 0..NC {
        // max_pd(a, b) is `a > b ? a : b`, the scalar `fmax`
        let l = if Q { _mm256_max_pd(r, _mm256_div_pd(t, qv[c])) } else { lose };
        let m = _mm256_blendv_pd(nan, l, valid[c]);
        if c == NC - 1 {
            store_tail(&mut min_to_win[4 * c..], m);
            store_tail_i32(&mut loss_reason[4 * c..], reason[c]);
        } else {
            store4(min_to_win, 4 * c, m);
            store4_i32(loss_reason, 4 * c, reason[c]);
        }
    }
    if best < n {
        min_to_win[best] = out.winner_min_to_win;
        loss_reason[best] = LOSS_WON;
    }
    (out, n_bad)
}

/// A segment of any length in three AVX2 passes over the (L1-resident after the first)
/// segment, with no index tracking and no scalar tail: (1) per-lane top two adjusted bids by
/// max / min only, nothing stored; (2) the winner as the first bid whose adjusted bid equals
/// the top (it is usually found early); (3) every bid's `min_to_win` and `loss_reason`, and
/// the valid count. The last partial chunk uses masked loads and stores.
///
/// # Panics
/// If `min_to_win`, `loss_reason` and (with `Q`) `q` are not `p.len()` long.
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn long<const Q: bool>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    let n = p.len();
    assert!(min_to_win.len() == n && loss_reason.len() == n && (!Q || q.len() == n));
    let q = if Q { &q[..n] } else { q };
    let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
    let zero = _mm256_setzero_pd();
    let floor = _mm256_set1_pd(eligible_floor(reserve));
    // whole chunks of four bids (the compiler sees their bounds) and the 0..=3 bids after them
    let (pc, pt) = p.as_chunks::<4>();
    let (qc, qt) = q.as_chunks::<4>();
    let qc = if Q { &qc[..pc.len()] } else { qc };
    // (valid, eligible, adjusted-or-minus-infinity, quality) of chunk c, or with `masked` of the
    // bids after the whole chunks; lanes past the end read 0.0 (a valid, never eligible price;
    // a quality of 0.0 reads invalid)
    let classify = |c: usize, masked: bool| {
        let (x, qq) = if masked {
            (load_tail(pt), if Q { load_tail(qt) } else { zero })
        } else {
            (load(&pc[c]), if Q { load(&qc[c]) } else { zero })
        };
        let (v, e, a) = classify4::<Q>(x, qq, floor);
        (v, e, a, qq)
    };
    // pass 1: per-lane top two, two independent accumulators
    let (mut a1x, mut a2x, mut a1y, mut a2y) = (ninf, ninf, ninf, ninf);
    let top2 = |c: usize, masked: bool, a1: &mut __m256d, a2: &mut __m256d| {
        let adj = classify(c, masked).2;
        *a2 = _mm256_max_pd(*a2, _mm256_min_pd(adj, *a1));
        *a1 = _mm256_max_pd(*a1, adj);
    };
    let mut c = 0;
    while c + 2 <= pc.len() {
        // one cache line of prices per step: fetch the line PREFETCH_READ bids ahead (and the
        // qualities), and the output lines PREFETCH_WRITE bids ahead so that pass 3's stores
        // find them in cache (loss reasons: one line per 16 bids)
        let at = 4 * c;
        prefetch(p, at + PREFETCH_READ);
        if Q {
            prefetch(q, at + PREFETCH_READ);
        }
        prefetch(min_to_win, at + PREFETCH_WRITE);
        if c % 4 == 0 {
            prefetch(loss_reason, at + PREFETCH_WRITE);
        }
        top2(c, false, &mut a1x, &mut a2x);
        top2(c + 1, false, &mut a1y, &mut a2y);
        c += 2;
    }
    if c < pc.len() {
        top2(c, false, &mut a1x, &mut a2x);
    }
    if !pt.is_empty() {
        top2(0, true, &mut a1y, &mut a2y);
    }
    // merge (first, second) pairs of a multiset: (max, max(second, second', min(first,
    // first'))), across the two accumulators, then the lanes
    let merge = |a1: __m256d, a2: __m256d, b1: __m256d, b2: __m256d| {
        (_mm256_max_pd(a1, b1), _mm256_max_pd(_mm256_max_pd(a2, b2), _mm256_min_pd(a1, b1)))
    };
    let (a1, a2) = merge(a1x, a2x, a1y, a2y);
    let (a1, a2) =
        merge(a1, a2, _mm256_permute2f128_pd::<1>(a1, a1), _mm256_permute2f128_pd::<1>(a2, a2));
    let (a1, a2) = merge(a1, a2, _mm256_permute_pd::<0b0101>(a1), _mm256_permute_pd::<0b0101>(a2));
    let (a1v, a1, a2) = (a1, _mm256_cvtsd_f64(a1), _mm256_cvtsd_f64(a2));
    // pass 2: the first bid whose adjusted bid is the top
    let mut best = usize::MAX;
    if a1 > f64::NEG_INFINITY {
        for c in 0..=pc.len() {
            let masked = c == pc.len();
            let hit = if Q {
                classify(c, masked).2
            } else if masked {
                // the top is an eligible price, so an equal price is eligible too
                load_tail(pt)
            } else {
                load(&pc[c])
            };
            let m = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(hit, a1v)) as u32;
            if m != 0 {
                best = 4 * c + m.trailing_zeros() as usize;
                break;
            }
        }
    }
    let (out, target_adj) = if best < n {
        let qw = if Q { q[best] } else { 1.0 };
        price_winner(rule, best, a1, a2, p[best], qw, reserve, increment)
    } else {
        (NO_SALE, 0.0)
    };
    // pass 3: min_to_win, loss_reason (3 + 97 valid + 2 eligible, in 64-bit lanes, then the
    // low halves gathered into four i32) and the valid count
    let nan = _mm256_set1_pd(f64::NAN);
    let r = _mm256_set1_pd(reserve);
    let t = _mm256_set1_pd(target_adj);
    let lose = _mm256_set1_pd(fmax(reserve, target_adj));
    let (three, up_v, up_e) = (
        _mm256_set1_epi64x(i64::from(LOSS_INVALID)),
        _mm256_set1_epi64x(i64::from(LOSS_BELOW_FLOOR - LOSS_INVALID)),
        _mm256_set1_epi64x(i64::from(LOSS_OUTBID - LOSS_BELOW_FLOOR)),
    );
    let low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    let tail = lanes_below(pt.len());
    let (mc, mt) = min_to_win.as_chunks_mut::<4>();
    let (lc, lt) = loss_reason.as_chunks_mut::<4>();
    let (mc, lc) = (&mut mc[..pc.len()], &mut lc[..pc.len()]);
    let mut valid = _mm256_setzero_si256();
    let mut pass3 = |c: usize, masked: bool| {
        let (v, e, _, qq) = classify(c, masked);
        // max_pd(a, b) is `a > b ? a : b`, the scalar `fmax`
        let l = if Q { _mm256_max_pd(r, _mm256_div_pd(t, qq)) } else { lose };
        let m = _mm256_blendv_pd(nan, l, v);
        let (vi, ei) = (_mm256_castpd_si256(v), _mm256_castpd_si256(e));
        let reason64 = _mm256_add_epi64(
            three,
            _mm256_add_epi64(_mm256_and_si256(vi, up_v), _mm256_and_si256(ei, up_e)),
        );
        let reason = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(reason64, low_halves));
        if masked {
            store_tail(mt, m);
            store_tail_i32(lt, reason);
            valid = _mm256_sub_epi64(valid, _mm256_and_si256(vi, tail));
        } else {
            store(&mut mc[c], m);
            store_i32(&mut lc[c], reason);
            valid = _mm256_sub_epi64(valid, vi);
        }
    };
    for c in 0..pc.len() {
        pass3(c, false);
    }
    if !pt.is_empty() {
        pass3(0, true);
    }
    let n_valid = hsum_epi64(valid) as usize;
    if best < n {
        min_to_win[best] = out.winner_min_to_win;
        loss_reason[best] = LOSS_WON;
    }
    (out, n - n_valid)
}
