//! OpenRTB 2.6 objects, the fields the exchange reads. Unknown fields are tolerated (serde's
//! default); `ext` objects are kept as JSON values and passed through untouched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct BidRequest {
    pub id: String,
    pub imp: Vec<Imp>,
    pub site: Option<Site>,
    pub app: Option<App>,
    pub dooh: Option<Value>,
    pub device: Option<Device>,
    pub tmax: Option<i64>,
    pub at: Option<i64>,
    pub cur: Vec<String>,
    pub bcat: Vec<String>,
    pub badv: Vec<String>,
    pub bapp: Vec<String>,
    /// Allow list of buyer seats (OpenRTB 2.6 `wseat`).
    pub wseat: Vec<String>,
    /// Block list of buyer seats (OpenRTB 2.6 `bseat`).
    pub bseat: Vec<String>,
    pub test: Option<i64>,
    pub ext: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Site {
    pub id: Option<String>,
    pub domain: Option<String>,
    pub page: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct App {
    pub id: Option<String>,
    pub bundle: Option<String>,
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Device {
    pub geo: Option<Geo>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Geo {
    pub country: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Imp {
    pub id: String,
    pub banner: Option<Banner>,
    pub video: Option<Sized>,
    pub audio: Option<Value>,
    pub native: Option<Value>,
    pub bidfloor: Option<f64>,
    pub bidfloorcur: Option<String>,
    pub pmp: Option<Pmp>,
    pub tagid: Option<String>,
    pub ext: Option<Value>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Banner {
    pub w: Option<f64>,
    pub h: Option<f64>,
    pub format: Vec<Format>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Format {
    pub w: Option<f64>,
    pub h: Option<f64>,
}

/// A video or any object with an optional `w` x `h`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Sized {
    pub w: Option<f64>,
    pub h: Option<f64>,
    /// Video placement subtype (1: instream).
    pub plcmt: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Pmp {
    pub private_auction: Option<i64>,
    pub deals: Vec<Deal>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub struct Deal {
    pub id: String,
    pub bidfloor: Option<f64>,
    pub bidfloorcur: Option<String>,
    /// Seats allowed to bid on the deal; empty: any seat the request admits.
    pub wseat: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct BidResponse {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seatbid: Vec<SeatBid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bidid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cur: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbr: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SeatBid {
    pub bid: Vec<Bid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seat: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Bid {
    pub id: String,
    pub impid: String,
    pub price: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nurl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lurl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adm: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adomain: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cat: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dealid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub w: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtype: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext: Option<Value>,
}

impl Imp {
    /// The media type a rule or adjustment is keyed by: banner, video, audio or native
    /// (the first present, in that order).
    pub fn media_type(&self) -> &'static str {
        if self.banner.is_some() {
            "banner"
        } else if self.video.is_some() {
            "video"
        } else if self.audio.is_some() {
            "audio"
        } else {
            "native"
        }
    }

    /// The media type as bid adjustments key it: a video is `video-instream` when its
    /// `plcmt` is 1 or absent, `video-outstream` otherwise.
    pub fn adjustment_media_type(&self) -> &'static str {
        match (self.media_type(), &self.video) {
            ("video", Some(v)) if v.plcmt.is_some_and(|p| p != 1) => "video-outstream",
            ("video", _) => "video-instream",
            (m, _) => m,
        }
    }

    /// `WxH` of the banner (its own size or its first format) or the video, if given.
    pub fn size(&self) -> Option<String> {
        let (w, h) = match (&self.banner, &self.video) {
            (Some(b), _) => match (b.w, b.h) {
                (Some(w), Some(h)) => (w, h),
                _ => {
                    let f = b.format.first()?;
                    (f.w?, f.h?)
                }
            },
            (None, Some(v)) => (v.w?, v.h?),
            _ => return None,
        };
        Some(format!("{w:.0}x{h:.0}"))
    }
}

impl BidRequest {
    /// The site's or app's domain (an app without one: its bundle).
    pub fn domain(&self) -> Option<&str> {
        if let Some(s) = &self.site {
            return s.domain.as_deref();
        }
        if let Some(a) = &self.app {
            return a.domain.as_deref().or(a.bundle.as_deref());
        }
        None
    }

    pub fn country(&self) -> Option<&str> {
        self.device.as_ref()?.geo.as_ref()?.country.as_deref()
    }
}
