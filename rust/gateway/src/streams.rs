//! Per-buyer streams: the buyer's seq, its durable subscription, its live connections, the
//! idempotency window and the index of its events in the log.
//!
//! Ordering: a buyer's events get their seq, are appended to the log and are queued to its
//! connections under the buyer's lock, so every connection sees them in seq order; replay is
//! queued as a marker in the same queue, so live events queued after it follow it.

use std::collections::{HashMap, VecDeque};

use rustc_hash::FxHashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use prost::Message as _;
use rtbcore_proto::prost;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::*;
use tokio::sync::mpsc;

use crate::codec::{encode_events_into, encode_stream_event_into, Stamp};
use crate::events::*;
use crate::evlog::{
    buyer_key, BuyerHistory, EventLog, LogBatch, Rec, SeqIndex, K_ACK, K_EVENT, K_SUBSCRIPTION,
};
use crate::metrics::Metrics;
use crate::mirror::{entry_event, entry_payload, Held, Mirror};

/// What a connection's writer is handed, in order.
#[derive(Debug)]
pub enum Out {
    Events(Vec<BidEvent>),
    /// Events already encoded as a binary `ServerFrame` (for connections that take them: see
    /// [`ConnHandle::proto`]); `events` counts them.
    Encoded {
        bytes: Vec<u8>,
        events: u64,
    },
    /// Send the buyer's logged events with seq in `from..=to` (ring positions
    /// `start_pos..end_pos`), skipping those logged before `not_before_ns`.
    Replay(ReplayPlan),
    Close(u16, String),
}

#[derive(Debug, Clone)]
pub struct ReplayPlan {
    pub buyer_key: u64,
    pub from: u64,
    pub to: u64,
    pub start_pos: u64,
    pub end_pos: u64,
    pub not_before_ns: u64,
    pub mask: u16,
    /// Read from the Redis mirror (the buyer's events of every node), falling back to this
    /// node's log if Redis does not answer.
    pub mirrored: bool,
}

/// Where a replay starts: after a seq, or at a time (unix ns).
#[derive(Debug, Clone, Copy)]
pub enum Since {
    Seq(u64),
    Time(u64),
}

/// What a connection's full queue could not take, in order, until the connection drains its
/// queue and sends it (a short stall survives) or is closed 4008 (the spill fills up too, or
/// stays non-empty past `server.slow_consumer_timeout_s`).
#[derive(Default)]
pub struct Spill {
    q: VecDeque<Out>,
    /// When the spill last went from empty to non-empty.
    pub since: Option<Instant>,
}

/// A connection's way out: its bounded queue, the spill behind it, and the overflow flag.
#[derive(Clone)]
pub struct Outlet {
    pub tx: mpsc::Sender<Out>,
    pub spill: Arc<Mutex<Spill>>,
    /// Most items the spill holds (0: none, a full queue overflows at once).
    pub spill_max: usize,
    /// Set when the connection missed events and is being closed (4008).
    pub overflowed: Arc<AtomicBool>,
    /// Events in the queue and the spill (an item carries any number of them).
    pub queued: Arc<AtomicU64>,
    /// Most events the queue and the spill hold together.
    pub max_events: u64,
}

impl Out {
    /// The events an item carries (a replay's are read from the log when it is sent).
    pub fn events(&self) -> u64 {
        match self {
            Out::Events(evs) => evs.len() as u64,
            Out::Encoded { events, .. } => *events,
            Out::Replay(_) | Out::Close(..) => 0,
        }
    }
}

/// A buyer's events on their way to its connections: made here (numbered from `first`, stamped
/// `now`; encoded straight from the stream events, made into `BidEvent`s only for a JSON
/// connection) or read from the mirror.
enum Made {
    Stream { evs: Vec<StreamEvent>, first: u64, now: u64 },
    Events(Vec<BidEvent>),
}

