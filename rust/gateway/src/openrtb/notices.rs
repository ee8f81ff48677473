//! Auction macros (`${AUCTION_PRICE}` and the rest of OpenRTB's list) and the win / loss
//! notices the exchange fires off the response path, retried with a doubling backoff.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::OpenRtb;

/// The values the auction macros stand for; an empty value substitutes as "".
#[derive(Debug, Clone, Default)]
pub struct Macros {
    pub auction_id: String,
    pub bid_id: String,
    pub imp_id: String,
    pub seat_id: String,
    pub ad_id: String,
    pub price: String,
    pub currency: String,
    pub mbr: String,
    pub loss: String,
    pub min_to_win: String,
}

impl Macros {
    pub fn substitute(&self, s: &str) -> String {
        if !s.contains("${AUCTION_") {
            return s.to_string();
        }
        // longer names first: ${AUCTION_ID} is a prefix of none, but keep the order explicit
        let pairs: [(&str, &str); 10] = [
            ("${AUCTION_ID}", &self.auction_id),
            ("${AUCTION_BID_ID}", &self.bid_id),
            ("${AUCTION_IMP_ID}", &self.imp_id),
            ("${AUCTION_SEAT_ID}", &self.seat_id),
            ("${AUCTION_AD_ID}", &self.ad_id),
            ("${AUCTION_PRICE}", &self.price),
            ("${AUCTION_CURRENCY}", &self.currency),
            ("${AUCTION_MBR}", &self.mbr),
            ("${AUCTION_LOSS}", &self.loss),
            ("${AUCTION_MIN_TO_WIN}", &self.min_to_win),
        ];
        let mut out = s.to_string();
        for (k, v) in pairs {
            if out.contains(k) {
                out = out.replace(k, v);
            }
        }
        out
    }
}

/// A price as macros and prices show it: at most 6 decimals, no trailing zeros.
pub fn price_text(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Fires `url` (GET) in the background; a non-2xx answer or a failed connection is retried
/// after `notice_backoff_ms`, doubled each time, up to `notice_attempts` attempts in all.
pub fn fire(ortb: &Arc<OpenRtb>, url: String) {
    let Ok(uri) = url.parse::<hyper::Uri>() else {
        ortb.metrics.notices_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let o = ortb.clone();
    let cfg = &ortb.hub.cfg.openrtb;
    let attempts = cfg.notice_attempts;
    let mut backoff = Duration::from_millis(cfg.notice_backoff_ms);
    ortb.hub.rt.spawn(async move {
        for n in 1..=attempts {
            let req = hyper::Request::get(uri.clone()).body(Full::new(Bytes::new()));
            let ok = match req {
                Ok(req) => {
                    let r =
                        tokio::time::timeout(Duration::from_secs(5), o.client.request(req)).await;
                    matches!(r, Ok(Ok(ref resp)) if resp.status().is_success())
                }
                Err(_) => false,
            };
            if ok {
                o.metrics.notices_sent.fetch_add(1, Ordering::Relaxed);
                return;
            }
            if n == attempts || o.hub.shutdown.is_cancelled() {
                break;
            }
            o.metrics.notices_retried.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        o.metrics.notices_failed.fetch_add(1, Ordering::Relaxed);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_macro_is_substituted() {
        let m = Macros {
            auction_id: "r1".into(),
            bid_id: "b".into(),
            imp_id: "1".into(),
            seat_id: "s".into(),
            ad_id: "ad".into(),
            price: "1.5".into(),
            currency: "USD".into(),
            mbr: "0.75".into(),
            loss: "102".into(),
            min_to_win: "2".into(),
        };
        let s = "${AUCTION_ID}|${AUCTION_BID_ID}|${AUCTION_IMP_ID}|${AUCTION_SEAT_ID}|${AUCTION_AD_ID}|${AUCTION_PRICE}|${AUCTION_CURRENCY}|${AUCTION_MBR}|${AUCTION_LOSS}|${AUCTION_MIN_TO_WIN}";
        assert_eq!(m.substitute(s), "r1|b|1|s|ad|1.5|USD|0.75|102|2");
        assert_eq!(price_text(2.5), "2.5");
        assert_eq!(price_text(3.0), "3");
    }
}
