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
//! - [`BidRing::create`]`(path, RingOptions { capacity, record_size, mode, max_readers })` makes
//!   a new file (mode 0600, atomically: built under a temporary name, then linked into place, so
//!   an opener never sees a half-written header). It fails if the file exists.
//!   [`BidRing::open`]`(path, expected_record_size)` maps an existing one and validates it.
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
//! Opening checks the magic, format version, record size, capacity, offsets, a checksum of the
//! header and the file length; anything off is [`CoreError::CorruptFile`], never a crash.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use memmap2::MmapRaw;

use crate::error::CoreError;
use crate::record::validate_records;
use crate::record::BidRecord;

/// File magic: "RTBRING" plus a NUL.
pub const RING_MAGIC: [u8; 8] = *b"RTBRING\0";
/// On-disk format version.
pub const RING_VERSION: u32 = 1;
/// Largest ring (records).
pub const MAX_RING_CAPACITY: u64 = 1 << 32;
/// Largest number of named readers a ring can hold (fixed at creation).
pub const MAX_READERS_LIMIT: u32 = 64;
/// Longest reader name, in UTF-8 bytes.
pub const MAX_READER_NAME: usize = 48;

const PAGE: u64 = 4096;
const HEADER_LEN: u64 = 8192;
const READERS_OFF: usize = 1024;
const READER_ENTRY: usize = 64;

// Static header fields.
const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = 8;
const OFF_RECSIZE: usize = 12;
const OFF_CAPACITY: usize = 16;
const OFF_MODE: usize = 24;
const OFF_MAXREADERS: usize = 28;
const OFF_STAMPS: usize = 32;
const OFF_RECORDS: usize = 40;
const OFF_FILELEN: usize = 48;
const OFF_CHECKSUM: usize = 56;
const STATIC_LEN: usize = 56;
// Hot counters, each on its own cache line.
const OFF_TAIL: usize = 128;
const OFF_DATA_FUTEX: usize = 192;
const OFF_DATA_WAITERS: usize = 196;
const OFF_SPACE_FUTEX: usize = 256;
const OFF_SPACE_WAITERS: usize = 260;
const OFF_CLOSED: usize = 320;
const OFF_EPOCH: usize = 324;
const OFF_ABANDONED: usize = 384;
const OFF_LOST_WRITES: usize = 392;

const WRITING: u64 = 1 << 63;
const ABANDONED: u64 = 1 << 62;
const SEQ_BITS: u64 = ABANDONED - 1;

const ENTRY_FREE: u32 = 0;
const ENTRY_ACTIVE: u32 = 2;

const SPIN_ITERS: u32 = 2000;
/// How long a reader waits on a reserved but uncommitted slot before declaring its writer dead.
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(2);

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
}

impl Default for RingOptions {
    fn default() -> Self {
        RingOptions {
            capacity: 1 << 20,
            record_size: BidRecord::SIZE,
            mode: RingMode::Backpressure,
            max_readers: 32,
        }
    }
}

