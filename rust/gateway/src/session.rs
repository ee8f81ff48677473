//! One WebSocket client: authentication within the timeout, then a loop that reads client
//! frames, writes what its bounded outbound queue holds (live events, replays, closes), pings
//! for the heartbeat and watches for shutdown. It is the only writer of its socket.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use rtbcore_core::engine::mono_ns;
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;
use tokio::sync::mpsc;

use crate::auctions::{reject, Reject, Staged};
use crate::auth::{
    scope_names, unix_now, Identity, SCOPE_BID, SCOPE_METRICS, SCOPE_PUBLISH, SCOPE_SUBSCRIBE,
};
use crate::codec::{decode_binary, decode_text, encode_events_into, DecodeError, Wire};
use crate::events::*;
use crate::hub::Hub;
use crate::limits::TokenBucket;
use crate::replay::replay_events;
use crate::streams::{Buyer, ConnHandle, Out, Outlet, Subscription};
use parking_lot::Mutex;
use rtbcore_proto::prost::Message as _;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_UNSUPPORTED: u16 = 1003;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_AUTH_FAILED: u16 = 4001;
pub const CLOSE_AUTH_TIMEOUT: u16 = 4002;
pub const CLOSE_AUTH_RATE: u16 = 4003;
pub const CLOSE_SLOW_CONSUMER: u16 = 4008;
pub const CLOSE_HEARTBEAT: u16 = 4009;
pub const CLOSE_TOO_MANY: u16 = 4029;

type Sink = SplitSink<WebSocket, Message>;
type Source = SplitStream<WebSocket>;

/// The writing half and what the connection needs to write.
struct Writer {
    sink: Sink,
    wire: Wire,
    hub: Arc<Hub>,
    conn: u64,
    n_conn_events: u64,
}

impl Writer {
    async fn send(&mut self, events: Vec<BidEvent>) -> bool {
        let mut f = FrameBuf::new();
        f.add(self.wire, Out::Events(events));
        self.send_frame(f).await
    }

    /// Sends a frame's events: one message, or several split between events when the batch
    /// is over [`MAX_OUT_FRAME_BYTES`].
    async fn send_frame(&mut self, f: FrameBuf) -> bool {
        if f.n == 0 {
            return true;
        }
        match self.wire {
            Wire::Proto if f.bytes.len() <= MAX_OUT_FRAME_BYTES => {
                self.send_msg(Message::Binary(f.bytes.into()), f.n).await
            }
            Wire::Proto => {
                let mut start = 0;
                for (end, n) in split_events(&f.bytes, MAX_OUT_FRAME_BYTES) {
                    let piece = f.bytes[start..end].to_vec();
                    start = end;
                    if !self.send_msg(Message::Binary(piece.into()), n).await {
                        return false;
                    }
                }
                true
            }
            Wire::Json => {
                let mut todo = VecDeque::from([f.events]);
                while let Some(events) = todo.pop_front() {
                    let n = events.len();
                    let frame = ServerFrame { events };
                    // serialising generated messages cannot fail (see codec::encode)
                    let text =
                        serde_json::to_string(&frame).unwrap_or_else(|_| "{\"events\":[]}".into());
                    if text.len() > MAX_OUT_FRAME_BYTES && n > 1 {
                        let mut first = frame.events;
                        let second = first.split_off(n / 2);
                        todo.push_front(second);
                        todo.push_front(first);
                        continue;
                    }
                    if !self.send_msg(Message::Text(text.into()), n as u64).await {
                        return false;
                    }
                }
                true
            }
        }
    }

    async fn send_msg(&mut self, msg: Message, n: u64) -> bool {
        let limit = self.hub.cfg.slow_consumer_timeout();
        match tokio::time::timeout(limit, self.sink.send(msg)).await {
            Ok(Ok(())) => {
                self.hub.metrics.frames_out.fetch_add(1, Ordering::Relaxed);
                self.hub.metrics.events_out.fetch_add(n, Ordering::Relaxed);
                true
            }
            Ok(Err(_)) => false,
            // the socket did not take a frame within the limit: a slow consumer (the close
            // that follows is what is counted)
            Err(_) => false,
        }
    }

    /// A connection event (seq 0, not logged).
    fn conn_event(&mut self, event: Event, request_id: &str) -> BidEvent {
        self.n_conn_events += 1;
        BidEvent {
            event_id: format!("c{}:{}", self.conn, self.n_conn_events),
            seq: 0,
            timestamp: Some(ts(unix_ns())),
            request_id: request_id.to_string(),
            event: Some(event),
        }
    }

