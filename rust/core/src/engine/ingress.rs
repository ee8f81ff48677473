//! Bids from outside the process: the [`BidSource`] trait, the attach threads that feed the
//! intake from one, and [`RingSource`], a source reading a `BidRing`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::intake::Intake;
use super::{mono_ns, Engine};
use crate::error::CoreError;
use crate::record::BidRecord;
use crate::ring::{BidRing, RingReader, Start};

/// An ingress thread consuming a [`BidSource`].
pub(super) struct Attached {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) thread: JoinHandle<()>,
}

/// Counters of the attach threads (all sources summed).
#[derive(Default)]
pub(super) struct AttachCounters {
    pub(super) records: AtomicU64,
    pub(super) invalid: AtomicU64,
    pub(super) errors: AtomicU64,
    pub(super) last_error: Mutex<Option<String>>,
}

/// A stream of bid records from outside the process (e.g. a `BidRing` that other processes
/// append to), consumed by [`Engine::attach`] on a thread of its own.
pub trait BidSource: Send + 'static {
    /// Waits up to `timeout` for records and appends at most `max_n` of them to `out`;
    /// returns how many were appended (0 on timeout).
    fn fill(
        &mut self,
        out: &mut Vec<BidRecord>,
        max_n: usize,
        timeout: Duration,
    ) -> Result<usize, CoreError>;
}

impl Engine {
    /// Consumes `source` on a thread of its own until [`Engine::close`]: its records are
    /// validated one by one (an invalid record is counted in `attach_invalid` and skipped, the
    /// rest go on), stamped with the time they were read when their `timestamp_ns` is 0, and
    /// queued like a submission (waiting for room). A source error (e.g. a ring overrun) is
    /// counted in `attach_errors` with its message, and the thread goes on reading.
    pub fn attach(&self, source: Box<dyn BidSource>) -> Result<(), CoreError> {
        if self.is_closed() {
            return Err(CoreError::Closed);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let intake = self.intake.clone();
        let st = stop.clone();
        let id = self.attached.lock().unwrap().len();
        let thread = std::thread::Builder::new()
            .name(format!("rtbcore-attach-{id}"))
            .spawn(move || attach_loop(intake, source, st))
            .map_err(|e| CoreError::Io {
                context: "spawning an attach thread".into(),
                msg: e.to_string(),
            })?;
        self.attached.lock().unwrap().push(Attached { stop, thread });
        Ok(())
    }
}

pub(super) fn attach_loop(
    intake: Arc<Intake>,
    mut source: Box<dyn BidSource>,
    stop: Arc<AtomicBool>,
) {
    let counters = &intake.shared.attach;
    let mut buf: Vec<BidRecord> = Vec::with_capacity(1 << 16);
    let mut good: Vec<BidRecord> = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Acquire) {
        buf.clear();
        match source.fill(&mut buf, 1 << 16, Duration::from_millis(20)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::AcqRel);
                *counters.last_error.lock().unwrap() = Some(e.to_string());
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        good.clear();
        let mut bad = 0u64;
        for r in &buf {
            if r.is_valid() {
                good.push(*r);
            } else {
                bad += 1;
            }
        }
        counters.invalid.fetch_add(bad, Ordering::AcqRel);
        let Ok(p) = intake.prepare_records(&good, mono_ns()) else {
            continue;
        };
        // wait for room, but give up if the engine is closing
        while !intake.wait_room(&p, Duration::from_millis(20)) {
            if stop.load(Ordering::Acquire) {
                break;
            }
        }
        let n = p.len() as u64;
        if intake.send(p).is_err() {
            return;
        }
        counters.records.fetch_add(n, Ordering::AcqRel);
    }
}

/// A [`BidSource`] reading a 48-byte [`BidRing`] through a named, persistent reader: another
/// process appends bids, the engine consumes them. At-least-once: a batch is acknowledged once
/// it is queued into the engine (at the next `fill`) or when the source is dropped.
pub struct RingSource {
    pub(super) reader: RingReader,
    pub(super) _ring: BidRing,
}

impl RingSource {
    /// Opens the ring at `path` (it must hold 48-byte bid records) and attaches to the reader
    /// `reader` (created at `start` on first use).
    pub fn open(path: &Path, reader: &str, start: Start) -> Result<Self, CoreError> {
        let ring = BidRing::open(path, Some(BidRecord::SIZE))?;
        let reader = ring.reader(reader, start)?;
        Ok(RingSource { reader, _ring: ring })
    }
}

impl BidSource for RingSource {
    fn fill(
        &mut self,
        out: &mut Vec<BidRecord>,
        max_n: usize,
        timeout: Duration,
    ) -> Result<usize, CoreError> {
        // `fill` is called again only once the previous batch is queued in the engine:
        // acknowledge it now, so a backpressure-mode writer can reuse its slots while we wait
        self.reader.commit()?;
        if !self.reader.wait(timeout) {
            return Ok(0);
        }
        let batch = self.reader.read(max_n)?;
        let recs = batch.records();
        out.extend_from_slice(recs);
        Ok(recs.len())
    }
}

impl Drop for RingSource {
    fn drop(&mut self) {
        let _ = self.reader.commit();
    }
}
