//! Calling the configured OpenRTB bidders: one POST each, in parallel, over the pooled
//! keep-alive client (http or https), each within its time; a late answer is dropped and
//! counted, and so is every other failure, by kind.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sonic_rs::{JsonContainerTrait, Object, Value};

use super::model::BidResponse;
use super::OpenRtb;
use crate::config::BidderConfig;

/// The request as a bidder gets it: `raw` with its `tmax` set to `tmax_ms`, written straight
/// from the parsed tree (no copy of it).
struct WithTmax<'a> {
    raw: &'a Object,
    tmax_ms: u64,
}

impl Serialize for WithTmax<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let absent = !self.raw.contains_key(&"tmax");
        let mut m = s.serialize_map(Some(self.raw.len() + usize::from(absent)))?;
        for (k, v) in self.raw.iter() {
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
    let bytes = match request.as_object() {
        Some(raw) => sonic_rs::to_vec(&WithTmax { raw, tmax_ms }),
        None => sonic_rs::to_vec(request),
    };
    bytes.ok().map(Bytes::from)
}

/// Why a call failed, as the `kind` label of `rtbcore_openrtb_bidder_errors_total`: a TLS
/// failure is told from a TCP one by a rustls error in the chain of causes.
fn failure_kind(e: &hyper_util::client::legacy::Error) -> &'static str {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return "tls";
        }
        // an io::Error's source() skips the error it wraps: step into that one instead
        cause = match c.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => c.source(),
        };
    }
    if e.is_connect() {
        "connect"
    } else {
        "io"
    }
}

/// What a bidder answered within `within`: its response, or nothing (no bid, error, late,
/// invalid: each counted). `body` is from [`request_body`], gzip-compressed already when the
/// bidder is configured with `gzip`.
pub async fn call(
    ortb: &OpenRtb,
    b: &BidderConfig,
    body: Bytes,
    request_id: &str,
    within: Duration,
) -> Option<BidResponse> {
    let c = &ortb.metrics.bidders[&b.name];
    let limit = ortb.hub.cfg.openrtb.max_bidder_response_bytes;
    let mut req = hyper::Request::post(&b.endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT_ENCODING, "gzip")
        .header("x-openrtb-version", "2.6");
    if b.gzip {
        req = req.header(header::CONTENT_ENCODING, "gzip");
    }
    let req = req.body(Full::new(body)).ok()?;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let resp = ortb.client_for(&b.name).request(req).await.map_err(|e| failure_kind(&e))?;
        let status = resp.status();
        let gzipped = match resp.headers().get(header::CONTENT_ENCODING) {
            None => false,
            Some(v) => match crate::openrtb::gzip::codings(v.to_str().unwrap_or("?")).as_slice() {
                [] => false,
                [one] if one == "gzip" || one == "x-gzip" => true,
                _ => return Err("bad_encoding"),
            },
        };
        let body = Limited::new(resp.into_body(), limit).collect().await.map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                "too_large"
            } else {
                "io"
            }
        })?;
        let mut body = body.to_bytes();
        if gzipped {
            body = match crate::openrtb::gzip::inflate(&body, limit) {
                Ok(plain) => Bytes::from(plain),
                Err(crate::openrtb::gzip::InflateError::TooLarge) => return Err("too_large"),
                Err(crate::openrtb::gzip::InflateError::Corrupt(_)) => return Err("bad_encoding"),
            };
        }
        Ok::<_, &'static str>((status, body))
    };
    let (status, body) = match tokio::time::timeout(within, exchange).await {
        Err(_) => {
            c.late.fetch_add(1, Ordering::Relaxed);
            c.error("timeout");
            return None;
        }
        Ok(Err(kind)) => {
            c.error(kind);
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
        c.error("http_status");
        return None;
    }
    c.responses.fetch_add(1, Ordering::Relaxed);
    match sonic_rs::from_slice::<BidResponse>(&body) {
        Ok(r) if r.id == request_id => {
            if r.seatbid.iter().all(|s| s.bid.is_empty()) {
                c.no_bids.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Some(r)
        }
        _ => {
            c.invalid_responses.fetch_add(1, Ordering::Relaxed);
            c.error("bad_body");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bidders_body_is_the_request_as_sent_but_tmax() {
        let sent =
            br#"{"zz":1,"id":"r","tmax":500,"ext":{"b":[1,2.5,"x"],"a":null},"imp":[{"id":"1"}]}"#;
        let raw = crate::openrtb::validate::parse(sent).unwrap();
        let body = request_body(&raw, 120).unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"zz":1,"id":"r","tmax":120,"ext":{"b":[1,2.5,"x"],"a":null},"imp":[{"id":"1"}]}"#
        );
        let raw = crate::openrtb::validate::parse(br#"{"id":"r"}"#).unwrap();
        assert_eq!(&request_body(&raw, 80).unwrap()[..], br#"{"id":"r","tmax":80}"#);
    }
}
