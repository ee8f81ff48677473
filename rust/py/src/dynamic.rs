//! Python binding of `rtbcore_core::clearing::clear_dynamic`: numpy arrays in, the caller's
//! numpy outputs written with the GIL released. `rtbcore/dynamic.py` converts the arguments.

use pyo3::prelude::*;
use rtbcore_core::clearing::{clear_dynamic_into, DynamicAuction};

use crate::clearing::{bad, flag, invalid_count, number, out1, slice, view, BatchViews};
use crate::{detach, to_pyerr};

/// Dynamic pricing auctions into the caller's (uninitialised) outputs `units` int64[n_auctions],
/// `revenue` float64[n_auctions], `paid` float64[n_bids], `loss_reason` int32[n_bids]; the
/// batch's reserve is each auction's base price. Returns the number of invalid bids.
#[pyfunction]
#[pyo3(signature = (offsets, prices, base_price, times, supply_limit, demand, time_decay, duration, raise_invalid, units, revenue, paid, loss_reason))]
#[allow(clippy::too_many_arguments)]
fn clear_dynamic<'py>(
    py: Python<'py>,
    offsets: &Bound<'py, PyAny>,
    prices: &Bound<'py, PyAny>,
    base_price: &Bound<'py, PyAny>,
    times: &Bound<'py, PyAny>,
    supply_limit: &Bound<'py, PyAny>,
    demand: &Bound<'py, PyAny>,
    time_decay: &Bound<'py, PyAny>,
    duration: &Bound<'py, PyAny>,
    raise_invalid: &Bound<'py, PyAny>,
    units: &Bound<'py, PyAny>,
    revenue: &Bound<'py, PyAny>,
    paid: &Bound<'py, PyAny>,
    loss_reason: &Bound<'py, PyAny>,
) -> PyResult<usize> {
    let limit: u64 = supply_limit
        .extract()
        .map_err(|_| bad("supply_limit", "expected an int in [1, 2**64 - 1]"))?;
    let demand_view = view::<f64>("demand", "float64", demand)?;
    let time_decay = number("time_decay", time_decay)?;
    let duration = number("duration", duration)?;
    let raise_invalid = flag("raise_invalid", raise_invalid)?;
    let auction =
        DynamicAuction::new(limit, slice(&demand_view), time_decay, duration).map_err(to_pyerr)?;
    let times_view = view::<f64>("times", "float64", times)?;
    let views = BatchViews::new(offsets, prices, None, base_price)?;
    let batch = views.batch()?;
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    let mut u = out1::<i64>("units", units, n)?;
    let mut r = out1::<f64>("revenue", revenue, n)?;
    let mut p = out1::<f64>("paid", paid, m)?;
    let mut l = out1::<i32>("loss_reason", loss_reason, m)?;
    let (u, r) = (u.as_slice_mut().expect("checked"), r.as_slice_mut().expect("checked"));
    let (p, l) = (p.as_slice_mut().expect("checked"), l.as_slice_mut().expect("checked"));
    let t = slice(&times_view);
    let n_bad = detach(py, || clear_dynamic_into(&batch, &auction, t, u, r, p, l));
    invalid_count(&batch, raise_invalid, n_bad.map_err(to_pyerr)?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(clear_dynamic, m)?)?;
    Ok(())
}
