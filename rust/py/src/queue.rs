//! Python bindings for `rtbcore_core::queue`: `_rtbcore.BidQueue`, subclassed by
//! `rtbcore.BidQueue` (rtbcore/streaming.py), which adds the numpy-facing `push_many` /
//! `pop_many`. `push` stays a direct native method so that a per-record call costs little more
//! than an empty Python method call.

use numpy::{PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use rtbcore_core::queue::BidQueue;
use rtbcore_core::record::BidRecord;
use rtbcore_core::CoreError;

use crate::{detach, to_pyerr};

/// Views a byte buffer of whole records as `&[BidRecord]`, or copies it when misaligned.
pub(crate) fn as_records(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [BidRecord]>, CoreError> {
    if bytes.len() % BidRecord::SIZE != 0 {
        return Err(CoreError::invalid(
            "records",
            format!("{} bytes is not a whole number of 48-byte records", bytes.len()),
        ));
    }
    let n = bytes.len() / BidRecord::SIZE;
    if (bytes.as_ptr() as usize) % std::mem::align_of::<BidRecord>() == 0 {
        // SAFETY: aligned, n * 48 bytes, and every bit pattern is a valid BidRecord (plain
        // integers and floats; the pad is a byte array).
        Ok(std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(bytes.as_ptr() as *const BidRecord, n)
        }))
    } else {
        let mut v = vec![BidRecord::default(); n];
        // SAFETY: v has room for n records = bytes.len() bytes; the regions do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr() as *mut u8, bytes.len())
        };
        Ok(std::borrow::Cow::Owned(v))
    }
}

/// The native bounded lock-free MPMC queue of 48-byte bid records.
#[pyclass(module = "_rtbcore", name = "BidQueue", subclass, frozen)]
pub struct PyBidQueue {
    q: BidQueue,
}

#[pymethods]
impl PyBidQueue {
    #[new]
    #[pyo3(signature = (capacity=65536))]
    fn new(capacity: usize) -> PyResult<Self> {
        Ok(PyBidQueue { q: BidQueue::new(capacity).map_err(to_pyerr)? })
    }

    /// Enqueues one bid without blocking; False when the queue is full.
    #[pyo3(signature = (auction_id, bidder_id, price, quality=1.0, kind=0, timestamp_ns=0))]
    fn push(
        &self,
        auction_id: u64,
        bidder_id: u64,
        price: f64,
        quality: f64,
        kind: u8,
        timestamp_ns: u64,
    ) -> PyResult<bool> {
        let mut r = BidRecord::new(auction_id, bidder_id, price, quality, kind);
        r.timestamp_ns = timestamp_ns;
        self.q.push(r).map_err(to_pyerr)
    }

    /// Enqueues the longest prefix of a block of records (raw bytes) that fits.
    fn _push_bytes(&self, py: Python<'_>, buf: PyReadonlyArray1<'_, u8>) -> PyResult<usize> {
        let bytes = buf
            .as_slice()
            .map_err(|_| to_pyerr(CoreError::invalid("records", "must be C-contiguous")))?;
        let recs = as_records(bytes).map_err(to_pyerr)?;
        detach(py, || self.q.push_many(&recs)).map_err(to_pyerr)
    }

    /// Dequeues up to len(out) / 48 records into `out` (raw bytes); returns how many.
    fn _pop_into(&self, py: Python<'_>, mut out: PyReadwriteArray1<'_, u8>) -> PyResult<usize> {
        let bytes = out
            .as_slice_mut()
            .map_err(|_| to_pyerr(CoreError::invalid("out", "must be C-contiguous")))?;
        if bytes.is_empty() {
            return Ok(0);
        }
        if bytes.len() % BidRecord::SIZE != 0 || (bytes.as_ptr() as usize) % 8 != 0 {
            return Err(to_pyerr(CoreError::invalid(
                "out",
                "must be an aligned buffer of whole 48-byte records",
            )));
        }
        let n = bytes.len() / BidRecord::SIZE;
        // SAFETY: aligned (checked), n * 48 bytes, and every bit pattern is a valid BidRecord.
        let recs =
            unsafe { std::slice::from_raw_parts_mut(bytes.as_mut_ptr() as *mut BidRecord, n) };
        Ok(detach(py, || self.q.pop_into(recs)))
    }

    fn __len__(&self) -> usize {
        self.q.len()
    }

    /// The most records the queue holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.q.capacity()
    }

    /// Whether close() was called.
    #[getter]
    fn closed(&self) -> bool {
        self.q.is_closed()
    }

    /// Records refused because the queue was full.
    #[getter]
    fn refused(&self) -> u64 {
        self.q.refused_full()
    }

    /// Refuses later pushes (QueueClosed); pops drain what is left.
    fn close(&self) {
        self.q.close()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBidQueue>()?;
    Ok(())
}
