//! Python bindings for `rtbcore_core::ring`: `_rtbcore.BidRing` and `_rtbcore.RingReader`,
//! wrapped by `rtbcore.BidRing` (rtbcore/streaming.py). Reads return `(start_seq, n)`; the Python
//! layer turns that into a zero-copy numpy view of the records region of this handle's mapping
//! (`_records`), which keeps the handle alive.
//!
//! Blocking calls wait in GIL-released slices and run Python's signal handlers between them, so
//! Ctrl-C ends them promptly. A read that took records when a handler raises hands them back
//! (`RingReader::unread`): they are not acknowledged, and the next read returns them again.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyReadonlyArray1, PyReadwriteArray1};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyTuple};
use pyo3::Borrowed;
use rtbcore_core::record::BidRecord;
use rtbcore_core::ring::{BidRing, RecordType, RingMode, RingOptions, RingReader, Start};
use rtbcore_core::CoreError;

use crate::queue::as_records;
use crate::{detach, to_pyerr};

/// Longest GIL-released stretch of a blocking call: how late Ctrl-C may be handled.
const SLICE: Duration = Duration::from_millis(20);

/// A `timeout` argument: a finite number of seconds >= 0 (below 10^9). NaN, negative or
/// infinite values, bools and non-numbers are refused with InvalidInputError, by every call.
#[derive(Clone, Copy, PartialEq)]
struct Seconds(Duration);

impl Seconds {
    const ZERO: Seconds = Seconds(Duration::ZERO);
    const ONE: Seconds = Seconds(Duration::from_secs(1));
}

