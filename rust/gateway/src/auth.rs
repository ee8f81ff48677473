//! Credentials: API keys stored hashed in the keys file, HMAC-signed tokens, scopes, and the
//! per-address limit on failed authentications.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::ConfigError;

/// Scope bits of a credential.
pub const SCOPE_BID: u8 = 1;
pub const SCOPE_SUBSCRIBE: u8 = 2;
pub const SCOPE_PUBLISH: u8 = 4;
pub const SCOPE_METRICS: u8 = 8;
pub const ALL_SCOPES: u8 = 15;

const SCOPE_NAMES: [(u8, &str); 4] = [
    (SCOPE_BID, "bid"),
    (SCOPE_SUBSCRIBE, "subscribe"),
    (SCOPE_PUBLISH, "publish"),
    (SCOPE_METRICS, "metrics"),
];

/// Longest buyer id (the protocol's id rule: at most 64 bytes of printable ASCII).
pub const MAX_ID_LEN: usize = 64;

/// True for an id of 1..=64 printable ASCII bytes.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ID_LEN && s.bytes().all(|b| (0x21..0x7f).contains(&b))
}

pub fn scope_bit(name: &str) -> Option<u8> {
    SCOPE_NAMES.iter().find(|(_, n)| *n == name).map(|(b, _)| *b)
}

pub fn scope_names(bits: u8) -> Vec<String> {
    SCOPE_NAMES.iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| n.to_string()).collect()
}

/// Who a connection is once authenticated.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub buyer: String,
    pub scopes: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    buyer: String,
    sha256: String,
    #[serde(default = "default_scopes")]
    scopes: Vec<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["bid".into(), "subscribe".into()]
}

struct StoredKey {
    hash: [u8; 32],
    who: Identity,
}

/// The credentials the exchange accepts.
pub struct Authenticator {
    /// By the first 8 bytes of the key's hash; the full hash is then compared in constant time.
    keys: HashMap<[u8; 8], Vec<StoredKey>>,
    token_secret: Vec<u8>,
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn parse_scopes(list: &[String], what: &str) -> Result<u8, String> {
    let mut bits = 0;
    for s in list {
        bits |= scope_bit(s).ok_or_else(|| {
            format!("{what}: unknown scope {s:?} (known: bid, subscribe, publish, metrics)")
        })?;
    }
    Ok(bits)
}

impl Authenticator {
    pub fn new(token_secret: &str) -> Authenticator {
        Authenticator { keys: HashMap::new(), token_secret: token_secret.as_bytes().to_vec() }
    }

    /// Reads a keys file (see the exchange docs for its format).
    pub fn load_keys(&mut self, path: &Path) -> Result<(), ConfigError> {
        let err = |m: String| ConfigError(format!("{}: {m}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let f: KeysFile = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        for (i, k) in f.keys.iter().enumerate() {
            let at = format!("keys[{i}]");
            if !valid_id(&k.buyer) {
                return Err(err(format!(
                    "{at}.buyer: must be 1..=64 printable ASCII bytes, got {:?}",
                    k.buyer
                )));
            }
            let mut hash = [0u8; 32];
            let hex = k.sha256.as_bytes();
            if hex.len() != 64 || !hex.iter().all(|c| c.is_ascii_hexdigit()) {
                return Err(err(format!("{at}.sha256: must be 64 hex digits")));
            }
            for (j, out) in hash.iter_mut().enumerate() {
                let s = std::str::from_utf8(&hex[2 * j..2 * j + 2]).unwrap_or("00");
                *out = u8::from_str_radix(s, 16).unwrap_or(0);
            }
            let scopes = parse_scopes(&k.scopes, &format!("{at}.scopes")).map_err(err)?;
            self.add_key_hash(hash, Identity { buyer: k.buyer.clone(), scopes });
        }
        Ok(())
    }

    pub fn add_key_hash(&mut self, hash: [u8; 32], who: Identity) {
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&hash[..8]);
        self.keys.entry(prefix).or_default().push(StoredKey { hash, who });
    }

    /// Adds a key given in clear (the development key).
    pub fn add_key(&mut self, key: &str, who: Identity) {
        self.add_key_hash(sha256(key.as_bytes()), who);
    }

