//! The single-slot AVX2 kernels: short segments in registers, long ones in three passes.

use super::{PREFETCH_READ, PREFETCH_WRITE, TAIL_MASK32, TAIL_MASK64};
use crate::clearing::pricing::{price_winner, NO_SALE};
use crate::clearing::scalar::{fmax, sel};
use crate::clearing::{
    SegmentOutcome, SinglePrice, LOSS_BELOW_FLOOR, LOSS_INVALID, LOSS_OUTBID, LOSS_WON,
};

/// [`segment_single`] for a segment of at most [`SHORT_MAX`] bids with the whole segment in
/// `NC` = ceil(len / 4) AVX2 registers: eligibility and adjusted bids for all lanes at once,
/// the top bid by a horizontal max and the first lane equal to it (ties to the lower index),
/// the runner-up by a second horizontal max with the winner's lane masked out, then the per-bid
/// outputs from the same registers with masked stores. No serial chain through a running
/// maximum and no data-dependent branch per bid; the arithmetic is the scalar kernel's, so the
/// results are bit-identical.
///
/// # Safety
/// The CPU must support AVX2; `p.len() <= 4 * NC` and `4 * (NC - 1) < p.len()` (every chunk
/// starts inside the segment); `min_to_win`, `loss_reason` and (with `Q`) `q` are exactly
/// `p.len()` long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn segment_single_short_avx2<const Q: bool, const NC: usize>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    use std::arch::x86_64::*;
    let n = p.len();
    debug_assert!(n <= 4 * NC && 4 * (NC - 1) < n);
    debug_assert!(min_to_win.len() == n && loss_reason.len() == n && (!Q || q.len() == n));
    // SAFETY: AVX2 is enabled for this function (the caller checked the CPU). Chunk c starts at
    // bid 4c < n (the caller's bound), so every `add(4 * c)` stays inside the slices; the
    // masked loads and stores touch only the lanes whose bid index is < n (lanes past the end
    // are masked out, and the CPU neither reads nor writes nor faults on masked lanes). Chunks
    // before the last are full (4 bids < n), so their plain loads and stores stay inside the
    // slices. `4 - rem` is 0..=3, so the mask loads read 4 entries inside the 8-entry tables.
    unsafe {
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        let zero = _mm256_setzero_pd();
        let big = _mm256_set1_pd(f64::MAX);
        let r = _mm256_set1_pd(reserve);
        let (base, up_v, up_e) = (
            _mm256_set1_pd(f64::from(LOSS_INVALID)),
            _mm256_set1_pd(f64::from(LOSS_BELOW_FLOOR - LOSS_INVALID)),
            _mm256_set1_pd(f64::from(LOSS_OUTBID - LOSS_BELOW_FLOOR)),
        );
        // the last chunk's lane masks: `rem` = 1..=4 bids in it, lanes < rem all ones
        let rem = n - 4 * (NC - 1);
        let tail64 = _mm256_loadu_si256(TAIL_MASK64.as_ptr().add(4 - rem).cast());
        let tail32 = _mm_loadu_si128(TAIL_MASK32.as_ptr().add(4 - rem).cast());
        let mut qv = [zero; NC];
        let mut valid = [zero; NC];
        let mut reason = [_mm_setzero_si128(); NC];
        let mut adj = [ninf; NC];
        let mut top = ninf;
        let mut bad = _mm256_setzero_si256();
        for c in 0..NC {
            let last = c == NC - 1;
            // masked-out lanes read as 0.0: a valid price that is never eligible
            let x = if last {
                _mm256_maskload_pd(p.as_ptr().add(4 * c), tail64)
            } else {
                _mm256_loadu_pd(p.as_ptr().add(4 * c))
            };
            let fin = _mm256_cmp_pd::<_CMP_LE_OQ>(x, big);
            let mut v = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, zero), fin);
            let mut a = x;
            if Q {
                qv[c] = if last {
                    _mm256_maskload_pd(q.as_ptr().add(4 * c), tail64)
                } else {
                    _mm256_loadu_pd(q.as_ptr().add(4 * c))
                };
                v = _mm256_and_pd(
                    v,
                    _mm256_and_pd(
                        _mm256_cmp_pd::<_CMP_GT_OQ>(qv[c], zero),
                        _mm256_cmp_pd::<_CMP_LE_OQ>(qv[c], big),
                    ),
                );
                a = _mm256_mul_pd(x, qv[c]);
            }
            // eligible: valid, > 0 and >= reserve
            let e = _mm256_and_pd(
                v,
                _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_GT_OQ>(x, zero),
                    _mm256_cmp_pd::<_CMP_GE_OQ>(x, r),
                ),
            );
            valid[c] = v;
            // the loser's reason (3 / 100 / 102), exact in f64, narrowed to i32
            reason[c] = _mm256_cvtpd_epi32(_mm256_add_pd(
                base,
                _mm256_add_pd(_mm256_and_pd(v, up_v), _mm256_and_pd(e, up_e)),
            ));
            adj[c] = _mm256_blendv_pd(ninf, a, e);
            top = _mm256_max_pd(top, adj[c]);
            // count invalid lanes (all ones = -1); a masked-out quality reads 0.0 and is not
            // counted
            let mut b = _mm256_castpd_si256(v);
            if Q && last {
                b = _mm256_or_si256(b, _mm256_xor_si256(tail64, _mm256_set1_epi64x(-1)));
            }
            bad = _mm256_sub_epi64(bad, _mm256_xor_si256(b, _mm256_set1_epi64x(-1)));
        }
        let bad = _mm_add_epi64(_mm256_castsi256_si128(bad), _mm256_extracti128_si256::<1>(bad));
        let n_bad = _mm_cvtsi128_si64(_mm_add_epi64(bad, _mm_unpackhi_epi64(bad, bad)));
        let hmax = |v: __m256d| {
            let m = _mm256_max_pd(v, _mm256_permute2f128_pd::<1>(v, v));
            _mm256_max_pd(m, _mm256_permute_pd::<0b0101>(m))
        };
        let a1v = hmax(top);
        let a1 = _mm256_cvtsd_f64(a1v);
        // the winner is the first lane equal to the top; the runner-up is the top again when
        // two lanes tie with it, else the largest of the others (no dependency on the index)
        let mut bits = 0u32;
        let mut others = ninf;
        for (c, &a) in adj.iter().enumerate() {
            let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(a, a1v);
            bits |= (_mm256_movemask_pd(eq) as u32) << (4 * c);
            others = _mm256_max_pd(others, _mm256_blendv_pd(a, ninf, eq));
        }
        let tie = bits & bits.wrapping_sub(1) != 0;
        let a2 = sel(tie, a1, _mm256_cvtsd_f64(hmax(others)));
        let best =
            if a1 == f64::NEG_INFINITY { usize::MAX } else { bits.trailing_zeros() as usize };
        let (out, target_adj) = if best == usize::MAX {
            (NO_SALE, 0.0)
        } else {
            let qw = if Q { *q.get_unchecked(best) } else { 1.0 };
            price_winner(rule, best, a1, a2, *p.get_unchecked(best), qw, reserve, increment)
        };
        let nan = _mm256_set1_pd(f64::NAN);
        let t = _mm256_set1_pd(target_adj);
        let lose = _mm256_set1_pd(fmax(reserve, target_adj));
        for c in 0..NC {
            // max_pd(a, b) is `a > b ? a : b`, the scalar `fmax`
            let l = if Q { _mm256_max_pd(r, _mm256_div_pd(t, qv[c])) } else { lose };
            let m = _mm256_blendv_pd(nan, l, valid[c]);
            if c == NC - 1 {
                _mm256_maskstore_pd(min_to_win.as_mut_ptr().add(4 * c), tail64, m);
                _mm_maskstore_epi32(loss_reason.as_mut_ptr().add(4 * c), tail32, reason[c]);
            } else {
                _mm256_storeu_pd(min_to_win.as_mut_ptr().add(4 * c), m);
                _mm_storeu_si128(loss_reason.as_mut_ptr().add(4 * c).cast(), reason[c]);
            }
        }
        if best != usize::MAX {
            *min_to_win.get_unchecked_mut(best) = out.winner_min_to_win;
            *loss_reason.get_unchecked_mut(best) = LOSS_WON;
        }
        (out, n_bad as usize)
    }
}

