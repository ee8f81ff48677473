//! Unit tests of the ring module.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::time::Duration;

use super::layout::HEADER_LEN;
use super::*;
use crate::record::KIND_PLACE;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rtbcore-ring-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// A fresh 8-record backpressure ring at `tmp(name)`.
fn ring8(name: &str) -> (PathBuf, BidRing) {
    let p = tmp(name);
    let ring = BidRing::create(&p, RingOptions { capacity: 8, ..Default::default() }).unwrap();
    (p, ring)
}

fn rec(i: u64) -> BidRecord {
    BidRecord::new(i, 1, i as f64, 1.0, KIND_PLACE)
}

#[test]
fn flush_writes_what_was_appended_to_the_file() {
    let (p, ring) = ring8("flush");
    assert_eq!(ring.append_many(&[rec(41), rec(42)]).unwrap(), 2);
    ring.flush().unwrap();
    // the file's bytes (read past the mapping) hold both records
    let bytes = std::fs::read(&p).unwrap();
    let find = |id: u64| {
        let r = rec(id);
        // SAFETY: BidRecord is repr(C) plain data; viewing it as bytes reads its 48 bytes
        let b = unsafe {
            std::slice::from_raw_parts(&r as *const BidRecord as *const u8, BidRecord::SIZE)
        };
        bytes.windows(BidRecord::SIZE).any(|w| w == b)
    };
    assert!(find(41) && find(42));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn append_read_commit_backpressure() {
    let (p, ring) = ring8("bp");
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

fn corrupt(r: Result<impl Sized, CoreError>) -> String {
    match r {
        Err(CoreError::CorruptFile { msg, .. }) => msg,
        Err(e) => panic!("expected CorruptFile, got {e}"),
        Ok(_) => panic!("expected CorruptFile, got Ok"),
    }
}

#[test]
fn a_file_shrunk_under_the_mapping_is_corrupt_not_sigbus() {
    let p = tmp("shrink");
    let ring = BidRing::create(&p, RingOptions { capacity: 64, ..Default::default() }).unwrap();
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    let recs: Vec<_> = (1..41).map(rec).collect();
    assert_eq!(ring.append_many(&recs).unwrap(), 40);
    let batch = r.read(10).unwrap();
    assert_eq!(batch.records()[3].auction_id, 4);
    OpenOptions::new().write(true).open(&p).unwrap().set_len(4096).unwrap();
    // The zero-copy view handed out before: its pages are gone from the file, so it reads
    // zeros instead of killing the process.
    assert!(batch.bytes().iter().all(|b| *b == 0));
    assert!(corrupt(r.read(10)).contains("shrank"));
    corrupt(r.commit());
    corrupt(ring.append_many(&recs));
    corrupt(ring.append(&recs[0]));
    corrupt(ring.check());
    corrupt(ring.reader("b", Start::Oldest));
    corrupt(ring.wait_for_room(1, Duration::from_millis(1)));
    assert!(r.wait(Duration::from_secs(5)), "a wait ends at once on a lost mapping");
    // Another handle that has not touched a missing page yet finds out on its next check.
    corrupt(BidRing::open(&p, None));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_shrink_between_accesses_is_seen_by_the_slow_path_check() {
    let (p, ring) = ring8("shrink-slow");
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    // Shrink by one page only: the stamps and the first records are still in the file.
    let len = std::fs::metadata(&p).unwrap().len();
    OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 1).unwrap();
    assert!(corrupt(r.check()).contains("shrank"));
    corrupt(r.read(1));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_file_overwritten_by_another_ring_is_corrupt() {
    let (p, ring) = ring8("replaced");
    let (q, other) = ring8("replacement");
    drop(other);
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    // What `cp other.ring ring` does: same inode, truncated, then rewritten.
    std::fs::write(&p, std::fs::read(&q).unwrap()).unwrap();
    corrupt(r.check());
    corrupt(r.read(1));
    corrupt(ring.append(&rec(1)));
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_file(&q).unwrap();
}

#[test]
fn the_record_type_is_recorded_and_checked() {
    const EVENT_SIZE: usize = crate::engine::EventRecord::SIZE;
    let p = tmp("types");
    let opts = RingOptions {
        capacity: 8,
        record_size: EVENT_SIZE,
        record_type: Some(RecordType::EVENT),
        mode: RingMode::Broadcast,
        ..Default::default()
    };
    let ring = BidRing::create(&p, opts).unwrap();
    assert_eq!(ring.record_type(), RecordType::EVENT);
    // A 48-byte open asks for bids: an event ring is refused, naming both types.
    let msg = match BidRing::open(&p, Some(48)) {
        Err(CoreError::InvalidInput { field: "record_type", msg }) => msg,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an event ring opened as bids"),
    };
    assert!(msg.contains("rtbcore.event") && msg.contains("rtbcore.bid"), "{msg}");
    assert!(BidRing::open_as(&p, RecordType::BID).is_err());
    assert!(
        BidRing::open_as(&p, RecordType::new("rtbcore.event", 56 + EVENT_SIZE).unwrap()).is_err()
    );
    assert_eq!(BidRing::open_as(&p, RecordType::EVENT).unwrap().record_size(), EVENT_SIZE);
    assert_eq!(BidRing::open(&p, None).unwrap().record_type(), RecordType::EVENT);
    // Bid appends are refused on a ring of events; raw appends are the event log's path.
    assert!(ring.append(&rec(1)).is_err());
    assert_eq!(ring.append_bytes(&[0u8; EVENT_SIZE]).unwrap(), 1);
    std::fs::remove_file(&p).unwrap();

    let bad = RingOptions { record_size: 56, record_type: Some(RecordType::BID), ..opts };
    assert!(matches!(
        BidRing::create(&p, bad),
        Err(CoreError::InvalidInput { field: "record_type", .. })
    ));
    assert!(RecordType::new("", 8).is_err());
    assert!(RecordType::new("tab\there", 8).is_err());
    assert!(RecordType::new(&"x".repeat(MAX_TAG_LEN + 1), 8).is_err());
    assert!(RecordType::new("ok", 12).is_err());
    let raw =
        BidRing::create(&p, RingOptions { record_size: 16, record_type: None, ..opts }).unwrap();
    assert_eq!(raw.record_type().tag(), RecordType::RAW_TAG);
    assert!(BidRing::open(&p, Some(16)).is_ok());
    assert!(BidRing::open(&p, Some(24)).is_err());
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn wait_for_room_refuses_what_can_never_fit() {
    let (p, ring) = ring8("room");
    assert!(matches!(
        ring.wait_for_room(1_000_000, Duration::ZERO),
        Err(CoreError::InvalidInput { field: "n", .. })
    ));
    assert!(!ring.wait_for_space(1_000_000, Duration::ZERO));
    assert!(ring.wait_for_room(8, Duration::ZERO).unwrap());
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn unread_hands_the_batch_back() {
    let (p, ring) = ring8("unread");
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    let recs: Vec<_> = (0..5).map(rec).collect();
    ring.append_many(&recs).unwrap();
    assert_eq!(r.read(3).unwrap().len(), 3);
    r.unread();
    assert_eq!(r.acknowledged(), 0);
    let b = r.read(10).unwrap();
    assert_eq!((b.start_seq(), b.len()), (0, 5));
    std::fs::remove_file(&p).unwrap();
}

#[test]
fn a_tail_corrupted_far_ahead_does_not_keep_a_read_busy() {
    let (p, ring) = ring8("far-tail");
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    r.set_abandon_after(Duration::ZERO);
    ring.append_many(&[rec(1), rec(2)]).unwrap();
    // A tail word 2^62 records ahead: every slot past the records looks reserved and stalled.
    ring.inner.tail().store(1 << 62, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(r.read(8).unwrap().len(), 2);
    let started = std::time::Instant::now();
    let n = r.read(8).map(|b| b.len()).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(5), "read took {:?}", started.elapsed());
    std::fs::remove_file(&p).unwrap();
}

/// Pages of `[p, p + len)` (rounded out to whole pages) the kernel holds in memory.
#[cfg(target_os = "linux")]
fn resident_pages(p: *const u8, len: usize) -> (usize, usize) {
    let page = 4096usize;
    let start = p as usize / page * page;
    let n = (p as usize + len).div_ceil(page) - start / page;
    let mut v = vec![0u8; n];
    // SAFETY: mincore only reports on the range (inside the ring's live mapping) into `v`,
    // which has one byte per page of it.
    let rc = unsafe { libc::mincore(start as *mut libc::c_void, n * page, v.as_mut_ptr()) };
    assert_eq!(rc, 0);
    (v.iter().filter(|b| **b & 1 == 1).count(), n)
}

#[cfg(target_os = "linux")]
#[test]
fn prefault_brings_in_every_page_and_keeps_the_records() {
    let p = tmp("prefault");
    let ring =
        BidRing::create(&p, RingOptions { capacity: 1 << 18, ..Default::default() }).unwrap();
    assert_eq!(ring.append_many(&[rec(7), rec(8)]).unwrap(), 2);
    let len = ring.capacity() as usize * ring.record_size();
    let (before, pages) = resident_pages(ring.records_ptr().as_ptr(), len);
    assert!(before < pages, "a fresh 12 MB ring is not all in memory yet ({before} of {pages})");
    assert!(ring.prefault());
    assert_eq!(resident_pages(ring.records_ptr().as_ptr(), len), (pages, pages));
    let mut r = ring.reader("a", Start::Oldest).unwrap();
    let ids: Vec<u64> = r.read(10).unwrap().records().iter().map(|x| x.auction_id).collect();
    assert_eq!(ids, vec![7, 8]);
    drop(r);
    std::fs::remove_file(&p).unwrap();
}
