//! Python bindings for `rtbcore_core::clearing`: numpy arrays in, numpy arrays out.
//!
//! Each function borrows its inputs as read-only slices and its outputs (numpy arrays the
//! caller allocated with `np.empty`: the kernels write every element) as mutable slices, checks
//! every shape, and runs the kernel with the GIL released.
//! `rtbcore/clearing.py` converts arguments (float32, non-contiguous, lists) once before calling
//! here; these functions still refuse anything that is not a 1-D contiguous array of the right
//! dtype, naming the argument.

use numpy::{
    Element, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadwriteArray1,
    PyReadwriteArray2, PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};
use rtbcore_core::clearing::{
    check_increment, check_slot_ctrs, clear_single_into, clear_slots_into, Batch, Reserve,
    SinglePrice, SlotPrice,
};
use rtbcore_core::CoreError;

use crate::{bid_pyerr, detach, to_pyerr, BidNames};

pub(crate) fn bad(field: &'static str, msg: impl Into<String>) -> PyErr {
    to_pyerr(CoreError::invalid(field, msg))
}

/// A read-only view of a 1-D contiguous numpy array of `T`, or `InvalidInputError` naming
/// `field` (wrong type, dtype, dimension or layout).
pub(crate) fn view<'py, T: Element>(
    field: &'static str,
    dtype: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    if let Ok(arr) = obj.cast::<PyArray1<T>>() {
        let ro = arr.try_readonly().map_err(|e| bad(field, format!("cannot be borrowed: {e}")))?;
        if ro.as_slice().is_err() {
            return Err(bad(field, "must be a contiguous array"));
        }
        return Ok(ro);
    }
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        if arr.ndim() != 1 {
            return Err(bad(
                field,
                format!(
                    "expected a 1-D array, got a {}-D array of shape {:?}",
                    arr.ndim(),
                    arr.shape()
                ),
            ));
        }
        return Err(bad(field, format!("expected dtype {dtype}, got {}", arr.dtype())));
    }
    Err(bad(
        field,
        format!("expected a 1-D numpy array of {dtype}, got {}", obj.get_type().name()?),
    ))
}

/// A number argument (a Python int or float, or a numpy number), or `InvalidInputError` naming
/// `field`: a bool, a string or `None` is refused, and so is an int beyond the float range.
pub(crate) fn number(field: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    let type_name = obj.get_type().name()?.to_string();
    if obj.is_instance_of::<PyBool>() || type_name == "bool" || type_name == "bool_" {
        return Err(bad(field, "expected a number, got a bool"));
    }
    if obj.is_instance_of::<PyString>() || obj.is_none() {
        return Err(bad(field, format!("expected a number, got {type_name}")));
    }
    obj.extract::<f64>().map_err(|e| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            bad(field, format!("{type_name} too large for a float64"))
        } else {
            bad(field, format!("expected a number, got {type_name}"))
        }
    })
}

/// A flag argument: `True` or `False` (or a numpy bool), or `InvalidInputError` naming `field`.
pub(crate) fn flag(field: &'static str, obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.extract::<bool>().map_err(|_| {
        let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        bad(field, format!("expected True or False, got {type_name}"))
    })
}

/// A rule name out of `choices`, or `InvalidInputError` naming the rule.
fn rule_name(obj: &Bound<'_, PyAny>, choices: &str) -> PyResult<String> {
    obj.extract::<String>().map_err(|_| {
        let type_name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        bad("rule", format!("expected {choices}, got {type_name}"))
    })
}

pub(crate) fn slice<'a, T: Element>(v: &'a PyReadonlyArray1<'_, T>) -> &'a [T] {
    v.as_slice().expect("checked contiguous by view()")
}

enum ReserveView<'py> {
    Scalar(f64),
    PerAuction(PyReadonlyArray1<'py, f64>),
}

fn reserve_view<'py>(obj: &Bound<'py, PyAny>) -> PyResult<ReserveView<'py>> {
    if obj.cast::<PyUntypedArray>().is_ok() {
        return Ok(ReserveView::PerAuction(view::<f64>("reserve", "float64", obj)?));
    }
    number("reserve", obj)
        .map(ReserveView::Scalar)
        .map_err(|_| bad("reserve", "expected a number or a 1-D float64 array"))
}

/// The input arrays of a batch, borrowed read-only for as long as the kernel runs.
pub(crate) struct BatchViews<'py> {
    offsets: PyReadonlyArray1<'py, i64>,
    prices: PyReadonlyArray1<'py, f64>,
    quality: Option<PyReadonlyArray1<'py, f64>>,
    reserve: ReserveView<'py>,
}