    pub fn n_keys(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    pub fn check_api_key(&self, key: &str) -> Result<Identity, String> {
        let h = sha256(key.as_bytes());
        let mut prefix = [0u8; 8];
        prefix.copy_from_slice(&h[..8]);
        let mut found = None;
        for k in self.keys.get(&prefix).map(Vec::as_slice).unwrap_or(&[]) {
            if bool::from(k.hash.ct_eq(&h)) {
                found = Some(k.who.clone());
            }
        }
        found.ok_or_else(|| "unknown API key".to_string())
    }

    /// Verifies `v1.<payload>.<signature>` (see `Auth.token` in the protocol).
    pub fn check_token(&self, token: &str, now_unix: u64) -> Result<Identity, String> {
        if self.token_secret.is_empty() {
            return Err("tokens are not accepted by this exchange".into());
        }
        let mut parts = token.split('.');
        let (Some("v1"), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("token must be v1.<payload>.<signature>".into());
        };
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| "token signature is not base64url")?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.token_secret)
            .map_err(|_| "token secret unusable".to_string())?;
        mac.update(b"v1.");
        mac.update(payload.as_bytes());
        mac.verify_slice(&sig).map_err(|_| "bad token signature".to_string())?;
        let body = URL_SAFE_NO_PAD.decode(payload).map_err(|_| "token payload is not base64url")?;
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
            #[serde(default)]
            scopes: Vec<String>,
            exp: u64,
        }
        let c: Claims = serde_json::from_slice(&body).map_err(|e| format!("token payload: {e}"))?;
        if c.exp <= now_unix {
            return Err("token expired".into());
        }
        if !valid_id(&c.sub) {
            return Err("token sub: must be 1..=64 printable ASCII bytes".into());
        }
        let scopes = parse_scopes(&c.scopes, "token scopes")?;
        Ok(Identity { buyer: c.sub, scopes })
    }
}

/// Makes a token for `buyer` (tests, and admins with the secret).
pub fn sign_token(secret: &str, buyer: &str, scopes: &[&str], exp_unix: u64) -> String {
    let payload = serde_json::json!({"sub": buyer, "scopes": scopes, "exp": exp_unix});
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac takes any key");
    mac.update(b"v1.");
    mac.update(p.as_bytes());
    format!("v1.{p}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// A fresh API key: `rtbk_` + 43 characters of base64url (32 random bytes).
pub fn generate_key() -> String {
    let mut b = [0u8; 32];
    getrandom::getrandom(&mut b).expect("the OS random source");
    format!("rtbk_{}", URL_SAFE_NO_PAD.encode(b))
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Failed authentications per address in a sliding window; bounded in memory.
pub struct FailedAuthLimiter {
    limit: u32,
    window: Duration,
    by_addr: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const MAX_TRACKED_ADDRS: usize = 65_536;

impl FailedAuthLimiter {
    pub fn new(limit: u32, window: Duration) -> Self {
        FailedAuthLimiter { limit, window, by_addr: Mutex::new(HashMap::new()) }
    }

    /// True when the address has used up its failures for the current window.
    pub fn blocked(&self, addr: IpAddr) -> bool {
        let m = self.by_addr.lock();
        m.get(&addr).is_some_and(|(n, t)| *n >= self.limit && t.elapsed() < self.window)
    }

    pub fn record_failure(&self, addr: IpAddr) {
        let mut m = self.by_addr.lock();
        if m.len() >= MAX_TRACKED_ADDRS {
            let w = self.window;
            m.retain(|_, (_, t)| t.elapsed() < w);
        }
        if m.len() >= MAX_TRACKED_ADDRS {
            // still full of fresh entries: forget the lot rather than grow
            m.clear();
        }
        let e = m.entry(addr).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_hash_and_tokens_verified() {
        let mut a = Authenticator::new("s3cret");
        a.add_key("k1", Identity { buyer: "acme".into(), scopes: SCOPE_BID });
        assert_eq!(a.check_api_key("k1").unwrap().buyer, "acme");
        assert!(a.check_api_key("k2").is_err());
        let t = sign_token("s3cret", "bob", &["bid", "subscribe"], 2_000_000_000);
        let who = a.check_token(&t, 1_000).unwrap();
        assert_eq!(who, Identity { buyer: "bob".into(), scopes: SCOPE_BID | SCOPE_SUBSCRIBE });
        assert!(a.check_token(&t, 2_000_000_001).unwrap_err().contains("expired"));
        let forged = sign_token("other", "bob", &["bid"], 2_000_000_000);
        assert!(a.check_token(&forged, 1_000).unwrap_err().contains("signature"));
        assert!(a.check_token("v1.x", 1).is_err());
    }

    #[test]
    fn generated_keys_have_the_contract_shape() {
        let k = generate_key();
        assert!(k.starts_with("rtbk_") && k.len() == 48, "{k}");
    }

    #[test]
    fn limiter_blocks_after_the_limit() {
        let l = FailedAuthLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(!l.blocked(ip));
        l.record_failure(ip);
        l.record_failure(ip);
        assert!(l.blocked(ip));
    }
}
