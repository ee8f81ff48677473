//! The on-disk format of a ring file: the header fields, their offsets, the slot stamps, and
//! the code that writes a fresh header (`create`) and validates an existing one (`open`).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use memmap2::MmapRaw;

use super::shared::{io_err, Inner};
use super::{BidRing, RingMode, RingOptions};
use crate::error::CoreError;

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
pub(super) const OFF_CHECKSUM: usize = 56;
pub(super) const STATIC_LEN: usize = 56;
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

pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
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
}