impl<'py> BatchViews<'py> {
    pub(crate) fn new(
        offsets: &Bound<'py, PyAny>,
        prices: &Bound<'py, PyAny>,
        quality: Option<&Bound<'py, PyAny>>,
        reserve: &Bound<'py, PyAny>,
    ) -> PyResult<Self> {
        Ok(BatchViews {
            offsets: view::<i64>("offsets", "int64", offsets)?,
            prices: view::<f64>("prices", "float64", prices)?,
            quality: quality.map(|q| view::<f64>("quality", "float64", q)).transpose()?,
            reserve: reserve_view(reserve)?,
        })
    }

    /// The checked core batch over these views (`InvalidInputError` on a bad structure).
    pub(crate) fn batch(&self) -> PyResult<Batch<'_>> {
        let r = match &self.reserve {
            ReserveView::Scalar(x) => Reserve::Scalar(*x),
            ReserveView::PerAuction(a) => Reserve::PerAuction(slice(a)),
        };
        Batch::new(slice(&self.offsets), slice(&self.prices), self.quality.as_ref().map(slice), r)
            .map_err(to_pyerr)
    }
}

/// What a kernel call returns: the number of invalid bids, or with `raise_invalid` the error
/// naming the first one.
pub(crate) fn invalid_count(
    batch: &Batch<'_>,
    raise_invalid: bool,
    n_bad: usize,
) -> PyResult<usize> {
    if raise_invalid && n_bad > 0 {
        if let Some(e) = batch.first_invalid_bid() {
            return Err(bid_pyerr(e, BidNames::Arrays));
        }
    }
    Ok(n_bad)
}

/// A writable 1-D contiguous output of `T` with `len` elements, or `InvalidInputError`.
pub(crate) fn out1<'py, T: Element>(
    field: &'static str,
    obj: &Bound<'py, PyAny>,
    len: usize,
) -> PyResult<PyReadwriteArray1<'py, T>> {
    let arr = obj
        .cast::<PyArray1<T>>()
        .map_err(|_| bad(field, "output must be a 1-D numpy array of the right dtype"))?;
    let rw = arr.try_readwrite().map_err(|e| bad(field, format!("output not writable: {e}")))?;
    if !rw.is_contiguous() || rw.len() != len {
        return Err(bad(field, format!("output must be contiguous with {len} elements")));
    }
    Ok(rw)
}

/// A writable 2-D C-contiguous `[n, k]` output of `T`, or `InvalidInputError`.
fn out2<'py, T: Element>(
    field: &'static str,
    obj: &Bound<'py, PyAny>,
    n: usize,
    k: usize,
) -> PyResult<PyReadwriteArray2<'py, T>> {
    let arr = obj
        .cast::<PyArray2<T>>()
        .map_err(|_| bad(field, "output must be a 2-D numpy array of the right dtype"))?;
    let rw = arr.try_readwrite().map_err(|e| bad(field, format!("output not writable: {e}")))?;
    if !rw.is_c_contiguous() || rw.shape() != [n, k] {
        return Err(bad(field, format!("output must be C-contiguous of shape ({n}, {k})")));
    }
    Ok(rw)
}

/// Checks the structure of a batch (offsets, lengths, reserve); raises `InvalidInputError`.
#[pyfunction]
#[pyo3(signature = (offsets, prices, quality, reserve))]
fn check_auction_batch(
    offsets: &Bound<'_, PyAny>,
    prices: &Bound<'_, PyAny>,
    quality: Option<&Bound<'_, PyAny>>,
    reserve: &Bound<'_, PyAny>,
) -> PyResult<()> {
    BatchViews::new(offsets, prices, quality, reserve)?.batch()?;
    Ok(())
}

