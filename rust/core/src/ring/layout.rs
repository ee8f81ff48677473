//! The on-disk format of a ring file (version 2).
//!
//! ```text
//! offset  size  field (little-endian)            | offset  size  field
//! 0       8     magic "RTBRING\0"               | 128     8     tail (next sequence number)
//! 8       4     format version (2)               | 192/196 4+4   data futex / its waiters
//! 12      4     record size (bytes)              | 256/260 4+4   space futex / its waiters
//! 16      8     capacity (records, power of 2)   | 320     4     closed flag
//! 24      4     mode (0 backpressure, 1 bcast)   | 324     4     reader-set epoch
//! 28      4     max readers                      | 384     8     abandoned slots
//! 32      8     offset of the slot stamps        | 392     8     lost writes
//! 40      8     offset of the records            | 512     256   record type tag (ASCII, 0-padded)
//! 48      8     file length                      | 1024    64*n  reader entries: state u32,
//! 56      8     ring id (random, set at create)  |               cursor u64 at +8, name at +16
//! 64      4     record type tag length           | 8192    8*cap slot stamps, then the records
//! 72      8     FNV-1a of bytes 0..72 and the    |               from the next page boundary
//!               256 tag bytes                    |
//! ```
//!
//! The left column and the tag are the *static* header, written once at creation and covered
//! by the checksum; the rest is shared state that changes while the ring is used.

use std::time::Duration;

use super::record_type::{RecordType, MAX_TAG_LEN};
use super::RingMode;

/// File magic: "RTBRING" plus a NUL.
pub const RING_MAGIC: [u8; 8] = *b"RTBRING\0";
/// On-disk format version.
pub const RING_VERSION: u32 = 2;
/// Largest ring (records).
pub const MAX_RING_CAPACITY: u64 = 1 << 32;
/// Largest number of named readers a ring can hold (fixed at creation).
pub const MAX_READERS_LIMIT: u32 = 64;
/// Longest reader name, in UTF-8 bytes.
pub const MAX_READER_NAME: usize = 48;

pub(super) const PAGE: u64 = 4096;
pub(super) const HEADER_LEN: u64 = 8192;
pub(super) const READERS_OFF: usize = 1024;
pub(super) const READER_ENTRY: usize = 64;

// Static header fields.
pub(super) const OFF_MAGIC: usize = 0;
pub(super) const OFF_VERSION: usize = 8;
pub(super) const OFF_RECSIZE: usize = 12;
pub(super) const OFF_CAPACITY: usize = 16;
pub(super) const OFF_MODE: usize = 24;
pub(super) const OFF_MAXREADERS: usize = 28;
pub(super) const OFF_STAMPS: usize = 32;
pub(super) const OFF_RECORDS: usize = 40;
pub(super) const OFF_FILELEN: usize = 48;
pub(super) const OFF_RING_ID: usize = 56;
pub(super) const OFF_TAG_LEN: usize = 64;
pub(super) const OFF_CHECKSUM: usize = 72;
/// Bytes of the fixed static fields, checksum included.
pub(super) const FIXED_LEN: usize = 80;
pub(super) const OFF_TAG: usize = 512;
// Hot counters, each on its own cache line.
pub(super) const OFF_TAIL: usize = 128;
pub(super) const OFF_DATA_FUTEX: usize = 192;
pub(super) const OFF_DATA_WAITERS: usize = 196;
pub(super) const OFF_SPACE_FUTEX: usize = 256;
pub(super) const OFF_SPACE_WAITERS: usize = 260;
pub(super) const OFF_CLOSED: usize = 320;
pub(super) const OFF_EPOCH: usize = 324;
pub(super) const OFF_ABANDONED: usize = 384;
pub(super) const OFF_LOST_WRITES: usize = 392;

pub(super) const WRITING: u64 = 1 << 63;
pub(super) const ABANDONED: u64 = 1 << 62;
pub(super) const SEQ_BITS: u64 = ABANDONED - 1;

pub(super) const ENTRY_FREE: u32 = 0;
pub(super) const ENTRY_ACTIVE: u32 = 2;

pub(super) const SPIN_ITERS: u32 = 2000;
/// How long a reader waits on a reserved but uncommitted slot before declaring its writer dead.
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(2);

/// The static header as bytes: the fixed fields and the tag area, exactly as in the file.
/// A handle keeps the image it validated and compares it with the file on slow paths.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct HeaderImage {
    pub(super) fixed: [u8; FIXED_LEN],
    pub(super) tag: [u8; MAX_TAG_LEN],
}

impl HeaderImage {
    fn checksum(&self) -> u64 {
        let h = fnv1a(0xcbf29ce484222325, &self.fixed[..OFF_CHECKSUM]);
        fnv1a(h, &self.tag)
    }
    fn u32_at(&self, o: usize) -> u32 {
        u32::from_le_bytes(self.fixed[o..o + 4].try_into().unwrap_or([0; 4]))
    }
    fn u64_at(&self, o: usize) -> u64 {
        u64::from_le_bytes(self.fixed[o..o + 8].try_into().unwrap_or([0; 8]))
    }
}

