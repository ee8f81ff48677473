//! The rows the engine hands out: one [`AuctionResult`] per auction (per slot for GSP / VCG) and
//! one [`RejectedBid`] per bid it did not apply, with their codes.

#[cfg(doc)]
use super::NO_BIDDER;

/// `closed_by`: the auction's deadline passed.
pub const CLOSED_BY_DEADLINE: u8 = 0;
/// `closed_by`: `expected_bids` distinct bidders answered.
pub const CLOSED_BY_ALL_BIDS: u8 = 1;
/// `closed_by`: the engine was closed with the auction still open.
pub const CLOSED_BY_SHUTDOWN: u8 = 2;

/// `RejectedBid::cause`: the auction had closed or the bid was stamped after its deadline.
pub const REJECT_LATE: u8 = 1;
/// `RejectedBid::cause`: no such auction was open (never opened, or closed too long ago).
pub const REJECT_UNKNOWN: u8 = 2;
/// OpenRTB loss reason 2: impression opportunity expired.
pub const LOSS_EXPIRED: i32 = 2;

/// One result row, `repr(C)` and mirrored by `rtbcore.RESULT_DTYPE` (56 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AuctionResult {
    pub auction_id: u64,
    /// The winning bidder, [`NO_BIDDER`] for no sale (or an empty slot).
    pub winner_bidder: u64,
    /// Price paid (per unit for a slot); 0.0 when there is no sale.
    pub price: f64,
    /// The winner's minimum bid to win (keep its slot); NaN when there is no sale.
    pub min_to_win: f64,
    pub open_to_close_ns: i64,
    /// From the submit timestamp of the auction's last applied event (its open if none) to the
    /// moment the result was published.
    pub last_bid_to_result_ns: i64,
    /// Live bids at close (after updates and cancels).
    pub n_bids: u32,
    /// Slot position (0 for single-slot mechanisms).
    pub slot: u16,
    pub closed_by: u8,
    pub _pad: u8,
}

const _: () = assert!(std::mem::size_of::<AuctionResult>() == 56);

/// A bid the engine did not apply, `repr(C)`, mirrored by `rtbcore.REJECTED_DTYPE` (40 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RejectedBid {
    pub auction_id: u64,
    pub bidder_id: u64,
    pub price: f64,
    pub timestamp_ns: u64,
    /// Always [`LOSS_EXPIRED`].
    pub loss_reason: i32,
    /// [`REJECT_LATE`] or [`REJECT_UNKNOWN`].
    pub cause: u8,
    /// The record's kind (place / update / cancel).
    pub kind: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<RejectedBid>() == 40);

/// `BidOutcome::slot` of a bid that won no slot.
pub const OUTCOME_NO_SLOT: u16 = u16::MAX;

/// The outcome of one live bid of a cleared auction, `repr(C)`, mirrored by
/// `rtbcore.OUTCOME_DTYPE` (48 bytes). Every live bid at close yields one row; an auction
/// without live bids yields none.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BidOutcome {
    pub auction_id: u64,
    pub bidder_id: u64,
    /// The bid's price.
    pub price: f64,
    /// What the bid pays (per unit of the slot factor for GSP / VCG); NaN when it lost.
    pub price_paid: f64,
    /// The lowest price that would have won (kept its slot); see `docs/engine.md`.
    pub min_to_win: f64,
    /// OpenRTB loss reason: 0 won, 3 invalid, 100 below the floor, 102 outbid.
    pub loss_reason: i32,
    /// The slot won ([`OUTCOME_NO_SLOT`] when lost; 0 for single-slot mechanisms).
    pub slot: u16,
    /// 1 when the bid won.
    pub won: u8,
    pub closed_by: u8,
}

const _: () = assert!(std::mem::size_of::<BidOutcome>() == 48);
