//! The fixed-size bid record that the queue, the ring and the engine carry.
//!
//! Its layout is mirrored exactly by `rtbcore.BID_DTYPE` (a numpy structured dtype), so a numpy
//! block of records is a `&[BidRecord]` without a copy.

/// A new bid from a bidder for an auction.
pub const KIND_PLACE: u8 = 0;
/// A bidder's new bid replaces its earlier one in the same auction.
pub const KIND_UPDATE: u8 = 1;
/// A bidder withdraws its bid from the auction.
pub const KIND_CANCEL: u8 = 2;

/// One bid event, 48 bytes, `repr(C)` so that numpy's `BID_DTYPE` matches it field for field:
/// `auction_id u8`, `bidder_id u8`, `price f8`, `quality f8`, `timestamp_ns u8`, `kind u1`,
/// 7 bytes of padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BidRecord {
    pub auction_id: u64,
    pub bidder_id: u64,
    pub price: f64,
    pub quality: f64,
    pub timestamp_ns: u64,
    pub kind: u8,
    pub _pad: [u8; 7],
}

impl BidRecord {
    pub const SIZE: usize = std::mem::size_of::<BidRecord>();

    pub fn new(auction_id: u64, bidder_id: u64, price: f64, quality: f64, kind: u8) -> Self {
        BidRecord { auction_id, bidder_id, price, quality, timestamp_ns: 0, kind, _pad: [0; 7] }
    }
}

const _: () = assert!(BidRecord::SIZE == 48);
