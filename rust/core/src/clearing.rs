//! Vectorized auction clearing over segment-layout batches.
//!
//! A [`Batch`] holds many auctions over flat arrays: auction `a` owns bids
//! `offsets[a]..offsets[a+1]`. One call clears every auction with no per-bid allocation.
//!
//! Semantics (the public contract, mirrored in the Python docs):
//! - A bid is *eligible* when its price is finite and > 0, its quality is finite and > 0, and
//!   its price is >= the auction's reserve.
//! - Bids rank by adjusted bid `price × quality`, descending; ties go to the lower bid index.
//! - First price: the top eligible bid wins and pays its own price.
//! - Second price: the winner `w` pays `min(price_w, max(reserve, adj_2 / q_w) + increment)`;
//!   alone, `min(price_w, reserve + increment)`.
//! - GSP (k slots, factors α): the bid in slot s pays per unit
//!   `min(price_s, max(reserve, adj_(s+1) / q_s) + increment)` (adj of a missing rank = 0).
//! - VCG: the bid in slot s pays in total `T_s = Σ_{j=s..k} (α_j − α_{j+1}) · max(adj_(j+1), r·q_s)`,
//!   per unit `min(price_s, T_s / (α_s · q_s))`. The reserve `r` acts as a phantom competitor:
//!   to keep slot j the bid must beat both the next adjusted bid and its own floor `r·q_s`. This is
//!   the textbook VCG / Myerson payment with a reserve (truthful, and equal to the externality
//!   with reserve bidders); the per-unit formula `max(r, T_s / (α_s q_s))` with unfloored
//!   thresholds is not truthful when r > 0. With r = 0 both are the same.
//! - `min_to_win` (OpenRTB 2.6 `${AUCTION_MIN_TO_WIN}`): the winner's is
//!   `max(reserve, adj_2 / q_w)` (the reserve when alone); a loser's is the lowest price that ties
//!   the winning adjusted bid (first price) or the clearing price (second price), converted through
//!   the qualities and never below the reserve; in an auction with no sale it is the reserve;
//!   NaN for an invalid bid.
//! - `loss_reason` (OpenRTB loss codes): 0 won, 3 invalid bid, 100 below floor (including a zero
//!   price), 102 lost to a higher bid.

use crate::error::CoreError;
use crate::record::{Field, Value};

/// OpenRTB loss reason: the bid won.
pub const LOSS_WON: i32 = 0;
/// OpenRTB loss reason: invalid bid response (NaN / inf / negative price, bad quality).
pub const LOSS_INVALID: i32 = 3;
/// OpenRTB loss reason: bid was below the auction floor.
pub const LOSS_BELOW_FLOOR: i32 = 100;
/// OpenRTB loss reason: lost to a higher bid.
pub const LOSS_OUTBID: i32 = 102;

/// The reserve (floor) price of each auction in a batch.
#[derive(Debug, Clone, Copy)]
pub enum Reserve<'a> {
    Scalar(f64),
    PerAuction(&'a [f64]),
}

/// A validated, borrowed batch of auctions in segment layout.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    offsets: &'a [i64],
    prices: &'a [f64],
    quality: Option<&'a [f64]>,
    reserve: Reserve<'a>,
}

impl<'a> Batch<'a> {
    /// Checks the structure of a batch (offsets, lengths, reserves). Bid values are checked
    /// separately by [`Batch::first_invalid_bid`], so that `on_invalid="skip"` can clear a batch
    /// that holds bad bids.
    pub fn new(
        offsets: &'a [i64],
        prices: &'a [f64],
        quality: Option<&'a [f64]>,
        reserve: Reserve<'a>,
    ) -> Result<Self, CoreError> {
        if offsets.is_empty() {
            return Err(CoreError::invalid(
                "offsets",
                "must hold n_auctions + 1 entries (at least [0])",
            ));
        }
        if offsets[0] != 0 {
            return Err(CoreError::invalid(
                "offsets",
                format!("offsets[0] = {} but must be 0", offsets[0]),
            ));
        }
        for (a, w) in offsets.windows(2).enumerate() {
            if w[1] < w[0] {
                return Err(CoreError::invalid(
                    "offsets",
                    format!(
                        "offsets[{}] = {} is less than offsets[{a}] = {}: offsets must not decrease",
                        a + 1,
                        w[1],
                        w[0]
                    ),
                ));
            }
        }
        let last = offsets[offsets.len() - 1];
        if last != prices.len() as i64 {
            return Err(CoreError::invalid(
                "offsets",
                format!(
                    "offsets[{}] = {last} but prices has {} bids: the last offset must equal n_bids",
                    offsets.len() - 1,
                    prices.len()
                ),
            ));
        }
        if let Some(q) = quality {
            if q.len() != prices.len() {
                return Err(CoreError::invalid(
                    "quality",
                    format!("has {} entries but prices has {}", q.len(), prices.len()),
                ));
            }
        }
        let n_auctions = offsets.len() - 1;
        match reserve {
            Reserve::Scalar(r) => check_reserve(r, None)?,
            Reserve::PerAuction(rs) => {
                if rs.len() != n_auctions {
                    return Err(CoreError::invalid(
                        "reserve",
                        format!("has {} entries but the batch has {n_auctions} auctions", rs.len()),
                    ));
                }
                for (a, &r) in rs.iter().enumerate() {
                    check_reserve(r, Some(a))?;
                }
            }
        }
        Ok(Batch { offsets, prices, quality, reserve })
    }