fn io_err(context: impl Into<String>, e: std::io::Error) -> CoreError {
    CoreError::Io { context: context.into(), msg: e.to_string() }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// The shared state behind a ring handle and its readers.
struct Inner {
    map: MmapRaw,
    base: NonNull<u8>,
    path: PathBuf,
    _file: File,
    cap: u64,
    mask: u64,
    rec_size: usize,
    mode: RingMode,
    max_readers: u32,
    stamps_off: usize,
    records_off: usize,
}

// SAFETY: every access to the mapping shared between threads goes through atomics (header
// counters, cursors, stamps) or through record slots whose ownership the stamp protocol hands
// to exactly one writer at a time; `base` points into `map`, which lives as long as `Inner`.
unsafe impl Send for Inner {}
// SAFETY: see `Send`.
unsafe impl Sync for Inner {}

impl Inner {
    #[inline]
    fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.map.len());
        // SAFETY: `off` is 8-aligned and inside the mapping (the layout was validated on open /
        // built on create); the mapping is page-aligned and lives as long as `self`.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }
    #[inline]
    fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.map.len());
        // SAFETY: as in `u64_at`, for a 4-aligned offset.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU32) }
    }
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        self.u64_at(OFF_TAIL)
    }
    #[inline]
    fn stamp(&self, seq: u64) -> &AtomicU64 {
        self.u64_at(self.stamps_off + 8 * (seq & self.mask) as usize)
    }
    #[inline]
    fn slot_ptr(&self, seq: u64) -> *mut u8 {
        // SAFETY: the slot index is < cap and records_off + cap * rec_size <= map.len().
        unsafe {
            self.base.as_ptr().add(self.records_off + (seq & self.mask) as usize * self.rec_size)
        }
    }
    fn entry_off(&self, i: u32) -> usize {
        READERS_OFF + i as usize * READER_ENTRY
    }
    fn entry_state(&self, i: u32) -> &AtomicU32 {
        self.u32_at(self.entry_off(i))
    }
    fn entry_cursor(&self, i: u32) -> &AtomicU64 {
        self.u64_at(self.entry_off(i) + 8)
    }
    fn entry_name(&self, i: u32) -> String {
        let off = self.entry_off(i);
        // SAFETY: the name bytes lie inside the header; they are written only under the
        // registration lock (flock) before the entry is published as ACTIVE.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(off + 16), MAX_READER_NAME)
        };
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(MAX_READER_NAME);
        String::from_utf8_lossy(&bytes[..len]).into_owned()
    }
    fn closed(&self) -> bool {
        self.u32_at(OFF_CLOSED).load(Ordering::Acquire) != 0
    }

    /// The smallest acknowledged cursor over the registered readers, or None with no readers.
    fn min_cursor(&self) -> Option<u64> {
        let mut m: Option<u64> = None;
        for i in 0..self.max_readers {
            if self.entry_state(i).load(Ordering::SeqCst) == ENTRY_ACTIVE {
                let c = self.entry_cursor(i).load(Ordering::SeqCst);
                m = Some(m.map_or(c, |x| x.min(c)));
            }
        }
        m
    }

    fn wake(&self, futex_off: usize, waiters_off: usize) {
        fence(Ordering::SeqCst);
        if self.u32_at(waiters_off).load(Ordering::SeqCst) > 0 {
            self.u32_at(futex_off).fetch_add(1, Ordering::SeqCst);
            futex_wake(self.u32_at(futex_off));
        }
    }

    /// Spins, then sleeps on the futex at `futex_off` until `ready()` or the deadline.
    fn wait_until(
        &self,
        futex_off: usize,
        waiters_off: usize,
        timeout: Duration,
        ready: &mut dyn FnMut() -> bool,
    ) -> bool {
        for i in 0..SPIN_ITERS {
            if ready() {
                return true;
            }
            if i % 64 == 63 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        let deadline = Instant::now() + timeout;
        let word = self.u32_at(futex_off);
        let waiters = self.u32_at(waiters_off);
        loop {
            let v = word.load(Ordering::SeqCst);
            waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if ready() {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            // Sleep at most 50 ms at a time so a wake lost to a dead process costs little.
            futex_wait(word, v, (deadline - now).min(Duration::from_millis(50)));
            waiters.fetch_sub(1, Ordering::SeqCst);
            if ready() {
                return true;
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 in a shared mapping; FUTEX_WAIT (not PRIVATE) works
    // across processes mapping the same file; the timespec outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0,
        );
    }
}

#[cfg(target_os = "linux")]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: as in `futex_wait`; waking has no memory effect beyond the syscall.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn futex_wait(_word: &AtomicU32, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout.min(Duration::from_micros(200)));
}

#[cfg(not(target_os = "linux"))]
fn futex_wake(_word: &AtomicU32) {}

/// Holds the file's exclusive flock (released by the kernel if the process dies).
struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    fn lock(f: &'a File) -> Result<Self, CoreError> {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid open descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        if r != 0 {
            return Err(io_err("flock ring file", std::io::Error::last_os_error()));
        }
        Ok(FlockGuard(f))
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: unlocking the descriptor we locked.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
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

/// Layout of a ring of `cap` records of `rec_size` bytes: (stamps_off, records_off, file_len).
fn layout(cap: u64, rec_size: usize) -> Option<(u64, u64, u64)> {
    let stamps_off = HEADER_LEN;
    let stamps_len = cap.checked_mul(8)?;
    let records_off = (stamps_off.checked_add(stamps_len)?).checked_add(PAGE - 1)? / PAGE * PAGE;
    let file_len = records_off.checked_add(cap.checked_mul(rec_size as u64)?)?;
    Some((stamps_off, records_off, file_len))
}

impl BidRing {
    /// Creates a new ring file at `path` (fails if it exists). See the module docs.
    pub fn create(path: impl AsRef<Path>, opts: RingOptions) -> Result<Self, CoreError> {
        let path = path.as_ref();
        if opts.capacity == 0 || opts.capacity > MAX_RING_CAPACITY {
            return Err(CoreError::invalid(
                "capacity",
                format!("must be in 1..={MAX_RING_CAPACITY}, got {}", opts.capacity),
            ));
        }
        if opts.record_size == 0 || opts.record_size % 8 != 0 || opts.record_size > 1 << 20 {
            return Err(CoreError::invalid(
                "record_size",
                format!("must be a positive multiple of 8 up to 1 MiB, got {}", opts.record_size),
            ));
        }
        if opts.max_readers == 0 || opts.max_readers > MAX_READERS_LIMIT {
            return Err(CoreError::invalid(
                "max_readers",
                format!("must be in 1..={MAX_READERS_LIMIT}, got {}", opts.max_readers),
            ));
        }
        let cap = opts.capacity.next_power_of_two();
        let (stamps_off, records_off, file_len) = layout(cap, opts.record_size)
            .ok_or_else(|| CoreError::invalid("capacity", "ring too large"))?;
        if path.exists() {
            return Err(CoreError::Io {
                context: format!("create ring {}", path.display()),
                msg: "file exists (use BidRing.open to attach to it)".into(),
            });
        }
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let fname = path.file_name().ok_or_else(|| CoreError::invalid("path", "names no file"))?;
        let tmp = dir.join(format!(".{}.{}.tmp", fname.to_string_lossy(), std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let ctx = || format!("create ring {}", path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| io_err(ctx(), e))?;
        let built = (|| {
            file.set_len(file_len).map_err(|e| io_err(ctx(), e))?;
            let map = MmapRaw::map_raw(&file).map_err(|e| io_err(ctx(), e))?;
            let base = map.as_mut_ptr();
            let mut hdr = [0u8; STATIC_LEN];
            hdr[OFF_MAGIC..OFF_MAGIC + 8].copy_from_slice(&RING_MAGIC);
            hdr[OFF_VERSION..OFF_VERSION + 4].copy_from_slice(&RING_VERSION.to_le_bytes());
            hdr[OFF_RECSIZE..OFF_RECSIZE + 4]
                .copy_from_slice(&(opts.record_size as u32).to_le_bytes());
            hdr[OFF_CAPACITY..OFF_CAPACITY + 8].copy_from_slice(&cap.to_le_bytes());
            hdr[OFF_MODE..OFF_MODE + 4].copy_from_slice(&opts.mode.code().to_le_bytes());
            hdr[OFF_MAXREADERS..OFF_MAXREADERS + 4]
                .copy_from_slice(&opts.max_readers.to_le_bytes());
            hdr[OFF_STAMPS..OFF_STAMPS + 8].copy_from_slice(&stamps_off.to_le_bytes());
            hdr[OFF_RECORDS..OFF_RECORDS + 8].copy_from_slice(&records_off.to_le_bytes());
            hdr[OFF_FILELEN..OFF_FILELEN + 8].copy_from_slice(&file_len.to_le_bytes());
            let sum = fnv1a(&hdr);
            // SAFETY: the fresh mapping is at least HEADER_LEN bytes and nobody else sees the
            // temporary file yet.
            unsafe {
                std::ptr::copy_nonoverlapping(hdr.as_ptr(), base, STATIC_LEN);
                std::ptr::copy_nonoverlapping(
                    sum.to_le_bytes().as_ptr(),
                    base.add(OFF_CHECKSUM),
                    8,
                );
            }
            map.flush().map_err(|e| io_err(ctx(), e))?;
            std::fs::hard_link(&tmp, path).map_err(|e| io_err(ctx(), e))?;
            Ok::<_, CoreError>(())
        })();
        let _ = std::fs::remove_file(&tmp);
        built?;
        drop(file);
        Self::open(path, Some(opts.record_size))
    }

    /// Opens an existing ring file. `record_size`, when given, must match the file's.
    pub fn open(path: impl AsRef<Path>, record_size: Option<usize>) -> Result<Self, CoreError> {
        let path = path.as_ref();
        let corrupt =
            |msg: String| CoreError::CorruptFile { path: path.display().to_string(), msg };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| io_err(format!("open ring {}", path.display()), e))?;
        let flen =
            file.metadata().map_err(|e| io_err(format!("stat ring {}", path.display()), e))?.len();
        if flen < HEADER_LEN {
            return Err(corrupt(format!(
                "not an rtbcore ring: {flen} bytes is shorter than the {HEADER_LEN}-byte header"
            )));
        }
        let map = MmapRaw::map_raw(&file)
            .map_err(|e| io_err(format!("mmap ring {}", path.display()), e))?;
        let mut hdr = [0u8; STATIC_LEN + 8];
        // SAFETY: the mapping is at least HEADER_LEN bytes (checked above).
        unsafe { std::ptr::copy_nonoverlapping(map.as_ptr(), hdr.as_mut_ptr(), STATIC_LEN + 8) };
        let u32f = |o: usize| u32::from_le_bytes(hdr[o..o + 4].try_into().unwrap());
        let u64f = |o: usize| u64::from_le_bytes(hdr[o..o + 8].try_into().unwrap());
        if hdr[..8] != RING_MAGIC {
            return Err(corrupt("not an rtbcore ring (bad magic)".into()));
        }
        if u32f(OFF_VERSION) != RING_VERSION {
            return Err(corrupt(format!(
                "ring format version {} (this build reads {RING_VERSION})",
                u32f(OFF_VERSION)
            )));
        }
        if fnv1a(&hdr[..STATIC_LEN]) != u64f(OFF_CHECKSUM) {
            return Err(corrupt("header checksum mismatch (the header was overwritten)".into()));
        }
        let rec_size = u32f(OFF_RECSIZE) as usize;
        let cap = u64f(OFF_CAPACITY);
        let mode = RingMode::from_code(u32f(OFF_MODE))
            .ok_or_else(|| corrupt(format!("unknown mode {}", u32f(OFF_MODE))))?;
        let max_readers = u32f(OFF_MAXREADERS);
        if !cap.is_power_of_two()
            || cap > MAX_RING_CAPACITY
            || rec_size == 0
            || rec_size % 8 != 0
            || max_readers == 0
            || max_readers > MAX_READERS_LIMIT
        {
            return Err(corrupt(format!("inconsistent header: capacity {cap}, record size {rec_size}, max readers {max_readers}")));
        }
        let (stamps_off, records_off, file_len) =
            layout(cap, rec_size).ok_or_else(|| corrupt("capacity overflows".into()))?;
        if u64f(OFF_STAMPS) != stamps_off
            || u64f(OFF_RECORDS) != records_off
            || u64f(OFF_FILELEN) != file_len
        {
            return Err(corrupt("inconsistent header offsets".into()));
        }
        if flen != file_len || (map.len() as u64) != file_len {
            return Err(corrupt(format!(
                "truncated or padded: the file has {flen} bytes, the header says {file_len}"
            )));
        }
        if let Some(want) = record_size {
            if want != rec_size {
                return Err(CoreError::invalid(
                    "dtype",
                    format!("the ring holds {rec_size}-byte records, the dtype has {want} bytes"),
                ));
            }
        }
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| corrupt("empty mapping".into()))?;
        let inner = Inner {
            map,
            base,
            path: path.to_path_buf(),
            _file: file,
            cap,
            mask: cap - 1,
            rec_size,
            mode,
            max_readers,
            stamps_off: stamps_off as usize,
            records_off: records_off as usize,
        };
        // Dynamic state must be consistent too: cursors never run ahead of the tail.
        let tail = inner.tail().load(Ordering::SeqCst);
        if tail > SEQ_BITS / 2 {
            return Err(corrupt(format!("tail {tail} is out of range")));
        }
        for i in 0..max_readers {
            let st = inner.entry_state(i).load(Ordering::SeqCst);
            if st != ENTRY_FREE && st != ENTRY_ACTIVE {
                return Err(corrupt(format!("reader entry {i} has state {st}")));
            }
            if st == ENTRY_ACTIVE && inner.entry_cursor(i).load(Ordering::SeqCst) > tail {
                return Err(corrupt(format!(
                    "reader {:?} has a cursor past the tail {tail}",
                    inner.entry_name(i)
                )));
            }
        }
        Ok(BidRing {
            inner: Arc::new(inner),
            limit_cache: AtomicU64::new(0),
            epoch_cache: AtomicU32::new(u32::MAX),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }
    pub fn capacity(&self) -> u64 {
        self.inner.cap
    }
    pub fn record_size(&self) -> usize {
        self.inner.rec_size
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
        Ok(RingReader::new(inn.clone(), i))
    }

    /// The oldest sequence number still worth reading: at least tail - capacity, and past any
    /// prefix that was never written.
    fn first_readable(&self, tail: u64) -> u64 {
        tail.saturating_sub(self.inner.cap)
    }

    /// Reserves up to `want` sequence numbers; returns (first, n, exclusive). `exclusive` means
    /// the reservation was bounded by the registered readers' acknowledged cursors, so every
    /// previous occupant of these slots was committed (or abandoned) and read: no other writer
    /// can be in them, and the slots need no claim.
    fn reserve(&self, want: u64) -> Result<(u64, u64, bool), CoreError> {
        let inn = &self.inner;
        if inn.closed() {
            return Err(CoreError::Closed);
        }
        if want == 0 {
            return Ok((inn.tail().load(Ordering::SeqCst), 0, false));
        }
        let tail = inn.tail();
        loop {
            let t = tail.load(Ordering::SeqCst);
            let (n, exclusive) = match inn.mode {
                RingMode::Broadcast => (want, false),
                RingMode::Backpressure => {
                    let epoch = inn.u32_at(OFF_EPOCH).load(Ordering::SeqCst);
                    let mut limit = self.limit_cache.load(Ordering::Relaxed);
                    if epoch != self.epoch_cache.load(Ordering::Relaxed) || t + want > limit {
                        limit = inn.min_cursor().map_or(u64::MAX, |c| c + inn.cap);
                        self.limit_cache.store(limit, Ordering::Relaxed);
                        self.epoch_cache.store(epoch, Ordering::Relaxed);
                    }
                    (want.min(limit.saturating_sub(t)), limit != u64::MAX)
                }
            };
            if n == 0 {
                return Ok((t, 0, exclusive));
            }
            if tail.compare_exchange_weak(t, t + n, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                return Ok((t, n, exclusive));
            }
        }
    }

    /// Claims slot `seq` for writing; false if the slot belongs to a newer record or was
    /// declared abandoned (the record is then counted in `lost_writes`).
    fn claim(&self, seq: u64) -> bool {
        let st = self.inner.stamp(seq);
        let mine = seq + 1;
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        loop {
            let cur = st.load(Ordering::Acquire);
            let cs = cur & SEQ_BITS;
            if cs >= mine {
                // Abandoned by a reader (our writer was too slow) or lapped in broadcast mode.
                return false;
            }
            if cur & WRITING != 0 {
                // An older writer is still filling the slot a whole lap behind us (broadcast
                // mode only); wait for it, and take the slot over if it died.
                spins += 1;
                if spins < 1000 {
                    std::hint::spin_loop();
                    continue;
                }
                let t0 = *since.get_or_insert_with(Instant::now);
                if t0.elapsed() < DEFAULT_ABANDON_AFTER {
                    std::thread::yield_now();
                    continue;
                }
            }
            if st.compare_exchange(cur, WRITING | mine, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            {
                // The record bytes written next must not become visible before the claim.
                fence(Ordering::Release);
                return true;
            }
        }
    }

    /// Copies raw records (`bytes.len()` a multiple of the record size) into reserved slots.
    fn write_reserved(&self, first: u64, n: u64, bytes: &[u8], exclusive: bool) {
        let inn = &self.inner;
        let lost = if exclusive && self.write_exclusive(first, n, bytes) {
            0
        } else {
            self.write_claimed(first, n, bytes)
        };
        if lost > 0 {
            inn.u64_at(OFF_LOST_WRITES).fetch_add(lost, Ordering::Relaxed);
        }
        inn.wake(OFF_DATA_FUTEX, OFF_DATA_WAITERS);
    }

    /// The fast path of a reader-bounded reservation: no per-slot claim, one bulk copy, then a
    /// Release store of each stamp. Returns false (having written nothing) if a slot was
    /// already declared abandoned, leaving the reservation to the claiming path.
    fn write_exclusive(&self, first: u64, n: u64, bytes: &[u8]) -> bool {
        let inn = &self.inner;
        let rs = inn.rec_size;
        // A reader declares a slot abandoned only after it stalled for abandon_after; a
        // writer that slow takes the careful path.
        if (first..first + n).any(|seq| inn.stamp(seq).load(Ordering::Acquire) & SEQ_BITS > seq) {
            return false;
        }
        let head = ((inn.cap - (first & inn.mask)).min(n)) as usize;
        // SAFETY: the reservation bounded by every reader's acknowledged cursor makes these
        // slots ours alone (their previous records were read by everyone); `head` slots fit
        // before the end of the ring and the rest wrap to slot 0; no overlap with `bytes`.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), inn.slot_ptr(first), head * rs);
            if (head as u64) < n {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(head * rs),
                    inn.slot_ptr(first + head as u64),
                    (n as usize - head) * rs,
                );
            }
        }
        for seq in first..first + n {
            // Release: the record bytes are visible before the stamp that says "committed".
            inn.stamp(seq).store(seq + 1, Ordering::Release);
        }
        true
    }

    /// The general path: claim each slot with a CAS (other writers may be a lap behind in
    /// broadcast mode, or with no reader registered), copy, commit with a CAS. Returns how many
    /// records could not be committed.
    fn write_claimed(&self, first: u64, n: u64, bytes: &[u8]) -> u64 {
        let inn = &self.inner;
        let rs = inn.rec_size;
        let mut lost = 0u64;
        for k in 0..n {
            let seq = first + k;
            if !self.claim(seq) {
                lost += 1;
                continue;
            }
            // SAFETY: the claim gives this writer exclusive ownership of the slot until the
            // commit store below; source and destination are rs bytes and do not overlap.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr().add(k as usize * rs),
                    inn.slot_ptr(seq),
                    rs,
                )
            };
            if inn
                .stamp(seq)
                .compare_exchange(
                    WRITING | (seq + 1),
                    seq + 1,
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                lost += 1;
            }
        }
        lost
    }

    /// Appends raw records of the ring's record size; returns how many fit.
    pub fn append_bytes(&self, bytes: &[u8]) -> Result<usize, CoreError> {
        let rs = self.inner.rec_size;
        if bytes.len() % rs != 0 {
            return Err(CoreError::invalid(
                "records",
                format!("{} bytes is not a whole number of {rs}-byte records", bytes.len()),
            ));
        }
        let (first, n, exclusive) = self.reserve((bytes.len() / rs) as u64)?;
        self.write_reserved(first, n, &bytes[..n as usize * rs], exclusive);
        Ok(n as usize)
    }

    fn bid_ring(&self) -> Result<(), CoreError> {
        if self.inner.rec_size != BidRecord::SIZE {
            return Err(CoreError::invalid(
                "records",
                format!(
                    "this ring holds {}-byte records, not 48-byte BidRecords",
                    self.inner.rec_size
                ),
            ));
        }
        Ok(())
    }

    /// Appends validated bid records; returns how many fit (a prefix, in order). A bad record
    /// refuses the whole call and nothing is appended.
    pub fn append_many(&self, recs: &[BidRecord]) -> Result<usize, CoreError> {
        self.bid_ring()?;
        validate_records(recs)?;
        // SAFETY: BidRecord is repr(C), 48 bytes, with no uninitialised bytes (the pad is a field).
        let bytes = unsafe {
            std::slice::from_raw_parts(recs.as_ptr() as *const u8, std::mem::size_of_val(recs))
        };
        self.append_bytes(bytes)
    }

    /// Appends one validated bid record; Ok(false) when there is no room (backpressure).
    pub fn append(&self, rec: &BidRecord) -> Result<bool, CoreError> {
        Ok(self.append_many(std::slice::from_ref(rec))? == 1)
    }

    /// Waits until at least `n` records would fit (backpressure mode), or the timeout. True if
    /// they fit when it returned.
    pub fn wait_for_space(&self, n: u64, timeout: Duration) -> bool {
        let inn = self.inner.clone();
        let mut ready = || {
            if inn.closed() || inn.mode == RingMode::Broadcast {
                return true;
            }
            let t = inn.tail().load(Ordering::SeqCst);
            inn.min_cursor().is_none_or(|c| c + inn.cap >= t + n.min(inn.cap))
        };
        self.inner.wait_until(OFF_SPACE_FUTEX, OFF_SPACE_WAITERS, timeout, &mut ready)
    }

    /// Reserves `n` slots and never commits them: what a writer killed between its reservation
    /// and its commits leaves behind. For crash tests only.
    #[doc(hidden)]
    pub fn reserve_and_die(&self, n: u64) -> Result<u64, CoreError> {
        Ok(self.reserve(n)?.1)
    }

    /// Marks every reserved but uncommitted slot abandoned now, without waiting. Call it only
    /// when no writer is alive (e.g. at start-up after a crash); returns how many were marked.
    pub fn abandon_incomplete(&self) -> u64 {
        let inn = &self.inner;
        let tail = inn.tail().load(Ordering::SeqCst);
        let lo = tail.saturating_sub(inn.cap);
        abandon_range(inn, lo, tail)
    }
}

