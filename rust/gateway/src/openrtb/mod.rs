//! The OpenRTB 2.6 door: `POST /openrtb2/auction` on the gateway's port. Each `imp` is one
//! auction in the embedded engine, the same one WebSocket buyers bid in: they receive
//! `AuctionStarted` for it, and the configured HTTP bidders' bids are placed into it beside
//! theirs. The answer is a BidResponse with one winning bid per imp, or 204 when nobody won.
//!
//! - [`validate`] checks the request as JSON (messages name the field);
//! - [`exchange`] opens the auctions, gathers the bids, prices the winners; [`admit`] checks
//!   a bidder's bids and places them;
//! - [`bidders`] calls the HTTP bidders; [`rates`] converts currencies; [`notices`] fires the
//!   win and loss notices; [`metrics`] counts it all.

pub mod adjust;
pub mod admit;
pub mod bidders;
pub mod exchange;
pub mod metrics;
pub mod model;
pub mod notices;
pub mod rates;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::http::AppState;
use crate::hub::Hub;
use metrics::OpenRtbMetrics;
use rates::Rates;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// The door's shared state.
pub struct OpenRtb {
    pub hub: Arc<Hub>,
    pub client: HttpClient,
    pub rates: Rates,
    pub metrics: OpenRtbMetrics,
}

impl OpenRtb {
    pub fn new(hub: Arc<Hub>) -> Arc<OpenRtb> {
        let mut conn = HttpConnector::new();
        conn.set_nodelay(true);
        conn.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .build(conn);
        let o = &hub.cfg.openrtb;
        let rates = Rates::new((!o.rates_file.is_empty()).then(|| hub.cfg.resolve(&o.rates_file)));
        let metrics = OpenRtbMetrics::new(o.bidders.iter().map(|b| b.name.as_str()));
        Arc::new(OpenRtb { hub, client, rates, metrics })
    }
}

/// A refused request: the status and a message naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: StatusCode,
    pub outcome: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn invalid(message: impl Into<String>) -> Refusal {
        Refusal { status: StatusCode::BAD_REQUEST, outcome: "invalid", message: message.into() }
    }
}

fn refuse(ortb: &OpenRtb, r: Refusal) -> Response {
    ortb.metrics.outcome(r.outcome);
    let body = serde_json::json!({ "error": { "message": r.message } });
    (r.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// `POST /openrtb2/auction`.
pub async fn auction(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let ortb = st.openrtb.clone();
    let limit = ortb.hub.cfg.openrtb.max_body_bytes;
    let too_large = |ortb: &OpenRtb| {
        refuse(
            ortb,
            Refusal {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                outcome: "too_large",
                message: format!("request body is larger than {limit} bytes"),
            },
        )
    };
    // a declared length over the limit is refused before a byte of the body is read
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&ortb);
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(&ortb),
    };
    let raw = match validate::parse(&bytes) {
        Ok(v) => v,
        Err(m) => {
            return refuse(
                &ortb,
                Refusal { status: StatusCode::BAD_REQUEST, outcome: "malformed", message: m },
            )
        }
    };
    if let Err(m) = validate::check(&raw) {
        return refuse(&ortb, Refusal::invalid(m));
    }
    // typed from the tree in place (no copy of it): `raw` goes on to the bidders untouched
    let req = match <model::BidRequest as serde::Deserialize>::deserialize(&raw) {
        Ok(r) => r,
        Err(e) => return refuse(&ortb, Refusal::invalid(format!("request: {e}"))),
    };
    let mut waited = Duration::ZERO;
    let answer = match exchange::run(&ortb, req, raw, &mut waited).await {
        Err(r) => return refuse(&ortb, r),
        Ok(None) => {
            ortb.metrics.outcome("no_bid");
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(Some(resp)) => {
            ortb.metrics.outcome("bid");
            let body = serde_json::to_string(&resp).unwrap_or_default();
            (StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
    };
    ortb.metrics.added.observe(started.elapsed().saturating_sub(waited));
    answer
}
