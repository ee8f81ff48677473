//! Fuzzing of the ring file format with a stable harness (proptest): random header bytes,
//! field values (with the checksum recomputed, so that validation goes past it), shared-state
//! words, stamps, truncations and extensions of a valid ring file, and truncation of a file
//! while it is mapped. Opening and reading must return an error or well-formed data: no panic,
//! no hang, no SIGBUS.
//!
//! `make test` runs a bounded number of cases; a longer run:
//! `RING_FUZZ_CASES=200000 cargo test --release -p rtbcore-core --test ring_fuzz`.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use rtbcore_core::record::{BidRecord, KIND_PLACE};
use rtbcore_core::ring::{BidRing, RingMode, RingOptions, Start};
use rtbcore_core::CoreError;

const CAPACITY: u64 = 16;
const RECORDS: u64 = 11;
/// Offsets of the static header fields (see the format table in `ring/layout.rs`).
const STATIC_FIELDS: [(usize, usize); 11] = [
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 4),
    (28, 4),
    (32, 8),
    (40, 8),
    (48, 8),
    (56, 8),
    (64, 4),
    (512, 8),
];
/// Offsets of shared-state words: tail, futexes, closed, epoch, counters, reader entries.
const SHARED_WORDS: [usize; 10] = [128, 192, 256, 320, 324, 384, 392, 1024, 1032, 1088];
const STAMPS: usize = 8192;
const CHECKSUM: usize = 72;

fn cases() -> u32 {
    std::env::var("RING_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

fn rec(i: u64) -> BidRecord {
    BidRecord::new(i, 7, 1.0 + i as f64, 1.0, KIND_PLACE)
}

/// FNV-1a over bytes 0..72 and the 256-byte tag area, as the format defines the checksum.
fn checksum(file: &[u8]) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    for b in file[..CHECKSUM].iter().chain(&file[512..768]) {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Any byte of the first pages.
    Byte { off: usize, val: u8 },
    /// A static field set to a value, the checksum fixed up.
    Field { which: usize, val: u64 },
    /// A shared-state word.
    Shared { which: usize, val: u64 },
    /// A slot stamp.
    Stamp { slot: usize, val: u64 },
    /// The file cut or extended.
    Resize { len: u64 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let special = prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(1 << 62),
        Just(1 << 63),
        Just(CAPACITY),
        Just(RECORDS),
        any::<u64>()
    ];
    prop_oneof![
        (0..12800usize, any::<u8>()).prop_map(|(off, val)| Mutation::Byte { off, val }),
        (0..STATIC_FIELDS.len(), special.clone())
            .prop_map(|(which, val)| Mutation::Field { which, val }),
        (0..SHARED_WORDS.len(), special.clone())
            .prop_map(|(which, val)| Mutation::Shared { which, val }),
        (0..CAPACITY as usize, special).prop_map(|(slot, val)| Mutation::Stamp { slot, val }),
        (0..13000u64).prop_map(|len| Mutation::Resize { len }),
    ]
}

fn apply(file: &mut Vec<u8>, m: &Mutation) {
    let put = |file: &mut Vec<u8>, off: usize, bytes: &[u8]| {
        if off + bytes.len() <= file.len() {
            file[off..off + bytes.len()].copy_from_slice(bytes);
        }
    };
    match *m {
        Mutation::Byte { off, val } => put(file, off, &[val]),
        Mutation::Field { which, val } => {
            let (off, size) = STATIC_FIELDS[which];
            put(file, off, &val.to_le_bytes()[..size]);
            if file.len() >= 768 {
                let sum = checksum(file);
                put(file, CHECKSUM, &sum.to_le_bytes());
            }
        }
        Mutation::Shared { which, val } => put(file, SHARED_WORDS[which], &val.to_le_bytes()),
        Mutation::Stamp { slot, val } => put(file, STAMPS + 8 * slot, &val.to_le_bytes()),
        Mutation::Resize { len } => file.resize(len as usize, 0),
    }
}

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rtbcore-ring-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(tag)
}

/// A valid ring file: RECORDS bids appended, reader "a" holding the first few.
fn pristine(mode: RingMode) -> Vec<u8> {
    let p = tmp(&format!("pristine-{mode:?}"));
    let _ = std::fs::remove_file(&p);
    let ring = BidRing::create(&p, RingOptions { capacity: CAPACITY, mode, ..Default::default() })
        .unwrap();
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    let recs: Vec<_> = (0..RECORDS).map(rec).collect();
    assert_eq!(ring.append_many(&recs).unwrap(), RECORDS as usize);
    assert_eq!(r.read(3).unwrap().len(), 3);
    drop((r, ring));
    let bytes = std::fs::read(&p).unwrap();
    std::fs::remove_file(&p).unwrap();
    bytes
}

/// Everything a reader does with a ring it could open; each result must be an error or
/// well-formed.
fn exercise(path: &Path, ops: &[(u8, u16)]) {
    let ring = match BidRing::open(path, None) {
        Ok(r) => r,
        Err(CoreError::CorruptFile { .. } | CoreError::InvalidInput { .. }) => return,
        Err(e) => panic!("open failed with an unexpected error: {e}"),
    };
    let rs = ring.record_size();
    let _ = ring.readers();
    let _ = ring.check();
    let Ok(mut r) = ring.reader(if ops.len() % 2 == 0 { "a" } else { "fuzz" }, Start::Oldest)
    else {
        return;
    };
    r.set_abandon_after(Duration::ZERO);
    for &(op, arg) in ops {
        match op % 5 {
            0 | 1 => {
                if let Ok(b) = r.read(arg as usize % 40) {
                    assert!(b.len() <= arg as usize % 40);
                    assert_eq!(b.bytes().len(), b.len() * rs);
                    if rs == BidRecord::SIZE {
                        assert_eq!(b.records().len(), b.len());
                    }
                }
            }
            2 => {
                let _ = r.commit();
            }
            3 => {
                let _ = r.replay(arg as u64);
            }
            _ => {
                let _ = r.wait(Duration::ZERO);
                let _ = ring.abandon_incomplete();
            }
        }
    }
}

/// A case still running after this long is a hang.
const WATCHDOG: Duration = Duration::from_secs(20);

/// Runs one case under a watchdog: a hung case aborts the process naming its input, rather
/// than keeping the test run waiting.
fn guarded(case: String, f: impl FnOnce()) {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let dog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(WATCHDOG) {
            eprintln!("ring_fuzz: a case ran for more than {WATCHDOG:?}: {case}");
            std::process::abort();
        }
    });
    f();
    drop(done);
    dog.join().unwrap();
}

