//! The bidding load: one publisher opens auctions, N buyers bid once on each announced auction.
//!
//! Measurement method (one machine, so one clock of each kind is shared with the server):
//! - PlaceBid -> BidAccepted: a buyer stamps each frame it sends with `Instant::now()`
//!   (CLOCK_MONOTONIC) and queues (stamp, bids in the frame); answers to one connection arrive
//!   in request order (the protocol orders a buyer's events), so each `BidAccepted` /
//!   `BidRejected` takes the oldest unanswered stamp. Nothing is matched by id.
//! - close -> AuctionWon, `--close deadline`: auctions are opened with `expected_bids = 0` so
//!   they close exactly at the deadline the server states in `AuctionOpened.deadline`
//!   (CLOCK_REALTIME); the winner's arrival time on CLOCK_REALTIME minus that deadline is the
//!   time from close to delivery (it includes the server's own timer slack, which is part of
//!   what a buyer sees).
//! - last bid -> AuctionWon, `--close expected`: auctions close when every buyer has bid; the
//!   close instant is then inside the server, so the figure is measured from the moment the
//!   auction's last bid left the load generator (an upper bound of close -> delivered).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtbcore_proto::v1::{bid_message, BidMessage, Money, OpenAuction, PlaceBid};
use tokio::sync::{watch, Notify};

use crate::conn::{Conn, Error};
use crate::lean::{Kind, Time};
use crate::stats::{realtime_ns, Tally};

/// Auctions in flight are far fewer than this; per-auction stamps live in a ring this big.
const RING: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    Expected,
    Deadline,
}

pub struct Settings {
    pub buyers: usize,
    pub bids_per_frame: usize,
    /// Offered bids/s (open loop); None: closed loop at the maximum rate.
    pub rate: Option<f64>,
    pub window: usize,
    pub max_bids: Option<u64>,
    pub tmax_ms: u64,
    pub close: Close,
    pub warmup: Duration,
    /// How long a buyer keeps reading for the answers and results of its bids once the run is
    /// over.
    pub drain: Duration,
    pub max_messages_per_frame: usize,
    pub prefix: String,
}

pub struct Shared {
    pub start: Instant,
    pub stop_opening: AtomicBool,
    /// The publisher stopped opening and every auction it opened has closed (or it failed).
    pub is_drained: AtomicBool,
    pub drained: Notify,
    pub finish: watch::Receiver<bool>,
    /// ns since `start` at which the auction's latest bid left (expected mode).
    last_bid: Vec<AtomicU64>,
    /// The auction's deadline, realtime ns (deadline mode).
    deadline: Vec<AtomicI64>,
}

impl Shared {
    pub fn new(finish: watch::Receiver<bool>) -> Self {
        Self {
            start: Instant::now(),
            stop_opening: AtomicBool::new(false),
            is_drained: AtomicBool::new(false),
            drained: Notify::new(),
            finish,
            last_bid: (0..RING).map(|_| AtomicU64::new(0)).collect(),
            deadline: (0..RING).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    /// Waits until the publisher is drained, at most `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let end = Instant::now() + limit;
        while !self.is_drained.load(Ordering::Acquire) {
            let left = end.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, self.drained.notified()).await.is_err() {
                return;
            }
        }
    }

    fn warm(&self, s: &Settings, t: Instant) -> bool {
        t >= self.start + s.warmup
    }
}

/// Auction ids are `<run>-<k>`: the run prefix keeps ids unique across runs against one server.
fn slot(auction_id: &[u8]) -> Option<usize> {
    let k = &auction_id[auction_id.iter().rposition(|&c| c == b'-')? + 1..];
    std::str::from_utf8(k).ok()?.parse::<usize>().ok().map(|k| k % RING)
}

/// A prefix no earlier run against the same server used: the pid and the wall clock.
pub fn run_prefix() -> String {
    format!("lg{:x}{:x}", std::process::id(), realtime_ns() / 1_000_000)
}

/// The publisher: opens auctions `<run>-0, <run>-1, ...` in blocks and counts their
/// `AuctionClosed`. A refused `OpenAuction` ends the run (every figure would be meaningless).
pub async fn publisher(conn: Conn, s: Arc<Settings>, sh: Arc<Shared>) -> Result<Tally, Error> {
    let r = publish(conn, s, sh.clone()).await;
    if r.is_err() {
        sh.stop_opening.store(true, Ordering::Relaxed);
        sh.is_drained.store(true, Ordering::Release);
        sh.drained.notify_one();
    }
    r
}