impl<'a, 'py> FromPyObject<'a, 'py> for Seconds {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        let refuse = || {
            let shown = obj.repr().map_or_else(|_| "?".to_string(), |r| r.to_string());
            to_pyerr(CoreError::invalid(
                "timeout",
                format!("must be a finite number of seconds >= 0, got {shown}"),
            ))
        };
        let secs = if let Ok(f) = obj.cast_exact::<PyFloat>() {
            f.value() // the common case, one pointer compare
        } else if obj.is_instance_of::<PyBool>() {
            return Err(refuse());
        } else {
            obj.extract().map_err(|_| refuse())?
        };
        if !(0.0..1e9).contains(&secs) {
            return Err(refuse());
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

/// Record-type errors name the Python argument that carries the type: `dtype`.
fn dtype_err(e: CoreError) -> PyErr {
    match e {
        CoreError::InvalidInput { field: "record_type", msg } => {
            to_pyerr(CoreError::InvalidInput { field: "dtype", msg })
        }
        e => to_pyerr(e),
    }
}

/// Calls `step(slice)` with the GIL released until it returns true or `timeout` passes,
/// running Python's signal handlers between slices (their exception ends the wait). Returns
/// whether `step` succeeded.
fn wait_sliced(
    py: Python<'_>,
    timeout: Duration,
    mut step: impl FnMut(Duration) -> bool + Send,
) -> PyResult<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if detach(py, || step(left.min(SLICE))) {
            return Ok(true);
        }
        if left <= SLICE {
            return Ok(false);
        }
        py.check_signals()?;
    }
}

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
    #[pyo3(signature = (path, capacity, record_size, mode, max_readers, record_type=None))]
    fn _create(
        py: Python<'_>,
        path: PathBuf,
        capacity: u64,
        record_size: usize,
        mode: &str,
        max_readers: u32,
        record_type: Option<&str>,
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
        let record_type = match record_type {
            Some(tag) => Some(RecordType::new(tag, record_size).map_err(dtype_err)?),
            None => None,
        };
        let opts = RingOptions { capacity, record_size, mode, max_readers, record_type };
        let ring = detach(py, || BidRing::create(&path, opts)).map_err(dtype_err)?;
        Ok(PyBidRing { ring })
    }

    /// Opens an existing ring file. With `record_type` (a tag; `record_size` then required)
    /// the file must hold exactly that type; else `record_size`, when given, must match.
    #[staticmethod]
    #[pyo3(signature = (path, record_size=None, record_type=None))]
    fn _open(
        py: Python<'_>,
        path: PathBuf,
        record_size: Option<usize>,
        record_type: Option<&str>,
    ) -> PyResult<Self> {
        let ring = match (record_type, record_size) {
            (Some(tag), Some(size)) => {
                let t = RecordType::new(tag, size).map_err(dtype_err)?;
                detach(py, || BidRing::open_as(&path, t))
            }
            (Some(_), None) => {
                return Err(to_pyerr(CoreError::invalid("record_type", "needs a record_size")))
            }
            (None, size) => detach(py, || BidRing::open(&path, size)),
        };
        Ok(PyBidRing { ring: ring.map_err(dtype_err)? })
    }

    /// The records region of this handle's mapping as a uint8 array (`capacity *
    /// record_size` bytes) whose base is this handle, which it keeps alive.
    fn _records<'py>(slf: Bound<'py, Self>) -> Bound<'py, PyArray1<u8>> {
        let ring = &slf.get().ring;
        let len = ring.capacity() as usize * ring.record_size();
        // SAFETY: the region lies inside the mapping, which lives as long as `ring`, i.e. as
        // long as `slf`, which the array holds as its base; the mapping is never moved or
        // resized (after a shrink of the file it is replaced in place by zero pages).
        unsafe {
            let view = ArrayView1::from_shape_ptr(len, ring.records_ptr().as_ptr() as *const u8);
            PyArray1::borrow_from_array(&view, slf.into_any())
        }
    }

    /// Raises RingCorrupt if the file shrank or was replaced under this handle.
    fn check(&self, py: Python<'_>) -> PyResult<()> {
        detach(py, || self.ring.check()).map_err(to_pyerr)
    }

    /// Faults the whole mapping in, writable, at once (Linux MADV_POPULATE_WRITE); whether
    /// the kernel did it.
    fn prefault(&self, py: Python<'_>) -> bool {
        detach(py, || self.ring.prefault())
    }

    /// The record type tag written in the header.
    #[getter]
    fn record_type(&self) -> String {
        self.ring.record_type().tag().to_string()
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
        Ok(PyRingReader::new(r))
    }

    /// Names and acknowledged cursors of the registered readers.
    fn readers(&self) -> Vec<(String, u64)> {
        self.ring.readers()
    }

    /// Unregisters a named cursor; False if there was none.
    fn remove_reader(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        detach(py, || self.ring.remove_reader(name)).map_err(to_pyerr)
    }

    /// Waits until `n` records would fit; True if they do. Interruptible.
    #[pyo3(signature = (n=1, timeout=Seconds::ONE), text_signature = "($self, n=1, timeout=1.0)")]
    fn wait_for_space(&self, py: Python<'_>, n: u64, timeout: Seconds) -> PyResult<bool> {
        let t = timeout.0;
        let ring = &self.ring;
        // A writer calls this when the ring is full: the place for the full check of the file.
        ring.check().map_err(to_pyerr)?;
        // Refuses what can never fit, and a lost mapping, before waiting.
        if ring.wait_for_room(n, Duration::ZERO).map_err(to_pyerr)? {
            return Ok(true);
        }
        if t.is_zero() {
            return Ok(false);
        }
        let mut err = None;
        let fits = wait_sliced(py, t, |d| match ring.wait_for_room(n, d) {
            Ok(f) => f,
            Err(e) => {
                err = Some(e);
                true
            }
        })?;
        match err {
            Some(e) => Err(to_pyerr(e)),
            None => Ok(fits),
        }
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

/// A reader, and whether its held batch was handed out by the latest read: such a batch is
/// handed back (`unread`) if the caller was interrupted before it got it.
struct ReaderState {
    r: RingReader,
    fresh: bool,
}

impl ReaderState {
    /// One read attempt; the batch `take` returns (Some) becomes the fresh held batch.
    fn attempt<T>(
        &mut self,
        take: &mut impl FnMut(&mut RingReader) -> Result<Option<T>, CoreError>,
    ) -> Result<Option<T>, CoreError> {
        self.fresh = false;
        let got = take(&mut self.r)?;
        self.fresh = got.is_some();
        Ok(got)
    }
}

/// The native reader of one named cursor. Calls from several threads are serialised.
#[pyclass(module = "_rtbcore", name = "RingReader", frozen)]
pub struct PyRingReader {
    s: Mutex<ReaderState>,
    /// Bytes per record (fixed for the ring's life): checked without taking the lock.
    record_size: usize,
}

impl PyRingReader {
    fn new(r: RingReader) -> Self {
        let record_size = r.record_size();
        PyRingReader { s: Mutex::new(ReaderState { r, fresh: false }), record_size }
    }

    fn lock(&self) -> MutexGuard<'_, ReaderState> {
        self.s.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the reader with the GIL released.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut ReaderState) -> T + Send) -> T {
        detach(py, || f(&mut self.lock()))
    }

    /// Reads with `take` (None: nothing there), waiting up to `timeout` for records in
    /// GIL-released slices with Python's signal handlers run between them. `gil_first`: make
    /// the first attempt without releasing the GIL (cheaper when records are waiting). If a
    /// signal handler raises after records were taken, they are handed back before the
    /// exception propagates, so nothing taken is lost. With `deliver_later`, the caller makes
    /// that last check itself (after building its return value, to leave the interpreter no
    /// window between the check and the return).
    fn take<T: Send>(
        &self,
        py: Python<'_>,
        timeout: Seconds,
        gil_first: bool,
        deliver_later: bool,
        mut take: impl FnMut(&mut RingReader) -> Result<Option<T>, CoreError> + Send,
    ) -> PyResult<Option<T>> {
        let first = if gil_first {
            self.lock().attempt(&mut take)
        } else {
            self.with(py, |st| st.attempt(&mut take))
        };
        let mut got = first.map_err(to_pyerr)?;
        if got.is_none() && timeout != Seconds::ZERO {
            let deadline = Instant::now() + timeout.0;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let step = left.min(SLICE);
                let (g, drained) = self
                    .with(py, |st| {
                        if !st.r.wait(step) {
                            return Ok((None, false));
                        }
                        let g = st.attempt(&mut take)?;
                        Ok((g, st.r.is_closed()))
                    })
                    .map_err(to_pyerr)?;
                if g.is_some() {
                    got = g;
                    break;
                }
                if drained || left <= SLICE {
                    break;
                }
                py.check_signals()?;
            }
        }
        if got.is_some() && !deliver_later {
            self.deliver(py)?;
        }
        Ok(got)
    }

    /// Converts the arguments of a read. If one is bad, the batch of the previous read is no
    /// longer fresh: the wrapper's `_unread` after this call's exception must not hand back
    /// records that were already delivered.
    fn args<T, E: Into<PyErr>>(
        &self,
        first: Result<T, E>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(T, Seconds)> {
        let parsed = first.map_err(Into::into).and_then(|a| {
            let t = timeout.map_or(Ok(Seconds::ZERO), |t| t.extract::<Seconds>())?;
            Ok((a, t))
        });
        if parsed.is_err() {
            self.lock().fresh = false;
        }
        parsed
    }

    /// The last check before records taken by a read are returned: if a signal handler
    /// raises, the records are handed back (not acknowledged) and the exception propagates.
    fn deliver(&self, py: Python<'_>) -> PyResult<()> {
        py.check_signals().inspect_err(|_| {
            let mut st = self.lock();
            if st.fresh {
                st.r.unread();
                st.fresh = false;
            }
        })
    }
}