    async fn close(&mut self, code: u16, reason: &str) {
        self.hub.metrics.close(code);
        let frame = CloseFrame { code, reason: reason.to_string().into() };
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.sink.send(Message::Close(Some(frame))),
        )
        .await;
        let _ = tokio::time::timeout(Duration::from_millis(200), self.sink.close()).await;
    }
}

/// A frame or message the server could not read, as a close code (None: keep going).
fn read_error_code(e: &axum::Error) -> u16 {
    let s = e.to_string();
    if s.contains("too long") || s.contains("Space limit") || s.contains("too big") {
        CLOSE_TOO_BIG
    } else {
        CLOSE_PROTOCOL
    }
}

enum Incoming {
    Frame(ClientFrame),
    Bad(DecodeError),
    Pong,
    Closed,
    Error(u16),
}

async fn next_incoming(src: &mut Source, wire: Wire) -> Incoming {
    loop {
        return match src.next().await {
            None => Incoming::Closed,
            Some(Err(e)) => Incoming::Error(read_error_code(&e)),
            Some(Ok(Message::Binary(b))) => match decode_binary(wire, &b) {
                Ok(f) => Incoming::Frame(f),
                Err(e) => Incoming::Bad(e),
            },
            Some(Ok(Message::Text(t))) => match decode_text(wire, t.as_str()) {
                Ok(f) => Incoming::Frame(f),
                Err(e) => Incoming::Bad(e),
            },
            Some(Ok(Message::Pong(_))) => Incoming::Pong,
            Some(Ok(Message::Ping(_))) => continue,
            Some(Ok(Message::Close(_))) => Incoming::Closed,
        };
    }
}

/// Runs one connection to its end.
pub async fn run(hub: Arc<Hub>, socket: WebSocket, wire: Wire, addr: SocketAddr, admitted: bool) {
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    hub.metrics.connections_total.fetch_add(1, Ordering::Relaxed);
    hub.metrics.connections_open.fetch_add(1, Ordering::Relaxed);
    let (sink, mut src) = socket.split();
    let mut w = Writer { sink, wire, hub: hub.clone(), conn, n_conn_events: 0 };
    if !admitted {
        w.close(CLOSE_TOO_MANY, "too many connections").await;
    } else if hub.limiter.blocked(addr.ip()) {
        w.close(CLOSE_AUTH_RATE, "too many failed authentications: retry later").await;
    } else if hub.is_draining() {
        w.close(CLOSE_GOING_AWAY, "the exchange is shutting down").await;
    } else if let Some((who, rid, rest)) = authenticate(&hub, &mut w, &mut src, addr).await {
        connected(&hub, &mut w, &mut src, who, rid, rest).await;
    }
    linger(&mut src).await;
    hub.metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
}