async fn publish(mut conn: Conn, s: Arc<Settings>, sh: Arc<Shared>) -> Result<Tally, Error> {
    let mut t = Tally::default();
    let mut finish = sh.finish.clone();
    let expected = match s.close {
        Close::Expected => s.buyers as u32,
        Close::Deadline => 0,
    };
    let cap = s.max_bids.map(|b| b.div_ceil(s.buyers as u64));
    let block = s.bids_per_frame.max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut next = 0u64;
    let open = |from: u64, n: u64| -> Vec<BidMessage> {
        (from..from + n)
            .map(|k| BidMessage {
                request_id: String::new(),
                message: Some(bid_message::Message::OpenAuction(OpenAuction {
                    auction_id: format!("{}-{k}", s.prefix),
                    tmax: Some(rtbcore_proto::pbjson_types::Duration {
                        seconds: (s.tmax_ms / 1000) as i64,
                        nanos: ((s.tmax_ms % 1000) * 1_000_000) as i32,
                    }),
                    expected_bids: expected,
                    ..Default::default()
                })),
            })
            .collect()
    };
    if s.rate.is_none() {
        let n = cap.map_or(s.window as u64, |c| c.min(s.window as u64));
        let mut from = 0;
        while from < n {
            let k = (n - from).min(s.max_messages_per_frame as u64);
            conn.send(open(from, k)).await?;
            from += k;
            t.frames_sent += 1;
        }
        next = n;
        t.auctions_opened = n;
    }
    loop {
        let stopping = sh.stop_opening.load(Ordering::Relaxed) || cap.is_some_and(|c| next >= c);
        if stopping {
            sh.stop_opening.store(true, Ordering::Relaxed);
            if t.auctions_closed >= next && !sh.is_drained.swap(true, Ordering::AcqRel) {
                sh.drained.notify_one();
            }
        }
        let mut due = 0u64;
        tokio::select! {
            r = conn.recv_lean() => {
                let Some(events) = r? else { break };
                for ev in events {
                    match ev.kind {
                        Some(Kind::AuctionOpened(o)) => {
                            if let Some(k) = slot(&o.auction_id) {
                                let d = o.deadline.as_ref().map_or(0, Time::ns);
                                sh.deadline[k].store(d, Ordering::Relaxed);
                            }
                        }
                        Some(Kind::AuctionClosed(_)) => {
                            t.auctions_closed += 1;
                            t.last_result = Some(Instant::now());
                        }
                        Some(Kind::BidRejected(r)) => {
                            return Err(format!(
                                "OpenAuction {:?} refused ({}): {}",
                                r.auction_id, r.reason, r.message
                            )
                            .into());
                        }
                        _ => {}
                    }
                }
                if s.rate.is_none() && !stopping {
                    let in_flight = next - t.auctions_closed;
                    if in_flight + block as u64 <= s.window as u64 {
                        due = (s.window as u64 - in_flight) / block as u64 * block as u64;
                    }
                }
            }
            _ = tick.tick(), if s.rate.is_some() && !stopping => {
                let auctions_per_s = s.rate.unwrap_or(0.0) / s.buyers as f64;
                let want = (sh.start.elapsed().as_secs_f64() * auctions_per_s) as u64;
                due = want.saturating_sub(next);
            }
            _ = finish.changed() => break,
        }
        if let Some(c) = cap {
            due = due.min(c.saturating_sub(next));
        }
        while due > 0 {
            let n = due.min(s.max_messages_per_frame as u64);
            conn.send(open(next, n)).await?;
            next += n;
            due -= n;
            t.auctions_opened += n;
            t.frames_sent += 1;
        }
    }
    conn.close().await;
    Ok(t)
}

