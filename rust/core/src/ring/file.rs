//! Creating a ring file (atomically, under a temporary name) and opening one: mapping it,
//! validating the header and the shared state, and checking the record type.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use super::guard::GuardedMap;
use super::layout::*;
use super::record_type::{RecordType, MAX_TAG_LEN};
use super::shared::{io_err, Inner};
use super::{BidRing, RingOptions};
use crate::error::CoreError;
use crate::record::BidRecord;

/// What an opener expects the ring to hold.
#[allow(clippy::large_enum_variant)] // built once per open, on the stack
#[derive(Clone, Copy)]
enum Expect {
    Any,
    Size(usize),
    Type(RecordType),
}

/// A random ring id, so that a handle can tell its file from another ring copied over it.
fn ring_id() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into the 8-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n == 8 {
        return u64::from_le_bytes(b);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ ((std::process::id() as u64) << 32) ^ (&b as *const _ as u64)
}

/// Reads the static header out of a mapping of at least [`HEADER_LEN`] bytes.
pub(super) fn read_image(base: *const u8) -> HeaderImage {
    let mut img = HeaderImage { fixed: [0; FIXED_LEN], tag: [0; MAX_TAG_LEN] };
    // SAFETY: the caller's mapping covers the first HEADER_LEN bytes, which contain both
    // areas; the image is a plain byte buffer of the same sizes.
    unsafe {
        std::ptr::copy_nonoverlapping(base, img.fixed.as_mut_ptr(), FIXED_LEN);
        std::ptr::copy_nonoverlapping(base.add(OFF_TAG), img.tag.as_mut_ptr(), MAX_TAG_LEN);
    }
    img
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
        RecordType::check_size(opts.record_size)?;
        let record_type = match opts.record_type {
            Some(t) if t.size() != opts.record_size => {
                return Err(CoreError::invalid(
                    "record_type",
                    format!("{t} does not match record_size {}", opts.record_size),
                ))
            }
            Some(t) => t,
            None => RecordType::default_for(opts.record_size)?,
        };
        if opts.max_readers == 0 || opts.max_readers > MAX_READERS_LIMIT {
            return Err(CoreError::invalid(
                "max_readers",
                format!("must be in 1..={MAX_READERS_LIMIT}, got {}", opts.max_readers),
            ));
        }
        let cap = opts.capacity.next_power_of_two();
        let header = Header::new(record_type, cap, opts.mode, opts.max_readers, ring_id())
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
            file.set_len(header.file_len).map_err(|e| io_err(ctx(), e))?;
            let map = GuardedMap::new(&file, file.as_raw_fd()).map_err(|e| io_err(ctx(), e))?;
            let img = header.encode();
            // SAFETY: the fresh mapping is at least HEADER_LEN bytes, which hold both areas,
            // and nobody else has the temporary file open yet.
            unsafe {
                let base = map.as_mut_ptr();
                std::ptr::copy_nonoverlapping(img.fixed.as_ptr(), base, FIXED_LEN);
                std::ptr::copy_nonoverlapping(img.tag.as_ptr(), base.add(OFF_TAG), MAX_TAG_LEN);
            }
            if map.is_lost() {
                return Err(CoreError::CorruptFile {
                    path: tmp.display().to_string(),
                    msg: "the new file was truncated while it was being written".into(),
                });
            }
            map.flush().map_err(|e| io_err(ctx(), e))?;
            std::fs::hard_link(&tmp, path).map_err(|e| io_err(ctx(), e))?;
            Ok::<_, CoreError>(())
        })();
        let _ = std::fs::remove_file(&tmp);
        built?;
        drop(file);
        Self::open_as(path, record_type)
    }

    /// Opens an existing ring file. `record_size`, when given, must match the file's; 48 asks
    /// for a ring of [`BidRecord`]s (type [`RecordType::BID`]), any other size is checked
    /// alone. Use [`open_as`](Self::open_as) to ask for an exact record type.
    pub fn open(path: impl AsRef<Path>, record_size: Option<usize>) -> Result<Self, CoreError> {
        let expect = match record_size {
            Some(BidRecord::SIZE) => Expect::Type(RecordType::BID),
            Some(s) => Expect::Size(s),
            None => Expect::Any,
        };
        Self::open_expecting(path.as_ref(), expect)
    }

    /// Opens an existing ring file that must hold records of `record_type` (tag and size);
    /// another type is refused with an error naming both.
    pub fn open_as(path: impl AsRef<Path>, record_type: RecordType) -> Result<Self, CoreError> {
        Self::open_expecting(path.as_ref(), Expect::Type(record_type))
    }

    fn open_expecting(path: &Path, expect: Expect) -> Result<Self, CoreError> {
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
        let map = GuardedMap::new(&file, file.as_raw_fd())
            .map_err(|e| io_err(format!("mmap ring {}", path.display()), e))?;
        let base = NonNull::new(map.as_mut_ptr()).ok_or_else(|| corrupt("empty mapping".into()))?;
        let img = read_image(base.as_ptr());
        let header = Header::decode(&img, map.len() as u64).map_err(corrupt)?;
        let found = header.record_type;
        match expect {
            Expect::Type(want) if want != found => {
                return Err(CoreError::invalid(
                    "record_type",
                    format!("{} holds records of type {found}, not {want}", path.display()),
                ));
            }
            Expect::Size(want) if want != found.size() => {
                return Err(CoreError::invalid(
                    "record_type",
                    format!(
                        "{} holds {}-byte records (type {found}), not {want}-byte records",
                        path.display(),
                        found.size()
                    ),
                ));
            }
            _ => {}
        }
        let cap = header.capacity;
        let inner = Inner {
            map,
            base,
            path: path.to_path_buf(),
            _file: file,
            header: img,
            ring_id: header.ring_id,
            record_type: found,
            bids: found == RecordType::BID,
            cap,
            mask: cap - 1,
            rec_size: found.size(),
            mode: header.mode,
            max_readers: header.max_readers,
            stamps_off: header.stamps_off as usize,
            records_off: header.records_off as usize,
        };
        validate_shared_state(&inner).map_err(corrupt)?;
        // A fault while validating (the file shrank meanwhile) left zero pages behind.
        inner.check()?;
        Ok(BidRing {
            inner: Arc::new(inner),
            limit_cache: AtomicU64::new(0),
            epoch_cache: AtomicU32::new(u32::MAX),
        })
    }
}

/// The shared state must be consistent too: the tail in range, reader entries well-formed,
/// cursors never ahead of the tail.
fn validate_shared_state(inner: &Inner) -> Result<(), String> {
    let tail = inner.tail().load(Ordering::SeqCst);
    if tail > SEQ_BITS / 2 {
        return Err(format!("tail {tail} is out of range"));
    }
    for i in 0..inner.max_readers {
        let st = inner.entry_state(i).load(Ordering::SeqCst);
        if st != ENTRY_FREE && st != ENTRY_ACTIVE {
            return Err(format!("reader entry {i} has state {st}"));
        }
        if st == ENTRY_ACTIVE && inner.entry_cursor(i).load(Ordering::SeqCst) > tail {
            return Err(format!(
                "reader {:?} has a cursor past the tail {tail}",
                inner.entry_name(i)
            ));
        }
    }
    Ok(())
}