/// Marks each uncommitted slot of `[lo, hi)` abandoned; returns how many this call marked.
fn abandon_range(inn: &Inner, lo: u64, hi: u64) -> u64 {
    let mut marked = 0;
    for seq in lo..hi {
        let st = inn.stamp(seq);
        loop {
            let cur = st.load(Ordering::Acquire);
            let cs = cur & SEQ_BITS;
            if cs > seq + 1 || (cs == seq + 1 && cur & WRITING == 0) {
                break; // committed, already abandoned, or reused by a newer record
            }
            if st
                .compare_exchange(cur, ABANDONED | (seq + 1), Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                marked += 1;
                break;
            }
        }
    }
    if marked > 0 {
        inn.u64_at(OFF_ABANDONED).fetch_add(marked, Ordering::Relaxed);
    }
    marked
}

/// One reader's view of the ring through a persistent named cursor. Not shareable between
/// threads (`&mut self`); open one reader per consuming thread or process.
pub struct RingReader {
    inner: Arc<Inner>,
    entry: u32,
    /// The batch handed out by the last read: [pending_start, pending_end), not yet acknowledged.
    pending_start: u64,
    pending_end: u64,
    copy_buf: Vec<u8>,
    abandon_after: Duration,
    /// A stall on an uncommitted slot: (seq, since, tail when first seen).
    stall: Option<(u64, Instant, u64)>,
}

