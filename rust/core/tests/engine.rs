//! Integration tests of the auction engine against the clearing kernels.

use std::time::Duration;

use proptest::prelude::*;
use rtbcore_core::clearing::{clear_segment, clear_segment_slots, SinglePrice, SlotPrice};
use rtbcore_core::engine::*;
use rtbcore_core::record::{Field, KIND_CANCEL, KIND_DECLINE, KIND_PLACE, KIND_UPDATE};
use rtbcore_core::CoreError;

fn engine(workers: usize, mechanism: Mechanism) -> Engine {
    Engine::start(EngineConfig {
        workers,
        pin: false,
        mechanism,
        reserve: 0.0,
        increment: 0.0,
        tmax_ns: 60_000_000_000,
        capacity: 1 << 16,
        rejected_capacity: None,
        event_sink: None,
    })
    .unwrap()
}

fn open(e: &Engine, ids: &[u64], expected: u32, tmax_ns: Option<u64>) {
    let now = mono_ns();
    let reqs: Vec<_> =
        ids.iter().map(|&a| e.open_request(a, None, tmax_ns, expected, now)).collect();
    e.open(&reqs).unwrap();
}

fn submit(e: &Engine, a: &[u64], b: &[u64], p: &[f64], kinds: Option<&[u8]>) -> usize {
    let arrays = BidArrays { auction_ids: a, bidder_ids: b, prices: p, quality: None, kinds };
    e.submit(&arrays, Duration::from_secs(10)).unwrap()
}

fn collect(e: &Engine, n: usize) -> Vec<AuctionResult> {
    let mut out = Vec::new();
    let t0 = std::time::Instant::now();
    while out.len() < n && t0.elapsed() < Duration::from_secs(20) {
        e.wait_results(Duration::from_millis(20));
        e.poll_into(&mut out, usize::MAX);
    }
    out.sort_by_key(|r| (r.auction_id, r.slot));
    out
}

#[test]
fn second_price_closes_on_expected_bids() {
    let e = engine(2, Mechanism::SecondPrice);
    open(&e, &[1, 2], 3, None);
    submit(
        &e,
        &[1, 2, 1, 2, 1, 2],
        &[10, 10, 11, 11, 12, 12],
        &[1.0, 5.0, 3.0, 4.0, 2.0, 1.0],
        None,
    );
    let r = collect(&e, 2);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].winner_bidder, r[0].price, r[0].n_bids), (11, 2.0, 3));
    assert_eq!((r[1].winner_bidder, r[1].price), (10, 4.0));
    assert!(r.iter().all(|x| x.closed_by == CLOSED_BY_ALL_BIDS));
    let s = e.stats();
    assert_eq!(s.counters.bids_placed, 6);
    assert_eq!(s.last_bid_to_result.count, 2);
    e.close().unwrap();
    assert_eq!(e.live_threads(), 0);
}

#[test]
fn updates_replace_and_cancels_remove() {
    let e = engine(1, Mechanism::FirstPrice);
    open(&e, &[7], 0, None);
    submit(
        &e,
        &[7, 7, 7, 7],
        &[1, 2, 1, 2],
        &[5.0, 4.0, 1.0, 0.0],
        Some(&[KIND_PLACE, KIND_PLACE, KIND_UPDATE, KIND_CANCEL]),
    );
    e.close().unwrap();
    let r = collect(&e, 1);
    assert_eq!((r[0].winner_bidder, r[0].price, r[0].n_bids), (1, 1.0, 1));
    assert_eq!(r[0].closed_by, CLOSED_BY_SHUTDOWN);
    let c = e.stats().counters;
    assert_eq!((c.bids_placed, c.bids_updated, c.bids_cancelled), (2, 1, 1));
}

