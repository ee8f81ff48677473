//! Python bindings for `rtbcore_core::ring`: `_rtbcore.BidRing` and `_rtbcore.RingReader`,
//! wrapped by `rtbcore.BidRing` (rtbcore/streaming.py). Reads return `(start_seq, n)`; the Python
//! layer turns that into a zero-copy numpy view of its own read-only mapping of the records.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use numpy::{PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use rtbcore_core::record::BidRecord;
use rtbcore_core::ring::{BidRing, RingMode, RingOptions, RingReader, Start};
use rtbcore_core::CoreError;

use crate::queue::as_records;
use crate::{detach, to_pyerr};

fn duration(field: &'static str, secs: f64) -> PyResult<Duration> {
    if !(0.0..1e9).contains(&secs) {
        return Err(to_pyerr(CoreError::invalid(
            field,
            format!("must be a finite number of seconds >= 0, got {secs}"),
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn mode_name(m: RingMode) -> &'static str {
    match m {
        RingMode::Backpressure => "backpressure",
        RingMode::Broadcast => "broadcast",
    }
}

/// The native memory-mapped ring of fixed-size records.
#[pyclass(module = "_rtbcore", name = "BidRing", frozen)]
pub struct PyBidRing {
    ring: BidRing,
}

#[pymethods]
impl PyBidRing {
    /// Creates a new ring file (fails if it exists).
    #[staticmethod]
    fn _create(
        py: Python<'_>,
        path: PathBuf,
        capacity: u64,
        record_size: usize,
        mode: &str,
        max_readers: u32,
    ) -> PyResult<Self> {
        let mode = match mode {
            "backpressure" => RingMode::Backpressure,
            "broadcast" => RingMode::Broadcast,
            other => {
                return Err(to_pyerr(CoreError::invalid(
                    "mode",
                    format!("must be 'backpressure' or 'broadcast', got {other:?}"),
                )))
            }
        };
        let opts = RingOptions { capacity, record_size, mode, max_readers };
        let ring = detach(py, || BidRing::create(&path, opts)).map_err(to_pyerr)?;
        Ok(PyBidRing { ring })
    }

    /// Opens an existing ring file; `record_size`, when given, must match.
    #[staticmethod]
    #[pyo3(signature = (path, record_size=None))]
    fn _open(py: Python<'_>, path: PathBuf, record_size: Option<usize>) -> PyResult<Self> {
        let ring = detach(py, || BidRing::open(&path, record_size)).map_err(to_pyerr)?;
        Ok(PyBidRing { ring })
    }

    /// Appends one bid; False when there is no room (backpressure).
    #[pyo3(signature = (auction_id, bidder_id, price, quality=1.0, kind=0, timestamp_ns=0))]
    fn append(
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
        self.ring.append(&r).map_err(to_pyerr)
    }

    /// Appends whole records given as raw bytes; bid records are validated when the ring holds
    /// 48-byte BidRecords and `validate` is true. Returns how many fit.
    fn _append_bytes(
        &self,
        py: Python<'_>,
        buf: PyReadonlyArray1<'_, u8>,
        validate: bool,
    ) -> PyResult<usize> {
        let bytes = buf
            .as_slice()
            .map_err(|_| to_pyerr(CoreError::invalid("records", "must be C-contiguous")))?;
        if validate {
            let recs = as_records(bytes).map_err(to_pyerr)?;
            detach(py, || self.ring.append_many(&recs)).map_err(to_pyerr)
        } else {
            detach(py, || self.ring.append_bytes(bytes)).map_err(to_pyerr)
        }
    }

    /// Attaches to (or registers) the named persistent cursor.
    #[pyo3(signature = (name, start="oldest", abandon_after=2.0))]
    fn reader(
        &self,
        py: Python<'_>,
        name: &str,
        start: &str,
        abandon_after: f64,
    ) -> PyResult<PyRingReader> {
        let start = match start {
            "oldest" => Start::Oldest,
            "latest" => Start::Latest,
            other => {
                return Err(to_pyerr(CoreError::invalid(
                    "start",
                    format!("must be 'oldest' or 'latest', got {other:?}"),
                )))
            }
        };
        let d = duration("abandon_after", abandon_after)?;
        let mut r = detach(py, || self.ring.reader(name, start)).map_err(to_pyerr)?;
        r.set_abandon_after(d);
        Ok(PyRingReader { r: Mutex::new(r) })
    }

    /// Names and acknowledged cursors of the registered readers.
    fn readers(&self) -> Vec<(String, u64)> {
        self.ring.readers()
    }

    /// Unregisters a named cursor; False if there was none.
    fn remove_reader(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        detach(py, || self.ring.remove_reader(name)).map_err(to_pyerr)
    }

    /// Waits until `n` records would fit; True if they do.
    #[pyo3(signature = (n=1, timeout=1.0))]
    fn wait_for_space(&self, py: Python<'_>, n: u64, timeout: f64) -> PyResult<bool> {
        let d = duration("timeout", timeout)?;
        Ok(detach(py, || self.ring.wait_for_space(n, d)))
    }

    /// Marks reserved-but-uncommitted slots abandoned now (only when no writer is alive).
    fn abandon_incomplete(&self) -> u64 {
        self.ring.abandon_incomplete()
    }

    /// Reserves n slots and never commits them, like a writer killed mid-append (tests only).
    fn _reserve_and_die(&self, n: u64) -> PyResult<u64> {
        self.ring.reserve_and_die(n).map_err(to_pyerr)
    }

    /// Refuses later appends from every process; readers drain what is there.
    fn close(&self) {
        self.ring.close()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.ring.is_closed()
    }
    #[getter]
    fn path(&self) -> String {
        self.ring.path().display().to_string()
    }
    #[getter]
    fn capacity(&self) -> u64 {
        self.ring.capacity()
    }
    #[getter]
    fn record_size(&self) -> usize {
        self.ring.record_size()
    }
    #[getter]
    fn records_offset(&self) -> u64 {
        self.ring.records_offset()
    }
    #[getter]
    fn mode(&self) -> &'static str {
        mode_name(self.ring.mode())
    }
    #[getter]
    fn max_readers(&self) -> u32 {
        self.ring.max_readers()
    }
    #[getter]
    fn tail(&self) -> u64 {
        self.ring.tail()
    }
    #[getter]
    fn oldest(&self) -> u64 {
        self.ring.oldest()
    }
    #[getter]
    fn abandoned(&self) -> u64 {
        self.ring.abandoned()
    }
    #[getter]
    fn lost_writes(&self) -> u64 {
        self.ring.lost_writes()
    }
}

/// A bid record as the plain tuple `read_one` returns.
type BidTuple = (u64, u64, f64, f64, u64, u8);

fn bid_tuple(r: &BidRecord) -> BidTuple {
    (r.auction_id, r.bidder_id, r.price, r.quality, r.timestamp_ns, r.kind)
}

/// `read(1)` copied out: the next committed bid record, if one is there now.
fn read_one_now(r: &mut RingReader) -> Result<Option<BidRecord>, CoreError> {
    Ok(r.read(1)?.records().first().copied())
}

/// The native reader of one named cursor. Calls from several threads are serialised.
#[pyclass(module = "_rtbcore", name = "RingReader", frozen)]
pub struct PyRingReader {
    r: Mutex<RingReader>,
}

impl PyRingReader {
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut RingReader) -> T + Send) -> T {
        detach(py, || {
            let mut g = self.r.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut g)
        })
    }
}

