//! One client connection: connect (optionally from a chosen 127.0.0.x source address), frame
//! and unframe the protocol in either subprotocol, authenticate, subscribe.

use std::net::{IpAddr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use rtbcore_proto::prost::Message as _;
use rtbcore_proto::v1::{
    bid_event, bid_message, Auth, BidEvent, BidMessage, ClientFrame, ServerFrame, Subscribe,
};
use rtbcore_proto::{SUBPROTOCOL_JSON, SUBPROTOCOL_PROTO};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::lean;

/// Bytes a load connection reads at a time. tungstenite zeroes its read chunk before every
/// read, so its 128 KiB default costs a 128 KiB memset per read however little arrived.
const LOAD_READ_CHUNK: usize = 16 * 1024;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: String,
    pub addr: SocketAddr,
    pub json: bool,
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
    json: bool,
}

impl Target {
    /// Parses `ws://HOST:PORT/path` (the host must be an IP address: this is a loopback tool).
    pub fn parse(url: &str, json: bool) -> Result<Self, Error> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("--url {url:?}: expected ws://HOST:PORT/path"))?;
        let hostport = rest.split('/').next().unwrap_or_default();
        let addr: SocketAddr = hostport
            .parse()
            .map_err(|e| format!("--url {url:?}: {hostport:?} is not IP:PORT ({e})"))?;
        Ok(Self { url: url.to_string(), addr, json })
    }

    /// Opens a WebSocket, binding the local end to `source` when given.
    pub async fn connect(&self, source: Option<IpAddr>) -> Result<Conn, Error> {
        let cfg = WebSocketConfig::default().read_buffer_size(LOAD_READ_CHUNK);
        self.connect_with(source, Some(cfg)).await
    }

    /// Opens a connection meant to stay idle: 4 KiB buffers instead of tungstenite's 128 KiB
    /// each way, so 100K of them fit in the load generator's memory.
    pub async fn connect_idle(&self, source: Option<IpAddr>) -> Result<Conn, Error> {
        let small = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        self.connect_with(source, Some(small)).await
    }

    async fn connect_with(
        &self,
        source: Option<IpAddr>,
        config: Option<WebSocketConfig>,
    ) -> Result<Conn, Error> {
        let sock = if self.addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        if let Some(ip) = source {
            sock.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = sock.connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut req = self.url.as_str().into_client_request()?;
        let proto = if self.json { SUBPROTOCOL_JSON } else { SUBPROTOCOL_PROTO };
        req.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(proto));
        let (ws, _) = tokio_tungstenite::client_async_with_config(req, stream, config).await?;
        Ok(Conn { ws, json: self.json })
    }
}

impl Conn {
    pub async fn send(&mut self, messages: Vec<BidMessage>) -> Result<(), Error> {
        let frame = ClientFrame { messages };
        let msg = if self.json {
            Message::text(serde_json::to_string(&frame)?)
        } else {
            Message::binary(frame.encode_to_vec())
        };
        self.ws.send(msg).await?;
        Ok(())
    }

    /// The next data message of the connection's subprotocol; None when the server closed it.
    async fn next_data(&mut self) -> Result<Option<Message>, Error> {
        loop {
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            return match msg? {
                m @ Message::Binary(_) if !self.json => Ok(Some(m)),
                m @ Message::Text(_) if self.json => Ok(Some(m)),
                Message::Close(_) => Ok(None),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                other => Err(format!("unexpected frame type: {other:?}").into()),
            };
        }
    }

    /// The next frame's events; None when the server closed the connection.
    pub async fn recv(&mut self) -> Result<Option<Vec<BidEvent>>, Error> {
        let frame: ServerFrame = match self.next_data().await? {
            Some(Message::Binary(b)) => ServerFrame::decode(b.as_ref())?,
            Some(Message::Text(t)) => serde_json::from_str(t.as_str())?,
            _ => return Ok(None),
        };
        Ok(Some(frame.events))
    }

    /// The next frame's events in their lean form (see [`crate::lean`]); None when the server
    /// closed the connection.
    pub async fn recv_lean(&mut self) -> Result<Option<Vec<lean::Event>>, Error> {
        Ok(Some(match self.next_data().await? {
            Some(Message::Binary(b)) => lean::Frame::decode(b)?.events,
            Some(Message::Text(t)) => {
                let f: ServerFrame = serde_json::from_str(t.as_str())?;
                f.events.into_iter().map(lean::narrow).collect()
            }
            _ => return Ok(None),
        }))
    }

    /// Sends `Auth` (and `Subscribe` when `event_types` is given) in one frame and waits for
    /// the `AuthResult` (and the `SubscriptionAck`).
    pub async fn login(&mut self, key: &str, subscribe: Option<&[&str]>) -> Result<(), Error> {
        let mut msgs = vec![BidMessage {
            request_id: String::new(),
            message: Some(bid_message::Message::Auth(Auth {
                credential: Some(rtbcore_proto::v1::auth::Credential::ApiKey(key.to_string())),
            })),
        }];
        if let Some(types) = subscribe {
            msgs.push(BidMessage {
                request_id: String::new(),
                message: Some(bid_message::Message::Subscribe(Subscribe {
                    event_types: types.iter().map(|s| s.to_string()).collect(),
                    ..Default::default()
                })),
            });
        }
        self.send(msgs).await?;
        let mut authed = false;
        let mut subscribed = subscribe.is_none();
        while !(authed && subscribed) {
            let events =
                self.recv().await?.ok_or("the server closed the connection during login")?;
            for ev in events {
                match ev.event {
                    Some(bid_event::Event::AuthResult(r)) if r.ok => authed = true,
                    Some(bid_event::Event::AuthResult(r)) => {
                        return Err(format!("authentication failed: {}", r.message).into())
                    }
                    Some(bid_event::Event::SubscriptionAck(_)) => subscribed = true,
                    Some(bid_event::Event::BidRejected(r)) => {
                        return Err(format!("login rejected: {}", r.message).into())
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_ws_urls_with_an_ip_and_port() {
        let t = Target::parse("ws://127.0.0.1:8080/v1/bidding", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(Target::parse("http://127.0.0.1:8080/", false).is_err());
        assert!(Target::parse("ws://localhost:8080/v1/bidding", false).is_err());
    }
}
