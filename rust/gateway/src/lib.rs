//! The rtbcore exchange server: a WebSocket + protobuf gateway (`proto/rtbcore/v1/bidding.proto`)
//! that embeds the engine. No Python: the binding only starts, stops and feeds it.
//!
//! ```text
//!  client ──ws frame──▶ session ──validate, table──▶ one engine block per frame ──▶ Engine
//!    ▲                    │                                                            │
//!    └── outbound queue ◀─┴── streams: seq, event log (mmap ring), delivery ◀── results thread
//! ```
//!
//! - [`server::Gateway`] starts a tokio runtime of its own, binds one port ([`http`]: the
//!   WebSocket, SSE, metrics, health) and a result thread; [`server::Gateway::stop`] drains.
//! - [`session`] runs one connection: auth within the timeout, frames in, its bounded queue out,
//!   heartbeat, rate limit, close codes.
//! - [`auctions`] keeps the auction table and turns bid requests into engine records;
//!   [`results`] turns engine results into `AuctionWon` / `AuctionLost` / `AuctionClosed`.
//! - [`streams`] gives each buyer event its seq, logs it ([`evlog`]) before queueing it, and
//!   plans replays ([`replay`]).

pub mod auctions;
pub mod auth;
pub mod codec;
pub mod config;
pub mod demo;
pub mod events;
pub mod evlog;
pub mod floors;
pub mod http;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod mirror;
pub mod openrtb;
pub mod replay;
pub mod results;
pub mod server;
pub mod session;
pub mod streams;

pub use config::{Config, ConfigError};
pub use hub::AuctionOutcome;
pub use rtbcore_proto::{pbjson_types, prost};
pub use server::{Gateway, Options};
