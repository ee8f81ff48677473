//! The buyers' event streams mirrored to Redis (`[mirror]`), so that a buyer's stream is one
//! stream across exchange nodes: a buyer that reconnects to another node replays what it
//! missed on the first, and a buyer connected to one node gets, in order, what another node
//! makes for it (results of bids placed there, announcements its subscription there matches).
//!
//! A buyer's stream is the Redis Stream `{<prefix>:<buyer key>}:events`, whose entry ids are
//! `<seq>-0`, beside its counter `{<prefix>:<buyer key>}:seq`; the hash tag puts both on one
//! Redis Cluster slot. A node numbers a buyer's events with one script call that advances the
//! counter and appends the events, atomically, so seqs are dense and global: a node handed seq
//! `s` while the last it delivered was `s' < s - 1` knows that `s'+1..s-1` were made elsewhere,
//! and reads them from the stream before it delivers `s` (a background poll does the same for
//! buyers with nothing new on this node). Entries hold the protobuf `BidEvent` without its seq
//! and event id, which follow from the entry id.
//!
//! While Redis does not answer, a node numbers a buyer's events on from the last seq it knows
//! and keeps them (bounded) to append once Redis is back; see `docs/exchange.md`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::{ConnectionLike, RedisResult, Value};

use std::collections::HashMap;

use rtbcore_proto::prost::Message as _;
use rtbcore_proto::v1::BidEvent;

use crate::config::MirrorConfig;
use crate::events::{from_record, stream_event_id, AuctionLookup};
use crate::evlog::{BuyerHistory, EventLog};

/// Advances the buyer's counter past the events (and past `floor`, the last seq the node knows,
/// and the stream's last entry, in case Redis lost the counter) and appends them with their
/// seqs. ARGV: maxlen, floor, k, then k (seq, payload) pairs already numbered by the node (kept
/// while Redis was away: each is appended unless its seq is taken, counted in the reply), then
/// the payloads to number. Returns {first seq of the new payloads, pairs not appended}.
const APPEND: &str = r#"
local maxlen = ARGV[1]
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[2])
if floor > cur then cur = floor end
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
local last = 0
if top[1] then last = tonumber(string.match(top[1][1], '^(%d+)')) end
local k = tonumber(ARGV[3])
local refused = 0
for i = 0, k - 1 do
  local s = tonumber(ARGV[4 + 2 * i])
  if s > last then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, string.format('%d-0', s), 'e', ARGV[5 + 2 * i])
    last = s
  else
    refused = refused + 1
  end
end
if last > cur then cur = last end
local first = cur + 1
for i = 4 + 2 * k, #ARGV do
  cur = cur + 1
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, string.format('%d-0', cur), 'e', ARGV[i])
end
redis.call('SET', KEYS[1], cur)
return {first, refused}
"#;

/// Connections to Redis, one per slot of a small pool (a buyer always uses the same one).
const POOL: usize = 4;

#[derive(Default)]
pub struct MirrorMetrics {
    pub appended: AtomicU64,
    pub gap_filled: AtomicU64,
    pub errors: AtomicU64,
    pub conflicts: AtomicU64,
    pub held: AtomicU64,
    pub dropped: AtomicU64,
    pub up: AtomicBool,
}

/// One Redis server, or a Redis Cluster reached from a seed node.
enum Target {
    Single(redis::Client),
    Cluster(redis::cluster::ClusterClient),
}

type Conn = Box<dyn ConnectionLike + Send>;

/// How long a pool slot whose call failed answers "down" at once instead of trying again: a
/// Redis that does not answer costs an emitting thread one timeout per second, not one per
/// batch.
const RETRY_AFTER: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Slot {
    conn: Option<Conn>,
    retry_at: Option<Instant>,
}