impl Made {
    /// The encoding of the events whose index `keep` accepts.
    fn encode(&self, buyer: &str, keep: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut buf = Vec::new();
        match self {
            Made::Stream { evs, first, now } => {
                buf.reserve(64 * evs.len());
                let stamp = Stamp::new(*now);
                for (i, se) in evs.iter().enumerate().filter(|(i, _)| keep(*i)) {
                    encode_stream_event_into(&mut buf, buyer, first + i as u64, &stamp, se);
                }
            }
            Made::Events(evs) => {
                buf.reserve(64 * evs.len());
                let kept = evs.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, e)| e);
                encode_events_into(kept, &mut buf);
            }
        }
        buf
    }

    /// Copies of the events whose index `keep` accepts.
    fn events(&self, buyer: &str, keep: impl Fn(usize) -> bool) -> Vec<BidEvent> {
        match self {
            Made::Stream { evs, first, now } => evs
                .iter()
                .enumerate()
                .filter(|(i, _)| keep(*i))
                .map(|(i, se)| bid_event(buyer, first + i as u64, *now, se.clone()))
                .collect(),
            Made::Events(evs) => {
                evs.iter().enumerate().filter(|(i, _)| keep(*i)).map(|(_, e)| e.clone()).collect()
            }
        }
    }

    /// All the events, taken (nothing is left).
    fn take_events(&mut self, buyer: &str) -> Vec<BidEvent> {
        match std::mem::replace(self, Made::Events(Vec::new())) {
            Made::Stream { evs, first, now } => evs
                .into_iter()
                .zip(first..)
                .map(|(se, seq)| bid_event(buyer, seq, now, se))
                .collect(),
            Made::Events(evs) => evs,
        }
    }
}

impl Outlet {
    pub fn new(tx: mpsc::Sender<Out>, spill_max: usize, max_events: u64) -> Outlet {
        Outlet {
            tx,
            spill: Arc::new(Mutex::new(Spill::default())),
            spill_max,
            overflowed: Arc::new(AtomicBool::new(false)),
            queued: Arc::new(AtomicU64::new(0)),
            max_events,
        }
    }

    /// Tells the outlet that its reader took `o` from the queue.
    pub fn taken(&self, o: &Out) {
        self.queued.fetch_sub(o.events(), Ordering::Relaxed);
    }

    fn overflow(&self, sp: &mut Spill) -> bool {
        self.overflowed.store(true, Ordering::Relaxed);
        sp.q.clear();
        sp.since = None;
        false
    }

    /// Queues without waiting: into the queue, or behind it into the spill once the queue is
    /// full (and for as long as the spill holds anything, so the order is kept). False when the
    /// item could not be kept: the connection is then marked overflowed.
    pub fn offer(&self, out: Out) -> bool {
        if self.overflowed.load(Ordering::Relaxed) {
            return false;
        }
        let mut sp = self.spill.lock();
        let n = out.events();
        if self.queued.load(Ordering::Relaxed) + n > self.max_events {
            return self.overflow(&mut sp);
        }
        let out = if sp.q.is_empty() {
            match self.tx.try_send(out) {
                Ok(()) => {
                    self.queued.fetch_add(n, Ordering::Relaxed);
                    return true;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
                Err(mpsc::error::TrySendError::Full(o)) => o,
            }
        } else {
            out
        };
        if sp.q.len() >= self.spill_max {
            return self.overflow(&mut sp);
        }
        if sp.q.is_empty() {
            sp.since = Some(Instant::now());
        }
        self.queued.fetch_add(n, Ordering::Relaxed);
        sp.q.push_back(out);
        true
    }

    /// The oldest spilled item, to send once the queue is drained.
    pub fn unspill(&self) -> Option<Out> {
        let mut sp = self.spill.lock();
        let o = sp.q.pop_front();
        if sp.q.is_empty() {
            sp.since = None;
        }
        if let Some(o) = &o {
            self.taken(o);
        }
        o
    }

    /// How long the spill has been non-empty.
    pub fn spilling_for(&self) -> Option<std::time::Duration> {
        self.spill.lock().since.map(|t| t.elapsed())
    }
}

/// A live connection of a buyer.
pub struct ConnHandle {
    pub id: u64,
    pub out: Outlet,
    /// Speaks the binary subprotocol: takes [`Out::Encoded`], so that its events are encoded
    /// where they are made rather than moved to its writer and encoded there.
    pub proto: bool,
    pub subscribed: bool,
    pub mask: u16,
}

impl ConnHandle {
    /// See [`Outlet::offer`].
    pub fn offer(&self, out: Out) -> bool {
        self.out.offer(out)
    }
}

/// An attribute filter of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Eq(String, Vec<String>),
    Min(String, f64),
    Max(String, f64),
}

