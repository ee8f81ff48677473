//! Surviving a ring file that shrinks under its mapping.
//!
//! Any process that may open the file can shrink it (`truncate`, `cp other.ring ring`, which
//! truncates before it writes). A load or store in a mapped page past the new end of the file
//! then raises `SIGBUS`, whose default action kills the process — and the access may sit in
//! any reader, writer, numpy view handed out earlier, or an engine thread.
//!
//! Every ring mapping is registered in a lock-free table that a `SIGBUS` handler can read. On
//! a fault inside a registered mapping the handler replaces the *whole* mapping with private
//! anonymous zero pages (`mmap(MAP_FIXED)`, one system call), marks the mapping lost and
//! returns, so the faulting access completes (it reads zeros or writes into a page that no
//! other process sees). Every ring operation loads the mark once (an atomic load) and turns a
//! lost mapping into [`CoreError::CorruptFile`]. Faults outside our mappings go to the handler
//! that was installed before ours (Python's `faulthandler`, Rust's stack-overflow handler), or
//! to the default action.
//!
//! The slow paths (waits, attaching a reader, [`super::BidRing::check`]) also `fstat` the file
//! and compare the static header with the one validated at open, so a shrink or a replaced
//! header is noticed even before a page faults.

use std::io;
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use std::sync::Mutex;

use memmap2::MmapRaw;

/// Why a mapping was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lost {
    /// The file became shorter than the mapping.
    Shrank,
    /// The static header changed: the file was overwritten by other contents.
    Replaced,
    /// The pages could not be replaced (out of memory); only the slow paths see this.
    Failed,
}

// Slot states. A live mapping's slot is ACTIVE until it is lost, then POISONING while the
// pages are being replaced, then one of the LOST_* states.
const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const ACTIVE: u32 = 2;
const RETIRING: u32 = 3;
const POISONING: u32 = 4;
const LOST_SHRANK: u32 = 5;
const LOST_REPLACED: u32 = 6;
const LOST_FAILED: u32 = 7;

/// One registered mapping, readable from a signal handler (atomics only).
struct Slot {
    state: AtomicU32,
    /// Signal handlers currently looking at this slot; unregistering waits for zero.
    busy: AtomicU32,
    start: AtomicUsize,
    len: AtomicUsize,
    fd: AtomicI32,
}

impl Slot {
    const fn new() -> Self {
        Slot {
            state: AtomicU32::new(FREE),
            busy: AtomicU32::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            fd: AtomicI32::new(-1),
        }
    }
}

const CHUNK: usize = 64;

/// A block of slots; more blocks are leaked and linked when a process maps more rings.
struct Chunk {
    slots: [Slot; CHUNK],
    next: AtomicPtr<Chunk>,
}

static FIRST: Chunk =
    Chunk { slots: [const { Slot::new() }; CHUNK], next: AtomicPtr::new(ptr::null_mut()) };
static GROW: Mutex<()> = Mutex::new(());

fn for_each_slot(mut f: impl FnMut(&'static Slot) -> bool) -> bool {
    let mut chunk: &'static Chunk = &FIRST;
    loop {
        for s in &chunk.slots {
            if f(s) {
                return true;
            }
        }
        let next = chunk.next.load(Ordering::Acquire);
        if next.is_null() {
            return false;
        }
        // SAFETY: chunks are leaked boxes, never freed, published with Release.
        chunk = unsafe { &*next };
    }
}

fn claim_slot() -> &'static Slot {
    let mut found = None;
    for_each_slot(|s| {
        let ok =
            s.state.compare_exchange(FREE, CLAIMED, Ordering::AcqRel, Ordering::Relaxed).is_ok();
        if ok {
            found = Some(s);
        }
        ok
    });
    if let Some(s) = found {
        return s;
    }
    let _g = GROW.lock().unwrap_or_else(|e| e.into_inner());
    let mut last: &'static Chunk = &FIRST;
    loop {
        let next = last.next.load(Ordering::Acquire);
        if next.is_null() {
            break;
        }
        // SAFETY: as in `for_each_slot`.
        last = unsafe { &*next };
    }
    let chunk: &'static Chunk = Box::leak(Box::new(Chunk {
        slots: [const { Slot::new() }; CHUNK],
        next: AtomicPtr::new(ptr::null_mut()),
    }));
    chunk.slots[0].state.store(CLAIMED, Ordering::Relaxed);
    last.next.store(chunk as *const Chunk as *mut Chunk, Ordering::Release);
    &chunk.slots[0]
}

