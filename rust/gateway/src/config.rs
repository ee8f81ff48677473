//! The exchange's configuration (`exchange.toml`): serde structs with defaults, validated once at
//! load so that every later use can trust them. Errors name the key and the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything the gateway is started with.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub engine: EngineSection,
    pub events: EventsConfig,
    pub demo: DemoConfig,
    pub openrtb: OpenRtbConfig,
    pub floors: FloorsConfig,
    pub mirror: MirrorConfig,
    /// The directory relative paths are resolved against (the config file's directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Largest WebSocket message accepted (close 1009 above it).
    pub max_frame_bytes: usize,
    /// Most messages in one `ClientFrame` (TOO_MANY_MESSAGES above it).
    pub max_messages_per_frame: usize,
    /// Connections held at once, server-wide (close 4029 beyond).
    pub max_connections: usize,
    /// Connections held at once by one buyer (close 4029 beyond).
    pub max_connections_per_buyer: usize,
    pub heartbeat_interval_s: f64,
    pub heartbeat_timeout_s: f64,
    /// Token bucket per connection: messages per second and burst.
    pub rate_limit_per_s: f64,
    pub rate_limit_burst: f64,
    /// Frames queued towards one connection; when full for longer than
    /// `slow_consumer_timeout_s` the connection is closed with 4008.
    pub outbound_queue_frames: usize,
    /// Events queued towards one connection (queue and spill together): an item of the queue
    /// carries a batch of events; beyond this many the connection is closed with 4008.
    pub outbound_queue_events: usize,
    pub slow_consumer_timeout_s: f64,
    /// Failed authentications per address within `failed_auth_window_s` before 4003.
    pub failed_auth_limit: u32,
    pub failed_auth_window_s: f64,
    /// Request ids remembered per buyer for idempotent answers.
    pub idempotency_window: usize,
    /// Shutdown: "finish" waits for open auctions to close (up to `drain_timeout_s`),
    /// "cancel" closes them at once (`closed_by = SHUTDOWN`).
    pub shutdown: String,
    pub drain_timeout_s: f64,
    /// false: the server turns transparent huge pages off for its process at start (see
    /// [`crate::server::Gateway::start`]).
    pub transparent_huge_pages: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            max_frame_bytes: 1 << 20,
            max_messages_per_frame: 4096,
            max_connections: 10_000,
            max_connections_per_buyer: 256,
            heartbeat_interval_s: 15.0,
            heartbeat_timeout_s: 45.0,
            rate_limit_per_s: 1_000_000.0,
            rate_limit_burst: 2_000_000.0,
            outbound_queue_frames: 1024,
            outbound_queue_events: 65_536,
            slow_consumer_timeout_s: 5.0,
            failed_auth_limit: 10,
            failed_auth_window_s: 60.0,
            idempotency_window: 4096,
            shutdown: "finish".into(),
            drain_timeout_s: 5.0,
            transparent_huge_pages: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Relative to the config file's directory; empty: no API keys.
    pub keys_file: String,
    /// HMAC tokens are accepted when non-empty.
    pub token_secret: String,
    pub auth_timeout_s: f64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { keys_file: String::new(), token_secret: String::new(), auth_timeout_s: 5.0 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// "second_price" or "first_price".
    pub mechanism: String,
    pub currency: String,
    pub workers: usize,
    /// Default auction duration.
    pub tmax_ms: u64,
    /// Longest auction a publisher may ask for.
    pub max_tmax_ms: u64,
    /// Largest amount accepted (INVALID_AMOUNT above), micros.
    pub max_amount_micros: i64,
    /// Pin the engine's workers to cores.
    pub pin: bool,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            mechanism: "second_price".into(),
            currency: "USD".into(),
            workers: 1,
            tmax_ms: 100,
            max_tmax_ms: 60_000,
            max_amount_micros: 1_000_000_000_000,
            pin: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// The event log file (relative to the config file's directory). Empty: a file in a fresh
    /// temporary directory (the log then lives as long as the process).
    pub path: String,
    /// Records the log holds (64 bytes each); the oldest are overwritten beyond it.
    pub max_records: u64,
    /// Events older than this are not replayed.
    pub retention_s: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { path: String::new(), max_records: 1 << 20, retention_s: 86_400.0 }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Synthetic auctions opened per second (0: none).
    pub traffic: f64,
}

