//! The submitting side: validate a block with the record rule, partition it by shard
//! ([`shard_of`]) into recycled per-worker blocks, wait for room and send.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crossbeam_channel::Sender;

use super::arena::reserve_huge;
use super::shared::Shared;
use super::table::fib_hash;
use crate::error::CoreError;
use crate::record::{check_fields, fields_ok, validate_records, BidRecord, Value, KIND_PLACE};

/// An auction to open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OpenRequest {
    pub auction_id: u64,
    pub reserve: f64,
    pub tmax_ns: u64,
    /// Close as soon as this many distinct bidders answered; 0 = only at the deadline.
    pub expected_bids: u32,
    pub open_ns: u64,
}

pub(super) enum Msg {
    Open(Vec<OpenRequest>),
    Bids(Block),
}

/// A place with quality 1.0 and its block's stamp: what `submit` without `quality` / `kinds`
/// sends, half the bytes of a [`BidRecord`] for the submitting thread to write and the worker
/// to read.
#[derive(Clone, Copy, Default)]
#[repr(C)]
pub(super) struct CompactBid {
    pub(super) auction_id: u64,
    pub(super) bidder_id: u64,
    pub(super) price: f64,
}

/// One shard's part of a submission.
pub(super) enum Block {
    Records(Vec<BidRecord>),
    /// Places, every one stamped `ts`.
    Compact {
        bids: Vec<CompactBid>,
        ts: u64,
    },
}

