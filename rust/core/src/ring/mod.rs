//! The memory-mapped bid ring: zero-copy streaming of fixed-size records between threads and
//! processes, with persistent named reader cursors and replay.
//!
//! # API for embedders (the engine uses exactly this)
//!
//! ```
//! use std::time::Duration;
//! use rtbcore_core::ring::{BidRing, RingMode, RingOptions, Start};
//! use rtbcore_core::record::{BidRecord, KIND_PLACE};
//! let dir = std::env::temp_dir().join(format!("rtbcore-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("bids.ring");
//! # let _ = std::fs::remove_file(&path);
//! // create fails if the file exists; open validates the header (RingCorrupt-style errors).
//! let ring = BidRing::create(&path, RingOptions { capacity: 1024, ..Default::default() }).unwrap();
//! let other = BidRing::open(&path, None).unwrap(); // e.g. in another process
//! let mut reader = other.reader("engine", Start::Oldest).unwrap();
//! let recs = [BidRecord::new(7, 1, 2.5, 1.0, KIND_PLACE); 3];
//! assert_eq!(ring.append_many(&recs).unwrap(), 3); // how many fit (backpressure)
//! assert!(reader.wait(Duration::from_millis(10))); // spin, then futex sleep
//! let batch = reader.read(100).unwrap(); // zero-copy view; cursor advances on the next read
//! assert_eq!(batch.start_seq(), 0);
//! assert_eq!(batch.records().len(), 3);
//! assert_eq!(batch.records()[0].auction_id, 7);
//! # drop(reader); drop(other); drop(ring);
//! # std::fs::remove_file(&path).unwrap();
//! ```
//!
//! - [`BidRing::create`]`(path, RingOptions { capacity, record_size, mode, max_readers,
//!   record_type })` makes a new file (mode 0600, atomically: built under a temporary name, then
//!   linked into place, so an opener never sees a half-written header). It fails if the file
//!   exists. The header records the [`RecordType`] (a tag and the record size; by default
//!   [`RecordType::BID`] for 48-byte records, else [`RecordType::raw`]).
//!   [`BidRing::open`]`(path, expected_record_size)` maps an existing one and validates it;
//!   `Some(48)` asks for bids, and [`BidRing::open_as`]`(path, record_type)` for an exact type.
//!   Another type is refused with an error naming both.
//! - Records of any caller-given fixed size are supported (`record_size`, a multiple of 8):
//!   [`BidRing::append_bytes`] / [`RingBatch::bytes`]. For 48-byte [`BidRecord`] rings,
//!   [`BidRing::append`] / [`BidRing::append_many`] validate each record (finite price, known
//!   kind) and [`RingBatch::records`] gives `&[BidRecord]`.
//! - [`BidRing::append_many`] never blocks; it returns how many records fit (backpressure mode)
//!   and [`BidRing::wait_for_space`] sleeps until a reader frees room. In broadcast mode every
//!   record fits.
//! - [`BidRing::reader`]`(name, start)` attaches to the persistent cursor called `name` (made on
//!   first use, starting at the oldest record still in the ring, or at the tail). A
//!   [`RingReader`] is single-consumer: each named cursor should have one live reader.
//!   [`RingReader::read`]`(max_n)` returns a [`RingBatch`] of committed records starting at the
//!   cursor, contiguous in memory (it stops at the end of the ring; the next read wraps).
//!   [`RingReader::wait`]`(timeout)` spins ~20 µs, then sleeps on a futex in the shared header.
//!   [`RingReader::replay`]`(from_seq)` moves the cursor to any sequence number still in the ring.
//!
//! # Cursor semantics: at-least-once
//! The persistent cursor of a reader is the first sequence number it has *not acknowledged*. A
//! batch returned by `read` is acknowledged by the next `read` on that reader, or by
//! [`RingReader::commit`]. Until then the writers (in backpressure mode) do not overwrite it, so
//! the zero-copy view is stable; and a reader that crashes while holding a batch is handed the
//! same batch again after it reattaches. Readers that never come back hold the writers up in
//! backpressure mode until they are removed ([`BidRing::remove_reader`]).
//!
//! # Modes
//! - `Backpressure` (default): writers never overwrite a record that a registered reader has not
//!   acknowledged; `append_many` returns how many fit. With no reader registered the ring keeps
//!   the newest `capacity` records.
//! - `Broadcast`: writers never wait. A reader that was lapped gets
//!   [`CoreError::Overrun`]`{ lost, next_seq }` and its cursor moves to `next_seq`, the oldest
//!   record still in the ring. Reads copy the records into a buffer owned by the reader,
//!   validated with the slot stamps seqlock-style, so a reader never sees a torn record.
//!
//! # Commit protocol and crash safety
//! Every slot has a 64-bit stamp beside the record area: `seq + 1` once record `seq` is
//! committed, with a WRITING flag while a writer fills it and an ABANDONED flag for a slot whose
//! writer died. A writer reserves `n` sequence numbers with one CAS on the shared tail. When the
//! reservation was bounded by registered readers' cursors (backpressure mode with a reader), the
//! slots are the writer's alone: it copies the block in one go and then stores each stamp
//! `seq + 1` (Release). Otherwise (broadcast, or no reader) it claims each slot with a CAS to
//! `WRITING|seq+1`, copies, and commits with a CAS. Readers consume only slots whose stamp is
//! exactly `seq + 1`, so a record is either wholly visible or not at all; `kill -9` of a writer
//! at any moment leaves every committed record intact.
//!
//! A slot reserved by a writer that died stays uncommitted. A reader that waits on such a slot
//! for longer than its `abandon_after` (default 2 s; a live writer fills a slot in nanoseconds)
//! marks it, and every other slot that was already reserved when the stall began and is still
//! uncommitted, ABANDONED, skips them and counts them in [`BidRing::abandoned`]. If a writer was
//! merely stopped that long (SIGSTOP, swapped out), its late commit is refused and counted in
//! [`BidRing::lost_writes`] — except on the fast path, where a writer stopped for `abandon_after`
//! in the middle of its block copy may still commit afterwards: readers that already skipped
//! the slot do not see the record, later ones do. Either way no record is ever half-visible.
//!
//! Opening checks the magic, format version, record type, capacity, offsets, a checksum of the
//! header and the file length; anything off is [`CoreError::CorruptFile`], never a crash. Files
//! of format version 1 (before the record type was recorded) are refused with that reason.
//!
//! # A file that changes under the mapping
//! Any process that can open the file can shrink it (`truncate`, `cp other.ring ring`). Every
//! mapping is registered with a `SIGBUS` handler (see `guard.rs`): a fault in it replaces the
//! whole mapping with zero pages and marks it lost, so the process survives, and every later
//! call on the handle and its readers returns [`CoreError::CorruptFile`]. Each call checks the
//! mark and the ring id in the header (two loads); waits, [`BidRing::check`] and attaching a
//! reader also compare the file length and the static header. Views handed out before read
//! zero bytes from then on. Open the file again once it holds a whole ring.

