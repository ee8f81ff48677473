//! The single-slot top-2 scan with SSE2.

use crate::clearing::scalar::{fmax, sel, top2_scalar};

/// The top-2 scan with SSE2 (part of the x86_64 baseline): four independent lanes in two
/// vectors, so there is no serial dependency through one running maximum, then a merge and the
/// scalar scan of the last `len % 4` bids. Bid indices ride along as f64 (exact below 2^53)
/// so that the index update is a blend on the same mask as the maximum.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn top2_sse2<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
    use std::arch::x86_64::*;
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
    let (mut l1, mut l2, mut lb) = ([0.0f64; 4], [0.0f64; 4], [0.0f64; 4]);
    // SAFETY: SSE2 is always available on x86_64. Every load reads 4 doubles from a chunk of
    // exactly 4 (chunks_exact), every store writes 2 doubles into a [f64; 4] at offset 0 or 2.
    unsafe {
        let ninf = _mm_set1_pd(f64::NEG_INFINITY);
        let zero = _mm_setzero_pd();
        let big = _mm_set1_pd(f64::MAX);
        let r = _mm_set1_pd(reserve);
        let blend =
            |m: __m128d, a: __m128d, b: __m128d| _mm_or_pd(_mm_and_pd(m, a), _mm_andnot_pd(m, b));
        // eligible: price >= reserve, > 0, <= MAX (all false for NaN); quality > 0, <= MAX
        let adj = |x: __m128d, qq: __m128d| {
            let mut e = _mm_and_pd(
                _mm_and_pd(_mm_cmpge_pd(x, r), _mm_cmpgt_pd(x, zero)),
                _mm_cmple_pd(x, big),
            );
            let mut v = x;
            if Q {
                e = _mm_and_pd(e, _mm_and_pd(_mm_cmpgt_pd(qq, zero), _mm_cmple_pd(qq, big)));
                v = _mm_mul_pd(x, qq);
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
                (_mm_loadu_pd(qc.as_ptr()), _mm_loadu_pd(qc.as_ptr().add(2)))
            } else {
                (zero, zero)
            };
            let xa = adj(_mm_loadu_pd(pc.as_ptr()), qa);
            let xb = adj(_mm_loadu_pd(pc.as_ptr().add(2)), qb);
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
        _mm_storeu_pd(l1.as_mut_ptr(), a1a);
        _mm_storeu_pd(l1.as_mut_ptr().add(2), a1b);
        _mm_storeu_pd(l2.as_mut_ptr(), a2a);
        _mm_storeu_pd(l2.as_mut_ptr().add(2), a2b);
        _mm_storeu_pd(lb.as_mut_ptr(), ba);
        _mm_storeu_pd(lb.as_mut_ptr().add(2), bb);
    }
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
