//! The portable kernels: branch-free scalar code that the compiler vectorises.

use super::pricing::{loser_reason, price_winner, NO_SALE};
#[cfg(target_arch = "x86_64")]
use super::x86::sse2::top2_sse2;
use super::{SegmentOutcome, SinglePrice, LOSS_WON};
// The bid rule of `crate::record`, so that clearing and the engine agree on what is valid.
use crate::record::bid_ok;

// ---- branch-free building blocks ------------------------------------------------------------
//
// The kernels are written so that the compiler emits selects (cmov / blend) rather than
// branches, and so that the per-bid output pass vectorises: `&` instead of `&&` on bools,
// comparisons that are false for NaN, no closures on quality when there is none (the const
// parameter `Q` says whether a quality slice is present; without it the slice is empty and
// never read).

#[inline(always)]
pub(crate) fn sel(c: bool, a: f64, b: f64) -> f64 {
    if c {
        a
    } else {
        b
    }
}

/// `sel` through bit masks: LLVM keeps this branch-free, whereas a plain `if` on floats may
/// become a (mispredicted) branch again.
#[inline(always)]
pub(crate) fn sel_bits(c: bool, a: f64, b: f64) -> f64 {
    let m = 0u64.wrapping_sub(u64::from(c));
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

#[inline(always)]
pub(crate) fn fmax(a: f64, b: f64) -> f64 {
    // NaN-free operands only (maxsd, unlike f64::max which handles NaN)
    if a > b {
        a
    } else {
        b
    }
}

#[inline(always)]
pub(crate) fn fmin(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// Eligibility and adjusted bid of one bid: `(-inf, valid)` when not eligible.
#[inline(always)]
pub(crate) fn adjusted(p: f64, q: f64, reserve: f64) -> (f64, bool) {
    let valid = bid_ok(p, q);
    let elig = valid & (p > 0.0) & (p >= reserve);
    (sel(elig, p * q, f64::NEG_INFINITY), valid)
}

/// One pass over a segment: the top adjusted bid (lowest index on ties), its local index
/// (`usize::MAX` when none is eligible) and the second adjusted bid (-inf when none).
#[inline(always)]
pub(crate) fn top2<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
    #[cfg(target_arch = "x86_64")]
    {
        top2_sse2::<Q>(p, q, reserve)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        top2_scalar::<Q>(p, q, reserve, 0, (usize::MAX, f64::NEG_INFINITY, f64::NEG_INFINITY))
    }
}

/// The scalar top-2 scan over `p[from..]`, continuing from state `(best, a1, a2)`.
#[inline(always)]
pub(crate) fn top2_scalar<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    from: usize,
    state: (usize, f64, f64),
) -> (usize, f64, f64) {
    let (mut best, mut a1, mut a2) = state;
    let mut step = |i: usize, adj: f64| {
        // new second = max(old second, min(adj, old first)): covers "adj becomes first" (old
        // first drops to second) and a tie with the first (ties stay with the lower index)
        a2 = fmax(a2, fmin(adj, a1));
        let gt = adj > a1;
        best = if gt { i } else { best };
        a1 = sel(gt, adj, a1);
    };
    if Q {
        for (i, (&pi, &qi)) in p.iter().zip(q).enumerate().skip(from) {
            step(i, adjusted(pi, qi, reserve).0);
        }
    } else {
        for (i, &pi) in p.iter().enumerate().skip(from) {
            step(i, adjusted(pi, 1.0, reserve).0);
        }
    }
    (best, a1, a2)
}