#[pymethods]
impl PyRingReader {
    /// Acknowledges the held batch and returns `(start_seq, n)` of the next committed records
    /// (zero-copy: they stay in the ring, protected until the next read or commit).
    fn _read(&self, py: Python<'_>, max_n: usize) -> PyResult<(u64, usize)> {
        let read = |r: &mut RingReader| r.read(max_n).map(|b| (b.start_seq(), b.len()));
        if max_n <= 64 {
            // A small read costs less than releasing and retaking the GIL.
            let mut g = self.r.lock().unwrap_or_else(|e| e.into_inner());
            return read(&mut g).map_err(to_pyerr);
        }
        self.with(py, read).map_err(to_pyerr)
    }

    /// Acknowledges the held batch and returns the next bid record as a plain tuple
    /// `(auction_id, bidder_id, price, quality, timestamp_ns, kind)`, waiting up to `timeout`
    /// seconds for one; None when none arrives (or the ring is sealed and drained). The record
    /// becomes the held batch, acknowledged by the next read, read_one or commit. One native
    /// call, no numpy: the GIL is released only if it has to wait.
    #[pyo3(signature = (timeout=0.0))]
    fn read_one(&self, py: Python<'_>, timeout: f64) -> PyResult<Option<BidTuple>> {
        let d = duration("timeout", timeout)?;
        {
            let mut g = self.r.lock().unwrap_or_else(|e| e.into_inner());
            if g.record_size() != BidRecord::SIZE {
                return Err(to_pyerr(CoreError::invalid(
                    "read_one",
                    format!(
                        "this ring holds {}-byte records, not 48-byte bid records; use read",
                        g.record_size()
                    ),
                )));
            }
            // The common case: a record is waiting. Cheaper than releasing the GIL.
            if let Some(rec) = read_one_now(&mut g).map_err(to_pyerr)? {
                return Ok(Some(bid_tuple(&rec)));
            }
        }
        if d.is_zero() {
            return Ok(None);
        }
        let deadline = Instant::now() + d;
        let rec = self.with(py, |r| loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || r.is_closed() || !r.wait(left) {
                // One last look: a sealed ring may still have held a record.
                return read_one_now(r);
            }
            if let Some(rec) = read_one_now(r)? {
                return Ok(Some(rec));
            }
            // Woken for a stalled slot that the read just skipped, or spuriously: wait again.
        });
        Ok(rec.map_err(to_pyerr)?.map(|r| bid_tuple(&r)))
    }

    /// Like `_read` but copies the records into `out` (raw bytes, whole records).
    fn _read_into(
        &self,
        py: Python<'_>,
        mut out: PyReadwriteArray1<'_, u8>,
    ) -> PyResult<(u64, usize)> {
        let bytes = out
            .as_slice_mut()
            .map_err(|_| to_pyerr(CoreError::invalid("out", "must be C-contiguous")))?;
        self.with(py, |r| {
            let rs = r.record_size();
            let b = r.read(bytes.len() / rs)?;
            let (s, n) = (b.start_seq(), b.len());
            bytes[..n * rs].copy_from_slice(b.bytes());
            Ok((s, n))
        })
        .map_err(to_pyerr)
    }

    /// Acknowledges the batch handed out by the last read.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |r| r.commit()).map_err(to_pyerr)
    }

    /// Moves the cursor to `from_seq` (within [oldest, tail]).
    fn replay(&self, py: Python<'_>, from_seq: u64) -> PyResult<()> {
        self.with(py, |r| r.replay(from_seq)).map_err(to_pyerr)
    }

    /// Waits (spin, then futex sleep) until a read would return records; True if so.
    #[pyo3(signature = (timeout=1.0))]
    fn wait(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let d = duration("timeout", timeout)?;
        Ok(self.with(py, |r| r.wait(d)))
    }

    #[getter]
    fn name(&self) -> String {
        self.r.lock().unwrap_or_else(|e| e.into_inner()).name()
    }
    #[getter]
    fn position(&self) -> u64 {
        self.r.lock().unwrap_or_else(|e| e.into_inner()).position()
    }
    #[getter]
    fn acknowledged(&self) -> u64 {
        self.r.lock().unwrap_or_else(|e| e.into_inner()).acknowledged()
    }
    #[getter]
    fn lag(&self) -> u64 {
        self.r.lock().unwrap_or_else(|e| e.into_inner()).lag()
    }
    #[getter]
    fn abandon_after(&self) -> f64 {
        self.r.lock().unwrap_or_else(|e| e.into_inner()).abandon_after().as_secs_f64()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBidRing>()?;
    m.add_class::<PyRingReader>()?;
    Ok(())
}