mod file;
mod futex;
mod guard;
mod layout;
mod reader;
mod record_type;
mod shared;
#[cfg(test)]
mod tests;
mod writer;

use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::CoreError;
use crate::record::BidRecord;

pub use layout::{
    DEFAULT_ABANDON_AFTER, MAX_READERS_LIMIT, MAX_READER_NAME, MAX_RING_CAPACITY, RING_MAGIC,
    RING_VERSION,
};
pub use reader::{RingBatch, RingReader};
pub use record_type::{RecordType, MAX_RECORD_SIZE, MAX_TAG_LEN};

use futex::futex_wake;
use layout::*;
use shared::{io_err, FlockGuard, Inner};

/// Whether writers wait for readers or overwrite them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingMode {
    /// Never overwrite a record a registered reader has not acknowledged.
    Backpressure,
    /// Overwrite; lapped readers get [`CoreError::Overrun`].
    Broadcast,
}

impl RingMode {
    fn code(self) -> u32 {
        match self {
            RingMode::Backpressure => 0,
            RingMode::Broadcast => 1,
        }
    }
    fn from_code(c: u32) -> Option<Self> {
        match c {
            0 => Some(RingMode::Backpressure),
            1 => Some(RingMode::Broadcast),
            _ => None,
        }
    }
}

/// Where a newly registered reader starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still in the ring.
    Oldest,
    /// The current tail: only records appended from now on.
    Latest,
}

