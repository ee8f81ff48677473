//! The one port: `/v1/bidding` (WebSocket), `/v1/events` (Server-Sent Events with
//! `Last-Event-ID` resume), `/metrics` (Prometheus text), `/healthz`, `/readyz`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use rtbcore_proto::prost::Message as _;
use rtbcore_proto::v1::{BidEvent, ServerFrame};
use rtbcore_proto::{SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;

use crate::auth::{unix_now, Identity, SCOPE_SUBSCRIBE};
use crate::codec::Wire;
use crate::events::{type_bit, TYPE_NAMES, T_ALL};
use crate::hub::Hub;
use crate::replay::replay_events;
use crate::session;
use crate::streams::{ConnHandle, Out, Outlet, Since};

/// Bytes read from a WebSocket at a time (see `bidding`).
const READ_CHUNK: usize = 4096;

#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub conns: Arc<Semaphore>,
    pub tracker: TaskTracker,
    pub openrtb: Arc<crate::openrtb::OpenRtb>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/bidding", get(bidding))
        .route("/v1/events", get(events))
        .route("/openrtb2/auction", post(crate::openrtb::auction))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

async fn bidding(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    ws: WebSocketUpgrade,
) -> Response {
    let max = st.hub.cfg.server.max_frame_bytes;
    let ws = ws
        .protocols([SUBPROTOCOL_PROTO, SUBPROTOCOL_JSON])
        .max_message_size(max)
        .max_frame_size(max)
        // tungstenite reads in chunks of this size and keeps the buffer per connection: the
        // 128 KiB default would dominate an idle connection's memory; larger frames still
        // arrive whole, over several reads
        .read_buffer_size(READ_CHUNK);
    let wire = match ws.selected_protocol().and_then(|p| p.to_str().ok()) {
        Some(SUBPROTOCOL_JSON) => Wire::Json,
        _ => Wire::Proto,
    };
    let permit = st.conns.clone().try_acquire_owned().ok();
    let hub = st.hub.clone();
    let tracker = st.tracker.clone();
    ws.on_upgrade(move |socket| {
        tracker.track_future(async move {
            let admitted = permit.is_some();
            session::run(hub, socket, wire, addr, admitted).await;
            drop(permit);
        })
    })
}

async fn metrics(State(st): State<AppState>) -> Response {
    let hub = &st.hub;
    let (oldest, tail) = hub.log.bounds();
    let extra = [
        (
            "rtbcore_gateway_event_log_records",
            "records held by the event log",
            (tail - oldest) as f64,
        ),
        (
            "rtbcore_gateway_event_log_capacity_records",
            "the event log's capacity",
            hub.log.capacity() as f64,
        ),
        ("rtbcore_gateway_buyers", "buyers with a stream", hub.streams.all_buyers().len() as f64),
    ];
    let mut body = hub.metrics_text(&extra);
    st.openrtb.metrics.render(&mut body);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.hub.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        "ready\n".into_response()
    }
}

fn credential(
    hub: &Hub,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Identity, String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if let Some(t) = q.get("token") {
        return hub.auth.check_token(t, unix_now());
    }
    match bearer.or_else(|| q.get("api_key").cloned()) {
        Some(c) if c.starts_with("v1.") => hub.auth.check_token(&c, unix_now()),
        Some(c) => hub.auth.check_api_key(&c),
        None => Err("send Authorization: Bearer <api key or token>, or ?api_key=".into()),
    }
}

/// Detaches the SSE client from its buyer when the response stream is dropped.
struct SseGuard {
    hub: Arc<Hub>,
    buyer: String,
    conn: u64,
}

