//! Python bindings for `rtbcore_core::engine`: the private class `_AuctionEngine`, wrapped by
//! `rtbcore.AuctionEngine` (rtbcore/engine.py), which checks dtypes and broadcasts scalars.
//!
//! Every wait (room in the intake, results to poll) runs in short GIL-released slices with
//! `check_signals()` between them, so Ctrl-C interrupts promptly. Rows are taken from the engine
//! only once the wait is over, and the calls that take rows (`poll`, `poll_rejected`,
//! `_EventLog.read`) do not return them: they append them to a list the wrapper owns (its
//! "held" rows) before returning, because CPython raises a pending `KeyboardInterrupt` as soon
//! as a native call returns, which would drop a returned array. The wrapper hands held rows
//! out with no interruption point in between, so every row is delivered exactly once.

use std::time::{Duration, Instant};

use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::{Arc, Mutex};

use rtbcore_core::engine::{
    mono_ns, AuctionResult, BidArrays, BidOutcome, Engine, EngineConfig, EventSink, LatencySummary,
    Mechanism, OpenRequest, Prepared, RejectedBid, RingEventLog, RingSource,
};
use rtbcore_core::record::{BidRecord, KIND_CANCEL, KIND_PLACE};
use rtbcore_core::ring::{BidRing, RecordType, RingReader, Start};
use rtbcore_core::CoreError;

use crate::queue::as_records;
use crate::{bid_pyerr, detach, to_pyerr, BidNames};

/// The longest the GIL stays released in one slice of a wait before signals are checked.
const SLICE: Duration = Duration::from_millis(20);

fn slice<'a, T: numpy::Element>(
    a: &'a Option<PyReadonlyArray1<'_, T>>,
    name: &'static str,
) -> PyResult<Option<&'a [T]>> {
    match a {
        None => Ok(None),
        Some(a) => a
            .as_slice()
            .map(Some)
            .map_err(|_| to_pyerr(CoreError::invalid(name, "must be a contiguous 1-D array"))),
    }
}

fn need<'a, T: numpy::Element>(
    a: &'a PyReadonlyArray1<'_, T>,
    name: &'static str,
) -> PyResult<&'a [T]> {
    a.as_slice().map_err(|_| to_pyerr(CoreError::invalid(name, "must be a contiguous 1-D array")))
}

/// The instant `timeout_ms` from now; `None` = wait forever (`+inf`). NaN and negative values
/// are refused naming `timeout_ms`.
fn deadline_after(timeout_ms: f64) -> PyResult<Option<Instant>> {
    if timeout_ms.is_nan() || timeout_ms < 0.0 {
        return Err(to_pyerr(CoreError::invalid(
            "timeout_ms",
            format!("timeout_ms = {timeout_ms}: must be >= 0 (inf waits forever)"),
        )));
    }
    if timeout_ms.is_infinite() || timeout_ms > 1e15 {
        return Ok(None);
    }
    Ok(Instant::now().checked_add(Duration::from_secs_f64(timeout_ms / 1e3)))
}

/// Time left until `deadline` (`None` = forever), at most one slice.
fn slice_left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()).min(SLICE))
}