/// After our close frame, reads (and drops) what the peer still sends until its close frame or
/// a short timeout, so that the peer reads our close code before the TCP connection ends.
async fn linger(src: &mut Source) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(m)) = src.next().await {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// Reads until a successful `Auth` (answering anything else with NOT_AUTHENTICATED); closes
/// with 4001 / 4002 / 4003 and returns None otherwise. Also returns the Auth's request id and
/// the messages that followed it in its frame.
async fn authenticate(
    hub: &Hub,
    w: &mut Writer,
    src: &mut Source,
    addr: SocketAddr,
) -> Option<(Identity, String, Vec<BidMessage>)> {
    let deadline = tokio::time::Instant::now() + hub.cfg.auth_timeout();
    loop {
        let inc = tokio::select! {
            i = next_incoming(src, w.wire) => i,
            _ = tokio::time::sleep_until(deadline) => {
                w.close(CLOSE_AUTH_TIMEOUT, "no Auth within the authentication timeout").await;
                return None;
            }
            _ = hub.shutdown.cancelled() => {
                w.close(CLOSE_GOING_AWAY, "the exchange is shutting down").await;
                return None;
            }
        };
        let frame = match inc {
            Incoming::Frame(f) => f,
            Incoming::Pong => continue,
            Incoming::Closed => return None,
            Incoming::Error(code) => {
                w.close(code, "unreadable message").await;
                return None;
            }
            Incoming::Bad(DecodeError::WrongType) => {
                w.close(CLOSE_UNSUPPORTED, "wrong frame type for the subprotocol").await;
                return None;
            }
            Incoming::Bad(DecodeError::Malformed(m)) => {
                hub.metrics.reject(RejectReason::Malformed);
                let ev = w.conn_event(
                    Event::Error(Error { reason: RejectReason::Malformed as i32, message: m }),
                    "",
                );
                w.send(vec![ev]).await;
                continue;
            }
        };
        hub.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        let mut out = Vec::new();
        let mut msgs = frame.messages.into_iter();
        while let Some(m) = msgs.next() {
            hub.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
            let Some(Msg::Auth(a)) = m.message else {
                hub.metrics.reject(RejectReason::NotAuthenticated);
                let r = reject(RejectReason::NotAuthenticated, "the first message must be auth");
                out.push(w.conn_event(r.event(), &m.request_id));
                continue;
            };
            let checked = match &a.credential {
                Some(auth::Credential::ApiKey(k)) => hub.auth.check_api_key(k),
                Some(auth::Credential::Token(t)) => hub.auth.check_token(t, unix_now()),
                None => Err("auth needs api_key or token".to_string()),
            };
            match checked {
                Ok(who) => {
                    hub.metrics.auth_ok.fetch_add(1, Ordering::Relaxed);
                    w.send(out).await;
                    return Some((who, m.request_id, msgs.collect()));
                }
                Err(msg) => {
                    hub.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
                    hub.limiter.record_failure(addr.ip());
                    let res = AuthResult { ok: false, message: msg, ..Default::default() };
                    out.push(w.conn_event(Event::AuthResult(res), &m.request_id));
                    w.send(out).await;
                    w.close(CLOSE_AUTH_FAILED, "authentication failed").await;
                    return None;
                }
            }
        }
        w.send(out).await;
    }
}

/// The authenticated part: registers with the buyer's stream and serves until the end.
async fn connected(
    hub: &Arc<Hub>,
    w: &mut Writer,
    src: &mut Source,
    who: Identity,
    auth_rid: String,
    rest: Vec<BidMessage>,
) {
    let (tx, mut rx) = mpsc::channel::<Out>(hub.cfg.server.outbound_queue_frames);
    // a spill as large as the queue: a stall of up to slow_consumer_timeout_s survives
    let outlet = Outlet::new(
        tx,
        hub.cfg.server.outbound_queue_frames,
        hub.cfg.server.outbound_queue_events as u64,
    );
    let buyer = hub.streams.buyer(&who.buyer);
    let full = buyer.lock().conns.len() >= hub.cfg.server.max_connections_per_buyer;
    if full {
        w.close(CLOSE_TOO_MANY, "too many connections for this buyer").await;
        return;
    }
    {
        let mut b = buyer.lock();
        let res = AuthResult {
            ok: true,
            buyer_id: who.buyer.clone(),
            scopes: scope_names(who.scopes),
            last_seq: b.seq,
            acked_seq: b.acked,
            heartbeat_interval: Some(dur(hub.cfg.heartbeat_interval())),
            heartbeat_timeout: Some(dur(hub.cfg.heartbeat_timeout())),
            message: String::new(),
        };
        let ev = w.conn_event(Event::AuthResult(res), &auth_rid);
        // queued under the buyer lock, so it precedes every live event of this connection
        let _ = outlet.offer(Out::Events(vec![ev]));
        let handle = ConnHandle {
            id: w.conn,
            out: outlet.clone(),
            proto: w.wire == Wire::Proto,
            subscribed: false,
            mask: 0,
        };
        hub.streams.attach(&mut b, handle);
    }
    let mut s = Session {
        hub: hub.clone(),
        who: Arc::new(who),
        stream: buyer.clone(),
        conn: w.conn,
        out: outlet.clone(),
        bucket: TokenBucket::new(hub.cfg.server.rate_limit_per_s, hub.cfg.server.rate_limit_burst),
        n_conn_events: w.n_conn_events,
        conn_buf: Vec::new(),
        announcing: Vec::new(),
    };
    if !rest.is_empty() {
        // what followed the Auth in its frame (the frame is counted once)
        hub.metrics.frames_in.fetch_sub(1, Ordering::Relaxed);
        s.frame(ClientFrame { messages: rest }).await;
    }
    let code = serve(&mut s, w, src, &mut rx, &outlet).await;
    {
        let mut b = buyer.lock();
        hub.streams.detach(&mut b, w.conn);
    }
    if let Some((code, reason)) = code {
        if code == CLOSE_GOING_AWAY {
            // flush what was queued (then spilled) before the shutdown
            while let Some(o) = rx.try_recv().ok().or_else(|| outlet.unspill()) {
                if let o @ (Out::Events(_) | Out::Encoded { .. }) = o {
                    let mut f = FrameBuf::new();
                    f.add(w.wire, o);
                    if !w.send_frame(f).await {
                        break;
                    }
                }
            }
        }
        w.close(code, &reason).await;
    } else {
        // the client closed: answer its close frame so that its close handshake completes
        w.close(CLOSE_NORMAL, "").await;
    }
}

/// The loop; returns the close to send (None: the peer closed or went away).
async fn serve(
    s: &mut Session,
    w: &mut Writer,
    src: &mut Source,
    rx: &mut mpsc::Receiver<Out>,
    outlet: &Outlet,
) -> Option<(u16, String)> {
    let hub = s.hub.clone();
    let mut ping = tokio::time::interval(hub.cfg.heartbeat_interval());
    ping.tick().await;
    let mut last_pong = Instant::now();
    let limit = hub.cfg.slow_consumer_timeout();
    let mut spill_check = tokio::time::interval((limit / 4).max(Duration::from_millis(10)));
    // an item taken while coalescing that is not events (a replay, a close): it goes next
    let mut held: Option<Out> = None;
    loop {
        if outlet.overflowed.load(Ordering::Relaxed) {
            return Some((CLOSE_SLOW_CONSUMER, "slow consumer: resume with replay_missed".into()));
        }
        if let Some(o) = held.take() {
            if let Some(close) = send_out(s, w, o, rx, outlet, &mut held).await {
                return close;
            }
            continue;
        }
        // the queue is drained: what spilled behind it goes out now, in order
        if rx.is_empty() {
            if let Some(o) = outlet.unspill() {
                if let Some(close) = send_out(s, w, o, rx, outlet, &mut held).await {
                    return close;
                }
                continue;
            }
        }
        tokio::select! {
            biased;
            _ = hub.shutdown.cancelled() => {
                return Some((CLOSE_GOING_AWAY, "the exchange is shutting down".into()));
            }
            o = rx.recv() => match o {
                Some(o) => {
                    outlet.taken(&o);
                    if let Some(close) = send_out(s, w, o, rx, outlet, &mut held).await {
                        return close;
                    }
                }
                None => return None,
            },
            _ = spill_check.tick() => {
                if outlet.spilling_for().is_some_and(|d| d > limit) {
                    return Some((CLOSE_SLOW_CONSUMER, "slow consumer: resume with replay_missed".into()));
                }
            }
            inc = next_incoming(src, w.wire) => {
                // the frames already read go through before the answers are written, so that a
                // client sending many small frames gets their answers in few (one send each)
                let mut inc = inc;
                let mut taken = 0;
                loop {
                    if let Some(close) = s.incoming(inc, &mut last_pong).await {
                        return close;
                    }
                    taken += 1;
                    if taken >= READ_AHEAD_FRAMES || outlet.queued.load(Ordering::Relaxed) > outlet.max_events / 4 {
                        break;
                    }
                    match next_incoming(src, w.wire).now_or_never() {
                        Some(next) => inc = next,
                        None => break,
                    }
                }
            }
            _ = ping.tick() => {
                if last_pong.elapsed() > hub.cfg.heartbeat_timeout() {
                    return Some((CLOSE_HEARTBEAT, "heartbeat timeout".into()));
                }
                if w.sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return None;
                }
            }
        }
    }
}

