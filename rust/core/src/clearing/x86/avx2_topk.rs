//! The position-auction AVX2 kernels: rank counting for short segments, a vector entry test
//! for long ones.

use super::{ADJ_BUF, PREFETCH_READ, RANK_MAX, TAIL_MASK64};
use crate::clearing::scalar::{adjusted, fmax, net_insert, net_write, next_down};

/// The top `buf.len()` eligible bids of a short segment (at most [`RANK_MAX`] bids, `buf` at
/// most [`RANK_MAX`] long) by rank counting: bid i's rank is the number of bids above it
/// (higher adjusted bid, or equal with a lower index), counted against the segment's
/// ceil(n / 4) vectors of adjusted bids with no data-dependent branch; ranks form a
/// permutation, so each bid is stored at its rank without a test. Ineligible bids rank last
/// (adjusted = -inf).
///
/// # Safety
/// The CPU must support AVX2 (and so SSE4.1); `p.len() <= RANK_MAX`, `buf.len() <= RANK_MAX`,
/// and with `Q` `q.len() >= p.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn top_k_rank_avx2<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    // SAFETY: the caller's contract, and each arm's NC is ceil(len / 4) <= 4, the bound of
    // `top_k_rank_nc_avx2`.
    unsafe {
        match p.len().div_ceil(4) {
            0 => {
                buf.fill((f64::NEG_INFINITY, 0));
                (0, 0)
            }
            1 => top_k_rank_nc_avx2::<Q, 1>(p, q, reserve, buf),
            2 => top_k_rank_nc_avx2::<Q, 2>(p, q, reserve, buf),
            3 => top_k_rank_nc_avx2::<Q, 3>(p, q, reserve, buf),
            _ => top_k_rank_nc_avx2::<Q, 4>(p, q, reserve, buf),
        }
    }
}

