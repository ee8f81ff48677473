//! The OpenRTB 2.6 door: `POST /openrtb2/auction` on the gateway's port. Each `imp` is one
//! auction in the embedded engine, the same one WebSocket buyers bid in: they receive
//! `AuctionStarted` for it, and the configured HTTP bidders' bids are placed into it beside
//! theirs. The answer is a BidResponse with one winning bid per imp, or 204 when nobody won.
//!
//! - [`validate`] checks the request as JSON (messages name the field);
//! - [`exchange`] opens the auctions, gathers the bids, prices the winners; [`admit`] checks
//!   a bidder's bids and places them;
//! - [`bidders`] calls the HTTP and HTTPS bidders; [`gzip`] inflates within bounds and
//!   compresses; [`rates`] converts currencies; [`notices`] fires the win and loss notices;
//!   [`metrics`] counts it all.

pub mod adjust;
pub mod admit;
pub mod bidders;
pub mod exchange;
pub mod gzip;
pub mod metrics;
pub mod model;
pub mod notices;
pub mod rates;
pub mod validate;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::http::AppState;
use crate::hub::Hub;
use metrics::OpenRtbMetrics;
use rates::Rates;
use rustls_pki_types::CertificateDer;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The door's shared state.
pub struct OpenRtb {
    pub hub: Arc<Hub>,
    /// Bidders and notices: plain http, or https trusting the webpki roots.
    pub client: HttpClient,
    /// A bidder with a `ca_file` has its own client trusting that CA too (its own pool).
    pub bidder_clients: HashMap<String, HttpClient>,
    pub rates: Rates,
    pub metrics: OpenRtbMetrics,
}

/// A pooled keep-alive HTTP/1.1 client for `http://` and `https://` URLs: rustls with the ring
/// provider, trusting the webpki roots and `extra_roots`.
fn client(extra_roots: &[CertificateDer<'static>]) -> HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // the config check has already parsed these; one that no longer adds is simply not trusted
    let _ = roots.add_parsable_certificates(extra_roots.iter().cloned());
    // ring rather than aws-lc-rs: no cmake/NASM toolchain. Its deprecation is about the
    // post-quantum key exchange ring lacks; bidders speak classic ECDHE.
    #[allow(deprecated)]
    let ring = rustls::crypto::ring::default_provider();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(ring))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(1)));
    conn.enforce_http(false);
    let conn = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(conn);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(conn)
}

impl OpenRtb {
    pub fn new(hub: Arc<Hub>) -> Arc<OpenRtb> {
        let o = &hub.cfg.openrtb;
        let client = client(&[]);
        let bidder_clients = o
            .bidders
            .iter()
            .filter(|b| !b.ca_file.is_empty())
            .map(|b| {
                let ca = crate::config::load_ca_file(&hub.cfg.resolve(&b.ca_file));
                (b.name.clone(), self::client(&ca.unwrap_or_default()))
            })
            .collect();
        let rates = Rates::new((!o.rates_file.is_empty()).then(|| hub.cfg.resolve(&o.rates_file)));
        let metrics = OpenRtbMetrics::new(o.bidders.iter().map(|b| b.name.as_str()));
        Arc::new(OpenRtb { hub, client, bidder_clients, rates, metrics })
    }

    /// The client that reaches bidder `name`.
    pub fn client_for(&self, name: &str) -> &HttpClient {
        self.bidder_clients.get(name).unwrap_or(&self.client)
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
    let mut bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(&ortb),
    };
    let encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?"));
    match encoding.map(gzip::codings).as_deref() {
        None | Some([]) => {}
        Some([one]) if one == "gzip" || one == "x-gzip" => match gzip::inflate(&bytes, limit) {
            Ok(plain) => bytes = Bytes::from(plain),
            Err(gzip::InflateError::TooLarge) => {
                return refuse(
                    &ortb,
                    Refusal {
                        status: StatusCode::PAYLOAD_TOO_LARGE,
                        outcome: "too_large",
                        message: format!(
                            "request body is larger than {limit} bytes once gzip is undone"
                        ),
                    },
                )
            }
            Err(gzip::InflateError::Corrupt(e)) => {
                return refuse(
                    &ortb,
                    Refusal {
                        status: StatusCode::BAD_REQUEST,
                        outcome: "malformed",
                        message: format!(
                            "request body: Content-Encoding is gzip but the body is not valid gzip: {e}"
                        ),
                    },
                )
            }
        },
        Some(_) => {
            return refuse(
                &ortb,
                Refusal {
                    status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    outcome: "unsupported_encoding",
                    message: format!(
                        "Content-Encoding {:?} is not supported: send gzip or identity",
                        encoding.unwrap_or_default()
                    ),
                },
            )
        }
    }
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
    let req = match sonic_rs::from_value::<model::BidRequest>(&raw) {
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
            let body = sonic_rs::to_vec(&resp).unwrap_or_default();
            let json = (header::CONTENT_TYPE, "application/json");
            let vary = (header::VARY, "accept-encoding");
            let gz = headers
                .get(header::ACCEPT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .is_some_and(gzip::accepts_gzip);
            if gz {
                let gzipped = gzip::deflate(&body);
                let enc = (header::CONTENT_ENCODING, "gzip");
                (StatusCode::OK, [json, vary, enc], gzipped).into_response()
            } else {
                (StatusCode::OK, [json, vary], body).into_response()
            }
        }
    };
    ortb.metrics.added.observe(started.elapsed().saturating_sub(waited));
    answer
}