/// A batch of committed records starting at `start_seq`. Borrowed from the reader: in
/// backpressure mode a zero-copy view of the mapping, stable until the next read or commit; in
/// broadcast mode a validated copy in the reader's buffer.
pub struct RingBatch<'a> {
    start_seq: u64,
    n: usize,
    rec_size: usize,
    data: &'a [u8],
}

impl<'a> RingBatch<'a> {
    pub fn start_seq(&self) -> u64 {
        self.start_seq
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn record_size(&self) -> usize {
        self.rec_size
    }
    /// The raw bytes of the records.
    pub fn bytes(&self) -> &'a [u8] {
        self.data
    }
    /// The records as [`BidRecord`]s; empty unless the ring holds 48-byte records.
    pub fn records(&self) -> &'a [BidRecord] {
        if self.rec_size != BidRecord::SIZE || self.n == 0 {
            return &[];
        }
        // SAFETY: the data is n * 48 bytes, 8-aligned (slots start on a page plus a multiple of
        // 48; the copy buffer is built from u64s), and every bit pattern is a valid BidRecord.
        unsafe { std::slice::from_raw_parts(self.data.as_ptr() as *const BidRecord, self.n) }
    }
}

impl RingReader {
    fn new(inner: Arc<Inner>, entry: u32) -> Self {
        let c = inner.entry_cursor(entry).load(Ordering::SeqCst);
        RingReader {
            inner,
            entry,
            pending_start: c,
            pending_end: c,
            copy_buf: Vec::new(),
            abandon_after: DEFAULT_ABANDON_AFTER,
            stall: None,
        }
    }