#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub mask: u16,
    pub types: Vec<String>,
    pub filters: Vec<Filter>,
    pub raw_filters: HashMap<String, String>,
}

pub const MAX_FILTERS: usize = 32;

impl Subscription {
    /// Validates `Subscribe.event_types` / `filters` (the message names the bad entry).
    pub fn parse(types: &[String], filters: &HashMap<String, String>) -> Result<Self, String> {
        let mut mask = 0;
        for t in types {
            mask |= TYPE_NAMES
                .iter()
                .find(|(_, n)| n == t)
                .map(|(b, _)| *b)
                .ok_or_else(|| format!("subscribe.event_types: unknown event type {t:?}"))?;
        }
        if mask == 0 {
            mask = T_ALL;
        }
        if filters.len() > MAX_FILTERS {
            return Err(format!(
                "subscribe.filters: at most {MAX_FILTERS} filters, got {}",
                filters.len()
            ));
        }
        let mut fs = Vec::new();
        for (k, v) in filters {
            if k.is_empty() || k.len() > 64 || v.len() > 1024 {
                return Err(format!(
                    "subscribe.filters[{k:?}]: key 1..=64 bytes, value at most 1024"
                ));
            }
            let num = |s: &str| {
                s.trim().parse::<f64>().ok().filter(|x| x.is_finite()).ok_or_else(|| {
                    format!("subscribe.filters[{k:?}]: {v:?} is not a finite number")
                })
            };
            fs.push(if let Some(a) = k.strip_prefix("min_") {
                Filter::Min(a.to_string(), num(v)?)
            } else if let Some(a) = k.strip_prefix("max_") {
                Filter::Max(a.to_string(), num(v)?)
            } else {
                Filter::Eq(k.clone(), v.split(',').map(|s| s.to_string()).collect())
            });
        }
        let types =
            TYPE_NAMES.iter().filter(|(b, _)| mask & b != 0).map(|(_, n)| n.to_string()).collect();
        Ok(Subscription { mask, types, filters: fs, raw_filters: filters.clone() })
    }

    pub fn matches(&self, attrs: &HashMap<String, String>) -> bool {
        if self.mask & T_AUCTION_STARTED == 0 {
            return false;
        }
        self.filters.iter().all(|f| match f {
            Filter::Eq(k, vs) => attrs.get(k).is_some_and(|a| vs.iter().any(|v| v == a)),
            Filter::Min(k, x) => {
                attrs.get(k).and_then(|a| a.trim().parse::<f64>().ok()).is_some_and(|a| a >= *x)
            }
            Filter::Max(k, x) => {
                attrs.get(k).and_then(|a| a.trim().parse::<f64>().ok()).is_some_and(|a| a <= *x)
            }
        })
    }
}

/// Answers remembered by request id.
#[derive(Default)]
struct IdemWindow {
    answers: HashMap<String, Vec<BidEvent>>,
    order: VecDeque<String>,
}

#[derive(Default, Clone, Copy)]
pub struct BuyerCounters {
    pub bids_placed: u64,
    pub bids_rejected: u64,
    pub auctions_won: u64,
    pub auctions_lost: u64,
    pub spend_micros: i64,
    pub events_sent: u64,
    pub events_replayed: u64,
}

pub struct Buyer {
    pub name: String,
    pub key: u64,
    pub seq: u64,
    pub acked: u64,
    pub sub: Option<Subscription>,
    index: SeqIndex,
    pub conns: Vec<ConnHandle>,
    idem: IdemWindow,
    pub counters: BuyerCounters,
    /// Events numbered while the Redis mirror did not answer, to append once it does.
    held: Held,
}