/// Most client frames handled in a row, while more are already readable, before the
/// connection writes what they queued.
pub const READ_AHEAD_FRAMES: usize = 64;

/// Most events the writer coalesces into one outgoing frame.
pub const MAX_EVENTS_PER_FRAME: usize = 4096;
/// Encoded bytes beyond which the writer stops adding to a frame (clients commonly refuse
/// messages over 1 MiB).
pub const COALESCE_BYTES: usize = 256 * 1024;

/// Largest message the writer sends: a larger batch (a publisher frame's announcements with
/// large attributes, a backlog) goes out as several, split between events, since clients
/// commonly refuse messages over 1 MiB. One event larger than this goes alone.
pub const MAX_OUT_FRAME_BYTES: usize = 512 * 1024;

/// Where to cut encoded `ServerFrame.events` fields into pieces of at most `max` bytes: the end
/// offset and the event count of each piece. Bytes that do not parse (never: the gateway
/// encoded them) stay whole in one piece.
pub fn split_events(bytes: &[u8], max: usize) -> Vec<(usize, u64)> {
    use rtbcore_proto::prost::encoding::decode_varint;
    let mut out = Vec::new();
    let (mut pos, mut start, mut n) = (0usize, 0usize, 0u64);
    while pos < bytes.len() {
        let mut rest = &bytes[pos..];
        let field = decode_varint(&mut rest).and_then(|_key| decode_varint(&mut rest));
        let end = match field {
            Ok(len) => (bytes.len() - rest.len()).saturating_add(len as usize),
            Err(_) => bytes.len(),
        };
        let end = end.min(bytes.len());
        if end - start > max && n > 0 {
            out.push((pos, n));
            start = pos;
            n = 0;
        }
        n += 1;
        pos = end;
    }
    if n > 0 {
        out.push((pos, n));
    }
    out
}

/// The events of one outgoing frame: encoded (binary subprotocol) or as messages (JSON).
struct FrameBuf {
    bytes: Vec<u8>,
    events: Vec<BidEvent>,
    n: u64,
}

