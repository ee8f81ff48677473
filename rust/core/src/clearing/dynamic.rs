//! The dynamic pricing auction: a posted price that follows a demand curve as units sell and
//! decays over the auction's life, selling at most `supply_limit` units.
//!
//! Definition (the contract, also in `docs/floors.md`). Auction `a` of a [`Batch`] sells up to
//! `U = supply_limit` identical units over its life `[0, duration]`; its base price is the
//! batch's reserve of `a`. Each bid asks for one unit at price `b_i` and arrives at time
//! `t_i` in `[0, duration]`. With `u` units sold, the posted price at time `t` is
//!
//! ```text
//! P(u, t) = base · D(u / U) · exp(−time_decay · t / duration)
//! ```
//!
//! (evaluated in that order, left to right), where the demand curve `D` is given by `m >= 1`
//! multipliers `d_0 .. d_(m-1)` (finite, > 0) at the fill fractions `j / (m − 1)`, linear in
//! between: with `pos = x · (m − 1)`, `j = min(floor(pos), m − 2)`, `D(x) = d_j + (d_(j+1) −
//! d_j) · (pos − j)`; `m = 1` is the flat curve `d_0`. Bids are taken in arrival order (equal
//! times: the lower bid index first). A bid buys a unit when it is valid, `u < U`, `b_i > 0`
//! and `b_i >= P(u, t_i)`; it pays `P(u, t_i)` and `u` grows by one. Otherwise its loss
//! reason is 3 (invalid), 102 (sold out: `u = U`) or 100 (below the posted price, a zero
//! price included). A rising curve makes the last units dearer (scarcity); the decay lowers
//! the price of what is still unsold as the auction nears its end (perishable inventory).

use super::{Batch, LOSS_BELOW_FLOOR, LOSS_INVALID, LOSS_OUTBID, LOSS_WON};
use crate::error::CoreError;
use crate::record::{bid_ok, Value};

/// A dynamic pricing auction's parameters (see the module docs); the base price of each
/// auction is its batch's reserve.
#[derive(Debug, Clone, Copy)]
pub struct DynamicAuction<'a> {
    supply_limit: u64,
    demand: &'a [f64],
    time_decay: f64,
    duration: f64,
    demand_max: f64,
}

impl<'a> DynamicAuction<'a> {
    /// Checks the parameters: `supply_limit >= 1`; `demand` non-empty, finite and > 0;
    /// `time_decay` finite and >= 0; `duration` finite and > 0.
    pub fn new(
        supply_limit: u64,
        demand: &'a [f64],
        time_decay: f64,
        duration: f64,
    ) -> Result<Self, CoreError> {
        if supply_limit == 0 {
            return Err(CoreError::invalid("supply_limit", "supply_limit = 0: must be >= 1"));
        }
        if demand.is_empty() {
            return Err(CoreError::invalid("demand", "must hold at least one multiplier"));
        }
        for (j, &d) in demand.iter().enumerate() {
            if !(d.is_finite() && d > 0.0) {
                return Err(CoreError::InvalidValue {
                    field: "demand",
                    index: j,
                    value: Value::Float(d),
                    msg: "must be finite and > 0",
                });
            }
        }
        if !(time_decay.is_finite() && time_decay >= 0.0) {
            return Err(CoreError::invalid(
                "time_decay",
                format!("time_decay = {time_decay}: must be finite and >= 0"),
            ));
        }
        if !(duration.is_finite() && duration > 0.0) {
            return Err(CoreError::invalid(
                "duration",
                format!("duration = {duration}: must be finite and > 0"),
            ));
        }
        let demand_max = demand.iter().copied().fold(0.0, f64::max);
        Ok(DynamicAuction { supply_limit, demand, time_decay, duration, demand_max })
    }

    pub fn supply_limit(&self) -> u64 {
        self.supply_limit
    }