impl Buyer {
    /// A buyer's state from its history in the log (empty for a new buyer).
    fn recovered(name: String, key: u64, h: BuyerHistory) -> Buyer {
        let sub = h
            .subscription
            .as_deref()
            .and_then(|b| Subscribe::decode(b).ok())
            .and_then(|s| Subscription::parse(&s.event_types, &s.filters).ok());
        Buyer {
            name,
            key,
            seq: h.last_seq,
            acked: h.acked,
            sub,
            index: h.index,
            conns: Vec::new(),
            idem: IdemWindow::default(),
            counters: BuyerCounters::default(),
            held: Held::new(),
        }
    }
}

pub struct Streams {
    buyers: Mutex<FxHashMap<u64, Arc<Mutex<Buyer>>>>,
    /// Histories read from the log at start, taken when the buyer first appears.
    recovered: Mutex<HashMap<u64, BuyerHistory>>,
    pub log: Arc<EventLog>,
    metrics: Arc<Metrics>,
    idem_window: usize,
    retention_ns: u64,
    pub mirror: Option<Arc<Mirror>>,
}

impl Streams {
    pub fn new(
        log: Arc<EventLog>,
        recovered: HashMap<u64, BuyerHistory>,
        metrics: Arc<Metrics>,
        idem_window: usize,
        retention_ns: u64,
        mirror: Option<Arc<Mirror>>,
    ) -> Self {
        // A durable subscription must keep collecting announcements across a restart, before
        // its buyer reconnects: such buyers get their state now. The log keys buyers by a hash
        // of the name, so the name is filled in when the buyer next authenticates (it is only
        // used in event ids, and events are only sent to a connected buyer).
        let mut buyers = FxHashMap::default();
        let mut rest = HashMap::new();
        for (key, h) in recovered {
            if h.subscription.is_some() {
                buyers.insert(key, Arc::new(Mutex::new(Buyer::recovered(String::new(), key, h))));
            } else {
                rest.insert(key, h);
            }
        }
        Streams {
            buyers: Mutex::new(buyers),
            recovered: Mutex::new(rest),
            log,
            metrics,
            idem_window,
            retention_ns,
            mirror,
        }
    }

    /// The buyer's state, made on first use (with its history from the log, if any).
    pub fn buyer(&self, name: &str) -> Arc<Mutex<Buyer>> {
        let key = buyer_key(name);
        let mut m = self.buyers.lock();
        let b = m
            .entry(key)
            .or_insert_with(|| {
                let h = self.recovered.lock().remove(&key).unwrap_or_default();
                Arc::new(Mutex::new(Buyer::recovered(name.to_string(), key, h)))
            })
            .clone();
        drop(m);
        {
            let mut g = b.lock();
            if g.name.is_empty() {
                g.name = name.to_string();
            }
        }
        b
    }

    /// With the mirror: delivers to the buyer's connections (but `exclude`) what other nodes
    /// made for it since the last event this node handled, so that its seq is the buyer's last
    /// across nodes. Without Redis it changes nothing (the poll catches up later).
    pub fn sync(&self, b: &mut Buyer, exclude: Option<u64>) {
        let Some(m) = &self.mirror else { return };
        if let Ok(last) = m.last_seq(b.key) {
            if last > b.seq {
                self.fill_gap(m, b, last, exclude);
            }
        }
    }

