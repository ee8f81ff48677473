//! Unit tests of the ring module.

use std::fs::OpenOptions;
use std::path::PathBuf;

use super::layout::HEADER_LEN;
use super::*;
use crate::record::KIND_PLACE;

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("rtbcore-ring-unit-{}-{name}", std::process::id()));
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