/// A buyer: bids once on every auction announced to it, in frames of up to `bids_per_frame`.
pub async fn buyer(
    mut conn: Conn,
    index: usize,
    s: Arc<Settings>,
    sh: Arc<Shared>,
) -> Result<Tally, Error> {
    let mut t = Tally::default();
    let mut finish = sh.finish.clone();
    let mut unanswered: std::collections::VecDeque<(Instant, usize)> = Default::default();
    let mut todo: Vec<bytes::Bytes> = Vec::new();
    let mut n = 0u64;
    // after `finish`: keep reading (not bidding) until every accepted bid has its result, for
    // at most `drain`
    let mut finishing: Option<Instant> = None;
    loop {
        if let Some(until) = finishing {
            if (t.won + t.lost >= t.bids_acked && unanswered.is_empty()) || Instant::now() > until {
                break;
            }
        }
        tokio::select! {
            r = conn.recv_lean() => {
                let Some(events) = r? else { break };
                let now = Instant::now();
                for ev in events {
                    match ev.kind {
                        Some(Kind::AuctionStarted(a)) => todo.push(a.auction_id),
                        Some(Kind::BidAccepted(_)) => {
                            t.bids_acked += 1;
                            t.last_ack = Some(now);
                            answered(&mut unanswered, &mut t, &s, &sh, now);
                        }
                        Some(Kind::BidRejected(r)) => {
                            t.bids_rejected += 1;
                            *t.reject_reasons.entry(r.reason).or_default() += 1;
                            answered(&mut unanswered, &mut t, &s, &sh, now);
                        }
                        Some(Kind::AuctionWon(w)) => {
                            t.won += 1;
                            t.last_result = Some(now);
                            if sh.warm(&s, now) {
                                if let Some(k) = slot(&w.auction_id) {
                                    match s.close {
                                        Close::Deadline => {
                                            let d = sh.deadline[k].load(Ordering::Relaxed);
                                            if d > 0 {
                                                t.close_to_won.record_ns(realtime_ns() - d);
                                            }
                                        }
                                        Close::Expected => {
                                            let sent = sh.last_bid[k].load(Ordering::Relaxed);
                                            let at = now.duration_since(sh.start).as_nanos();
                                            t.last_bid_to_won.record_ns(at as i64 - sent as i64);
                                        }
                                    }
                                }
                            }
                        }
                        Some(Kind::AuctionLost(_)) => {
                            t.lost += 1;
                            t.last_result = Some(now);
                        }
                        _ => {}
                    }
                }
            }
            _ = finish.changed(), if finishing.is_none() => {
                finishing = Some(Instant::now() + s.drain);
            }
            _ = tokio::time::sleep(s.drain), if finishing.is_some() => {}
        }
        if finishing.is_some() {
            todo.clear();
        }
        for chunk in todo.chunks(s.bids_per_frame.max(1)) {
            let msgs: Vec<BidMessage> = chunk
                .iter()
                .map(|a| {
                    n += 1;
                    BidMessage {
                        request_id: String::new(),
                        message: Some(bid_message::Message::PlaceBid(PlaceBid {
                            auction_id: String::from_utf8_lossy(a).into_owned(),
                            // distinct amounts per buyer and auction: a real clearing
                            amount: Some(Money {
                                currency: String::new(),
                                micros: 1_000_000
                                    + ((index as i64 * 7919 + n as i64 * 104_729) % 1_000_000),
                            }),
                            ..Default::default()
                        })),
                    }
                })
                .collect();
            let sent = Instant::now();
            conn.send(msgs).await?;
            if s.close == Close::Expected {
                let at = sent.duration_since(sh.start).as_nanos() as u64;
                for a in chunk {
                    if let Some(k) = slot(a) {
                        sh.last_bid[k].fetch_max(at, Ordering::Relaxed);
                    }
                }
            }
            unanswered.push_back((sent, chunk.len()));
            t.bids_sent += chunk.len() as u64;
            t.frames_sent += 1;
        }
        todo.clear();
    }
    t.bids_unanswered = unanswered.iter().map(|(_, n)| *n as u64).sum();
    conn.close().await;
    Ok(t)
}

fn answered(
    q: &mut std::collections::VecDeque<(Instant, usize)>,
    t: &mut Tally,
    s: &Settings,
    sh: &Shared,
    now: Instant,
) {
    if let Some(front) = q.front_mut() {
        if sh.warm(s, front.0) {
            t.place_to_accept.record(now - front.0);
        }
        front.1 -= 1;
        if front.1 == 0 {
            q.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auction_ids_map_to_their_ring_slot() {
        let p = run_prefix();
        assert_eq!(slot(format!("{p}-42").as_bytes()), Some(42));
        assert_eq!(slot(format!("{p}-{}", RING + 3).as_bytes()), Some(3));
        assert_eq!(slot(b"someone-else's"), None);
        assert_eq!(slot(b"noprefix"), None);
        assert_eq!(slot(b"x-"), None);
    }
}