    /// Delivers the buyer's mirrored events `b.seq+1..=to` (made by other nodes), logging them
    /// here too; the buyer's seq is `to` afterwards even if some were trimmed from the stream.
    fn fill_gap(&self, m: &Mirror, b: &mut Buyer, to: u64, exclude: Option<u64>) {
        if b.conns.iter().all(|c| Some(c.id) == exclude) {
            // nobody here to tell: a replay reads them from Redis
            b.seq = to;
            return;
        }
        while b.seq < to {
            let page = match m.read(b.key, b.seq, to, 1024) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("rtbcore serve: mirror read failed: {e}");
                    return;
                }
            };
            let Some(&(last, _)) = page.last() else {
                b.seq = to;
                return;
            };
            let mut batch = LogBatch::default();
            let mut offsets = Vec::with_capacity(page.len());
            let mut sent = Vec::with_capacity(page.len());
            let mut bits = Vec::with_capacity(page.len());
            for (seq, payload) in page {
                let Some(ev) = entry_event(&b.name, seq, &payload) else {
                    eprintln!(
                        "rtbcore serve: mirror entry {seq} of buyer {} is not a BidEvent",
                        b.key
                    );
                    continue;
                };
                let Some(event) = &ev.event else { continue };
                let time_ns = ev.timestamp.as_ref().map_or(0, ts_ns);
                let rec = Rec { kind: K_EVENT, buyer: b.key, seq, time_ns, ..Default::default() };
                let blob = BidEvent { event: Some(event.clone()), ..Default::default() };
                offsets.push((seq, batch.push_blob(rec, &blob.encode_to_vec())));
                bits.push(type_bit(event));
                sent.push(ev);
            }
            self.log_events(b, &batch, &offsets);
            m.metrics.gap_filled.fetch_add(sent.len() as u64, Ordering::Relaxed);
            b.seq = last;
            self.deliver(b, Made::Events(sent), &bits, None, exclude);
        }
    }

    /// Numbers `evs` through the mirror (see [`crate::mirror`]): returns the first seq, after
    /// delivering what other nodes made before it. Without Redis, numbers them on from the
    /// buyer's last seq here and holds them for Redis.
    fn mirror_number(&self, m: &Mirror, b: &mut Buyer, evs: &[StreamEvent], now: u64) -> u64 {
        let payloads: Vec<Vec<u8>> = evs
            .iter()
            .map(|se| {
                entry_payload(BidEvent {
                    timestamp: Some(ts(now)),
                    request_id: se.request_id.clone(),
                    event: Some(se.event.to_event(se.bid)),
                    ..Default::default()
                })
            })
            .collect();
        match m.append(b.key, b.seq, &mut b.held, &payloads) {
            Ok(first) => {
                if first > b.seq + 1 {
                    self.fill_gap(m, b, first - 1, None);
                }
                b.seq = first - 1;
                first
            }
            Err(e) => {
                if m.metrics.held.load(Ordering::Relaxed) == 0 {
                    eprintln!("rtbcore serve: mirror append failed (holding events): {e}");
                }
                let first = b.seq + 1;
                m.metrics.held.fetch_add(payloads.len() as u64, Ordering::Relaxed);
                b.held.extend(payloads.into_iter().enumerate().map(|(i, p)| (first + i as u64, p)));
                while b.held.len() > m.max_held {
                    b.held.pop_front();
                    m.metrics.held.fetch_sub(1, Ordering::Relaxed);
                    m.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                }
                first
            }
        }
    }

    /// The mirror's poll: appends what buyers hold for Redis (once it answers again) and, with
    /// `deliver`, gives each buyer connected here what other nodes made for it since (one
    /// pipelined read of their counters).
    pub fn poll_mirror(&self, deliver: bool) {
        let Some(m) = &self.mirror else { return };
        let all: Vec<_> = self.buyers.lock().values().cloned().collect();
        let mut connected = Vec::new();
        for b in all {
            let mut g = b.lock();
            if !g.held.is_empty() {
                let floor = g.seq;
                let _ = m.append(g.key, floor, &mut g.held, &[]);
            }
            if deliver && !g.conns.is_empty() {
                let key = g.key;
                drop(g);
                connected.push((key, b));
            }
        }
        let keys: Vec<u64> = connected.iter().map(|(k, _)| *k).collect();
        let Ok(lasts) = m.last_seqs(&keys) else { return };
        for ((_, b), last) in connected.iter().zip(lasts) {
            let mut g = b.lock();
            if last > g.seq {
                self.fill_gap(m, &mut g, last, None);
            }
        }
    }

    pub fn known_buyer(&self, key: u64) -> Option<Arc<Mutex<Buyer>>> {
        self.buyers.lock().get(&key).cloned()
    }

    /// Every buyer with a durable subscription whose filters match (announcements).
    pub fn subscribers(&self, attrs: &HashMap<String, String>) -> Vec<Arc<Mutex<Buyer>>> {
        let all: Vec<_> = self.buyers.lock().values().cloned().collect();
        all.into_iter()
            .filter(|b| b.lock().sub.as_ref().is_some_and(|s| s.matches(attrs)))
            .collect()
    }

    pub fn all_buyers(&self) -> Vec<Arc<Mutex<Buyer>>> {
        self.buyers.lock().values().cloned().collect()
    }

    /// Gives each event the buyer's next seq, logs them (one append for the lot), queues them
    /// to the buyer's connections (`origin` always gets them; subscribed ones the types in their
    /// mask) as one item per connection, and remembers each answer under its request id.
    pub fn emit(&self, b: &mut Buyer, evs: Vec<StreamEvent>, origin: Option<u64>) {
        if evs.is_empty() {
            return;
        }
        let now = unix_ns();
        if let Some(m) = &self.mirror {
            b.seq = self.mirror_number(m, b, &evs, now) - 1;
        }
        let first = b.seq + 1;
        let mut bits = Vec::with_capacity(evs.len());
        let mut batch = LogBatch::default();
        let mut offsets = Vec::with_capacity(evs.len());
        for se in &evs {
            b.seq += 1;
            let seq = b.seq;
            let (rec, blob) = to_record(b.key, seq, now, se);
            offsets.push((
                seq,
                match &blob {
                    Some(blob) => batch.push_blob(rec, blob),
                    None => batch.push(&rec),
                },
            ));
            let c = &mut b.counters;
            match &se.event {
                Body::Accepted { .. } | Body::Event(Event::BidAccepted(_)) => c.bids_placed += 1,
                Body::Event(Event::BidRejected(_)) => c.bids_rejected += 1,
                Body::Won { price, .. } => {
                    c.auctions_won += 1;
                    c.spend_micros += price;
                }
                Body::Event(Event::AuctionWon(w)) => {
                    c.auctions_won += 1;
                    c.spend_micros += w.price.as_ref().map_or(0, |m| m.micros);
                }
                Body::Lost { .. } | Body::Event(Event::AuctionLost(_)) => c.auctions_lost += 1,
                _ => {}
            }
            bits.push(se.event.type_bit());
            if !se.request_id.is_empty() {
                let ev = bid_event(&b.name, seq, now, se.clone());
                self.remember(b, &se.request_id, vec![ev]);
            }
        }
        self.log_events(b, &batch, &offsets);
        self.deliver(b, Made::Stream { evs, first, now }, &bits, origin, None);
    }

    /// Appends a batch of the buyer's events to the log and indexes them by seq (`offsets`:
    /// each one's seq and offset in the batch).
    fn log_events(&self, b: &mut Buyer, batch: &LogBatch, offsets: &[(u64, u64)]) {
        match self.log.append_batch(batch) {
            Ok(base) => b.index.extend(offsets.iter().map(|&(seq, off)| (seq, base + off))),
            Err(e) => eprintln!("rtbcore serve: event log append failed: {e}"),
        }
        self.metrics.events_logged.fetch_add(offsets.len() as u64, Ordering::Relaxed);
        self.prune_index(b);
    }

    fn deliver(
        &self,
        b: &mut Buyer,
        mut made: Made,
        bits: &[u16],
        origin: Option<u64>,
        exclude: Option<u64>,
    ) {
        let wants = |c: &ConnHandle, bit: u16| {
            exclude != Some(c.id)
                && (origin == Some(c.id)
                    || if c.subscribed { c.mask & bit != 0 } else { bit & T_OWN_RESULTS != 0 })
        };
        let targets: Vec<usize> = (0..b.conns.len())
            .filter(|&i| bits.iter().any(|&bit| wants(&b.conns[i], bit)))
            .collect();
        let n_all = bits.len() as u64;
        // the encoding of all the events, made at most once
        let mut all_encoded: Option<Vec<u8>> = None;
        for (k, &i) in targets.iter().enumerate() {
            let c = &b.conns[i];
            let all = bits.iter().all(|&bit| wants(c, bit));
            let last = k + 1 == targets.len();
            let out = match (c.proto, all) {
                (true, true) => {
                    let enc = all_encoded.get_or_insert_with(|| made.encode(&b.name, |_| true));
                    // the last connection served takes the encoding itself
                    let bytes = if last { std::mem::take(enc) } else { enc.clone() };
                    Out::Encoded { bytes, events: n_all }
                }
                (true, false) => {
                    let bytes = made.encode(&b.name, |i| wants(c, bits[i]));
                    let events = bits.iter().filter(|&&bit| wants(c, bit)).count() as u64;
                    Out::Encoded { bytes, events }
                }
                // the last connection served takes the events themselves
                (false, true) if last => Out::Events(made.take_events(&b.name)),
                (false, _) => Out::Events(made.events(&b.name, |i| wants(c, bits[i]))),
            };
            let n = out.events();
            if c.offer(out) {
                b.counters.events_sent += n;
            }
        }
    }

    fn remember(&self, b: &mut Buyer, rid: &str, evs: Vec<BidEvent>) {
        let w = &mut b.idem;
        if w.answers.insert(rid.to_string(), evs).is_none() {
            w.order.push_back(rid.to_string());
        }
        while w.order.len() > self.idem_window {
            if let Some(old) = w.order.pop_front() {
                w.answers.remove(&old);
            }
        }
    }

    /// The original answer to a request id the buyer used before, if still remembered.
    pub fn answered(&self, b: &Buyer, rid: &str) -> Option<Vec<BidEvent>> {
        if rid.is_empty() {
            return None;
        }
        b.idem.answers.get(rid).cloned()
    }

    fn prune_index(&self, b: &mut Buyer) {
        let (oldest, _) = self.log.bounds();
        while b.index.front().is_some_and(|(_, p)| *p < oldest) {
            b.index.pop_front();
        }
    }

    pub fn ack(&self, b: &mut Buyer, seq: u64) {
        if seq > b.acked && seq <= b.seq {
            b.acked = seq;
            let rec =
                Rec { kind: K_ACK, buyer: b.key, seq, time_ns: unix_ns(), ..Default::default() };
            let _ = self.log.append(&rec);
        }
    }

    /// Sets the durable subscription and the connection's delivery, and plans the replay.
    /// Returns the SubscriptionAck and the plan (None: no replay).
    pub fn subscribe(
        &self,
        b: &mut Buyer,
        conn: u64,
        s: &Subscribe,
        sub: Subscription,
    ) -> (SubscriptionAck, Option<ReplayPlan>) {
        let msg = Subscribe {
            event_types: s.event_types.clone(),
            filters: s.filters.clone(),
            ..Default::default()
        };
        let rec =
            Rec { kind: K_SUBSCRIPTION, buyer: b.key, time_ns: unix_ns(), ..Default::default() };
        let _ = self.log.append_blob(rec, &msg.encode_to_vec());
        let mask = sub.mask;
        let mut ack = SubscriptionAck {
            event_types: sub.types.clone(),
            filters: sub.raw_filters.clone(),
            ..Default::default()
        };
        b.sub = Some(sub);
        // what other nodes made so far goes to the buyer's other connections; this one gets it
        // by its replay (or not at all, as without a replay)
        self.sync(b, Some(conn));
        for c in b.conns.iter_mut().filter(|c| c.id == conn) {
            c.subscribed = true;
            c.mask = mask;
        }
        if !s.replay_missed {
            return (ack, None);
        }
        let since = match s.since {
            Some(subscribe::Since::SinceSeq(n)) => Since::Seq(n),
            Some(subscribe::Since::SinceTime(t)) => Since::Time(ts_ns(&t)),
            None => Since::Seq(b.acked),
        };
        let (from, to, truncated, plan) = self.plan_replay(b, since, mask);
        ack.replay_from = from;
        ack.replay_to = to;
        ack.truncated = truncated;
        (ack, plan)
    }

    /// Plans the replay of the buyer's events after `since`: (from, to, truncated, plan).
    pub fn plan_replay(
        &self,
        b: &mut Buyer,
        since: Since,
        mask: u16,
    ) -> (u64, u64, bool, Option<ReplayPlan>) {
        self.prune_index(b);
        let now = unix_ns();
        let mut not_before = now.saturating_sub(self.retention_ns);
        let after = match since {
            Since::Seq(n) => n,
            Since::Time(t) => {
                not_before = not_before.max(t);
                0
            }
        };
        let to = b.seq;
        if after >= to {
            return (0, 0, false, None);
        }
        let (_, end_pos) = self.log.bounds();
        // the first event this node's log still holds with seq > after
        let i = b.index.partition_point(|(s, _)| *s <= after);
        let local = b.index.get(i).copied();
        // with the mirror, the buyer's Redis stream says where the replay starts (events of
        // every node); the local position lets it fall back to this node's log. Without an
        // answer from Redis, this node's log alone.
        let mirrored = self.mirror.as_ref().and_then(|m| m.read(b.key, after, to, 1).ok());
        let (first_seq, start_pos, from_redis) = match (mirrored, local) {
            (Some(page), _) => match page.first() {
                Some(&(first, _)) => (first, local.map_or(end_pos, |(_, p)| p), true),
                None => return (0, 0, true, None),
            },
            (None, Some((first, pos))) => (first, pos, false),
            (None, None) => return (0, 0, true, None),
        };
        // since_time has no seq to compare with: events before it are skipped while reading
        let truncated = matches!(since, Since::Seq(_)) && first_seq > after + 1;
        let plan = ReplayPlan {
            buyer_key: b.key,
            from: first_seq,
            to,
            start_pos,
            end_pos,
            not_before_ns: not_before,
            mask,
            mirrored: from_redis,
        };
        (first_seq, to, truncated, Some(plan))
    }

    /// Registers a live connection of the buyer (it gets what is made from now on).
    pub fn attach(&self, b: &mut Buyer, conn: ConnHandle) {
        self.sync(b, None);
        b.conns.push(conn);
    }

    pub fn detach(&self, b: &mut Buyer, conn: u64) {
        b.conns.retain(|c| c.id != conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64) -> Out {
        Out::Events(vec![BidEvent { seq, ..Default::default() }])
    }

    fn seq_of(o: Out) -> u64 {
        match o {
            Out::Events(e) => e[0].seq,
            _ => panic!("not events"),
        }
    }

    #[test]
    fn a_full_queue_spills_in_order_and_overflows_only_when_the_spill_is_full() {
        let (tx, mut rx) = mpsc::channel(2);
        let out = Outlet::new(tx, 4, u64::MAX);
        for s in 1..=5 {
            assert!(out.offer(ev(s)), "{s}");
        }
        assert!(out.spilling_for().is_some());
        // the queue drains first, then the spill, in the order offered
        assert_eq!(seq_of(rx.try_recv().unwrap()), 1);
        // while the spill holds anything, new items go behind it even with room in the queue
        assert!(out.offer(ev(6)));
        assert_eq!(seq_of(rx.try_recv().unwrap()), 2);
        assert!(rx.try_recv().is_err());
        let rest: Vec<u64> = std::iter::from_fn(|| out.unspill()).map(seq_of).collect();
        assert_eq!(rest, vec![3, 4, 5, 6]);
        assert!(out.spilling_for().is_none());
        // full queue and full spill: the next item cannot be kept and the connection is marked
        for s in 7..=12 {
            assert!(out.offer(ev(s)), "{s}");
        }
        assert!(!out.offer(ev(13)));
        assert!(out.overflowed.load(Ordering::Relaxed));
        assert!(!out.offer(ev(14)));
    }

    #[test]
    fn the_events_queued_are_bounded_whatever_the_items() {
        let (tx, mut rx) = mpsc::channel(16);
        let out = Outlet::new(tx, 16, 5);
        let two = || Out::Events(vec![BidEvent::default(), BidEvent::default()]);
        assert!(out.offer(two()));
        assert!(out.offer(two()));
        // taken by the writer: room again
        let o = rx.try_recv().unwrap();
        out.taken(&o);
        assert!(out.offer(two()));
        assert!(!out.offer(two()));
        assert!(out.overflowed.load(Ordering::Relaxed));
    }

    #[test]
    fn without_a_spill_a_full_queue_overflows_at_once() {
        let (tx, _rx) = mpsc::channel(1);
        let out = Outlet::new(tx, 0, u64::MAX);
        assert!(out.offer(ev(1)));
        assert!(!out.offer(ev(2)));
        assert!(out.overflowed.load(Ordering::Relaxed));
    }
}