    /// Bytes per record of the ring.
    pub fn record_size(&self) -> usize {
        self.inner.rec_size
    }
    /// The reader's name.
    pub fn name(&self) -> String {
        self.inner.entry_name(self.entry)
    }
    /// How long an uncommitted reserved slot may stall this reader before it is abandoned.
    pub fn set_abandon_after(&mut self, d: Duration) {
        self.abandon_after = d;
    }
    pub fn abandon_after(&self) -> Duration {
        self.abandon_after
    }
    /// The next sequence number a read would return (the end of the held batch).
    pub fn position(&self) -> u64 {
        self.pending_end
    }
    /// Whether the ring was sealed (no more appends from any process).
    pub fn is_closed(&self) -> bool {
        self.inner.closed()
    }
    /// The persistent acknowledged cursor.
    pub fn acknowledged(&self) -> u64 {
        self.inner.entry_cursor(self.entry).load(Ordering::SeqCst)
    }
    /// Committed records between the reader's position and the tail (ignores uncommitted gaps).
    pub fn lag(&self) -> u64 {
        self.inner.tail().load(Ordering::SeqCst).saturating_sub(self.pending_end)
    }

    fn check_registered(&self) -> Result<(), CoreError> {
        if self.inner.entry_state(self.entry).load(Ordering::SeqCst) != ENTRY_ACTIVE {
            return Err(CoreError::invalid("reader", "this reader was removed from the ring"));
        }
        Ok(())
    }