/// Single-slot clearing into the caller's (uninitialised) outputs `winner` int64[n_auctions],
/// `price` float64[n_auctions], `min_to_win` float64[n_bids], `loss_reason` int32[n_bids];
/// returns the number of invalid bids. The caller allocates the outputs (with `np.empty`) so
/// that running out of memory is a plain `MemoryError` in Python.
#[pyfunction]
#[pyo3(signature = (offsets, prices, quality, reserve, rule, increment, raise_invalid, winner, price, min_to_win, loss_reason))]
#[allow(clippy::too_many_arguments)]
fn clear_single<'py>(
    py: Python<'py>,
    offsets: &Bound<'py, PyAny>,
    prices: &Bound<'py, PyAny>,
    quality: Option<&Bound<'py, PyAny>>,
    reserve: &Bound<'py, PyAny>,
    rule: &Bound<'py, PyAny>,
    increment: &Bound<'py, PyAny>,
    raise_invalid: &Bound<'py, PyAny>,
    winner: &Bound<'py, PyAny>,
    price: &Bound<'py, PyAny>,
    min_to_win: &Bound<'py, PyAny>,
    loss_reason: &Bound<'py, PyAny>,
) -> PyResult<usize> {
    const CHOICES: &str = "'first' or 'second'";
    let rule = match rule_name(rule, CHOICES)?.as_str() {
        "first" => SinglePrice::First,
        "second" => SinglePrice::Second,
        other => return Err(bad("rule", format!("expected {CHOICES}, got {other:?}"))),
    };
    let increment = number("increment", increment)?;
    let raise_invalid = flag("raise_invalid", raise_invalid)?;
    check_increment(increment).map_err(to_pyerr)?;
    let views = BatchViews::new(offsets, prices, quality, reserve)?;
    let batch = views.batch()?;
    let (n, m) = (batch.n_auctions(), batch.n_bids());
    let (mut w, mut p) = (out1::<i64>("winner", winner, n)?, out1::<f64>("price", price, n)?);
    let mut t = out1::<f64>("min_to_win", min_to_win, m)?;
    let mut l = out1::<i32>("loss_reason", loss_reason, m)?;
    let (w, p) = (w.as_slice_mut().expect("checked"), p.as_slice_mut().expect("checked"));
    let (t, l) = (t.as_slice_mut().expect("checked"), l.as_slice_mut().expect("checked"));
    let n_bad = detach(py, || clear_single_into(&batch, rule, increment, w, p, t, l));
    invalid_count(&batch, raise_invalid, n_bad.map_err(to_pyerr)?)
}

/// Position-auction clearing into the caller's outputs `winner` int64[n_auctions, k] and
/// `price` float64[n_auctions, k]; returns the number of invalid bids.
#[pyfunction]
#[pyo3(signature = (offsets, prices, quality, reserve, slot_ctrs, rule, increment, raise_invalid, winner, price))]
#[allow(clippy::too_many_arguments)]
fn clear_slots<'py>(
    py: Python<'py>,
    offsets: &Bound<'py, PyAny>,
    prices: &Bound<'py, PyAny>,
    quality: Option<&Bound<'py, PyAny>>,
    reserve: &Bound<'py, PyAny>,
    slot_ctrs: &Bound<'py, PyAny>,
    rule: &Bound<'py, PyAny>,
    increment: &Bound<'py, PyAny>,
    raise_invalid: &Bound<'py, PyAny>,
    winner: &Bound<'py, PyAny>,
    price: &Bound<'py, PyAny>,
) -> PyResult<usize> {
    const CHOICES: &str = "'gsp' or 'vcg'";
    let rule = match rule_name(rule, CHOICES)?.as_str() {
        "gsp" => SlotPrice::Gsp,
        "vcg" => SlotPrice::Vcg,
        other => return Err(bad("rule", format!("expected {CHOICES}, got {other:?}"))),
    };
    let increment = number("increment", increment)?;
    let raise_invalid = flag("raise_invalid", raise_invalid)?;
    check_increment(increment).map_err(to_pyerr)?;
    let ctrs_view = view::<f64>("slot_ctrs", "float64", slot_ctrs)?;
    let ctrs = slice(&ctrs_view);
    check_slot_ctrs(ctrs).map_err(to_pyerr)?;
    let views = BatchViews::new(offsets, prices, quality, reserve)?;
    let batch = views.batch()?;
    let (n, k) = (batch.n_auctions(), ctrs.len());
    let mut w = out2::<i64>("winner", winner, n, k)?;
    let mut p = out2::<f64>("price", price, n, k)?;
    let (w, p) = (w.as_slice_mut().expect("checked"), p.as_slice_mut().expect("checked"));
    let n_bad = detach(py, || clear_slots_into(&batch, rule, ctrs, increment, w, p));
    invalid_count(&batch, raise_invalid, n_bad.map_err(to_pyerr)?)
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_auction_batch, m)?)?;
    m.add_function(wrap_pyfunction!(clear_single, m)?)?;
    m.add_function(wrap_pyfunction!(clear_slots, m)?)?;
    Ok(())
}
