//! Python bindings for `rtbcore_core::clearing` (to be written by the issue that owns it).

use pyo3::prelude::*;

pub(crate) fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