    fn store_cursor(&mut self, c: u64) {
        self.inner.entry_cursor(self.entry).store(c, Ordering::SeqCst);
        if self.inner.mode == RingMode::Backpressure {
            self.inner.wake(OFF_SPACE_FUTEX, OFF_SPACE_WAITERS);
        }
    }

    /// Acknowledges the batch handed out by the last read. In backpressure mode it first checks
    /// that the batch was not overwritten while held (only possible if this cursor was moved
    /// backwards by a replay racing with writers); if it was, the error says so.
    pub fn commit(&mut self) -> Result<(), CoreError> {
        let (s, e) = (self.pending_start, self.pending_end);
        if e == s {
            return Ok(());
        }
        // Check before acknowledging: once the cursor moves, writers may reuse the slots.
        let mut bad = None;
        if self.inner.mode == RingMode::Backpressure {
            bad = (s..e).find(|&seq| self.inner.stamp(seq).load(Ordering::Acquire) != seq + 1);
        }
        self.pending_start = e;
        self.store_cursor(e);
        match bad {
            Some(seq) => Err(CoreError::Overrun { lost: e - seq, next_seq: e }),
            None => Ok(()),
        }
    }

    /// Moves the cursor to `from_seq` (back to replay, or forward to skip). Drops the held batch.
    /// `from_seq` must lie within `[oldest, tail]`.
    pub fn replay(&mut self, from_seq: u64) -> Result<(), CoreError> {
        self.check_registered()?;
        let tail = self.inner.tail().load(Ordering::SeqCst);
        let oldest = tail.saturating_sub(self.inner.cap);
        if from_seq > tail {
            return Err(CoreError::invalid(
                "from_seq",
                format!("{from_seq} is past the tail {tail}"),
            ));
        }
        if from_seq < oldest {
            return Err(CoreError::Overrun { lost: oldest - from_seq, next_seq: oldest });
        }
        self.pending_start = from_seq;
        self.pending_end = from_seq;
        self.stall = None;
        self.store_cursor(from_seq);
        Ok(())
    }