#[pymethods]
impl PyRingReader {
    /// Acknowledges the held batch and returns `(start_seq, n)` of the next committed records
    /// (zero-copy: they stay in the ring, protected until the next read or commit), waiting up
    /// to `timeout` seconds for the first.
    #[pyo3(signature = (max_n, timeout=None), text_signature = "($self, max_n, timeout=0.0)")]
    fn _read(
        &self,
        py: Python<'_>,
        max_n: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, usize)> {
        let (max_n, timeout) = self.args(max_n.extract::<usize>(), timeout)?;
        let timeout = if max_n == 0 { Seconds::ZERO } else { timeout };
        // A small read costs less than releasing and retaking the GIL.
        let got = self.take(py, timeout, max_n <= 64, false, |r| {
            let b = r.read(max_n)?;
            Ok((!b.is_empty()).then(|| (b.start_seq(), b.len())))
        })?;
        Ok(got.unwrap_or_else(|| (self.lock().r.position(), 0)))
    }

    /// Acknowledges the held batch and returns the next bid record as a plain tuple
    /// `(auction_id, bidder_id, price, quality, timestamp_ns, kind)`, waiting up to `timeout`
    /// seconds for one; None when none arrives (or the ring is sealed and drained). The record
    /// becomes the held batch, acknowledged by the next read, read_one or commit. One native
    /// call, no numpy: the GIL is released only if it has to wait.
    #[pyo3(signature = (timeout=None), text_signature = "($self, timeout=0.0)")]
    fn read_one<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let ((), timeout) = self.args(Ok::<(), PyErr>(()), timeout)?;
        let rs = self.record_size;
        if rs != BidRecord::SIZE {
            return Err(to_pyerr(CoreError::invalid(
                "read_one",
                format!("this ring holds {rs}-byte records, not 48-byte bid records; use read"),
            )));
        }
        // The fields, not the record: moving a BidRecord (with its 7-byte pad) through the
        // Result/Option layers costs store-forwarding stalls.
        let got = self
            .take(py, timeout, true, true, |r| Ok(r.read(1)?.records().first().map(bid_tuple)))?;
        let Some(rec) = got else {
            return Ok(None);
        };
        let t = rec.into_pyobject(py)?;
        self.deliver(py)?;
        Ok(Some(t))
    }

    /// Like `_read` but copies the records into `out` (raw bytes, whole records).
    #[pyo3(signature = (out, timeout=None), text_signature = "($self, out, timeout=0.0)")]
    fn _read_into(
        &self,
        py: Python<'_>,
        out: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, usize)> {
        let (mut out, timeout) = self.args(out.extract::<PyReadwriteArray1<'_, u8>>(), timeout)?;
        let bytes = out
            .as_slice_mut()
            .map_err(|_| to_pyerr(CoreError::invalid("out", "must be C-contiguous")))?;
        let room = bytes.len();
        let rs = self.record_size;
        let timeout = if room < rs { Seconds::ZERO } else { timeout };
        let got = self.take(py, timeout, false, false, |r| {
            let b = r.read(room / rs)?;
            let n = b.len();
            bytes[..n * rs].copy_from_slice(b.bytes());
            Ok((n > 0).then(|| (b.start_seq(), n)))
        })?;
        Ok(got.unwrap_or_else(|| (self.lock().r.position(), 0)))
    }

    /// Hands the batch of the last read back unacknowledged if that read's caller was
    /// interrupted before it got it; no-op otherwise.
    fn _unread(&self) {
        let mut st = self.lock();
        if st.fresh {
            st.r.unread();
            st.fresh = false;
        }
    }

    /// Acknowledges the batch handed out by the last read.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |st| {
            st.fresh = false;
            st.r.commit()
        })
        .map_err(to_pyerr)
    }

    /// Moves the cursor to `from_seq` (within [oldest, tail]).
    fn replay(&self, py: Python<'_>, from_seq: u64) -> PyResult<()> {
        self.with(py, |st| {
            st.fresh = false;
            st.r.replay(from_seq)
        })
        .map_err(to_pyerr)
    }

    /// Waits (spin, then futex sleep) until a read would return records; True if so.
    /// Interruptible; RingCorrupt if the file shrank or was replaced.
    #[pyo3(signature = (timeout=Seconds::ONE), text_signature = "($self, timeout=1.0)")]
    fn wait(&self, py: Python<'_>, timeout: Seconds) -> PyResult<bool> {
        let ready = wait_sliced(py, timeout.0, |d| self.lock().r.wait(d))?;
        self.with(py, |st| st.r.check()).map_err(to_pyerr)?;
        Ok(ready)
    }

    #[getter]
    fn name(&self) -> String {
        self.lock().r.name()
    }
    #[getter]
    fn position(&self) -> u64 {
        self.lock().r.position()
    }
    #[getter]
    fn acknowledged(&self) -> u64 {
        self.lock().r.acknowledged()
    }
    #[getter]
    fn lag(&self) -> u64 {
        self.lock().r.lag()
    }
    #[getter]
    fn abandon_after(&self) -> f64 {
        self.lock().r.abandon_after().as_secs_f64()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBidRing>()?;
    m.add_class::<PyRingReader>()?;
    Ok(())
}
