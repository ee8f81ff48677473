//! The fixed-size bid record that the queue, the ring and the engine carry, and the one rule
//! that decides whether a bid is valid.
//!
//! Its layout is mirrored exactly by `rtbcore.BID_DTYPE` (a numpy structured dtype), so a numpy
//! block of records is a `&[BidRecord]` without a copy.
//!
//! # The validation rule
//! Every entry point (queue, ring, engine, clearing) applies [`check_fields`] (or its
//! branch-free twin [`fields_ok`]):
//! - `auction_id` and `bidder_id` are at most [`MAX_ID`] (2^63 - 1): every record carries ids
//!   as u64, and `u64::MAX` means "no bidder" (no winner); the range also keeps ids exact
//!   for callers that hold them as signed 64-bit integers;
//! - `kind` is [`KIND_PLACE`], [`KIND_UPDATE`], [`KIND_CANCEL`] or [`KIND_DECLINE`];
//! - a place or update has a finite `price >= 0`, a finite `quality > 0` (clearing's own
//!   rule: a quality of 0 would make a bid's score 0 and its second-price charge a division by
//!   zero) and a finite adjusted bid `price × quality` (an infinite score could not be ranked
//!   or priced); a cancel's or a decline's price and quality are not read, so they are not
//!   checked.

use std::fmt;

/// A new bid from a bidder for an auction.
pub const KIND_PLACE: u8 = 0;
/// A bidder's new bid replaces its earlier one in the same auction.
pub const KIND_UPDATE: u8 = 1;
/// A bidder withdraws its bid from the auction.
pub const KIND_CANCEL: u8 = 2;
/// A bidder answers "no bid": it takes no part in the auction, but its answer counts toward
/// the auction's expected bids, so an auction whose bidders all answered closes at once.
pub const KIND_DECLINE: u8 = 3;
/// The largest auction or bidder id (`u64::MAX` is "no bidder"; ids fit an `int64` too).
pub const MAX_ID: u64 = i64::MAX as u64;

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

const _: () = assert!(BidRecord::SIZE == 48);

/// A field of a bid, as errors name it. The binding turns it into the Python argument name of
/// the call that failed (`prices[3]` for an array call, `records.price[3]` for records).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    AuctionId,
    BidderId,
    Price,
    Quality,
    Kind,
}

impl Field {
    /// The record's column name (`BID_DTYPE`).
    pub const fn name(self) -> &'static str {
        match self {
            Field::AuctionId => "auction_id",
            Field::BidderId => "bidder_id",
            Field::Price => "price",
            Field::Quality => "quality",
            Field::Kind => "kind",
        }
    }
}

/// A refused value, printed exactly: integers as integers (never through a float), floats in
/// scientific notation when they are very large or very small.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i128),
    Float(f64),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Float(v) if v.is_nan() => write!(f, "NaN"),
            Value::Float(v) if v.is_infinite() => {
                write!(f, "{}", if v > 0.0 { "inf" } else { "-inf" })
            }
            Value::Float(v) if v != 0.0 && !(1e-4..1e16).contains(&v.abs()) => write!(f, "{v:e}"),
            Value::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Why a bid was refused: which field, its value, and the rule it broke.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BadField {
    pub field: Field,
    pub value: Value,
    pub msg: &'static str,
}

/// The price rule: finite and >= 0 (false for NaN).
#[inline(always)]
#[allow(clippy::manual_range_contains)] // `&`, not `&&`: branch-free
pub fn price_ok(p: f64) -> bool {
    (p >= 0.0) & (p <= f64::MAX)
}

/// The quality rule: finite and > 0 (false for NaN).
#[inline(always)]
pub fn quality_ok(q: f64) -> bool {
    (q > 0.0) & (q <= f64::MAX)
}

/// The adjusted-bid rule: `price × quality` is finite (false for NaN). With a valid price and
/// quality this is the only way the two can still fail together: near `f64::MAX` the product
/// overflows to infinity.
#[inline(always)]
pub fn score_ok(price: f64, quality: f64) -> bool {
    price * quality <= f64::MAX
}

/// The rule of a priced bid (a place or an update), branch-free: [`price_ok`], [`quality_ok`]
/// and [`score_ok`]. A kernel may test the equivalent `price >= 0 & quality > 0 & price ×
/// quality <= f64::MAX`: a finite product of a non-negative and a positive factor implies that
/// both are finite.
#[inline(always)]
pub fn bid_ok(price: f64, quality: f64) -> bool {
    price_ok(price) & quality_ok(quality) & score_ok(price, quality)
}

/// [`bid_ok`] with the reason a bid fails it (the price is named first, then the quality; an
/// overflowing product names the price).
pub fn check_bid(price: f64, quality: f64) -> Result<(), BadField> {
    let bad = |field, value, msg| Err(BadField { field, value: Value::Float(value), msg });
    if !price_ok(price) {
        return bad(Field::Price, price, "must be finite and >= 0");
    }
    if !quality_ok(quality) {
        return bad(Field::Quality, quality, "must be finite and > 0");
    }
    if !score_ok(price, quality) {
        return bad(
            Field::Price,
            price,
            "price × quality overflows: the adjusted bid must be finite (at most 1.8e308)",
        );
    }
    Ok(())
}

