//! The event log: every buyer-stream event is appended here before it is sent, in a
//! broadcast-mode `BidRing` (memory-mapped, so it survives `kill -9`) of 64-byte records of type
//! `rtbcore.gateway.event`.
//!
//! # Record format (64 bytes, little-endian)
//! ```text
//!  0  kind   u8     see the K_* constants
//!  1  flags  u8     bit 0: amount2 is set
//!  2  reason u16    reject reason / loss reason / bid status
//!  4  n      u32    slot (won); blob length in bytes (blob headers)
//!  8  buyer  u64    FNV-1a 64 of the buyer id, top bit cleared (also its engine bidder id)
//! 16  seq    u64    the buyer's seq (0 for records outside a stream)
//! 24  auction u64   the auction's engine id
//! 32  bid    u64    the bid's number (bid id "b<number>")
//! 40  amount  i64   micros: bid amount, price paid
//! 48  amount2 i64   micros: min to win
//! 56  time   u64    unix time, ns
//! ```
//! Compact kinds: AuctionStarted (its attributes come from the auction's `K_AUCTION` record,
//! written once per auction), BidAccepted, AuctionWon, AuctionLost, BidUpdate. Other stream
//! events (BidRejected with its message, AuctionOpened, AuctionClosed) are a `K_EVENT` header
//! followed by the protobuf-encoded `BidEvent` in chunk records (`K_CHUNK`, then 63 payload
//! bytes). A `K_AUCTION` header carries the protobuf `AuctionStarted`, `K_SUBSCRIPTION` the
//! buyer's `Subscribe` (so that a subscription outlives a restart) and `K_ACK` the buyer's last
//! acknowledged seq. A header and its chunks are appended in one call, so they are contiguous.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use rtbcore_core::ring::{BidRing, RecordType, RingMode, RingOptions, RingReader, Start};
use rtbcore_core::CoreError;

pub const REC: usize = 64;
pub const K_AUCTION_STARTED: u8 = 1;
pub const K_BID_ACCEPTED: u8 = 2;
pub const K_AUCTION_WON: u8 = 3;
pub const K_AUCTION_LOST: u8 = 4;
pub const K_BID_UPDATE: u8 = 5;
pub const K_EVENT: u8 = 6;
pub const K_AUCTION: u8 = 7;
pub const K_ACK: u8 = 8;
pub const K_SUBSCRIPTION: u8 = 9;
pub const K_CHUNK: u8 = 0xff;
const CHUNK_PAYLOAD: usize = REC - 1;
pub const RECORD_TAG: &str = "rtbcore.gateway.event";

/// One fixed-size record (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rec {
    pub kind: u8,
    pub flags: u8,
    pub reason: u16,
    pub n: u32,
    pub buyer: u64,
    pub seq: u64,
    pub auction: u64,
    pub bid: u64,
    pub amount: i64,
    pub amount2: i64,
    pub time_ns: u64,
}

