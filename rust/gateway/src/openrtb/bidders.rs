//! Calling the configured OpenRTB bidders: one POST each, in parallel, over the pooled
//! keep-alive client, each within its time; a late answer is dropped and counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use super::model::BidResponse;
use super::OpenRtb;
use crate::config::BidderConfig;

/// Largest bidder response read.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// The request as a bidder gets it: `raw` with its `tmax` set to `tmax_ms`, written straight
/// from the parsed tree (no copy of it).
struct WithTmax<'a> {
    raw: &'a Map<String, Value>,
    tmax_ms: u64,
}

impl Serialize for WithTmax<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let absent = !self.raw.contains_key("tmax");
        let mut m = s.serialize_map(Some(self.raw.len() + usize::from(absent)))?;
        for (k, v) in self.raw {
            if k == "tmax" {
                m.serialize_entry(k, &self.tmax_ms)?;
            } else {
                m.serialize_entry(k, v)?;
            }
        }
        if absent {
            m.serialize_entry("tmax", &self.tmax_ms)?;
        }
        m.end()
    }
}

/// The body POSTed to a bidder with `tmax_ms` to answer in: the request unchanged but `tmax`.
pub fn request_body(request: &Value, tmax_ms: u64) -> Option<Bytes> {
    let bytes = match request {
        Value::Object(raw) => serde_json::to_vec(&WithTmax { raw, tmax_ms }),
        other => serde_json::to_vec(other),
    };
    bytes.ok().map(Bytes::from)
}

/// What a bidder answered within `within`: its response, or nothing (no bid, error, late,
/// invalid: each counted). `body` is from [`request_body`].
pub async fn call(
    ortb: &OpenRtb,
    b: &BidderConfig,
    body: Bytes,
    request_id: &str,
    within: Duration,
) -> Option<BidResponse> {
    let c = &ortb.metrics.bidders[&b.name];
    let req = hyper::Request::post(&b.endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-openrtb-version", "2.6")
        .body(Full::new(body))
        .ok()?;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let resp = ortb.client.request(req).await.map_err(|_| "error")?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|_| "error")?
            .to_bytes();
        Ok::<_, &str>((status, body))
    };
    let (status, body) = match tokio::time::timeout(within, exchange).await {
        Err(_) => {
            c.late.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Ok(Err(_)) => {
            c.errors.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Ok(Ok(x)) => x,
    };
    if status == hyper::StatusCode::NO_CONTENT {
        c.responses.fetch_add(1, Ordering::Relaxed);
        c.no_bids.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    if status != hyper::StatusCode::OK {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    c.responses.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_slice::<BidResponse>(&body) {
        Ok(r) if r.id == request_id => {
            if r.seatbid.iter().all(|s| s.bid.is_empty()) {
                c.no_bids.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(r)
        }
        _ => {
            c.invalid_responses.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}
