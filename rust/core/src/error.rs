//! The one error type of the core crate. The binding crate maps each variant to the Python
//! exception class defined in `rtbcore/errors.py` (`impl From<CoreError> for PyErr`).

use std::fmt;

use crate::record::{Field, Value};

/// Every way a core operation can refuse its input or fail. Messages name the field and the
/// index so a caller can find the bad value.
#[derive(Debug, Clone, PartialEq)]
pub enum CoreError {
    /// An argument had a bad value or shape: `field` names it, `msg` says what was wrong.
    InvalidInput { field: &'static str, msg: String },
    /// One entry of an array argument had a bad value: `field` names the argument, `index` the
    /// entry, `msg` the rule it broke.
    InvalidValue { field: &'static str, index: usize, value: Value, msg: &'static str },
    /// A bid failed the validation rule of [`crate::record`]; `index` is its position in the
    /// caller's block.
    InvalidBid { field: Field, index: usize, value: Value, msg: &'static str },
    /// A push/append found no room; the caller keeps the record.
    Full,
    /// The queue or ring was closed; no more input is taken.
    Closed,
    /// A reader was lapped by a broadcast writer and lost `lost` records.
    Overrun { lost: u64, next_seq: u64 },
    /// A ring file that is not ours, is truncated, or whose header is inconsistent.
    CorruptFile { path: String, msg: String },
    /// An operating-system error (open, mmap, futex ...), with what we were doing.
    Io { context: String, msg: String },
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::InvalidInput { field, msg } => write!(f, "{field}: {msg}"),
            CoreError::InvalidValue { field, index, value, msg } => {
                write!(f, "{field}[{index}] = {value}: {msg}")
            }
            CoreError::InvalidBid { field, index, value, msg } => {
                write!(f, "{}[{index}] = {value}: {msg}", field.name())
            }
            CoreError::Full => write!(f, "full: no room for the record"),
            CoreError::Closed => write!(f, "closed: no more input is accepted"),
            CoreError::Overrun { lost, next_seq } => write!(
                f,
                "reader overrun: {lost} records were overwritten before they were read; \
                 the oldest record still available is seq {next_seq}"
            ),
            CoreError::CorruptFile { path, msg } => write!(f, "{path}: {msg}"),
            CoreError::Io { context, msg } => write!(f, "{context}: {msg}"),
        }
    }
}

impl std::error::Error for CoreError {}

impl CoreError {
    pub fn invalid(field: &'static str, msg: impl Into<String>) -> Self {
        CoreError::InvalidInput { field, msg: msg.into() }
    }
}