fn expired(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Bytes of a slice of plain `repr(C)` rows with no implicit padding.
fn row_bytes<T: Copy>(rows: &[T]) -> &[u8] {
    // SAFETY: only called with AuctionResult / RejectedBid / BidOutcome, which are repr(C), Copy, and have
    // every padding byte as an explicit field (sizes asserted in the core crate), so all
    // `size_of_val(rows)` bytes are initialized; the returned slice borrows `rows`.
    unsafe { std::slice::from_raw_parts(rows.as_ptr().cast::<u8>(), std::mem::size_of_val(rows)) }
}

/// Appends `rows` to `hold` as one array of their raw bytes. Only C code runs here (no Python
/// function, so no point where CPython raises a pending signal's exception): once taken from
/// the engine, rows reach `hold` whatever signal arrives. The wrapper views them as their
/// dtype while they are still held.
fn hold_rows<T: Copy>(py: Python<'_>, rows: &[T], hold: &Bound<'_, PyList>) -> PyResult<()> {
    hold.append(PyArray1::<u8>::from_slice(py, row_bytes(rows)))
}

fn latency_into(d: &Bound<'_, PyDict>, name: &str, l: &LatencySummary) -> PyResult<()> {
    d.set_item(format!("{name}_count"), l.count)?;
    d.set_item(format!("{name}_p50_ns"), l.p50)?;
    d.set_item(format!("{name}_p99_ns"), l.p99)?;
    d.set_item(format!("{name}_p999_ns"), l.p999)?;
    d.set_item(format!("{name}_max_ns"), l.max)?;
    d.set_item(format!("{name}_mean_ns"), l.mean)?;
    Ok(())
}

#[pyclass(module = "_rtbcore", name = "_AuctionEngine", frozen)]
pub(crate) struct PyAuctionEngine {
    inner: Engine,
}

impl PyAuctionEngine {
    /// Waits for room in slices (signals checked between them), then queues. With
    /// `timeout_ms = Some(0)` it does not wait: returns Ok(None) when full.
    pub(crate) fn queue_prepared(
        &self,
        py: Python<'_>,
        p: Prepared,
        timeout_ms: Option<f64>,
    ) -> PyResult<Option<usize>> {
        let eng = &self.inner;
        // no timeout (or inf): wait for room as long as it takes (Ctrl-C still interrupts)
        let deadline = match timeout_ms {
            None => None,
            Some(t) => deadline_after(t)?,
        };
        loop {
            let left = slice_left(deadline);
            let ok = if left.is_zero() {
                eng.wait_room(&p, Duration::ZERO)
            } else {
                detach(py, || eng.wait_room(&p, left))
            };
            if ok {
                return eng.send(p).map(Some).map_err(to_pyerr);
            }
            if expired(deadline) {
                return Ok(None);
            }
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl PyAuctionEngine {
    #[new]
    #[pyo3(signature = (workers, pin, mechanism, reserve, increment, tmax_ns, capacity, slot_ctrs=None, event_log=None, event_log_capacity=1048576, rejected_capacity=None, outcome_capacity=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        workers: usize,
        pin: bool,
        mechanism: &str,
        reserve: f64,
        increment: f64,
        tmax_ns: u64,
        capacity: usize,
        slot_ctrs: Option<Vec<f64>>,
        event_log: Option<std::path::PathBuf>,
        event_log_capacity: u64,
        rejected_capacity: Option<usize>,
        outcome_capacity: Option<usize>,
    ) -> PyResult<Self> {
        let mechanism = match (mechanism, slot_ctrs) {
            ("first_price", None) => Mechanism::FirstPrice,
            ("second_price", None) => Mechanism::SecondPrice,
            ("gsp", Some(c)) => Mechanism::Gsp(c),
            ("vcg", Some(c)) => Mechanism::Vcg(c),
            ("gsp" | "vcg", None) => {
                return Err(to_pyerr(CoreError::invalid(
                    "slot_ctrs",
                    format!("mechanism {mechanism:?} needs slot_ctrs (one click-through factor per slot)"),
                )))
            }
            ("first_price" | "second_price", Some(_)) => {
                return Err(to_pyerr(CoreError::invalid(
                    "slot_ctrs",
                    format!("slot_ctrs is for mechanism 'gsp' or 'vcg', not {mechanism:?}"),
                )))
            }
            _ => {
                return Err(to_pyerr(CoreError::invalid(
                    "mechanism",
                    format!("unknown mechanism {mechanism:?}: expected 'first_price', 'second_price', 'gsp' or 'vcg'"),
                )))
            }
        };
        let event_sink: Option<Arc<dyn EventSink>> = match event_log {
            None => None,
            Some(path) => Some(Arc::new(
                detach(py, || RingEventLog::open_or_create(&path, event_log_capacity))
                    .map_err(to_pyerr)?,
            )),
        };
        let cfg = EngineConfig {
            workers,
            pin,
            mechanism,
            reserve,
            increment,
            tmax_ns,
            capacity,
            rejected_capacity,
            event_sink,
        };
        let inner =
            detach(py, || Engine::start_with_outcomes(cfg, outcome_capacity)).map_err(to_pyerr)?;
        Ok(PyAuctionEngine { inner })
    }

    /// Opens auctions; `None` arrays take the engine defaults (expected_bids: 0 = deadline only).
    #[pyo3(signature = (auction_ids, reserve=None, tmax_ns=None, expected_bids=None))]
    fn open(
        &self,
        py: Python<'_>,
        auction_ids: PyReadonlyArray1<'_, u64>,
        reserve: Option<PyReadonlyArray1<'_, f64>>,
        tmax_ns: Option<PyReadonlyArray1<'_, u64>>,
        expected_bids: Option<PyReadonlyArray1<'_, u32>>,
    ) -> PyResult<usize> {
        let ids = need(&auction_ids, "auction_ids")?;
        let r = slice(&reserve, "reserve")?;
        let t = slice(&tmax_ns, "tmax_ns")?;
        let e = slice(&expected_bids, "expected_bids")?;
        let n = ids.len();
        for (name, len) in [
            ("reserve", r.map(|x| x.len())),
            ("tmax_ns", t.map(|x| x.len())),
            ("expected_bids", e.map(|x| x.len())),
        ] {
            if let Some(len) = len {
                if len != n {
                    return Err(to_pyerr(CoreError::invalid(
                        name,
                        format!("has {len} entries but auction_ids has {n}"),
                    )));
                }
            }
        }
        let eng = &self.inner;
        detach(py, || {
            let now = mono_ns();
            let reqs: Vec<OpenRequest> = (0..n)
                .map(|i| {
                    eng.open_request(
                        ids[i],
                        r.map(|r| r[i]),
                        t.map(|t| t[i]),
                        e.map_or(0, |e| e[i]),
                        now,
                    )
                })
                .collect();
            eng.open(&reqs)
        })
        .map_err(to_pyerr)
    }

    /// Validates and partitions a block (GIL released), then queues it, waiting for room in
    /// GIL-released slices. Returns the number of records queued; `None` on timeout.
    #[pyo3(signature = (auction_ids, bidder_ids, prices, quality=None, kinds=None, timeout_ms=None))]
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &self,
        py: Python<'_>,
        auction_ids: PyReadonlyArray1<'_, u64>,
        bidder_ids: PyReadonlyArray1<'_, u64>,
        prices: PyReadonlyArray1<'_, f64>,
        quality: Option<PyReadonlyArray1<'_, f64>>,
        kinds: Option<PyReadonlyArray1<'_, u8>>,
        timeout_ms: Option<f64>,
    ) -> PyResult<Option<usize>> {
        let arrays = BidArrays {
            auction_ids: need(&auction_ids, "auction_ids")?,
            bidder_ids: need(&bidder_ids, "bidder_ids")?,
            prices: need(&prices, "prices")?,
            quality: slice(&quality, "quality")?,
            kinds: slice(&kinds, "kinds")?,
        };
        let eng = &self.inner;
        let p = detach(py, || eng.prepare(&arrays, mono_ns()))
            .map_err(|e| bid_pyerr(e, BidNames::Arrays))?;
        self.queue_prepared(py, p, timeout_ms)
    }

    /// Submits raw 48-byte bid records (BID_DTYPE viewed as bytes): validated whole (errors
    /// name `records[i]`), stamped now where `timestamp_ns` is 0, then queued like `submit`.
    #[pyo3(signature = (records, timeout_ms=None))]
    fn submit_records(
        &self,
        py: Python<'_>,
        records: PyReadonlyArray1<'_, u8>,
        timeout_ms: Option<f64>,
    ) -> PyResult<Option<usize>> {
        // An owned copy: another thread may write to the array while the block is validated
        // and partitioned with the GIL released.
        let recs = as_records(need(&records, "records")?).map_err(to_pyerr)?.into_owned();
        let eng = &self.inner;
        let p = detach(py, || eng.prepare_records(&recs, mono_ns()))
            .map_err(|e| bid_pyerr(e, BidNames::Records))?;
        self.queue_prepared(py, p, timeout_ms)
    }

    /// Submits one record without waiting; False when the intake is full.
    #[pyo3(signature = (auction_id, bidder_id, price, quality, cancel))]
    fn submit_one(
        &self,
        py: Python<'_>,
        auction_id: u64,
        bidder_id: u64,
        price: f64,
        quality: f64,
        cancel: bool,
    ) -> PyResult<bool> {
        let rec = [BidRecord {
            auction_id,
            bidder_id,
            price,
            quality,
            timestamp_ns: 0,
            kind: if cancel { KIND_CANCEL } else { KIND_PLACE },
            _pad: [0; 7],
        }];
        let p = self
            .inner
            .prepare_records(&rec, mono_ns())
            .map_err(|e| bid_pyerr(e, BidNames::Scalars))?;
        Ok(self.queue_prepared(py, p, Some(0.0))?.is_some())
    }

    /// Takes up to `max_n` result rows, waiting up to `timeout_ms` for the first in
    /// GIL-released slices, and appends them to `hold` as one array of raw rows (RESULT_DTYPE
    /// bytes). A closed engine whose rows are all taken does not wait: it appends an empty one.
    #[pyo3(signature = (max_n, timeout_ms, hold))]
    fn poll(
        &self,
        py: Python<'_>,
        max_n: usize,
        timeout_ms: f64,
        hold: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let eng = &self.inner;
        let deadline = deadline_after(timeout_ms)?;
        if max_n > 0 {
            loop {
                let left = slice_left(deadline);
                let ready = detach(py, || eng.wait_results(left));
                if ready || expired(deadline) || eng.is_drained() {
                    break;
                }
                py.check_signals()?;
            }
            // a signal that arrived during the last slice is raised before any row is taken,
            // so the rows stay in the engine for the next poll
            py.check_signals()?;
        }
        let mut rows: Vec<AuctionResult> = Vec::new();
        eng.poll_into(&mut rows, max_n);
        hold_rows(py, &rows, hold)
    }

    /// Takes up to `max_n` rejected bids and appends them to `hold` as one array of raw rows
    /// (REJECTED_DTYPE bytes). With `dropped` (a one-item list), the rejections dropped at the
    /// bound since the last such call are added to `dropped[0]`.
    #[pyo3(signature = (max_n, hold, dropped=None))]
    fn poll_rejected(
        &self,
        py: Python<'_>,
        max_n: usize,
        hold: &Bound<'_, PyList>,
        dropped: Option<&Bound<'_, PyList>>,
    ) -> PyResult<()> {
        let mut rows: Vec<RejectedBid> = Vec::new();
        let Some(dropped) = dropped else {
            self.inner.poll_rejected_into(&mut rows, max_n);
            return hold_rows(py, &rows, hold);
        };
        // both the rows and the count land in lists the wrapper owns before anything can fail
        let before: u64 = dropped.get_item(0)?.extract()?;
        let (_, d) = self.inner.poll_rejected_batch(&mut rows, max_n);
        dropped.set_item(0, before + d)?;
        hold_rows(py, &rows, hold)
    }

    /// Takes up to `max_n` per-bid outcome rows and appends them to `hold` as one array of raw
    /// rows (OUTCOME_DTYPE bytes); the rows dropped at the bound since the last call are added
    /// to `dropped[0]`. Both land in lists the wrapper owns before anything can fail.
    #[pyo3(signature = (max_n, hold, dropped))]
    fn poll_outcomes(
        &self,
        py: Python<'_>,
        max_n: usize,
        hold: &Bound<'_, PyList>,
        dropped: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let before: u64 = dropped.get_item(0)?.extract()?;
        // the rows are copied once, straight from the engine's blocks into the array
        let mut arr = None;
        let (_, d) = self.inner.poll_outcomes_with(max_n, |parts| {
            let n: usize = parts.iter().map(|p| p.len()).sum();
            let a = PyArray1::<u8>::zeros(py, n * std::mem::size_of::<BidOutcome>(), false);
            {
                // SAFETY: `a` was just created here and is not shared yet
                let dst = unsafe { a.as_slice_mut() }.expect("a new array is contiguous");
                let mut at = 0;
                for p in parts {
                    let b = row_bytes(p);
                    dst[at..at + b.len()].copy_from_slice(b);
                    at += b.len();
                }
            }
            arr = Some(a);
        });
        dropped.set_item(0, before + d)?;
        match arr {
            Some(a) => hold.append(a),
            None => hold_rows::<BidOutcome>(py, &[], hold),
        }
    }

    #[getter]
    fn outcome_capacity(&self) -> Option<usize> {
        self.inner.has_outcomes().then(|| self.inner.outcome_capacity())
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let d = PyDict::new(py);
        for (k, v) in s.counters.items() {
            d.set_item(k, v)?;
        }
        d.set_item("submitted", s.submitted)?;
        d.set_item("queued", s.queued)?;
        d.set_item("workers", s.workers)?;
        d.set_item("pinned", s.pinned)?;
        d.set_item("pin_failures", s.pin_failures)?;
        d.set_item("pin_error", s.pin_error)?;
        d.set_item("live_threads", self.inner.live_threads())?;
        d.set_item("attached", s.attached)?;
        d.set_item("attach_records", s.attach_records)?;
        d.set_item("attach_invalid", s.attach_invalid)?;
        d.set_item("attach_errors", s.attach_errors)?;
        d.set_item("attach_last_error", s.attach_last_error)?;
        latency_into(&d, "last_bid_to_result", &s.last_bid_to_result)?;
        latency_into(&d, "open_to_close", &s.open_to_close)?;
        Ok(d)
    }

    fn reset_latency(&self) {
        self.inner.reset_latency()
    }

    /// Starts a thread consuming the 48-byte BidRing at `path` through the named reader.
    #[pyo3(signature = (path, reader, start_oldest))]
    fn attach_ring(
        &self,
        py: Python<'_>,
        path: std::path::PathBuf,
        reader: &str,
        start_oldest: bool,
    ) -> PyResult<()> {
        let start = if start_oldest { Start::Oldest } else { Start::Latest };
        let src = detach(py, || RingSource::open(&path, reader, start)).map_err(to_pyerr)?;
        self.inner.attach(Box::new(src)).map_err(to_pyerr)
    }

    #[getter]
    fn rows_per_auction(&self) -> usize {
        self.inner.config().mechanism.rows_per_auction()
    }

    #[getter]
    fn rejected_capacity(&self) -> usize {
        self.inner.rejected_capacity()
    }

    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Stops intake, clears every open auction (closed_by=shutdown) and joins the workers.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let eng = &self.inner;
        detach(py, || eng.close()).map_err(to_pyerr)
    }
}

/// A follower of an engine's event log (a BidRing of `EventRecord`s); wrapped by
/// `rtbcore.EventLog`.
#[pyclass(module = "_rtbcore", name = "_EventLog", frozen)]
pub(crate) struct PyEventLog {
    reader: Mutex<RingReader>,
    ring: BidRing,
}

#[pymethods]
impl PyEventLog {
    #[new]
    #[pyo3(signature = (path, reader, start_oldest))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        reader: &str,
        start_oldest: bool,
    ) -> PyResult<Self> {
        let start = if start_oldest { Start::Oldest } else { Start::Latest };
        let (ring, reader) = detach(py, || {
            let ring = BidRing::open_as(&path, RecordType::EVENT)?;
            let reader = ring.reader(reader, start)?;
            Ok::<_, CoreError>((ring, reader))
        })
        .map_err(to_pyerr)?;
        Ok(PyEventLog { reader: Mutex::new(reader), ring })
    }

    /// Takes up to `max_n` events, waiting up to `timeout_ms` for the first in GIL-released
    /// slices (signals checked between them), and appends them to `hold` as one array of raw
    /// events (EVENT_DTYPE bytes), with only C code between the read and the append.
    #[pyo3(signature = (max_n, timeout_ms, hold))]
    fn read(
        &self,
        py: Python<'_>,
        max_n: usize,
        timeout_ms: f64,
        hold: &Bound<'_, PyList>,
    ) -> PyResult<()> {
        let deadline = deadline_after(timeout_ms)?;
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| to_pyerr(CoreError::invalid("EventLog", "a reader thread panicked")))?;
        loop {
            let left = slice_left(deadline);
            let r: &mut RingReader = &mut reader;
            let ready = detach(py, || r.wait(left));
            if ready || expired(deadline) {
                break;
            }
            py.check_signals()?;
        }
        py.check_signals()?;
        let batch = reader.read(max_n).map_err(to_pyerr)?;
        hold.append(PyArray1::<u8>::from_slice(py, batch.bytes()))
    }

    /// Moves the reader to `seq` (any sequence number still in the ring).
    fn replay(&self, seq: u64) -> PyResult<()> {
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| to_pyerr(CoreError::invalid("EventLog", "a reader thread panicked")))?;
        reader.replay(seq).map_err(to_pyerr)
    }

    /// Acknowledges everything read so far (the persistent cursor moves past it).
    fn commit(&self) -> PyResult<()> {
        let mut reader = self
            .reader
            .lock()
            .map_err(|_| to_pyerr(CoreError::invalid("EventLog", "a reader thread panicked")))?;
        reader.commit().map_err(to_pyerr)
    }

    #[getter]
    fn position(&self) -> u64 {
        self.reader.lock().map(|r| r.position()).unwrap_or(0)
    }

    #[getter]
    fn tail(&self) -> u64 {
        self.ring.tail()
    }

    #[getter]
    fn oldest(&self) -> u64 {
        self.ring.oldest()
    }
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAuctionEngine>()?;
    m.add_class::<PyEventLog>()?;
    let _ = KIND_PLACE;
    Ok(())
}