/// Writes every bid's `min_to_win` / `loss_reason` as if it lost, given the adjusted amount a
/// loser must tie (`target_adj`, 0 when there is no sale); returns the number of invalid bids.
/// Straight-line code over slice iterators, so it vectorises.
#[inline(always)]
pub(crate) fn write_losers<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    target_adj: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    let mut n_bad = 0u32;
    if Q {
        let it = p.iter().zip(q).zip(min_to_win.iter_mut().zip(loss_reason.iter_mut()));
        for ((&pi, &qi), (m, r)) in it {
            let valid = bid_ok(pi, qi);
            let elig = valid & (pi > 0.0) & (pi >= reserve);
            *m = sel(valid, fmax(reserve, target_adj / qi), f64::NAN);
            *r = loser_reason(valid, elig);
            n_bad += u32::from(!valid);
        }
    } else {
        let lose = fmax(reserve, target_adj);
        for (&pi, (m, r)) in p.iter().zip(min_to_win.iter_mut().zip(loss_reason.iter_mut())) {
            let valid = bid_ok(pi, 1.0);
            let elig = valid & (pi > 0.0) & (pi >= reserve);
            *m = sel(valid, lose, f64::NAN);
            *r = loser_reason(valid, elig);
            n_bad += u32::from(!valid);
        }
    }
    n_bad as usize
}

/// Clears one segment: top-2 pass, then the per-bid pass. Returns the outcome and the number
/// of invalid bids.
#[inline(always)]
pub(crate) fn segment_single<const Q: bool>(
    rule: SinglePrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> (SegmentOutcome, usize) {
    let (best, a1, a2) = top2::<Q>(p, q, reserve);
    if best == usize::MAX {
        let n_bad = write_losers::<Q>(p, q, reserve, 0.0, min_to_win, loss_reason);
        return (NO_SALE, n_bad);
    }
    let qw = if Q { q[best] } else { 1.0 };
    let (out, target_adj) = price_winner(rule, best, a1, a2, p[best], qw, reserve, increment);
    let n_bad = write_losers::<Q>(p, q, reserve, target_adj, min_to_win, loss_reason);
    min_to_win[best] = out.winner_min_to_win;
    loss_reason[best] = LOSS_WON;
    (out, n_bad)
}

// ---- position auctions -----------------------------------------------------------------------

/// Keeps the top `buf.len()` eligible bids of a segment in `buf`, descending by adjusted bid,
/// ties to the lower index. Returns how many entries are filled and the number of invalid bids.
#[inline(always)]
pub(crate) fn top_k<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    let cap = buf.len();
    let mut len = 0usize;
    let mut n_bad = 0usize;
    let mut push = |i: usize, adj: f64, len: &mut usize| {
        // enter only when strictly above the last kept entry (ties keep the lower index)
        if adj == f64::NEG_INFINITY || (*len == cap && adj <= buf[cap - 1].0) {
            return;
        }
        let mut j = if *len == cap {
            cap - 1
        } else {
            *len += 1;
            *len - 1
        };
        while j > 0 && buf[j - 1].0 < adj {
            buf[j] = buf[j - 1];
            j -= 1;
        }
        buf[j] = (adj, i);
    };
    if Q {
        for (i, (&pi, &qi)) in p.iter().zip(q).enumerate() {
            let (adj, valid) = adjusted(pi, qi, reserve);
            n_bad += usize::from(!valid);
            push(i, adj, &mut len);
        }
    } else {
        for (i, &pi) in p.iter().enumerate() {
            let (adj, valid) = adjusted(pi, 1.0, reserve);
            n_bad += usize::from(!valid);
            push(i, adj, &mut len);
        }
    }
    (len, n_bad)
}

/// Inserts `(adj, i)` into the descending top-K `(v, ix)` with selects only: slot j takes the
/// entry above it when `adj` beats that one, `adj` itself when it beats only slot j's, else
/// keeps its own (strict comparisons: ties keep the lower index, which came first).
#[inline(always)]
pub(crate) fn net_insert<const K: usize>(v: &mut [f64; K], ix: &mut [f64; K], adj: f64, i: f64) {
    for j in (1..K).rev() {
        let up = adj > v[j - 1];
        let here = adj > v[j];
        ix[j] = sel_bits(up, ix[j - 1], sel_bits(here, i, ix[j]));
        v[j] = sel_bits(up, v[j - 1], sel_bits(here, adj, v[j]));
    }
    let here = adj > v[0];
    ix[0] = sel_bits(here, i, ix[0]);
    v[0] = sel_bits(here, adj, v[0]);
}