pub struct Mirror {
    target: Target,
    conns: Vec<Mutex<Slot>>,
    script: redis::Script,
    prefix: String,
    maxlen: u64,
    timeout: Duration,
    pub poll: Duration,
    /// Most events a buyer keeps for Redis while it is away.
    pub max_held: usize,
    pub metrics: MirrorMetrics,
}

/// Events numbered while Redis was away, waiting to be appended: (seq, payload).
pub type Held = VecDeque<(u64, Vec<u8>)>;

impl MirrorMetrics {
    /// Prometheus text.
    pub fn render(&self, out: &mut String) {
        let v = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, n) in [
            (
                "rtbcore_gateway_mirror_appended_total",
                "events appended to the buyers' Redis streams",
                v(&self.appended),
            ),
            (
                "rtbcore_gateway_mirror_gap_filled_total",
                "events other nodes made, read from Redis and delivered here",
                v(&self.gap_filled),
            ),
            (
                "rtbcore_gateway_mirror_errors_total",
                "Redis calls of the mirror that failed",
                v(&self.errors),
            ),
            (
                "rtbcore_gateway_mirror_conflicts_total",
                "held events not appended: another node took their seq while Redis was away",
                v(&self.conflicts),
            ),
            (
                "rtbcore_gateway_mirror_dropped_total",
                "held events dropped beyond mirror.max_held_events (still in this node's log)",
                v(&self.dropped),
            ),
            (
                "rtbcore_gateway_mirror_held",
                "events numbered while Redis did not answer, waiting to be appended",
                v(&self.held),
            ),
            (
                "rtbcore_gateway_mirror_up",
                "1 when the last Redis call of the mirror succeeded",
                self.up.load(Ordering::Relaxed) as u64,
            ),
        ] {
            crate::metrics::write_metric(out, name, help, n);
        }
    }
}

impl Mirror {
    /// Connects (and checks the server answers: a wrong URL fails the start, not the first bid).
    pub fn connect(cfg: &MirrorConfig) -> Result<Mirror, String> {
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let url = cfg.redis_url.as_str();
        let bad = |e: redis::RedisError| format!("mirror.redis_url: {e}");
        let target = if cfg.cluster {
            Target::Cluster(
                redis::cluster::ClusterClient::builder(vec![url])
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .build()
                    .map_err(bad)?,
            )
        } else {
            Target::Single(redis::Client::open(url).map_err(bad)?)
        };
        let m = Mirror {
            target,
            conns: (0..POOL).map(|_| Mutex::new(Slot::default())).collect(),
            script: redis::Script::new(APPEND),
            prefix: cfg.prefix.clone(),
            maxlen: cfg.stream_maxlen,
            timeout,
            poll: Duration::from_secs_f64(cfg.poll_interval_s),
            max_held: cfg.max_held_events,
            metrics: MirrorMetrics::default(),
        };
        // a key's slot decides the node on a cluster: ask for one of this prefix
        m.with(0, |c| redis::cmd("EXISTS").arg(m.keys(0).0).query::<u64>(c))
            .map_err(|e| format!("mirror.redis_url: {}: {e}", cfg.redis_url))?;
        Ok(m)
    }

    fn keys(&self, buyer: u64) -> (String, String) {
        let tag = format!("{{{}:{buyer}}}", self.prefix);
        (format!("{tag}:seq"), format!("{tag}:events"))
    }

