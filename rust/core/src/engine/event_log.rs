//! The engine's event log: the [`EventSink`] every worker appends to and [`RingEventLog`], the
//! sink that writes a broadcast-mode `BidRing`.

use std::path::Path;

use crate::error::CoreError;
use crate::record::BidRecord;
use crate::ring::{BidRing, RingMode, RingOptions};

/// Event-log record kinds (carried in [`BidRecord::kind`], disjoint from the bid kinds).
pub const EV_AUCTION_STARTED: u8 = 16;
pub const EV_BID_PLACED: u8 = 17;
pub const EV_BID_UPDATED: u8 = 18;
pub const EV_BID_CANCELLED: u8 = 19;
pub const EV_AUCTION_WON: u8 = 20;
pub const EV_AUCTION_LOST: u8 = 21;

/// Receives the engine's event log: each worker appends its events in processing order (so
/// every auction's events are in order), one batch per processed block.
pub trait EventSink: Send + Sync {
    /// Appends the events in order; returns how many were taken (the rest are counted as
    /// `event_log_dropped`).
    fn append(&self, events: &[BidRecord]) -> Result<usize, CoreError>;
}

/// The engine's event log: a 48-byte [`BidRing`] (created in broadcast mode if the file does not
/// exist, so the engine never waits for a slow follower) receiving [`BidRecord`]-shaped events
/// with kinds [`EV_AUCTION_STARTED`] ..= [`EV_AUCTION_LOST`]:
///
/// | kind | bidder_id | price | quality | `_pad` |
/// |---|---|---|---|---|
/// | AuctionStarted | expected_bids | reserve | tmax_ns | |
/// | BidPlaced / BidUpdated / BidCancelled | bidder | price | quality | |
/// | AuctionWon | winner | price paid | min_to_win | [closed_by, slot] |
/// | AuctionLost | bidder (u64::MAX: no bids) | its price | its quality | [closed_by, 0xFF, loss reason] |
///
/// `timestamp_ns` is the submit stamp for bid events and the close time for outcomes. Each
/// auction's events are in order (one worker appends them, in processing order).
pub struct RingEventLog {
    pub(super) ring: BidRing,
}

impl RingEventLog {
    /// Opens the ring at `path`, or creates it (broadcast mode, `capacity` records).
    pub fn open_or_create(path: &Path, capacity: u64) -> Result<Self, CoreError> {
        if !path.exists() {
            let opts = RingOptions {
                capacity,
                record_size: BidRecord::SIZE,
                mode: RingMode::Broadcast,
                ..Default::default()
            };
            match BidRing::create(path, opts) {
                Ok(ring) => return Ok(RingEventLog { ring }),
                Err(e) if !path.exists() => return Err(e),
                Err(_) => {} // created by someone else meanwhile: open it
            }
        }
        Ok(RingEventLog { ring: BidRing::open(path, Some(BidRecord::SIZE))? })
    }
}

impl EventSink for RingEventLog {
    fn append(&self, events: &[BidRecord]) -> Result<usize, CoreError> {
        // SAFETY: BidRecord is repr(C), 48 bytes, every byte initialized (the pad is a field);
        // the byte view borrows `events` for the call only.
        let bytes = unsafe {
            std::slice::from_raw_parts(events.as_ptr().cast::<u8>(), std::mem::size_of_val(events))
        };
        self.ring.append_bytes(bytes)
    }
}