impl FrameBuf {
    fn new() -> FrameBuf {
        FrameBuf { bytes: Vec::new(), events: Vec::new(), n: 0 }
    }

    /// Adds queued events (`o` is `Out::Events` or `Out::Encoded`).
    fn add(&mut self, wire: Wire, o: Out) {
        match (wire, o) {
            (Wire::Proto, Out::Events(evs)) => {
                self.n += evs.len() as u64;
                encode_events_into(&evs, &mut self.bytes);
            }
            (Wire::Json, Out::Events(evs)) => {
                self.n += evs.len() as u64;
                self.events.extend(evs);
            }
            (Wire::Proto, Out::Encoded { bytes, events }) => {
                self.n += events;
                if self.bytes.is_empty() {
                    self.bytes = bytes;
                } else {
                    self.bytes.extend_from_slice(&bytes);
                }
            }
            // only binary connections are handed encoded events; decoded, should one arrive
            (Wire::Json, Out::Encoded { bytes, .. }) => {
                let evs = ServerFrame::decode(bytes.as_slice()).map(|f| f.events);
                let evs = evs.unwrap_or_default();
                self.n += evs.len() as u64;
                self.events.extend(evs);
            }
            (_, Out::Replay(_) | Out::Close(..)) => {}
        }
    }
}

/// Adds to `f` the events queued behind it (the queue, then the spill once the queue is empty:
/// the order they were offered in), up to [`MAX_EVENTS_PER_FRAME`] events or
/// [`COALESCE_BYTES`] bytes; an item that is not events stops it and is left in `held`.
fn coalesce(
    f: &mut FrameBuf,
    wire: Wire,
    rx: &mut mpsc::Receiver<Out>,
    outlet: &Outlet,
    held: &mut Option<Out>,
) {
    while f.n < MAX_EVENTS_PER_FRAME as u64 && f.bytes.len() < COALESCE_BYTES {
        let Some(o) = rx.try_recv().ok().inspect(|o| outlet.taken(o)).or_else(|| outlet.unspill())
        else {
            break;
        };
        match o {
            o @ (Out::Events(_) | Out::Encoded { .. }) => f.add(wire, o),
            other => {
                *held = Some(other);
                break;
            }
        }
    }
}

/// Sends one queued item, events coalesced with those queued behind them into one frame;
/// Some(close) ends the connection (None inside: the peer went away).
async fn send_out(
    s: &Session,
    w: &mut Writer,
    o: Out,
    rx: &mut mpsc::Receiver<Out>,
    outlet: &Outlet,
    held: &mut Option<Out>,
) -> Option<Option<(u16, String)>> {
    match o {
        o @ (Out::Events(_) | Out::Encoded { .. }) => {
            let mut f = FrameBuf::new();
            f.add(w.wire, o);
            coalesce(&mut f, w.wire, rx, outlet, held);
            if !w.send_frame(f).await {
                return Some(Some((CLOSE_SLOW_CONSUMER, "slow consumer".into())));
            }
        }
        Out::Replay(plan) => {
            let evs = replay_events(&s.hub, &s.who.buyer, &plan);
            s.hub.metrics.events_replayed.fetch_add(evs.len() as u64, Ordering::Relaxed);
            for chunk in evs.chunks(256) {
                if !w.send(chunk.to_vec()).await {
                    return Some(Some((CLOSE_SLOW_CONSUMER, "slow consumer".into())));
                }
            }
        }
        Out::Close(code, reason) => return Some(Some((code, reason))),
    }
    None
}

/// Bids placed in a row under one hold of the auction table (see `Session::place_run`).
const PLACE_RUN_HOLD: usize = 128;

fn rate_limited() -> Reject {
    reject(RejectReason::RateLimited, "the connection's message rate is over its limit")
}

/// Per-connection request handling.
struct Session {
    hub: Arc<Hub>,
    /// Shared, so that a message's handling holds it without a copy.
    who: Arc<Identity>,
    /// The buyer's stream state.
    stream: Arc<Mutex<Buyer>>,
    conn: u64,
    out: Outlet,
    bucket: TokenBucket,
    n_conn_events: u64,
    conn_buf: Vec<BidEvent>,
    /// Auctions opened by the frame being read, announced when its answers go out.
    announcing: Vec<(u64, Arc<AuctionStarted>)>,
}

/// A message's answer waiting for its frame's engine block.
enum Pending {
    Staged(Staged),
    Answer(StreamEvent),
}

