//! Counters and latency histograms: what each worker publishes and what [`Engine::stats`]
//! sums.

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::Engine;

/// Counters of one worker (or the sum over the workers, see [`Engine::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    pub opened: u64,
    pub open_duplicate: u64,
    pub bids_placed: u64,
    pub bids_updated: u64,
    pub bids_cancelled: u64,
    pub cancel_without_bid: u64,
    pub rejected_late: u64,
    pub rejected_unknown: u64,
    pub rejected_unreported: u64,
    pub closed_deadline: u64,
    pub closed_all_bids: u64,
    pub closed_shutdown: u64,
    pub results: u64,
    pub event_log_dropped: u64,
    pub open_auctions: u64,
    pub events_logged: u64,
    pub bids_declined: u64,
    /// Per-bid outcome rows made (see [`super::BidOutcome`]), held or dropped.
    pub outcomes: u64,
    /// Outcome rows dropped because `outcome_capacity` rows were waiting to be polled.
    pub outcomes_dropped: u64,
}

pub(super) const N_COUNTERS: usize = 19;

impl EngineCounters {
    pub(super) fn to_array(self) -> [u64; N_COUNTERS] {
        [
            self.opened,
            self.open_duplicate,
            self.bids_placed,
            self.bids_updated,
            self.bids_cancelled,
            self.cancel_without_bid,
            self.rejected_late,
            self.rejected_unknown,
            self.rejected_unreported,
            self.closed_deadline,
            self.closed_all_bids,
            self.closed_shutdown,
            self.results,
            self.event_log_dropped,
            self.open_auctions,
            self.events_logged,
            self.bids_declined,
            self.outcomes,
            self.outcomes_dropped,
        ]
    }
    pub(super) fn from_array(a: [u64; N_COUNTERS]) -> Self {
        EngineCounters {
            opened: a[0],
            open_duplicate: a[1],
            bids_placed: a[2],
            bids_updated: a[3],
            bids_cancelled: a[4],
            cancel_without_bid: a[5],
            rejected_late: a[6],
            rejected_unknown: a[7],
            rejected_unreported: a[8],
            closed_deadline: a[9],
            closed_all_bids: a[10],
            closed_shutdown: a[11],
            results: a[12],
            event_log_dropped: a[13],
            open_auctions: a[14],
            events_logged: a[15],
            bids_declined: a[16],
            outcomes: a[17],
            outcomes_dropped: a[18],
        }
    }
    /// `(name, value)` pairs, the keys of `stats()`.
    pub fn items(&self) -> [(&'static str, u64); N_COUNTERS] {
        let a = self.to_array();
        let names = [
            "opened",
            "open_duplicate",
            "bids_placed",
            "bids_updated",
            "bids_cancelled",
            "cancel_without_bid",
            "rejected_late",
            "rejected_unknown",
            "rejected_unreported",
            "closed_deadline",
            "closed_all_bids",
            "closed_shutdown",
            "results",
            "event_log_dropped",
            "open_auctions",
            "events_logged",
            "bids_declined",
            "outcomes",
            "outcomes_dropped",
        ];
        std::array::from_fn(|i| (names[i], a[i]))
    }
}

/// Published counters of one worker: written only by it (once per block), read by `stats()`.
pub(super) struct SharedCounters {
    pub(super) c: [AtomicU64; N_COUNTERS],
}

impl SharedCounters {
    pub(super) fn new() -> Self {
        SharedCounters { c: std::array::from_fn(|_| AtomicU64::new(0)) }
    }
    pub(super) fn publish(&self, local: &EngineCounters) {
        for (slot, v) in self.c.iter().zip(local.to_array()) {
            slot.store(v, Ordering::Release);
        }
    }
    pub(super) fn load(&self) -> EngineCounters {
        EngineCounters::from_array(std::array::from_fn(|i| self.c[i].load(Ordering::Acquire)))
    }
}

/// Percentiles of one latency histogram, in ns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

pub(super) fn summarize(h: &Histogram<u64>) -> LatencySummary {
    if h.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        count: h.len(),
        p50: h.value_at_quantile(0.5),
        p99: h.value_at_quantile(0.99),
        p999: h.value_at_quantile(0.999),
        max: h.max(),
        mean: h.mean(),
    }
}

pub(super) fn new_hist() -> Histogram<u64> {
    // 1 ns .. 1 hour, 3 significant digits
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("static histogram bounds")
}

/// A snapshot of the engine's state, see [`Engine::stats`].
#[derive(Debug, Clone, Default)]
pub struct EngineStats {
    pub counters: EngineCounters,
    pub workers: usize,
    pub submitted: u64,
    pub queued: u64,
    pub attached: usize,
    pub attach_records: u64,
    pub attach_invalid: u64,
    pub attach_errors: u64,
    pub attach_last_error: Option<String>,
    pub pinned: usize,
    pub pin_failures: usize,
    pub pin_error: Option<String>,
    pub last_bid_to_result: LatencySummary,
    pub open_to_close: LatencySummary,
}

pub(super) struct Hists {
    pub(super) last_bid_to_result: Histogram<u64>,
    pub(super) open_to_close: Histogram<u64>,
}

impl Engine {
    /// Counters (summed over the workers), pinning and latency percentiles.
    pub fn stats(&self) -> EngineStats {
        let mut sum = [0u64; N_COUNTERS];
        let mut l2r = new_hist();
        let mut o2c = new_hist();
        let mut queued = 0u64;
        let mut pinned = 0usize;
        for w in &self.shared.workers {
            for (s, v) in sum.iter_mut().zip(w.counters.load().to_array()) {
                *s += v;
            }
            let h = w.hists.lock().unwrap();
            let _ = l2r.add(&h.last_bid_to_result);
            let _ = o2c.add(&h.open_to_close);
            queued += w.queued.load(Ordering::Acquire) as u64;
            pinned += w.pinned.load(Ordering::Acquire) as usize;
        }
        let pin_error = self.shared.pin_error.lock().unwrap().clone();
        EngineStats {
            counters: EngineCounters::from_array(sum),
            workers: self.cfg.workers,
            submitted: self.intake.submitted.load(Ordering::Relaxed),
            attached: self.attached.lock().unwrap().len(),
            attach_records: self.shared.attach.records.load(Ordering::Acquire),
            attach_invalid: self.shared.attach.invalid.load(Ordering::Acquire),
            attach_errors: self.shared.attach.errors.load(Ordering::Acquire),
            attach_last_error: self.shared.attach.last_error.lock().unwrap().clone(),
            queued,
            pinned,
            pin_failures: self.shared.pin_failed.load(Ordering::Acquire),
            pin_error,
            last_bid_to_result: summarize(&l2r),
            open_to_close: summarize(&o2c),
        }
    }

    /// Resets both latency histograms (e.g. after a warm-up).
    pub fn reset_latency(&self) {
        for w in &self.shared.workers {
            let mut h = w.hists.lock().unwrap();
            h.last_bid_to_result.reset();
            h.open_to_close.reset();
        }
    }
}
