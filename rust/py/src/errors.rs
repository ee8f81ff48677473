//! Maps the core's one error enum to the Python exception classes, which are defined once in
//! `rtbcore/errors.py` and imported here.

use pyo3::prelude::*;
use rtbcore_core::record::Field;
use rtbcore_core::CoreError;

pyo3::import_exception!(rtbcore.errors, InvalidInputError);
pyo3::import_exception!(rtbcore.errors, InvalidBidError);
pyo3::import_exception!(rtbcore.errors, QueueFull);
pyo3::import_exception!(rtbcore.errors, QueueClosed);
pyo3::import_exception!(rtbcore.errors, RingOverrun);
pyo3::import_exception!(rtbcore.errors, RingCorrupt);
pyo3::import_exception!(rtbcore.errors, RtbcoreOSError);

/// Converts a core error to the matching `rtbcore.errors` exception.
pub(crate) fn to_pyerr(e: CoreError) -> PyErr {
    let msg = e.to_string();
    match e {
        CoreError::InvalidInput { .. } | CoreError::InvalidValue { .. } => {
            InvalidInputError::new_err(msg)
        }
        CoreError::InvalidBid { .. } => InvalidBidError::new_err(msg),
        CoreError::Full => QueueFull::new_err(msg),
        CoreError::Closed => QueueClosed::new_err(msg),
        CoreError::Overrun { lost, next_seq } => RingOverrun::new_err((msg, lost, next_seq)),
        CoreError::CorruptFile { .. } => RingCorrupt::new_err(msg),
        CoreError::Io { .. } => RtbcoreOSError::new_err(msg),
    }
}

/// How a Python call names the bid fields it took, so that an error names what the caller
/// passed: the one place where the core's [`Field`] becomes a Python name.
#[derive(Clone, Copy)]
pub(crate) enum BidNames {
    /// Array arguments: `prices[3]`, `quality[3]`, `kinds[3]`, `auction_ids[3]`.
    Arrays,
    /// A `records` argument of `BID_DTYPE`: `records.price[3]`.
    Records,
    /// Scalar arguments of a one-bid call: `price = nan: ...`.
    Scalars,
}

fn array_name(f: Field) -> &'static str {
    match f {
        Field::AuctionId => "auction_ids",
        Field::BidderId => "bidder_ids",
        Field::Price => "prices",
        Field::Quality => "quality",
        Field::Kind => "kinds",
    }
}

/// [`to_pyerr`], with a bid error's field named as the call's arguments name it.
pub(crate) fn bid_pyerr(e: CoreError, names: BidNames) -> PyErr {
    match e {
        CoreError::InvalidBid { field, index, value, msg } => {
            InvalidBidError::new_err(match names {
                BidNames::Arrays => format!("{}[{index}] = {value}: {msg}", array_name(field)),
                BidNames::Records => format!("records.{}[{index}] = {value}: {msg}", field.name()),
                BidNames::Scalars => format!("{} = {value}: {msg}", field.name()),
            })
        }
        e => to_pyerr(e),
    }
}