impl Session {
    /// Handles what the client sent; Some(close) ends the connection (None inside: the peer
    /// went away).
    async fn incoming(
        &mut self,
        inc: Incoming,
        last_pong: &mut Instant,
    ) -> Option<Option<(u16, String)>> {
        match inc {
            Incoming::Frame(f) => self.frame(f).await,
            Incoming::Pong => *last_pong = Instant::now(),
            Incoming::Closed => return Some(None),
            Incoming::Error(code) => return Some(Some((code, "unreadable message".into()))),
            Incoming::Bad(DecodeError::WrongType) => {
                return Some(Some((
                    CLOSE_UNSUPPORTED,
                    "wrong frame type for the subprotocol".into(),
                )))
            }
            Incoming::Bad(DecodeError::Malformed(m)) => {
                self.hub.metrics.reject(RejectReason::Malformed);
                let e = Error { reason: RejectReason::Malformed as i32, message: m };
                self.conn_event(Event::Error(e), "");
                self.push_conn_events();
            }
        }
        None
    }

    fn conn_event(&mut self, event: Event, rid: &str) {
        self.n_conn_events += 1;
        let ev = BidEvent {
            event_id: format!("c{}:{}", self.conn, self.n_conn_events),
            seq: 0,
            timestamp: Some(ts(unix_ns())),
            request_id: rid.to_string(),
            event: Some(event),
        };
        self.conn_buf.push(ev);
    }

    /// Queues the buffered connection events as one frame; a full queue is a slow consumer.
    fn push_conn_events(&mut self) {
        if self.conn_buf.is_empty() {
            return;
        }
        let evs = std::mem::take(&mut self.conn_buf);
        let _ = self.out.offer(Out::Events(evs));
    }

    fn answer(&self, pending: &mut Vec<Pending>, r: Reject, rid: &str) {
        self.hub.metrics.reject(r.reason);
        pending.push(Pending::Answer(StreamEvent {
            event: Body::Event(r.event()),
            request_id: rid.to_string(),
            auction: 0,
            bid: 0,
        }));
    }

    fn scope(&self, bit: u8, what: &str) -> Result<(), Reject> {
        if self.who.scopes & bit == 0 {
            Err(reject(
                RejectReason::Forbidden,
                format!("{what} needs the {:?} scope", scope_names(bit)[0]),
            ))
        } else {
            Ok(())
        }
    }

    async fn frame(&mut self, f: ClientFrame) {
        let hub = self.hub.clone();
        hub.metrics.frames_in.fetch_add(1, Ordering::Relaxed);
        hub.metrics.messages_in.fetch_add(f.messages.len() as u64, Ordering::Relaxed);
        let max = hub.cfg.server.max_messages_per_frame;
        if f.messages.len() > max {
            hub.metrics.reject(RejectReason::TooManyMessages);
            let message = format!("a frame holds at most {max} messages, got {}", f.messages.len());
            self.conn_event(
                Event::Error(Error { reason: RejectReason::TooManyMessages as i32, message }),
                "",
            );
            self.push_conn_events();
            return;
        }
        let now = mono_ns();
        let clock = Instant::now();
        let mut pending: Vec<Pending> = Vec::with_capacity(f.messages.len());
        let mut msgs = f.messages.into_iter().peekable();
        while let Some(m) = msgs.next() {
            let rid = m.request_id;
            if rid.len() > 64 {
                self.answer(
                    &mut pending,
                    reject(RejectReason::InvalidField, "request_id must be at most 64 bytes"),
                    "",
                );
                continue;
            }
            if !self.bucket.take_at(1.0, clock) {
                self.answer(&mut pending, rate_limited(), &rid);
                continue;
            }
            let Some(msg) = m.message else {
                self.answer(
                    &mut pending,
                    reject(RejectReason::UnknownMessage, "empty or unknown message"),
                    &rid,
                );
                continue;
            };
            let answers_request = matches!(
                msg,
                Msg::PlaceBid(_) | Msg::UpdateBid(_) | Msg::CancelBid(_) | Msg::OpenAuction(_)
            );
            if answers_request && !rid.is_empty() {
                let in_frame = pending.iter().any(|p| match p {
                    Pending::Staged(s) => s.answer.request_id == rid,
                    Pending::Answer(a) => a.request_id == rid,
                });
                if in_frame {
                    self.flush(&mut pending, now).await;
                }
                let b = self.stream.clone();
                let old = hub.streams.answered(&b.lock(), &rid);
                if let Some(evs) = old {
                    self.flush(&mut pending, now).await;
                    hub.metrics.idempotent_replays.fetch_add(1, Ordering::Relaxed);
                    let _ = self.out.offer(Out::Events(evs));
                    continue;
                }
            }
            let who = self.who.clone();
            match msg {
                Msg::PlaceBid(p) => match self.scope(SCOPE_BID, "place_bid") {
                    Ok(()) => self.place_run(p, &rid, &mut msgs, &mut pending, now, clock),
                    Err(r) => self.answer(&mut pending, r, &rid),
                },
                Msg::UpdateBid(u) => match self
                    .scope(SCOPE_BID, "update_bid")
                    .and_then(|_| hub.update(&who, &u, &rid, now))
                {
                    Ok(s) => pending.push(Pending::Staged(s)),
                    Err(r) => self.answer(&mut pending, r, &rid),
                },
                Msg::CancelBid(c) => match self
                    .scope(SCOPE_BID, "cancel_bid")
                    .and_then(|_| hub.cancel(&who, &c, &rid, now))
                {
                    Ok(s) => pending.push(Pending::Staged(s)),
                    Err(r) => self.answer(&mut pending, r, &rid),
                },
                Msg::OpenAuction(o) => {
                    match self
                        .scope(SCOPE_PUBLISH, "open_auction")
                        .and_then(|_| hub.open_unannounced(Some(&who.buyer), &o))
                    {
                        Ok((eid, opened, started)) => {
                            self.announcing.push((eid, started));
                            pending.push(Pending::Answer(StreamEvent {
                                event: Body::Event(Event::AuctionOpened(opened)),
                                request_id: rid,
                                auction: eid,
                                bid: 0,
                            }))
                        }
                        Err(r) => self.answer(&mut pending, r, &rid),
                    }
                }
                Msg::Subscribe(sub) => {
                    self.flush(&mut pending, now).await;
                    self.subscribe(sub, &rid);
                }
                Msg::Ack(a) => {
                    let b = self.stream.clone();
                    hub.streams.ack(&mut b.lock(), a.seq);
                }
                Msg::Metrics(_) => {
                    self.flush(&mut pending, now).await;
                    match self.scope(SCOPE_METRICS, "metrics") {
                        Ok(()) => {
                            let ev = Event::MetricsUpdate(self.metrics_update());
                            self.conn_event(ev, &rid);
                        }
                        Err(r) => self.answer(&mut pending, r, &rid),
                    }
                }
                Msg::Auth(_) => self.answer(
                    &mut pending,
                    reject(RejectReason::InvalidField, "already authenticated"),
                    &rid,
                ),
            }
        }
        self.flush(&mut pending, now).await;
    }