impl Rec {
    pub fn encode(&self) -> [u8; REC] {
        let mut b = [0u8; REC];
        b[0] = self.kind;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.reason.to_le_bytes());
        b[4..8].copy_from_slice(&self.n.to_le_bytes());
        for (i, v) in [self.buyer, self.seq, self.auction, self.bid].iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        b[40..48].copy_from_slice(&self.amount.to_le_bytes());
        b[48..56].copy_from_slice(&self.amount2.to_le_bytes());
        b[56..64].copy_from_slice(&self.time_ns.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Rec {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        Rec {
            kind: b[0],
            flags: b[1],
            reason: u16::from_le_bytes([b[2], b[3]]),
            n: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            buyer: u64_at(8),
            seq: u64_at(16),
            auction: u64_at(24),
            bid: u64_at(32),
            amount: u64_at(40) as i64,
            amount2: u64_at(48) as i64,
            time_ns: u64_at(56),
        }
    }
}

/// The buyer key of the log and the engine: FNV-1a 64 of the id, top bit cleared so that it is
/// a valid engine bidder id.
pub fn buyer_key(buyer: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in buyer.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h & (i64::MAX as u64)
}

/// A record as read back: compact, or a header with its blob.
#[derive(Debug, Clone)]
pub struct Entry {
    pub rec: Rec,
    pub blob: Vec<u8>,
}

/// What a scan of an existing log finds, per buyer.
#[derive(Debug, Default, Clone)]
pub struct BuyerHistory {
    pub last_seq: u64,
    pub acked: u64,
    pub subscription: Option<Vec<u8>>,
    /// (seq, ring position) of the buyer's stream events still in the log.
    pub index: SeqIndex,
}

/// The largest event log faulted in at start (1 GiB: 16M records).
pub const PREFAULT_MAX_BYTES: u64 = 1 << 30;

/// Entries per chunk of a [`SeqIndex`] (64 KB).
const INDEX_CHUNK: usize = 4096;

/// A buyer's (seq, ring position) pairs, oldest first, in fixed-size chunks: growing never
/// moves what it holds. A `VecDeque` doubling at a million entries copies 16 MB and faults in
/// 32 MB in one go, under the buyer's lock, which holds up every event for that buyer.
#[derive(Debug, Default, Clone)]
pub struct SeqIndex {
    chunks: VecDeque<Vec<(u64, u64)>>,
    /// Entries already popped from the front chunk.
    head: usize,
    len: usize,
}

impl SeqIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, e: (u64, u64)) {
        if self.chunks.back().is_none_or(|c| c.len() == INDEX_CHUNK) {
            self.chunks.push_back(Vec::with_capacity(INDEX_CHUNK));
        }
        self.chunks.back_mut().expect("pushed above").push(e);
        self.len += 1;
    }

    pub fn extend(&mut self, it: impl IntoIterator<Item = (u64, u64)>) {
        for e in it {
            self.push_back(e);
        }
    }

    pub fn front(&self) -> Option<&(u64, u64)> {
        self.get(0)
    }

    pub fn pop_front(&mut self) -> Option<(u64, u64)> {
        let e = *self.front()?;
        self.head += 1;
        self.len -= 1;
        if self.head == self.chunks.front().map_or(0, Vec::len) {
            // the front chunk is spent: drop it, or empty it when it is the only one
            if self.chunks.len() > 1 {
                self.chunks.pop_front();
            } else if let Some(c) = self.chunks.front_mut() {
                c.clear();
            }
            self.head = 0;
        }
        Some(e)
    }

    /// The `i`-th entry from the front.
    pub fn get(&self, i: usize) -> Option<&(u64, u64)> {
        if i >= self.len {
            return None;
        }
        // every chunk but the last is full, and the front one starts `head` entries in
        let at = self.head + i;
        self.chunks.get(at / INDEX_CHUNK)?.get(at % INDEX_CHUNK)
    }

    /// The number of leading entries for which `pred` holds (`pred` must hold for a prefix).
    pub fn partition_point(&self, mut pred: impl FnMut(&(u64, u64)) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(self.get(mid).expect("mid < len")) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

#[derive(Debug, Default)]
pub struct Recovered {
    pub buyers: HashMap<u64, BuyerHistory>,
    /// Auction engine id -> protobuf `AuctionStarted`.
    pub auctions: HashMap<u64, (u64, Vec<u8>)>,
    pub max_auction: u64,
    pub max_bid: u64,
}

/// Records encoded for one [`EventLog::append_batch`]: a buyer's events of one emission go in
/// with one reservation of the ring.
#[derive(Default)]
pub struct LogBatch {
    bytes: Vec<u8>,
}

impl LogBatch {
    /// Records so far.
    pub fn len(&self) -> u64 {
        (self.bytes.len() / REC) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Adds one compact record; returns its offset in the batch.
    pub fn push(&mut self, rec: &Rec) -> u64 {
        let at = self.len();
        self.bytes.extend_from_slice(&rec.encode());
        at
    }

    /// Adds a header and its blob (chunk records); returns the header's offset in the batch.
    pub fn push_blob(&mut self, mut header: Rec, blob: &[u8]) -> u64 {
        header.n = blob.len() as u32;
        let at = self.push(&header);
        for c in blob.chunks(CHUNK_PAYLOAD) {
            let mut r = [0u8; REC];
            r[0] = K_CHUNK;
            r[1..1 + c.len()].copy_from_slice(c);
            self.bytes.extend_from_slice(&r);
        }
        at
    }
}

pub struct EventLog {
    ring: BidRing,
    reader: Mutex<RingReader>,
    /// Appends are serialised so that the position of each is known exactly (the ring's tail
    /// before it); a 64-byte copy is all that happens under it.
    write: Mutex<()>,
    path: PathBuf,
}

fn io(e: CoreError) -> String {
    e.to_string()
}

impl EventLog {
    /// Opens the log at `path`, creating it with room for `max_records` if it does not exist,
    /// and scans what it holds.
    pub fn open(path: &Path, max_records: u64) -> Result<(EventLog, Recovered), String> {
        let rt = RecordType::new(RECORD_TAG, REC).map_err(io)?;
        let ring = if path.exists() {
            BidRing::open_as(path, rt).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let opts = RingOptions {
                capacity: max_records,
                record_size: REC,
                mode: RingMode::Broadcast,
                max_readers: 4,
                record_type: Some(rt),
            };
            BidRing::create(path, opts).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let reader = ring.reader("gateway", Start::Oldest).map_err(io)?;
        let log = EventLog {
            ring,
            reader: Mutex::new(reader),
            write: Mutex::new(()),
            path: path.to_path_buf(),
        };
        let rec = log.scan()?;
        // appends then never fault (see BidRing::prefault); without it they still work. A log
        // over PREFAULT_MAX_BYTES is left to fault as it fills: populating it would hold the
        // start for seconds and fill the page cache with it.
        if log.ring.capacity().saturating_mul(REC as u64) <= PREFAULT_MAX_BYTES {
            log.ring.prefault();
        }
        Ok((log, rec))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> u64 {
        self.ring.capacity()
    }

    /// Ring positions: the oldest record still held and the next one to be written.
    pub fn bounds(&self) -> (u64, u64) {
        (self.ring.oldest(), self.ring.tail())
    }

    /// Appends one compact record; returns its ring position.
    pub fn append(&self, rec: &Rec) -> Result<u64, String> {
        self.append_raw(&rec.encode())
    }

    /// Appends a header and its blob as contiguous records; returns the header's position.
    pub fn append_blob(&self, header: Rec, blob: &[u8]) -> Result<u64, String> {
        let mut b = LogBatch::default();
        b.push_blob(header, blob);
        self.append_batch(&b)
    }

    /// Appends a batch as contiguous records in one reservation; returns the position of its
    /// first record (each entry is at that plus the offset its push returned).
    pub fn append_batch(&self, batch: &LogBatch) -> Result<u64, String> {
        self.append_raw(&batch.bytes)
    }

    fn append_raw(&self, bytes: &[u8]) -> Result<u64, String> {
        let n = bytes.len() / REC;
        let _w = self.write.lock();
        let before = self.ring.tail();
        // a batch larger than the ring goes in ring-sized pieces (still contiguous: the write
        // lock is held throughout)
        let piece = (self.ring.capacity() as usize).max(1) * REC;
        let mut wrote = 0;
        for p in bytes.chunks(piece) {
            wrote += self.ring.append_bytes(p).map_err(io)?;
        }
        if wrote != n {
            return Err(format!("event log: wrote {wrote} of {n} records"));
        }
        Ok(before)
    }

    /// Reads entries from ring position `from` up to (not including) `to`, calling `f` on each;
    /// `f` returns false to stop. Chunks without their header (overwritten) are skipped.
    pub fn read_range(
        &self,
        from: u64,
        to: u64,
        mut f: impl FnMut(u64, Entry) -> bool,
    ) -> Result<(), String> {
        let mut r = self.reader.lock();
        let mut pos = from.max(self.ring.oldest());
        if pos >= to {
            return Ok(());
        }
        r.replay(pos).map_err(io)?;
        let mut pending: Option<(u64, Rec, Vec<u8>)> = None;
        let mut idle = 0;
        while pos < to {
            let batch = match r.read(4096) {
                Ok(b) => b,
                Err(CoreError::Overrun { next_seq, .. }) => {
                    pending = None;
                    pos = next_seq;
                    continue;
                }
                Err(e) => return Err(io(e)),
            };
            if batch.is_empty() {
                // a writer between reservation and commit: give it a moment, bounded
                idle += 1;
                if idle > 200 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
                continue;
            }
            idle = 0;
            let start = batch.start_seq();
            let bytes = batch.bytes().to_vec();
            for (i, b) in bytes.chunks_exact(REC).enumerate() {
                let at = start + i as u64;
                if at >= to {
                    pos = to;
                    break;
                }
                pos = at + 1;
                if b[0] == K_CHUNK {
                    if let Some((hpos, h, mut blob)) = pending.take() {
                        let want = h.n as usize;
                        let take = (want - blob.len()).min(CHUNK_PAYLOAD);
                        blob.extend_from_slice(&b[1..1 + take]);
                        if blob.len() == want {
                            if !f(hpos, Entry { rec: h, blob }) {
                                return Ok(());
                            }
                        } else {
                            pending = Some((hpos, h, blob));
                        }
                    }
                    continue;
                }
                pending = None;
                let rec = Rec::decode(b);
                if matches!(rec.kind, K_EVENT | K_AUCTION | K_SUBSCRIPTION) && rec.n > 0 {
                    pending = Some((at, rec, Vec::with_capacity(rec.n as usize)));
                    continue;
                }
                if !f(at, Entry { rec, blob: Vec::new() }) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the per-buyer state from the log (at open).
    fn scan(&self) -> Result<Recovered, String> {
        let mut out = Recovered::default();
        let (oldest, tail) = self.bounds();
        self.read_range(oldest, tail, |pos, e| {
            let r = e.rec;
            out.max_auction = out.max_auction.max(r.auction);
            out.max_bid = out.max_bid.max(r.bid);
            match r.kind {
                K_AUCTION => {
                    out.auctions.insert(r.auction, (pos, e.blob));
                }
                K_ACK => {
                    let b = out.buyers.entry(r.buyer).or_default();
                    b.acked = b.acked.max(r.seq);
                }
                K_SUBSCRIPTION => {
                    out.buyers.entry(r.buyer).or_default().subscription = Some(e.blob);
                }
                K_AUCTION_STARTED..=K_EVENT if r.seq > 0 => {
                    let b = out.buyers.entry(r.buyer).or_default();
                    if r.seq > b.last_seq {
                        b.last_seq = r.seq;
                        b.index.push_back((r.seq, pos));
                    }
                }
                _ => {}
            }
            true
        })?;
        Ok(out)
    }

    /// Seals the log: later appends are refused.
    pub fn close(&self) {
        self.ring.close();
    }

    /// Writes the log's mapping to the file and waits for it (the mapping alone survives a
    /// process kill; after this, a machine crash loses nothing appended before).
    pub fn flush(&self) -> Result<(), rtbcore_core::CoreError> {
        self.ring.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_blobs_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("rtbcore-evlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("events.ring");
        let rec = Rec {
            kind: K_BID_ACCEPTED,
            buyer: 7,
            seq: 1,
            auction: 3,
            bid: 9,
            amount: -5,
            amount2: i64::MAX,
            time_ns: 11,
            ..Default::default()
        };
        assert_eq!(Rec::decode(&rec.encode()), rec);
        {
            let (log, rec0) = EventLog::open(&path, 1024).unwrap();
            assert!(rec0.buyers.is_empty());
            log.append(&rec).unwrap();
            let blob: Vec<u8> = (0..200u8).collect();
            log.append_blob(Rec { kind: K_EVENT, buyer: 7, seq: 2, ..Default::default() }, &blob)
                .unwrap();
            log.append_blob(Rec { kind: K_AUCTION, auction: 4, ..Default::default() }, b"ab")
                .unwrap();
        }
        let (_log, r) = EventLog::open(&path, 1024).unwrap();
        let b = &r.buyers[&7];
        assert_eq!(b.last_seq, 2);
        assert_eq!(b.index.len(), 2);
        assert_eq!(r.auctions[&4].1, b"ab");
        assert_eq!((r.max_auction, r.max_bid), (4, 9));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The share of the ring's record pages the kernel holds in memory.
    #[cfg(target_os = "linux")]
    fn resident_share(log: &EventLog) -> f64 {
        let page = 4096usize;
        let p = log.ring.records_ptr().as_ptr() as usize;
        let start = p / page * page;
        let len = log.ring.capacity() as usize * REC;
        let n = (p + len).div_ceil(page) - start / page;
        let mut v = vec![0u8; n];
        // SAFETY: mincore only reports on the range (inside the ring's live mapping) into `v`,
        // which has one byte per page of it.
        let rc = unsafe { libc::mincore(start as *mut libc::c_void, n * page, v.as_mut_ptr()) };
        assert_eq!(rc, 0);
        v.iter().filter(|b| **b & 1 == 1).count() as f64 / n as f64
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_log_up_to_the_bound_is_faulted_in_at_open_and_a_larger_one_is_not() {
        let dir = std::env::temp_dir().join(format!("rtbcore-evlog-pf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (small, _) = EventLog::open(&dir.join("small.ring"), 1 << 16).unwrap();
        assert_eq!(resident_share(&small), 1.0);
        // twice the bound, sparse on disk: left to fault as it fills
        let big_records = 2 * PREFAULT_MAX_BYTES / REC as u64;
        let (big, _) = EventLog::open(&dir.join("big.ring"), big_records).unwrap();
        assert!(resident_share(&big) < 0.01);
        drop((small, big));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_seq_index_matches_a_deque_across_chunks() {
        let mut ix = SeqIndex::default();
        let mut dq = VecDeque::new();
        let mut next = 0u64;
        // pushes and pops that cross chunk boundaries, empty the index and refill it
        for round in 0..6u64 {
            for _ in 0..(INDEX_CHUNK as u64 * (round % 3 + 1) + 7) {
                next += 1;
                ix.push_back((next, next * 10));
                dq.push_back((next, next * 10));
            }
            let pops = if round == 3 { dq.len() } else { INDEX_CHUNK + 3 * round as usize };
            for _ in 0..pops {
                assert_eq!(ix.pop_front(), dq.pop_front());
            }
            assert_eq!(ix.len(), dq.len());
            assert_eq!(ix.front(), dq.front());
            for i in [0, 1, INDEX_CHUNK - 1, INDEX_CHUNK, dq.len().saturating_sub(1), dq.len()] {
                assert_eq!(ix.get(i), dq.get(i), "entry {i}");
            }
            for probe in [0, dq.front().map_or(0, |e| e.0), next / 2, next, next + 1] {
                assert_eq!(
                    ix.partition_point(|(s, _)| *s <= probe),
                    dq.partition_point(|(s, _)| *s <= probe)
                );
            }
        }
        assert_eq!(ix.pop_front(), dq.pop_front());
    }
}
