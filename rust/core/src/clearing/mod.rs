//! Vectorized auction clearing over segment-layout batches.
//!
//! A [`Batch`] holds many auctions over flat arrays: auction `a` owns bids
//! `offsets[a]..offsets[a+1]`. One call clears every auction with no per-bid allocation.
//!
//! Semantics (the public contract, mirrored in the Python docs):
//! - A bid is *valid* under the bid rule of [`crate::record`] ([`crate::record::bid_ok`]):
//!   finite price >= 0, finite quality > 0, and a finite adjusted bid `price × quality` (a
//!   product that overflows makes the bid invalid). It is *eligible* when it is valid, its price
//!   is > 0 and >= the auction's reserve.
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
//!   NaN for an invalid bid; +inf for a valid loser whose quality is so small that no finite
//!   price ties (the price it would need is above `f64::MAX`). No other output is infinite or
//!   NaN.
//! - `loss_reason` (OpenRTB loss codes): 0 won, 3 invalid bid, 100 below floor (including a zero
//!   price), 102 lost to a higher bid.
//!
//! The dynamic pricing auction ([`DynamicAuction`], [`clear_dynamic`]) sells several units at a
//! posted price that follows a demand curve and decays over time; its definition is in its
//! module.

mod batch;
mod dispatch;
mod dynamic;
mod pricing;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use batch::{check_increment, check_slot_ctrs, Batch, Reserve};
pub use dynamic::{check_times, clear_dynamic, clear_dynamic_into, DynamicAuction, DynamicResult};

use crate::error::CoreError;
use dispatch::{Single, Slots};
use pricing::price_slots;
use scalar::{segment_single, top_k_any};

/// OpenRTB loss reason: the bid won.
pub const LOSS_WON: i32 = 0;
/// OpenRTB loss reason: invalid bid response (NaN / inf / negative price, bad quality).
pub const LOSS_INVALID: i32 = 3;
/// OpenRTB loss reason: bid was below the auction floor.
pub const LOSS_BELOW_FLOOR: i32 = 100;
/// OpenRTB loss reason: lost to a higher bid.
pub const LOSS_OUTBID: i32 = 102;

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

/// Clears every auction of the batch with the given single-slot rule, writing into
/// caller-provided outputs (so the binding crate can write straight into numpy arrays; every
/// element is written, so the outputs may start uninitialised-then-zeroed or hold garbage).
/// Invalid bids are treated as ineligible (reason 3); the return value is how many there were,
/// so a caller with `on_invalid="raise"` calls [`Batch::first_invalid_bid`] only when it is > 0.
///
/// # Errors
/// [`CoreError::InvalidInput`] naming `offsets` when the offsets no longer hold the structure
/// [`Batch::new`] checked: possible only when the caller shares the arrays with code that
/// changes them during the call (as a Python caller can). The outputs are then partly written.
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
) -> Result<usize, CoreError> {
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n);
    assert_eq!(price.len(), n);
    assert_eq!(min_to_win.len(), batch.n_bids());
    assert_eq!(loss_reason.len(), batch.n_bids());
    dispatch::run(Single { batch, rule, increment, winner, price, min_to_win, loss_reason })
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
    let (w, p) = (&mut r.winner, &mut r.price);
    let (m, l) = (&mut r.min_to_win, &mut r.loss_reason);
    r.n_invalid = clear_single_into(batch, rule, increment, w, p, m, l).expect(UNSHARED);
    r
}

/// Why the allocating entry points cannot meet changed offsets: the caller holds shared
/// borrows of the arrays for the whole call, so nothing can change them.
const UNSHARED: &str = "a batch's arrays are borrowed for the call and cannot change";

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

/// Clears every auction of the batch as a position auction, writing row-major
/// `[n_auctions, k]` outputs (every element is written). Invalid bids are ineligible; returns
/// how many there were. Call [`check_slot_ctrs`] first.
///
/// # Errors
/// As [`clear_single_into`]: `offsets` changed during the call.
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
) -> Result<usize, CoreError> {
    let k = ctrs.len();
    assert!(k > 0, "clear_slots_into needs at least one slot");
    let n = batch.n_auctions();
    assert_eq!(winner.len(), n * k);
    assert_eq!(price.len(), n * k);
    dispatch::run(Slots { batch, rule, ctrs, increment, winner, price })
}

fn clear_slots(batch: &Batch<'_>, rule: SlotPrice, ctrs: &[f64], increment: f64) -> SlotResult {
    let k = ctrs.len();
    let n = batch.n_auctions();
    let mut r = SlotResult { k, winner: vec![-1; n * k], price: vec![0.0; n * k], n_invalid: 0 };
    let (w, p) = (&mut r.winner, &mut r.price);
    r.n_invalid = clear_slots_into(batch, rule, ctrs, increment, w, p).expect(UNSHARED);
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