#[test]
fn declines_count_toward_expected_bids() {
    let e = engine(1, Mechanism::FirstPrice);
    open(&e, &[7, 8], 4, Some(60_000_000_000));
    // auction 7: a bid, a decline, a bid withdrawn by its bidder's decline (which counts that
    // bidder once), and the fourth answer: a decline
    submit(
        &e,
        &[7, 7, 7, 7, 7, 8],
        &[1, 2, 3, 3, 4, 1],
        &[5.0, f64::NAN, 4.0, 0.0, 0.0, 1.0],
        Some(&[KIND_PLACE, KIND_DECLINE, KIND_PLACE, KIND_DECLINE, KIND_DECLINE, KIND_PLACE]),
    );
    let r = collect(&e, 1);
    assert_eq!((r[0].auction_id, r[0].winner_bidder, r[0].n_bids), (7, 1, 1));
    assert_eq!(r[0].closed_by, CLOSED_BY_ALL_BIDS);
    submit(&e, &[8, 8], &[2, 2], &[0.0, 0.0], Some(&[KIND_DECLINE, KIND_DECLINE]));
    e.close().unwrap();
    let r = collect(&e, 1);
    assert_eq!((r[0].auction_id, r[0].closed_by), (8, CLOSED_BY_SHUTDOWN)); // 2 of 4 answered
    assert_eq!(e.stats().counters.bids_declined, 5);
}

#[test]
fn late_and_unknown_bids_are_rejected_and_counted() {
    let e = engine(2, Mechanism::SecondPrice);
    open(&e, &[1], 1, None);
    submit(&e, &[1], &[1], &[1.0], None);
    collect(&e, 1);
    submit(&e, &[1, 99], &[2, 2], &[1.0, 1.0], None);
    e.close().unwrap();
    let mut rej = Vec::new();
    e.poll_rejected_into(&mut rej, 10);
    rej.sort_by_key(|r| r.auction_id);
    assert_eq!(rej.len(), 2);
    assert_eq!((rej[0].cause, rej[1].cause), (REJECT_LATE, REJECT_UNKNOWN));
    assert!(rej.iter().all(|r| r.loss_reason == LOSS_EXPIRED));
    let c = e.stats().counters;
    assert_eq!((c.rejected_late, c.rejected_unknown), (1, 1));
}

#[test]
fn deadline_closes_auctions() {
    let e = engine(2, Mechanism::SecondPrice);
    open(&e, &[1, 2, 3], 0, Some(5_000_000));
    submit(&e, &[1], &[1], &[1.0], None);
    let r = collect(&e, 3);
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|x| x.closed_by == CLOSED_BY_DEADLINE));
    assert!(r.iter().all(|x| x.open_to_close_ns >= 5_000_000));
    assert_eq!(r[0].winner_bidder, 1);
    assert_eq!(r[1].winner_bidder, NO_BIDDER);
}

#[test]
fn shutdown_reports_every_open_auction_with_many_workers() {
    let e = engine(16, Mechanism::SecondPrice);
    let ids: Vec<u64> = (0..1000).collect();
    open(&e, &ids, 0, None);
    e.close().unwrap();
    let r = collect(&e, 1000);
    assert_eq!(r.len(), 1000);
    assert!(r.iter().all(|x| x.closed_by == CLOSED_BY_SHUTDOWN && x.winner_bidder == NO_BIDDER));
    assert!(matches!(
        e.submit(
            &BidArrays {
                auction_ids: &[1],
                bidder_ids: &[1],
                prices: &[1.0],
                quality: None,
                kinds: None
            },
            Duration::ZERO
        ),
        Err(rtbcore_core::CoreError::Closed)
    ));
}

#[test]
fn bad_input_names_argument_and_index_and_queues_nothing() {
    let e = engine(2, Mechanism::SecondPrice);
    let bad = BidArrays {
        auction_ids: &[1, 2],
        bidder_ids: &[1, 2],
        prices: &[1.0, f64::NAN],
        quality: None,
        kinds: None,
    };
    let err = e.submit(&bad, Duration::ZERO).unwrap_err();
    assert!(matches!(err, CoreError::InvalidBid { field: Field::Price, index: 1, .. }), "{err}");
    let bad = BidArrays {
        auction_ids: &[1, 1 << 63],
        bidder_ids: &[1, 2],
        prices: &[1.0, 1.0],
        quality: None,
        kinds: None,
    };
    let err = e.submit(&bad, Duration::ZERO).unwrap_err();
    assert_eq!(err.to_string(), "auction_id[1] = 9223372036854775808: must be in 0..=2**63-1");
    let bad = BidArrays {
        auction_ids: &[1],
        bidder_ids: &[1, 2],
        prices: &[1.0],
        quality: None,
        kinds: None,
    };
    assert!(e.submit(&bad, Duration::ZERO).unwrap_err().to_string().contains("bidder_ids"));
    assert_eq!(e.stats().submitted, 0);
}