/// The OpenRTB 2.6 door (`POST /openrtb2/auction`): limits, HTTP bidders, floors, rates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenRtbConfig {
    /// Largest request body accepted (413 above it), after gzip is undone for a request sent
    /// with `Content-Encoding: gzip`.
    pub max_body_bytes: usize,
    /// Largest bidder response read, after gzip is undone; a larger one is dropped and counted
    /// (`kind="too_large"`).
    pub max_bidder_response_bytes: usize,
    /// Taken off `tmax` for the way back to the caller: the auction closes this much earlier.
    pub network_allowance_ms: u64,
    /// A JSON file of conversion rates (see docs/openrtb.md); empty: only the exchange's
    /// currency is accepted. Re-read when its modification time changes.
    pub rates_file: String,
    /// Attempts at a win or loss notice (the first included) before it is given up.
    pub notice_attempts: u32,
    /// The wait before the first retry of a notice; doubled after each attempt.
    pub notice_backoff_ms: u64,
    pub bidders: Vec<BidderConfig>,
    /// Floor rules, first match wins; the imp's own floor still applies (the higher counts).
    pub floors: Vec<FloorRule>,
}

impl Default for OpenRtbConfig {
    fn default() -> Self {
        OpenRtbConfig {
            max_body_bytes: 1 << 20,
            max_bidder_response_bytes: 4 << 20,
            network_allowance_ms: 20,
            rates_file: String::new(),
            notice_attempts: 3,
            notice_backoff_ms: 50,
            bidders: Vec::new(),
            floors: Vec::new(),
        }
    }
}

/// An OpenRTB bidder reached over HTTP or HTTPS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BidderConfig {
    pub name: String,
    /// `http://host:port/path` or `https://host:port/path`.
    pub endpoint: String,
    /// A PEM file of CA certificates trusted for this bidder besides the webpki roots (a
    /// private CA); relative to the config file. Only for `https://` endpoints.
    #[serde(default)]
    pub ca_file: String,
    /// Send the BidRequest gzip-compressed (`Content-Encoding: gzip`).
    #[serde(default)]
    pub gzip: bool,
    pub timeout_ms: u64,
    /// The currency its prices are in when its response names none.
    #[serde(default = "usd")]
    pub currency: String,
    /// Every price it bids is multiplied by this before the auction.
    #[serde(default = "one")]
    pub adjustment: f64,
}

fn usd() -> String {
    "USD".into()
}

fn one() -> f64 {
    1.0
}

/// A floor rule: every given condition must hold (absent: any).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FloorRule {
    /// The site's domain or the app's domain or bundle.
    pub domain: Option<String>,
    /// banner, video, audio or native.
    pub media_type: Option<String>,
    /// `WxH`.
    pub size: Option<String>,
    /// `device.geo.country` (ISO 3166-1 alpha-3 in OpenRTB).
    pub country: Option<String>,
    pub floor: f64,
    /// Empty: the exchange's currency.
    pub currency: String,
}

/// The CA certificates of a PEM file: at least one, each one a well-formed X.509 certificate
/// rustls accepts as a trust anchor.
pub fn load_ca_file(path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not PEM: {e:?}"))?;
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, c) in certs.iter().enumerate() {
        roots
            .add(c.clone())
            .map_err(|e| format!("{shown}: certificate {i} is not usable as a CA: {e}"))?;
    }
    Ok(certs)
}

/// Floors learned per segment from the exchange's own results (`[floors]`, docs/floors.md).
/// Floors are in units of the exchange's currency, as `openrtb.floors[].floor` (a floor of
/// 0.5 is 500000 micros).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloorsConfig {
    pub enabled: bool,
    /// The attributes of a publisher's `OpenAuction` forming its segment; empty: the
    /// publishers' auctions get no learned floor.
    pub segment_by: Vec<String>,
    /// What forms an OpenRTB imp's segment, out of domain, bundle, media_type, size and
    /// country; empty: OpenRTB imps get no learned floor.
    pub openrtb_segment_by: Vec<String>,
    /// Segments learned apart; the traffic of any further one shares the segment "(other)".
    pub max_segments: usize,
    /// The floor of a segment before anything is learned.
    pub initial: f64,
    /// The share of auctions given a candidate near the floor instead of the floor.
    pub explore: f64,
    /// How many grid steps away from the floor an explored auction's candidate may be.
    pub explore_steps: u32,
    /// Auctions of a segment after which a result counts half.
    pub half_life: f64,
    /// The least share of auctions a floor must sell.
    pub min_fill: f64,
    /// Decayed auctions a candidate must be known from.
    pub min_weight: f64,
    pub seed: u64,
    /// The candidate floors; absent: 0 and 127 log-spaced floors from 0.01 to 100.
    pub grid: Option<Vec<f64>>,
}

