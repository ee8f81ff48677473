//! The engine's event log: the [`EventRecord`] (one meaning per field), the [`EventSink`] every
//! worker appends to, and [`RingEventLog`], the sink that writes a broadcast-mode `BidRing`.

use std::path::Path;

use crate::error::CoreError;
use crate::record::BidRecord;
use crate::ring::{BidRing, RecordType, RingMode, RingOptions};

/// Event kinds ([`EventRecord::kind`]; disjoint from the bid kinds).
pub const EV_AUCTION_STARTED: u8 = 16;
pub const EV_BID_PLACED: u8 = 17;
pub const EV_BID_UPDATED: u8 = 18;
pub const EV_BID_CANCELLED: u8 = 19;
pub const EV_AUCTION_WON: u8 = 20;
pub const EV_AUCTION_LOST: u8 = 21;
pub const EV_BID_DECLINED: u8 = 22;

/// [`EventRecord::bidder_id`] of an event about no bidder.
pub const NO_BIDDER: u64 = u64::MAX;
/// [`EventRecord::slot`] of an event about no slot.
pub const NO_SLOT: u16 = u16::MAX;
/// [`EventRecord::closed_by`] of an event that is not an outcome.
pub const NOT_CLOSED: u8 = u8::MAX;
/// [`EventRecord::loss_reason`] of an event that is not an outcome.
pub const NO_LOSS_REASON: i32 = -1;

/// One event of the log, 88 bytes, `repr(C)`, mirrored field for field by `rtbcore.EVENT_DTYPE`.
///
/// Every field has one meaning, whatever the kind; a field that does not apply to a kind holds
/// its "none" value: NaN for a float, 0 for `tmax_ns` / `expected_bids`, [`NO_BIDDER`],
/// [`NO_SLOT`], [`NOT_CLOSED`], [`NO_LOSS_REASON`].
///
/// | field | AuctionStarted | BidPlaced / BidUpdated / BidCancelled / BidDeclined | AuctionWon | AuctionLost |
/// |---|---|---|---|---|
/// | `bidder_id` | none | the bidder | the winner | the loser ([`NO_BIDDER`]: no bids at all) |
/// | `timestamp_ns` | open time | submit stamp | close time | close time |
/// | `price`, `quality` | none | the bid (none for BidDeclined) | the winning bid | the losing bid |
/// | `clearing_price`, `min_to_win` | none | none | price paid, min to win | none |
/// | `reserve` | the auction's | none | the auction's | the auction's |
/// | `tmax_ns`, `expected_bids` | the auction's | none | none | none |
/// | `loss_reason` | none | none | 0 (won) | OpenRTB loss reason |
/// | `slot` | none | none | the slot won | none |
/// | `closed_by` | none | none | how it closed | how it closed |
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventRecord {
    pub auction_id: u64,
    /// The bidder the event is about.
    pub bidder_id: u64,
    /// When it happened (ns, `CLOCK_MONOTONIC`).
    pub timestamp_ns: u64,
    /// The bid's price.
    pub price: f64,
    /// The bid's quality.
    pub quality: f64,
    /// The price the winner pays (per unit for a slot).
    pub clearing_price: f64,
    /// The winner's minimum bid to win (to keep its slot).
    pub min_to_win: f64,
    /// The auction's reserve.
    pub reserve: f64,
    /// The auction's time from open to deadline, ns.
    pub tmax_ns: u64,
    /// Distinct bidders that close the auction (0: only its deadline does).
    pub expected_bids: u32,
    /// OpenRTB loss reason of the bid (0 for the winner).
    pub loss_reason: i32,
    /// The slot won (0 for single-slot mechanisms).
    pub slot: u16,
    /// One of [`EV_AUCTION_STARTED`] ..= [`EV_BID_DECLINED`].
    pub kind: u8,
    /// How the auction closed (`CLOSED_BY_*`).
    pub closed_by: u8,
    pub _pad: [u8; 4],
}

const _: () = assert!(EventRecord::SIZE == 88);

impl EventRecord {
    pub const SIZE: usize = std::mem::size_of::<EventRecord>();

    /// An event of `kind` about `auction_id` at `timestamp_ns`, every other field "none".
    pub fn new(kind: u8, auction_id: u64, timestamp_ns: u64) -> Self {
        EventRecord {
            auction_id,
            bidder_id: NO_BIDDER,
            timestamp_ns,
            price: f64::NAN,
            quality: f64::NAN,
            clearing_price: f64::NAN,
            min_to_win: f64::NAN,
            reserve: f64::NAN,
            tmax_ns: 0,
            expected_bids: 0,
            loss_reason: NO_LOSS_REASON,
            slot: NO_SLOT,
            kind,
            closed_by: NOT_CLOSED,
            _pad: [0; 4],
        }
    }

    /// A bid event (placed / updated / cancelled) for the bid `r` as applied.
    pub fn bid(kind: u8, r: &BidRecord) -> Self {
        EventRecord {
            bidder_id: r.bidder_id,
            price: r.price,
            quality: r.quality,
            ..EventRecord::new(kind, r.auction_id, r.timestamp_ns)
        }
    }
}

/// Receives the engine's event log: each worker appends its events in processing order (so
/// every auction's events are in order), one batch per processed block.
pub trait EventSink: Send + Sync {
    /// Appends the events in order; returns how many were taken (the rest are counted as
    /// `event_log_dropped`).
    fn append(&self, events: &[EventRecord]) -> Result<usize, CoreError>;
}

/// The engine's event log: a [`BidRing`] of [`EventRecord`]s, created in broadcast mode if the
/// file does not exist, so the engine never waits for a slow follower. Each auction's events
/// are in order (one worker appends them, in processing order).
pub struct RingEventLog {
    pub(super) ring: BidRing,
}

impl RingEventLog {
    /// Opens the ring at `path`, or creates it (broadcast mode, `capacity` records).
    pub fn open_or_create(path: &Path, capacity: u64) -> Result<Self, CoreError> {
        if !path.exists() {
            let opts = RingOptions {
                capacity,
                record_size: EventRecord::SIZE,
                mode: RingMode::Broadcast,
                record_type: Some(RecordType::EVENT),
                ..Default::default()
            };
            match BidRing::create(path, opts) {
                Ok(ring) => return Ok(RingEventLog { ring }),
                Err(e) if !path.exists() => return Err(e),
                Err(_) => {} // created by someone else meanwhile: open it
            }
        }
        Ok(RingEventLog { ring: BidRing::open_as(path, RecordType::EVENT)? })
    }
}

impl EventSink for RingEventLog {
    fn append(&self, events: &[EventRecord]) -> Result<usize, CoreError> {
        // SAFETY: EventRecord is repr(C) with no implicit padding (88 bytes asserted, the pad is
        // a field), so every byte is initialized; the byte view borrows `events` for the call.
        let bytes = unsafe {
            std::slice::from_raw_parts(events.as_ptr().cast::<u8>(), std::mem::size_of_val(events))
        };
        self.ring.append_bytes(bytes)
    }
}
