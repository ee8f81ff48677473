//! Unit tests of the engine internals.

mod internals {
    use super::super::arena::{find_bidder, tag_of, Bid};
    use super::super::table::{Entry, HotTable};
    use super::super::*;

    #[test]
    fn find_bidder_finds_every_position() {
        let n = 77;
        let mut bids: Vec<Bid> =
            (0..n as u64).map(|i| Bid { bidder: i * 3, ..Default::default() }).collect();
        let mut tags: Vec<u16> = bids.iter().map(|b| tag_of(b.bidder)).collect();
        // storage past n holds leftovers of an earlier auction: never reported
        bids.resize(80, Bid { bidder: 1, ..Default::default() });
        tags.resize(80, tag_of(1));
        for i in 0..n {
            assert_eq!(find_bidder(&tags, &bids, n, bids[i].bidder), Some(i));
        }
        for x in (1..1000).filter(|x| x % 3 != 0) {
            assert_eq!(find_bidder(&tags, &bids, n, x), None);
        }
        assert_eq!(find_bidder(&tags, &bids, 0, 0), None);
        assert_eq!(find_bidder(&[], &[], 0, 1), None);
    }

    #[test]
    fn hot_table_matches_a_hashmap_under_churn() {
        let mut m = HotTable::new();
        let mut r = std::collections::HashMap::new();
        let mut x = 12345u64;
        for step in 0..200_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = x % 5000;
            if x % 3 == 0 {
                let had = m.find(k).map(|p| {
                    let slot = m.buckets[p].slot;
                    m.remove_at(p);
                    slot
                });
                assert_eq!(had, r.remove(&k));
            } else {
                match m.find(k) {
                    Some(p) => m.buckets[p].slot = step,
                    None => m.insert(Entry { id: k, slot: step, ..Entry::EMPTY }),
                }
                r.insert(k, step);
            }
            assert_eq!(m.len(), r.len());
        }
        for k in 0..5000 {
            assert_eq!(m.find(k).map(|p| m.buckets[p].slot), r.get(&k).copied());
        }
    }

    #[test]
    fn shard_of_is_in_range_and_spreads() {
        let mut counts = [0usize; 3];
        for a in 0..30_000u64 {
            counts[shard_of(a, 3)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 9_000), "{counts:?}");
    }
}