    /// Places `p` and the bids right after it in the frame that carry no request id (the
    /// rate limit still taken per message) under one hold of the auction table, handed to any
    /// waiting thread every [`PLACE_RUN_HOLD`] bids so that a long frame does not stall the
    /// results or other connections.
    fn place_run(
        &mut self,
        p: PlaceBid,
        rid: &str,
        rest: &mut std::iter::Peekable<std::vec::IntoIter<BidMessage>>,
        pending: &mut Vec<Pending>,
        now: u64,
        clock: Instant,
    ) {
        let hub = self.hub.clone();
        let who = self.who.clone();
        let mut t = hub.table.lock();
        let mut next = Some(p);
        let mut rid = rid;
        let mut held = 0;
        let plain =
            |m: &BidMessage| m.request_id.is_empty() && matches!(m.message, Some(Msg::PlaceBid(_)));
        while let Some(p) = next.take() {
            held += 1;
            if held % PLACE_RUN_HOLD == 0 {
                parking_lot::MutexGuard::bump(&mut t);
            }
            match hub.place_locked(&mut t, &who, &p, rid, now) {
                Ok(s) => pending.push(Pending::Staged(s)),
                Err(r) => self.answer(pending, r, rid),
            }
            rid = "";
            while let Some(m) = rest.next_if(plain) {
                if !self.bucket.take_at(1.0, clock) {
                    self.answer(pending, rate_limited(), "");
                } else if let Some(Msg::PlaceBid(p)) = m.message {
                    next = Some(p);
                    break;
                }
            }
        }
    }