/// Single-slot clearing of a segment longer than [`SHORT_MAX`] bids in three AVX2 passes over
/// the (L1-resident after the first) segment, with no index tracking and no scalar tail:
/// (1) per-lane top two adjusted bids by max / min only, nothing stored; (2) the winner as the
/// first bid whose adjusted bid equals the top (it is usually found early); (3) every bid's
/// `min_to_win` and `loss_reason`, and the valid count. The last partial chunk uses masked
/// loads and stores. Eligibility is `x >= max(reserve, smallest positive double)` and
/// `x <= f64::MAX` (the same set as "finite, > 0 and >= reserve", in two compares). The
/// arithmetic is the scalar kernel's, so the results are bit-identical.
///
/// # Safety
/// The CPU must support AVX2; `min_to_win`, `loss_reason` and (with `Q`) `q` are exactly
/// `p.len()` long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn segment_single_long_avx2<const Q: bool>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    use std::arch::x86_64::*;
    let n = p.len();
    debug_assert!(min_to_win.len() == n && loss_reason.len() == n && (!Q || q.len() == n));
    let full = n / 4 * 4;
    let rem = n - full;
    // SAFETY: AVX2 is enabled for this function (the caller checked the CPU). Full chunks
    // start at c <= full - 4, so their 4-lane loads and stores stay inside the slices (all n
    // long); the partial chunk at `full` < n (only when rem > 0) is masked to its first rem
    // lanes, and the CPU neither reads nor writes nor faults on masked lanes. The mask tables
    // are read at offset 4 - rem in 1..=3 (4 entries of 8). The prefetch addresses may lie
    // past the slices: they are formed with `wrapping_add` (no out-of-bounds pointer
    // arithmetic) and a prefetch is only a hint that never faults.
    unsafe {
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        let zero = _mm256_setzero_pd();
        let big = _mm256_set1_pd(f64::MAX);
        // x > 0 && x >= reserve  <=>  x >= max(reserve, 5e-324) for every x (NaN: false)
        let reff = _mm256_set1_pd(fmax(reserve, f64::from_bits(1)));
        let tail64 = _mm256_loadu_si256(TAIL_MASK64.as_ptr().add(4 - rem.max(1)).cast());
        let tail32 = _mm_loadu_si128(TAIL_MASK32.as_ptr().add(4 - rem.max(1)).cast());
        let (pp, qp) = (p.as_ptr(), q.as_ptr());
        let load = |ptr: *const f64, c: usize, masked: bool| {
            if masked {
                _mm256_maskload_pd(ptr.add(c), tail64)
            } else {
                _mm256_loadu_pd(ptr.add(c))
            }
        };
        // (valid, eligible, adjusted-or-minus-infinity, quality) of the chunk at c; masked-out
        // lanes read 0.0 (a valid, never eligible price; a quality of 0.0 reads invalid)
        let classify = |c: usize, masked: bool| {
            let x = load(pp, c, masked);
            let fin = _mm256_cmp_pd::<_CMP_LE_OQ>(x, big);
            let mut v = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, zero), fin);
            let mut e = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, reff), fin);
            let mut a = x;
            let mut qq = zero;
            if Q {
                qq = load(qp, c, masked);
                v = _mm256_and_pd(
                    v,
                    _mm256_and_pd(
                        _mm256_cmp_pd::<_CMP_GT_OQ>(qq, zero),
                        _mm256_cmp_pd::<_CMP_LE_OQ>(qq, big),
                    ),
                );
                e = _mm256_and_pd(e, v);
                a = _mm256_mul_pd(x, qq);
            }
            (v, e, _mm256_blendv_pd(ninf, a, e), qq)
        };
        // pass 1: per-lane top two, two independent accumulators
        let (mut a1x, mut a2x, mut a1y, mut a2y) = (ninf, ninf, ninf, ninf);
        let top2 = |c: usize, masked: bool, a1: &mut __m256d, a2: &mut __m256d| {
            let adj = classify(c, masked).2;
            *a2 = _mm256_max_pd(*a2, _mm256_min_pd(adj, *a1));
            *a1 = _mm256_max_pd(*a1, adj);
        };
        let mut c = 0;
        let (mp, lp) = (min_to_win.as_ptr(), loss_reason.as_ptr());
        while c + 8 <= full {
            // one cache line of prices per step: fetch the line PREFETCH_READ bids ahead (and
            // the qualities), and the output lines PREFETCH_WRITE bids ahead so that pass 3's
            // stores find them in cache (loss reasons: one line per 16 bids)
            _mm_prefetch::<_MM_HINT_T0>(pp.wrapping_add(c + PREFETCH_READ).cast());
            if Q {
                _mm_prefetch::<_MM_HINT_T0>(qp.wrapping_add(c + PREFETCH_READ).cast());
            }
            _mm_prefetch::<_MM_HINT_T0>(mp.wrapping_add(c + PREFETCH_WRITE).cast());
            if c % 16 == 0 {
                _mm_prefetch::<_MM_HINT_T0>(lp.wrapping_add(c + PREFETCH_WRITE).cast());
            }
            top2(c, false, &mut a1x, &mut a2x);
            top2(c + 4, false, &mut a1y, &mut a2y);
            c += 8;
        }
        if c < full {
            top2(c, false, &mut a1x, &mut a2x);
        }
        if rem > 0 {
            top2(full, true, &mut a1y, &mut a2y);
        }
        // merge (first, second) pairs of a multiset: (max, max(second, second', min(first,
        // first'))), across the two accumulators, then the lanes
        let merge = |a1: __m256d, a2: __m256d, b1: __m256d, b2: __m256d| {
            (_mm256_max_pd(a1, b1), _mm256_max_pd(_mm256_max_pd(a2, b2), _mm256_min_pd(a1, b1)))
        };
        let (a1, a2) = merge(a1x, a2x, a1y, a2y);
        let (a1, a2) =
            merge(a1, a2, _mm256_permute2f128_pd::<1>(a1, a1), _mm256_permute2f128_pd::<1>(a2, a2));
        let (a1, a2) =
            merge(a1, a2, _mm256_permute_pd::<0b0101>(a1), _mm256_permute_pd::<0b0101>(a2));
        let (a1v, a1, a2) = (a1, _mm256_cvtsd_f64(a1), _mm256_cvtsd_f64(a2));
        // pass 2: the first bid whose adjusted bid is the top
        let mut best = usize::MAX;
        if a1 > f64::NEG_INFINITY {
            let mut c = 0;
            while c < n {
                let masked = c == full;
                let hit = if Q {
                    classify(c, masked).2
                } else {
                    // the top is an eligible price, so an equal price is eligible too
                    load(pp, c, masked)
                };
                let m = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_EQ_OQ>(hit, a1v)) as u32;
                if m != 0 {
                    best = c + m.trailing_zeros() as usize;
                    break;
                }
                c += 4;
            }
        }
        let (out, target_adj) = if best == usize::MAX {
            (NO_SALE, 0.0)
        } else {
            let qw = if Q { *q.get_unchecked(best) } else { 1.0 };
            price_winner(rule, best, a1, a2, *p.get_unchecked(best), qw, reserve, increment)
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
                _mm256_maskstore_pd(min_to_win.as_mut_ptr().add(c), tail64, m);
                _mm_maskstore_epi32(loss_reason.as_mut_ptr().add(c), tail32, reason);
                valid = _mm256_sub_epi64(valid, _mm256_and_si256(vi, tail64));
            } else {
                _mm256_storeu_pd(min_to_win.as_mut_ptr().add(c), m);
                _mm_storeu_si128(loss_reason.as_mut_ptr().add(c).cast(), reason);
                valid = _mm256_sub_epi64(valid, vi);
            }
        };
        let mut c = 0;
        while c < full {
            pass3(c, false);
            c += 4;
        }
        if rem > 0 {
            pass3(full, true);
        }
        let b = _mm_add_epi64(_mm256_castsi256_si128(valid), _mm256_extracti128_si256::<1>(valid));
        let n_valid = _mm_cvtsi128_si64(_mm_add_epi64(b, _mm_unpackhi_epi64(b, b))) as usize;
        if best != usize::MAX {
            *min_to_win.get_unchecked_mut(best) = out.winner_min_to_win;
            *loss_reason.get_unchecked_mut(best) = LOSS_WON;
        }
        (out, n - n_valid)
    }
}

/// Clears a segment of at most [`SHORT_MAX`] bids with [`segment_single_short_avx2`].
///
/// # Safety
/// The CPU must support AVX2; `p.len() <= SHORT_MAX`; the other slices are `p.len()` long
/// (`q` only with `Q`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn segment_single_short<const Q: bool>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    let args = (rule, p, q, reserve, increment);
    // SAFETY: the CPU supports AVX2 (the caller's contract); each arm's NC is ceil(len / 4),
    // which is exactly the kernel's bound on the length.
    unsafe {
        match p.len().div_ceil(4) {
            0 => (NO_SALE, 0),
            1 => segment_single_short_avx2::<Q, 1>(
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                min_to_win,
                loss_reason,
            ),
            2 => segment_single_short_avx2::<Q, 2>(
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                min_to_win,
                loss_reason,
            ),
            3 => segment_single_short_avx2::<Q, 3>(
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                min_to_win,
                loss_reason,
            ),
            _ => segment_single_short_avx2::<Q, 4>(
                args.0,
                args.1,
                args.2,
                args.3,
                args.4,
                min_to_win,
                loss_reason,
            ),
        }
    }
}
