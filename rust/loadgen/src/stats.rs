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

/// CPU time (user + system) a process has used, seconds: this process when `pid` is None, else
/// `utime + stime` of /proc/PID/stat.
pub fn cpu_s(pid: Option<u32>) -> Option<f64> {
    match pid {
        None => {
            // SAFETY: getrusage only writes the struct it is given, which lives on this stack.
            let mut u: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: as above; RUSAGE_SELF is always valid.
            if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
                return None;
            }
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            Some(tv(u.ru_utime) + tv(u.ru_stime))
        }
        Some(pid) => {
            let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // the fields after the command name, which ends at the last ')'
            let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            // SAFETY: sysconf reads a constant of the system.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
            (hz > 0).then(|| ticks / hz as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_for_this_process_both_ways() {
        let me = Some(std::process::id());
        let (own0, proc0) = (cpu_s(None).unwrap(), cpu_s(me).unwrap());
        // spin until 0.3 s of CPU is used (however long a busy machine makes that take)
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut x = 0u64;
        while cpu_s(None).unwrap() - own0 < 0.3 && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let (own1, proc1) = (cpu_s(None).unwrap(), cpu_s(me).unwrap());
        assert!(own1 - own0 >= 0.3, "{own0} -> {own1}");
        // /proc counts in clock ticks (10 ms at 100 Hz)
        let by_pid = proc1 - proc0;
        assert!(by_pid > 0.2 && by_pid < own1 - own0 + 0.1, "{by_pid} vs {}", own1 - own0);
        assert_eq!(cpu_s(Some(u32::MAX)), None);
    }
}