    /// Submits the staged bids as one engine block and emits every pending answer in order.
    async fn flush(&mut self, pending: &mut Vec<Pending>, now: u64) {
        self.push_conn_events();
        // the frame's auctions are announced before they are answered, each buyer's at once
        self.hub.announce(std::mem::take(&mut self.announcing));
        if pending.is_empty() {
            return;
        }
        let hub = self.hub.clone();
        let mut staged = Vec::with_capacity(pending.len());
        let mut order: Vec<Option<StreamEvent>> = Vec::with_capacity(pending.len());
        for p in std::mem::take(pending) {
            match p {
                Pending::Staged(s) => {
                    staged.push(s);
                    order.push(None);
                }
                Pending::Answer(a) => order.push(Some(a)),
            }
        }
        let reserved = hub.reserve(&staged, now).await;
        // the block goes to the engine under the buyer's stream lock, and its answers are
        // numbered before the lock is let go: an auction the block closes reports to this
        // buyer (AuctionWon / AuctionLost) after the BidAccepted of the bid it saw
        let b = self.stream.clone();
        let mut b = b.lock();
        let refused = reserved.and_then(|p| hub.send_block(p, &staged)).err();
        // the answers are moved out: what stays of `staged` is what arming ttls reads
        let mut staged_iter = staged.iter_mut();
        let mut answers = Vec::with_capacity(order.len());
        for p in order {
            match p {
                Some(a) => answers.push(a),
                None => {
                    let s = staged_iter.next().expect("one staged per pending");
                    match &refused {
                        None => {
                            match s.kind {
                                rtbcore_core::record::KIND_PLACE => &hub.metrics.bids_accepted,
                                rtbcore_core::record::KIND_UPDATE => &hub.metrics.bids_updated,
                                _ => &hub.metrics.bids_cancelled,
                            }
                            .fetch_add(1, Ordering::Relaxed);
                            let placeholder = StreamEvent {
                                event: Body::Event(Event::BidAccepted(BidAccepted::default())),
                                request_id: String::new(),
                                auction: 0,
                                bid: 0,
                            };
                            answers.push(std::mem::replace(&mut s.answer, placeholder));
                        }
                        Some(r) => {
                            hub.metrics.reject(r.reason);
                            answers.push(StreamEvent {
                                event: Body::Event(r.clone().event()),
                                request_id: std::mem::take(&mut s.answer.request_id),
                                auction: 0,
                                bid: 0,
                            });
                        }
                    }
                }
            }
        }
        hub.streams.emit(&mut b, answers, Some(self.conn));
        drop(b);
        if refused.is_none() {
            hub.arm_ttls(&staged);
        }
    }

    fn subscribe(&mut self, sub: Subscribe, rid: &str) {
        let hub = self.hub.clone();
        if let Err(r) = self.scope(SCOPE_SUBSCRIBE, "subscribe") {
            hub.metrics.reject(r.reason);
            self.conn_event(r.event(), rid);
            return;
        }
        let parsed = match Subscription::parse(&sub.event_types, &sub.filters) {
            Ok(p) => p,
            Err(m) => {
                hub.metrics.reject(RejectReason::InvalidField);
                self.conn_event(reject(RejectReason::InvalidField, m).event(), rid);
                return;
            }
        };
        let b = self.stream.clone();
        let mut b = b.lock();
        let (ack, plan) = hub.streams.subscribe(&mut b, self.conn, &sub, parsed);
        // queued under the buyer lock: the ack, then the replay, then live events
        self.conn_event(Event::SubscriptionAck(ack), rid);
        self.push_conn_events();
        if let Some(plan) = plan {
            let _ = self.out.offer(Out::Replay(plan));
        }
    }

    fn metrics_update(&self) -> MetricsUpdate {
        let b = self.stream.clone();
        let b = b.lock();
        let c = b.counters;
        let cap = self.out.tx.max_capacity() as f64;
        let depth = cap - self.out.tx.capacity() as f64;
        let m = [
            ("bids_placed", c.bids_placed as f64),
            ("bids_rejected", c.bids_rejected as f64),
            ("auctions_won", c.auctions_won as f64),
            ("auctions_lost", c.auctions_lost as f64),
            ("spend_micros", c.spend_micros as f64),
            ("events_sent", c.events_sent as f64),
            ("last_seq", b.seq as f64),
            ("acked_seq", b.acked as f64),
            ("outbound_queue_depth", depth),
        ];
        MetricsUpdate { metrics: m.iter().map(|(k, v)| (k.to_string(), *v)).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_events_cuts_between_events_within_the_bound() {
        let ev =
            |seq, pad: usize| BidEvent { seq, event_id: "x".repeat(pad), ..Default::default() };
        let evs: Vec<BidEvent> = (1..=50).map(|s| ev(s, 100 + (s as usize * 37) % 900)).collect();
        let mut buf = Vec::new();
        encode_events_into(&evs, &mut buf);
        for max in [1, 500, 1000, 4096, 1 << 20] {
            let pieces = split_events(&buf, max);
            let mut start = 0;
            let mut seqs = Vec::new();
            for &(end, n) in &pieces {
                let got = ServerFrame::decode(&buf[start..end]).unwrap().events;
                assert_eq!(got.len() as u64, n);
                // over the bound only as a single event
                assert!(end - start <= max || n == 1, "max {max}: {} bytes", end - start);
                seqs.extend(got.iter().map(|e| e.seq));
                start = end;
            }
            assert_eq!(start, buf.len());
            assert_eq!(seqs, (1..=50).collect::<Vec<u64>>(), "max {max}");
        }
        assert_eq!(split_events(&buf, 1 << 20), vec![(buf.len(), 50)]);
        assert!(split_events(&[], 10).is_empty());
    }
}
