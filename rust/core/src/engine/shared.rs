//! State the engine handle, the intake and the workers share.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Mutex;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use super::ingress::AttachCounters;
use super::intake::CompactBid;
use super::rows::{AuctionResult, BidOutcome};
use super::stats::{Hists, SharedCounters};
use crate::record::BidRecord;

/// What a worker shares with the engine handle.
pub(super) struct WorkerShared {
    pub(super) queued: CachePadded<AtomicUsize>,
    pub(super) counters: SharedCounters,
    pub(super) hists: Mutex<Hists>,
    pub(super) pinned: AtomicBool,
}

pub(super) struct Shared {
    pub(super) workers: Vec<WorkerShared>,
    pub(super) free_bids: ArrayQueue<Vec<BidRecord>>,
    pub(super) free_compact: ArrayQueue<Vec<CompactBid>>,
    pub(super) free_results: ArrayQueue<Vec<AuctionResult>>,
    pub(super) free_outcomes: ArrayQueue<Vec<BidOutcome>>,
    /// Rejected rows held for `poll_rejected` (reserved by a worker when it makes one, released
    /// when one is polled): never more than `rejected_cap`.
    pub(super) rejected_outstanding: AtomicUsize,
    pub(super) rejected_cap: usize,
    /// Rejections dropped at the bound and not yet reported by `poll_rejected_batch`.
    pub(super) rejected_dropped: AtomicU64,
    /// Outcome rows held for `poll_outcomes` (reserved by a worker once per flush, released
    /// when polled): never more than `outcome_cap`.
    pub(super) outcome_outstanding: AtomicUsize,
    pub(super) outcome_cap: usize,
    /// Outcome rows dropped at the bound and not yet reported by `poll_outcomes_batch`.
    pub(super) outcome_dropped: AtomicU64,
    /// Worker threads that have not finished (their last rows are sent before it drops).
    pub(super) live_workers: AtomicUsize,
    pub(super) pin_error: Mutex<Option<String>>,
    pub(super) pin_failed: AtomicUsize,
    pub(super) attach: AttachCounters,
    /// Workers that hit an internal panic (never expected; reported by `stats` and `close`).
    pub(super) panicked: AtomicUsize,
}