    #[inline]
    pub fn n_auctions(&self) -> usize {
        self.offsets.len() - 1
    }

    #[inline]
    pub fn n_bids(&self) -> usize {
        self.prices.len()
    }

    #[inline]
    pub fn offsets(&self) -> &'a [i64] {
        self.offsets
    }

    #[inline]
    pub fn prices(&self) -> &'a [f64] {
        self.prices
    }

    #[inline]
    pub fn quality(&self) -> Option<&'a [f64]> {
        self.quality
    }

    #[inline]
    pub fn reserve_of(&self, a: usize) -> f64 {
        match self.reserve {
            Reserve::Scalar(r) => r,
            Reserve::PerAuction(rs) => rs[a],
        }
    }

    /// The bid range of auction `a`.
    #[inline]
    pub fn segment(&self, a: usize) -> std::ops::Range<usize> {
        self.offsets[a] as usize..self.offsets[a + 1] as usize
    }

    /// The first bid whose price or quality is invalid (NaN, infinite, negative price,
    /// non-positive quality), as the error `on_invalid="raise"` reports: the lowest bid index
    /// with a bad field (the price is named when both are bad).
    pub fn first_invalid_bid(&self) -> Option<CoreError> {
        let q = self.quality.unwrap_or(&[]);
        for (i, &p) in self.prices.iter().enumerate() {
            if !price_is_valid(p) {
                return Some(CoreError::InvalidBid {
                    field: Field::Price,
                    index: i,
                    value: Value::Float(p),
                    msg: "must be finite and >= 0",
                });
            }
            if let Some(&x) = q.get(i) {
                if !quality_is_valid(x) {
                    return Some(CoreError::InvalidBid {
                        field: Field::Quality,
                        index: i,
                        value: Value::Float(x),
                        msg: "must be finite and > 0",
                    });
                }
            }
        }
        None
    }
}

fn check_reserve(r: f64, index: Option<usize>) -> Result<(), CoreError> {
    if r.is_finite() && r >= 0.0 {
        return Ok(());
    }
    let at = index.map(|a| format!("[{a}]")).unwrap_or_default();
    Err(CoreError::invalid("reserve", format!("reserve{at} = {r}: must be finite and >= 0")))
}

/// Checks an increment (finite, >= 0).
pub fn check_increment(increment: f64) -> Result<(), CoreError> {
    if increment.is_finite() && increment >= 0.0 {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "increment",
            format!("increment = {increment}: must be finite and >= 0"),
        ))
    }
}

/// Checks position-auction slot factors: non-empty, finite, > 0, non-increasing.
pub fn check_slot_ctrs(ctrs: &[f64]) -> Result<(), CoreError> {
    if ctrs.is_empty() {
        return Err(CoreError::invalid("slot_ctrs", "must hold at least one slot"));
    }
    for (s, &c) in ctrs.iter().enumerate() {
        if !(c.is_finite() && c > 0.0) {
            return Err(CoreError::invalid(
                "slot_ctrs",
                format!("slot_ctrs[{s}] = {c}: must be finite and > 0"),
            ));
        }
        if s > 0 && c > ctrs[s - 1] {
            return Err(CoreError::invalid(
                "slot_ctrs",
                format!(
                    "slot_ctrs[{s}] = {c} > slot_ctrs[{}] = {}: must be non-increasing",
                    s - 1,
                    ctrs[s - 1]
                ),
            ));
        }
    }
    Ok(())
}