impl Drop for SseGuard {
    fn drop(&mut self) {
        let b = self.hub.streams.buyer(&self.buyer);
        self.hub.streams.detach(&mut b.lock(), self.conn);
        self.hub.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

fn sse_event(ev: &BidEvent) -> SseEvent {
    let name = ev
        .event
        .as_ref()
        .map(type_bit)
        .and_then(|b| TYPE_NAMES.iter().find(|(x, _)| *x == b).map(|(_, n)| *n))
        .unwrap_or("event");
    SseEvent::default()
        .id(ev.event_id.clone())
        .event(name)
        .data(serde_json::to_string(ev).unwrap_or_default())
}

/// The buyer's stream as Server-Sent Events: `?event_types=a,b`, resume with `Last-Event-ID`
/// (`<buyer>:<seq>`) or `?since_seq=N`.
async fn events(
    State(st): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let hub = st.hub.clone();
    // the same per-address limit on failed logins as the WebSocket door, so that the SSE
    // door is no way around it
    if hub.limiter.blocked(addr.ip()) {
        hub.metrics.sse_auth_limited.fetch_add(1, Ordering::Relaxed);
        return (StatusCode::TOO_MANY_REQUESTS, "too many failed authentications: retry later\n")
            .into_response();
    }
    let who = match credential(&hub, &headers, &q) {
        Ok(w) => w,
        Err(m) => {
            hub.metrics.auth_failed.fetch_add(1, Ordering::Relaxed);
            hub.limiter.record_failure(addr.ip());
            return (StatusCode::UNAUTHORIZED, format!("{m}\n")).into_response();
        }
    };
    if who.scopes & SCOPE_SUBSCRIBE == 0 {
        return (StatusCode::FORBIDDEN, "needs the \"subscribe\" scope\n").into_response();
    }
    let mut mask = 0;
    for t in q
        .get("event_types")
        .map(|s| s.split(',').filter(|s| !s.is_empty()).collect())
        .unwrap_or(Vec::new())
    {
        match TYPE_NAMES.iter().find(|(_, n)| *n == t) {
            Some((b, _)) => mask |= b,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("event_types: unknown event type {t:?}\n"),
                )
                    .into_response()
            }
        }
    }
    if mask == 0 {
        mask = T_ALL;
    }
    let last_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let since = match (last_id, q.get("since_seq")) {
        (Some(id), _) => match id
            .rsplit_once(':')
            .and_then(|(b, s)| (b == who.buyer).then(|| s.parse::<u64>().ok()).flatten())
        {
            Some(n) => Some(n),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("Last-Event-ID {id:?} is not one of this buyer's event ids\n"),
                )
                    .into_response()
            }
        },
        (None, Some(s)) => match s.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                return (StatusCode::BAD_REQUEST, "since_seq must be an integer\n").into_response()
            }
        },
        (None, None) => None,
    };
    let (tx, rx) = mpsc::channel::<Out>(hub.cfg.server.outbound_queue_frames);
    let conn = hub.next_conn.fetch_add(1, Ordering::Relaxed);
    // no spill: an SSE client that falls behind is ended and resumes with Last-Event-ID
    let outlet = Outlet::new(tx, 0, u64::MAX);
    let overflowed = outlet.overflowed.clone();
    {
        let b = hub.streams.buyer(&who.buyer);
        let mut b = b.lock();
        // the buyer's seq across nodes first (with the Redis mirror), so the replay ends there
        hub.streams.sync(&mut b, None);
        if let Some(after) = since {
            if let (_, _, _, Some(plan)) = hub.streams.plan_replay(&mut b, Since::Seq(after), mask)
            {
                let _ = outlet.offer(Out::Replay(plan));
            }
        }
        let h = ConnHandle { id: conn, out: outlet, proto: false, subscribed: true, mask };
        hub.streams.attach(&mut b, h);
    }
    hub.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let guard = SseGuard { hub: hub.clone(), buyer: who.buyer.clone(), conn };
    let state = (rx, VecDeque::<BidEvent>::new(), guard, overflowed);
    let s = stream::unfold(state, |(mut rx, mut q, guard, overflowed)| async move {
        loop {
            if let Some(ev) = q.pop_front() {
                let e = sse_event(&ev);
                return Some((Ok::<_, Infallible>(e), (rx, q, guard, overflowed)));
            }
            if overflowed.load(Ordering::Relaxed) {
                return None;
            }
            let hub = guard.hub.clone();
            let o = tokio::select! {
                o = rx.recv() => o,
                _ = hub.shutdown.cancelled() => None,
            };
            match o? {
                Out::Events(evs) => q.extend(evs),
                Out::Encoded { bytes, .. } => q.extend(
                    ServerFrame::decode(bytes.as_slice()).map(|f| f.events).unwrap_or_default(),
                ),
                Out::Replay(plan) => q.extend(replay_events(&hub, &guard.buyer, &plan)),
                Out::Close(..) => return None,
            }
        }
    });
    sse_response(s)
}

fn sse_response<S>(s: S) -> Response
where
    S: Stream<Item = Result<SseEvent, Infallible>> + Send + 'static,
{
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}
