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
//! - VCG: the bid in slot s pays in total `T_s = Σ_{j=s..k} (α_j − α_{j+1}) · adj_(j+1)`, per unit
//!   `min(price_s, max(reserve, T_s / (α_s · q_s)))`.
//! - `min_to_win` (OpenRTB 2.6 `${AUCTION_MIN_TO_WIN}`): the winner's is
//!   `max(reserve, adj_2 / q_w)` (the reserve when alone); a loser's is the lowest price that ties
//!   the winning adjusted bid (first price) or the clearing price (second price), converted through
//!   the qualities and never below the reserve; in an auction with no sale it is the reserve;
//!   NaN for an invalid bid.
//! - `loss_reason` (OpenRTB loss codes): 0 won, 3 invalid bid, 100 below floor (including a zero
//!   price), 102 lost to a higher bid.

use crate::error::CoreError;

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
        for a in 1..offsets.len() {
            if offsets[a] < offsets[a - 1] {
                return Err(CoreError::invalid(
                    "offsets",
                    format!(
                        "offsets[{a}] = {} is less than offsets[{}] = {}: offsets must not decrease",
                        offsets[a],
                        a - 1,
                        offsets[a - 1]
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
    /// non-positive quality), as the error `on_invalid="raise"` reports.
    pub fn first_invalid_bid(&self) -> Option<CoreError> {
        for (i, &p) in self.prices.iter().enumerate() {
            if !price_is_valid(p) {
                return Some(CoreError::InvalidBid {
                    field: "prices",
                    index: i,
                    value: p,
                    msg: "price must be finite and >= 0",
                });
            }
        }
        if let Some(q) = self.quality {
            for (i, &x) in q.iter().enumerate() {
                if !quality_is_valid(x) {
                    return Some(CoreError::InvalidBid {
                        field: "quality",
                        index: i,
                        value: x,
                        msg: "quality must be finite and > 0",
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
    Err(CoreError::invalid(
        "reserve",
        format!("reserve{at} = {r}: must be finite and >= 0"),
    ))
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

#[inline(always)]
fn price_is_valid(p: f64) -> bool {
    p.is_finite() && p >= 0.0
}

#[inline(always)]
fn quality_is_valid(q: f64) -> bool {
    q.is_finite() && q > 0.0
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
}

/// Result of position-auction clearing, row-major `[n_auctions, k]`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotResult {
    pub k: usize,
    pub winner: Vec<i64>,
    pub price: Vec<f64>,
}

/// The outcome of one single-slot auction: local winner index (-1 = no sale), price paid and
/// the winner's minimum bid to win (NaN when there is no sale).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentOutcome {
    pub winner: i64,
    pub price: f64,
    pub winner_min_to_win: f64,
}

/// Clears one single-slot auction. `quality = None` means all 1.0. Writes each bid's
/// `min_to_win` and `loss_reason` into the two output slices (same length as `prices`).
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
            segment_single(rule, prices, |i| q[i], reserve, increment, min_to_win, loss_reason)
        }
        None => segment_single(rule, prices, |_| 1.0, reserve, increment, min_to_win, loss_reason),
    }
}

#[inline(always)]
fn segment_single<Q: Fn(usize) -> f64>(
    rule: SinglePrice,
    prices: &[f64],
    q: Q,
    reserve: f64,
    increment: f64,
    min_to_win: &mut [f64],
    loss_reason: &mut [i32],
) -> SegmentOutcome {
    let n = prices.len();
    let mut best = usize::MAX;
    let mut a1 = f64::NEG_INFINITY;
    let mut a2 = f64::NEG_INFINITY;
    for i in 0..n {
        let p = prices[i];
        let qi = q(i);
        if is_eligible(p, qi, reserve) {
            let adj = p * qi;
            if adj > a1 {
                a2 = a1;
                a1 = adj;
                best = i;
            } else if adj > a2 {
                a2 = adj;
            }
        }
    }
    if best == usize::MAX {
        for i in 0..n {
            let (p, qi) = (prices[i], q(i));
            if price_is_valid(p) && quality_is_valid(qi) {
                min_to_win[i] = reserve;
                loss_reason[i] = LOSS_BELOW_FLOOR;
            } else {
                min_to_win[i] = f64::NAN;
                loss_reason[i] = LOSS_INVALID;
            }
        }
        return SegmentOutcome { winner: -1, price: 0.0, winner_min_to_win: f64::NAN };
    }
    let pw = prices[best];
    let qw = q(best);
    let has_second = a2 > f64::NEG_INFINITY;
    let floor_to_beat = if has_second { reserve.max(a2 / qw) } else { reserve };
    let price = match rule {
        SinglePrice::First => pw,
        SinglePrice::Second => pw.min(floor_to_beat + increment),
    };
    // the adjusted amount a loser must tie
    let target_adj = match rule {
        SinglePrice::First => a1,
        SinglePrice::Second => price * qw,
    };
    for i in 0..n {
        let (p, qi) = (prices[i], q(i));
        if i == best {
            min_to_win[i] = floor_to_beat;
            loss_reason[i] = LOSS_WON;
        } else if !(price_is_valid(p) && quality_is_valid(qi)) {
            min_to_win[i] = f64::NAN;
            loss_reason[i] = LOSS_INVALID;
        } else {
            min_to_win[i] = reserve.max(target_adj / qi);
            loss_reason[i] = if p >= reserve && p > 0.0 { LOSS_OUTBID } else { LOSS_BELOW_FLOOR };
        }
    }
    SegmentOutcome { winner: best as i64, price, winner_min_to_win: floor_to_beat }
}

#[inline(always)]
fn is_eligible(p: f64, q: f64, reserve: f64) -> bool {
    p.is_finite() && p > 0.0 && q.is_finite() && q > 0.0 && p >= reserve
}

/// Clears every auction of the batch with the given single-slot rule, writing into
/// caller-provided outputs (so the binding crate can write straight into numpy arrays).
/// Invalid bids are treated as ineligible (reason 3); call [`Batch::first_invalid_bid`] first
/// for `on_invalid="raise"`.
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
) {
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n);
    assert_eq!(price.len(), n);
    assert_eq!(min_to_win.len(), batch.n_bids());
    assert_eq!(loss_reason.len(), batch.n_bids());
    for a in 0..n {
        let seg = batch.segment(a);
        let start = seg.start;
        let q = batch.quality.map(|q| &q[seg.clone()]);
        let out = clear_segment(
            rule,
            &batch.prices[seg.clone()],
            q,
            batch.reserve_of(a),
            increment,
            &mut min_to_win[seg.clone()],
            &mut loss_reason[seg],
        );
        winner[a] = if out.winner >= 0 { start as i64 + out.winner } else { -1 };
        price[a] = out.price;
    }
}

fn clear_single(batch: &Batch<'_>, rule: SinglePrice, increment: f64) -> ClearingResult {
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    let mut r = ClearingResult {
        winner: vec![-1; n],
        price: vec![0.0; n],
        min_to_win: vec![0.0; m],
        loss_reason: vec![0; m],
    };
    clear_single_into(
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

/// Clears one position auction with `ctrs.len()` slots. `scratch` is reused between calls to
/// avoid allocation. Writes local bid indices (-1 = empty) and per-unit prices (0.0 = empty).
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
    let q = |i: usize| quality.map_or(1.0, |q| q[i]);
    // top k+1 eligible bids by adjusted bid, descending, ties to the lower index
    scratch.clear();
    for (i, &p) in prices.iter().enumerate() {
        let qi = q(i);
        if !is_eligible(p, qi, reserve) {
            continue;
        }
        let adj = p * qi;
        if scratch.len() == k + 1 && adj <= scratch[k].0 {
            continue;
        }
        // insert after every element with adj >= this one (keeps lower index first on ties)
        let pos = scratch.partition_point(|&(a, _)| a >= adj);
        if scratch.len() == k + 1 {
            scratch.pop();
        }
        scratch.insert(pos, (adj, i));
    }
    let adj_at = |r: usize| if r < scratch.len() { scratch[r].0 } else { 0.0 };
    for s in 0..k {
        if s >= scratch.len() {
            winner[s] = -1;
            price[s] = 0.0;
            continue;
        }
        let (_, i) = scratch[s];
        let (pi, qi) = (prices[i], q(i));
        let per_unit = match rule {
            SlotPrice::Gsp => reserve.max(adj_at(s + 1) / qi) + increment,
            SlotPrice::Vcg => {
                let mut total = 0.0;
                for j in s..k {
                    let alpha_next = if j + 1 < k { ctrs[j + 1] } else { 0.0 };
                    total += (ctrs[j] - alpha_next) * adj_at(j + 1);
                }
                reserve.max(total / (ctrs[s] * qi))
            }
        };
        winner[s] = i as i64;
        price[s] = pi.min(per_unit);
    }
}

/// Clears every auction of the batch as a position auction, writing row-major
/// `[n_auctions, k]` outputs.
///
/// # Panics
/// If the outputs are not `n_auctions * ctrs.len()` long.
pub fn clear_slots_into(
    batch: &Batch<'_>,
    rule: SlotPrice,
    ctrs: &[f64],
    increment: f64,
    winner: &mut [i64],
    price: &mut [f64],
) {
    let k = ctrs.len();
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n * k);
    assert_eq!(price.len(), n * k);
    let mut scratch = Vec::with_capacity(k + 1);
    for a in 0..n {
        let seg = batch.segment(a);
        let start = seg.start as i64;
        let q = batch.quality.map(|q| &q[seg.clone()]);
        let (w, p) = (&mut winner[a * k..(a + 1) * k], &mut price[a * k..(a + 1) * k]);
        clear_segment_slots(
            rule,
            &batch.prices[seg],
            q,
            batch.reserve_of(a),
            increment,
            ctrs,
            &mut scratch,
            w,
            p,
        );
        for x in w.iter_mut() {
            if *x >= 0 {
                *x += start;
            }
        }
    }
}

fn clear_slots(batch: &Batch<'_>, rule: SlotPrice, ctrs: &[f64], increment: f64) -> SlotResult {
    let k = ctrs.len();
    let n = batch.n_auctions();
    let mut r = SlotResult { k, winner: vec![-1; n * k], price: vec![0.0; n * k] };
    clear_slots_into(batch, rule, ctrs, increment, &mut r.winner, &mut r.price);
    r
}

/// Generalized second price over `ctrs.len()` slots. Call [`check_slot_ctrs`] first.
pub fn clear_gsp(batch: &Batch<'_>, ctrs: &[f64], increment: f64) -> SlotResult {
    clear_slots(batch, SlotPrice::Gsp, ctrs, increment)
}

/// VCG over `ctrs.len()` slots. Call [`check_slot_ctrs`] first.
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
}
