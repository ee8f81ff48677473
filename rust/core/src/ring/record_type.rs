//! What a ring's records are: a type tag and a record size, both written in the file's header
//! at creation, so that a reader expecting another type is refused instead of misreading.

use std::fmt;

use crate::error::CoreError;
use crate::record::BidRecord;

/// Longest type tag, in bytes.
pub const MAX_TAG_LEN: usize = 256;
/// Largest record, in bytes.
pub const MAX_RECORD_SIZE: usize = 1 << 20;

/// A record type: a tag of 1 ..= [`MAX_TAG_LEN`] printable ASCII characters and a record size
/// (a positive multiple of 8, at most [`MAX_RECORD_SIZE`]).
///
/// The tags `rtbcore.*` belong to this library: [`RecordType::BID`] for [`BidRecord`]s and
/// [`RecordType::EVENT`] for the engine's event records. A ring created without a type holds
/// [`RecordType::BID`] when its records are 48 bytes, else [`RecordType::raw`] of their size.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RecordType {
    size: u32,
    len: u16,
    tag: [u8; MAX_TAG_LEN],
}

const fn valid_char(b: u8) -> bool {
    b >= 0x20 && b < 0x7f
}

impl RecordType {
    /// 48-byte [`BidRecord`]s.
    pub const BID: RecordType = RecordType::constant("rtbcore.bid", BidRecord::SIZE);
    /// The event records of the engine's event log (`EventRecord`, 88 bytes).
    pub const EVENT: RecordType =
        RecordType::constant("rtbcore.event", crate::engine::EventRecord::SIZE);
    /// The tag of records with no declared type.
    pub const RAW_TAG: &'static str = "raw";

    const fn constant(tag: &str, size: usize) -> RecordType {
        let b = tag.as_bytes();
        assert!(!b.is_empty() && b.len() <= MAX_TAG_LEN && size % 8 == 0 && size > 0);
        let mut out = [0u8; MAX_TAG_LEN];
        let mut i = 0;
        while i < b.len() {
            assert!(valid_char(b[i]));
            out[i] = b[i];
            i += 1;
        }
        RecordType { size: size as u32, len: b.len() as u16, tag: out }
    }

    /// A record type named `tag` whose records are `size` bytes.
    pub fn new(tag: &str, size: usize) -> Result<Self, CoreError> {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.bytes().all(valid_char) {
            return Err(CoreError::invalid(
                "record_type",
                format!("a type tag is 1..={MAX_TAG_LEN} printable ASCII characters, got {tag:?}"),
            ));
        }
        Self::check_size(size)?;
        let mut out = [0u8; MAX_TAG_LEN];
        out[..tag.len()].copy_from_slice(tag.as_bytes());
        Ok(RecordType { size: size as u32, len: tag.len() as u16, tag: out })
    }

    /// Records of `size` bytes with no declared type (tag [`RecordType::RAW_TAG`]).
    pub fn raw(size: usize) -> Result<Self, CoreError> {
        Self::new(Self::RAW_TAG, size)
    }

    /// The type a ring of `size`-byte records gets when its creator names none.
    pub fn default_for(size: usize) -> Result<Self, CoreError> {
        if size == BidRecord::SIZE {
            Ok(Self::BID)
        } else {
            Self::raw(size)
        }
    }

    pub(super) fn check_size(size: usize) -> Result<(), CoreError> {
        if size == 0 || size % 8 != 0 || size > MAX_RECORD_SIZE {
            return Err(CoreError::invalid(
                "record_size",
                format!("must be a positive multiple of 8 up to 1 MiB, got {size}"),
            ));
        }
        Ok(())
    }

    /// The tag.
    pub fn tag(&self) -> &str {
        // Only printable ASCII is ever stored (checked by every constructor).
        std::str::from_utf8(&self.tag[..self.len as usize]).unwrap_or("")
    }

    /// Bytes per record.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The tag as the header stores it: zero-padded to [`MAX_TAG_LEN`] bytes.
    pub(super) fn tag_bytes(&self) -> &[u8; MAX_TAG_LEN] {
        &self.tag
    }

    /// Reads a stored tag back; None if it is not a valid tag of `len` bytes.
    pub(super) fn from_stored(bytes: &[u8], len: usize, size: usize) -> Option<Self> {
        if len == 0 || len > MAX_TAG_LEN || bytes.len() != MAX_TAG_LEN {
            return None;
        }
        if bytes[len..].iter().any(|b| *b != 0) {
            return None;
        }
        let tag = std::str::from_utf8(&bytes[..len]).ok()?;
        Self::new(tag, size).ok()
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({} bytes)", self.tag(), self.size)
    }
}

impl fmt::Debug for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecordType({self})")
    }
}
