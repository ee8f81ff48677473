//! Calling the configured OpenRTB bidders: one POST each, in parallel, over the pooled
//! keep-alive client, each within its time; a late answer is dropped and counted.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header;
use serde_json::Value;

use super::model::BidResponse;
use super::OpenRtb;
use crate::config::BidderConfig;

/// Largest bidder response read.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// What a bidder answered in time: its response, or nothing (no bid, error, late, invalid:
/// each counted).
pub async fn call(
    ortb: &OpenRtb,
    b: &BidderConfig,
    request: &Value,
    request_id: &str,
    budget: Duration,
) -> Option<BidResponse> {
    let c = &ortb.metrics.bidders[&b.name];
    let within = Duration::from_millis(b.timeout_ms).min(budget);
    let mut body = request.clone();
    if let Value::Object(m) = &mut body {
        m.insert("tmax".into(), Value::from(within.as_millis() as u64));
    }
    let bytes = serde_json::to_vec(&body).ok()?;
    let req = hyper::Request::post(&b.endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-openrtb-version", "2.6")
        .body(Full::new(Bytes::from(bytes)))
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
