//! A test exchange on 127.0.0.1:0 with a keys file, and a WebSocket client speaking either
//! subprotocol (tokio-tungstenite: a client that is not ours).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rtbcore_gateway::auth::sha256;
use rtbcore_gateway::prost::Message as _;
use rtbcore_gateway::{Config, Gateway, Options};
use rtbcore_proto::v1::bid_event::Event;
use rtbcore_proto::v1::bid_message::Message as Msg;
use rtbcore_proto::v1::*;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const KEYS: [(&str, &str, &str); 5] = [
    ("pub", "key-pub", r#"["publish", "subscribe", "metrics"]"#),
    ("acme", "key-acme", r#"["bid", "subscribe", "metrics"]"#),
    ("bolt", "key-bolt", r#"["bid", "subscribe"]"#),
    ("nosub", "key-nosub", r#"["bid"]"#),
    ("cato", "key-cato", r#"["bid", "subscribe"]"#),
];

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n: u64 =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
                as u64;
        let p = std::env::temp_dir().join(format!("rtbcore-gw-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes keys.toml and exchange.toml (with `extra` appended under the right tables by the
/// caller) into `dir`; returns the config.
pub fn config(dir: &Path, extra: &str) -> Config {
    let mut keys = String::new();
    for (buyer, key, scopes) in KEYS {
        keys += &format!(
            "[[keys]]\nbuyer = \"{buyer}\"\nsha256 = \"{}\"\nscopes = {scopes}\n\n",
            hex(&sha256(key.as_bytes()))
        );
    }
    std::fs::write(dir.join("keys.toml"), keys).unwrap();
    let text = format!(
        "[server]\nport = 0\nheartbeat_interval_s = 30\nheartbeat_timeout_s = 60\n\
         [auth]\nkeys_file = \"keys.toml\"\ntoken_secret = \"tok-secret\"\nauth_timeout_s = 2\n\
         [engine]\ntmax_ms = 300\n[events]\npath = \"events.ring\"\nmax_records = 65536\n{extra}"
    );
    std::fs::write(dir.join("exchange.toml"), &text).unwrap();
    Config::load(&dir.join("exchange.toml")).unwrap()
}

/// Merges `[section] key = value` overrides into the default test config text.
pub fn config_with(dir: &Path, server: &str, auth: &str, engine: &str) -> Config {
    let mut keys = String::new();
    for (buyer, key, scopes) in KEYS {
        keys += &format!(
            "[[keys]]\nbuyer = \"{buyer}\"\nsha256 = \"{}\"\nscopes = {scopes}\n\n",
            hex(&sha256(key.as_bytes()))
        );
    }
    std::fs::write(dir.join("keys.toml"), keys).unwrap();
    let text = format!(
        "[server]\nport = 0\n{server}\n[auth]\nkeys_file = \"keys.toml\"\ntoken_secret = \"tok-secret\"\n{auth}\n\
         [engine]\n{engine}\n[events]\npath = \"events.ring\"\nmax_records = 65536\n"
    );
    std::fs::write(dir.join("exchange.toml"), &text).unwrap();
    Config::load(&dir.join("exchange.toml")).unwrap()
}

pub fn start(cfg: Config) -> Gateway {
    Gateway::start(Options { config: cfg, dev_key: false, threads: 2 }).unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Proto {
    Binary,
    Json,
    None,
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub proto: Proto,
    /// Events of a frame already read but not yet taken: the exchange merges what a connection's
    /// queue holds into one frame, so one read can carry more than the event asked for.
    pending: VecDeque<BidEvent>,
}

/// How a read ended.
#[derive(Debug, PartialEq)]
pub enum Got {
    Events(Vec<BidEvent>),
    Closed(Option<u16>),
    Timeout,
}

impl Client {
    pub async fn connect(addr: SocketAddr, proto: Proto) -> Client {
        let mut req = format!("ws://{addr}/v1/bidding").into_client_request().unwrap();
        match proto {
            Proto::Binary => {
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "rtbcore.v1.proto".parse().unwrap());
            }
            Proto::Json => {
                req.headers_mut()
                    .insert("Sec-WebSocket-Protocol", "rtbcore.v1.json".parse().unwrap());
            }
            Proto::None => {}
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        Client { ws, proto, pending: VecDeque::new() }
    }

    pub async fn send(&mut self, msgs: Vec<BidMessage>) {
        let f = ClientFrame { messages: msgs };
        let m = match self.proto {
            Proto::Json => Message::Text(serde_json::to_string(&f).unwrap().into()),
            _ => Message::Binary(f.encode_to_vec().into()),
        };
        self.ws.send(m).await.unwrap();
    }

    pub async fn send_raw(&mut self, m: Message) {
        let _ = self.ws.send(m).await;
    }

    pub async fn one(&mut self, m: Msg) {
        self.send(vec![msg("", m)]).await;
    }

    pub async fn req(&mut self, rid: &str, m: Msg) {
        self.send(vec![msg(rid, m)]).await;
    }

    /// The next server frame (or the close / a timeout).
    pub async fn recv(&mut self, within: Duration) -> Got {
        if !self.pending.is_empty() {
            return Got::Events(self.pending.drain(..).collect());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let m = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Got::Timeout,
                Ok(None) => return Got::Closed(None),
                Ok(Some(Err(_))) => return Got::Closed(None),
                Ok(Some(Ok(m))) => m,
            };
            return match m {
                Message::Binary(b) => Got::Events(ServerFrame::decode(&b[..]).unwrap().events),
                Message::Text(t) => {
                    Got::Events(serde_json::from_str::<ServerFrame>(t.as_str()).unwrap().events)
                }
                Message::Close(c) => Got::Closed(c.map(|c| u16::from(c.code))),
                _ => continue,
            };
        }
    }

    /// The next event (frames flattened), failing the test on a close or timeout.
    pub async fn event(&mut self) -> BidEvent {
        if let Some(e) = self.pending.pop_front() {
            return e;
        }
        let mut got = self.events_until(1).await;
        let first = got.remove(0);
        self.pending.extend(got);
        first
    }

    /// The next event that is not of kind `skip`.
    pub async fn event_except(&mut self, skip: &str) -> BidEvent {
        loop {
            let e = self.event().await;
            if kind(&e) != skip {
                return e;
            }
        }
    }

    pub async fn events_until(&mut self, n: usize) -> Vec<BidEvent> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.recv(Duration::from_secs(3)).await {
                Got::Events(e) => out.extend(e),
                other => panic!("wanted {n} events, got {} then {other:?}: {out:?}", out.len()),
            }
        }
        out
    }

    /// Reads until the close frame; returns its code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.recv(Duration::from_secs(5)).await {
                Got::Events(_) => continue,
                Got::Closed(c) => return c,
                Got::Timeout => panic!("no close within 5 s"),
            }
        }
    }

    /// Authenticates with an API key; returns the AuthResult.
    pub async fn auth(&mut self, key: &str) -> AuthResult {
        self.one(Msg::Auth(Auth { credential: Some(auth::Credential::ApiKey(key.into())) })).await;
        match self.event().await.event {
            Some(Event::AuthResult(r)) => r,
            other => panic!("expected AuthResult, got {other:?}"),
        }
    }

    pub async fn login(addr: SocketAddr, key: &str) -> Client {
        let mut c = Client::connect(addr, Proto::Binary).await;
        let r = c.auth(key).await;
        assert!(r.ok, "{r:?}");
        c
    }

    pub async fn subscribe(&mut self, s: Subscribe) -> SubscriptionAck {
        self.one(Msg::Subscribe(s)).await;
        match self.event().await.event {
            Some(Event::SubscriptionAck(a)) => a,
            other => panic!("expected SubscriptionAck, got {other:?}"),
        }
    }
}

pub fn close_code(c: CloseCode) -> u16 {
    u16::from(c)
}

pub fn usd(micros: i64) -> Option<Money> {
    Some(Money { currency: "USD".into(), micros })
}

pub fn open(id: &str, floor: i64, tmax_ms: u64, expected: u32) -> Msg {
    Msg::OpenAuction(OpenAuction {
        auction_id: id.into(),
        attributes: [
            ("vertical".to_string(), "news".to_string()),
            ("quality_score".to_string(), "0.8".to_string()),
        ]
        .into(),
        floor: usd(floor),
        tmax: Some(rtbcore_gateway::pbjson_types::Duration {
            seconds: (tmax_ms / 1000) as i64,
            nanos: ((tmax_ms % 1000) * 1_000_000) as i32,
        }),
        expected_bids: expected,
    })
}

/// A message with its request id ("": none).
pub fn msg(request_id: &str, m: Msg) -> BidMessage {
    BidMessage { request_id: request_id.into(), message: Some(m) }
}

pub fn place(auction: &str, micros: i64) -> Msg {
    Msg::PlaceBid(PlaceBid {
        auction_id: auction.into(),
        amount: usd(micros),
        ..Default::default()
    })
}

pub fn kind(e: &BidEvent) -> &'static str {
    match &e.event {
        Some(Event::AuthResult(_)) => "auth_result",
        Some(Event::SubscriptionAck(_)) => "subscription_ack",
        Some(Event::AuctionStarted(_)) => "auction_started",
        Some(Event::BidAccepted(_)) => "bid_accepted",
        Some(Event::BidRejected(_)) => "bid_rejected",
        Some(Event::AuctionWon(_)) => "auction_won",
        Some(Event::AuctionLost(_)) => "auction_lost",
        Some(Event::BidUpdate(_)) => "bid_update",
        Some(Event::MetricsUpdate(_)) => "metrics_update",
        Some(Event::AuctionOpened(_)) => "auction_opened",
        Some(Event::AuctionClosed(_)) => "auction_closed",
        Some(Event::Error(_)) => "error",
        None => "none",
    }
}

/// The reject reason of a BidRejected or Error event.
pub fn reason(e: &BidEvent) -> RejectReason {
    match &e.event {
        Some(Event::BidRejected(r)) => RejectReason::try_from(r.reason).unwrap(),
        Some(Event::Error(r)) => RejectReason::try_from(r.reason).unwrap(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The exchange's `/metrics` text.
pub async fn metrics(addr: SocketAddr) -> String {
    use http_body_util::{BodyExt, Full};
    use hyper_util::client::legacy::Client as HttpClient;
    use hyper_util::rt::TokioExecutor;
    let c = HttpClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let resp = c.get(format!("http://{addr}/metrics").parse().unwrap()).await.unwrap();
    let b = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&b).into_owned()
}

/// The value of one series (name and labels exactly as exposed) in a metrics text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}
