//! The state shared by a ring handle and its readers: the mapping, typed access to the header
//! words, slots and reader entries, the checks that the file is still the one validated at
//! open, the futex wait loop, and the registration lock.

use std::fs::File;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::file::read_image;
use super::futex::{futex_wait, futex_wake};
use super::guard::{GuardedMap, Lost};
use super::layout::*;
use super::record_type::RecordType;
use super::RingMode;
use crate::error::CoreError;

/// Longest single futex sleep.
const SLEEP_SLICE: Duration = Duration::from_millis(50);

pub(super) fn io_err(context: impl Into<String>, e: std::io::Error) -> CoreError {
    CoreError::Io { context: context.into(), msg: e.to_string() }
}

/// The shared state behind a ring handle and its readers.
pub(super) struct Inner {
    /// Declared before `_file`: unregistered and unmapped before the descriptor closes.
    pub(super) map: GuardedMap,
    pub(super) base: NonNull<u8>,
    pub(super) path: PathBuf,
    pub(super) _file: File,
    /// The static header as validated at open, and the ring id in it.
    pub(super) header: HeaderImage,
    pub(super) ring_id: u64,
    pub(super) record_type: RecordType,
    /// `record_type == RecordType::BID`, computed once for the per-record append path.
    pub(super) bids: bool,
    pub(super) cap: u64,
    pub(super) mask: u64,
    pub(super) rec_size: usize,
    pub(super) mode: RingMode,
    pub(super) max_readers: u32,
    pub(super) stamps_off: usize,
    pub(super) records_off: usize,
}

// SAFETY: every access to the mapping shared between threads goes through atomics (header
// counters, cursors, stamps) or through record slots whose ownership the stamp protocol hands
// to exactly one writer at a time; `base` points into `map`, which lives as long as `Inner`.
unsafe impl Send for Inner {}
// SAFETY: see `Send`.
unsafe impl Sync for Inner {}

impl Inner {
    /// Whether the mapping was given up because the file shrank or was replaced: one atomic
    /// load, the check every operation makes.
    #[inline]
    pub(super) fn lost(&self) -> bool {
        self.map.is_lost()
    }

    /// `Err(CorruptFile)` once the mapping was given up, or when the ring id in the header is
    /// no longer ours (another ring was copied over the file). Two loads from cache lines that
    /// nothing writes: the check every operation makes.
    #[inline]
    pub(super) fn check(&self) -> Result<(), CoreError> {
        if self.lost() || self.u64_at(OFF_RING_ID).load(Ordering::Relaxed) != self.ring_id {
            return Err(self.lost_now());
        }
        Ok(())
    }

    #[cold]
    fn lost_now(&self) -> CoreError {
        if !self.lost() {
            self.map.give_up(Lost::Replaced);
        }
        self.lost_error()
    }

    #[cold]
    pub(super) fn lost_error(&self) -> CoreError {
        let what = match self.map.lost() {
            Some(Lost::Replaced) => {
                "the ring file's header changed while it was mapped (the file was overwritten)"
            }
            Some(Lost::Failed) => {
                "the ring file shrank while it was mapped and its pages could not be replaced"
            }
            _ => "the ring file shrank while it was mapped (truncated, or overwritten e.g. by cp)",
        };
        CoreError::CorruptFile {
            path: self.path.display().to_string(),
            msg: format!(
                "{what}; this handle and its readers are unusable and arrays read from it \
                 earlier now hold zero bytes. Open the file again once it holds a whole ring"
            ),
        }
    }

    /// The slow-path check: the file is still at least as long as the mapping and its static
    /// header is the one validated at open. Gives the mapping up if not.
    pub(super) fn verify(&self) -> Result<(), CoreError> {
        if !self.lost() {
            use std::os::fd::AsRawFd;
            // SAFETY: `stat` is plain old data, valid when zeroed.
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat of our open descriptor into a stat buffer we own.
            let r = unsafe { libc::fstat(self._file.as_raw_fd(), &mut st) };
            if r == 0 && (st.st_size as u64) < self.map.len() as u64 {
                self.map.give_up(Lost::Shrank);
            } else if read_image(self.base.as_ptr()) != self.header {
                self.map.give_up(Lost::Replaced);
            }
        }
        self.check()
    }

