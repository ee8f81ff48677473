//! The gateway's counters and their Prometheus text exposition (`/metrics`). Names follow
//! `rtbcore_<area>_<what>_<unit>`; labelled counters (rejections by reason, closes by code) keep
//! one atomic per label value.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use rtbcore_proto::v1::RejectReason;

/// Close codes the server sends, in exposition order.
pub const CLOSE_CODES: [u16; 11] =
    [1000, 1001, 1002, 1003, 1009, 4001, 4002, 4003, 4008, 4009, 4029];

const REASONS: [RejectReason; 19] = [
    RejectReason::Unspecified,
    RejectReason::InternalError,
    RejectReason::AuctionClosed,
    RejectReason::InvalidBid,
    RejectReason::UnknownAuction,
    RejectReason::BelowFloor,
    RejectReason::NotAuthenticated,
    RejectReason::Forbidden,
    RejectReason::Malformed,
    RejectReason::UnknownMessage,
    RejectReason::InvalidAmount,
    RejectReason::UnknownBid,
    RejectReason::RateLimited,
    RejectReason::CurrencyMismatch,
    RejectReason::AlreadyBid,
    RejectReason::InvalidField,
    RejectReason::ShuttingDown,
    RejectReason::DuplicateAuction,
    RejectReason::TooManyMessages,
];

fn reason_index(r: RejectReason) -> usize {
    REASONS.iter().position(|x| *x == r).unwrap_or(0)
}

#[derive(Default)]
pub struct Metrics {
    pub connections_open: AtomicI64,
    pub connections_total: AtomicU64,
    pub auth_ok: AtomicU64,
    pub auth_failed: AtomicU64,
    pub frames_in: AtomicU64,
    pub messages_in: AtomicU64,
    pub frames_out: AtomicU64,
    pub events_out: AtomicU64,
    pub events_logged: AtomicU64,
    pub events_replayed: AtomicU64,
    pub bids_accepted: AtomicU64,
    pub bids_updated: AtomicU64,
    pub bids_cancelled: AtomicU64,
    pub bids_expired: AtomicU64,
    pub engine_records: AtomicU64,
    pub auctions_opened: AtomicU64,
    pub auctions_closed: AtomicU64,
    pub auctions_open: AtomicI64,
    pub results_dropped: AtomicU64,
    pub idempotent_replays: AtomicU64,
    pub sse_clients: AtomicI64,
    pub replay_fallbacks: AtomicU64,
    pub sse_auth_limited: AtomicU64,
    pub bids_late: AtomicU64,
    /// For auctions closed at their deadline: from the deadline to their results queued to
    /// the bidders' connections.
    pub close_delay: Histogram,
    rejections: [AtomicU64; 19],
    closes: [AtomicU64; 11],
}

/// Upper bounds of the latency histograms' buckets, seconds (then +Inf).
pub const LATENCY_BUCKETS: [f64; 12] =
    [0.0005, 0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25];

/// A latency as a Prometheus histogram (buckets [`LATENCY_BUCKETS`]).
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; 13],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|b| s <= *b).unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            match LATENCY_BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cum}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
                }
            }
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// One unlabelled series in Prometheus text: a counter when its name ends in `_total`, else a
/// gauge.
pub fn write_metric(out: &mut String, name: &str, help: &str, v: impl std::fmt::Display) {
    let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
}