/// Gives the mapping up: replaces its pages with anonymous zero pages and records `why`.
/// Returns false only if the pages could not be replaced. Async-signal-safe.
fn poison(s: &Slot, why: u32) -> bool {
    loop {
        match s.state.compare_exchange(ACTIVE, POISONING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let (start, len) = (s.start.load(Ordering::Acquire), s.len.load(Ordering::Acquire));
                // SAFETY: [start, start + len) is a live mapping of ours: its slot was ACTIVE
                // and the owner unregisters (waiting for `busy` to drain) before unmapping.
                // Replacing it in one call keeps it mapped throughout; other threads see either
                // the file's pages or zero pages.
                let p = unsafe {
                    libc::mmap(
                        start as *mut libc::c_void,
                        len,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE
                            | libc::MAP_ANONYMOUS
                            | libc::MAP_FIXED
                            | libc::MAP_NORESERVE,
                        -1,
                        0,
                    )
                };
                let ok = p as usize == start;
                s.state.store(if ok { why } else { LOST_FAILED }, Ordering::Release);
                return ok;
            }
            Err(POISONING) => std::hint::spin_loop(),
            Err(st) => return st == LOST_SHRANK || st == LOST_REPLACED,
        }
    }
}

/// Runs `f` on every live registered slot, under the `busy` protocol. Async-signal-safe.
fn with_live_slots(mut f: impl FnMut(&Slot, u32) -> bool) -> bool {
    for_each_slot(|s| {
        s.busy.fetch_add(1, Ordering::SeqCst);
        let st = s.state.load(Ordering::SeqCst);
        let hit = st >= ACTIVE && st != RETIRING && f(s, st);
        s.busy.fetch_sub(1, Ordering::SeqCst);
        hit
    })
}

/// The fault at `addr`: if it lies in one of our mappings, give that mapping up.
fn handle_fault(addr: usize) -> bool {
    with_live_slots(|s, st| {
        let start = s.start.load(Ordering::Acquire);
        let inside = addr >= start && addr - start < s.len.load(Ordering::Acquire);
        inside && st != LOST_FAILED && poison(s, LOST_SHRANK)
    })
}

/// A `SIGBUS` re-raised by a handler that ran before ours (it carries no address): give up
/// every mapping whose file is now shorter than the mapping. True if there was one.
fn handle_reraised() -> bool {
    let mut any = false;
    with_live_slots(|s, st| {
        if st == ACTIVE {
            // SAFETY: fstat on the descriptor of a registered mapping (closed only after the
            // slot is unregistered); `st` is plain old data.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::fstat(s.fd.load(Ordering::Acquire), &mut stat) };
            if r == 0 && (stat.st_size as u64) < s.len.load(Ordering::Acquire) as u64 {
                any |= poison(s, LOST_SHRANK);
            }
        } else if st == POISONING {
            any |= poison(s, LOST_SHRANK);
        }
        false
    });
    any
}

/// A registered read-write shared mapping of a ring file.
pub(super) struct GuardedMap {
    map: MmapRaw,
    slot: &'static Slot,
}

impl GuardedMap {
    /// Maps `file` (whose descriptor `fd` must stay open as long as the mapping) and registers
    /// the mapping before anything touches it.
    pub(super) fn new(file: &std::fs::File, fd: RawFd) -> io::Result<Self> {
        handler::install();
        let map = MmapRaw::map_raw(file)?;
        let slot = claim_slot();
        slot.start.store(map.as_mut_ptr() as usize, Ordering::Relaxed);
        slot.len.store(map.len(), Ordering::Relaxed);
        slot.fd.store(fd, Ordering::Relaxed);
        slot.state.store(ACTIVE, Ordering::SeqCst);
        Ok(GuardedMap { map, slot })
    }

    #[inline]
    pub(super) fn as_mut_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.map.len()
    }

    pub(super) fn flush(&self) -> io::Result<()> {
        self.map.flush()
    }

    /// Whether the mapping was given up. One atomic load: the hot-path check.
    #[inline]
    pub(super) fn is_lost(&self) -> bool {
        self.slot.state.load(Ordering::Acquire) != ACTIVE
    }

    /// Why the mapping was given up, if it was.
    pub(super) fn lost(&self) -> Option<Lost> {
        match self.slot.state.load(Ordering::Acquire) {
            ACTIVE => None,
            LOST_REPLACED => Some(Lost::Replaced),
            LOST_FAILED => Some(Lost::Failed),
            _ => Some(Lost::Shrank),
        }
    }

    /// Gives the mapping up from ordinary code (a slow-path check found the file changed).
    pub(super) fn give_up(&self, why: Lost) {
        let code = match why {
            Lost::Shrank => LOST_SHRANK,
            Lost::Replaced => LOST_REPLACED,
            Lost::Failed => LOST_FAILED,
        };
        poison(self.slot, code);
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        // Unregister before `map` unmaps: no handler may replace pages that are not ours.
        let s = self.slot;
        s.state.store(RETIRING, Ordering::SeqCst);
        while s.busy.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        s.fd.store(-1, Ordering::Relaxed);
        s.state.store(FREE, Ordering::Release);
    }
}