/// [`top_k_rank_avx2`] for a segment of `NC` vectors: the adjusted bids are computed four at a
/// time with masked loads for the last partial vector (as in [`segment_single_short_avx2`],
/// same arithmetic as [`adjusted`]) and stay in registers for the counting; they are stored
/// once, as whole vectors, so that each bid's broadcast reads a completed store.
///
/// # Safety
/// The CPU must support AVX2; `4 * (NC - 1) < p.len() <= 4 * NC`, `NC <= 4`,
/// `buf.len() <= RANK_MAX`, and with `Q` `q.len() >= p.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn top_k_rank_nc_avx2<const Q: bool, const NC: usize>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    use std::arch::x86_64::*;
    let n = p.len();
    debug_assert!(n <= 4 * NC && 4 * (NC - 1) < n && NC <= 4 && buf.len() <= RANK_MAX);
    let mut adj = [f64::NEG_INFINITY; RANK_MAX];
    let mut ranked = [(f64::NEG_INFINITY, 0usize); RANK_MAX];
    let n_bad;
    // SAFETY: AVX2 is enabled for this function (the caller checked the CPU). Chunk c starts
    // at 4c < n, so the plain loads of chunks before the last (4 bids each, all < n) stay in
    // `p` / `q`; the last chunk is masked to its `rem` = n - 4(NC - 1) in 1..=4 lanes (masked
    // lanes are neither read nor faulted on; the mask table is read at offset 4 - rem in
    // 0..=3, 4 entries of 8). The stores to `adj` write 4 doubles at offsets 4c <= 12 of 16.
    unsafe {
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        let zero = _mm256_setzero_pd();
        let big = _mm256_set1_pd(f64::MAX);
        let r = _mm256_set1_pd(reserve);
        let ones = _mm256_set1_epi64x(-1);
        let rem = n - 4 * (NC - 1);
        let tail64 = _mm256_loadu_si256(TAIL_MASK64.as_ptr().add(4 - rem).cast());
        let mut av = [ninf; NC];
        let mut bad = _mm256_setzero_si256();
        for (c, a_out) in av.iter_mut().enumerate() {
            let last = c == NC - 1;
            let load = |ptr: *const f64| {
                if last {
                    _mm256_maskload_pd(ptr.add(4 * c), tail64)
                } else {
                    _mm256_loadu_pd(ptr.add(4 * c))
                }
            };
            let x = load(p.as_ptr());
            let mut v = _mm256_and_pd(
                _mm256_cmp_pd::<_CMP_GE_OQ>(x, zero),
                _mm256_cmp_pd::<_CMP_LE_OQ>(x, big),
            );
            let mut a = x;
            if Q {
                let qq = load(q.as_ptr());
                v = _mm256_and_pd(
                    v,
                    _mm256_and_pd(
                        _mm256_cmp_pd::<_CMP_GT_OQ>(qq, zero),
                        _mm256_cmp_pd::<_CMP_LE_OQ>(qq, big),
                    ),
                );
                a = _mm256_mul_pd(x, qq);
            }
            let e = _mm256_and_pd(
                v,
                _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_GT_OQ>(x, zero),
                    _mm256_cmp_pd::<_CMP_GE_OQ>(x, r),
                ),
            );
            *a_out = _mm256_blendv_pd(ninf, a, e);
            _mm256_storeu_pd(adj.as_mut_ptr().add(4 * c), *a_out);
            // invalid lanes inside the segment (masked-out lanes are not bids)
            let mut b = _mm256_xor_si256(_mm256_castpd_si256(v), ones);
            if last {
                b = _mm256_and_si256(b, tail64);
            }
            bad = _mm256_sub_epi64(bad, b);
        }
        let b = _mm_add_epi64(_mm256_castsi256_si128(bad), _mm256_extracti128_si256::<1>(bad));
        n_bad = _mm_cvtsi128_si64(_mm_add_epi64(b, _mm_unpackhi_epi64(b, b))) as usize;
        let jv: [__m256d; NC] = std::array::from_fn(|c| {
            let o = (4 * c) as f64;
            _mm256_setr_pd(o, o + 1.0, o + 2.0, o + 3.0)
        });
        for i in 0..n {
            let ai = _mm256_broadcast_sd(&*adj.as_ptr().add(i));
            let ii = _mm256_set1_pd(i as f64);
            let mut cnt = _mm256_setzero_si256();
            for (&avv, &jvv) in av.iter().zip(&jv) {
                let gt = _mm256_cmp_pd::<_CMP_GT_OQ>(avv, ai);
                let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(avv, ai);
                let lower = _mm256_cmp_pd::<_CMP_LT_OQ>(jvv, ii);
                let above = _mm256_or_pd(gt, _mm256_and_pd(eq, lower));
                // a true lane is all ones = -1 as i64
                cnt = _mm256_sub_epi64(cnt, _mm256_castpd_si256(above));
            }
            let s = _mm_add_epi64(_mm256_castsi256_si128(cnt), _mm256_extracti128_si256::<1>(cnt));
            let rank = (_mm_cvtsi128_si64(s) + _mm_extract_epi64::<1>(s)) as usize;
            *ranked.get_unchecked_mut(rank % RANK_MAX) = (*adj.get_unchecked(i), i);
        }
    }
    let mut len = 0;
    for (slot, r) in buf.iter_mut().zip(ranked.iter()) {
        *slot = *r;
        len += usize::from(r.0 > f64::NEG_INFINITY);
    }
    (len, n_bad)
}