/// The whole rule as one branch-free flag, for the fast path over a block. Signed ids, if a
/// caller has them, are passed as `id as u64`, so a negative one is above [`MAX_ID`] and fails.
#[inline(always)]
pub fn fields_ok(auction_id: u64, bidder_id: u64, price: f64, quality: f64, kind: u8) -> bool {
    let priced = bid_ok(price, quality);
    (auction_id <= MAX_ID)
        & (bidder_id <= MAX_ID)
        & (kind <= KIND_DECLINE)
        & (priced | (kind >= KIND_CANCEL))
}

/// The whole rule with the reason, for the error path (ids as given by the caller, signed or
/// not, so that the error shows them as they were sent).
pub fn check_fields(
    auction_id: i128,
    bidder_id: i128,
    price: f64,
    quality: f64,
    kind: u8,
) -> Result<(), BadField> {
    let bad = |field, value, msg| Err(BadField { field, value, msg });
    let id_ok = |v: i128| (0..=MAX_ID as i128).contains(&v);
    if !id_ok(auction_id) {
        return bad(Field::AuctionId, Value::Int(auction_id), "must be in 0..=2**63-1");
    }
    if !id_ok(bidder_id) {
        return bad(Field::BidderId, Value::Int(bidder_id), "must be in 0..=2**63-1");
    }
    if kind > KIND_DECLINE {
        return bad(
            Field::Kind,
            Value::Int(kind.into()),
            "must be 0 (place), 1 (update), 2 (cancel) or 3 (decline)",
        );
    }
    if kind < KIND_CANCEL {
        check_bid(price, quality)?;
    }
    Ok(())
}

impl BidRecord {
    pub const SIZE: usize = std::mem::size_of::<BidRecord>();

    pub fn new(auction_id: u64, bidder_id: u64, price: f64, quality: f64, kind: u8) -> Self {
        BidRecord { auction_id, bidder_id, price, quality, timestamp_ns: 0, kind, _pad: [0; 7] }
    }

    /// Whether the record passes the validation rule (see the module docs).
    #[inline(always)]
    pub fn is_valid(&self) -> bool {
        fields_ok(self.auction_id, self.bidder_id, self.price, self.quality, self.kind)
    }

    /// The validation rule with the reason a record fails it.
    pub fn validate(&self) -> Result<(), BadField> {
        check_fields(
            self.auction_id.into(),
            self.bidder_id.into(),
            self.price,
            self.quality,
            self.kind,
        )
    }
}

/// Checks a block of records; the error names the first bad one and its index.
pub fn validate_records(recs: &[BidRecord]) -> Result<(), crate::CoreError> {
    // One pass with no early exit on the fast path: the branch is almost never taken.
    if recs.iter().all(BidRecord::is_valid) {
        return Ok(());
    }
    for (index, r) in recs.iter().enumerate() {
        r.validate().map_err(|b| b.at(index))?;
    }
    Ok(())
}

impl BadField {
    /// The error for the bid at `index` of the caller's block.
    pub fn at(self, index: usize) -> crate::CoreError {
        crate::CoreError::InvalidBid { field: self.field, index, value: self.value, msg: self.msg }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_every_field() {
        let ok = BidRecord::new(1, 2, 0.0, 1.0, KIND_PLACE);
        assert!(ok.is_valid() && ok.validate().is_ok());
        let cases = [
            (BidRecord::new(1, 2, f64::NAN, 1.0, KIND_PLACE), Field::Price),
            (BidRecord::new(1, 2, -0.5, 1.0, KIND_UPDATE), Field::Price),
            (BidRecord::new(1, 2, 1.0, 0.0, KIND_PLACE), Field::Quality),
            (BidRecord::new(1, 2, 1.0, f64::INFINITY, KIND_PLACE), Field::Quality),
            (BidRecord::new(1, 2, 1.0, 1.0, 4), Field::Kind),
            (BidRecord::new(1, 2, 1e308, 2.0, KIND_PLACE), Field::Price),
            (BidRecord::new(1, 2, 2.0, f64::MAX, KIND_UPDATE), Field::Price),
            (BidRecord::new(1 << 63, 2, 1.0, 1.0, KIND_PLACE), Field::AuctionId),
            (BidRecord::new(1, u64::MAX, 1.0, 1.0, KIND_PLACE), Field::BidderId),
        ];
        for (r, field) in cases {
            assert!(!r.is_valid(), "{r:?}");
            assert_eq!(r.validate().unwrap_err().field, field, "{r:?}");
        }
        // a cancel's or a decline's price and quality are not read
        for kind in [KIND_CANCEL, KIND_DECLINE] {
            let c = BidRecord::new(1, 2, f64::NAN, 0.0, kind);
            assert!(c.is_valid() && c.validate().is_ok());
        }
    }

    #[test]
    fn values_print_exactly() {
        assert_eq!(Value::Int(1 << 63).to_string(), "9223372036854775808");
        assert_eq!(Value::Int(-1).to_string(), "-1");
        assert_eq!(Value::Float(1e308).to_string(), "1e308");
        assert_eq!(Value::Float(2.5).to_string(), "2.5");
        assert_eq!(Value::Float(f64::NAN).to_string(), "NaN");
        assert_eq!(Value::Float(f64::NEG_INFINITY).to_string(), "-inf");
    }
}