#[cfg(target_os = "linux")]
mod handler {
    use std::cell::{Cell, UnsafeCell};
    use std::mem::MaybeUninit;

    use super::*;

    /// The dispositions found when ours was installed, newest last; each is written once,
    /// before `PREV_COUNT` publishes it, so the handler reads them without a lock.
    struct Prev {
        count: AtomicUsize,
        actions: [UnsafeCell<MaybeUninit<libc::sigaction>>; 8],
    }
    // SAFETY: an entry is written only under INSTALL and before `count` is raised past it;
    // readers read only entries below `count` (Acquire).
    unsafe impl Sync for Prev {}

    static PREV: Prev = Prev {
        count: AtomicUsize::new(0),
        actions: [const { UnsafeCell::new(MaybeUninit::uninit()) }; 8],
    };
    static INSTALL: Mutex<()> = Mutex::new(());

    thread_local! {
        /// Nesting of our handler on this thread while it runs a previous handler.
        static CHAINING: Cell<u32> = const { Cell::new(0) };
    }

    /// Makes ours the current `SIGBUS` handler unless it already is (someone may have
    /// installed theirs, or reset the default, since a ring was last mapped).
    pub(super) fn install() {
        let _g = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: querying and setting a signal disposition with valid, zeroed structs.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, ptr::null(), &mut cur) != 0 {
                return;
            }
            if cur.sa_sigaction == on_sigbus as *const () as usize {
                return;
            }
            let n = PREV.count.load(Ordering::Relaxed);
            if n == PREV.actions.len() {
                return; // reinstalled too often: leave the chain as it is
            }
            (*PREV.actions[n].get()).write(cur);
            PREV.count.store(n + 1, Ordering::Release);
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction = on_sigbus as *const () as usize;
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut ours.sa_mask);
            libc::sigaction(libc::SIGBUS, &ours, ptr::null_mut());
        }
    }

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
        let (code, addr, pid) =
            unsafe { ((*info).si_code, (*info).si_addr() as usize, (*info).si_pid()) };
        if code > 0 {
            // A fault: si_addr is the address that was accessed.
            if handle_fault(addr) {
                return;
            }
        } else if code == libc::SI_TKILL
            // SAFETY: getpid is async-signal-safe.
            && pid == unsafe { libc::getpid() }
            && handle_reraised()
        {
            return;
        }
        chain(sig, info, ctx, code > 0);
    }

    /// Hands the signal to the disposition that was current before ours.
    fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, fault: bool) {
        let depth = CHAINING.with(|c| c.get());
        let n = PREV.count.load(Ordering::Acquire);
        // SAFETY: entries below `count` are initialised and never written again.
        let prev: Option<libc::sigaction> = if depth == 0 && n > 0 {
            Some(unsafe { (*PREV.actions[n - 1].get()).assume_init() })
        } else {
            None
        };
        match prev {
            Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
                CHAINING.with(|c| c.set(depth + 1));
                if p.sa_flags & libc::SA_SIGINFO != 0 {
                    // SAFETY: the previous handler was installed with SA_SIGINFO, so it has
                    // this signature.
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        unsafe { std::mem::transmute(p.sa_sigaction) };
                    f(sig, info, ctx);
                } else {
                    // SAFETY: a plain handler takes the signal number.
                    let f: extern "C" fn(libc::c_int) =
                        unsafe { std::mem::transmute(p.sa_sigaction) };
                    f(sig);
                }
                CHAINING.with(|c| c.set(depth));
            }
            Some(p) if p.sa_sigaction == libc::SIG_IGN && !fault => {}
            _ => {
                // The default action: reset it; a fault then recurs when the access is retried
                // and ends the process as it would have without us; a sent signal is re-sent.
                // SAFETY: resetting a disposition and raising are async-signal-safe.
                unsafe {
                    let mut dfl: libc::sigaction = std::mem::zeroed();
                    dfl.sa_sigaction = libc::SIG_DFL;
                    libc::sigemptyset(&mut dfl.sa_mask);
                    libc::sigaction(sig, &dfl, ptr::null_mut());
                    if !fault {
                        libc::raise(sig);
                    }
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod handler {
    /// Other systems: no handler; the slow-path checks still notice a shrunk file.
    pub(super) fn install() {}
}
