//! gzip on the door and towards the bidders (flate2): inflation stops at a byte bound, so a
//! small compressed body cannot expand past the limit that applies to the plain one.

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

/// Why a gzip body was not inflated.
#[derive(Debug, PartialEq)]
pub enum InflateError {
    /// It inflates to more than the bound.
    TooLarge,
    /// It is not a gzip stream (the decoder's message).
    Corrupt(String),
}

/// `body` inflated, refused once it passes `limit` bytes. Concatenated gzip members are one
/// stream (RFC 1952 section 2.2).
pub fn inflate(body: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // one byte past the bound tells "exactly the limit" from "over it"
    let mut dec = MultiGzDecoder::new(body).take(limit as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| InflateError::Corrupt(e.to_string()))?;
    if out.len() > limit {
        return Err(InflateError::TooLarge);
    }
    Ok(out)
}

/// `body` gzip-compressed. Fast level: these bodies are small and on the auction's clock.
pub fn deflate(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3 + 32), Compression::fast());
    // writing into a Vec cannot fail
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

/// The content codings of a `Content-Encoding` value, lower-cased, `identity` left out.
pub fn codings(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// Whether an `Accept-Encoding` value (RFC 9110 section 12.5.3) lets the answer be gzip: an
/// explicit `gzip` (or `x-gzip`) with q > 0, or else `*` with q > 0. `q=0` refuses.
pub fn accepts_gzip(value: &str) -> bool {
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f64;
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    // an unreadable weight counts as a refusal rather than a guess
                    q = v
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
        }
        match coding.as_str() {
            "gzip" | "x-gzip" => return q > 0.0,
            "*" => star = Some(q > 0.0),
            _ => {}
        }
    }
    star.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bound() {
        let plain = vec![b'x'; 10_000];
        let z = deflate(&plain);
        assert!(z.len() < 200, "{}", z.len());
        assert_eq!(inflate(&z, 10_000).unwrap(), plain);
        assert_eq!(inflate(&z, 9_999), Err(InflateError::TooLarge));
        assert!(matches!(inflate(b"not gzip at all", 100), Err(InflateError::Corrupt(_))));
        // two members are one stream
        let mut two = deflate(b"ab");
        two.extend(deflate(b"cd"));
        assert_eq!(inflate(&two, 100).unwrap(), b"abcd");
        // a truncated stream is corrupt, not short
        assert!(matches!(inflate(&z[..z.len() - 4], 10_000), Err(InflateError::Corrupt(_))));
    }

    #[test]
    fn accept_encoding_weights() {
        for (v, want) in [
            ("gzip", true),
            ("GZIP", true),
            ("br, gzip;q=0.5", true),
            ("gzip;q=0", false),
            ("gzip; q=0.000", false),
            ("*", true),
            ("*;q=0", false),
            ("br, *;q=0.1", true),
            ("gzip;q=0, *", false),
            ("br", false),
            ("identity", false),
            ("", false),
            ("gzip;q=abc", false),
            ("x-gzip", true),
        ] {
            assert_eq!(accepts_gzip(v), want, "{v:?}");
        }
        assert_eq!(codings("gzip"), vec!["gzip"]);
        assert_eq!(codings("identity"), Vec::<String>::new());
        assert_eq!(codings("Gzip, br"), vec!["gzip", "br"]);
    }
}