/// The buyers' event streams mirrored to Redis (`docs/exchange.md`, "Several nodes").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// `redis://host:port/db`; empty: no mirror (one node). With `cluster`, one node of the
    /// Redis Cluster (the others are found from it).
    pub redis_url: String,
    pub cluster: bool,
    /// This node's number, 1..=32767, unique among the nodes sharing the Redis: bid ids and
    /// engine auction ids are numbered in the node's own range so that they never collide.
    pub node: u16,
    /// The prefix of the keys (`{<prefix>:<buyer key>}:seq` and `:events`).
    pub prefix: String,
    /// Entries a buyer's stream keeps (trimmed with `MAXLEN ~`).
    pub stream_maxlen: u64,
    /// Connect, read and write timeout of each Redis call.
    pub timeout_s: f64,
    /// How often a node looks for events other nodes made for its connected buyers.
    pub poll_interval_s: f64,
    /// Events a buyer keeps for Redis while it does not answer; beyond, the oldest are dropped
    /// (counted): they stay in this node's log.
    pub max_held_events: usize,
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            redis_url: String::new(),
            cluster: false,
            node: 0,
            prefix: "rtbcore".into(),
            stream_maxlen: 1_000_000,
            timeout_s: 0.5,
            poll_interval_s: 0.05,
            max_held_events: 65_536,
        }
    }
}

impl MirrorConfig {
    pub fn enabled(&self) -> bool {
        !self.redis_url.is_empty()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| Err(ConfigError(format!("mirror.{key}: {msg}")));
        if !self.enabled() {
            return Ok(());
        }
        if !(self.redis_url.starts_with("redis://") || self.redis_url.starts_with("rediss://")) {
            return bad("redis_url", format!("must be a redis:// URL, got {:?}", self.redis_url));
        }
        if !(1..=32767).contains(&self.node) {
            return bad(
                "node",
                format!("must be in 1..=32767 with a redis_url, got {}", self.node),
            );
        }
        if self.prefix.is_empty()
            || self.prefix.len() > 64
            || !self.prefix.bytes().all(|c| c.is_ascii_graphic() && !b"{}".contains(&c))
        {
            return bad(
                "prefix",
                format!("must be 1..=64 printable bytes without braces, got {:?}", self.prefix),
            );
        }
        if self.stream_maxlen < 1000 {
            return bad("stream_maxlen", format!("must be >= 1000, got {}", self.stream_maxlen));
        }
        for (k, v, max) in
            [("timeout_s", self.timeout_s, 60.0), ("poll_interval_s", self.poll_interval_s, 5.0)]
        {
            if !(v.is_finite() && v > 0.0 && v <= max) {
                return bad(k, format!("must be in (0, {max}] seconds, got {v}"));
            }
        }
        if self.max_held_events == 0 {
            return bad("max_held_events", "must be >= 1".into());
        }
        Ok(())
    }
}

/// Candidates the grid may hold.
pub const MAX_GRID: usize = 4096;
/// The segments `floors.max_segments` may allow.
pub const MAX_SEGMENTS: usize = 10_000;
/// What an OpenRTB imp's segment may be formed of.
pub const OPENRTB_SEGMENT_KEYS: [&str; 5] = ["domain", "bundle", "media_type", "size", "country"];

impl Default for FloorsConfig {
    fn default() -> Self {
        FloorsConfig {
            enabled: false,
            segment_by: Vec::new(),
            openrtb_segment_by: vec!["domain".into(), "media_type".into()],
            max_segments: 1000,
            initial: 0.0,
            explore: 0.05,
            explore_steps: 4,
            half_life: 10_000.0,
            min_fill: 0.0,
            min_weight: 20.0,
            seed: 0,
            grid: None,
        }
    }
}

