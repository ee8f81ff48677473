//! `_rtbcore`: the PyO3 bindings of `rtbcore-core`. Users import `rtbcore`, never this module.
//!
//! Every binding converts its arguments to Rust views first, then runs the core with the GIL
//! released (see [`detach`]), and maps `CoreError` to the exception classes of
//! `rtbcore/errors.py` (see `errors.rs`).
#![deny(unsafe_op_in_unsafe_fn)]

use pyo3::prelude::*;

/// The allocator of every Rust allocation in this module (Python's objects keep Python's).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod clearing;
mod client;
mod dynamic;
mod engine;
mod errors;
mod floors;
mod gateway;
mod queue;
mod ring;

pub(crate) use errors::{bid_pyerr, to_pyerr, BidNames};

/// Runs `f` with the GIL released: every bulk call goes through here, so that two Python
/// threads calling into rtbcore run in parallel.
#[inline]
pub(crate) fn detach<T: Send, F: FnOnce() -> T + Send>(py: Python<'_>, f: F) -> T {
    py.detach(f)
}

#[pymodule]
fn _rtbcore(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // Bind NumPy's C API now: bound lazily, the first array a call returns would run NumPy's
    // version check (Python code) inside that call, where a pending KeyboardInterrupt fails
    // the binding and panics.
    numpy::PyArray1::<u8>::zeros(m.py(), 0, false);
    clearing::register(m)?;
    client::register(m)?;
    dynamic::register(m)?;
    queue::register(m)?;
    ring::register(m)?;
    engine::register(m)?;
    gateway::register(m)?;
    floors::register(m)?;
    Ok(())
}
