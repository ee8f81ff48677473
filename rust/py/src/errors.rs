//! Maps the core's one error enum to the Python exception classes, which are defined once in
//! `rtbcore/errors.py` and imported here.

use pyo3::prelude::*;
use rtbcore_core::CoreError;

pyo3::import_exception!(rtbcore.errors, InvalidInputError);
pyo3::import_exception!(rtbcore.errors, InvalidBidError);
pyo3::import_exception!(rtbcore.errors, QueueFull);
pyo3::import_exception!(rtbcore.errors, QueueClosed);
pyo3::import_exception!(rtbcore.errors, RingOverrun);
pyo3::import_exception!(rtbcore.errors, RingCorrupt);
pyo3::import_exception!(rtbcore.errors, RtbcoreOSError);

/// Converts a core error to the matching `rtbcore.errors` exception.
pub(crate) fn to_pyerr(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidInput { .. } => InvalidInputError::new_err(msg),
        CoreError::InvalidBid { .. } => InvalidBidError::new_err(msg),
        CoreError::Full => QueueFull::new_err(msg),
        CoreError::Closed => QueueClosed::new_err(msg),
        CoreError::Overrun { lost, next_seq } => RingOverrun::new_err((msg, lost, next_seq)),
        CoreError::CorruptFile { .. } => RingCorrupt::new_err(msg),
        CoreError::Io { .. } => RtbcoreOSError::new_err(msg),
    }
}