/// The static header fields, decoded and checked.
#[derive(Clone, Copy, Debug)]
pub(super) struct Header {
    pub(super) record_type: RecordType,
    pub(super) capacity: u64,
    pub(super) mode: RingMode,
    pub(super) max_readers: u32,
    pub(super) ring_id: u64,
    pub(super) stamps_off: u64,
    pub(super) records_off: u64,
    pub(super) file_len: u64,
}

impl Header {
    /// A header for a new ring; None if the ring would not fit in 64-bit offsets.
    pub(super) fn new(
        record_type: RecordType,
        capacity: u64,
        mode: RingMode,
        max_readers: u32,
        ring_id: u64,
    ) -> Option<Header> {
        let (stamps_off, records_off, file_len) = layout(capacity, record_type.size())?;
        Some(Header {
            record_type,
            capacity,
            mode,
            max_readers,
            ring_id,
            stamps_off,
            records_off,
            file_len,
        })
    }

    /// The bytes to write at offset 0 and at [`OFF_TAG`], checksum included.
    pub(super) fn encode(&self) -> HeaderImage {
        let mut f = [0u8; FIXED_LEN];
        let mut put = |o: usize, b: &[u8]| f[o..o + b.len()].copy_from_slice(b);
        put(OFF_MAGIC, &RING_MAGIC);
        put(OFF_VERSION, &RING_VERSION.to_le_bytes());
        put(OFF_RECSIZE, &(self.record_type.size() as u32).to_le_bytes());
        put(OFF_CAPACITY, &self.capacity.to_le_bytes());
        put(OFF_MODE, &self.mode.code().to_le_bytes());
        put(OFF_MAXREADERS, &self.max_readers.to_le_bytes());
        put(OFF_STAMPS, &self.stamps_off.to_le_bytes());
        put(OFF_RECORDS, &self.records_off.to_le_bytes());
        put(OFF_FILELEN, &self.file_len.to_le_bytes());
        put(OFF_RING_ID, &self.ring_id.to_le_bytes());
        put(OFF_TAG_LEN, &(self.record_type.tag().len() as u32).to_le_bytes());
        let mut img = HeaderImage { fixed: f, tag: *self.record_type.tag_bytes() };
        let sum = img.checksum();
        img.fixed[OFF_CHECKSUM..OFF_CHECKSUM + 8].copy_from_slice(&sum.to_le_bytes());
        img
    }

    /// Decodes and checks a static header read from a file of `file_len` bytes. The error says
    /// what is wrong, for [`crate::CoreError::CorruptFile`].
    pub(super) fn decode(img: &HeaderImage, file_len: u64) -> Result<Header, String> {
        if img.fixed[..8] != RING_MAGIC {
            return Err("not an rtbcore ring (bad magic)".into());
        }
        let version = img.u32_at(OFF_VERSION);
        if version != RING_VERSION {
            let hint = if version < RING_VERSION {
                "it was made by an older rtbcore, which did not record the record type; \
                 drain it with that version and create the ring again"
            } else {
                "it was made by a newer rtbcore"
            };
            return Err(format!(
                "ring format version {version}, this build reads version {RING_VERSION} only: {hint}"
            ));
        }
        if img.checksum() != img.u64_at(OFF_CHECKSUM) {
            return Err("header checksum mismatch (the header was overwritten)".into());
        }
        let rec_size = img.u32_at(OFF_RECSIZE) as usize;
        let cap = img.u64_at(OFF_CAPACITY);
        let mode_code = img.u32_at(OFF_MODE);
        let mode = RingMode::from_code(mode_code).ok_or(format!("unknown mode {mode_code}"))?;
        let max_readers = img.u32_at(OFF_MAXREADERS);
        if !cap.is_power_of_two()
            || cap > MAX_RING_CAPACITY
            || RecordType::check_size(rec_size).is_err()
            || max_readers == 0
            || max_readers > MAX_READERS_LIMIT
        {
            return Err(format!(
                "inconsistent header: capacity {cap}, record size {rec_size}, \
                 max readers {max_readers}"
            ));
        }
        let tag_len = img.u32_at(OFF_TAG_LEN) as usize;
        let record_type = RecordType::from_stored(&img.tag, tag_len, rec_size)
            .ok_or("the record type tag is not printable ASCII of the stated length")?;
        let h = Header::new(record_type, cap, mode, max_readers, img.u64_at(OFF_RING_ID))
            .ok_or("capacity overflows")?;
        if img.u64_at(OFF_STAMPS) != h.stamps_off
            || img.u64_at(OFF_RECORDS) != h.records_off
            || img.u64_at(OFF_FILELEN) != h.file_len
        {
            return Err("inconsistent header offsets".into());
        }
        if file_len != h.file_len {
            return Err(format!(
                "truncated or padded: the file has {file_len} bytes, the header says {}",
                h.file_len
            ));
        }
        Ok(h)
    }
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Layout of a ring of `cap` records of `rec_size` bytes: (stamps_off, records_off, file_len).
pub(super) fn layout(cap: u64, rec_size: usize) -> Option<(u64, u64, u64)> {
    let stamps_off = HEADER_LEN;
    let stamps_len = cap.checked_mul(8)?;
    let records_off = (stamps_off.checked_add(stamps_len)?).checked_add(PAGE - 1)? / PAGE * PAGE;
    let file_len = records_off.checked_add(cap.checked_mul(rec_size as u64)?)?;
    Some((stamps_off, records_off, file_len))
}