    #[inline]
    pub(super) fn u64_at(&self, off: usize) -> &AtomicU64 {
        debug_assert!(off % 8 == 0 && off + 8 <= self.map.len());
        // SAFETY: `off` is 8-aligned and inside the mapping (the layout was validated on open /
        // built on create); the mapping is page-aligned and lives as long as `self`.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }
    #[inline]
    pub(super) fn u32_at(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off % 4 == 0 && off + 4 <= self.map.len());
        // SAFETY: as in `u64_at`, for a 4-aligned offset.
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU32) }
    }
    #[inline]
    pub(super) fn tail(&self) -> &AtomicU64 {
        self.u64_at(OFF_TAIL)
    }
    #[inline]
    pub(super) fn stamp(&self, seq: u64) -> &AtomicU64 {
        self.u64_at(self.stamps_off + 8 * (seq & self.mask) as usize)
    }
    #[inline]
    pub(super) fn slot_ptr(&self, seq: u64) -> *mut u8 {
        // SAFETY: the slot index is < cap and records_off + cap * rec_size <= map.len().
        unsafe {
            self.base.as_ptr().add(self.records_off + (seq & self.mask) as usize * self.rec_size)
        }
    }
    pub(super) fn entry_off(&self, i: u32) -> usize {
        READERS_OFF + i as usize * READER_ENTRY
    }
    pub(super) fn entry_state(&self, i: u32) -> &AtomicU32 {
        self.u32_at(self.entry_off(i))
    }
    pub(super) fn entry_cursor(&self, i: u32) -> &AtomicU64 {
        self.u64_at(self.entry_off(i) + 8)
    }
    pub(super) fn entry_name(&self, i: u32) -> String {
        let off = self.entry_off(i);
        // SAFETY: the name bytes lie inside the header; they are written only under the
        // registration lock (flock) before the entry is published as ACTIVE.
        let bytes = unsafe {
            std::slice::from_raw_parts(self.base.as_ptr().add(off + 16), MAX_READER_NAME)
        };
        let len = bytes.iter().position(|b| *b == 0).unwrap_or(MAX_READER_NAME);
        String::from_utf8_lossy(&bytes[..len]).into_owned()
    }
    pub(super) fn closed(&self) -> bool {
        self.u32_at(OFF_CLOSED).load(Ordering::Acquire) != 0
    }

    /// The smallest acknowledged cursor over the registered readers, or None with no readers.
    pub(super) fn min_cursor(&self) -> Option<u64> {
        let mut m: Option<u64> = None;
        for i in 0..self.max_readers {
            if self.entry_state(i).load(Ordering::SeqCst) == ENTRY_ACTIVE {
                let c = self.entry_cursor(i).load(Ordering::SeqCst);
                m = Some(m.map_or(c, |x| x.min(c)));
            }
        }
        m
    }

    pub(super) fn wake(&self, futex_off: usize, waiters_off: usize) {
        fence(Ordering::SeqCst);
        if self.u32_at(waiters_off).load(Ordering::SeqCst) > 0 {
            self.u32_at(futex_off).fetch_add(1, Ordering::SeqCst);
            futex_wake(self.u32_at(futex_off));
        }
    }

    /// Spins, then sleeps on the futex at `futex_off` until `ready()` or the deadline.
    pub(super) fn wait_until(
        &self,
        futex_off: usize,
        waiters_off: usize,
        timeout: Duration,
        ready: &mut dyn FnMut() -> bool,
    ) -> bool {
        for i in 0..SPIN_ITERS {
            if ready() || self.lost() {
                return true;
            }
            if i % 64 == 63 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // None: a timeout too long to represent waits until ready.
        let deadline = Instant::now().checked_add(timeout);
        let word = self.u32_at(futex_off);
        let waiters = self.u32_at(waiters_off);
        loop {
            let v = word.load(Ordering::SeqCst);
            waiters.fetch_add(1, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if ready() || self.verify().is_err() {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return true;
            }
            let left =
                deadline.map_or(SLEEP_SLICE, |d| d.saturating_duration_since(Instant::now()));
            if left.is_zero() {
                waiters.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
            // Sleep in slices so that a wake lost to a dead process costs little and the file
            // is checked now and then.
            futex_wait(word, v, left.min(SLEEP_SLICE));
            waiters.fetch_sub(1, Ordering::SeqCst);
            if ready() || self.lost() {
                return true;
            }
        }
    }
}

/// Holds the file's exclusive flock (released by the kernel if the process dies).
pub(super) struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    pub(super) fn lock(f: &'a File) -> Result<Self, CoreError> {
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