/// [`top_k_net`]'s long-segment path with the entry test in AVX2: the adjusted bids of four
/// bids at once are compared with the current K-th best in one vector compare, and only the
/// lanes that beat it (rare after the first few dozen bids) go through the insertion network,
/// in index order and re-tested against the updated K-th best, exactly as the scalar path.
///
/// # Safety
/// The CPU must support AVX2; with `Q`, `q.len() >= p.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn top_k_long_net_avx2<const Q: bool, const K: usize>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    use std::arch::x86_64::*;
    let mut v = [f64::NEG_INFINITY; K];
    let mut ix = [0.0f64; K];
    let n = p.len();
    let q = if Q { &q[..n] } else { &[][..] };
    let full = n / 4 * 4;
    let mut n_bad = 0u32;
    let mut lanes = [0.0f64; 4];
    // SAFETY: AVX2 is enabled for this function (the caller checked the CPU). Every load reads
    // 4 doubles at offset c < full <= n of `p` / `q` (both n long); the stores write 4 doubles
    // into `lanes`, or into `adjb` at c + 4 <= full <= ADJ_BUF when `buffered`, and the main
    // pass reads `adjb` back only when `buffered`, at chunks the pre-pass wrote (every c <
    // full, step 4). Prefetch addresses past the slices are formed with `wrapping_add` and a
    // prefetch never faults.
    unsafe {
        let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
        let zero = _mm256_setzero_pd();
        let big = _mm256_set1_pd(f64::MAX);
        let r = _mm256_set1_pd(reserve);
        // adjusted bids of the chunk at c (-inf when not eligible) and its validity
        let classify = |c: usize| {
            let x = _mm256_loadu_pd(p.as_ptr().add(c));
            let fin = _mm256_cmp_pd::<_CMP_LE_OQ>(x, big);
            let mut valid = _mm256_and_pd(_mm256_cmp_pd::<_CMP_GE_OQ>(x, zero), fin);
            let mut a = x;
            if Q {
                let qq = _mm256_loadu_pd(q.as_ptr().add(c));
                valid = _mm256_and_pd(
                    valid,
                    _mm256_and_pd(
                        _mm256_cmp_pd::<_CMP_GT_OQ>(qq, zero),
                        _mm256_cmp_pd::<_CMP_LE_OQ>(qq, big),
                    ),
                );
                a = _mm256_mul_pd(x, qq);
            }
            let elig = _mm256_and_pd(
                valid,
                _mm256_and_pd(
                    _mm256_cmp_pd::<_CMP_GT_OQ>(x, zero),
                    _mm256_cmp_pd::<_CMP_GE_OQ>(x, r),
                ),
            );
            (_mm256_blendv_pd(ninf, a, elig), valid)
        };
        // pre-pass: the maximum of each of 16 lanes (bids 16i + l, leftover chunks into the
        // first four). These are 16 >= K distinct bids, so the K-th best overall is >= the K-th
        // largest of them, `floor`: a bid below it can never enter, and skipping it leaves the
        // final top K unchanged. It spares the insertions (and mispredicted entry tests) of all
        // but a few bids per auction.
        // Segments of up to ADJ_BUF bids keep the pre-pass's adjusted bids (and count the
        // invalid ones there), so the main pass reads them back instead of recomputing them.
        let buffered = (16..=ADJ_BUF).contains(&full);
        let mut adjb = [std::mem::MaybeUninit::<f64>::uninit(); ADJ_BUF];
        let ab = adjb.as_mut_ptr().cast::<f64>();
        let mut bad = _mm256_setzero_si256();
        let ones = _mm256_set1_epi64x(-1);
        let mut floor = f64::NEG_INFINITY;
        if full >= 16 {
            let mut m = [ninf; 4];
            let mut pre = |c: usize, mj: &mut __m256d| {
                let (adj, valid) = classify(c);
                if buffered {
                    _mm256_storeu_pd(ab.add(c), adj);
                    // an invalid lane is all zeros in `valid`: subtract (not valid) = -1
                    bad = _mm256_sub_epi64(bad, _mm256_xor_si256(_mm256_castpd_si256(valid), ones));
                }
                *mj = _mm256_max_pd(*mj, adj);
            };
            let mut c = 0;
            let pp = p.as_ptr();
            while c + 16 <= full {
                // two cache lines of prices per step, fetched PREFETCH_READ bids ahead (see
                // the single-slot long kernel)
                _mm_prefetch::<_MM_HINT_T0>(pp.wrapping_add(c + PREFETCH_READ).cast());
                _mm_prefetch::<_MM_HINT_T0>(pp.wrapping_add(c + 8 + PREFETCH_READ).cast());
                if Q {
                    let qp = q.as_ptr();
                    _mm_prefetch::<_MM_HINT_T0>(qp.wrapping_add(c + PREFETCH_READ).cast());
                    _mm_prefetch::<_MM_HINT_T0>(qp.wrapping_add(c + 8 + PREFETCH_READ).cast());
                }
                for (j, mj) in m.iter_mut().enumerate() {
                    pre(c + 4 * j, mj);
                }
                c += 16;
            }
            while c < full {
                pre(c, &mut m[0]);
                c += 4;
            }
            // the K-th largest of the 16 lane maxima: a lane keeps its value when at least K
            // of the 16 are >= it; the largest kept value is the K-th largest
            let mut vals = [0.0f64; 16];
            for (j, mj) in m.iter().enumerate() {
                _mm256_storeu_pd(vals.as_mut_ptr().add(4 * j), *mj);
            }
            let mut cnt = [_mm256_setzero_si256(); 4];
            for v in &vals {
                let b = _mm256_broadcast_sd(v);
                for (cj, mj) in cnt.iter_mut().zip(&m) {
                    // lanes <= v count v (all ones = -1)
                    *cj = _mm256_sub_epi64(
                        *cj,
                        _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_LE_OQ>(*mj, b)),
                    );
                }
            }
            let k1 = _mm256_set1_epi64x(K as i64 - 1);
            let mut kept = ninf;
            for (cj, mj) in cnt.iter().zip(&m) {
                let keep = _mm256_castsi256_pd(_mm256_cmpgt_epi64(*cj, k1));
                kept = _mm256_max_pd(kept, _mm256_blendv_pd(ninf, *mj, keep));
            }
            let kept = _mm256_max_pd(kept, _mm256_permute2f128_pd::<1>(kept, kept));
            floor = _mm256_cvtsd_f64(_mm256_max_pd(kept, _mm256_permute_pd::<0b0101>(kept)));
        }
        // a bid enters when adj > v[K-1] and adj >= floor, i.e. adj > max(v[K-1], the double
        // just below floor): one compare against a register updated only on insertion
        let below_floor = next_down(floor);
        let mut thr = _mm256_set1_pd(fmax(v[K - 1], below_floor));
        for c in (0..full).step_by(4) {
            let adj = if buffered {
                _mm256_loadu_pd(ab.add(c))
            } else {
                let (adj, valid) = classify(c);
                bad = _mm256_sub_epi64(bad, _mm256_xor_si256(_mm256_castpd_si256(valid), ones));
                adj
            };
            let mut enter = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(adj, thr)) as u32;
            if enter != 0 {
                _mm256_storeu_pd(lanes.as_mut_ptr(), adj);
                while enter != 0 {
                    let l = enter.trailing_zeros() as usize;
                    enter &= enter - 1;
                    if lanes[l] > v[K - 1] {
                        net_insert(&mut v, &mut ix, lanes[l], (c + l) as f64);
                    }
                }
                thr = _mm256_set1_pd(fmax(v[K - 1], below_floor));
            }
        }
        let b = _mm_add_epi64(_mm256_castsi256_si128(bad), _mm256_extracti128_si256::<1>(bad));
        n_bad += _mm_cvtsi128_si64(_mm_add_epi64(b, _mm_unpackhi_epi64(b, b))) as u32;
    }
    // the scalar tail, like `top_k_net`'s: a shared helper for it measured 5-7% slower on
    // 30- and 1000-bid VCG (v / ix no longer stayed in registers), so each kernel keeps its own
    for i in full..n {
        let (adj, valid) = adjusted(p[i], if Q { q[i] } else { 1.0 }, reserve);
        n_bad += u32::from(!valid);
        if adj > v[K - 1] {
            net_insert(&mut v, &mut ix, adj, i as f64);
        }
    }
    (net_write(&v, &ix, buf), n_bad as usize)
}

/// [`top_k_long_net_avx2`] for `buf.len()` in 2..=8.
///
/// # Safety
/// The CPU must support AVX2; `buf.len()` is in 2..=8; with `Q`, `q.len() >= p.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn top_k_long_avx2<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    // SAFETY: the caller's contract (AVX2, lengths) is the kernel's.
    unsafe {
        match buf.len() {
            2 => top_k_long_net_avx2::<Q, 2>(p, q, reserve, buf),
            3 => top_k_long_net_avx2::<Q, 3>(p, q, reserve, buf),
            4 => top_k_long_net_avx2::<Q, 4>(p, q, reserve, buf),
            5 => top_k_long_net_avx2::<Q, 5>(p, q, reserve, buf),
            6 => top_k_long_net_avx2::<Q, 6>(p, q, reserve, buf),
            7 => top_k_long_net_avx2::<Q, 7>(p, q, reserve, buf),
            _ => top_k_long_net_avx2::<Q, 8>(p, q, reserve, buf),
        }
    }
}
