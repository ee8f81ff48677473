//! Counters and HDR latency histograms of one task, merged into the run's report.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Nanoseconds since the Unix epoch on `CLOCK_REALTIME`, the clock of the protocol's
/// `Timestamp`s. Server and load generator share the machine, so they read the same clock.
pub fn realtime_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0)
}

/// Latencies in nanoseconds, 3 significant digits, up to one minute.
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"))
    }
}

impl Latency {
    pub fn record(&mut self, d: Duration) {
        self.record_ns(d.as_nanos().min(u64::MAX as u128) as i64);
    }

    /// Negative values (a result that arrived before the instant it is measured from, possible
    /// when the server's clock reading and ours differ by scheduling) count as 0.
    pub fn record_ns(&mut self, ns: i64) {
        let _ = self.0.record(ns.max(1) as u64);
    }

    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    pub fn report(&self) -> Value {
        if self.0.is_empty() {
            return Value::Null;
        }
        let us = |q: f64| self.0.value_at_quantile(q) as f64 / 1e3;
        json!({
            "count": self.0.len(),
            "p50_us": us(0.5),
            "p99_us": us(0.99),
            "p999_us": us(0.999),
            "max_us": self.0.max() as f64 / 1e3,
            "mean_us": self.0.mean() / 1e3,
        })
    }
}

/// What one buyer (or the publisher) counted.
#[derive(Default)]
pub struct Tally {
    pub bids_sent: u64,
    pub frames_sent: u64,
    pub bids_acked: u64,
    pub bids_rejected: u64,
    /// Bids still without an answer when the buyer stopped reading.
    pub bids_unanswered: u64,
    pub won: u64,
    pub lost: u64,
    pub auctions_opened: u64,
    pub auctions_closed: u64,
    pub last_ack: Option<Instant>,
    pub last_result: Option<Instant>,
    pub place_to_accept: Latency,
    pub close_to_won: Latency,
    pub last_bid_to_won: Latency,
    pub reject_reasons: std::collections::BTreeMap<i32, u64>,
}

impl Tally {
    pub fn merge(&mut self, o: &Tally) {
        self.bids_sent += o.bids_sent;
        self.frames_sent += o.frames_sent;
        self.bids_acked += o.bids_acked;
        self.bids_rejected += o.bids_rejected;
        self.bids_unanswered += o.bids_unanswered;
        self.won += o.won;
        self.lost += o.lost;
        self.auctions_opened += o.auctions_opened;
        self.auctions_closed += o.auctions_closed;
        self.last_ack = self.last_ack.max(o.last_ack);
        self.last_result = self.last_result.max(o.last_result);
        self.place_to_accept.merge(&o.place_to_accept);
        self.close_to_won.merge(&o.close_to_won);
        self.last_bid_to_won.merge(&o.last_bid_to_won);
        for (k, v) in &o.reject_reasons {
            *self.reject_reasons.entry(*k).or_default() += v;
        }
    }
}

/// Resident set size of a process (`VmRSS` of /proc/PID/status), bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