    /// The demand curve's multiplier at fill fraction `x` in [0, 1].
    #[inline]
    pub fn demand_at(&self, x: f64) -> f64 {
        let d = self.demand;
        let m = d.len();
        if m == 1 {
            return d[0];
        }
        let pos = x * (m - 1) as f64;
        let j = (pos.floor() as usize).min(m - 2);
        d[j] + (d[j + 1] - d[j]) * (pos - j as f64)
    }

    /// The posted price `P(u, t)` with base price `base`.
    #[inline]
    pub fn posted_price(&self, base: f64, sold: u64, t: f64) -> f64 {
        let x = sold as f64 / self.supply_limit as f64;
        base * self.demand_at(x) * (-self.time_decay * t / self.duration).exp()
    }
}

/// Checks the bids' arrival times: one per bid, each finite and in `[0, duration]`.
pub fn check_times(times: &[f64], n_bids: usize, duration: f64) -> Result<(), CoreError> {
    if times.len() != n_bids {
        return Err(CoreError::invalid(
            "times",
            format!("has {} entries but prices has {n_bids}", times.len()),
        ));
    }
    match times.iter().position(|t| !(0.0..=duration).contains(t)) {
        None => Ok(()),
        Some(i) => Err(CoreError::InvalidValue {
            field: "times",
            index: i,
            value: Value::Float(times[i]),
            msg: "must be finite and in [0, duration]",
        }),
    }
}

/// Result of [`clear_dynamic`]: per auction the units sold and the revenue, per bid the price
/// paid (0.0 when it bought nothing) and its loss reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicResult {
    pub units: Vec<i64>,
    pub revenue: Vec<f64>,
    pub paid: Vec<f64>,
    pub loss_reason: Vec<i32>,
    pub n_invalid: usize,
}

/// Clears every auction of `batch` as a dynamic pricing auction, writing into the caller's
/// outputs (every element is written). Invalid bids are ineligible (reason 3); returns how many
/// there were. `quality` is checked by the bid rule but does not enter the price.
///
/// # Errors
/// [`CoreError::InvalidValue`] / [`CoreError::InvalidInput`] for bad `times` (see
/// [`check_times`]), a base price whose product with the largest demand multiplier overflows
/// (`reserve[a]`), or offsets changed during the call (as in
/// [`super::clear_single_into`]); nothing is written before the first two are checked.
///
/// # Panics
/// If an output's length is not `n_auctions` (units, revenue) or `n_bids` (the others).
pub fn clear_dynamic_into(
    batch: &Batch<'_>,
    auction: &DynamicAuction<'_>,
    times: &[f64],
    units: &mut [i64],
    revenue: &mut [f64],
    paid: &mut [f64],
    loss_reason: &mut [i32],
) -> Result<usize, CoreError> {
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    assert_eq!(units.len(), n);
    assert_eq!(revenue.len(), n);
    assert_eq!(paid.len(), m);
    assert_eq!(loss_reason.len(), m);
    check_times(times, m, auction.duration)?;
    for a in 0..n {
        let base = batch.reserve_of(a);
        if !(base * auction.demand_max).is_finite() {
            return Err(CoreError::invalid(
                "reserve",
                format!(
                    "base price [{a}] = {base:e} times the largest demand multiplier {:e} \
                     overflows: posted prices must be finite",
                    auction.demand_max
                ),
            ));
        }
    }
    let prices = batch.prices();
    let quality = batch.quality();
    let mut order: Vec<usize> = Vec::new();
    let mut n_bad = 0usize;
    let mut start = 0usize;
    for a in 0..n {
        let end = batch.segment_end(a, start)?;
        let base = batch.reserve_of(a);
        let seg = start..end;
        let t = &times[seg.clone()];
        let in_order = t.windows(2).all(|w| w[0] <= w[1]);
        order.clear();
        order.extend(seg.clone());
        if !in_order {
            // stable: equal times keep the lower index first
            order.sort_by(|&i, &j| times[i].total_cmp(&times[j]));
        }
        let (mut sold, mut rev) = (0u64, 0.0f64);
        for &i in &order {
            let p = prices[i];
            let q = quality.map_or(1.0, |q| q[i]);
            if !bid_ok(p, q) {
                n_bad += 1;
                paid[i] = 0.0;
                loss_reason[i] = LOSS_INVALID;
                continue;
            }
            if sold >= auction.supply_limit {
                paid[i] = 0.0;
                loss_reason[i] = LOSS_OUTBID;
                continue;
            }
            let posted = auction.posted_price(base, sold, times[i]);
            if p > 0.0 && p >= posted {
                paid[i] = posted;
                loss_reason[i] = LOSS_WON;
                sold += 1;
                rev += posted;
            } else {
                paid[i] = 0.0;
                loss_reason[i] = LOSS_BELOW_FLOOR;
            }
        }
        units[a] = sold as i64;
        revenue[a] = rev;
        start = end;
    }
    batch.check_end(start)?;
    Ok(n_bad)
}