impl FloorsConfig {
    /// The candidate floors: the configured grid or the default one.
    pub fn grid(&self) -> Vec<f64> {
        match &self.grid {
            Some(g) => g.clone(),
            None => {
                let mut g = vec![0.0];
                g.extend((0..127).map(|i| 10f64.powf(-2.0 + 4.0 * i as f64 / 126.0)));
                g[1] = 0.01;
                g[127] = 100.0;
                g
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| Err(ConfigError(format!("floors.{key}: {msg}")));
        for (i, k) in self.segment_by.iter().enumerate() {
            if k.is_empty() {
                return bad(&format!("segment_by[{i}]"), "must be an attribute name".into());
            }
            if self.segment_by[..i].contains(k) {
                return bad(&format!("segment_by[{i}]"), format!("{k:?} is listed twice"));
            }
        }
        for (i, k) in self.openrtb_segment_by.iter().enumerate() {
            if !OPENRTB_SEGMENT_KEYS.contains(&k.as_str()) {
                return bad(
                    &format!("openrtb_segment_by[{i}]"),
                    format!("must be domain, bundle, media_type, size or country, got {k:?}"),
                );
            }
            if self.openrtb_segment_by[..i].contains(k) {
                return bad(&format!("openrtb_segment_by[{i}]"), format!("{k:?} is listed twice"));
            }
        }
        if !(1..=MAX_SEGMENTS).contains(&self.max_segments) {
            return bad(
                "max_segments",
                format!("must be in 1..={MAX_SEGMENTS}, got {}", self.max_segments),
            );
        }
        if !(self.initial.is_finite() && self.initial >= 0.0) {
            return bad("initial", format!("must be a floor >= 0, got {}", self.initial));
        }
        if !(0.0..=1.0).contains(&self.explore) {
            return bad("explore", format!("must be a share in [0, 1], got {}", self.explore));
        }
        if self.enabled && self.explore <= 0.0 {
            return bad(
                "explore",
                "must be > 0: the exchange sees the price only, which teaches the applied floor \
                 alone, so a learner that never explores never moves its floors"
                    .into(),
            );
        }
        if self.explore_steps == 0 || self.explore_steps as usize > MAX_GRID {
            return bad(
                "explore_steps",
                format!("must be in 1..={MAX_GRID}, got {}", self.explore_steps),
            );
        }
        if !(self.half_life.is_finite() && self.half_life > 0.0) {
            return bad(
                "half_life",
                format!("must be a number of auctions > 0, got {}", self.half_life),
            );
        }
        if !(0.0..=1.0).contains(&self.min_fill) {
            return bad("min_fill", format!("must be a share in [0, 1], got {}", self.min_fill));
        }
        if !(self.min_weight.is_finite() && self.min_weight >= 0.0) {
            return bad("min_weight", format!("must be a number >= 0, got {}", self.min_weight));
        }
        if let Some(g) = &self.grid {
            if g.len() < 2 || g.len() > MAX_GRID {
                return bad("grid", format!("must hold 2..={MAX_GRID} floors, got {}", g.len()));
            }
            for (i, &x) in g.iter().enumerate() {
                if !(x.is_finite() && x >= 0.0) {
                    return bad(&format!("grid[{i}]"), format!("must be a floor >= 0, got {x}"));
                }
                if i > 0 && x <= g[i - 1] {
                    return bad(
                        &format!("grid[{i}]"),
                        format!("the grid must increase: {x} follows {}", g[i - 1]),
                    );
                }
            }
        }
        Ok(())
    }
}

/// A configuration that could not be loaded: which file, which key, what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v)
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Config::from_toml(&text, &base).map_err(|e| ConfigError(format!("{}: {e}", path.display())))
    }