/// Single-slot pricing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinglePrice {
    First,
    Second,
}

/// Multi-slot (position auction) pricing rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPrice {
    Gsp,
    Vcg,
}

/// Result of single-slot clearing. `winner` holds global bid indices (-1 = no sale).
#[derive(Debug, Clone, PartialEq)]
pub struct ClearingResult {
    pub winner: Vec<i64>,
    pub price: Vec<f64>,
    pub min_to_win: Vec<f64>,
    pub loss_reason: Vec<i32>,
    /// How many bids were invalid (loss reason 3) and so treated as ineligible.
    pub n_invalid: usize,
}

/// Result of position-auction clearing, row-major `[n_auctions, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotResult {
    pub k: usize,
    pub winner: Vec<i64>,
    pub price: Vec<f64>,
    /// How many bids were invalid and so treated as ineligible.
    pub n_invalid: usize,
}

/// The outcome of one single-slot auction: local winner index (-1 = no sale), price paid and
/// the winner's minimum bid to win (NaN when there is no sale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentOutcome {
    pub winner: i64,
    pub price: f64,
    pub winner_min_to_win: f64,
}

// ---- branch-free building blocks ------------------------------------------------------------
//
// The kernels are written so that the compiler emits selects (cmov / blend) rather than
// branches, and so that the per-bid output pass vectorises: `&` instead of `&&` on bools,
// comparisons that are false for NaN, no closures on quality when there is none (the const
// parameter `Q` says whether a quality slice is present; without it the slice is empty and
// never read).

// The bid rule of `crate::record`, so that clearing and the engine agree on what is valid.
use crate::record::{price_ok as price_is_valid, quality_ok as quality_is_valid};

#[inline(always)]
fn sel(c: bool, a: f64, b: f64) -> f64 {
    if c {
        a
    } else {
        b
    }
}

/// `sel` through bit masks: LLVM keeps this branch-free, whereas a plain `if` on floats may
/// become a (mispredicted) branch again.
#[inline(always)]
fn sel_bits(c: bool, a: f64, b: f64) -> f64 {
    let m = 0u64.wrapping_sub(u64::from(c));
    f64::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

#[inline(always)]
fn fmax(a: f64, b: f64) -> f64 {
    // NaN-free operands only (maxsd, unlike f64::max which handles NaN)
    if a > b {
        a
    } else {
        b
    }
}

#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if a < b {
        a
    } else {
        b
    }
}

/// Eligibility and adjusted bid of one bid: `(-inf, valid)` when not eligible.
#[inline(always)]
fn adjusted(p: f64, q: f64, reserve: f64) -> (f64, bool) {
    let valid = price_is_valid(p) & quality_is_valid(q);
    let elig = valid & (p > 0.0) & (p >= reserve);
    (sel(elig, p * q, f64::NEG_INFINITY), valid)
}