    /// Runs `f` on the buyer's pooled connection, connecting first when there is none; an
    /// error drops the connection (the next call reconnects) and is counted.
    fn with<T>(
        &self,
        buyer: u64,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, String> {
        let mut slot = self.conns[(buyer as usize) % POOL].lock();
        if slot.retry_at.is_some_and(|t| Instant::now() < t) {
            return Err("mirror: Redis did not answer, retrying shortly".into());
        }
        let r = (|| {
            if slot.conn.is_none() {
                let c: Conn = match &self.target {
                    Target::Single(client) => {
                        let c = client.get_connection_with_timeout(self.timeout)?;
                        c.set_read_timeout(Some(self.timeout))?;
                        c.set_write_timeout(Some(self.timeout))?;
                        Box::new(c)
                    }
                    Target::Cluster(client) => Box::new(client.get_connection()?),
                };
                slot.conn = Some(c);
            }
            f(slot.conn.as_mut().expect("connected above").as_mut())
        })();
        match r {
            Ok(v) => {
                slot.retry_at = None;
                self.metrics.up.store(true, Ordering::Relaxed);
                Ok(v)
            }
            Err(e) => {
                slot.conn = None;
                slot.retry_at = Some(Instant::now() + RETRY_AFTER);
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                self.metrics.up.store(false, Ordering::Relaxed);
                Err(e.to_string())
            }
        }
    }

    /// Appends `held` (already numbered) and numbers and appends `payloads`; returns the seq
    /// of the first of `payloads`. `held` is emptied once Redis has it.
    pub fn append(
        &self,
        buyer: u64,
        floor: u64,
        held: &mut Held,
        payloads: &[Vec<u8>],
    ) -> Result<u64, String> {
        let (seq_key, stream) = self.keys(buyer);
        let (first, refused): (u64, u64) = self.with(buyer, |c| {
            let mut inv = self.script.key(&seq_key);
            inv.key(&stream).arg(self.maxlen).arg(floor).arg(held.len());
            for (s, p) in held.iter() {
                inv.arg(*s).arg(p.as_slice());
            }
            for p in payloads {
                inv.arg(p.as_slice());
            }
            inv.invoke(c)
        })?;
        let n = held.len() as u64 - refused + payloads.len() as u64;
        self.metrics.appended.fetch_add(n, Ordering::Relaxed);
        self.metrics.conflicts.fetch_add(refused, Ordering::Relaxed);
        self.metrics.held.fetch_sub(held.len() as u64, Ordering::Relaxed);
        held.clear();
        Ok(first)
    }

    /// The buyer's last seq across nodes.
    pub fn last_seq(&self, buyer: u64) -> Result<u64, String> {
        let (seq_key, _) = self.keys(buyer);
        self.with(buyer, |c| redis::cmd("GET").arg(&seq_key).query::<Option<u64>>(c))
            .map(|v| v.unwrap_or(0))
    }

    /// The last seqs of many buyers across nodes (the poll, the check at start): pipelined
    /// GETs (one round trip per 1,024 buyers) on one server; one GET each on a cluster, whose
    /// keys are on many slots.
    pub fn last_seqs(&self, buyers: &[u64]) -> Result<Vec<u64>, String> {
        if matches!(self.target, Target::Cluster(_)) {
            return buyers.iter().map(|&b| self.last_seq(b)).collect();
        }
        let mut out = Vec::with_capacity(buyers.len());
        for chunk in buyers.chunks(1024) {
            let mut pipe = redis::pipe();
            for &b in chunk {
                pipe.cmd("GET").arg(self.keys(b).0);
            }
            let got: Vec<Option<u64>> = self.with(chunk[0], |c| pipe.query(c))?;
            out.extend(got.into_iter().map(|v| v.unwrap_or(0)));
        }
        Ok(out)
    }

    /// The buyer's entries with seq in `after+1..=to`, at most `count`, in order:
    /// (seq, payload).
    pub fn read(
        &self,
        buyer: u64,
        after: u64,
        to: u64,
        count: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, String> {
        if after >= to {
            return Ok(Vec::new());
        }
        let (_, stream) = self.keys(buyer);
        let v: Value = self.with(buyer, |c| {
            redis::cmd("XRANGE")
                .arg(&stream)
                .arg(format!("{}-0", after + 1))
                .arg(format!("{to}-0"))
                .arg("COUNT")
                .arg(count)
                .query(c)
        })?;
        parse_entries(v)
    }
}

/// A buyer's stream entry for `ev`: the event without its seq and event id, which follow from
/// the entry's id.
pub fn entry_payload(ev: BidEvent) -> Vec<u8> {
    BidEvent { seq: 0, event_id: String::new(), ..ev }.encode_to_vec()
}

/// The event a buyer's stream entry holds, with its seq and event id.
pub fn entry_event(buyer: &str, seq: u64, payload: &[u8]) -> Option<BidEvent> {
    let mut ev = BidEvent::decode(payload).ok()?;
    ev.seq = seq;
    ev.event_id = stream_event_id(buyer, seq);
    Some(ev)
}

/// At start: appends to Redis what this node's log holds beyond a buyer's Redis counter: events
/// numbered while Redis did not answer and still held when the node stopped or was killed.
/// Returns how many were appended.
pub fn reconcile(
    m: &Mirror,
    log: &EventLog,
    buyers: &HashMap<u64, BuyerHistory>,
    aux: &dyn AuctionLookup,
    currency: &str,
) -> Result<u64, String> {
    let mut total = 0;
    let keys: Vec<u64> = buyers.keys().copied().collect();
    for (key, redis_last) in keys.iter().copied().zip(m.last_seqs(&keys)?) {
        let h = &buyers[&key];
        if h.last_seq <= redis_last {
            continue;
        }
        let i = h.index.partition_point(|(s, _)| *s <= redis_last);
        let Some(&(_, start)) = h.index.get(i) else { continue };
        let (_, end) = log.bounds();
        let mut held = Held::new();
        let mut last = redis_last;
        log.read_range(start, end, |_, e| {
            let r = &e.rec;
            if r.buyer == key && r.seq > last && r.seq <= h.last_seq {
                if let Some(ev) = from_record("", &e, currency, aux) {
                    last = ev.seq;
                    held.push_back((ev.seq, entry_payload(ev)));
                }
            }
            true
        })?;
        let n = held.len() as u64;
        m.metrics.held.fetch_add(n, Ordering::Relaxed);
        m.append(key, redis_last, &mut held, &[])?;
        total += n;
    }
    Ok(total)
}

/// XRANGE's reply: [[id, [field, value, ...]], ...] -> (seq, value of field `e`).
fn parse_entries(v: Value) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let bad = || "mirror: unexpected XRANGE reply".to_string();
    let Value::Array(items) = v else { return Err(bad()) };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        let Value::Array(mut pair) = it else { return Err(bad()) };
        if pair.len() != 2 {
            return Err(bad());
        }
        let fields = pair.pop().ok_or_else(bad)?;
        let id = pair.pop().ok_or_else(bad)?;
        let id = match id {
            Value::BulkString(b) => String::from_utf8(b).map_err(|_| bad())?,
            Value::SimpleString(s) => s,
            _ => return Err(bad()),
        };
        let seq: u64 = id.split('-').next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let Value::Array(fields) = fields else { return Err(bad()) };
        let mut payload = None;
        for kv in fields.chunks(2) {
            if let [Value::BulkString(k), Value::BulkString(v)] = kv {
                if k == b"e" {
                    payload = Some(v.clone());
                }
            }
        }
        out.push((seq, payload.ok_or_else(bad)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrange_replies_parse_and_bad_ones_are_errors() {
        let entry = |id: &str, v: &[u8]| {
            Value::Array(vec![
                Value::BulkString(id.as_bytes().to_vec()),
                Value::Array(vec![Value::BulkString(b"e".to_vec()), Value::BulkString(v.to_vec())]),
            ])
        };
        let v = Value::Array(vec![entry("3-0", b"x"), entry("17-0", b"")]);
        assert_eq!(parse_entries(v).unwrap(), vec![(3, b"x".to_vec()), (17, Vec::new())]);
        assert!(parse_entries(Value::Array(vec![entry("x-0", b"x")])).is_err());
        assert!(parse_entries(Value::Nil).is_err());
        let no_field = Value::Array(vec![Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Array(vec![]),
        ])]);
        assert!(parse_entries(no_field).is_err());
    }
}