impl Metrics {
    pub fn reject(&self, r: RejectReason) {
        self.rejections[reason_index(r)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejections(&self, r: RejectReason) -> u64 {
        self.rejections[reason_index(r)].load(Ordering::Relaxed)
    }

    pub fn close(&self, code: u16) {
        if let Some(i) = CLOSE_CODES.iter().position(|c| *c == code) {
            self.closes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn closes(&self, code: u16) -> u64 {
        CLOSE_CODES
            .iter()
            .position(|c| *c == code)
            .map_or(0, |i| self.closes[i].load(Ordering::Relaxed))
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self, extra: &[(&str, &str, f64)]) -> String {
        let mut o = String::with_capacity(4096);
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let counters: [(&str, &str, f64); 22] = [
            (
                "rtbcore_gateway_connections_total",
                "WebSocket connections accepted",
                r(&self.connections_total),
            ),
            ("rtbcore_gateway_auth_ok_total", "successful authentications", r(&self.auth_ok)),
            ("rtbcore_gateway_auth_failed_total", "failed authentications", r(&self.auth_failed)),
            (
                "rtbcore_gateway_bids_late_total",
                "accepted bids the engine stamped past their auction's deadline (lost, reason 2)",
                r(&self.bids_late),
            ),
            (
                "rtbcore_gateway_sse_auth_limited_total",
                "event-stream requests refused (429) after too many failed logins from the address",
                r(&self.sse_auth_limited),
            ),
            ("rtbcore_gateway_frames_received_total", "client frames received", r(&self.frames_in)),
            (
                "rtbcore_gateway_messages_received_total",
                "client messages received",
                r(&self.messages_in),
            ),
            ("rtbcore_gateway_frames_sent_total", "server frames sent", r(&self.frames_out)),
            (
                "rtbcore_gateway_events_sent_total",
                "events sent (live and replayed)",
                r(&self.events_out),
            ),
            (
                "rtbcore_gateway_events_logged_total",
                "events appended to the event log",
                r(&self.events_logged),
            ),
            (
                "rtbcore_gateway_events_replayed_total",
                "events sent from the log by replay",
                r(&self.events_replayed),
            ),
            (
                "rtbcore_gateway_replay_fallbacks_total",
                "replays read from this node's log because the Redis mirror did not answer",
                r(&self.replay_fallbacks),
            ),
            ("rtbcore_gateway_bids_accepted_total", "PlaceBid accepted", r(&self.bids_accepted)),
            ("rtbcore_gateway_bids_updated_total", "UpdateBid applied", r(&self.bids_updated)),
            ("rtbcore_gateway_bids_cancelled_total", "CancelBid applied", r(&self.bids_cancelled)),
            (
                "rtbcore_gateway_bids_expired_total",
                "bids withdrawn by their ttl",
                r(&self.bids_expired),
            ),
            (
                "rtbcore_gateway_engine_records_total",
                "bid records submitted to the engine",
                r(&self.engine_records),
            ),
            ("rtbcore_gateway_auctions_opened_total", "auctions opened", r(&self.auctions_opened)),
            ("rtbcore_gateway_auctions_closed_total", "auctions closed", r(&self.auctions_closed)),
            (
                "rtbcore_gateway_results_dropped_total",
                "results not taken by the embedding consumer in time",
                r(&self.results_dropped),
            ),
            (
                "rtbcore_gateway_idempotent_replays_total",
                "requests answered from the idempotency window",
                r(&self.idempotent_replays),
            ),
            (
                "rtbcore_gateway_sse_clients",
                "Server-Sent Events clients connected",
                self.sse_clients.load(Ordering::Relaxed) as f64,
            ),
        ];
        for (name, help, v) in counters {
            write_metric(&mut o, name, help, v);
        }
        let gauges = [
            (
                "rtbcore_gateway_connections_open",
                "WebSocket connections open",
                self.connections_open.load(Ordering::Relaxed),
            ),
            (
                "rtbcore_gateway_auctions_open",
                "auctions open",
                self.auctions_open.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            write_metric(&mut o, name, help, v);
        }
        let name = "rtbcore_gateway_rejections_total";
        let _ = writeln!(o, "# HELP {name} messages refused, by reason\n# TYPE {name} counter");
        for (i, reason) in REASONS.iter().enumerate() {
            let _ = writeln!(
                o,
                "{name}{{reason=\"{}\"}} {}",
                reason.as_str_name(),
                self.rejections[i].load(Ordering::Relaxed)
            );
        }
        let name = "rtbcore_gateway_closes_total";
        let _ = writeln!(
            o,
            "# HELP {name} connections closed by the server, by close code\n# TYPE {name} counter"
        );
        for (i, code) in CLOSE_CODES.iter().enumerate() {
            let _ =
                writeln!(o, "{name}{{code=\"{code}\"}} {}", self.closes[i].load(Ordering::Relaxed));
        }
        self.close_delay.render(
            &mut o,
            "rtbcore_gateway_close_delay_seconds",
            "auctions closed at their deadline: from the deadline to their results queued to the \
             bidders' connections",
        );
        for (name, help, v) in extra {
            write_metric(&mut o, name, help, v);
        }
        o
    }
}
