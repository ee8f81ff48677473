//! Stress tests of the queue and the ring: every record delivered exactly once under many
//! producer and consumer threads, overrun detection, abandoned slots, corrupt headers.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rtbcore_core::queue::BidQueue;
use rtbcore_core::record::{BidRecord, KIND_PLACE};
use rtbcore_core::ring::{BidRing, RingMode, RingOptions, Start};
use rtbcore_core::CoreError;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rtbcore-ring-it-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn rec(producer: u64, i: u64) -> BidRecord {
    BidRecord::new(producer, i, (i % 1000) as f64, 1.0, KIND_PLACE)
}

#[test]
fn queue_exactly_once_4_producers_2_consumers() {
    const P: u64 = 4;
    const N: u64 = 200_000;
    let q = Arc::new(BidQueue::new(1024).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..P)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while i < N {
                    let block: Vec<_> = (i..(i + 37).min(N)).map(|k| rec(p, k)).collect();
                    let n = q.push_many(&block).unwrap() as u64;
                    i += n;
                    if n == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let n = q.pop_many(&mut got, 100);
                    if n == 0 {
                        if done.load(Ordering::Acquire) && q.is_empty() {
                            return got;
                        }
                        std::thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    done.store(true, Ordering::Release);
    let mut seen = HashSet::new();
    let mut last = vec![vec![None::<u64>; P as usize]; 2];
    for (c, h) in consumers.into_iter().enumerate() {
        for r in h.join().unwrap() {
            assert!(seen.insert((r.auction_id, r.bidder_id)), "duplicate {r:?}");
            // FIFO per producer as seen by one consumer.
            let l = &mut last[c][r.auction_id as usize];
            assert!(l.is_none_or(|x| x < r.bidder_id));
            *l = Some(r.bidder_id);
        }
    }
    assert_eq!(seen.len() as u64, P * N);
}

fn ring_exactly_once(mode: RingMode, name: &str) {
    const P: u64 = 4;
    const N: u64 = 50_000;
    let path = tmp(name);
    let ring = Arc::new(
        BidRing::create(&path, RingOptions { capacity: 4096, mode, ..Default::default() }).unwrap(),
    );
    let readers: Vec<_> =
        ["r0", "r1"].iter().map(|n| ring.reader(n, Start::Oldest).unwrap()).collect();
    let start = Arc::new(Barrier::new(P as usize));
    let producers: Vec<_> = (0..P)
        .map(|p| {
            // Each producer opens its own handle, as a separate process would.
            let path = path.clone();
            let start = start.clone();
            std::thread::spawn(move || {
                let ring = BidRing::open(&path, Some(48)).unwrap();
                start.wait();
                let mut i = 0;
                while i < N {
                    let block: Vec<_> = (i..(i + 1 + (i % 50)).min(N)).map(|k| rec(p, k)).collect();
                    let n = ring.append_many(&block).unwrap() as u64;
                    i += n;
                    if n == 0 {
                        ring.wait_for_space(1, Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut next = 0u64;
                while (got.len() as u64) < P * N {
                    let b = r.read(777).unwrap();
                    assert_eq!(b.start_seq(), next);
                    next += b.len() as u64;
                    got.extend_from_slice(b.records());
                    if b.is_empty() {
                        r.wait(Duration::from_millis(50));
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    for h in consumers {
        let got = h.join().unwrap();
        let mut seen = HashSet::new();
        let mut last = vec![None::<u64>; P as usize];
        for r in &got {
            assert!(seen.insert((r.auction_id, r.bidder_id)), "duplicate {r:?}");
            let l = &mut last[r.auction_id as usize];
            assert!(l.is_none_or(|x| x < r.bidder_id), "producer order broken");
            *l = Some(r.bidder_id);
        }
        assert_eq!(seen.len() as u64, P * N);
    }
    assert_eq!(ring.tail(), P * N);
    assert_eq!(ring.lost_writes(), 0);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn ring_exactly_once_backpressure_4_producers_2_readers() {
    ring_exactly_once(RingMode::Backpressure, "bp-stress");
}

#[test]
fn ring_broadcast_readers_see_ordered_records_or_overrun() {
    let path = tmp("bc-stress");
    let ring = Arc::new(
        BidRing::create(
            &path,
            RingOptions { capacity: 256, mode: RingMode::Broadcast, ..Default::default() },
        )
        .unwrap(),
    );
    let mut r = ring.reader("slow", Start::Oldest).unwrap();
    let w = {
        let ring = ring.clone();
        std::thread::spawn(move || {
            for i in 0..200_000u64 {
                assert!(ring.append(&rec(0, i)).unwrap());
            }
        })
    };
    let (mut got, mut lost) = (0u64, 0u64);
    let mut next = 0u64;
    while next < 200_000 {
        match r.read(100) {
            Ok(b) => {
                for (k, x) in b.records().iter().enumerate() {
                    // Never garbage: the record at seq s is exactly what was written as s.
                    assert_eq!(x.bidder_id, b.start_seq() + k as u64);
                    assert_eq!(x.price, (x.bidder_id % 1000) as f64);
                }
                assert_eq!(b.start_seq(), next);
                next += b.len() as u64;
                got += b.len() as u64;
                if b.is_empty() {
                    r.wait(Duration::from_millis(10));
                }
            }
            Err(CoreError::Overrun { lost: l, next_seq }) => {
                assert_eq!(next + l, next_seq);
                lost += l;
                next = next_seq;
            }
            Err(e) => panic!("{e}"),
        }
    }
    w.join().unwrap();
    assert_eq!(got + lost, 200_000);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn abandoned_slot_is_skipped_after_timeout_and_commits_survive_reopen() {
    let path = tmp("abandon");
    let ring = BidRing::create(&path, RingOptions { capacity: 64, ..Default::default() }).unwrap();
    ring.append_many(&[rec(0, 0), rec(0, 1)]).unwrap();
    assert_eq!(ring.reserve_and_die(3).unwrap(), 3); // a writer dies holding 3 slots
    ring.append_many(&[rec(0, 5)]).unwrap(); // a live writer commits after them
    {
        let mut r = ring.reader("live", Start::Oldest).unwrap();
        r.set_abandon_after(Duration::from_millis(30));
        assert_eq!(r.read(10).unwrap().len(), 2);
        // Head-of-line: the dead slots block the reader until abandon_after has passed.
        assert_eq!(r.read(10).unwrap().len(), 0);
        assert!(r.wait(Duration::from_secs(5)));
        let mut got = Vec::new();
        for _ in 0..100 {
            let b = r.read(10).unwrap();
            got.extend(b.records().iter().map(|x| x.bidder_id));
            if !got.is_empty() {
                break;
            }
            r.wait(Duration::from_millis(50));
        }
        assert_eq!(got, vec![5]);
        assert_eq!(ring.abandoned(), 3);
    }
    ring.reserve_and_die(1).unwrap();
    ring.append_many(&[rec(0, 7)]).unwrap();
    drop(ring);
    let ring = BidRing::open(&path, None).unwrap();
    let mut r = ring.reader("x", Start::Oldest).unwrap();
    r.set_abandon_after(Duration::from_secs(3600));
    let b = r.read(10).unwrap();
    assert_eq!(b.records().iter().map(|x| x.bidder_id).collect::<Vec<_>>(), vec![0, 1]);
    // After a restart with no writer alive, recovery marks the dead slot at once.
    assert_eq!(ring.abandon_incomplete(), 1);
    let mut got = Vec::new();
    for _ in 0..10 {
        got.extend(r.read(10).unwrap().records().iter().map(|x| x.bidder_id));
    }
    assert_eq!(got, vec![5, 7]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn open_rejects_wrong_record_size_and_create_refuses_existing() {
    let path = tmp("sizes");
    let ring =
        BidRing::create(&path, RingOptions { capacity: 16, record_size: 16, ..Default::default() })
            .unwrap();
    assert!(matches!(ring.append_many(&[rec(0, 0)]), Err(CoreError::InvalidInput { .. })));
    assert_eq!(ring.append_bytes(&[1u8; 32]).unwrap(), 2);
    assert!(matches!(BidRing::open(&path, Some(48)), Err(CoreError::InvalidInput { .. })));
    assert!(matches!(BidRing::create(&path, RingOptions::default()), Err(CoreError::Io { .. })));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    std::fs::remove_file(&path).unwrap();
}

/// Creates a 16-record ring, changes its header bytes with `patch`, and returns the message of
/// the `CorruptFile` error that opening it gives.
fn open_patched(name: &str, patch: impl FnOnce(&mut [u8])) -> String {
    let path = tmp(name);
    drop(BidRing::create(&path, RingOptions { capacity: 16, ..Default::default() }).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    patch(&mut bytes);
    std::fs::write(&path, &bytes).unwrap();
    let msg = match BidRing::open(&path, None) {
        Err(CoreError::CorruptFile { msg, .. }) => msg,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened a corrupt ring"),
    };
    std::fs::remove_file(&path).unwrap();
    msg
}

#[test]
fn flipped_header_byte_is_corrupt() {
    let msg = open_patched("flip", |b| b[17] ^= 0x40); // capacity
    assert!(msg.contains("checksum"), "{msg}");
}

#[test]
fn an_older_format_version_is_refused_with_a_clear_message() {
    let msg = open_patched("v1", |b| b[8..12].copy_from_slice(&1u32.to_le_bytes()));
    assert!(msg.contains("version 1") && msg.contains("older"), "{msg}");
}