/// One pass over a segment: the top adjusted bid (lowest index on ties), its local index
/// (`usize::MAX` when none is eligible) and the second adjusted bid (-inf when none).
#[inline(always)]
fn top2<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
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
fn top2_scalar<const Q: bool>(
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

/// The top-2 scan with SSE2 (part of the x86_64 baseline): four independent lanes in two
/// vectors, so there is no serial dependency through one running maximum, then a merge and the
/// scalar scan of the last `len % 4` bids. Bid indices ride along as f64 (exact below 2^53)
/// so that the index update is a blend on the same mask as the maximum.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn top2_sse2<const Q: bool>(p: &[f64], q: &[f64], reserve: f64) -> (usize, f64, f64) {
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

/// OpenRTB loss reason of a losing bid without branches: 3 invalid, 100 below floor, 102 outbid
/// (eligible implies valid).
#[inline(always)]
fn loser_reason(valid: bool, elig: bool) -> i32 {
    LOSS_INVALID
        + (LOSS_BELOW_FLOOR - LOSS_INVALID) * i32::from(valid)
        + (LOSS_OUTBID - LOSS_BELOW_FLOOR) * i32::from(elig)
}

/// Writes every bid's `min_to_win` / `loss_reason` as if it lost, given the adjusted amount a
/// loser must tie (`target_adj`, 0 when there is no sale); returns the number of invalid bids.
/// Straight-line code over slice iterators, so it vectorises.
#[inline(always)]
fn write_losers<const Q: bool>(
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
            let valid = price_is_valid(pi) & quality_is_valid(qi);
            let elig = valid & (pi > 0.0) & (pi >= reserve);
            *m = sel(valid, fmax(reserve, target_adj / qi), f64::NAN);
            *r = loser_reason(valid, elig);
            n_bad += u32::from(!valid);
        }
    } else {
        let lose = fmax(reserve, target_adj);
        for (&pi, (m, r)) in p.iter().zip(min_to_win.iter_mut().zip(loss_reason.iter_mut())) {
            let valid = price_is_valid(pi);
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
fn segment_single<const Q: bool>(
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

/// The outcome of an auction with no eligible bid.
const NO_SALE: SegmentOutcome =
    SegmentOutcome { winner: -1, price: 0.0, winner_min_to_win: f64::NAN };

/// The pricing rule, shared by every kernel: given the winner `best` (price `pw`, quality `qw`),
/// the top adjusted bid `a1` and the runner-up `a2` (-inf when alone), returns the outcome and
/// the adjusted amount a loser must tie (`target_adj`, for the losers' `min_to_win`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn price_winner(
    rule: SinglePrice,
    best: usize,
    a1: f64,
    a2: f64,
    pw: f64,
    qw: f64,
    reserve: f64,
    increment: f64,
) -> (SegmentOutcome, f64) {
    // a2 = -inf when alone: max(reserve, -inf) = reserve
    let floor_to_beat = fmax(reserve, a2 / qw);
    let (price, target_adj) = match rule {
        SinglePrice::First => (pw, a1),
        SinglePrice::Second => {
            let price = fmin(pw, floor_to_beat + increment);
            (price, price * qw)
        }
    };
    (SegmentOutcome { winner: best as i64, price, winner_min_to_win: floor_to_beat }, target_adj)
}

/// How far ahead (in bids) the long single-slot kernel prefetches the prices it is about to
/// read, and the output lines it is about to write. A 100-bid auction is 800 bytes of prices;
/// the hardware prefetcher stops at every 4 KB page and runs only a short way ahead, so without
/// these the first pass waits on memory at every auction. On 10M bids of 100-bid auctions:
/// 22 -> 16.5 ms (same-binary A/B; 128..192 and 64..192 measured within noise of each other).
const PREFETCH_READ: usize = 192;
const PREFETCH_WRITE: usize = 128;

/// Longest segment cleared by [`segment_single_short_avx2`] (four AVX2 vectors of bids).
const SHORT_MAX: usize = 16;

/// Lane masks of a partial last chunk: 4 lanes read from offset `4 - rem` have the first `rem`
/// lanes all ones.
const TAIL_MASK64: [i64; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];
const TAIL_MASK32: [i32; 8] = [-1, -1, -1, -1, 0, 0, 0, 0];

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
unsafe fn segment_single_short_avx2<const Q: bool, const NC: usize>(
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
unsafe fn segment_single_long_avx2<const Q: bool>(
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
unsafe fn segment_single_short<const Q: bool>(
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

/// Clears one single-slot auction. `quality = None` means all 1.0. Writes each bid's
/// `min_to_win` and `loss_reason` into the two output slices (same length as `prices`).
/// Invalid bids are ineligible (reason 3).
///
/// # Panics
/// If the slices' lengths differ from `prices.len()`.
pub fn clear_segment(
    rule: SinglePrice,
    prices: &[f64],
    quality: Option<&[f64]>,
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> SegmentOutcome {
    assert_eq!(min_to_win.len(), prices.len());
    assert_eq!(loss_reason.len(), prices.len());
    match quality {
        Some(q) => {
            assert_eq!(q.len(), prices.len());
            segment_single::<true>(rule, prices, q, reserve, increment, min_to_win, loss_reason).0
        }
        None => {
            segment_single::<false>(rule, prices, &[], reserve, increment, min_to_win, loss_reason)
                .0
        }
    }
}

#[inline(always)]
fn single_into<const Q: bool, const AVX2: bool>(
    batch: &Batch<'_>,
    rule: SinglePrice,
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    let q_all = batch.quality.unwrap_or(&[]);
    let mut n_bad = 0;
    let outs = winner.iter_mut().zip(price.iter_mut());
    for (a, (off, (w, pr))) in batch.offsets.windows(2).zip(outs).enumerate() {
        // Batch::new checked 0 = offsets[0] <= ... <= offsets[n] = n_bids
        let seg = off[0] as usize..off[1] as usize;
        let q = if Q { &q_all[seg.clone()] } else { &[][..] };
        let p = &batch.prices[seg.clone()];
        let (m, l) = (&mut min_to_win[seg.clone()], &mut loss_reason[seg.clone()]);
        let reserve = batch.reserve_of(a);
        #[cfg(target_arch = "x86_64")]
        let (out, bad) = if AVX2 && p.len() <= SHORT_MAX {
            // SAFETY: AVX2 = true only in `single_into_avx2`, which runs after the CPU was found
            // to support AVX2; the length is within the short kernel's bound (checked here) and
            // the other slices are cut from the same range.
            unsafe { segment_single_short::<Q>(rule, p, q, reserve, increment, m, l) }
        } else if AVX2 {
            // SAFETY: as above; the long kernel takes any length.
            unsafe { segment_single_long_avx2::<Q>(rule, p, q, reserve, increment, m, l) }
        } else {
            segment_single::<Q>(rule, p, q, reserve, increment, m, l)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (out, bad) = segment_single::<Q>(rule, p, q, reserve, increment, m, l);
        *w = if out.winner >= 0 { seg.start as i64 + out.winner } else { -1 };
        *pr = out.price;
        n_bad += bad;
    }
    n_bad
}

/// Clears every auction of the batch with the given single-slot rule, writing into
/// caller-provided outputs (so the binding crate can write straight into numpy arrays; every
/// element is written, so the outputs may start uninitialised-then-zeroed or hold garbage).
/// Invalid bids are treated as ineligible (reason 3); the return value is how many there were,
/// so a caller with `on_invalid="raise"` calls [`Batch::first_invalid_bid`] only when it is > 0.
///
/// # Panics
/// If an output's length is not `n_auctions` (winner, price) or `n_bids` (the others).
pub fn clear_single_into(
    batch: &Batch<'_>,
    rule: SinglePrice,
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n);
    assert_eq!(price.len(), n);
    assert_eq!(min_to_win.len(), batch.n_bids());
    assert_eq!(loss_reason.len(), batch.n_bids());
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe {
            single_into_avx2(batch, rule, increment, winner, price, min_to_win, loss_reason)
        };
    }
    if batch.quality.is_some() {
        single_into::<true, false>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    } else {
        single_into::<false, false>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    }
}

/// The same kernels compiled for AVX2 (wider vectors, blends in one instruction), picked at
/// run time: the baseline x86_64 build only assumes SSE2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn single_into_avx2(
    batch: &Batch<'_>,
    rule: SinglePrice,
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> usize {
    if batch.quality.is_some() {
        single_into::<true, true>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    } else {
        single_into::<false, true>(batch, rule, increment, winner, price, min_to_win, loss_reason)
    }
}

fn clear_single(batch: &Batch<'_>, rule: SinglePrice, increment: f64) -> ClearingResult {
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    let mut r = ClearingResult {
        winner: vec![-1; n],
        price: vec![0.0; n],
        min_to_win: vec![0.0; m],
        loss_reason: vec![0; m],
        n_invalid: 0,
    };
    r.n_invalid = clear_single_into(
        batch,
        rule,
        increment,
        &mut r.winner,
        &mut r.price,
        &mut r.min_to_win,
        &mut r.loss_reason,
    );
    r
}

/// First-price clearing of a whole batch.
pub fn clear_first_price(batch: &Batch<'_>) -> ClearingResult {
    clear_single(batch, SinglePrice::First, 0.0)
}

/// Second-price (Vickrey with quality scores) clearing of a whole batch.
pub fn clear_second_price(batch: &Batch<'_>, increment: f64) -> ClearingResult {
    clear_single(batch, SinglePrice::Second, increment)
}

// ---- position auctions -----------------------------------------------------------------------

/// Keeps the top `buf.len()` eligible bids of a segment in `buf`, descending by adjusted bid,
/// ties to the lower index. Returns how many entries are filled and the number of invalid bids.
#[inline(always)]
fn top_k<const Q: bool>(
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
fn net_insert<const K: usize>(v: &mut [f64; K], ix: &mut [f64; K], adj: f64, i: f64) {
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

/// The largest double below `x` (`f64::next_down`, stable only since Rust 1.86; our MSRV is
/// 1.85). -inf and NaN map to themselves.
fn next_down(x: f64) -> f64 {
    if x.is_nan() || x == f64::NEG_INFINITY {
        return x;
    }
    if x == 0.0 {
        return -f64::from_bits(1);
    }
    let b = x.to_bits();
    f64::from_bits(if x > 0.0 { b - 1 } else { b + 1 })
}

/// Writes the network's top K into `buf` (best first); returns how many are eligible bids.
#[inline(always)]
fn net_write<const K: usize>(v: &[f64; K], ix: &[f64; K], buf: &mut [(f64, usize)]) -> usize {
    let mut len = 0;
    for (j, slot) in buf.iter_mut().enumerate().take(K) {
        *slot = (v[j], ix[j] as usize);
        len += usize::from(v[j] > f64::NEG_INFINITY);
    }
    len
}

/// Segments up to this many bids run the insertion network on every bid (no branch); longer
/// ones first test whether the bid enters the top K at all, which is rarely true.
const NET_BRANCHLESS_MAX: usize = 24;

/// [`top_k`] for a fixed `K = buf.len()` (up to 8) with the select-only insertion network.
#[inline(always)]
fn top_k_net<const Q: bool, const K: usize>(
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

/// Largest segment (and top-k buffer) handled by [`top_k_rank_avx2`].
const RANK_MAX: usize = 16;

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
unsafe fn top_k_rank_avx2<const Q: bool>(
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
unsafe fn top_k_rank_nc_avx2<const Q: bool, const NC: usize>(
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
unsafe fn top_k_long_net_avx2<const Q: bool, const K: usize>(
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

/// Longest segment (in whole 4-bid chunks) whose adjusted bids [`top_k_long_net_avx2`] keeps
/// on the stack between its two passes.
const ADJ_BUF: usize = 256;

/// A top-k kernel: `(prices, quality, reserve, buf) -> (filled, n_invalid)`.
#[cfg(target_arch = "x86_64")]
type TopKFn = unsafe fn(&[f64], &[f64], f64, &mut [(f64, usize)]) -> (usize, usize);

/// [`top_k_long_net_avx2`] for `buf.len()` in 2..=8.
///
/// # Safety
/// The CPU must support AVX2; `buf.len()` is in 2..=8; with `Q`, `q.len() >= p.len()`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn top_k_long_avx2<const Q: bool>(
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

/// The top `buf.len()` eligible bids: the fixed-size network for up to 8, else insertion.
#[inline(always)]
fn top_k_any<const Q: bool>(
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

/// Prices the filled slots of one position auction from its ranked top `k + 1` (`top`, local
/// indices), writing local winners (-1 = empty) and per-unit prices (0.0 = empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn price_slots<const Q: bool>(
    rule: SlotPrice,
    p: &[f64],
    q: &[f64],
    reserve: f64,
    increment: f64,
    ctrs: &[f64],
    top: &[(f64, usize)],
    winner: &mut [i64],
    price: &mut [f64],
) {
    let k = ctrs.len();
    let adj_at = |r: usize| if r < top.len() { top[r].0 } else { 0.0 };
    for (s, (w, pr)) in winner.iter_mut().zip(price.iter_mut()).enumerate() {
        if s >= top.len() {
            *w = -1;
            *pr = 0.0;
            continue;
        }
        let i = top[s].1;
        let (pi, qi) = (p[i], if Q { q[i] } else { 1.0 });
        let per_unit = match rule {
            SlotPrice::Gsp => fmax(reserve, adj_at(s + 1) / qi) + increment,
            SlotPrice::Vcg => {
                // Myerson / VCG with the reserve as a phantom competitor: to keep slot j the
                // bid must beat both the next adjusted bid and its own floor reserve * q_s.
                let floor = reserve * qi;
                let mut total = 0.0;
                for j in s..k {
                    let alpha_next = if j + 1 < k { ctrs[j + 1] } else { 0.0 };
                    total += (ctrs[j] - alpha_next) * fmax(adj_at(j + 1), floor);
                }
                total / (ctrs[s] * qi)
            }
        };
        *w = i as i64;
        *pr = fmin(pi, per_unit);
    }
}

/// Clears one position auction with `ctrs.len()` slots. `scratch` is reused between calls to
/// avoid allocation. Writes local bid indices (-1 = empty) and per-unit prices (0.0 = empty).
/// Invalid bids are ineligible.
///
/// # Panics
/// If `winner` / `price` are not `ctrs.len()` long.
#[allow(clippy::too_many_arguments)]
pub fn clear_segment_slots(
    rule: SlotPrice,
    prices: &[f64],
    quality: Option<&[f64]>,
    reserve: f64,
    increment: f64,
    ctrs: &[f64],
    scratch: &mut Vec<(f64, usize)>,
    winner: &mut [i64],
    price: &mut [f64],
) {
    let k = ctrs.len();
    assert_eq!(winner.len(), k);
    assert_eq!(price.len(), k);
    scratch.clear();
    scratch.resize(k + 1, (0.0, 0));
    match quality {
        Some(q) => {
            assert_eq!(q.len(), prices.len());
            let (len, _) = top_k_any::<true>(prices, q, reserve, scratch);
            let top = &scratch[..len];
            price_slots::<true>(rule, prices, q, reserve, increment, ctrs, top, winner, price);
        }
        None => {
            let (len, _) = top_k_any::<false>(prices, &[], reserve, scratch);
            let top = &scratch[..len];
            price_slots::<false>(rule, prices, &[], reserve, increment, ctrs, top, winner, price);
        }
    }
}

#[inline(always)]
fn slots_into<const Q: bool, const AVX2: bool>(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    let k = ctrs.len();
    let q_all = batch.quality.unwrap_or(&[]);
    let mut buf = vec![(0.0, 0usize); k + 1];
    let mut n_bad = 0;
    let outs = winner.chunks_exact_mut(k).zip(price.chunks_exact_mut(k));
    for (a, (off, (w, pr))) in batch.offsets.windows(2).zip(outs).enumerate() {
        let seg = off[0] as usize..off[1] as usize;
        let p = &batch.prices[seg.clone()];
        let q = if Q { &q_all[seg.clone()] } else { &[][..] };
        let reserve = batch.reserve_of(a);
        #[cfg(target_arch = "x86_64")]
        let (len, bad) = if AVX2 && p.len() <= RANK_MAX && buf.len() <= RANK_MAX {
            // SAFETY: AVX2 = true only in `slots_into_avx2`, which runs after the CPU was found
            // to support AVX2; the lengths are within the rank kernel's bounds (checked here).
            unsafe { top_k_rank_avx2::<Q>(p, q, reserve, &mut buf) }
        } else if AVX2 && p.len() > NET_BRANCHLESS_MAX && (2..=8).contains(&buf.len()) {
            // SAFETY: as above (AVX2 checked by the caller of `slots_into_avx2`); `buf` holds
            // 2..=8 entries (checked here), the length the long kernel is instantiated for.
            // called through an opaque pointer: inlined here, the long kernel made the
            // register allocation of the short-auction loop worse (10-bid VCG 1.7x slower)
            let long: TopKFn = std::hint::black_box(top_k_long_avx2::<Q>);
            unsafe { long(p, q, reserve, &mut buf) }
        } else {
            top_k_any::<Q>(p, q, reserve, &mut buf)
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (len, bad) = top_k_any::<Q>(p, q, reserve, &mut buf);
        n_bad += bad;
        price_slots::<Q>(rule, p, q, reserve, increment, ctrs, &buf[..len], w, pr);
        for x in w.iter_mut().filter(|x| **x >= 0) {
            *x += seg.start as i64;
        }
    }
    n_bad
}

/// Clears every auction of the batch as a position auction, writing row-major
/// `[n_auctions, k]` outputs (every element is written). Invalid bids are ineligible; returns
/// how many there were. Call [`check_slot_ctrs`] first.
///
/// # Panics
/// If `ctrs` is empty or the outputs are not `n_auctions * ctrs.len()` long.
pub fn clear_slots_into(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    let k = ctrs.len();
    assert!(k > 0, "clear_slots_into needs at least one slot");
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n * k);
    assert_eq!(price.len(), n * k);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { slots_into_avx2(batch, rule, ctrs, increment, winner, price) };
    }
    if batch.quality.is_some() {
        slots_into::<true, false>(batch, rule, ctrs, increment, winner, price)
    } else {
        slots_into::<false, false>(batch, rule, ctrs, increment, winner, price)
    }
}

/// [`clear_slots_into`] compiled for AVX2, picked at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn slots_into_avx2(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) -> usize {
    if batch.quality.is_some() {
        slots_into::<true, true>(batch, rule, ctrs, increment, winner, price)
    } else {
        slots_into::<false, true>(batch, rule, ctrs, increment, winner, price)
    }
}

fn clear_slots(batch: &Batch<'_>, rule: SlotPrice, ctrs: &[f64], increment: f64) -> SlotResult {
    let k = ctrs.len();
    let n = batch.n_auctions();
    let mut r = SlotResult { k, winner: vec![-1; n * k], price: vec![0.0; n * k], n_invalid: 0 };
    r.n_invalid = clear_slots_into(batch, rule, ctrs, increment, &mut r.winner, &mut r.price);
    r
}

/// Generalized second price over `ctrs.len()` slots. Call [`check_slot_ctrs`] first.
pub fn clear_gsp(batch: &Batch<'_>, ctrs: &[f64], increment: f64) -> SlotResult {
    clear_slots(batch, SlotPrice::Gsp, ctrs, increment)
}

/// VCG over `ctrs.len()` slots (the reserve acts as a phantom competitor, see the module
/// docs). Call [`check_slot_ctrs`] first.
pub fn clear_vcg(batch: &Batch<'_>, ctrs: &[f64]) -> SlotResult {
    clear_slots(batch, SlotPrice::Vcg, ctrs, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                p[i].is_finite() && p[i] > 0.0 && p[i] >= r && q[i].is_finite() && q[i] > 0.0
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
            raw in proptest::collection::vec((0u8..12, 0u8..4), 0..70),
            r in proptest::sample::select(vec![0.0, 0.5, 1.5]),
            k in 1usize..11,
            use_q in proptest::bool::ANY,
        ) {
            let p: Vec<f64> = raw.iter().map(|&(x, _)| match x {
                10 => f64::NAN,
                11 => -1.0,
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
                let bad = if use_q {
                    slots_into::<true, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                } else {
                    slots_into::<false, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                };
                proptest::prop_assert_eq!((&d.winner, &d.price, d.n_invalid), (&bw, &bp, bad));
            }
            let d = clear_second_price(&b, 0.01);
            let (mut bw, mut bp, mut bm, mut br) = (vec![0; 1], vec![0.0; 1], vec![0.0; n], vec![0; n]);
            let bad = if use_q {
                single_into::<true, false>(&b, SinglePrice::Second, 0.01, &mut bw, &mut bp, &mut bm, &mut br)
            } else {
                single_into::<false, false>(&b, SinglePrice::Second, 0.01, &mut bw, &mut bp, &mut bm, &mut br)
            };
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
            raw in proptest::collection::vec((0u8..14, 0u8..6), 720),
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
                x => f64::from(x) * 0.5,
            }).collect();
            let q: Vec<f64> = raw[..n].iter()
                .map(|&(_, y)| [0.5, 1.0, 2.0, 0.0, f64::NAN, 0.3][y as usize])
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
                let bad = if use_q {
                    single_into::<true, false>(&b, rule, 0.01, &mut bw, &mut bp, &mut bm, &mut br)
                } else {
                    single_into::<false, false>(&b, rule, 0.01, &mut bw, &mut bp, &mut bm, &mut br)
                };
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
                let bad = if use_q {
                    slots_into::<true, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                } else {
                    slots_into::<false, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                };
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
                    let bad = if qs.is_some() {
                        slots_into::<true, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                    } else {
                        slots_into::<false, false>(&b, rule, &ctrs, 0.01, &mut bw, &mut bp)
                    };
                    assert_eq!((&d.winner, &d.price, d.n_invalid), (&bw, &bp, bad), "k={k}");
                }
            }
        }
    }

    #[test]
    fn next_down_steps_one_double_down() {
        for x in [1.0, 0.1, 3e-320, f64::MAX, f64::INFINITY, -2.5, f64::MIN_POSITIVE] {
            let d = next_down(x);
            assert!(d < x, "{x}");
            assert_eq!(d.to_bits().abs_diff(x.to_bits()), 1, "{x}");
        }
        assert_eq!(next_down(0.0), -f64::from_bits(1));
        assert_eq!(next_down(-0.0), -f64::from_bits(1));
        assert_eq!(next_down(f64::NEG_INFINITY), f64::NEG_INFINITY);
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
        // reserve 0: the formula exactly
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
}
