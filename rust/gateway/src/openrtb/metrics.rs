//! The OpenRTB door's counters, rendered after the gateway's on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Request outcomes, in exposition order.
pub const OUTCOMES: [&str; 6] =
    ["bid", "no_bid", "invalid", "malformed", "too_large", "unavailable"];

/// Why a bidder's bid was not admitted, in exposition order.
pub const BID_REJECTIONS: [&str; 8] = [
    "unknown_imp",
    "invalid_price",
    "currency",
    "below_floor",
    "blocked",
    "deal",
    "duplicate",
    "engine",
];

/// A per-bidder counter series: name, help, the counter.
type Series = (&'static str, &'static str, fn(&BidderCounters) -> &AtomicU64);

#[derive(Default)]
pub struct BidderCounters {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub no_bids: AtomicU64,
    pub late: AtomicU64,
    pub errors: AtomicU64,
    pub invalid_responses: AtomicU64,
    pub bids: AtomicU64,
    rejected: [AtomicU64; 8],
}

impl BidderCounters {
    pub fn reject(&self, why: &str) {
        if let Some(i) = BID_REJECTIONS.iter().position(|w| *w == why) {
            self.rejected[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub struct OpenRtbMetrics {
    outcomes: [AtomicU64; 6],
    pub bidders: BTreeMap<String, BidderCounters>,
    pub notices_sent: AtomicU64,
    pub notices_retried: AtomicU64,
    pub notices_failed: AtomicU64,
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
        let series: [Series; 7] = [
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
                "rtbcore_openrtb_bidder_errors_total",
                "connection errors and non-200/204 statuses",
                |c| &c.errors,
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
    }
}
