//! The position-auction AVX2 kernels: rank counting for a segment of up to [`RANK_MAX`] bids,
//! a vector entry test in front of the insertion network for a long one. Both find exactly the
//! top k of [`crate::clearing::scalar::top_k_any`].

use std::arch::x86_64::*;

use super::{
    classify4, eligible_floor, hsum_epi64, lanes, lanes_below, load, load4, load_tail, prefetch,
    store, store4, Avx2, ADJ_BUF, PREFETCH_READ, RANK_MAX,
};
use crate::clearing::scalar::{adjusted, fmax, net_insert, net_write, top_k_any};

/// Segments longer than this take the long kernel (for k + 1 in 2..=8); shorter ones that
/// the rank kernel cannot take run the scalar insertion network, which is branch-free there.
const LONG_MIN: usize = crate::clearing::scalar::NET_BRANCHLESS_MAX;

impl Avx2 {
    /// [`top_k_any`] with the AVX2 kernels: the top `buf.len()` eligible bids of a segment into
    /// `buf`, returning how many are filled and the number of invalid bids. `scratch` holds
    /// [`ADJ_BUF`] doubles for the long kernel, reused from segment to segment.
    #[inline(always)]
    pub(crate) fn top_k<const Q: bool>(
        self,
        p: &[f64],
        q: &[f64],
        reserve: f64,
        buf: &mut [(f64, usize)],
        scratch: &mut [f64; ADJ_BUF],
    ) -> (usize, usize) {
        if p.len() <= RANK_MAX && buf.len() <= RANK_MAX {
            // SAFETY: an `Avx2` exists only when the CPU supports AVX2, all the kernel needs.
            unsafe {
                match p.len().div_ceil(4) {
                    0 => {
                        buf.fill((f64::NEG_INFINITY, 0));
                        (0, 0)
                    }
                    1 => rank::<Q, 1>(p, q, reserve, buf),
                    2 => rank::<Q, 2>(p, q, reserve, buf),
                    3 => rank::<Q, 3>(p, q, reserve, buf),
                    _ => rank::<Q, 4>(p, q, reserve, buf),
                }
            }
        } else if p.len() > LONG_MIN && (2..=8).contains(&buf.len()) {
            // SAFETY: as above.
            unsafe { long::<Q>(p, q, reserve, buf, scratch) }
        } else {
            top_k_any::<Q>(p, q, reserve, buf)
        }
    }
}

/// The top `buf.len()` eligible bids of a segment of `n` bids, 4 (NC - 1) < n <= 4 NC, by
/// rank counting: bid i's rank is the number of bids above it (higher adjusted bid, or equal
/// with a lower index), counted against the segment's `NC` vectors of adjusted bids with no
/// data-dependent branch; ranks form a permutation, so each bid is stored at its rank without a
/// test. Ineligible bids rank last (adjusted = -inf).
///
/// # Panics
/// If `n` is outside that range, `NC > 4`, `buf.len() > RANK_MAX`, or with `Q`
/// `q.len() < p.len()`.
#[target_feature(enable = "avx2")]
#[inline]
fn rank<const Q: bool, const NC: usize>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    let n = p.len();
    assert!(4 * (NC - 1) < n && n <= 4 * NC && NC <= 4 && buf.len() <= RANK_MAX);
    let q = if Q { &q[..n] } else { q };
    let mut adj = [f64::NEG_INFINITY; RANK_MAX];
    let mut ranked = [(f64::NEG_INFINITY, 0usize); RANK_MAX];
    let floor = _mm256_set1_pd(eligible_floor(reserve));
    let ones = _mm256_set1_epi64x(-1);
    let tail = lanes_below(n - 4 * (NC - 1));
    let zero = _mm256_setzero_pd();
    let mut av = [zero; NC];
    let mut bad = _mm256_setzero_si256();
    for (c, a_out) in av.iter_mut().enumerate() {
        let last = c == NC - 1;
        // lanes past the end read as 0.0: a valid price that is never eligible
        let ld = |s: &[f64]| if last { load_tail(&s[4 * c..]) } else { load4(s, 4 * c) };
        let (v, _, a) = classify4::<Q>(ld(p), if Q { ld(q) } else { zero }, floor);
        *a_out = a;
        // stored once, as whole vectors, so that each bid's broadcast below reads a completed
        // store
        store4(&mut adj, 4 * c, a);
        // invalid lanes inside the segment (lanes past the end are not bids)
        let mut b = _mm256_xor_si256(_mm256_castpd_si256(v), ones);
        if last {
            b = _mm256_and_si256(b, tail);
        }
        bad = _mm256_sub_epi64(bad, b);
    }
    let n_bad = hsum_epi64(bad) as usize;
    let jv: [__m256d; NC] = std::array::from_fn(|c| {
        let o = (4 * c) as f64;
        _mm256_setr_pd(o, o + 1.0, o + 2.0, o + 3.0)
    });
    for (i, ai) in adj.iter().enumerate().take(n) {
        let aiv = _mm256_broadcast_sd(ai);
        let ii = _mm256_set1_pd(i as f64);
        let mut cnt = _mm256_setzero_si256();
        for (&avv, &jvv) in av.iter().zip(&jv) {
            let gt = _mm256_cmp_pd::<_CMP_GT_OQ>(avv, aiv);
            let eq = _mm256_cmp_pd::<_CMP_EQ_OQ>(avv, aiv);
            let lower = _mm256_cmp_pd::<_CMP_LT_OQ>(jvv, ii);
            let above = _mm256_or_pd(gt, _mm256_and_pd(eq, lower));
            // a true lane is all ones = -1 as i64
            cnt = _mm256_sub_epi64(cnt, _mm256_castpd_si256(above));
        }
        let s = _mm_add_epi64(_mm256_castsi256_si128(cnt), _mm256_extracti128_si256::<1>(cnt));
        let rank = (_mm_cvtsi128_si64(s) + _mm_extract_epi64::<1>(s)) as usize;
        ranked[rank % RANK_MAX] = (*ai, i);
    }
    let mut len = 0;
    for (slot, r) in buf.iter_mut().zip(ranked.iter()) {
        *slot = *r;
        len += usize::from(r.0 > f64::NEG_INFINITY);
    }
    (len, n_bad)
}