impl Block {
    pub(super) fn len(&self) -> usize {
        match self {
            Block::Records(v) => v.len(),
            Block::Compact { bids, .. } => bids.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands the buffer back to the pool for the next submission.
    pub(super) fn recycle(self, shared: &Shared) {
        match self {
            Block::Records(mut v) => {
                v.clear();
                let _ = shared.free_bids.push(v);
            }
            Block::Compact { mut bids, .. } => {
                bids.clear();
                let _ = shared.free_compact.push(bids);
            }
        }
    }
}

/// The worker that owns `auction_id` among `workers` (stable for a given worker count).
#[inline]
pub fn shard_of(auction_id: u64, workers: usize) -> usize {
    ((fib_hash(auction_id) as u128 * workers as u128) >> 64) as usize
}

/// A validated submission, partitioned by shard; see [`super::Engine::prepare`].
///
/// Dropping one that was not sent hands its buffers back to the engine's pool.
pub struct Prepared {
    pub(super) blocks: Vec<Block>,
    pub(super) n: usize,
    pub(super) shared: Arc<Shared>,
}

impl Drop for Prepared {
    fn drop(&mut self) {
        for b in self.blocks.drain(..) {
            b.recycle(&self.shared);
        }
    }
}

impl Prepared {
    /// Records in the submission.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// The submitting side, shared by the handle and the attach threads.
pub(super) struct Intake {
    /// Set when `close` starts: a wait for room ends at once.
    pub(super) closing: AtomicBool,
    pub(super) senders: RwLock<Option<Vec<Sender<Msg>>>>,
    pub(super) shared: Arc<Shared>,
    pub(super) workers: usize,
    pub(super) cap_per_worker: usize,
    pub(super) submitted: AtomicU64,
}

/// Bid arrays as the caller holds them (struct of arrays); `quality`/`kinds` default to 1.0 /
/// place.
pub struct BidArrays<'a> {
    pub auction_ids: &'a [u64],
    pub bidder_ids: &'a [u64],
    pub prices: &'a [f64],
    pub quality: Option<&'a [f64]>,
    pub kinds: Option<&'a [u8]>,
}

pub(super) fn bad_value(
    field: &'static str,
    index: usize,
    value: Value,
    msg: &'static str,
) -> CoreError {
    CoreError::InvalidValue { field, index, value, msg }
}

impl Intake {
    pub(super) fn take_block(&self, n: usize) -> Vec<BidRecord> {
        let mut v = self.shared.free_bids.pop().unwrap_or_default();
        v.clear();
        reserve_huge(&mut v, n);
        v
    }

    pub(super) fn take_compact(&self, n: usize) -> Vec<CompactBid> {
        let mut v = self.shared.free_compact.pop().unwrap_or_default();
        v.clear();
        reserve_huge(&mut v, n);
        v
    }

    /// Validates a submission and partitions it by shard, stamping every record with `now_ns`.
    /// Nothing is queued: on error nothing of the block is taken.
    pub(super) fn prepare(&self, bids: &BidArrays<'_>, now_ns: u64) -> Result<Prepared, CoreError> {
        let n = bids.auction_ids.len();
        for (name, len) in [("bidder_ids", bids.bidder_ids.len()), ("prices", bids.prices.len())] {
            if len != n {
                return Err(CoreError::invalid(
                    name,
                    format!("has {len} entries but auction_ids has {n}"),
                ));
            }
        }
        if let Some(q) = bids.quality {
            if q.len() != n {
                return Err(CoreError::invalid(
                    "quality",
                    format!("has {} entries but auction_ids has {n}", q.len()),
                ));
            }
        }
        if let Some(k) = bids.kinds {
            if k.len() != n {
                return Err(CoreError::invalid(
                    "kinds",
                    format!("has {} entries but auction_ids has {n}", k.len()),
                ));
            }
        }
        // One pass validates (a branch-free flag; the exact error is looked for only if it is
        // raised) and scatters into per-shard blocks. With one or two shards each block gets
        // room for the whole submission (virtual memory; only what is written is touched);
        // with more, a counting pass over the ids sizes them exactly.
        let w = self.workers;
        let (aids, bidders, prices) =
            (&bids.auction_ids[..n], &bids.bidder_ids[..n], &bids.prices[..n]);
        let caps = if w <= 2 {
            vec![n; w]
        } else {
            let mut counts = vec![0usize; w];
            for &a in aids {
                counts[shard_of(a, w)] += 1;
            }
            counts
        };
        let mut ok = true;
        let blocks = if bids.quality.is_none() && bids.kinds.is_none() {
            let mut parts: Vec<Vec<CompactBid>> =
                caps.iter().map(|&c| self.take_compact(c)).collect();
            for i in 0..n {
                let (a, b, p) = (aids[i], bidders[i], prices[i]);
                ok &= fields_ok(a, b, p, 1.0, KIND_PLACE);
                parts[shard_of(a, w)].push(CompactBid { auction_id: a, bidder_id: b, price: p });
            }
            parts.into_iter().map(|bids| Block::Compact { bids, ts: now_ns }).collect::<Vec<_>>()
        } else {
            let mut parts: Vec<Vec<BidRecord>> = caps.iter().map(|&c| self.take_block(c)).collect();
            for i in 0..n {
                let (a, b, p) = (aids[i], bidders[i], prices[i]);
                let q = bids.quality.map_or(1.0, |q| q[i]);
                let k = bids.kinds.map_or(KIND_PLACE, |k| k[i]);
                ok &= fields_ok(a, b, p, q, k);
                parts[shard_of(a, w)].push(BidRecord {
                    auction_id: a,
                    bidder_id: b,
                    price: p,
                    quality: q,
                    timestamp_ns: now_ns,
                    kind: k,
                    _pad: [0; 7],
                });
            }
            parts.into_iter().map(Block::Records).collect()
        };
        if !ok {
            for b in blocks {
                b.recycle(&self.shared);
            }
            for i in 0..n {
                let q = bids.quality.map_or(1.0, |q| q[i]);
                let k = bids.kinds.map_or(KIND_PLACE, |k| k[i]);
                check_fields(aids[i].into(), bidders[i].into(), prices[i], q, k)
                    .map_err(|e| e.at(i))?;
            }
            // the flag is check_fields' rule, so this is not reached; no panic if it were
            return Err(CoreError::invalid("prices", "invalid bid"));
        }
        Ok(Prepared { blocks, n, shared: self.shared.clone() })
    }

    /// Validates records (e.g. read from a ring) and partitions them; a record with
    /// `timestamp_ns == 0` is stamped with `now_ns`.
    pub(super) fn prepare_records(
        &self,
        recs: &[BidRecord],
        now_ns: u64,
    ) -> Result<Prepared, CoreError> {
        validate_records(recs)?;
        let w = self.workers;
        let mut counts = vec![0usize; w];
        for r in recs {
            counts[shard_of(r.auction_id, w)] += 1;
        }
        let mut blocks: Vec<Vec<BidRecord>> = counts.iter().map(|&c| self.take_block(c)).collect();
        for r in recs {
            let mut r = *r;
            if r.timestamp_ns == 0 {
                r.timestamp_ns = now_ns;
            }
            blocks[shard_of(r.auction_id, w)].push(r);
        }
        Ok(Prepared {
            blocks: blocks.into_iter().map(Block::Records).collect(),
            n: recs.len(),
            shared: self.shared.clone(),
        })
    }

    /// Waits up to `timeout` until every shard the submission touches has room (a shard that
    /// is empty always has room, so an oversized block is never refused forever). Returns
    /// true at once when the engine is closing, so that the send that follows is refused.
    pub(super) fn wait_room(&self, p: &Prepared, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut spins = 0u32;
        loop {
            let ok = p.blocks.iter().enumerate().all(|(w, b)| {
                let q = self.shared.workers[w].queued.load(Ordering::Acquire);
                b.is_empty() || q == 0 || q + b.len() <= self.cap_per_worker
            });
            if ok || self.closing.load(Ordering::Acquire) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            spins += 1;
            if spins < 16 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Queues a prepared submission (no capacity check; see [`Engine::wait_room`]).
    /// Returns the number of records queued, or [`CoreError::Closed`].
    pub(super) fn send(&self, mut p: Prepared) -> Result<usize, CoreError> {
        let guard = self.senders.read().unwrap();
        let Some(senders) = guard.as_ref() else {
            return Err(CoreError::Closed);
        };
        for (w, b) in p.blocks.drain(..).enumerate() {
            if b.is_empty() {
                b.recycle(&self.shared);
                continue;
            }
            self.shared.workers[w].queued.fetch_add(b.len(), Ordering::AcqRel);
            if senders[w].send(Msg::Bids(b)).is_err() {
                return Err(CoreError::Closed);
            }
        }
        self.submitted.fetch_add(p.n as u64, Ordering::Relaxed);
        Ok(p.n)
    }
}