    /// Parses and validates TOML text; relative paths resolve against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.base_dir = base_dir.to_path_buf();
        c.validate()?;
        Ok(c)
    }

    /// Parses and validates the same structure as JSON (the Python API passes a dict this way).
    pub fn from_json(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut c: Config = serde_json::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.base_dir = base_dir.to_path_buf();
        c.validate()?;
        Ok(c)
    }

    /// Checks every value once; the message names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, msg: String| Err(ConfigError(format!("{key}: {msg}")));
        let s = &self.server;
        let positive = [
            ("server.heartbeat_interval_s", s.heartbeat_interval_s),
            ("server.heartbeat_timeout_s", s.heartbeat_timeout_s),
            ("server.rate_limit_per_s", s.rate_limit_per_s),
            ("server.rate_limit_burst", s.rate_limit_burst),
            ("server.slow_consumer_timeout_s", s.slow_consumer_timeout_s),
            ("server.failed_auth_window_s", s.failed_auth_window_s),
            ("server.drain_timeout_s", s.drain_timeout_s),
            ("auth.auth_timeout_s", self.auth.auth_timeout_s),
            ("events.retention_s", self.events.retention_s),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0 && v < 1e9) {
                return bad(key, format!("must be a number of seconds > 0, got {v}"));
            }
        }
        let counts = [
            ("server.max_frame_bytes", s.max_frame_bytes),
            ("server.max_messages_per_frame", s.max_messages_per_frame),
            ("server.max_connections", s.max_connections),
            ("server.max_connections_per_buyer", s.max_connections_per_buyer),
            ("server.outbound_queue_frames", s.outbound_queue_frames),
            ("server.outbound_queue_events", s.outbound_queue_events),
            ("server.idempotency_window", s.idempotency_window),
            ("engine.workers", self.engine.workers),
            ("engine.tmax_ms", self.engine.tmax_ms as usize),
            ("engine.max_tmax_ms", self.engine.max_tmax_ms as usize),
        ];
        for (key, v) in counts {
            if v == 0 {
                return bad(key, "must be > 0".into());
            }
        }
        if s.max_frame_bytes < 256 {
            return bad(
                "server.max_frame_bytes",
                format!("must be >= 256, got {}", s.max_frame_bytes),
            );
        }
        if self.engine.workers > 64 {
            return bad(
                "engine.workers",
                format!("must be in 1..=64, got {}", self.engine.workers),
            );
        }
        if self.engine.tmax_ms > self.engine.max_tmax_ms {
            return bad(
                "engine.tmax_ms",
                format!(
                    "{} is above engine.max_tmax_ms = {}",
                    self.engine.tmax_ms, self.engine.max_tmax_ms
                ),
            );
        }
        if !matches!(self.engine.mechanism.as_str(), "second_price" | "first_price") {
            return bad(
                "engine.mechanism",
                format!(
                    "must be \"second_price\" or \"first_price\", got {:?}",
                    self.engine.mechanism
                ),
            );
        }
        let cur = &self.engine.currency;
        if cur.len() != 3 || !cur.bytes().all(|b| b.is_ascii_uppercase()) {
            return bad(
                "engine.currency",
                format!("must be an ISO 4217 code like \"USD\", got {cur:?}"),
            );
        }
        if self.engine.max_amount_micros <= 0 || self.engine.max_amount_micros > (1 << 53) {
            return bad(
                "engine.max_amount_micros",
                format!("must be in 1..=2**53, got {}", self.engine.max_amount_micros),
            );
        }
        if !matches!(s.shutdown.as_str(), "finish" | "cancel") {
            return bad(
                "server.shutdown",
                format!("must be \"finish\" or \"cancel\", got {:?}", s.shutdown),
            );
        }
        if self.events.max_records < 1024 || self.events.max_records > (1 << 32) {
            return bad(
                "events.max_records",
                format!("must be in 1024..=2**32, got {}", self.events.max_records),
            );
        }
        if !(self.demo.traffic.is_finite() && self.demo.traffic >= 0.0) {
            return bad(
                "demo.traffic",
                format!("must be >= 0 auctions per second, got {}", self.demo.traffic),
            );
        }
        self.validate_openrtb()?;
        self.floors.validate()?;
        self.mirror.validate()
    }

    fn validate_openrtb(&self) -> Result<(), ConfigError> {
        let bad = |key: String, msg: String| Err(ConfigError(format!("{key}: {msg}")));
        let o = &self.openrtb;
        if o.max_body_bytes < 256 {
            return bad(
                "openrtb.max_body_bytes".into(),
                format!("must be >= 256, got {}", o.max_body_bytes),
            );
        }
        if o.max_bidder_response_bytes < 256 {
            return bad(
                "openrtb.max_bidder_response_bytes".into(),
                format!("must be >= 256, got {}", o.max_bidder_response_bytes),
            );
        }
        if o.notice_attempts == 0 {
            return bad("openrtb.notice_attempts".into(), "must be > 0".into());
        }
        let iso = |c: &str| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase());
        let mut names = std::collections::HashSet::new();
        for (i, b) in o.bidders.iter().enumerate() {
            let k = |f: &str| format!("openrtb.bidders[{i}].{f}");
            if b.name.is_empty()
                || !b.name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
            {
                return bad(
                    k("name"),
                    format!("must be letters, digits, '_' or '-', got {:?}", b.name),
                );
            }
            if !names.insert(b.name.as_str()) {
                return bad(k("name"), format!("{:?} is used by another bidder", b.name));
            }
            let https = b.endpoint.starts_with("https://");
            if !(https || b.endpoint.starts_with("http://"))
                || b.endpoint.parse::<hyper::Uri>().is_err()
            {
                return bad(
                    k("endpoint"),
                    format!("must be an http:// or https:// URL, got {:?}", b.endpoint),
                );
            }
            if !b.ca_file.is_empty() {
                if !https {
                    return bad(k("ca_file"), "is only for an https:// endpoint".into());
                }
                if let Err(e) = load_ca_file(&self.resolve(&b.ca_file)) {
                    return bad(k("ca_file"), e);
                }
            }
            if b.timeout_ms == 0 {
                return bad(k("timeout_ms"), "must be > 0".into());
            }
            if !iso(&b.currency) {
                return bad(
                    k("currency"),
                    format!("must be an ISO 4217 code like \"USD\", got {:?}", b.currency),
                );
            }
            if !(b.adjustment.is_finite() && b.adjustment > 0.0) {
                return bad(k("adjustment"), format!("must be a number > 0, got {}", b.adjustment));
            }
        }
        for (i, f) in o.floors.iter().enumerate() {
            if !(f.floor.is_finite() && f.floor >= 0.0) {
                return bad(
                    format!("openrtb.floors[{i}].floor"),
                    format!("must be a number >= 0, got {}", f.floor),
                );
            }
            if !f.currency.is_empty() && !iso(&f.currency) {
                return bad(
                    format!("openrtb.floors[{i}].currency"),
                    format!("must be an ISO 4217 code, got {:?}", f.currency),
                );
            }
            if let Some(m) = &f.media_type {
                if !matches!(m.as_str(), "banner" | "video" | "audio" | "native") {
                    return bad(
                        format!("openrtb.floors[{i}].media_type"),
                        format!("must be banner, video, audio or native, got {m:?}"),
                    );
                }
            }
        }
        Ok(())
    }

    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        secs(self.server.heartbeat_interval_s)
    }
    pub fn heartbeat_timeout(&self) -> Duration {
        secs(self.server.heartbeat_timeout_s)
    }
    pub fn auth_timeout(&self) -> Duration {
        secs(self.auth.auth_timeout_s)
    }
    pub fn slow_consumer_timeout(&self) -> Duration {
        secs(self.server.slow_consumer_timeout_s)
    }
    pub fn failed_auth_window(&self) -> Duration {
        secs(self.server.failed_auth_window_s)
    }
    pub fn drain_timeout(&self) -> Duration {
        secs(self.server.drain_timeout_s)
    }
    pub fn retention(&self) -> Duration {
        secs(self.events.retention_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_loads() {
        let t = r#"
[server]
host = "127.0.0.1"
port = 8080
max_frame_bytes = 1048576
max_messages_per_frame = 4096
[auth]
keys_file = "keys.toml"
token_secret = ""
auth_timeout_s = 5.0
[engine]
mechanism = "second_price"
currency = "USD"
workers = 1
tmax_ms = 100
"#;
        let c = Config::from_toml(t, Path::new("/etc/x")).unwrap();
        assert_eq!(c.resolve(&c.auth.keys_file), Path::new("/etc/x/keys.toml"));
        assert_eq!(c.engine.tmax_ms, 100);
    }

    /// The ```toml block of docs/floors.md's section "In the exchange server".
    fn docs_floors_block() -> &'static str {
        let doc = include_str!("../../../docs/floors.md");
        let sec = &doc[doc.find("### In the exchange server").expect("the section")..];
        let start = sec.find("```toml\n").expect("a toml block") + 8;
        &sec[start..start + sec[start..].find("```").expect("its end")]
    }

    #[test]
    fn the_docs_floors_config_loads() {
        let c = Config::from_toml(docs_floors_block(), Path::new(".")).unwrap();
        let f = &c.floors;
        assert!(f.enabled);
        assert_eq!(f.segment_by, ["site", "placement"]);
        assert_eq!(f.openrtb_segment_by, ["domain", "media_type"]);
        assert_eq!((f.max_segments, f.initial, f.explore), (1000, 0.5, 0.05));
        assert_eq!(f.grid().len(), 11);
    }

    #[test]
    fn the_docs_mirror_config_loads_and_mirror_errors_name_the_key() {
        let doc = include_str!("../../../docs/exchange.md");
        let sec = &doc[doc.find("## Several nodes").expect("the section")..];
        let start = sec.find("```toml\n").expect("a toml block") + 8;
        let block = &sec[start..start + sec[start..].find("```").expect("its end")];
        let c = Config::from_toml(block, Path::new(".")).unwrap();
        assert!(c.mirror.enabled() && !c.mirror.cluster);
        assert_eq!((c.mirror.node, c.mirror.prefix.as_str()), (1, "rtbcore"));
        assert!(!Config::from_toml("", Path::new(".")).unwrap().mirror.enabled());
        let url = "redis_url = \"redis://127.0.0.1:6379/0\"\n";
        for (extra, key) in [
            ("", "mirror.node"),
            ("node = 32768", "mirror.node"),
            ("node = 1\nprefix = \"\"", "mirror.prefix"),
            ("node = 1\nstream_maxlen = 999", "mirror.stream_maxlen"),
            ("node = 1\ntimeout_s = -1.0", "mirror.timeout_s"),
            ("node = 1\npoll_interval_s = 6.0", "mirror.poll_interval_s"),
            ("node = 1\nmax_held_events = 0", "mirror.max_held_events"),
        ] {
            let e = Config::from_toml(&format!("[mirror]\n{url}{extra}"), Path::new("."))
                .expect_err(key);
            assert!(e.0.starts_with(key), "{key}: {}", e.0);
        }
    }

    #[test]
    fn floors_default_off_with_the_default_grid() {
        let c = Config::from_toml("", Path::new(".")).unwrap();
        assert!(!c.floors.enabled);
        let g = c.floors.grid();
        assert_eq!((g.len(), g[0], g[1], g[127]), (128, 0.0, 0.01, 100.0));
        assert!(g.windows(2).all(|w| w[1] > w[0]));
    }

    #[test]
    fn floors_errors_name_the_key() {
        let cases = [
            ("enabled = true\nexplore = 0.0", "floors.explore"),
            ("explore = 1.5", "floors.explore"),
            ("max_segments = 0", "floors.max_segments"),
            ("max_segments = 10001", "floors.max_segments"),
            ("openrtb_segment_by = [\"domain\", \"city\"]", "floors.openrtb_segment_by[1]"),
            ("openrtb_segment_by = [\"size\", \"size\"]", "floors.openrtb_segment_by[1]"),
            ("segment_by = [\"\"]", "floors.segment_by[0]"),
            ("initial = -1.0", "floors.initial"),
            ("initial = nan", "floors.initial"),
            ("explore_steps = 0", "floors.explore_steps"),
            ("half_life = 0.0", "floors.half_life"),
            ("half_life = inf", "floors.half_life"),
            ("min_fill = 2.0", "floors.min_fill"),
            ("min_weight = -1.0", "floors.min_weight"),
            ("grid = [0.0]", "floors.grid"),
            ("grid = [0.0, 1.0, 1.0]", "floors.grid[2]"),
            ("grid = [-1.0, 1.0]", "floors.grid[0]"),
            ("grid = [0.0, inf]", "floors.grid[1]"),
            ("seed = -1", "seed"),
            ("explor = 0.1", "explor"),
        ];
        for (body, key) in cases {
            let e =
                Config::from_toml(&format!("[floors]\n{body}\n"), Path::new(".")).expect_err(body);
            assert!(e.0.contains(key), "{body}: {e}");
        }
        let big: Vec<String> = (0..4097).map(|i| i.to_string()).collect();
        let e =
            Config::from_toml(&format!("[floors]\ngrid = [{}]\n", big.join(",")), Path::new("."))
                .unwrap_err();
        assert!(e.0.contains("floors.grid"), "{e}");
    }

    #[test]
    fn errors_name_the_key() {
        let e =
            Config::from_toml("[engine]\nmechanism = \"vickrey\"\n", Path::new(".")).unwrap_err();
        assert!(e.0.contains("engine.mechanism"), "{e}");
        let e =
            Config::from_toml("[server]\nheartbeat_timeout_s = -1\n", Path::new(".")).unwrap_err();
        assert!(e.0.contains("server.heartbeat_timeout_s"), "{e}");
        let e = Config::from_toml("[server]\nprot = 1\n", Path::new(".")).unwrap_err();
        assert!(e.0.contains("prot"), "{e}");
    }
}