/// [`long_k`] for `buf.len()` in 2..=8. Never inlined: inlined into the batch loop, the long
/// kernel made the register allocation of the short-auction path worse (10-bid VCG 1.7x
/// slower).
#[target_feature(enable = "avx2")]
#[inline(never)]
fn long<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
    scratch: &mut [f64; ADJ_BUF],
) -> (usize, usize) {
    match buf.len() {
        2 => long_k::<Q, 2>(p, q, reserve, buf, scratch),
        3 => long_k::<Q, 3>(p, q, reserve, buf, scratch),
        4 => long_k::<Q, 4>(p, q, reserve, buf, scratch),
        5 => long_k::<Q, 5>(p, q, reserve, buf, scratch),
        6 => long_k::<Q, 6>(p, q, reserve, buf, scratch),
        7 => long_k::<Q, 7>(p, q, reserve, buf, scratch),
        _ => long_k::<Q, 8>(p, q, reserve, buf, scratch),
    }
}

/// The scalar `top_k_net`'s long-segment path with the entry test in AVX2: the adjusted bids
/// of four bids at once are compared with the current K-th best in one vector compare, and
/// only the lanes that beat it (rare after the first few dozen bids) go through the insertion
/// network, in index order and re-tested against the updated K-th best, exactly as the scalar
/// path.
///
/// # Panics
/// With `Q`, if `q.len() < p.len()`.
#[target_feature(enable = "avx2")]
fn long_k<const Q: bool, const K: usize>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
    scratch: &mut [f64; ADJ_BUF],
) -> (usize, usize) {
    let mut v = [f64::NEG_INFINITY; K];
    let mut ix = [0.0f64; K];
    let n = p.len();
    let q = if Q { &q[..n] } else { &[][..] };
    // whole chunks of four bids (the compiler sees their bounds); the bids after them go
    // through the scalar tail
    let (pc, _) = p.as_chunks::<4>();
    let (qc, _) = q.as_chunks::<4>();
    let qc = if Q { &qc[..pc.len()] } else { qc };
    let full = 4 * pc.len();
    let mut n_bad = 0u32;
    let ninf = _mm256_set1_pd(f64::NEG_INFINITY);
    let zero = _mm256_setzero_pd();
    let floor4 = _mm256_set1_pd(eligible_floor(reserve));
    // adjusted bids of chunk c (-inf when not eligible) and its validity
    let classify = |c: usize| {
        let (valid, _, adj) =
            classify4::<Q>(load(&pc[c]), if Q { load(&qc[c]) } else { zero }, floor4);
        (adj, valid)
    };
    // pre-pass: the maximum of each of 16 lanes (bids 16i + l, leftover chunks into the first
    // four). These are 16 >= K distinct bids, so the K-th best overall is >= the K-th largest
    // of them, `floor`: a bid below it can never enter, and skipping it leaves the final top K
    // unchanged. It spares the insertions (and mispredicted entry tests) of all but a few bids
    // per auction.
    // Segments of up to ADJ_BUF bids keep the pre-pass's adjusted bids in `scratch` (and count
    // the invalid ones there), so the main pass reads them back instead of recomputing them.
    let buffered = (16..=ADJ_BUF).contains(&full);
    let kept_adj = &mut scratch.as_chunks_mut::<4>().0[..if buffered { pc.len() } else { 0 }];
    let mut bad = _mm256_setzero_si256();
    let ones = _mm256_set1_epi64x(-1);
    let mut floor = f64::NEG_INFINITY;
    if full >= 16 {
        let mut m = [ninf; 4];
        let mut pre = |c: usize, mj: &mut __m256d| {
            let (adj, valid) = classify(c);
            if buffered {
                store(&mut kept_adj[c], adj);
                // an invalid lane is all zeros in `valid`: subtract (not valid) = -1
                bad = _mm256_sub_epi64(bad, _mm256_xor_si256(_mm256_castpd_si256(valid), ones));
            }
            *mj = _mm256_max_pd(*mj, adj);
        };
        let mut c = 0;
        while c + 4 <= pc.len() {
            // two cache lines of prices per step, fetched PREFETCH_READ bids ahead (see the
            // single-slot long kernel)
            let at = 4 * c;
            prefetch(p, at + PREFETCH_READ);
            prefetch(p, at + 8 + PREFETCH_READ);
            if Q {
                prefetch(q, at + PREFETCH_READ);
                prefetch(q, at + 8 + PREFETCH_READ);
            }
            for (j, mj) in m.iter_mut().enumerate() {
                pre(c + j, mj);
            }
            c += 4;
        }
        while c < pc.len() {
            pre(c, &mut m[0]);
            c += 1;
        }
        // the K-th largest of the 16 lane maxima: a lane keeps its value when at least K of
        // the 16 are >= it; the largest kept value is the K-th largest
        let vals: [[f64; 4]; 4] = m.map(|mj| lanes(mj));
        let mut cnt = [_mm256_setzero_si256(); 4];
        for x in vals.as_flattened() {
            let b = _mm256_broadcast_sd(x);
            for (cj, mj) in cnt.iter_mut().zip(&m) {
                // lanes <= x count x (all ones = -1)
                let le = _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_LE_OQ>(*mj, b));
                *cj = _mm256_sub_epi64(*cj, le);
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
    // a bid enters when adj > v[K-1] and adj >= floor, i.e. adj > max(v[K-1], the double just
    // below floor): one compare against a register updated only on insertion
    let below_floor = floor.next_down();
    let mut thr = _mm256_set1_pd(fmax(v[K - 1], below_floor));
    // `c` indexes the kept adjusted bids or the prices, whichever this segment uses
    #[allow(clippy::needless_range_loop)]
    for c in 0..pc.len() {
        let adj = if buffered {
            load(&kept_adj[c])
        } else {
            let (adj, valid) = classify(c);
            bad = _mm256_sub_epi64(bad, _mm256_xor_si256(_mm256_castpd_si256(valid), ones));
            adj
        };
        let mut enter = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_GT_OQ>(adj, thr)) as u32;
        if enter != 0 {
            let lanes = lanes(adj);
            while enter != 0 {
                let l = enter.trailing_zeros() as usize;
                enter &= enter - 1;
                if lanes[l] > v[K - 1] {
                    net_insert(&mut v, &mut ix, lanes[l], (4 * c + l) as f64);
                }
            }
            thr = _mm256_set1_pd(fmax(v[K - 1], below_floor));
        }
    }
    n_bad += hsum_epi64(bad) as u32;
    // the scalar tail, like `top_k_net`'s: a shared helper for it measured 5-7% slower on 30-
    // and 1000-bid VCG (v / ix no longer stayed in registers), so each kernel keeps its own
    for i in full..n {
        let (adj, valid) = adjusted(p[i], if Q { q[i] } else { 1.0 }, reserve);
        n_bad += u32::from(!valid);
        if adj > v[K - 1] {
            net_insert(&mut v, &mut ix, adj, i as f64);
        }
    }
    (net_write(&v, &ix, buf), n_bad as usize)
}