/// Reference: live bids sorted by bidder id, cleared by the kernel.
fn reference(
    rule: Option<SinglePrice>,
    slots: Option<(SlotPrice, &[f64])>,
    bids: &[(u64, f64)],
) -> Vec<(u64, f64)> {
    let mut b = bids.to_vec();
    b.sort_by_key(|x| x.0);
    let prices: Vec<f64> = b.iter().map(|x| x.1).collect();
    if let Some(rule) = rule {
        let n = prices.len();
        let (mut m, mut l) = (vec![0.0; n], vec![0; n]);
        let o = clear_segment(rule, &prices, None, 0.0, 0.0, &mut m, &mut l);
        let w = if o.winner >= 0 { b[o.winner as usize].0 } else { NO_BIDDER };
        return vec![(w, o.price)];
    }
    let (rule, ctrs) = slots.unwrap();
    let k = ctrs.len();
    let (mut w, mut p) = (vec![0i64; k], vec![0.0; k]);
    clear_segment_slots(rule, &prices, None, 0.0, 0.0, ctrs, &mut Vec::new(), &mut w, &mut p);
    w.iter().zip(p).map(|(&w, p)| (if w >= 0 { b[w as usize].0 } else { NO_BIDDER }, p)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn engine_matches_kernels_in_any_order(
        auctions in proptest::collection::vec(
            proptest::collection::btree_map(0u64..50, 0u32..8, 0..12), 1..10),
        seed in any::<u64>(),
        mech in 0usize..4,
    ) {
        let ctrs = [1.0, 0.6, 0.3];
        let mechanism = match mech {
            0 => Mechanism::FirstPrice,
            1 => Mechanism::SecondPrice,
            2 => Mechanism::Gsp(ctrs.to_vec()),
            _ => Mechanism::Vcg(ctrs.to_vec()),
        };
        let e = engine(3, mechanism.clone());
        let ids: Vec<u64> = (0..auctions.len() as u64).map(|a| a * 7919).collect();
        open(&e, &ids, 0, None);
        let mut flat: Vec<(u64, u64, f64)> = Vec::new();
        for (a, bids) in auctions.iter().enumerate() {
            for (&b, &p) in bids {
                flat.push((ids[a], b, p as f64 * 0.5));
            }
        }
        // a deterministic shuffle
        let mut s = seed | 1;
        for i in (1..flat.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            flat.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let a: Vec<u64> = flat.iter().map(|x| x.0).collect();
        let b: Vec<u64> = flat.iter().map(|x| x.1).collect();
        let p: Vec<f64> = flat.iter().map(|x| x.2).collect();
        submit(&e, &a, &b, &p, None);
        e.close().unwrap();
        let k = mechanism.rows_per_auction();
        let r = collect(&e, ids.len() * k);
        prop_assert_eq!(r.len(), ids.len() * k);
        for (ai, bids) in auctions.iter().enumerate() {
            let bids: Vec<(u64, f64)> = bids.iter().map(|(&b, &p)| (b, p as f64 * 0.5)).collect();
            let want = match mech {
                0 => reference(Some(SinglePrice::First), None, &bids),
                1 => reference(Some(SinglePrice::Second), None, &bids),
                2 => reference(None, Some((SlotPrice::Gsp, &ctrs)), &bids),
                _ => reference(None, Some((SlotPrice::Vcg, &ctrs)), &bids),
            };
            let rows = &r[ai * k..(ai + 1) * k];
            for (s, row) in rows.iter().enumerate() {
                prop_assert_eq!(row.auction_id, ids[ai]);
                prop_assert_eq!((row.winner_bidder, row.price), want[s]);
                prop_assert_eq!(row.n_bids as usize, bids.len());
            }
        }
    }
}

/// A source fed through a channel, standing in for a ring written by another process.
struct ChannelSource(crossbeam_channel::Receiver<Vec<rtbcore_core::record::BidRecord>>);

impl BidSource for ChannelSource {
    fn fill(
        &mut self,
        out: &mut Vec<rtbcore_core::record::BidRecord>,
        _max_n: usize,
        timeout: Duration,
    ) -> Result<usize, rtbcore_core::CoreError> {
        match self.0.recv_timeout(timeout) {
            Ok(v) => {
                out.extend_from_slice(&v);
                Ok(v.len())
            }
            Err(_) => Ok(0),
        }
    }
}

#[test]
fn attached_source_feeds_auctions_and_invalid_records_are_counted() {
    use rtbcore_core::record::BidRecord;
    let e = engine(2, Mechanism::SecondPrice);
    open(&e, &[1, 2], 2, None);
    let (tx, rx) = crossbeam_channel::unbounded();
    e.attach(Box::new(ChannelSource(rx))).unwrap();
    let mut bad = BidRecord::new(1, 9, f64::NAN, 1.0, KIND_PLACE);
    bad.timestamp_ns = 0;
    tx.send(vec![
        BidRecord::new(1, 1, 2.0, 1.0, KIND_PLACE),
        bad,
        BidRecord::new(2, 1, 3.0, 1.0, KIND_PLACE),
        BidRecord::new(1, 2, 1.0, 1.0, KIND_PLACE),
    ])
    .unwrap();
    tx.send(vec![BidRecord::new(2, 2, 4.0, 1.0, KIND_PLACE)]).unwrap();
    let r = collect(&e, 2);
    assert_eq!((r[0].winner_bidder, r[0].price), (1, 1.0));
    assert_eq!((r[1].winner_bidder, r[1].price), (2, 3.0));
    let s = e.stats();
    assert_eq!((s.attached, s.attach_records, s.attach_invalid), (1, 4, 1));
    e.close().unwrap();
    assert_eq!(e.live_threads(), 0);
}

#[test]
fn close_while_many_threads_submit_loses_nothing_accepted() {
    let e = std::sync::Arc::new(engine(4, Mechanism::SecondPrice));
    let ids: Vec<u64> = (0..500).collect();
    open(&e, &ids, 0, None);
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (e, accepted) = (e.clone(), accepted.clone());
            std::thread::spawn(move || loop {
                let a: Vec<u64> = (0..100).map(|i| (i * 5 + t) % 500).collect();
                let b: Vec<u64> = vec![t; 100];
                let p: Vec<f64> = (0..100).map(|i| 1.0 + i as f64).collect();
                let arrays = BidArrays {
                    auction_ids: &a,
                    bidder_ids: &b,
                    prices: &p,
                    quality: None,
                    kinds: None,
                };
                match e.submit(&arrays, Duration::from_secs(10)) {
                    Ok(n) => {
                        accepted.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(rtbcore_core::CoreError::Closed) => return,
                    Err(err) => panic!("{err}"),
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    e.close().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    let r = collect(&e, 500);
    assert_eq!(r.len(), 500);
    let c = e.stats().counters;
    // every accepted record was applied (placed or updated), none was lost at shutdown
    assert_eq!(c.bids_placed + c.bids_updated, accepted.load(std::sync::atomic::Ordering::Relaxed));
    assert_eq!(e.live_threads(), 0);
}

#[test]
fn close_wakes_a_waiter_and_a_drained_engine_answers_at_once() {
    // Many auctions still open at close: the workers take a while to clear them after intake
    // stops, so a waiter that took "closed" for "nothing more to come" would miss rows.
    let n = 200_000u64;
    let e = std::sync::Arc::new(engine(2, Mechanism::SecondPrice));
    let ids: Vec<u64> = (0..n).collect();
    open(&e, &ids, 0, None);
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || {
                let mut rows = Vec::new();
                // the way the binding waits "forever": in short slices, until drained
                while !e.is_drained() {
                    if e.wait_results(Duration::from_millis(1)) {
                        e.poll_into(&mut rows, 7);
                    }
                }
                rows
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!e.is_drained());
    let closer = {
        let e = e.clone();
        std::thread::spawn(move || e.close().unwrap())
    };
    let t = std::time::Instant::now();
    let mut got: Vec<u64> =
        waiters.into_iter().flat_map(|w| w.join().unwrap()).map(|r| r.auction_id).collect();
    closer.join().unwrap();
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(e.is_drained());
    let t = std::time::Instant::now();
    assert!(!e.wait_results(Duration::from_secs(5)));
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn submit_waiting_for_room_is_refused_when_the_engine_closes() {
    let e = std::sync::Arc::new(
        Engine::start(EngineConfig { workers: 1, pin: false, capacity: 1, ..Default::default() })
            .unwrap(),
    );
    let ids: Vec<u64> = (0..50_000).collect();
    let b = vec![1u64; ids.len()];
    let p = vec![1.0; ids.len()];
    let arrays =
        BidArrays { auction_ids: &ids, bidder_ids: &b, prices: &p, quality: None, kinds: None };
    let closer = {
        let e = e.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            e.close().unwrap();
        })
    };
    let t = std::time::Instant::now();
    let err = loop {
        if let Err(err) = e.submit(&arrays, Duration::from_secs(600)) {
            break err;
        }
    };
    assert_eq!(err, rtbcore_core::CoreError::Closed);
    assert!(t.elapsed() < Duration::from_secs(30));
    closer.join().unwrap();
}

#[test]
fn rejected_rows_are_bounded_exactly_and_drops_reported_once() {
    for workers in [1, 2, 4] {
        let e = Engine::start(EngineConfig {
            workers,
            pin: false,
            rejected_capacity: Some(100),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(e.rejected_capacity(), 100);
        let n = 1000;
        let a: Vec<u64> = (0..n).map(|i| 1_000_000 + i).collect();
        submit(&e, &a, &a, &vec![1.0; n as usize], None);
        e.close().unwrap();
        let mut rows = Vec::new();
        let (got, dropped) = e.poll_rejected_batch(&mut rows, usize::MAX);
        assert_eq!((got, dropped), (100, 900), "workers = {workers}");
        assert_eq!(e.stats().counters.rejected_unreported, 900);
        assert_eq!(e.poll_rejected_batch(&mut rows, usize::MAX), (0, 0));
    }
    let d = EngineConfig { capacity: 10, ..Default::default() };
    assert_eq!(d.rejected_bound(), 1024);
    assert_eq!(EngineConfig { capacity: 5000, ..d }.rejected_bound(), 5000);
}

fn tmp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rtbcore-engine-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    let _ = std::fs::remove_file(&p);
    p
}

/// Appends bids to the ring at `path` from a child process (this test binary re-run with an
/// environment variable), as an exchange front end would.
#[test]
fn ring_writer_child() {
    let Ok(path) = std::env::var("RTBCORE_ENGINE_RING_WRITER") else { return };
    use rtbcore_core::record::BidRecord;
    use rtbcore_core::ring::BidRing;
    let ring = BidRing::open(&path, Some(BidRecord::SIZE)).unwrap();
    let mut recs = Vec::new();
    for a in 0..200u64 {
        for b in 0..5u64 {
            recs.push(BidRecord::new(a, b, 1.0 + b as f64, 1.0, KIND_PLACE));
        }
    }
    let mut off = 0;
    while off < recs.len() {
        off += ring.append_many(&recs[off..(off + 64).min(recs.len())]).unwrap();
        if off < recs.len() {
            ring.wait_for_space(1, Duration::from_millis(10));
        }
    }
}

#[test]
fn attached_ring_written_by_another_process() {
    use rtbcore_core::ring::{BidRing, RingOptions};
    let path = tmp_path("ingress.ring");
    let ring = BidRing::create(&path, RingOptions { capacity: 256, ..Default::default() }).unwrap();
    let e = engine(2, Mechanism::SecondPrice);
    let ids: Vec<u64> = (0..200).collect();
    open(&e, &ids, 5, None);
    e.attach(Box::new(
        RingSource::open(&path, "engine", rtbcore_core::ring::Start::Oldest).unwrap(),
    ))
    .unwrap();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["ring_writer_child", "--exact"])
        .env("RTBCORE_ENGINE_RING_WRITER", &path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let r = collect(&e, 200);
    assert_eq!(r.len(), 200);
    assert!(r
        .iter()
        .all(|x| x.winner_bidder == 4 && x.price == 4.0 && x.closed_by == CLOSED_BY_ALL_BIDS));
    assert_eq!(e.stats().attach_records, 1000);
    e.close().unwrap();
    drop(ring);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn event_log_holds_every_event_in_order_per_auction() {
    use rtbcore_core::ring::{BidRing, Start};
    let path = tmp_path("events.ring");
    let sink = std::sync::Arc::new(RingEventLog::open_or_create(&path, 1 << 12).unwrap());
    let e = Engine::start(EngineConfig {
        workers: 2,
        pin: false,
        mechanism: Mechanism::SecondPrice,
        reserve: 0.5,
        increment: 0.0,
        tmax_ns: 60_000_000_000,
        capacity: 1 << 16,
        rejected_capacity: None,
        event_sink: Some(sink),
    })
    .unwrap();
    open(&e, &[1, 2, 3], 0, None);
    submit(
        &e,
        &[1, 2, 1, 1, 2, 1],
        &[10, 10, 11, 10, 11, 11],
        &[1.0, 2.0, 3.0, 4.0, 0.1, 0.0],
        Some(&[KIND_PLACE, KIND_PLACE, KIND_PLACE, KIND_UPDATE, KIND_PLACE, KIND_CANCEL]),
    );
    e.close().unwrap();
    assert_eq!(collect(&e, 3).len(), 3);
    let ring = BidRing::open(&path, Some(EventRecord::SIZE)).unwrap();
    let mut rd = ring.reader("test", Start::Oldest).unwrap();
    let evs: Vec<EventRecord> = rd
        .read(1000)
        .unwrap()
        .bytes()
        .chunks_exact(EventRecord::SIZE)
        // SAFETY: each chunk holds the bytes of one EventRecord the engine wrote (repr(C), every
        // bit pattern of its integer and float fields valid); read_unaligned copies it out.
        .map(|c| unsafe { c.as_ptr().cast::<EventRecord>().read_unaligned() })
        .collect();
    let of = |a: u64| -> Vec<(u8, u64)> {
        evs.iter().filter(|r| r.auction_id == a).map(|r| (r.kind, r.bidder_id)).collect()
    };
    assert_eq!(
        of(1),
        vec![
            (EV_AUCTION_STARTED, NO_BIDDER),
            (EV_BID_PLACED, 10),
            (EV_BID_PLACED, 11),
            (EV_BID_UPDATED, 10),
            (EV_BID_CANCELLED, 11),
            (EV_AUCTION_WON, 10)
        ]
    );
    assert_eq!(
        of(2),
        vec![
            (EV_AUCTION_STARTED, NO_BIDDER),
            (EV_BID_PLACED, 10),
            (EV_BID_PLACED, 11),
            (EV_AUCTION_WON, 10),
            (EV_AUCTION_LOST, 11)
        ]
    );
    assert_eq!(of(3), vec![(EV_AUCTION_STARTED, NO_BIDDER), (EV_AUCTION_LOST, NO_BIDDER)]);
    let lost = evs.iter().find(|r| r.auction_id == 2 && r.kind == EV_AUCTION_LOST).unwrap();
    assert_eq!(lost.loss_reason, rtbcore_core::clearing::LOSS_BELOW_FLOOR);
    assert_eq!((lost.price, lost.quality, lost.slot), (0.1, 1.0, NO_SLOT));
    assert!(lost.clearing_price.is_nan() && lost.min_to_win.is_nan());
    let won = evs.iter().find(|r| r.auction_id == 1 && r.kind == EV_AUCTION_WON).unwrap();
    assert_eq!((won.clearing_price, won.closed_by, won.slot), (0.5, CLOSED_BY_SHUTDOWN, 0));
    assert_eq!((won.price, won.quality, won.min_to_win, won.reserve), (4.0, 1.0, 0.5, 0.5));
    let started = evs.iter().find(|r| r.auction_id == 1 && r.kind == EV_AUCTION_STARTED).unwrap();
    assert_eq!((started.reserve, started.tmax_ns, started.expected_bids), (0.5, 60_000_000_000, 0));
    assert!(started.price.is_nan() && started.quality.is_nan());
    assert_eq!((started.closed_by, started.loss_reason), (NOT_CLOSED, NO_LOSS_REASON));
    // a cancel logs the bid it withdrew
    let cancel = evs.iter().find(|r| r.kind == EV_BID_CANCELLED).unwrap();
    assert_eq!((cancel.bidder_id, cancel.price, cancel.quality), (11, 3.0, 1.0));
    assert_eq!(e.stats().counters.events_logged, evs.len() as u64);
    drop(rd);
    drop(ring);
    std::fs::remove_file(&path).unwrap();
}
