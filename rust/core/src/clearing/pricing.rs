//! The pricing rules, shared by every kernel: single-slot (first / second price) and position
//! auctions (GSP / VCG).

use super::scalar::{fmax, fmin};
use super::{SegmentOutcome, SinglePrice, SlotPrice, LOSS_BELOW_FLOOR, LOSS_INVALID, LOSS_OUTBID};

/// OpenRTB loss reason of a losing bid without branches: 3 invalid, 100 below floor, 102 outbid
/// (eligible implies valid).
#[inline(always)]
pub(crate) fn loser_reason(valid: bool, elig: bool) -> i32 {
    LOSS_INVALID
        + (LOSS_BELOW_FLOOR - LOSS_INVALID) * i32::from(valid)
        + (LOSS_OUTBID - LOSS_BELOW_FLOOR) * i32::from(elig)
}

/// The outcome of an auction with no eligible bid.
pub(crate) const NO_SALE: SegmentOutcome =
    SegmentOutcome { winner: -1, price: 0.0, winner_min_to_win: f64::NAN };

/// The pricing rule, shared by every kernel: given the winner `best` (price `pw`, quality `qw`),
/// the top adjusted bid `a1` and the runner-up `a2` (-inf when alone), returns the outcome and
/// the adjusted amount a loser must tie (`target_adj`, for the losers' `min_to_win`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn price_winner(
    rule: SinglePrice,
    best: usize,
    a1: f64,
    a2: f64,
    pw: f64,
    qw: f64,
    reserve: f64,
    increment: f64,
) -> (SegmentOutcome, f64) {
    // a2 = -inf when alone: max(reserve, -inf) = reserve. a2 <= a1 = pw * qw (finite, by the
    // bid rule), so a2 / qw stays finite
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

/// Prices the filled slots of one position auction from its ranked top `k + 1` (`top`, local
/// indices), writing local winners (-1 = empty) and per-unit prices (0.0 = empty).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn price_slots<const Q: bool>(
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
                let per_unit = total / (ctrs[s] * qi);
                if per_unit <= f64::MAX {
                    per_unit
                } else {
                    // the total or the divisor left the float range (huge or tiny slot
                    // factors): the same sum with the factors scaled by 1 / ctrs[s], whose
                    // weights add up to 1, so that it stays below the top adjusted bid
                    let mut per_adj = 0.0;
                    for j in s..k {
                        let alpha_next = if j + 1 < k { ctrs[j + 1] } else { 0.0 };
                        per_adj += (ctrs[j] - alpha_next) / ctrs[s] * fmax(adj_at(j + 1), floor);
                    }
                    per_adj / qi
                }
            }
        };
        *w = i as i64;
        *pr = fmin(pi, per_unit);
    }
}
