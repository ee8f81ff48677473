//! Handing rows out: results and rejected bids move from the workers' channels into a pending
//! queue that `poll` drains, and a closed engine whose rows are all taken is "drained".

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;

use super::rows::{AuctionResult, BidOutcome, RejectedBid};
use super::Engine;

/// Rows taken from the channels and not yet polled.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) results: VecDeque<AuctionResult>,
    pub(super) rejected: VecDeque<RejectedBid>,
    /// Outcome blocks as the workers sent them; the first block's first `outcome_head` rows
    /// are already taken (whole blocks, so a poll copies each row once, into its output).
    pub(super) outcomes: VecDeque<Vec<BidOutcome>>,
    pub(super) outcome_head: usize,
}

impl Engine {
    fn refill_pending(&self, pending: &mut Pending, want: usize) {
        while pending.results.len() < want {
            match self.results_rx.try_recv() {
                Ok(mut block) => {
                    pending.results.extend(block.drain(..));
                    let _ = self.shared.free_results.push(block);
                }
                Err(_) => break,
            }
        }
    }

    /// Waits up to `timeout` for at least one result to be available (without taking any).
    /// Returns whether one is. Returns false at once once the engine is drained (see
    /// [`Engine::is_drained`]).
    pub fn wait_results(&self, timeout: Duration) -> bool {
        {
            let mut p = self.pending.lock().unwrap();
            if !p.results.is_empty() {
                return true;
            }
            self.refill_pending(&mut p, 1);
            if !p.results.is_empty() {
                return true;
            }
        }
        if timeout.is_zero() {
            return false;
        }
        // Announced before the block leaves the channel and withdrawn under the pending lock
        // once it is in `pending`, so `is_drained` never misses a block held here.
        self.receiving.fetch_add(1, Ordering::SeqCst);
        let got = self.results_rx.recv_timeout(timeout);
        let disconnected = matches!(got, Err(RecvTimeoutError::Disconnected));
        let mut p = self.pending.lock().unwrap();
        let ready = match got {
            Ok(mut block) => {
                p.results.extend(block.drain(..));
                let _ = self.shared.free_results.push(block);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            // every worker has finished: nothing more will come
            Err(RecvTimeoutError::Disconnected) => !p.results.is_empty(),
        };
        self.receiving.fetch_sub(1, Ordering::SeqCst);
        drop(p);
        if disconnected && !ready && !self.is_drained() {
            // another waiter still holds the last block: give it the time to hand it over
            std::thread::sleep(timeout.min(Duration::from_micros(200)));
        }
        ready
    }

    /// True once the engine is closed, every worker has finished and every result row has been
    /// polled: a poll can only return nothing from now on.
    pub fn is_drained(&self) -> bool {
        let p = self.pending.lock().unwrap();
        // Order matters: workers gone (so everything is sent), then the channel empty (so every
        // block is in `pending` or held by a waiter), then no waiter holding one.
        p.results.is_empty()
            && self.shared.live_workers.load(Ordering::SeqCst) == 0
            && self.results_rx.is_empty()
            && self.receiving.load(Ordering::SeqCst) == 0
    }

    /// Moves up to `max_n` available result rows into `out` (whole auctions only when
    /// `max_n >= rows per auction`). Never blocks. Returns how many were moved.
    pub fn poll_into(&self, out: &mut Vec<AuctionResult>, max_n: usize) -> usize {
        let k = self.cfg.mechanism.rows_per_auction();
        let max_n = if max_n >= k { max_n - max_n % k } else { max_n };
        let mut p = self.pending.lock().unwrap();
        self.refill_pending(&mut p, max_n);
        let n = p.results.len().min(max_n);
        out.extend(p.results.drain(..n));
        n
    }

    /// Moves up to `max_n` rejected bids into `out`. Never blocks.
    pub fn poll_rejected_into(&self, out: &mut Vec<RejectedBid>, max_n: usize) -> usize {
        let mut p = self.pending.lock().unwrap();
        while p.rejected.len() < max_n {
            match self.rejected_rx.try_recv() {
                Ok(block) => p.rejected.extend(block),
                Err(_) => break,
            }
        }
        let n = p.rejected.len().min(max_n);
        out.extend(p.rejected.drain(..n));
        self.shared.rejected_outstanding.fetch_sub(n, Ordering::AcqRel);
        n
    }

    /// [`Engine::poll_rejected_into`], plus the number of rejections dropped at the bound
    /// (`EngineConfig::rejected_capacity`) since the previous call of this method: each drop
    /// is reported once.
    pub fn poll_rejected_batch(&self, out: &mut Vec<RejectedBid>, max_n: usize) -> (usize, u64) {
        let n = self.poll_rejected_into(out, max_n);
        (n, self.shared.rejected_dropped.swap(0, Ordering::AcqRel))
    }

    /// The bound on rejected rows held for polling.
    pub fn rejected_capacity(&self) -> usize {
        self.shared.rejected_cap
    }

    /// Whether the engine was started with a per-bid outcome stream.
    pub fn has_outcomes(&self) -> bool {
        self.outcomes_rx.is_some()
    }

    /// The bound on outcome rows held for polling (0 without an outcome stream).
    pub fn outcome_capacity(&self) -> usize {
        self.shared.outcome_cap
    }

    /// Moves up to `max_n` per-bid outcome rows into `out`, plus the number of rows dropped at
    /// the bound since the previous call (each drop is reported once). Never blocks.
    pub fn poll_outcomes_batch(&self, out: &mut Vec<BidOutcome>, max_n: usize) -> (usize, u64) {
        self.poll_outcomes_with(max_n, |parts| {
            for p in parts {
                out.extend_from_slice(p);
            }
        })
    }

    /// Takes up to `max_n` per-bid outcome rows, handing them to `take` as consecutive slices
    /// (in order) while they are still held, so the caller copies each row once into its own
    /// output. Returns how many rows were taken and the rows dropped at the bound since the
    /// previous call (each drop reported once). Never blocks. An auction's rows are sent
    /// before its result row, so once a result has been polled its outcomes are pollable.
    pub fn poll_outcomes_with(
        &self,
        max_n: usize,
        take: impl FnOnce(&[&[BidOutcome]]),
    ) -> (usize, u64) {
        let Some(rx) = &self.outcomes_rx else {
            return (0, 0);
        };
        let mut guard = self.pending.lock().unwrap();
        let p = &mut *guard;
        let mut have: usize = p.outcomes.iter().map(|b| b.len()).sum::<usize>() - p.outcome_head;
        while have < max_n {
            match rx.try_recv() {
                Ok(block) => {
                    have += block.len();
                    p.outcomes.push_back(block);
                }
                Err(_) => break,
            }
        }
        let n = have.min(max_n);
        let mut parts: Vec<&[BidOutcome]> = Vec::new();
        let (mut left, mut head) = (n, p.outcome_head);
        for b in &p.outcomes {
            if left == 0 {
                break;
            }
            let k = (b.len() - head).min(left);
            parts.push(&b[head..head + k]);
            left -= k;
            head = 0;
        }
        take(&parts);
        drop(parts);
        // advance past what was taken, recycling the emptied blocks
        let mut left = n;
        while left > 0 {
            let avail = p.outcomes[0].len() - p.outcome_head;
            if left >= avail {
                left -= avail;
                p.outcome_head = 0;
                let mut b = p.outcomes.pop_front().expect("counted above");
                b.clear();
                let _ = self.shared.free_outcomes.push(b);
            } else {
                p.outcome_head += left;
                left = 0;
            }
        }
        self.shared.outcome_outstanding.fetch_sub(n, Ordering::AcqRel);
        (n, self.shared.outcome_dropped.swap(0, Ordering::AcqRel))
    }
}