/// Creation parameters of a ring.
#[derive(Debug, Clone, Copy)]
pub struct RingOptions {
    /// Records; rounded up to a power of two.
    pub capacity: u64,
    /// Bytes per record, a multiple of 8 (48 for [`BidRecord`]).
    pub record_size: usize,
    pub mode: RingMode,
    /// Room for this many named readers (1 ..= 64).
    pub max_readers: u32,
    /// The type recorded in the header; its size must be `record_size`. None: [`RecordType::BID`]
    /// for 48-byte records, else [`RecordType::raw`].
    pub record_type: Option<RecordType>,
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            capacity: 1 << 20,
            record_size: BidRecord::SIZE,
            mode: RingMode::Backpressure,
            max_readers: 32,
            record_type: None,
        }
    }
}

/// A handle on a memory-mapped ring file. Cheap to share between threads (`&self` methods);
/// readers keep the mapping alive on their own.
pub struct BidRing {
    inner: Arc<Inner>,
    /// Writer-side cache of `min_cursor + capacity` and the reader epoch it was computed at.
    limit_cache: AtomicU64,
    epoch_cache: AtomicU32,
}

impl BidRing {
    pub fn path(&self) -> &Path {
        &self.inner.path
    }
    pub fn capacity(&self) -> u64 {
        self.inner.cap
    }
    pub fn record_size(&self) -> usize {
        self.inner.rec_size
    }
    /// The record type written in the header.
    pub fn record_type(&self) -> RecordType {
        self.inner.record_type
    }
    pub fn mode(&self) -> RingMode {
        self.inner.mode
    }
    /// Byte offset of slot 0 in the file: records are `record_size` bytes each, back to back,
    /// so another process can map the file read-only and view them (the Python API does).
    pub fn records_offset(&self) -> u64 {
        self.inner.records_off as u64
    }
    pub fn max_readers(&self) -> u32 {
        self.inner.max_readers
    }
    /// The first record slot in this handle's mapping (`capacity * record_size` bytes follow).
    /// Valid while this handle or one of its readers lives; the bytes change under the
    /// caller as other processes write, and read as zeros once the file shrank.
    pub fn records_ptr(&self) -> NonNull<u8> {
        // SAFETY: records_off < the mapping's length (validated at open).
        unsafe { self.inner.base.add(self.inner.records_off) }
    }
    /// Checks that the file is still the ring this handle mapped: at least as long as the
    /// mapping, with the same static header. After a shrink or an overwrite by another process
    /// this and every later call on the handle and its readers is [`CoreError::CorruptFile`].
    /// Costs an `fstat`; the other calls only look at a flag set when a page faulted.
    pub fn check(&self) -> Result<(), CoreError> {
        self.inner.verify()
    }
    /// Faults the whole mapping in, writable, at once (Linux `MADV_POPULATE_WRITE`), so that
    /// appends never take a page fault afterwards: the first touch of a page of the file that
    /// was never written reads it ahead in large zero-filled folios, milliseconds at a time on
    /// a virtual machine, inside whichever append touched it. Returns whether the kernel did
    /// it (false on older kernels, other systems or without the memory: nothing changes).
    pub fn prefault(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            let (p, len) = (self.inner.map.as_mut_ptr(), self.inner.map.len());
            // SAFETY: [p, p + len) is this handle's live mapping; populating it writes nothing
            // (it only faults the pages in) and reports a failure as an error, not a signal.
            unsafe { libc::madvise(p.cast(), len, libc::MADV_POPULATE_WRITE) == 0 }
        }
        #[cfg(not(target_os = "linux"))]
        false
    }

    /// Sequence number the next reservation gets (= records ever reserved).
    pub fn tail(&self) -> u64 {
        self.inner.tail().load(Ordering::SeqCst)
    }
    /// The oldest sequence number whose slot has not been reused.
    pub fn oldest(&self) -> u64 {
        self.tail().saturating_sub(self.inner.cap)
    }
    /// Slots skipped because their writer died (or stalled longer than `abandon_after`).
    pub fn abandoned(&self) -> u64 {
        self.inner.u64_at(OFF_ABANDONED).load(Ordering::Relaxed)
    }
    /// Reserved records a writer could not commit (its slot was abandoned or, in broadcast
    /// mode, overwritten before the writer got to it).
    pub fn lost_writes(&self) -> u64 {
        self.inner.u64_at(OFF_LOST_WRITES).load(Ordering::Relaxed)
    }
    /// Writes the mapping's dirty pages to the file and waits for them (`msync`): what was
    /// appended then survives a machine crash too, not only the death of a process.
    pub fn flush(&self) -> Result<(), CoreError> {
        self.inner.map.flush().map_err(|e| io_err("msync the ring".to_string(), e))
    }
    /// Refuses later appends from every process; readers drain what is there.
    pub fn close(&self) {
        self.inner.u32_at(OFF_CLOSED).store(1, Ordering::SeqCst);
        self.inner.u32_at(OFF_DATA_FUTEX).fetch_add(1, Ordering::SeqCst);
        futex_wake(self.inner.u32_at(OFF_DATA_FUTEX));
        self.inner.u32_at(OFF_SPACE_FUTEX).fetch_add(1, Ordering::SeqCst);
        futex_wake(self.inner.u32_at(OFF_SPACE_FUTEX));
    }
    pub fn is_closed(&self) -> bool {
        self.inner.closed()
    }

    /// Names and acknowledged cursors of the registered readers.
    pub fn readers(&self) -> Vec<(String, u64)> {
        let inn = &self.inner;
        (0..inn.max_readers)
            .filter(|&i| inn.entry_state(i).load(Ordering::SeqCst) == ENTRY_ACTIVE)
            .map(|i| (inn.entry_name(i), inn.entry_cursor(i).load(Ordering::SeqCst)))
            .collect()
    }

    /// Unregisters the named cursor (so it no longer holds writers back). False if unknown.
    pub fn remove_reader(&self, name: &str) -> Result<bool, CoreError> {
        let inn = &self.inner;
        inn.verify()?;
        let _g = FlockGuard::lock(&inn._file)?;
        for i in 0..inn.max_readers {
            if inn.entry_state(i).load(Ordering::SeqCst) == ENTRY_ACTIVE
                && inn.entry_name(i) == name
            {
                inn.entry_state(i).store(ENTRY_FREE, Ordering::SeqCst);
                inn.u32_at(OFF_EPOCH).fetch_add(1, Ordering::SeqCst);
                inn.wake(OFF_SPACE_FUTEX, OFF_SPACE_WAITERS);
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Attaches to the persistent cursor `name`, registering it at `start` on first use.
    pub fn reader(&self, name: &str, start: Start) -> Result<RingReader, CoreError> {
        if name.is_empty() || name.len() > MAX_READER_NAME || name.as_bytes().contains(&0) {
            return Err(CoreError::invalid(
                "name",
                format!(
                    "a reader name is 1..={MAX_READER_NAME} UTF-8 bytes without NUL, got {name:?}"
                ),
            ));
        }
        let inn = &self.inner;
        inn.verify()?;
        let _g = FlockGuard::lock(&inn._file)?;
        let mut free = None;
        for i in 0..inn.max_readers {
            match inn.entry_state(i).load(Ordering::SeqCst) {
                ENTRY_ACTIVE if inn.entry_name(i) == name => {
                    return Ok(RingReader::new(inn.clone(), i))
                }
                ENTRY_FREE if free.is_none() => free = Some(i),
                _ => {}
            }
        }
        let i = free.ok_or_else(|| {
            CoreError::invalid(
                "name",
                format!("the ring already has its maximum of {} readers", inn.max_readers),
            )
        })?;
        let tail = inn.tail().load(Ordering::SeqCst);
        let at = match start {
            Start::Latest => tail,
            Start::Oldest => self.first_readable(tail),
        };
        let off = inn.entry_off(i);
        // SAFETY: the entry is FREE and we hold the registration lock; the name field lies in
        // the header.
        unsafe {
            let p = inn.base.as_ptr().add(off + 16);
            std::ptr::write_bytes(p, 0, MAX_READER_NAME);
            std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len());
        }
        inn.entry_cursor(i).store(at, Ordering::SeqCst);
        inn.entry_state(i).store(ENTRY_ACTIVE, Ordering::SeqCst);
        inn.u32_at(OFF_EPOCH).fetch_add(1, Ordering::SeqCst);
        inn.check()?;
        Ok(RingReader::new(inn.clone(), i))
    }

    /// The oldest sequence number still worth reading: at least tail - capacity, and past any
    /// prefix that was never written.
    fn first_readable(&self, tail: u64) -> u64 {
        tail.saturating_sub(self.inner.cap)
    }
}