/// Writes the network's top K into `buf` (best first); returns how many are eligible bids.
#[inline(always)]
pub(crate) fn net_write<const K: usize>(
    v: &[f64; K],
    ix: &[f64; K],
    buf: &mut [(f64, usize)],
) -> usize {
    let mut len = 0;
    for (j, slot) in buf.iter_mut().enumerate().take(K) {
        *slot = (v[j], ix[j] as usize);
        len += usize::from(v[j] > f64::NEG_INFINITY);
    }
    len
}

/// Segments up to this many bids run the insertion network on every bid (no branch); longer
/// ones first test whether the bid enters the top K at all, which is rarely true.
pub(crate) const NET_BRANCHLESS_MAX: usize = 24;

/// [`top_k`] for a fixed `K = buf.len()` (up to 8) with the select-only insertion network.
#[inline(always)]
pub(crate) fn top_k_net<const Q: bool, const K: usize>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    let mut v = [f64::NEG_INFINITY; K];
    let mut ix = [0.0f64; K];
    let mut n_bad = 0u32;
    let n = p.len();
    let q = if Q { &q[..n] } else { &[][..] };
    let adj_at = |i: usize| adjusted(p[i], if Q { q[i] } else { 1.0 }, reserve);
    if n <= NET_BRANCHLESS_MAX {
        for i in 0..n {
            let (adj, valid) = adj_at(i);
            n_bad += u32::from(!valid);
            net_insert(&mut v, &mut ix, adj, i as f64);
        }
    } else {
        // long segments: test four bids at once against the K-th best; after the first few
        // dozen bids almost no chunk has a bid that enters, so there is one well-predicted
        // branch per four bids
        let full = n / 4 * 4;
        for c in (0..full).step_by(4) {
            let (x0, v0) = adj_at(c);
            let (x1, v1) = adj_at(c + 1);
            let (x2, v2) = adj_at(c + 2);
            let (x3, v3) = adj_at(c + 3);
            n_bad += u32::from(!v0) + u32::from(!v1) + u32::from(!v2) + u32::from(!v3);
            let thr = v[K - 1];
            if (x0 > thr) | (x1 > thr) | (x2 > thr) | (x3 > thr) {
                for (l, x) in [x0, x1, x2, x3].into_iter().enumerate() {
                    if x > v[K - 1] {
                        net_insert(&mut v, &mut ix, x, (c + l) as f64);
                    }
                }
            }
        }
        for i in full..n {
            let (adj, valid) = adj_at(i);
            n_bad += u32::from(!valid);
            if adj > v[K - 1] {
                net_insert(&mut v, &mut ix, adj, i as f64);
            }
        }
    }
    (net_write(&v, &ix, buf), n_bad as usize)
}

/// The top `buf.len()` eligible bids: the fixed-size network for up to 8, else insertion.
#[inline(always)]
pub(crate) fn top_k_any<const Q: bool>(
    p: &[f64],
    q: &[f64],
    reserve: f64,
    buf: &mut [(f64, usize)],
) -> (usize, usize) {
    match buf.len() {
        2 => top_k_net::<Q, 2>(p, q, reserve, buf),
        3 => top_k_net::<Q, 3>(p, q, reserve, buf),
        4 => top_k_net::<Q, 4>(p, q, reserve, buf),
        5 => top_k_net::<Q, 5>(p, q, reserve, buf),
        6 => top_k_net::<Q, 6>(p, q, reserve, buf),
        7 => top_k_net::<Q, 7>(p, q, reserve, buf),
        8 => top_k_net::<Q, 8>(p, q, reserve, buf),
        _ => top_k::<Q>(p, q, reserve, buf),
    }
}