/// [`clear_dynamic_into`] with fresh outputs.
pub fn clear_dynamic(
    batch: &Batch<'_>,
    auction: &DynamicAuction<'_>,
    times: &[f64],
) -> Result<DynamicResult, CoreError> {
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    let mut r = DynamicResult {
        units: vec![0; n],
        revenue: vec![0.0; n],
        paid: vec![0.0; m],
        loss_reason: vec![0; m],
        n_invalid: 0,
    };
    r.n_invalid = clear_dynamic_into(
        batch,
        auction,
        times,
        &mut r.units,
        &mut r.revenue,
        &mut r.paid,
        &mut r.loss_reason,
    )?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::super::Reserve;
    use super::*;
    use proptest::prelude::*;

    /// The definition, transcribed: repeatedly take the earliest unprocessed bid (lowest index
    /// among equal times) and apply the rule.
    fn oracle(
        offsets: &[i64],
        prices: &[f64],
        times: &[f64],
        base: &[f64],
        auction: &DynamicAuction<'_>,
    ) -> (Vec<i64>, Vec<f64>, Vec<f64>, Vec<i32>) {
        let n = offsets.len() - 1;
        let mut units = vec![0; n];
        let mut revenue = vec![0.0; n];
        let mut paid = vec![0.0; prices.len()];
        let mut reason = vec![0; prices.len()];
        for a in 0..n {
            let (s, e) = (offsets[a] as usize, offsets[a + 1] as usize);
            let mut done = vec![false; e - s];
            let mut sold = 0u64;
            for _ in s..e {
                let mut best: Option<usize> = None;
                for i in s..e {
                    if !done[i - s] && best.is_none_or(|b| times[i] < times[b]) {
                        best = Some(i);
                    }
                }
                let i = best.unwrap();
                done[i - s] = true;
                let p = prices[i];
                if !(p.is_finite() && p >= 0.0) {
                    reason[i] = 3;
                } else if sold == auction.supply_limit {
                    reason[i] = 102;
                } else {
                    let x = sold as f64 / auction.supply_limit as f64;
                    let price = base[a]
                        * auction.demand_at(x)
                        * (-auction.time_decay * times[i] / auction.duration).exp();
                    if p > 0.0 && p >= price {
                        paid[i] = price;
                        revenue[a] += price;
                        sold += 1;
                    } else {
                        reason[i] = 100;
                    }
                }
            }
            units[a] = sold as i64;
        }
        (units, revenue, paid, reason)
    }

    #[test]
    fn sells_in_time_order_up_to_the_limit() {
        let offsets = [0i64, 4];
        let prices = [1.0, 5.0, 2.0, 3.0];
        let times = [3.0, 0.0, 1.0, 2.0];
        let demand = [1.0, 2.0];
        let auction = DynamicAuction::new(2, &demand, 0.0, 10.0).unwrap();
        let b = Batch::new(&offsets, &prices, None, Reserve::Scalar(1.0)).unwrap();
        let r = clear_dynamic(&b, &auction, &times).unwrap();
        // t=0: 5.0 buys at 1.0 (D(0) = 1); t=1: 2.0 >= 1.5 (D(1/2)) buys; then sold out
        assert_eq!(r.units, vec![2]);
        assert_eq!(r.paid, vec![0.0, 1.0, 1.5, 0.0]);
        assert_eq!(r.loss_reason, vec![102, 0, 0, 102]);
        assert_eq!(r.revenue, vec![2.5]);
    }

    #[test]
    fn decay_lowers_the_price() {
        let auction = DynamicAuction::new(1, &[1.0], 2.0f64.ln(), 1.0).unwrap();
        assert!((auction.posted_price(4.0, 0, 1.0) - 2.0).abs() < 1e-12);
        assert_eq!(auction.posted_price(4.0, 0, 0.0), 4.0);
    }

    #[test]
    fn refuses_bad_parameters() {
        assert!(DynamicAuction::new(0, &[1.0], 0.0, 1.0).is_err());
        assert!(DynamicAuction::new(1, &[], 0.0, 1.0).is_err());
        let e = DynamicAuction::new(1, &[1.0, f64::NAN], 0.0, 1.0).unwrap_err();
        assert_eq!(e.to_string(), "demand[1] = NaN: must be finite and > 0");
        assert!(DynamicAuction::new(1, &[1.0], -1.0, 1.0).is_err());
        assert!(DynamicAuction::new(1, &[1.0], 0.0, 0.0).is_err());
        let e = check_times(&[0.0, 2.0], 2, 1.0).unwrap_err();
        assert_eq!(e.to_string(), "times[1] = 2: must be finite and in [0, duration]");
        let offsets = [0i64, 1];
        let b = Batch::new(&offsets, &[1.0], None, Reserve::Scalar(1e308)).unwrap();
        let a = DynamicAuction::new(1, &[10.0], 0.0, 1.0).unwrap();
        assert!(clear_dynamic(&b, &a, &[0.0]).is_err());
    }

    /// Auction sizes, (price, time) of up to 40 bids, base prices, supply limit, demand curve,
    /// time decay.
    type Case = (Vec<usize>, Vec<(f64, f64)>, Vec<f64>, u64, Vec<f64>, f64);

    fn arb_case() -> impl Strategy<Value = Case> {
        (
            proptest::collection::vec(0usize..7, 1..6),
            proptest::collection::vec(
                (
                    prop_oneof![Just(0.0), Just(1.0), Just(f64::NAN), Just(-1.0), 0.0..4.0f64],
                    prop_oneof![Just(0.0), Just(0.5), Just(1.0), 0.0..1.0f64],
                ),
                40,
            ),
            proptest::collection::vec(prop_oneof![Just(0.0), Just(1.0), 0.0..2.0f64], 6),
            1u64..5,
            proptest::collection::vec(0.1..3.0f64, 1..4),
            prop_oneof![Just(0.0), 0.0..3.0f64],
        )
    }

    proptest! {
        #[test]
        fn matches_the_oracle((sizes, bids, base, limit, demand, decay) in arb_case()) {
            let mut offsets = vec![0i64];
            for s in &sizes {
                offsets.push(offsets.last().unwrap() + *s as i64);
            }
            let m = *offsets.last().unwrap() as usize;
            let prices: Vec<f64> = bids[..m].iter().map(|b| b.0).collect();
            let times: Vec<f64> = bids[..m].iter().map(|b| b.1).collect();
            let base = &base[..sizes.len()];
            let auction = DynamicAuction::new(limit, &demand, decay, 1.0).unwrap();
            let b = Batch::new(&offsets, &prices, None, Reserve::PerAuction(base)).unwrap();
            let r = clear_dynamic(&b, &auction, &times).unwrap();
            let (units, revenue, paid, reason) = oracle(&offsets, &prices, &times, base, &auction);
            prop_assert_eq!(r.units, units);
            prop_assert_eq!(r.paid, paid);
            prop_assert_eq!(r.loss_reason, reason);
            for (x, y) in r.revenue.iter().zip(&revenue) {
                prop_assert!((x - y).abs() <= 1e-12 * y.abs().max(1.0));
            }
            prop_assert_eq!(r.n_invalid, prices.iter().filter(|p| !(p.is_finite() && **p >= 0.0)).count());
        }
    }
}
