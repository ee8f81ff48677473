//! The single-slot top-2 scan with SSE2.

use std::arch::x86_64::*;

use crate::clearing::scalar::{fmax, sel, top2_scalar};

/// The two doubles of `s` (exactly 2 long) as a vector.
#[target_feature(enable = "sse2")]
#[inline]
fn load2(s: &[f64]) -> __m128d {
    let s: &[f64; 2] = s.try_into().expect("two doubles");
    // SAFETY: `s` holds 2 doubles, what an unaligned 128-bit load reads (SSE2 is part of the
    // x86_64 baseline).
    unsafe { _mm_loadu_pd(s.as_ptr()) }
}

/// The lanes of `lo` then `hi`.
#[target_feature(enable = "sse2")]
#[inline]
fn lanes4(lo: __m128d, hi: __m128d) -> [f64; 4] {
    let high = |v: __m128d| _mm_cvtsd_f64(_mm_unpackhi_pd(v, v));
    [_mm_cvtsd_f64(lo), high(lo), _mm_cvtsd_f64(hi), high(hi)]
}

/// The top-2 scan with SSE2 (part of the x86_64 baseline): four independent lanes in two
/// vectors, so there is no serial dependency through one running maximum, then a merge and the
/// scalar scan of the last `len % 4` bids. Bid indices ride along as f64 (exact below 2^53)
/// so that the index update is a blend on the same mask as the maximum.
#[inline(always)]
pub(crate) fn top2_sse2<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
    // SAFETY: SSE2 is part of the x86_64 baseline: every x86_64 CPU has it.
    unsafe { top2_lanes::<Q>(p, q, reserve) }
}

#[target_feature(enable = "sse2")]
#[inline]
fn top2_lanes<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
    let full = p.len() / 4 * 4;
    // short segments: the scalar chain is cheaper than the lane merge
    if p.len() < 16 {
        return top2_scalar::<Q>(
            p,
            q,
            reserve,
            0,
            (usize::MAX, f64::NEG_INFINITY, f64::NEG_INFINITY),
        );
    }
    let q = if Q { &q[..p.len()] } else { q };
    let ninf = _mm_set1_pd(f64::NEG_INFINITY);
    let zero = _mm_setzero_pd();
    let big = _mm_set1_pd(f64::MAX);
    let r = _mm_set1_pd(reserve);
    let blend =
        |m: __m128d, a: __m128d, b: __m128d| _mm_or_pd(_mm_and_pd(m, a), _mm_andnot_pd(m, b));
    // eligible: price >= reserve, > 0, <= MAX (all false for NaN); with a quality, > 0 and a
    // finite product (which also bounds both factors: see `crate::record::bid_ok`)
    let adj = |x: __m128d, qq: __m128d| {
        let mut e = _mm_and_pd(_mm_cmpge_pd(x, r), _mm_cmpgt_pd(x, zero));
        let mut v = x;
        if Q {
            v = _mm_mul_pd(x, qq);
            e = _mm_and_pd(e, _mm_and_pd(_mm_cmpgt_pd(qq, zero), _mm_cmple_pd(v, big)));
        } else {
            e = _mm_and_pd(e, _mm_cmple_pd(x, big));
        }
        blend(e, v, ninf)
    };
    let (mut a1a, mut a1b, mut a2a, mut a2b) = (ninf, ninf, ninf, ninf);
    let inf = _mm_set1_pd(f64::INFINITY);
    let (mut ba, mut bb) = (inf, inf);
    let (mut ia, mut ib) = (_mm_set_pd(1.0, 0.0), _mm_set_pd(3.0, 2.0));
    let four = _mm_set1_pd(4.0);
    for (c, pc) in p.chunks_exact(4).enumerate() {
        let (qa, qb) = if Q {
            let qc = &q[c * 4..c * 4 + 4];
            (load2(&qc[..2]), load2(&qc[2..]))
        } else {
            (zero, zero)
        };
        let xa = adj(load2(&pc[..2]), qa);
        let xb = adj(load2(&pc[2..]), qb);
        a2a = _mm_max_pd(a2a, _mm_min_pd(xa, a1a));
        a2b = _mm_max_pd(a2b, _mm_min_pd(xb, a1b));
        let (ga, gb) = (_mm_cmpgt_pd(xa, a1a), _mm_cmpgt_pd(xb, a1b));
        ba = blend(ga, ia, ba);
        bb = blend(gb, ib, bb);
        a1a = blend(ga, xa, a1a);
        a1b = blend(gb, xb, a1b);
        ia = _mm_add_pd(ia, four);
        ib = _mm_add_pd(ib, four);
    }
    let (l1, l2, lb) = (lanes4(a1a, a1b), lanes4(a2a, a2b), lanes4(ba, bb));
    // merge the lanes: first = max, ties to the lower index; second = the winning lane's
    // second or any other lane's first
    let (mut a1, mut b1, mut m) = (l1[0], lb[0], 0);
    for l in 1..4 {
        let better = (l1[l] > a1) | ((l1[l] == a1) & (lb[l] < b1));
        a1 = sel(better, l1[l], a1);
        b1 = sel(better, lb[l], b1);
        m = if better { l } else { m };
    }
    let mut a2 = f64::NEG_INFINITY;
    for l in 0..4 {
        a2 = fmax(a2, sel(l == m, l2[l], l1[l]));
    }
    let best = if a1 == f64::NEG_INFINITY { usize::MAX } else { b1 as usize };
    top2_scalar::<Q>(p, q, reserve, full, (best, a1, a2))
}
