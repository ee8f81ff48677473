//! The OpenRTB door's counters, rendered after the gateway's on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Histogram;

/// Request outcomes, in exposition order.
pub const OUTCOMES: [&str; 7] =
    ["bid", "no_bid", "invalid", "malformed", "too_large", "unsupported_encoding", "unavailable"];

/// Why a bidder's bid was not admitted, in exposition order.
pub const BID_REJECTIONS: [&str; 9] = [
    "unknown_imp",
    "invalid_price",
    "currency",
    "below_floor",
    "blocked",
    "seat",
    "deal",
    "duplicate",
    "engine",
];

/// Why a call to a bidder failed (`kind` of `rtbcore_openrtb_bidder_errors_total`), in
/// exposition order.
pub const ERROR_KINDS: [&str; 8] =
    ["timeout", "connect", "tls", "http_status", "too_large", "bad_encoding", "bad_body", "io"];

/// What a request's `wseat`/`bseat` (or a deal's `wseat`) kept out (`what` of
/// `rtbcore_openrtb_seat_excluded_total`).
pub const SEAT_EXCLUSIONS: [&str; 4] =
    ["bidder_bid", "bidder_deal_bid", "buyer_announcement", "buyer_bid"];

/// Counts of [`SEAT_EXCLUSIONS`]; shared with the engine's auctions, which refuse excluded
/// WebSocket buyers.
#[derive(Default)]
pub struct SeatExcluded([AtomicU64; 4]);

impl SeatExcluded {
    pub fn count(&self, what: &str) {
        if let Some(i) = SEAT_EXCLUSIONS.iter().position(|w| *w == what) {
            self.0[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, what: &str) -> u64 {
        SEAT_EXCLUSIONS
            .iter()
            .position(|w| *w == what)
            .map_or(0, |i| self.0[i].load(Ordering::Relaxed))
    }
}

/// A per-bidder counter series: name, help, the counter.
type Series = (&'static str, &'static str, fn(&BidderCounters) -> &AtomicU64);

#[derive(Default)]
pub struct BidderCounters {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub no_bids: AtomicU64,
    pub late: AtomicU64,
    errors: [AtomicU64; 8],
    pub invalid_responses: AtomicU64,
    pub bids: AtomicU64,
    rejected: [AtomicU64; 9],
}

impl BidderCounters {
    /// Counts a failed call by its kind (one of [`ERROR_KINDS`]).
    pub fn error(&self, kind: &str) {
        if let Some(i) = ERROR_KINDS.iter().position(|k| *k == kind) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn reject(&self, why: &str) {
        if let Some(i) = BID_REJECTIONS.iter().position(|w| *w == why) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub struct OpenRtbMetrics {
    outcomes: [AtomicU64; 7],
    pub bidders: BTreeMap<String, BidderCounters>,
    pub notices_sent: AtomicU64,
    pub notices_retried: AtomicU64,
    pub notices_failed: AtomicU64,
    pub seat_excluded: std::sync::Arc<SeatExcluded>,
    /// WebSocket buyers' bids left out of an answer: their ad is on the request's block lists.
    pub buyer_bids_blocked: AtomicU64,
    /// Per answered request (200 or 204): its time in the door less the wait for its bidders
    /// and buyers.
    pub added: Histogram,
}

impl OpenRtbMetrics {
    pub fn new<'a>(bidders: impl Iterator<Item = &'a str>) -> OpenRtbMetrics {
        OpenRtbMetrics {
            bidders: bidders.map(|b| (b.to_string(), BidderCounters::default())).collect(),
            ..Default::default()
        }
    }

    pub fn outcome(&self, o: &str) {
        if let Some(i) = OUTCOMES.iter().position(|x| *x == o) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ =
            writeln!(out, "# HELP rtbcore_openrtb_requests_total OpenRTB bid requests by outcome");
        let _ = writeln!(out, "# TYPE rtbcore_openrtb_requests_total counter");
        for (i, o) in OUTCOMES.iter().enumerate() {
            let _ = writeln!(
                out,
                "rtbcore_openrtb_requests_total{{outcome=\"{o}\"}} {}",
                v(&self.outcomes[i])
            );
        }
        let series: [Series; 6] = [
            ("rtbcore_openrtb_bidder_requests_total", "bid requests sent to a bidder", |c| {
                &c.requests
            }),
            ("rtbcore_openrtb_bidder_responses_total", "bid responses in time", |c| &c.responses),
            ("rtbcore_openrtb_bidder_no_bids_total", "empty answers (204 or no bids)", |c| {
                &c.no_bids
            }),
            (
                "rtbcore_openrtb_bidder_late_total",
                "answers dropped for arriving after the bidder's time",
                |c| &c.late,
            ),
            (
                "rtbcore_openrtb_bidder_invalid_responses_total",
                "bodies that are not a BidResponse for this request",
                |c| &c.invalid_responses,
            ),
            ("rtbcore_openrtb_bidder_bids_total", "bids admitted to the auction", |c| &c.bids),
        ];
        for (name, help, f) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (b, c) in &self.bidders {
                let _ = writeln!(out, "{name}{{bidder=\"{b}\"}} {}", v(f(c)));
            }
        }
        let name = "rtbcore_openrtb_bidder_errors_total";
        let _ =
            writeln!(out, "# HELP {name} failed calls to a bidder, by kind\n# TYPE {name} counter");
        for (b, c) in &self.bidders {
            for (i, k) in ERROR_KINDS.iter().enumerate() {
                let _ = writeln!(out, "{name}{{bidder=\"{b}\",kind=\"{k}\"}} {}", v(&c.errors[i]));
            }
        }
        let name = "rtbcore_openrtb_seat_excluded_total";
        let _ = writeln!(
            out,
            "# HELP {name} bids and announcements kept out by a request's wseat or bseat\n# TYPE {name} counter"
        );
        for w in SEAT_EXCLUSIONS {
            let _ = writeln!(out, "{name}{{what=\"{w}\"}} {}", self.seat_excluded.get(w));
        }
        let name = "rtbcore_openrtb_buyer_bids_blocked_total";
        let _ = writeln!(
            out,
            "# HELP {name} WebSocket buyers' bids left out: their ad is on the request's bcat or badv\n# TYPE {name} counter\n{name} {}",
            v(&self.buyer_bids_blocked)
        );
        let name = "rtbcore_openrtb_bidder_bids_rejected_total";
        let _ = writeln!(out, "# HELP {name} bids not admitted, by reason\n# TYPE {name} counter");
        for (b, c) in &self.bidders {
            for (i, r) in BID_REJECTIONS.iter().enumerate() {
                let _ =
                    writeln!(out, "{name}{{bidder=\"{b}\",reason=\"{r}\"}} {}", v(&c.rejected[i]));
            }
        }
        let name = "rtbcore_openrtb_notices_total";
        let _ =
            writeln!(out, "# HELP {name} win and loss notices by result\n# TYPE {name} counter");
        let _ = writeln!(out, "{name}{{result=\"sent\"}} {}", v(&self.notices_sent));
        let _ = writeln!(out, "{name}{{result=\"retried\"}} {}", v(&self.notices_retried));
        let _ = writeln!(out, "{name}{{result=\"failed\"}} {}", v(&self.notices_failed));
        self.added.render(
            out,
            "rtbcore_openrtb_added_seconds",
            "the door's own time per answered request: from the request read to the answer, \
             less the wait for the HTTP bidders' answers and the auctions' close",
        );
    }
}