fn ops() -> impl Strategy<Value = Vec<(u8, u16)>> {
    proptest::collection::vec((any::<u8>(), any::<u16>()), 0..12)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn a_corrupted_ring_file_is_refused_or_read_safely(
        broadcast in any::<bool>(),
        muts in proptest::collection::vec(mutation(), 1..5),
        ops in ops(),
    ) {
        let mode = if broadcast { RingMode::Broadcast } else { RingMode::Backpressure };
        let mut file = pristine(mode);
        for m in &muts {
            apply(&mut file, m);
        }
        let p = tmp("corrupt");
        std::fs::write(&p, &file).unwrap();
        guarded(format!("mode {mode:?}, mutations {muts:?}, ops {ops:?}"), || exercise(&p, &ops));
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn a_ring_file_cut_while_mapped_gives_errors_not_sigbus(
        len in 0..13000u64,
        ops in ops(),
        then_append in any::<bool>(),
    ) {
        let p = tmp("cut");
        let _ = std::fs::remove_file(&p);
        let ring = BidRing::create(&p, RingOptions { capacity: CAPACITY, ..Default::default() })
            .unwrap();
        let mut r = ring.reader("a", Start::Oldest).unwrap();
        let recs: Vec<_> = (0..RECORDS).map(rec).collect();
        ring.append_many(&recs).unwrap();
        let full = std::fs::metadata(&p).unwrap().len();
        let batch = r.read(5).unwrap();
        OpenOptions::new().write(true).open(&p).unwrap().set_len(len).unwrap();
        // The view handed out before the cut: still readable; each byte the record's own or,
        // for bytes the file no longer has, zero.
        let want: Vec<u8> = recs[..5]
            .iter()
            .flat_map(|x| {
                let mut b = x.auction_id.to_le_bytes().to_vec();
                b.extend(x.bidder_id.to_le_bytes());
                b.extend(x.price.to_le_bytes());
                b.extend(x.quality.to_le_bytes());
                b.extend(x.timestamp_ns.to_le_bytes());
                b.extend([x.kind, 0, 0, 0, 0, 0, 0, 0]);
                b
            })
            .collect();
        prop_assert!(batch.bytes().iter().zip(&want).all(|(b, w)| b == w || *b == 0));
        prop_assert_eq!(ring.check().is_err(), len < full);
        if then_append {
            let _ = ring.append_many(&recs);
        }
        guarded(format!("cut to {len}, ops {ops:?}"), || exercise(&p, &ops));
        for &(_, arg) in &ops {
            match r.read(arg as usize % 8) {
                Ok(b) => prop_assert!(b.len() <= 8),
                Err(CoreError::CorruptFile { .. }) => prop_assert!(len < full),
                Err(e) => prop_assert!(false, "unexpected error {e}"),
            }
        }
        std::fs::remove_file(&p).unwrap();
    }
}