    /// Whether a read would return at least one record now (or the ring is closed and drained).
    fn ready(inner: &Inner, pos: u64) -> bool {
        let cur = inner.stamp(pos).load(Ordering::Acquire);
        let cs = cur & SEQ_BITS;
        // Committed (or abandoned, which read skips), lapped (read reports it), or closed.
        cs > pos + 1
            || (cs == pos + 1 && cur & WRITING == 0)
            || inner.closed()
            || inner.tail().load(Ordering::Acquire) > pos + inner.cap
    }

    /// Waits until a read would return records, or the timeout: spins briefly, then sleeps on
    /// a futex. True if records are there. A reserved slot whose writer stalls is also reported
    /// as ready once `abandon_after` has passed, so that the next read can skip it.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let inner = self.inner.clone();
        let pos = self.pending_end;
        let stall_deadline = if inner.tail().load(Ordering::SeqCst) > pos {
            Some(Instant::now() + self.abandon_after)
        } else {
            None
        };
        let mut ready =
            || Self::ready(&inner, pos) || stall_deadline.is_some_and(|d| Instant::now() >= d);
        inner.wait_until(OFF_DATA_FUTEX, OFF_DATA_WAITERS, timeout, &mut ready)
    }

    /// Acknowledges the held batch, then returns up to `max_n` committed records from the
    /// cursor on (contiguous: never past the end of the ring). Empty when nothing is committed.
    /// Broadcast mode: a lapped reader gets `Overrun { lost, next_seq }` and resumes at
    /// `next_seq`.
    pub fn read(&mut self, max_n: usize) -> Result<RingBatch<'_>, CoreError> {
        self.check_registered()?;
        self.commit()?;
        let inn = self.inner.clone();
        let mut pos = self.pending_end;
        if inn.mode == RingMode::Broadcast {
            let oldest = inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap);
            if pos < oldest {
                return Err(self.overrun(pos, oldest));
            }
        }
        let (n, start) = loop {
            let room = (inn.cap - (pos & inn.mask)).min(max_n as u64);
            let mut n = 0u64;
            let mut skip = false;
            while n < room {
                let seq = pos + n;
                let cur = inn.stamp(seq).load(Ordering::Acquire);
                let cs = cur & SEQ_BITS;
                if cur == seq + 1 {
                    n += 1;
                    continue;
                }
                if cur == ABANDONED | (seq + 1) {
                    skip = n == 0;
                    break;
                }
                if cs > seq + 1 {
                    // The slot was reused: we were lapped (broadcast) mid-scan.
                    if n == 0 {
                        let oldest =
                            inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap).max(seq + 1);
                        return Err(self.overrun(seq, oldest));
                    }
                    break;
                }
                if n == 0 && self.check_stall(seq) {
                    skip = true;
                }
                break;
            }
            if skip {
                // An abandoned slot at the cursor: acknowledge it and look again.
                pos += 1;
                self.pending_start = pos;
                self.pending_end = pos;
                self.store_cursor(pos);
                continue;
            }
            break (n, pos);
        };
        if n > 0 {
            self.stall = None;
        }
        let rs = inn.rec_size;
        let len = n as usize * rs;
        let data: &[u8] = if inn.mode == RingMode::Broadcast && n > 0 {
            // Copy, then confirm every slot still holds the record we expected (seqlock).
            self.copy_buf.clear();
            self.copy_buf.reserve(len + 8);
            let off = self.copy_buf.as_ptr().align_offset(8);
            self.copy_buf.resize(off + len, 0);
            // SAFETY: source is n contiguous slots inside the mapping; destination has room.
            // A concurrent overwrite can race with this copy; the stamps checked below tell us
            // and the bytes of such slots are discarded.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    inn.slot_ptr(start),
                    self.copy_buf.as_mut_ptr().add(off),
                    len,
                )
            };
            fence(Ordering::Acquire);
            let mut good = n;
            for k in 0..n {
                if inn.stamp(start + k).load(Ordering::Relaxed) != start + k + 1 {
                    good = k;
                    break;
                }
            }
            if good == 0 {
                let oldest =
                    inn.tail().load(Ordering::SeqCst).saturating_sub(inn.cap).max(start + 1);
                return Err(self.overrun(start, oldest));
            }
            self.pending_start = start;
            self.pending_end = start + good;
            return Ok(RingBatch {
                start_seq: start,
                n: good as usize,
                rec_size: rs,
                data: &self.copy_buf[off..off + good as usize * rs],
            });
        } else if n > 0 {
            // SAFETY: the n slots are committed and, in backpressure mode, protected from
            // writers by our acknowledged cursor (= start) until the next read/commit, which
            // needs `&mut self` and so ends this borrow first.
            unsafe { std::slice::from_raw_parts(inn.slot_ptr(start), len) }
        } else {
            &[]
        };
        self.pending_start = start;
        self.pending_end = start + n;
        Ok(RingBatch { start_seq: start, n: n as usize, rec_size: rs, data })
    }

    /// Like [`read`](Self::read) but copies into `out` (whole records); returns how many.
    pub fn read_into(&mut self, out: &mut [u8]) -> Result<usize, CoreError> {
        let rs = self.inner.rec_size;
        let b = self.read(out.len() / rs)?;
        let n = b.len();
        out[..n * rs].copy_from_slice(b.bytes());
        Ok(n)
    }

    /// Reports an overrun at `pos` and moves the cursor to `oldest`.
    fn overrun(&mut self, pos: u64, oldest: u64) -> CoreError {
        self.pending_start = oldest;
        self.pending_end = oldest;
        self.stall = None;
        self.store_cursor(oldest);
        CoreError::Overrun { lost: oldest - pos, next_seq: oldest }
    }

    /// Called when the slot at the cursor is not committed. Returns true if it was (or has just
    /// been) declared abandoned.
    fn check_stall(&mut self, seq: u64) -> bool {
        let inn = &self.inner;
        let tail = inn.tail().load(Ordering::SeqCst);
        if tail <= seq {
            self.stall = None;
            return false; // nothing reserved there yet: just empty
        }
        match self.stall {
            Some((s, since, t0)) if s == seq || (seq < t0 && s < seq) => {
                if since.elapsed() >= self.abandon_after {
                    abandon_range(inn, seq, t0);
                    let cur = inn.stamp(seq).load(Ordering::Acquire);
                    return cur == ABANDONED | (seq + 1);
                }
                false
            }
            _ => {
                self.stall = Some((seq, Instant::now(), tail));
                if self.abandon_after.is_zero() {
                    return self.check_stall(seq);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::KIND_PLACE;

    fn tmp(name: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("rtbcore-ring-unit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        p
    }

    fn rec(i: u64) -> BidRecord {
        BidRecord::new(i, 1, i as f64, 1.0, KIND_PLACE)
    }

    #[test]
    fn append_read_commit_backpressure() {
        let p = tmp("bp");
        let ring = BidRing::create(&p, RingOptions { capacity: 8, ..Default::default() }).unwrap();
        let mut r = ring.reader("a", Start::Oldest).unwrap();
        let recs: Vec<_> = (0..10).map(rec).collect();
        assert_eq!(ring.append_many(&recs).unwrap(), 8);
        assert_eq!(ring.append_many(&recs[8..]).unwrap(), 0);
        {
            let b = r.read(5).unwrap();
            assert_eq!(
                b.records().iter().map(|x| x.auction_id).collect::<Vec<_>>(),
                vec![0, 1, 2, 3, 4]
            );
        }
        // Not yet acknowledged: still no room.
        assert_eq!(ring.append_many(&recs[8..]).unwrap(), 0);
        assert_eq!(r.read(100).unwrap().len(), 3);
        assert_eq!(ring.append_many(&recs[8..]).unwrap(), 2);
        assert_eq!(r.read(100).unwrap().records()[0].auction_id, 8);
        drop(r);
        // A reattached reader is handed the unacknowledged batch again.
        let mut r = ring.reader("a", Start::Latest).unwrap();
        assert_eq!(r.read(100).unwrap().start_seq(), 8);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn broadcast_overrun() {
        let p = tmp("bc");
        let ring = BidRing::create(
            &p,
            RingOptions { capacity: 4, mode: RingMode::Broadcast, ..Default::default() },
        )
        .unwrap();
        let mut r = ring.reader("a", Start::Oldest).unwrap();
        let recs: Vec<_> = (0..10).map(rec).collect();
        assert_eq!(ring.append_many(&recs).unwrap(), 10);
        match r.read(10) {
            Err(CoreError::Overrun { lost: 6, next_seq: 6 }) => {}
            Err(e) => panic!("{e}"),
            Ok(b) => panic!("read {} records", b.len()),
        }
        // Reads stop at the end of the ring; the next one wraps.
        let b = r.read(10).unwrap();
        assert_eq!(b.records().iter().map(|x| x.auction_id).collect::<Vec<_>>(), vec![6, 7]);
        let b = r.read(10).unwrap();
        assert_eq!(b.records().iter().map(|x| x.auction_id).collect::<Vec<_>>(), vec![8, 9]);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn foreign_and_truncated_files_are_corrupt() {
        let p = tmp("foreign");
        std::fs::write(&p, vec![7u8; 9000]).unwrap();
        assert!(matches!(BidRing::open(&p, None), Err(CoreError::CorruptFile { .. })));
        std::fs::remove_file(&p).unwrap();
        let ring = BidRing::create(&p, RingOptions { capacity: 8, ..Default::default() }).unwrap();
        drop(ring);
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(HEADER_LEN + 100).unwrap();
        assert!(matches!(BidRing::open(&p, None), Err(CoreError::CorruptFile { .. })));
        std::fs::remove_file(&p).unwrap();
    }
}
